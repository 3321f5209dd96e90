//! Gram matrices in one pass: Auto-PGD's update reads every norm and inner product it needs
//! from the Gram matrix of (ξ_k, ĝ, ξ_{k−1}) (`measures::next_iterate`), one read of the three
//! vectors, where forming each intermediate point and taking its norm reads and writes them
//! again. [`weighted_gram`] is that read for the f32 buffers of elementwise blocks, each entry
//! [`weighted_dot`] bit for bit; [`dot_f64_on_host`] is the f64 sum the GL(h) blocks' Gram
//! matrices take.

use burn::backend::ndarray::NdArrayTensor;
use burn::prelude::{Backend, Tensor};
use burn::tensor::{DType, TensorData};
use rayon::prelude::*;

use super::{CHUNK, HostF32, ndarray_primitive, weighted_dot};
use crate::models::fused::widest;

/// The weighted Gram matrix of one to three tensors of one shape, Σᵢ xₐᵢ x_bᵢ wᵢ for a ≤ b in
/// row order ((0, 0), (0, 1), …, (k−1, k−1)), as a one-element-per-pair f64 tensor: one pass on
/// the host that reads each operand once and writes nothing (see the module docs), else
/// [`weighted_dot`] pair by pair. Each entry is [`weighted_dot`]`(xₐ, x_b, w)` bit for bit.
///
/// Why: Auto-PGD's update needs ‖ξ_k + ηĝ‖ and the norm of its momentum point, both
/// quadratic forms in (ξ_k, ĝ, ξ_{k−1}); their Gram matrix gives them from one read of the
/// three vectors, where forming each point and taking its norm reads and writes them again.
///
/// # Panics
/// If `xs` is empty or longer than three, or the shapes differ (programming errors).
pub fn weighted_gram<B: Backend>(xs: &[&Tensor<B, 3>], w: Option<&Tensor<B, 3>>) -> Tensor<B, 1> {
    assert!(
        (1..=3).contains(&xs.len()),
        "a Gram matrix of one to three tensors"
    );
    if let Some(entries) = weighted_gram_on_host(xs, w) {
        let device = xs[0].device();
        let n = entries.len();
        return Tensor::from_data(TensorData::new(entries, [n]), (&device, DType::F64));
    }
    Tensor::cat(
        gram_pairs(xs.len())
            .into_iter()
            .map(|(a, b)| weighted_dot(xs[a], xs[b], w))
            .collect(),
        0,
    )
}

/// The pairs (a, b), a ≤ b < k, in row order: the entries of a k×k Gram matrix's upper
/// triangle as [`weighted_gram`] lists them.
pub fn gram_pairs(k: usize) -> Vec<(usize, usize)> {
    (0..k).flat_map(|a| (a..k).map(move |b| (a, b))).collect()
}

/// The entries of [`weighted_gram`] on the host, or `None` where a tensor is not an f32
/// ndarray buffer.
fn weighted_gram_on_host<B: Backend>(
    xs: &[&Tensor<B, 3>],
    w: Option<&Tensor<B, 3>>,
) -> Option<Vec<f64>> {
    let shape = xs[0].shape();
    for x in xs {
        assert_eq!(x.shape(), shape, "a Gram matrix of one shape");
    }
    if let Some(w) = w {
        assert_eq!(w.shape(), shape, "a weight of the vectors' shape");
    }
    let hosts: Vec<HostF32> = xs.iter().map(|x| HostF32::of(*x)).collect::<Option<_>>()?;
    let hw = match w {
        Some(w) => Some(HostF32::of(w)?),
        None => None,
    };
    let slices: Vec<&[f32]> = hosts.iter().map(HostF32::slice).collect();
    let sw = hw.as_ref().map(HostF32::slice);
    let n = slices[0].len();
    let partial = |start: usize, len: usize| -> Vec<f64> {
        let r = start..start + len;
        let x: Vec<&[f32]> = slices.iter().map(|s| &s[r.clone()]).collect();
        let w = sw.map(|sw| &sw[r]);
        match x.as_slice() {
            [a] => gram_f64([*a], w),
            [a, b] => gram_f64([*a, *b], w),
            [a, b, c] => gram_f64([*a, *b, *c], w),
            _ => unreachable!("one to three tensors"),
        }
    };
    Some(if n <= CHUNK {
        partial(0, n)
    } else {
        // Each chunk's entries, then every entry's chunks summed in chunk order, as
        // `weighted_dot_on_host` sums them.
        let parts: Vec<Vec<f64>> = (0..n.div_ceil(CHUNK))
            .into_par_iter()
            .map(|i| partial(i * CHUNK, CHUNK.min(n - i * CHUNK)))
            .collect();
        (0..parts[0].len())
            .map(|e| parts.iter().map(|p| p[e]).sum())
            .collect()
    })
}

/// [`dot_f64`](super::dot_f64) for every pair (a, b), a ≤ b, of K vectors in one pass: each term
/// (xₐ·w)·x_b in f32, the same eight interleaved f64 accumulators per pair, summed in the same
/// order, so each entry is `dot_f64(xₐ, x_b, w)` bit for bit.
fn gram_f64<const K: usize>(x: [&[f32]; K], w: Option<&[f32]>) -> Vec<f64> {
    let mut acc = [[0.0f64; GRAM_LANES]; 6];
    match w {
        Some(w) => gram_weighted(&x, w, &mut acc),
        None => gram_plain(&x, &mut acc),
    }
    acc[..K * (K + 1) / 2]
        .iter()
        .map(|a| a.iter().sum())
        .collect()
}

widest! {
    /// [`gram_lanes`] with weights, for one to three vectors, compiled for the widest vectors
    /// the CPU has: six pairs' 48 f64 accumulators fit AVX-512's registers, where SSE2
    /// spills them (the three-vector Gram took five times a weighted dot product).
    fn gram_weighted(x: &[&[f32]], w: &[f32], acc: &mut [[f64; GRAM_LANES]; 6]) {
        match *x {
            [a] => gram_lanes::<1, true>([a], w, acc),
            [a, b] => gram_lanes::<2, true>([a, b], w, acc),
            [a, b, c] => gram_lanes::<3, true>([a, b, c], w, acc),
            _ => unreachable!("one to three vectors"),
        }
    }
}

widest! {
    /// [`gram_lanes`] without weights (see [`gram_weighted`]).
    fn gram_plain(x: &[&[f32]], acc: &mut [[f64; GRAM_LANES]; 6]) {
        // The unweighted kernel never reads its weight argument.
        match *x {
            [a] => gram_lanes::<1, false>([a], a, acc),
            [a, b] => gram_lanes::<2, false>([a, b], a, acc),
            [a, b, c] => gram_lanes::<3, false>([a, b, c], a, acc),
            _ => unreachable!("one to three vectors"),
        }
    }
}

/// The f64 accumulators per pair of [`gram_f64`], as [`dot_f64`](super::dot_f64)'s.
const GRAM_LANES: usize = 8;

/// Adds the terms of every pair (a ≤ b, row order; at most six for K ≤ 3) to `out`, lane by
/// lane: (xₐ·w)·x_b when `W`, else xₐ·x_b, with a zero-padded tail block as [`dot_f64`](super::dot_f64) adds
/// it. xₐ·w is formed once per vector and reused for every b: the same f32 value.
#[inline(always)]
fn gram_lanes<const K: usize, const W: bool>(
    x: [&[f32]; K],
    w: &[f32],
    out: &mut [[f64; GRAM_LANES]; 6],
) {
    const L: usize = GRAM_LANES;
    // A local copy, so that the accumulators can live in registers across the loop.
    let mut acc = *out;
    let n = x[0].len();
    let full = n - n % L;
    let lanes = |v: &[f32], i: usize| -> [f32; L] { v[i..i + L].try_into().expect("L lanes") };
    for i in (0..full).step_by(L) {
        gram_block::<K, W>(
            &mut acc,
            std::array::from_fn(|k| lanes(x[k], i)),
            if W { lanes(w, i) } else { [0.0; L] },
        );
    }
    // The tail as `dot_f64` adds it: one more block, zeros past the end (even when empty).
    let padded = |v: &[f32]| -> [f32; L] {
        let mut out = [0.0; L];
        out[..n - full].copy_from_slice(&v[full..]);
        out
    };
    gram_block::<K, W>(
        &mut acc,
        std::array::from_fn(|k| padded(x[k])),
        if W { padded(w) } else { [0.0; L] },
    );
    *out = acc;
}

/// One block of [`gram_lanes`]: the terms of every pair, added lane by lane.
#[inline(always)]
fn gram_block<const K: usize, const W: bool>(
    acc: &mut [[f64; GRAM_LANES]; 6],
    xs: [[f32; GRAM_LANES]; K],
    ws: [f32; GRAM_LANES],
) {
    let mut p = 0;
    for a in 0..K {
        let mut xa = xs[a];
        if W {
            for (x, w) in xa.iter_mut().zip(ws) {
                *x *= w;
            }
        }
        for xb in &xs[a..] {
            for l in 0..GRAM_LANES {
                acc[p][l] += f64::from(xa[l] * xb[l]);
            }
            p += 1;
        }
    }
}

/// Σᵢ aᵢ bᵢ of two f64 tensors of one shape on the host, in one pass on the calling thread
/// (eight interleaved accumulators, then their sum in order), or `None` unless both are f64
/// ndarray buffers in standard layout. For the GL(h) blocks' small f64 tensors
/// (`[heads, n, h]`, 10⁵ entries), where Burn's `(a ⊙ b).sum()` writes the product first and
/// takes two operations: the blocks already run side by side, so one thread per call.
pub fn dot_f64_on_host<B: Backend>(a: &Tensor<B, 3>, b: &Tensor<B, 3>) -> Option<f64> {
    assert_eq!(a.shape(), b.shape(), "a dot product of one shape");
    if a.dtype() != DType::F64 || b.dtype() != DType::F64 {
        return None;
    }
    let (ha, hb) = (ndarray_primitive(a)?, ndarray_primitive(b)?);
    let (NdArrayTensor::F64(sa), NdArrayTensor::F64(sb)) = (&ha, &hb) else {
        return None;
    };
    let (va, vb) = (sa.view(), sb.view());
    let (x, y) = (va.to_slice()?, vb.to_slice()?);
    Some(dot_f64_lanes(x, y))
}

widest! {
    /// Σ xᵢ yᵢ over eight interleaved f64 accumulators, summed in order at the end, into
    /// `out` (the same bits at every vector width).
    fn dot_f64_lanes_into(x: &[f64], y: &[f64], out: &mut f64) {
        const L: usize = 8;
        let mut acc = [0.0f64; L];
        let (xc, yc) = (x.chunks_exact(L), y.chunks_exact(L));
        let (xr, yr) = (xc.remainder(), yc.remainder());
        for (x, y) in xc.zip(yc) {
            for l in 0..L {
                acc[l] += x[l] * y[l];
            }
        }
        for (l, (x, y)) in xr.iter().zip(yr).enumerate() {
            acc[l] += x * y;
        }
        *out = acc.iter().sum();
    }
}

/// `dot_f64_lanes_into` as a value.
pub fn dot_f64_lanes(x: &[f64], y: &[f64]) -> f64 {
    let mut out = 0.0;
    dot_f64_lanes_into(x, y, &mut out);
    out
}
