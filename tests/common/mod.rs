//! Small models with closed-form sharpness, shared by the integration tests.
#![allow(dead_code)]

pub mod assets;
pub mod bert;
pub mod optim;

use burn::backend::{Autodiff, NdArray};
use burn::module::{Module, Param};
use burn::prelude::{Backend, Tensor, TensorData};
use burn::tensor::TensorCreationOptions;
use burn::tensor::activation::softplus;
use geosharp::measures::Objective;
use geosharp::symmetry::{Symmetric, Symmetry};

/// f64 CPU backend with autodiff: the "host path" precision of the tests.
pub type B64 = Autodiff<NdArray<f64>>;
/// f32 CPU backend with autodiff: the "device path" precision.
pub type B32 = Autodiff<NdArray<f32>>;

/// Deterministic f32 values of both signs, none zero (they can be divisors), spread over
/// [−10, 10] without a pattern a SIMD lane or a chunk boundary could hide.
pub fn entries(n: usize, seed: u32) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let k = (i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) % 20_011;
            (k as f32 - 10_005.5) / 1_000.0
        })
        .collect()
}

pub fn tensor1<B: Backend>(values: &[f64]) -> Tensor<B, 1> {
    Tensor::from_data(
        TensorData::new(values.to_vec(), [values.len()]),
        TensorCreationOptions::float(),
    )
}

pub fn tensor2<B: Backend>(values: &[f64], rows: usize) -> Tensor<B, 2> {
    let cols = values.len() / rows;
    Tensor::from_data(
        TensorData::new(values.to_vec(), [rows, cols]),
        TensorCreationOptions::float(),
    )
}

/// Logistic regression without bias: L = log(1 + exp(−y wᵀx)), mean over rows.
#[derive(Module, Debug)]
pub struct Logistic<B: Backend> {
    pub w: Param<Tensor<B, 1>>,
}

#[derive(Debug, Clone)]
pub struct LabelledPoints<B: Backend> {
    pub x: Tensor<B, 2>,
    pub y: Tensor<B, 1>,
}

impl<B: Backend> Objective<B> for Logistic<B> {
    type Batch = LabelledPoints<B>;
    fn loss(&self, batch: &Self::Batch) -> Tensor<B, 1> {
        let [n, d] = batch.x.dims();
        let margin = batch
            .x
            .clone()
            .matmul(self.w.val().reshape([d, 1]))
            .reshape([n])
            * batch.y.clone();
        softplus(-margin, 1.0).mean()
    }
}

impl<B: Backend> Symmetric for Logistic<B> {
    fn symmetries(&self) -> Vec<Symmetry> {
        Vec::new()
    }
}

/// L(δ) = ½ δᵀ diag(c) δ, a quadratic with its minimum at δ = 0.
#[derive(Module, Debug)]
pub struct Quadratic<B: Backend> {
    pub delta: Param<Tensor<B, 1>>,
    pub curvature: Tensor<B, 1>,
}

impl<B: Backend> Objective<B> for Quadratic<B> {
    type Batch = ();
    fn loss(&self, _: &()) -> Tensor<B, 1> {
        (self.delta.val().square() * self.curvature.clone())
            .sum()
            .mul_scalar(0.5)
    }
}

impl<B: Backend> Symmetric for Quadratic<B> {
    fn symmetries(&self) -> Vec<Symmetry> {
        Vec::new()
    }
}
