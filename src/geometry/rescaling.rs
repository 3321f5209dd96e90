//! GL(1) rescaling pairs: u, v ∈ R^d used only through β = u ⊙ v.
//!
//! Each coordinate j is a GL(h) pair with h = 1, G = u_j, H = v_j, S_G = u_j², S_H = v_j², so the
//! general formulas of [`super::attention_gl`] specialise to elementwise ones:
//!
//! | | inv | mix |
//! |---|---|---|
//! | ⟨η, ζ⟩ | Σ η_uζ_u/u² + η_vζ_v/v² | Σ v²η_uζ_u + u²η_vζ_v |
//! | Riemannian gradient | (u²g_u, v²g_v) | (g_u/v², g_v/u²) |
//! | Γ_u(ξ, ξ) | −ξ_u²/u | 2ξ_uξ_v/v − uξ_v²/v² |
//! | exp (horizontal ξ = (bu, bv)) | (u eᵇ, v eᵇ): β ↦ β e^{2b} | u√(1+2b), v√(1+2b): β ↦ β(1+2b) |
//!
//! Horizontal means ξ_u/u = ξ_v/v, and both metrics give the same projection:
//! b = ½(ξ_u/u + ξ_v/v), P(ξ) = (b ⊙ u, b ⊙ v).
//!
//! # The exact mix step past β = 0
//! u√(1+2b) stops existing at b = −½, where β reaches 0 and the metric degenerates. The
//! quotient geodesic in β is the straight line β₀(1 + 2b) and continues through 0; we follow
//! it, returning (u·sign(s)√|s|, v√|s|) with s = 1 + 2b, so u ⊙ v = β₀ s always.
//!
//! At s = 0 that representative has an infinite derivative in s, although β = β₀ s has none,
//! and autodiff would produce 0 · ∞ = NaN. Inside the square root |s| is therefore floored at
//! [`MIX_S_FLOOR`]: β changes by at most 10⁻¹² |β₀| and the gradient stays finite.
//!
//! # The exact inv step for non-horizontal ξ
//! The inv metric is the adaptive metric on (u, v), whose geodesics are coordinatewise
//! w ⊙ exp(ξ/w) for any ξ; that is what `exp` returns.

use burn::prelude::{Backend, Tensor};

use super::base::{GeodesicStep, Geometry, Metric, dot};
use super::elementwise::{ZeroWeights, check_weights, reciprocal};
use super::error::Error;

/// Floor of |s| = |1 + 2b| inside the square root of the exact mix step (see the module docs).
pub const MIX_S_FLOOR: f64 = 1e-12;

/// A GL(1) rescaling pair at a base point (u, v), under the inv or mix metric.
#[derive(Debug, Clone)]
pub struct Rescaling<B: Backend> {
    base: Vec<Tensor<B, 3>>,
    metric: Metric,
    u2: Tensor<B, 3>,
    v2: Tensor<B, 3>,
    inv_u: Tensor<B, 3>,
    inv_v: Tensor<B, 3>,
}

impl<B: Backend> Rescaling<B> {
    /// The geometry at `base` = [u, v] (each `[1, 1, d]`); `metric` must be inv or mix.
    pub fn new(
        block: &str,
        base: Vec<Tensor<B, 3>>,
        metric: Metric,
        zeros: ZeroWeights,
    ) -> Result<Self, Error> {
        assert!(metric.uses_symmetry(), "rescaling blocks use inv or mix");
        check_weights(block, &base, Some(zeros))?;
        let (u, v) = (&base[0], &base[1]);
        Ok(Self {
            u2: u.clone().square(),
            v2: v.clone().square(),
            inv_u: reciprocal(u),
            inv_v: reciprocal(v),
            base,
            metric,
        })
    }

    fn u(&self) -> &Tensor<B, 3> {
        &self.base[0]
    }

    fn v(&self) -> &Tensor<B, 3> {
        &self.base[1]
    }

    /// b = ½ (ξ_u/u + ξ_v/v), the coordinate of the horizontal part.
    fn ratio(&self, xi: &[Tensor<B, 3>]) -> Tensor<B, 3> {
        (xi[0].clone() * self.inv_u.clone() + xi[1].clone() * self.inv_v.clone()).mul_scalar(0.5)
    }
}

impl<B: Backend> Geometry<B> for Rescaling<B> {
    fn name(&self) -> &'static str {
        match self.metric {
            Metric::Mix => "rescaling/mix",
            _ => "rescaling/inv",
        }
    }

    fn base(&self) -> &[Tensor<B, 3>] {
        &self.base
    }

    fn inner(&self, a: &[Tensor<B, 3>], b: &[Tensor<B, 3>]) -> Tensor<B, 1> {
        let (wu, wv) = match self.metric {
            Metric::Mix => (self.v2.clone(), self.u2.clone()),
            _ => (self.inv_u.clone().square(), self.inv_v.clone().square()),
        };
        dot(a[0].clone() * wu, b[0].clone()) + dot(a[1].clone() * wv, b[1].clone())
    }

    fn riemannian_gradient(&self, g: &[Tensor<B, 3>]) -> Vec<Tensor<B, 3>> {
        match self.metric {
            Metric::Mix => vec![
                g[0].clone() * self.inv_v.clone().square(),
                g[1].clone() * self.inv_u.clone().square(),
            ],
            _ => vec![
                g[0].clone() * self.u2.clone(),
                g[1].clone() * self.v2.clone(),
            ],
        }
    }

    fn horizontal(&self, xi: &[Tensor<B, 3>]) -> Vec<Tensor<B, 3>> {
        let b = self.ratio(xi);
        vec![b.clone() * self.u().clone(), b * self.v().clone()]
    }

    fn christoffel(&self, xi: &[Tensor<B, 3>]) -> Result<Vec<Tensor<B, 3>>, Error> {
        let (xu, xv) = (&xi[0], &xi[1]);
        Ok(match self.metric {
            // Γ_u = 2 ξ_u ξ_v / v − u ξ_v² / v², and symmetrically for v.
            Metric::Mix => {
                let cross = xu.clone() * xv.clone() * 2.0;
                vec![
                    cross.clone() * self.inv_v.clone()
                        - self.u().clone() * xv.clone().square() * self.inv_v.clone().square(),
                    cross * self.inv_u.clone()
                        - self.v().clone() * xu.clone().square() * self.inv_u.clone().square(),
                ]
            }
            // Γ = −ξ²/w coordinatewise.
            _ => vec![
                -(xu.clone().square() * self.inv_u.clone()),
                -(xv.clone().square() * self.inv_v.clone()),
            ],
        })
    }

    fn exp(&self, xi: &[Tensor<B, 3>]) -> Result<Vec<Tensor<B, 3>>, Error> {
        Ok(match self.metric {
            Metric::Mix => {
                let s = self.ratio(xi).mul_scalar(2.0).add_scalar(1.0);
                let root = s.clone().abs().clamp_min(MIX_S_FLOOR).sqrt();
                vec![
                    self.u().clone() * root.clone() * s.sign(),
                    self.v().clone() * root,
                ]
            }
            _ => vec![
                self.u().clone() * (xi[0].clone() * self.inv_u.clone()).exp(),
                self.v().clone() * (xi[1].clone() * self.inv_v.clone()).exp(),
            ],
        })
    }

    fn christoffel_vjp(
        &self,
        xi: &[Tensor<B, 3>],
        c: &[Tensor<B, 3>],
    ) -> Result<Vec<Tensor<B, 3>>, Error> {
        let (xu, xv, cu, cv) = (&xi[0], &xi[1], &c[0], &c[1]);
        let (iu, iv) = (&self.inv_u, &self.inv_v);
        Ok(match self.metric {
            // DΓ_u[δ] = 2(δ_u ξ_v + ξ_u δ_v)/v − 2u ξ_v δ_v/v², DΓ_v[δ] = 2(δ_u ξ_v + ξ_u δ_v)/u − 2v ξ_u δ_u/u².
            Metric::Mix => vec![
                (cu.clone() * xv.clone() * iv.clone()
                    + cv.clone()
                        * (xv.clone() * iu.clone()
                            - self.v().clone() * xu.clone() * iu.clone().square()))
                .mul_scalar(2.0),
                (cu.clone()
                    * (xu.clone() * iv.clone()
                        - self.u().clone() * xv.clone() * iv.clone().square())
                    + cv.clone() * xu.clone() * iu.clone())
                .mul_scalar(2.0),
            ],
            // DΓ[δ] = −2ξδ/w per side.
            _ => vec![
                -(xu.clone() * cu.clone() * iu.clone()).mul_scalar(2.0),
                -(xv.clone() * cv.clone() * iv.clone()).mul_scalar(2.0),
            ],
        })
    }

    fn exp_vjp(&self, xi: &[Tensor<B, 3>], c: &[Tensor<B, 3>]) -> Result<Vec<Tensor<B, 3>>, Error> {
        let (iu, iv) = (&self.inv_u, &self.inv_v);
        Ok(match self.metric {
            Metric::Mix => {
                // u' = u·sign(s)·r, v' = v·r, r = √max(|s|, floor), s = 1 + ξ_u/u + ξ_v/v:
                // ∂L/∂s = (c_u u + c_v v sign(s)) / (2r) where |s| > floor, else 0.
                let s = self.ratio(xi).mul_scalar(2.0).add_scalar(1.0);
                let live = s.clone().abs().greater_elem(MIX_S_FLOOR).float();
                let r = s.clone().abs().clamp_min(MIX_S_FLOOR).sqrt();
                let gs = (c[0].clone() * self.u().clone()
                    + c[1].clone() * self.v().clone() * s.sign())
                    / r.mul_scalar(2.0)
                    * live;
                vec![gs.clone() * iu.clone(), gs * iv.clone()]
            }
            _ => vec![
                c[0].clone() * (xi[0].clone() * iu.clone()).exp(),
                c[1].clone() * (xi[1].clone() * iv.clone()).exp(),
            ],
        })
    }

    /// Every step: Γ, exp and their VJPs all have closed forms here.
    fn check_step(&self, _method: GeodesicStep) -> Result<(), Error> {
        Ok(())
    }

    fn default_step(&self) -> GeodesicStep {
        GeodesicStep::Exact
    }

    fn whiten(&self, z: &[Tensor<B, 3>]) -> Vec<Tensor<B, 3>> {
        match self.metric {
            // covariance diag(1/v², 1/u²)
            Metric::Mix => vec![
                z[0].clone() * self.inv_v.clone().abs(),
                z[1].clone() * self.inv_u.clone().abs(),
            ],
            // covariance diag(u², v²)
            _ => vec![
                z[0].clone() * self.u().clone().abs(),
                z[1].clone() * self.v().clone().abs(),
            ],
        }
    }
}
