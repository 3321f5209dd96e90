//! Diagonal linear networks: y = xᵀ(u ⊙ v).
//!
//! The simplest model with a continuous symmetry: (u, v) ↦ (a ⊙ u, v ⊘ a) leaves β = u ⊙ v and
//! hence the function unchanged, so the network declares one GL(1) rescaling block. Trained by
//! gradient descent from a small initialisation, it is biased towards sparse β (Woodworth et
//! al. 2020), which makes the initialisation scale a knob on generalisation — the synthetic
//! study of the paper (see [`crate::studies::diagonal`]).

use burn::module::{Module, Param};
use burn::prelude::{Backend, Tensor};

use super::loss::squared_error;
use crate::measures::Objective;
use crate::symmetry::{Symmetric, Symmetry};

/// A diagonal linear network with parameters u, v ∈ R^d.
#[derive(Module, Debug)]
pub struct DiagonalNet<B: Backend> {
    /// First factor.
    pub u: Param<Tensor<B, 1>>,
    /// Second factor.
    pub v: Param<Tensor<B, 1>>,
}

/// A batch of regression data: inputs `[n, d]` and targets `[n]`.
#[derive(Debug, Clone)]
pub struct RegressionBatch<B: Backend> {
    /// Inputs.
    pub x: Tensor<B, 2>,
    /// Targets.
    pub y: Tensor<B, 1>,
}

impl<B: Backend> DiagonalNet<B> {
    /// A network with the given factors.
    pub fn new(u: Tensor<B, 1>, v: Tensor<B, 1>) -> Self {
        Self {
            u: Param::from_tensor(u),
            v: Param::from_tensor(v),
        }
    }

    /// β = u ⊙ v.
    pub fn beta(&self) -> Tensor<B, 1> {
        self.u.val() * self.v.val()
    }

    /// Predictions x β for inputs `[n, d]`.
    pub fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 1> {
        let d = self.u.dims()[0];
        let n = x.dims()[0];
        x.matmul(self.beta().reshape([d, 1])).reshape([n])
    }
}

impl<B: Backend> Objective<B> for DiagonalNet<B> {
    type Batch = RegressionBatch<B>;

    /// (1/n) Σ (xᵢᵀβ − yᵢ)².
    fn loss(&self, batch: &Self::Batch) -> Tensor<B, 1> {
        squared_error(self.forward(batch.x.clone()), batch.y.clone())
    }
}

impl<B: Backend> Symmetric for DiagonalNet<B> {
    fn symmetries(&self) -> Vec<Symmetry> {
        vec![Symmetry::Rescale {
            name: "u*v".into(),
            u: "u".into(),
            v: "v".into(),
        }]
    }
}
