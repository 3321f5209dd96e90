//! Tangent vectors of the whole network, in block coordinates.

use burn::prelude::{Backend, Tensor};

use super::fused;

/// A tangent vector: one rank-3 tensor per part, in [`BlockLayout`](crate::symmetry::BlockLayout)
/// order. Points in block coordinates are plain `Vec<Tensor<B, 3>>` of the same shapes.
///
/// The vector operations are those the solvers need (Auto-PGD, SAM): sums, scalings by a host
/// or a device scalar, and autodiff bookkeeping. None of them reads anything back to the host.
#[derive(Debug, Clone)]
pub struct Tangent<B: Backend> {
    /// The parts.
    pub parts: Vec<Tensor<B, 3>>,
}

impl<B: Backend> Tangent<B> {
    /// Wraps parts.
    pub fn new(parts: Vec<Tensor<B, 3>>) -> Self {
        Self { parts }
    }

    /// The zero vector shaped like `parts`.
    pub fn zeros_like(parts: &[Tensor<B, 3>]) -> Self {
        Self::new(parts.iter().map(Tensor::zeros_like).collect())
    }

    /// self + other.
    pub fn add(&self, other: &Self) -> Self {
        Self::combination(&[(1.0, self), (1.0, other)])
    }

    /// self − other.
    pub fn sub(&self, other: &Self) -> Self {
        Self::combination(&[(1.0, self), (-1.0, other)])
    }

    /// self + a · x.
    pub fn axpy(&self, a: f64, x: &Self) -> Self {
        Self::combination(&[(1.0, self), (a, x)])
    }

    /// a · self.
    pub fn scale(&self, a: f64) -> Self {
        Self::combination(&[(a, self)])
    }

    /// Σₖ cₖ xₖ over one to three vectors, part by part in one pass each where the device is
    /// the host ([`fused::combination`]).
    ///
    /// # Panics
    /// If `terms` is empty or longer than three, or the vectors' parts differ in number or
    /// shape (programming errors).
    pub fn combination(terms: &[(f64, &Self)]) -> Self {
        let n = terms[0].1.parts.len();
        assert!(
            terms.iter().all(|(_, x)| x.parts.len() == n),
            "tangent vectors of one layout"
        );
        Self::new(
            (0..n)
                .map(|i| {
                    let parts: Vec<_> = terms.iter().map(|(c, x)| (*c, &x.parts[i])).collect();
                    fused::combination(&parts)
                })
                .collect(),
        )
    }

    /// s · self for a one-element device tensor s of any float dtype (no host round trip).
    pub fn scale_by(&self, s: &Tensor<B, 1>) -> Self {
        let s = s.clone().reshape([1, 1, 1]);
        self.map(|p| {
            let dtype = p.dtype();
            p * s.clone().cast(dtype)
        })
    }

    /// Detached copy (no autodiff history).
    pub fn detach(&self) -> Self {
        self.map(Tensor::detach)
    }

    /// Marks every part as an autodiff leaf.
    pub fn require_grad(&self) -> Self {
        self.map(|p| p.detach().require_grad())
    }

    /// Applies `f` to every part.
    pub fn map(&self, f: impl Fn(Tensor<B, 3>) -> Tensor<B, 3>) -> Self {
        Self::new(self.parts.iter().cloned().map(f).collect())
    }
}
