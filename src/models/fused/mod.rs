//! The model's row-wise operations — attention's softmax and LayerNorm — as single fused
//! operations with their own backward passes, on Burn's ndarray backend.
//!
//! Why: Burn 0.21 writes each of them as a chain of tensor operations (softmax five, LayerNorm
//! about ten), and its autodiff backend records every link, each a pass over memory forward and
//! one to three backward. On MiniLM at batch 128, attention's softmax cost 75 ms a layer and
//! LayerNorm 12 ms a call, together about a fifth of a forward+backward pass, for arithmetic
//! that reads each row once. Here each is one loop over the rows on rayon's threads forward and
//! one backward, recorded under autodiff as a single node of the graph (burn-autodiff's
//! [`Backward`](burn::backend::autodiff::ops::Backward)) whose state is what the backward pass
//! reads.
//!
//! The fused path runs on `NdArray<f32>` and `Autodiff<NdArray<f32>>` with f32 tensors in
//! standard layout; elsewhere (the CUDA backend, f64, a strided view) the same functions are
//! computed with Burn's operations, in the order the models used before. The tensors are
//! reached through their primitives by `Any` downcasting, without a copy. Kernels are compiled
//! for AVX-512 and AVX2 besides the SSE2 baseline and chosen at run time (`widest!`); they do
//! the same arithmetic in the same order, so every CPU gets the same bits.

pub mod attention;
pub mod layer_norm;
pub mod softmax;

use std::any::{Any, TypeId};
use std::mem::MaybeUninit;

use burn::backend::ndarray::NdArrayTensor;
use burn::backend::{Autodiff, NdArray};
use burn::prelude::{Backend, Tensor};
use burn::tensor::TensorPrimitive;
use burn::tensor::ops::FloatTensor;
use rayon::prelude::*;

// burn-ndarray's buffers, read and built as `geometry::fused` does.
use crate::geometry::fused::{f32_primitive as primitive, f32_slice};

/// The host backend whose buffers the kernels read.
type Host = NdArray<f32>;
/// The same under autodiff: the fused operations are recorded as one node each.
type Tracked = Autodiff<Host>;

/// Rows per rayon task: a few hundred rows (tens of kilobytes).
const ROWS_PER_TASK: usize = 256;

/// Where a fused operation runs for a backend `B`.
enum Path {
    /// On `Autodiff<NdArray<f32>>`: one node of the graph.
    Tracked,
    /// On burn-ndarray itself.
    Untracked,
}

impl Path {
    /// The fused path of backend `B`, if it has one.
    fn of<B: Backend>() -> Option<Self> {
        if TypeId::of::<B>() == TypeId::of::<Tracked>() {
            Some(Path::Tracked)
        } else if TypeId::of::<B::FloatTensorPrimitive>() == TypeId::of::<NdArrayTensor>() {
            Some(Path::Untracked)
        } else {
            None
        }
    }
}

/// The same tensor seen as one of backend `B2`, when `B2`'s float primitive is `B1`'s.
///
/// # Panics
/// If the primitives differ (callers check with [`Path::of`] first) or `x` is quantised.
fn cast<B1: Backend, B2: Backend, const D: usize>(x: Tensor<B1, D>) -> Tensor<B2, D> {
    let TensorPrimitive::Float(primitive) = x.into_primitive() else {
        panic!("a float tensor, not a quantised one");
    };
    let boxed: Box<dyn Any> = Box::new(primitive);
    let primitive = *boxed
        .downcast::<B2::FloatTensorPrimitive>()
        .unwrap_or_else(|_| panic!("the same float primitive on both backends"));
    Tensor::from_primitive(TensorPrimitive::Float(primitive))
}

/// The float primitive of a tensor (an `Arc` clone of its buffer).
fn prim<B: Backend, const D: usize>(x: &Tensor<B, D>) -> FloatTensor<B> {
    x.clone().into_primitive().tensor()
}

/// The shape of an f32 primitive (empty for any other dtype).
fn dims(t: &NdArrayTensor) -> Vec<usize> {
    match t {
        NdArrayTensor::F32(storage) => storage.view().shape().to_vec(),
        _ => Vec::new(),
    }
}

/// `rows × k` fresh elements, written a task of up to [`ROWS_PER_TASK`] whole rows at a time on
/// rayon's threads by `f(first row, the task's elements)`, which must write all of them.
fn by_rows(rows: usize, k: usize, f: impl Fn(usize, &mut [MaybeUninit<f32>]) + Sync) -> Vec<f32> {
    let len = rows * k;
    let mut out: Vec<f32> = Vec::with_capacity(len);
    out.spare_capacity_mut()[..len]
        .par_chunks_mut(ROWS_PER_TASK * k.max(1))
        .enumerate()
        .for_each(|(task, chunk)| f(task * ROWS_PER_TASK, chunk));
    // SAFETY: the chunks cover 0..len and each `f` writes its whole chunk (every kernel of this
    // module writes each element of its output rows).
    unsafe { out.set_len(len) };
    out
}

/// Defines `fn $name(args)` whose body is compiled three times — for AVX-512, for AVX2 and for
/// the SSE2 baseline — and run in the widest form the CPU has. The arithmetic and its order are
/// the same in all three (Rust does not contract a·b + c into an FMA), so are the results.
macro_rules! widest {
    ($(#[$meta:meta])* fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $body:block) => {
        $(#[$meta])*
        fn $name($($arg: $ty),*) {
            #[inline(always)]
            fn kernel($($arg: $ty),*) $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                fn avx512($($arg: $ty),*) {
                    kernel($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                fn avx2($($arg: $ty),*) {
                    kernel($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU has the target feature.
                    return unsafe { avx512($($arg),*) };
                }
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: as above.
                    return unsafe { avx2($($arg),*) };
                }
            }
            kernel($($arg),*)
        }
    };
}
pub(crate) use widest;

/// Sixteen lanes over `len` values `x(i)`: `fold` in runs of sixteen, lane by lane (so that the
/// loop vectorises), then the lanes combined in order — the same result at every vector width.
#[inline(always)]
fn lanes(x: impl Fn(usize) -> f32, len: usize, init: f32, fold: impl Fn(f32, f32) -> f32) -> f32 {
    let mut lanes = [init; 16];
    let full = len / 16 * 16;
    for start in (0..full).step_by(16) {
        for (l, lane) in lanes.iter_mut().enumerate() {
            *lane = fold(*lane, x(start + l));
        }
    }
    for (lane, i) in lanes.iter_mut().zip(full..len) {
        *lane = fold(*lane, x(i));
    }
    lanes.into_iter().fold(init, fold)
}

/// Σᵢ x(i) in f32 over sixteen lanes (rows here are hundreds of values, not millions).
#[inline(always)]
fn lane_sum(x: impl Fn(usize) -> f32, len: usize) -> f32 {
    lanes(x, len, 0.0, |a, b| a + b)
}

/// maxᵢ xᵢ; NaNs are skipped, as by `f32::max`.
#[inline(always)]
fn lane_max(x: &[f32]) -> f32 {
    lanes(|i| x[i], x.len(), f32::NEG_INFINITY, f32::max)
}
