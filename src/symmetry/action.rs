//! Acting with a group element on a model's parameters.
//!
//! These are the transformations that leave the loss unchanged: per head
//! (G, H) ↦ (G A⁻¹, H Aᵀ) with A ∈ GL(h), and (u, v) ↦ (a ⊙ u, v ⊘ a) with a > 0. They are used by
//! the invariance tests and the invariance experiment (paper §6.2), and work on block
//! coordinates ([`BlockLayout::gather`]) so that acting on every head is one batched matmul.

use burn::prelude::{Backend, Tensor};
use burn::tensor::DType;
use nalgebra::DMatrix;

use super::error::Error;
use super::layout::{BlockKind, BlockLayout};
use crate::host;

/// An element of a block's symmetry group.
#[derive(Debug, Clone, PartialEq)]
pub enum GroupElement {
    /// One A ∈ GL(h) per head, acting as (G, H) ↦ (G A⁻¹, H Aᵀ).
    Gl(Vec<DMatrix<f64>>),
    /// One a > 0 per coordinate, acting as (u, v) ↦ (a ⊙ u, v ⊘ a).
    Rescale(Vec<f64>),
}

/// Applies `element` to block `block` of `parts` (block coordinates of a point), returning the
/// transformed parts. Other blocks are untouched.
pub fn act<B: Backend>(
    layout: &BlockLayout,
    mut parts: Vec<Tensor<B, 3>>,
    block: usize,
    element: &GroupElement,
) -> Result<Vec<Tensor<B, 3>>, Error> {
    let spec = &layout.blocks()[block];
    let range = layout.parts_of(block);
    let bad = |reason: String| Error::BadAction {
        block: spec.name.clone(),
        reason,
    };
    let options = (&parts[range.start].device(), parts[range.start].dtype());
    match (spec.kind, element) {
        (
            BlockKind::GlPair {
                heads, head_dim, ..
            },
            GroupElement::Gl(per_head),
        ) => {
            if per_head.len() != heads || per_head.iter().any(|a| a.shape() != (head_dim, head_dim))
            {
                return Err(bad(format!(
                    "expected {heads} matrices of size {head_dim}×{head_dim}"
                )));
            }
            let mut inverses = Vec::with_capacity(heads);
            for (i, a) in per_head.iter().enumerate() {
                let inv = a
                    .clone()
                    .try_inverse()
                    .ok_or_else(|| bad(format!("the matrix for head {i} is singular")))?;
                inverses.push(inv);
            }
            let transposes: Vec<_> = per_head.iter().map(|a| a.transpose()).collect();
            // The products in f64, rounded once to the parts' dtype: with A⁻¹ rounded to f32
            // and the product accumulated in f32, (G A⁻¹)(A Hᵀ) = G Hᵀ picks up extra errors
            // of order cond(A)·ε_f32 — for a Gaussian 32 × 32 A (cond in the thousands) enough
            // to move MiniLM's loss by 1e-3.
            let wide = (options.0, DType::F64);
            let a_inv = host::upload_batch::<B>(&inverses, wide);
            let a_t = host::upload_batch::<B>(&transposes, wide);
            let (g, h) = (range.start, range.start + 1);
            let dtype = options.1;
            parts[g] = parts[g].clone().cast(DType::F64).matmul(a_inv).cast(dtype);
            parts[h] = parts[h].clone().cast(DType::F64).matmul(a_t).cast(dtype);
        }
        (BlockKind::Rescale { len }, GroupElement::Rescale(a)) => {
            if a.len() != len || a.iter().any(|&x| !(x > 0.0 && x.is_finite())) {
                return Err(bad(format!("expected {len} positive finite factors")));
            }
            let a = host::upload::<B, 3>(a, [1, 1, len], options);
            let (u, v) = (range.start, range.start + 1);
            parts[u] = parts[u].clone() * a.clone();
            parts[v] = parts[v].clone() / a;
        }
        (kind, _) => {
            return Err(bad(format!(
                "this group element does not act on a block of kind {kind:?}"
            )));
        }
    }
    Ok(parts)
}
