//! Stochastic Lanczos quadrature (Ubaru, Chen & Saad 2017; Ghorbani, Krishnan & Xiao 2019):
//! the spectral density of H and tr f(H) for any f.
//!
//! For a unit start vector q = z/‖z‖, m Lanczos steps give nodes θⱼ and weights τⱼ² with
//! qᵀ f(H) q ≈ Σⱼ τⱼ² f(θⱼ) (Gauss quadrature, exact for polynomials of degree < 2m). With
//! Rademacher z, ‖z‖² = D and E[zᵀ f(H) z] = tr f(H), so
//!
//! $$ \operatorname{tr} f(H) \approx \frac{D}{n_v} \sum_{l=1}^{n_v} \sum_j \tau_{lj}^2 f(\theta_{lj}), $$
//!
//! and the density φ(t) = (1/D) Σᵢ δ(t − λᵢ) is approximated by (1/n_v) Σ_l Σ_j τ²_{lj}
//! δ(t − θ_{lj}), smoothed by a Gaussian kernel for plotting.

use burn::prelude::Backend;

use super::error::{Error, check_count};
use super::lanczos::lanczos;
use super::operator::LinearOperator;
use super::trace::{Estimate, mean_se};
use crate::geometry::Probes;

/// Settings of SLQ; the defaults are the reference settings of Rényi sharpness.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Slq {
    /// Lanczos steps per probe. Default 15.
    pub steps: usize,
    /// Rademacher probes. Default 100.
    pub probes: usize,
    /// Seed of the probes.
    pub seed: u64,
}

impl Default for Slq {
    fn default() -> Self {
        Self {
            steps: 15,
            probes: 100,
            seed: 0,
        }
    }
}

/// The quadrature of an SLQ run: per probe, nodes and weights (each probe's weights sum to 1).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SpectralDensity {
    /// D, the dimension of the space.
    pub dim: usize,
    /// θ per probe.
    pub nodes: Vec<Vec<f64>>,
    /// τ² per probe.
    pub weights: Vec<Vec<f64>>,
}

/// Runs SLQ on `op`.
pub fn slq<B: Backend, O: LinearOperator<B> + ?Sized>(
    op: &O,
    config: &Slq,
) -> Result<SpectralDensity, Error> {
    check_count("SLQ probes", config.probes, 1)?;
    check_count("Lanczos steps", config.steps, 1)?;
    let mut probes = Probes::new(config.seed);
    let (mut nodes, mut weights) = (Vec::new(), Vec::new());
    for _ in 0..config.probes {
        let ritz = lanczos(op, &op.rademacher(&mut probes), config.steps)?.ritz();
        nodes.push(ritz.values);
        weights.push(ritz.weights);
    }
    Ok(SpectralDensity {
        dim: op.dim(),
        nodes,
        weights,
    })
}

impl SpectralDensity {
    /// The per-probe estimates D Σⱼ τⱼ² f(θⱼ) of tr f(H).
    pub fn trace_samples(&self, f: impl Fn(f64) -> f64) -> Vec<f64> {
        self.nodes
            .iter()
            .zip(&self.weights)
            .map(|(t, w)| self.dim as f64 * t.iter().zip(w).map(|(t, w)| w * f(*t)).sum::<f64>())
            .collect()
    }

    /// tr f(H) with its standard error over probes.
    pub fn trace(&self, f: impl Fn(f64) -> f64) -> Estimate {
        let (value, std_error) = mean_se(&self.trace_samples(f));
        Estimate {
            value,
            std_error,
            products: 0,
        }
    }

    /// The density smoothed by a Gaussian of width `sigma`, at `grid` (integrates to ≈ 1).
    pub fn smoothed(&self, grid: &[f64], sigma: f64) -> Vec<f64> {
        let n = self.nodes.len() as f64;
        let c = 1.0 / (sigma * (2.0 * std::f64::consts::PI).sqrt() * n);
        grid.iter()
            .map(|&x| {
                c * self
                    .nodes
                    .iter()
                    .zip(&self.weights)
                    .flat_map(|(t, w)| t.iter().zip(w))
                    .map(|(t, w)| w * (-0.5 * ((x - t) / sigma).powi(2)).exp())
                    .sum::<f64>()
            })
            .collect()
    }

    /// The smallest and largest node over all probes.
    pub fn range(&self) -> (f64, f64) {
        self.nodes
            .iter()
            .flatten()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &t| {
                (lo.min(t), hi.max(t))
            })
    }
}
