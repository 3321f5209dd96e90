//! One-pass tangent arithmetic where the device is the host.
//!
//! Why: a tangent vector of MiniLM holds 22.6 M f32 numbers (90 MB), and every Burn operation
//! on it is a pass over memory that writes a fresh buffer. Auto-PGD's update
//! ξ_{k+1} = P_S(ξ_k + α(z − ξ_k) + (1 − α)(ξ_k − ξ_{k−1})), z = P_S(ξ_k + η ĝ), written as
//! Burn operations, took sixteen such passes (0.12 s, as much as the geometry's whole other
//! work), and a weighted norm Σ u²/w² three (two products, then a sum). Here the same
//! arithmetic is one pass that reads each operand once: a linear combination Σ cₖ xₖ of up to
//! three tensors, and a weighted dot product Σ uᵢ vᵢ wᵢ that writes nothing. A geometry's frame
//! at a base point (rebuilt by every SAM step) uses two more: [`count_on_host`] for its weight
//! checks and [`map_on_host`] for several element-wise functions of the weights in one pass.
//!
//! On Burn's ndarray backend with f32 tensors in standard layout, these run as loops over the
//! buffers on rayon's threads; anywhere else (CUDA, autodiff, f64, strided views) they fall
//! back to Burn's own operations, which compute the same values. The host buffers are reached
//! through the tensor's primitive by `Any` downcasting, without a copy.
//!
//! # Numerics
//! * [`combination`] rounds as Burn's operations do: `x₀ + c₁·x₁` is `x₀ + f32(c₁)·x₁`, the
//!   coefficient first rounded to f32 as `mul_scalar` rounds it, so a two-term combination
//!   with c₀ = 1 is Burn's `axpy` bit for bit; with more terms, the products are added left to
//!   right.
//! * [`weighted_dot`] forms each term uᵢ·wᵢ·vᵢ in f32 (as `(u ⊙ w) ⊙ v` does) and adds the
//!   terms in f64, over chunks of [`CHUNK`] whose sums are added in order: the result does not
//!   depend on the number of threads, and it is at least as accurate as the backend's path
//!   (`geometry::base::dot`: f32 sums over runs of 256, then f64).

use std::any::{Any, TypeId};
use std::mem::MaybeUninit;

use burn::backend::ndarray::NdArrayTensor;
use burn::prelude::{Backend, Tensor};
use burn::tensor::{DType, TensorData, TensorPrimitive};
use ndarray::{ArcArray, IxDyn};
use rayon::prelude::*;

mod gram;
pub mod heads;

pub use gram::{dot_f64_on_host, gram_pairs, weighted_gram};

/// Elements per rayon task: large enough to amortise the task, small enough to balance two
/// to sixteen threads over a 90 MB tensor.
pub const CHUNK: usize = 1 << 15;

/// The f32 buffer of a tensor on the ndarray backend, held by its primitive (an `Arc` clone).
struct HostF32 {
    tensor: NdArrayTensor,
}

impl HostF32 {
    /// The buffer behind `x`, when `B` is burn-ndarray, `x` is f32 and in standard layout.
    fn of<B: Backend, const D: usize>(x: &Tensor<B, D>) -> Option<Self> {
        if x.dtype() != DType::F32 {
            return None;
        }
        let host = Self {
            tensor: ndarray_primitive(x)?,
        };
        host.try_slice()?;
        Some(host)
    }

    /// The elements in row-major order (`None` unless f32 in standard layout).
    fn try_slice(&self) -> Option<&[f32]> {
        f32_slice(&self.tensor)
    }

    /// The elements in row-major order: [`of`](Self::of) admits only buffers that have them,
    /// and the `Arc`-shared buffer it holds cannot change.
    fn slice(&self) -> &[f32] {
        self.try_slice()
            .expect("`HostF32::of` admits only f32 buffers in standard layout")
    }
}

/// `x`'s float primitive when `B` is burn-ndarray (an `Arc` clone of its buffer), else `None`.
fn ndarray_primitive<B: Backend, const D: usize>(x: &Tensor<B, D>) -> Option<NdArrayTensor> {
    let TensorPrimitive::Float(primitive) = x.clone().into_primitive() else {
        return None;
    };
    let boxed: Box<dyn Any> = Box::new(primitive);
    boxed.downcast::<NdArrayTensor>().ok().map(|t| *t)
}

/// The elements of burn-ndarray's primitive in row-major order (`None` unless f32 in standard
/// layout); shared with `models::fused`.
pub(crate) fn f32_slice(t: &NdArrayTensor) -> Option<&[f32]> {
    match t {
        // The view borrows the storage `t` holds; `to_slice` hands out its elements for that
        // borrow, and only for standard layout.
        NdArrayTensor::F32(storage) => storage.view().to_slice(),
        _ => None,
    }
}

/// A row-major f32 buffer of `shape` as burn-ndarray's primitive (`None` if the lengths
/// disagree); shared with `models::fused`.
pub(crate) fn f32_primitive(values: Vec<f32>, shape: &[usize]) -> Option<NdArrayTensor> {
    Some(NdArrayTensor::from(
        ArcArray::from_shape_vec(IxDyn(shape), values).ok()?,
    ))
}

/// Whether `B`'s tensors live in host memory: its float primitive is burn-ndarray's, whatever
/// the element type, layout or autodiff wrapping of a particular tensor.
pub fn host_backend<B: Backend>() -> bool {
    TypeId::of::<B::FloatTensorPrimitive>() == TypeId::of::<NdArrayTensor>()
}

/// Whether [`combination`] and [`weighted_dot`] read `x`'s buffer directly (an f32 tensor in
/// standard layout on burn-ndarray) rather than falling back to Burn's operations.
pub fn on_host<B: Backend, const D: usize>(x: &Tensor<B, D>) -> bool {
    HostF32::of(x).is_some()
}

/// A row-major f32 buffer as a tensor of `shape` on the ndarray backend `B`, or `None` when
/// `B`'s primitive is not burn-ndarray's.
fn from_host<B: Backend, const D: usize>(
    values: Vec<f32>,
    shape: &[usize],
) -> Option<Tensor<B, D>> {
    let boxed: Box<dyn Any> = Box::new(f32_primitive(values, shape)?);
    let primitive = *boxed.downcast::<B::FloatTensorPrimitive>().ok()?;
    Some(Tensor::from_primitive(TensorPrimitive::Float(primitive)))
}

/// Σₖ cₖ xₖ for one to three tensors of one shape, in one pass on the host (see the module
/// docs), else with Burn's operations.
///
/// # Panics
/// If `terms` is empty or has more than three entries, or the shapes differ (programming
/// errors).
pub fn combination<B: Backend, const D: usize>(terms: &[(f64, &Tensor<B, D>)]) -> Tensor<B, D> {
    assert!(
        (1..=3).contains(&terms.len()),
        "a combination of one to three tensors"
    );
    let shape = terms[0].1.shape();
    for (_, x) in terms {
        assert_eq!(x.shape(), shape, "the terms of a combination share a shape");
    }
    let hosts: Option<Vec<HostF32>> = terms.iter().map(|(_, x)| HostF32::of(x)).collect();
    let n = shape.num_elements();
    let slices: Option<Vec<&[f32]>> = hosts
        .as_ref()
        .map(|hosts| hosts.iter().map(HostF32::slice).collect());
    // Every buffer holds exactly n elements, which the writes below rely on.
    if let Some(slices) = slices.filter(|s| s.iter().all(|s| s.len() == n)) {
        let c: Vec<f32> = terms.iter().map(|(c, _)| *c as f32).collect();
        let kernel = |start: usize, out: &mut [MaybeUninit<f32>]| {
            let range = start..start + out.len();
            match (c.as_slice(), slices.as_slice()) {
                ([c0], [x0]) => scaled(out, *c0, &x0[range]),
                ([c0, c1], [x0, x1]) => two(out, *c0, &x0[range.clone()], *c1, &x1[range]),
                ([c0, c1, c2], [x0, x1, x2]) => three(
                    out,
                    [*c0, *c1, *c2],
                    [&x0[range.clone()], &x1[range.clone()], &x2[range]],
                ),
                _ => unreachable!("one to three terms, each with its buffer"),
            }
        };
        // The result is written once, straight into fresh memory: zero-filling it first would
        // be one more pass over 90 MB.
        let mut out: Vec<f32> = Vec::with_capacity(n);
        let spare = &mut out.spare_capacity_mut()[..n];
        if n <= CHUNK {
            kernel(0, spare);
        } else {
            spare
                .par_chunks_mut(CHUNK)
                .enumerate()
                .for_each(|(i, out)| kernel(i * CHUNK, out));
        }
        // SAFETY: the kernels above wrote every one of the first n elements: the chunks cover
        // 0..n, and each kernel zips its chunk with input slices at least as long (each buffer
        // holds n elements), so it writes the whole chunk.
        unsafe { out.set_len(n) };
        if let Some(t) = from_host(out, &terms[0].1.dims()) {
            return t;
        }
    }
    by_ops(terms)
}

/// How many elements of `x` satisfy `pred`, in one read-only pass on the host (see the module
/// docs); `None` where `x` is not an f32 ndarray buffer (the caller then counts with Burn's
/// operations).
pub fn count_on_host<B: Backend, const D: usize>(
    x: &Tensor<B, D>,
    pred: impl Fn(f32) -> bool + Sync,
) -> Option<usize> {
    let host = HostF32::of(x)?;
    let values = host.slice();
    let count = |chunk: &[f32]| chunk.iter().filter(|v| pred(**v)).count();
    Some(if values.len() <= CHUNK {
        count(values)
    } else {
        values.par_chunks(CHUNK).map(count).sum()
    })
}

/// K element-wise functions of `x` in one pass on the host: `f(xᵢ)[k]` is element i of the
/// k-th result. `None` where `x` is not an f32 ndarray buffer (the caller then computes the
/// results with Burn's operations). Reads `x` once and writes each result once, where Burn
/// would take a pass (or several) per result.
pub fn map_on_host<B: Backend, const K: usize>(
    x: &Tensor<B, 3>,
    f: impl Fn(f32) -> [f32; K] + Sync,
) -> Option<[Tensor<B, 3>; K]> {
    let host = HostF32::of(x)?;
    let values = host.slice();
    let n = values.len();
    let mut outs: [Vec<f32>; K] = std::array::from_fn(|_| vec![0.0f32; n]);
    // Chunk i of every result, grouped, so that one task writes all K results of its chunk.
    let mut chunked: Vec<_> = outs.iter_mut().map(|o| o.chunks_mut(CHUNK)).collect();
    let groups: Vec<Vec<&mut [f32]>> = (0..n.div_ceil(CHUNK))
        .map(|_| chunked.iter_mut().filter_map(Iterator::next).collect())
        .collect();
    drop(chunked);
    groups
        .into_par_iter()
        .enumerate()
        .for_each(|(i, mut group)| {
            let start = i * CHUNK;
            for (j, x) in values[start..(start + CHUNK).min(n)].iter().enumerate() {
                for (out, y) in group.iter_mut().zip(f(*x)) {
                    out[j] = y;
                }
            }
        });
    let dims = x.dims();
    let results: Vec<Tensor<B, 3>> = outs
        .into_iter()
        .map(|o| from_host(o, &dims))
        .collect::<Option<_>>()?;
    results.try_into().ok()
}

/// Σₖ cₖ xₖ with Burn's operations, rounding as [`combination`] does.
fn by_ops<B: Backend, const D: usize>(terms: &[(f64, &Tensor<B, D>)]) -> Tensor<B, D> {
    let term = |(c, x): &(f64, &Tensor<B, D>)| {
        if *c == 1.0 {
            (*x).clone()
        } else {
            (*x).clone().mul_scalar(*c)
        }
    };
    let mut sum = term(&terms[0]);
    for t in &terms[1..] {
        sum = sum + term(t);
    }
    sum
}

/// c·x, or x itself when c = 1 (as in [`by_ops`]).
#[inline(always)]
fn term(c: f32, x: f32) -> f32 {
    if c == 1.0 { x } else { c * x }
}

/// out = c₀x₀.
fn scaled(out: &mut [MaybeUninit<f32>], c0: f32, x0: &[f32]) {
    for (o, a) in out.iter_mut().zip(x0) {
        o.write(term(c0, *a));
    }
}

/// out = c₀x₀ + c₁x₁.
fn two(out: &mut [MaybeUninit<f32>], c0: f32, x0: &[f32], c1: f32, x1: &[f32]) {
    for ((o, a), b) in out.iter_mut().zip(x0).zip(x1) {
        o.write(term(c0, *a) + term(c1, *b));
    }
}

/// out = (c₀x₀ + c₁x₁) + c₂x₂.
fn three(out: &mut [MaybeUninit<f32>], c: [f32; 3], x: [&[f32]; 3]) {
    for (((o, a), b), d) in out.iter_mut().zip(x[0]).zip(x[1]).zip(x[2]) {
        o.write((term(c[0], *a) + term(c[1], *b)) + term(c[2], *d));
    }
}

/// Σᵢ uᵢ vᵢ wᵢ (Σᵢ uᵢ vᵢ without `w`) over all entries, as a one-element f64 tensor: one pass
/// on the host that writes nothing (see the module docs), else `dot(u ⊙ w, v)`.
///
/// # Panics
/// If the shapes differ (a programming error).
pub fn weighted_dot<B: Backend>(
    u: &Tensor<B, 3>,
    v: &Tensor<B, 3>,
    w: Option<&Tensor<B, 3>>,
) -> Tensor<B, 1> {
    assert_eq!(u.shape(), v.shape(), "a dot product of one shape");
    if let Some(w) = w {
        assert_eq!(u.shape(), w.shape(), "a weight of the vectors' shape");
    }
    if let Some(sum) = weighted_dot_on_host(u, v, w) {
        let device = u.device();
        return Tensor::from_data(TensorData::new(vec![sum], [1]), (&device, DType::F64));
    }
    match w {
        Some(w) => super::dot(u.clone() * w.clone(), v.clone()),
        None => super::dot(u.clone(), v.clone()),
    }
}

/// Σᵢ uᵢ vᵢ wᵢ on the host, or `None` where a tensor is not an f32 ndarray buffer.
fn weighted_dot_on_host<B: Backend>(
    u: &Tensor<B, 3>,
    v: &Tensor<B, 3>,
    w: Option<&Tensor<B, 3>>,
) -> Option<f64> {
    let (hu, hv) = (HostF32::of(u)?, HostF32::of(v)?);
    let hw = match w {
        Some(w) => Some(HostF32::of(w)?),
        None => None,
    };
    let (su, sv, sw) = (hu.slice(), hv.slice(), hw.as_ref().map(HostF32::slice));
    let partial = |start: usize, len: usize| -> f64 {
        let r = start..start + len;
        dot_f64(&su[r.clone()], &sv[r.clone()], sw.map(|sw| &sw[r]))
    };
    let n = su.len();
    Some(if n <= CHUNK {
        partial(0, n)
    } else {
        let parts: Vec<f64> = (0..n.div_ceil(CHUNK))
            .into_par_iter()
            .map(|i| partial(i * CHUNK, CHUNK.min(n - i * CHUNK)))
            .collect();
        parts.iter().sum()
    })
}

/// Σ uᵢ·wᵢ·vᵢ (each term in f32, as `(u ⊙ w) ⊙ v`) summed in f64, over eight interleaved
/// accumulators so that the loop vectorises; their sum is taken in a fixed order.
fn dot_f64(u: &[f32], v: &[f32], w: Option<&[f32]>) -> f64 {
    const LANES: usize = 8;
    let mut acc = [0.0f64; LANES];
    let mut add = |terms: [f32; LANES]| {
        for (a, t) in acc.iter_mut().zip(terms) {
            *a += f64::from(t);
        }
    };
    let (uc, vc) = (u.chunks_exact(LANES), v.chunks_exact(LANES));
    let (ur, vr) = (uc.remainder(), vc.remainder());
    match w {
        Some(w) => {
            let wc = w.chunks_exact(LANES);
            let wr = wc.remainder();
            for ((u, v), w) in uc.zip(vc).zip(wc) {
                add(std::array::from_fn(|l| (u[l] * w[l]) * v[l]));
            }
            let mut tail = [0.0f32; LANES];
            for (l, ((u, v), w)) in ur.iter().zip(vr).zip(wr).enumerate() {
                tail[l] = (u * w) * v;
            }
            add(tail);
        }
        None => {
            for (u, v) in uc.zip(vc) {
                add(std::array::from_fn(|l| u[l] * v[l]));
            }
            let mut tail = [0.0f32; LANES];
            for (l, (u, v)) in ur.iter().zip(vr).enumerate() {
                tail[l] = u * v;
            }
            add(tail);
        }
    }
    acc.iter().sum()
}
