//! Seeded random tangent vectors: the probes of the Hessian estimators, the directions of
//! average-case sharpness and of Auto-PGD's stationary start.
//!
//! Why not the backend's generator: Burn's `Backend::seed` sets one generator shared by every
//! thread of the process, so code that seeds it and then draws gets other vectors whenever
//! another thread (a parallel test, a second measurement) draws in between — a seed would not
//! name a result. [`Probes`] owns its generator instead: the entries are drawn on the
//! host from a [`StdRng`] and uploaded once per vector, which for MiniLM-L6's 22.6 M parameters
//! is about a tenth of a second beside the seconds of one Hessian-vector product.

use burn::prelude::{Backend, Tensor};
use burn::tensor::TensorData;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, StandardNormal};

use super::Tangent;

/// A seeded stream of random tangent vectors shaped like a given one: the same seed gives the
/// same vectors on every run, whatever else the process draws.
#[derive(Debug)]
pub struct Probes {
    rng: StdRng,
}

impl Probes {
    /// The stream of `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            rng: StdRng::seed_from_u64(seed),
        }
    }

    /// A Rademacher vector (independent ±1 entries) with `like`'s shapes, devices and dtypes:
    /// Hutchinson's and SLQ's probe, E[z zᵀ] = I with the least variance of zᵀHz among such
    /// distributions.
    pub fn rademacher<B: Backend>(&mut self, like: &Tangent<B>) -> Tangent<B> {
        self.draw(like, |rng, n| {
            let mut values = Vec::with_capacity(n);
            while values.len() < n {
                let bits = rng.random::<u64>();
                let take = (n - values.len()).min(64);
                values.extend((0..take).map(|i| if bits >> i & 1 == 1 { 1.0 } else { -1.0 }));
            }
            values
        })
    }

    /// A standard Gaussian vector (independent N(0, 1) entries) with `like`'s shapes, devices
    /// and dtypes. Sketches use it rather than [`rademacher`](Self::rademacher): a few ±1
    /// columns are linearly dependent with high probability in low dimension (six of them in
    /// ℝ⁶: about 63 %), Gaussian columns almost never.
    pub fn gaussian<B: Backend>(&mut self, like: &Tangent<B>) -> Tangent<B> {
        self.draw(like, |rng, n| {
            (0..n)
                .map(|_| StandardNormal.sample(rng))
                .collect::<Vec<f64>>()
        })
    }

    /// A vector with `like`'s shapes, devices and dtypes and entries from
    /// `entries(rng, count)`.
    fn draw<B: Backend>(
        &mut self,
        like: &Tangent<B>,
        mut entries: impl FnMut(&mut StdRng, usize) -> Vec<f64>,
    ) -> Tangent<B> {
        let parts = like
            .parts
            .iter()
            .map(|p| {
                let (dims, device, dtype) = (p.dims(), p.device(), p.dtype());
                let values = entries(&mut self.rng, dims.iter().product());
                Tensor::<B, 3>::from_data(TensorData::new(values, dims), &device).cast(dtype)
            })
            .collect();
        Tangent::new(parts)
    }
}
