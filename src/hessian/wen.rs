//! Wen et al.'s directional notions of sharpness ("How does sharpness-aware minimization
//! minimize sharpness?", 2023), beside their small-ρ limits:
//!
//! * worst-direction max_{‖v‖≤1} L(w + ρv) − L(w) → ρ²λ₁/2 at a minimum: this is worst-case
//!   Euclidean sharpness ([`worst_case`](crate::measures::worst_case) with
//!   [`Metric::Euclidean`](crate::geometry::Metric::Euclidean));
//! * ascent-direction L(w + ρ ĝ) − L(w), ĝ = ∇L/‖∇L‖ → ρ‖∇L‖ + ρ² ĝᵀHĝ/2;
//! * average-direction E_{g∼N(0,I)} L(w + ρ g/‖g‖) − L(w) → ρ² tr(H)/(2D).

use burn::tensor::backend::AutodiffBackend;

use super::error::{Error, check_count, finite};
use super::operator::{HessianOperator, LinearOperator, dot, norm};
use super::trace::{Estimate, mean_se};
use crate::geometry::Probes;
use crate::measures::Objective;

fn check_rho(rho: f64) -> Result<(), Error> {
    if rho > 0.0 && rho.is_finite() {
        Ok(())
    } else {
        Err(Error::InvalidRadius(rho))
    }
}

/// Ascent-direction sharpness and its second-order expansion.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct AscentDirection {
    /// L(w + ρ ĝ) − L(w).
    pub value: f64,
    /// ρ‖∇L‖ + ρ² ĝᵀHĝ / 2.
    pub small_rho_limit: f64,
    /// ‖∇L‖.
    pub gradient_norm: f64,
}

/// Ascent-direction sharpness at radius `rho` (one gradient, one HVP, one loss). A zero
/// gradient has no ascent direction: the value and the limit are 0.
pub fn ascent_direction<B: AutodiffBackend, M: Objective<B>>(
    op: &HessianOperator<'_, B, M>,
    rho: f64,
) -> Result<AscentDirection, Error> {
    check_rho(rho)?;
    let (loss, g) = op.loss_and_gradient()?;
    let gradient_norm = finite("the gradient", norm(&g))?;
    if gradient_norm == 0.0 {
        return Ok(AscentDirection {
            value: 0.0,
            small_rho_limit: 0.0,
            gradient_norm,
        });
    }
    let unit = g.scale(1.0 / gradient_norm);
    let curvature = dot(&unit, &op.apply(&unit)?);
    Ok(AscentDirection {
        value: op.loss_along(&unit, rho)? - loss,
        small_rho_limit: rho * gradient_norm + 0.5 * rho * rho * curvature,
        gradient_norm,
    })
}

/// Average-direction sharpness at radius `rho` over `samples` seeded Gaussian directions, with
/// its standard error, and the limit ρ² tr(H)/(2D) for a given trace estimate.
pub fn average_direction<B: AutodiffBackend, M: Objective<B>>(
    op: &HessianOperator<'_, B, M>,
    rho: f64,
    samples: usize,
    seed: u64,
) -> Result<Estimate, Error> {
    check_rho(rho)?;
    check_count("direction samples", samples, 1)?;
    let loss = op.loss_along(&op.zeros(), 0.0)?;
    let mut probes = Probes::new(seed);
    let rises = (0..samples)
        .map(|_| {
            let g = op.gaussian(&mut probes);
            let unit = g.scale(1.0 / norm(&g).max(f64::MIN_POSITIVE));
            Ok(op.loss_along(&unit, rho)? - loss)
        })
        .collect::<Result<Vec<f64>, Error>>()?;
    let (value, std_error) = mean_se(&rises);
    Ok(Estimate {
        value,
        std_error,
        products: 0,
    })
}

/// The small-ρ limit ρ² tr(H) / (2D) of average-direction sharpness.
pub fn average_direction_limit(rho: f64, trace: f64, dim: usize) -> f64 {
    rho * rho * trace / (2.0 * dim as f64)
}
