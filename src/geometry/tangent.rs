//! Tangent vectors of the whole network, in block coordinates.

use burn::prelude::{Backend, Tensor};

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
        self.zip(other, |a, b| a + b)
    }

    /// self − other.
    pub fn sub(&self, other: &Self) -> Self {
        self.zip(other, |a, b| a - b)
    }

    /// self + a · x.
    pub fn axpy(&self, a: f64, x: &Self) -> Self {
        self.zip(x, |s, x| s + x.mul_scalar(a))
    }

    /// a · self.
    pub fn scale(&self, a: f64) -> Self {
        self.map(|p| p.mul_scalar(a))
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

    fn zip(&self, other: &Self, f: impl Fn(Tensor<B, 3>, Tensor<B, 3>) -> Tensor<B, 3>) -> Self {
        Self::new(
            self.parts
                .iter()
                .zip(&other.parts)
                .map(|(a, b)| f(a.clone(), b.clone()))
                .collect(),
        )
    }
}
