//! Perturbation rules: where the second pass of a two-pass step evaluates the gradient.
//!
//! | rule | perturbed point |
//! |---|---|
//! | SAM | w + ρ g / ‖g‖₂ |
//! | ASAM | w + ρ T² g / ‖T g‖₂, T = \|w\| + η (biases unscaled) |
//! | geodesic SAM | v(ξ), ξ = ρ ĝ / ‖ĝ‖_w, ĝ = horizontal part of the Riemannian gradient |
//! | RSAM | w − s ρ (Σ\|gⱼ\|^{2α} / ‖g‖₂^{2(α+1)}) g, s = sign(1 − α) |
//!
//! The first three are one rule, [`Perturbation::Geometric`]: the steepest ascent direction of
//! a metric, scaled to metric norm ρ, followed along the metric's geodesic step. SAM is the
//! Euclidean metric; ASAM the adaptive metric with ASAM's offset η
//! ([`AdaptiveOffset`]); geodesic SAM the inv or mix metric on the model's declared symmetry
//! blocks with the second-order step, and the adaptive metric with the first-order step on the
//! rest. For the Euclidean and adaptive metrics the Riemannian gradient is T² g and its norm
//! ‖T g‖₂, so the formulas of the table are exactly what the geometry computes.
//!
//! # The normalising ε
//! The direction is scaled by ρ / (‖ĝ‖ + [`NORM_EPS`]) with `NORM_EPS` = 10⁻¹², as in the
//! reference SAM and ASAM code: a zero gradient gives a zero perturbation, not 0/0 = NaN, and
//! for any gradient of norm ≫ 10⁻¹² the radius is ρ to 12 digits.

use burn::prelude::{Backend, Tensor};
use burn::tensor::DType;

use super::error::Error;
use crate::geometry::{
    AdaptiveOffset, GeometryConfig, Metric, Product, Tangent, ZeroWeights, dot, sum_scalars,
};
use crate::host::scalar;
use crate::symmetry::BlockLayout;

/// Added to the direction's norm before dividing by it (see the module docs).
pub const NORM_EPS: f64 = 1e-12;

/// The rule that turns the gradient at w into the perturbed point of the second pass.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Perturbation {
    /// ξ = ρ ĝ / ‖ĝ‖_w under a metric, followed by its geodesic step: SAM, ASAM, geodesic SAM.
    Geometric(GeometryConfig),
    /// RSAM's Rényi-weighted ascent step with proxy Hessian diag(g)².
    Rsam {
        /// The Rényi order α (RSAM's default 1.2).
        alpha: f64,
    },
}

impl Perturbation {
    /// SAM: the Euclidean metric.
    pub fn sam() -> Self {
        Self::Geometric(GeometryConfig::new(Metric::Euclidean))
    }

    /// ASAM with offset η and biases unscaled, as in its reference code (η = 0.01 there).
    pub fn asam(eta: f64) -> Self {
        Self::asam_with(AdaptiveOffset {
            eta,
            unscaled_biases: true,
        })
    }

    /// ASAM with an explicit offset policy. Exactly-zero weights (with η = 0) are held fixed.
    pub fn asam_with(offset: AdaptiveOffset) -> Self {
        Self::Geometric(
            GeometryConfig::new(Metric::Adaptive)
                .with_offset(offset)
                .with_zero_weights(ZeroWeights::Freeze),
        )
    }

    /// Geodesic SAM under `metric` (inv or mix) with the paper's steps (second order on GL(h)
    /// pairs, exact on rescalings, first order on elementwise blocks). Exactly-zero weights of
    /// elementwise blocks are held fixed.
    pub fn geodesic(metric: Metric) -> Self {
        Self::Geometric(GeometryConfig::new(metric).with_zero_weights(ZeroWeights::Freeze))
    }

    /// RSAM with Rényi order α.
    ///
    /// # Errors
    /// [`Error::InvalidSetting`] unless α is finite and positive.
    pub fn rsam(alpha: f64) -> Result<Self, Error> {
        if !(alpha.is_finite() && alpha > 0.0) {
            return Err(Error::InvalidSetting {
                name: "alpha",
                value: alpha,
                why: "RSAM's Rényi order must be finite and > 0 (default 1.2)",
            });
        }
        Ok(Self::Rsam { alpha })
    }

    /// Whether the rule needs the model's symmetry declaration.
    pub fn uses_symmetry(&self) -> bool {
        matches!(self, Self::Geometric(c) if c.metric.uses_symmetry())
    }

    /// The perturbed point for gradient `grad` at `base` (both in block coordinates of
    /// `layout`), and the norm of the direction before scaling (‖ĝ‖_w, or ‖g‖₂ for RSAM).
    ///
    /// # Errors
    /// A geometry that cannot be built at `base` (e.g. non-finite weights).
    pub fn perturbed_point<B: Backend>(
        &self,
        rho: f64,
        layout: &BlockLayout,
        base: Vec<Tensor<B, 3>>,
        grad: &Tangent<B>,
    ) -> Result<(Vec<Tensor<B, 3>>, f64), Error> {
        match self {
            Self::Geometric(config) => {
                let geometry = Product::new(layout, base, config)?;
                let (xi, norm) = ascent_direction(&geometry, rho, grad);
                Ok((geometry.step(&xi), norm))
            }
            Self::Rsam { alpha } => Ok(rsam_point(*alpha, rho, base, grad)),
        }
    }
}

/// ξ = ρ ĝ / (‖ĝ‖_w + ε), ĝ = horizontal(grad_R L): the unit-radius steepest ascent direction
/// of the quotient metric, scaled to radius ρ; returns ξ and ‖ĝ‖_w.
pub fn ascent_direction<B: Backend>(
    geometry: &Product<B>,
    rho: f64,
    grad: &Tangent<B>,
) -> (Tangent<B>, f64) {
    let direction = geometry.horizontal(&geometry.riemannian_gradient(grad));
    let norm = scalar(geometry.norm(&direction));
    (direction.scale(rho / (norm + NORM_EPS)), norm)
}

/// RSAM: w − s ρ c g with c = Σ|gⱼ|^{2α} / ‖g‖₂^{2(α+1)} and s = sign(1 − α), c computed in
/// f64; a zero gradient gives w.
fn rsam_point<B: Backend>(
    alpha: f64,
    rho: f64,
    base: Vec<Tensor<B, 3>>,
    grad: &Tangent<B>,
) -> (Vec<Tensor<B, 3>>, f64) {
    // Per-part f64 sums added on the device: two read-backs per step, not two per part.
    let parts = || grad.parts.iter().cloned();
    let sq_norm = scalar(sum_scalars(parts().map(|g| dot(g.clone(), g))));
    // |g|^{2α} as exp(2α ln|g|) (0 at g = 0): Burn's powf_scalar rounds the exponent to f32.
    let powered = scalar(sum_scalars(parts().map(|g| {
        g.abs()
            .log()
            .mul_scalar(2.0 * alpha)
            .exp()
            .cast(DType::F64)
            .sum()
    })));
    let norm = sq_norm.sqrt();
    if sq_norm <= 0.0 {
        return (base, norm);
    }
    let s = (1.0 - alpha).signum() * f64::from(alpha != 1.0);
    let c = powered / sq_norm.powf(alpha + 1.0);
    let factor = -s * rho * c;
    let point = base
        .into_iter()
        .zip(&grad.parts)
        .map(|(w, g)| w + g.clone().mul_scalar(factor))
        .collect();
    (point, norm)
}
