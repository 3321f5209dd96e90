//! Power iteration for the top Hessian eigenvalue, the estimator PyHessian popularised.
//!
//! Power iteration converges to the eigenvalue of largest magnitude. For the largest
//! *algebraic* eigenvalue (what "λ_max" means for sharpness) when that magnitude belongs to a
//! negative eigenvalue λ₋, a second run on H − λ₋I (whose spectrum is shifted to ≥ 0, its top at
//! λ_max − λ₋) gives λ_max. Lanczos ([`top_eigenvalues`](super::top_eigenvalues)) needs fewer
//! products for the same accuracy; power iteration is kept as the familiar reference.

use burn::prelude::Backend;

use super::error::{Error, check_count, finite};
use super::lanczos::Order;
use super::operator::{LinearOperator, dot, norm};
use crate::geometry::{Probes, Tangent};

/// Settings of power iteration.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct PowerIteration {
    /// At most this many Hessian-vector products per run. Default 100.
    pub max_iterations: usize,
    /// Stop when the Rayleigh quotient changes by less than this, relatively. Default 1e−3
    /// (PyHessian's default).
    pub tolerance: f64,
    /// Seed of the start vector.
    pub seed: u64,
}

impl Default for PowerIteration {
    fn default() -> Self {
        Self {
            max_iterations: 100,
            tolerance: 1e-3,
            seed: 0,
        }
    }
}

/// An eigenvalue estimate.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Eigenvalue {
    /// The Rayleigh quotient λ = vᵀHv.
    pub value: f64,
    /// ‖Hv − λv‖: some eigenvalue of H lies within this of `value`.
    pub residual: f64,
    /// Hessian-vector products used (both runs, for the algebraic order).
    pub products: usize,
    /// Whether the tolerance was met.
    pub converged: bool,
}

/// The top eigenvalue of `op` in `order` by power iteration.
pub fn power_iteration<B: Backend, O: LinearOperator<B> + ?Sized>(
    op: &O,
    config: &PowerIteration,
    order: Order,
) -> Result<Eigenvalue, Error> {
    check_count("power iterations", config.max_iterations, 1)?;
    let magnitude = run(op, config, 0.0)?;
    if order == Order::LargestMagnitude || magnitude.value >= 0.0 {
        return Ok(magnitude);
    }
    let shift = magnitude.value;
    let shifted = run(op, config, shift)?;
    Ok(Eigenvalue {
        value: shifted.value + shift,
        residual: shifted.residual,
        products: magnitude.products + shifted.products,
        converged: shifted.converged,
    })
}

/// Power iteration on H − σI.
fn run<B: Backend, O: LinearOperator<B> + ?Sized>(
    op: &O,
    config: &PowerIteration,
    sigma: f64,
) -> Result<Eigenvalue, Error> {
    let apply = |v: &Tangent<B>| -> Result<Tangent<B>, Error> {
        let hv = op.apply(v)?;
        Ok(if sigma == 0.0 { hv } else { hv.axpy(-sigma, v) })
    };
    let z = op.rademacher(&mut Probes::new(config.seed));
    let mut v = z.scale(1.0 / norm(&z).max(f64::MIN_POSITIVE));
    let mut value = f64::NAN;
    let mut residual = f64::NAN;
    for k in 1..=config.max_iterations {
        let hv = apply(&v)?;
        let next = finite("a Rayleigh quotient", dot(&v, &hv))?;
        residual = norm(&hv.axpy(-next, &v));
        let hv_norm = finite("a Hessian-vector product", norm(&hv))?;
        let converged =
            (next - value).abs() <= config.tolerance * next.abs().max(f64::MIN_POSITIVE);
        value = next;
        if converged || hv_norm == 0.0 {
            return Ok(Eigenvalue {
                value,
                residual,
                products: k,
                converged: true,
            });
        }
        v = hv.scale(1.0 / hv_norm);
    }
    Ok(Eigenvalue {
        value,
        residual,
        products: config.max_iterations,
        converged: false,
    })
}
