//! LayerNorm over the last axis as one operation with its own backward pass.
//!
//! Per row x of d values, with μ = Σⱼ xⱼ / d, the biased variance σ² = Σⱼ (xⱼ − μ)² / d (two
//! passes, not E(x²) − μ², which cancels) and r = 1/√(σ² + ε):
//!
//! x̂ = (x − μ) r,  y = γ ⊙ x̂ + β.
//!
//! Backward, with g = γ ⊙ ∂ℓ/∂y:
//!
//! ∂ℓ/∂x = r (g − mean(g) − x̂ · mean(g ⊙ x̂)),  ∂ℓ/∂γ = Σ_rows ∂ℓ/∂y ⊙ x̂,  ∂ℓ/∂β = Σ_rows ∂ℓ/∂y.
//!
//! Burn's LayerNorm is about ten recorded operations (two means, a subtraction, a square, a
//! square root, a division, the affine map), each a pass forward and one to three backward.
//! Here the forward pass is one loop over the rows and the backward pass one more, which
//! recomputes μ and r from the stored input rather than keeping x̂ (the same arithmetic, so the
//! same x̂). The column sums ∂ℓ/∂γ and ∂ℓ/∂β are summed in f32 within a task of rows and the
//! tasks' sums added in order in f64: the result does not depend on the number of threads.
//! Burn divides by √(σ² + ε) where this multiplies by r, so the two agree to a few ulps, not
//! bit for bit.

use std::mem::MaybeUninit;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::ndarray::NdArrayTensor;
use burn::prelude::{Backend, Tensor};
use burn::tensor::ops::FloatTensor;
use burn::tensor::{DType, TensorPrimitive};
use rayon::prelude::*;

use super::{
    Host, Path, ROWS_PER_TASK, Tracked, by_rows, cast, dims, f32_slice, lane_sum, prim, primitive,
    widest,
};

/// LayerNorm of `x` over its last axis (of size d), with scale `gamma` and shift `beta` (both
/// `[d]`) and ε = `epsilon` (see the module docs).
pub fn layer_norm<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    gamma: Tensor<B, 1>,
    beta: Option<Tensor<B, 1>>,
    epsilon: f64,
) -> Tensor<B, D> {
    match (fused_path(&x, &gamma, beta.as_ref()), beta) {
        (Some(path), Some(beta)) => {
            let shape = x.dims();
            let d = shape[D - 1];
            let rows = x.shape().num_elements() / d.max(1);
            let x = x.reshape([rows, d]);
            let y = match path {
                Path::Tracked => cast::<Tracked, B, 2>(tracked(
                    cast::<B, Tracked, 2>(x),
                    cast::<B, Tracked, 1>(gamma),
                    cast::<B, Tracked, 1>(beta),
                    epsilon,
                )),
                Path::Untracked => cast::<Host, B, 2>(untracked(
                    cast::<B, Host, 2>(x),
                    cast::<B, Host, 1>(gamma),
                    cast::<B, Host, 1>(beta),
                    epsilon,
                )),
            };
            y.reshape(shape)
        }
        (_, beta) => by_ops(x, gamma, beta, epsilon),
    }
}

/// Whether [`layer_norm`] of these operands is the fused operation (f32 on the ndarray backend,
/// bare or under autodiff, with a shift), rather than Burn's operations. A buffer in a
/// non-standard layout still falls back inside.
pub fn fuses<B: Backend, const D: usize>(
    x: &Tensor<B, D>,
    gamma: &Tensor<B, 1>,
    beta: Option<&Tensor<B, 1>>,
) -> bool {
    fused_path(x, gamma, beta).is_some()
}

/// The fused path for these operands, if any (see [`fuses`]).
fn fused_path<B: Backend, const D: usize>(
    x: &Tensor<B, D>,
    gamma: &Tensor<B, 1>,
    beta: Option<&Tensor<B, 1>>,
) -> Option<Path> {
    let d = x.dims()[D - 1];
    let beta = beta?;
    let fits = [x.dtype(), gamma.dtype(), beta.dtype()] == [DType::F32; 3]
        && gamma.dims() == [d]
        && beta.dims() == [d]
        && d > 0;
    if fits { Path::of::<B>() } else { None }
}

/// [`layer_norm`] with Burn's operations (`ModuleOps::layer_norm`, what `burn::nn::LayerNorm`
/// computes), on any backend.
pub fn by_ops<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    gamma: Tensor<B, 1>,
    beta: Option<Tensor<B, 1>>,
    epsilon: f64,
) -> Tensor<B, D> {
    Tensor::from_primitive(TensorPrimitive::Float(B::layer_norm(
        x.into_primitive().tensor(),
        gamma.into_primitive().tensor(),
        beta.map(|b| b.into_primitive().tensor()),
        epsilon,
    )))
}

/// The fused forward pass on the host, or Burn's operations for a buffer in another layout.
fn untracked(
    x: Tensor<Host, 2>,
    gamma: Tensor<Host, 1>,
    beta: Tensor<Host, 1>,
    epsilon: f64,
) -> Tensor<Host, 2> {
    let (xp, gp, bp) = (prim(&x), prim(&gamma), prim(&beta));
    match forward_on_host(&xp, &gp, &bp, epsilon as f32) {
        Some(y) => Tensor::from_primitive(TensorPrimitive::Float(y)),
        None => by_ops(x, gamma, Some(beta), epsilon),
    }
}

/// The fused operation as one node of the autodiff graph, with parents x, γ and β.
fn tracked(
    x: Tensor<Tracked, 2>,
    gamma: Tensor<Tracked, 1>,
    beta: Tensor<Tracked, 1>,
    epsilon: f64,
) -> Tensor<Tracked, 2> {
    let (xp, gp, bp): (FloatTensor<Tracked>, _, _) = (prim(&x), prim(&gamma), prim(&beta));
    let eps = epsilon as f32;
    let Some(y) = forward_on_host(&xp.primitive, &gp.primitive, &bp.primitive, eps) else {
        return by_ops(x, gamma, Some(beta), epsilon);
    };
    let nodes = [xp.node.clone(), gp.node.clone(), bp.node.clone()];
    let output = match LayerNormBackward
        .prepare::<NoCheckpointing>(nodes)
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish((xp.primitive, gp.primitive, eps), y),
        OpsKind::UnTracked(prep) => prep.finish(y),
    };
    Tensor::from_primitive(TensorPrimitive::Float(output))
}

/// The backward step of [`tracked`]; its state is the input x `[rows, d]`, γ and ε.
#[derive(Debug)]
struct LayerNormBackward;

impl Backward<Host, 3> for LayerNormBackward {
    type State = (NdArrayTensor, NdArrayTensor, f32);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (x, gamma, eps) = ops.state;
        let dy = grads.consume::<Host>(&ops.node);
        let (dx, dgamma, dbeta) = backward_on_host(&x, &gamma, &dy, eps)
            .unwrap_or_else(|| backward_by_ops(x, gamma, dy, eps));
        let [px, pg, pb] = ops.parents;
        for (parent, grad) in [(px, dx), (pg, dgamma), (pb, dbeta)] {
            if let Some(node) = parent {
                grads.register::<Host>(node.id, grad);
            }
        }
    }
}

/// The gradients with Burn's operations on the host (when the incoming gradient is strided).
fn backward_by_ops(
    x: NdArrayTensor,
    gamma: NdArrayTensor,
    dy: NdArrayTensor,
    eps: f32,
) -> (NdArrayTensor, NdArrayTensor, NdArrayTensor) {
    let x = Tensor::<Host, 2>::from_primitive(TensorPrimitive::Float(x));
    let gamma = Tensor::<Host, 1>::from_primitive(TensorPrimitive::Float(gamma));
    let dy = Tensor::<Host, 2>::from_primitive(TensorPrimitive::Float(dy));
    let d = gamma.dims()[0];
    let centered = x.clone() - x.mean_dim(1);
    let r = (centered.clone().square().mean_dim(1) + eps as f64)
        .sqrt()
        .recip();
    let xhat = centered * r.clone();
    let g = dy.clone() * gamma.reshape([1, d]);
    let a = g.clone().mean_dim(1);
    let b = (g.clone() * xhat.clone()).mean_dim(1);
    let dx = (g - a - xhat.clone() * b) * r;
    let dgamma = (dy.clone() * xhat).sum_dim(0).reshape([d]);
    let dbeta = dy.sum_dim(0).reshape([d]);
    (
        dx.into_primitive().tensor(),
        dgamma.into_primitive().tensor(),
        dbeta.into_primitive().tensor(),
    )
}

/// y = γ ⊙ x̂ + β on the host, or `None` unless all three are standard f32 buffers.
fn forward_on_host(
    x: &NdArrayTensor,
    gamma: &NdArrayTensor,
    beta: &NdArrayTensor,
    eps: f32,
) -> Option<NdArrayTensor> {
    let shape = dims(x);
    let (xs, gs, bs) = (f32_slice(x)?, f32_slice(gamma)?, f32_slice(beta)?);
    let d = gs.len();
    if d == 0 || bs.len() != d || shape.last() != Some(&d) {
        return None;
    }
    let y = by_rows(xs.len() / d, d, |first, out| {
        forward_rows(&xs[first * d..][..out.len()], gs, bs, eps, out)
    });
    primitive(y, &shape)
}

/// (∂ℓ/∂x, ∂ℓ/∂γ, ∂ℓ/∂β) on the host, or `None` unless all are standard f32 buffers.
fn backward_on_host(
    x: &NdArrayTensor,
    gamma: &NdArrayTensor,
    dy: &NdArrayTensor,
    eps: f32,
) -> Option<(NdArrayTensor, NdArrayTensor, NdArrayTensor)> {
    let shape = dims(x);
    if dims(dy) != shape {
        return None;
    }
    let (xs, gs, dys) = (f32_slice(x)?, f32_slice(gamma)?, f32_slice(dy)?);
    let d = gs.len();
    if d == 0 || shape.last() != Some(&d) {
        return None;
    }
    let len = xs.len();
    let mut dx: Vec<f32> = Vec::with_capacity(len);
    // Each task's column sums (∂ℓ/∂γ, ∂ℓ/∂β) over its rows, in task order.
    let partial: Vec<(Vec<f32>, Vec<f32>)> = dx.spare_capacity_mut()[..len]
        .par_chunks_mut(ROWS_PER_TASK * d)
        .enumerate()
        .map(|(task, out)| {
            let range = task * ROWS_PER_TASK * d..task * ROWS_PER_TASK * d + out.len();
            let (mut dgamma, mut dbeta) = (vec![0.0f32; d], vec![0.0f32; d]);
            backward_rows(
                &xs[range.clone()],
                &dys[range],
                gs,
                eps,
                out,
                &mut dgamma,
                &mut dbeta,
            );
            (dgamma, dbeta)
        })
        .collect();
    // SAFETY: the chunks cover 0..len and `backward_rows` writes every element of its chunk.
    unsafe { dx.set_len(len) };
    // The tasks' column sums, added in task order in f64.
    let (mut dgamma, mut dbeta) = (vec![0.0f64; d], vec![0.0f64; d]);
    for (task_dgamma, task_dbeta) in &partial {
        for j in 0..d {
            dgamma[j] += task_dgamma[j] as f64;
            dbeta[j] += task_dbeta[j] as f64;
        }
    }
    let to_f32 = |sums: Vec<f64>| sums.into_iter().map(|s| s as f32).collect::<Vec<f32>>();
    Some((
        primitive(dx, &shape)?,
        primitive(to_f32(dgamma), &[d])?,
        primitive(to_f32(dbeta), &[d])?,
    ))
}

/// (μ, r) of one row: its mean and 1/√(σ² + ε) (see the module docs).
#[inline(always)]
fn moments(x: &[f32], eps: f32) -> (f32, f32) {
    let d = x.len() as f32;
    let mean = lane_sum(|j| x[j], x.len()) / d;
    let variance = lane_sum(
        |j| {
            let c = x[j] - mean;
            c * c
        },
        x.len(),
    ) / d;
    // σ² + ε > 0 for ε > 0: r is finite (ε = 10⁻¹² for BERT, 10⁻⁵ for the ViT).
    (mean, 1.0 / (variance + eps).sqrt())
}

widest! {
    /// The forward pass over whole rows of d = `gamma.len()` values.
    fn forward_rows(x: &[f32], gamma: &[f32], beta: &[f32], eps: f32, out: &mut [MaybeUninit<f32>]) {
        let d = gamma.len();
        for (x, out) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
            let (mean, r) = moments(x, eps);
            for (((o, &x), &g), &b) in out.iter_mut().zip(x).zip(gamma).zip(beta) {
                o.write((x - mean) * r * g + b);
            }
        }
    }
}

widest! {
    /// The backward pass over whole rows: ∂ℓ/∂x into `out`, and each row's ∂ℓ/∂y ⊙ x̂ and
    /// ∂ℓ/∂y added into `dgamma` and `dbeta`.
    fn backward_rows(
        x: &[f32],
        dy: &[f32],
        gamma: &[f32],
        eps: f32,
        out: &mut [MaybeUninit<f32>],
        dgamma: &mut [f32],
        dbeta: &mut [f32],
    ) {
        let d = gamma.len();
        let rows = x.chunks_exact(d).zip(dy.chunks_exact(d)).zip(out.chunks_exact_mut(d));
        for ((x, dy), out) in rows {
            let (mean, r) = moments(x, eps);
            let xhat = |j: usize| (x[j] - mean) * r;
            let a = lane_sum(|j| dy[j] * gamma[j], d) / d as f32;
            let b = lane_sum(|j| dy[j] * gamma[j] * xhat(j), d) / d as f32;
            for (j, o) in out.iter_mut().enumerate() {
                o.write(r * (dy[j] * gamma[j] - a - xhat(j) * b));
            }
            for j in 0..d {
                dgamma[j] += dy[j] * xhat(j);
                dbeta[j] += dy[j];
            }
        }
    }
}
