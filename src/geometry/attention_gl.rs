//! GL(h) pairs — attention's (W_Q, W_K) and (W_V, W_Oᵀ) per head — under the inv and mix
//! metrics (Hide & Seek, Eqs. 9–12; the inv projection uses the corrected Sylvester equation).
//!
//! Parts: G `[heads, n, h]`, H `[heads, m, h]`; every formula below is per head and runs as one
//! batched matmul over heads. With S_G = GᵀG, S_H = HᵀH (from the host frame, [`super::host`]):
//!
//! | | inv (Eq. 9) | mix (Eq. 10) |
//! |---|---|---|
//! | ⟨η, ζ⟩ | tr(S_G⁻¹η_Gᵀζ_G) + tr(S_H⁻¹η_Hᵀζ_H) | tr(S_Hη_Gᵀζ_G) + tr(S_Gη_Hᵀζ_H) |
//! | Riemannian gradient | (g_G S_G, g_H S_H) | (g_G S_H⁻¹, g_H S_G⁻¹) |
//! | horizontal | Gᵀξ_G S_G⁻¹ = S_H⁻¹ξ_HᵀH | Gᵀξ_G S_H = S_Gξ_HᵀH |
//! | whiten(z) | (z_G S_G^{1/2}, z_H S_H^{1/2}) | (z_G S_H^{-1/2}, z_H S_G^{-1/2}) |
//!
//! The projection is P(ξ) = (ξ_G + GΛ, ξ_H − HΛᵀ): for mix Λ = ½[ξ_HᵀH S_H⁻¹ − S_G⁻¹Gᵀξ_G];
//! for inv Λ = Xᵀ with S_G S_H X + X S_G S_H = S_G Hᵀξ_H − ξ_GᵀG S_H, solved in the eigenbasis
//! precomputed on the host.
//!
//! Christoffel forms (Eqs. 11, 12), with M_G = ξ_GᵀG + Gᵀξ_G:
//! * inv: Γ_G = −ξ_G S_G⁻¹ M_G + G S_G⁻¹ ξ_Gᵀξ_G (and H alike; the sides decouple);
//! * mix: Γ_G = ξ_G M_H S_H⁻¹ − G (ξ_Hᵀξ_H) S_H⁻¹, Γ_H = ξ_H M_G S_G⁻¹ − H (ξ_Gᵀξ_G) S_G⁻¹.
//!
//! No closed-form geodesic is known, so `exp` is unsupported and the default step is second
//! order.

use burn::prelude::{Backend, Tensor};
use nalgebra::DMatrix;

use super::base::{GeodesicStep, Geometry, Metric, dot};
use super::error::Error;
use super::host::{SpdFactors, gram, spd_factors, sylvester_basis};
use crate::host::{download_batch, upload_batch};

/// Batched transpose of the last two axes.
fn t<B: Backend>(x: Tensor<B, 3>) -> Tensor<B, 3> {
    x.swap_dims(1, 2)
}

/// A GL(h) pair block at a base point, under the inv or mix metric.
#[derive(Debug, Clone)]
pub struct AttentionGl<B: Backend> {
    base: Vec<Tensor<B, 3>>,
    metric: Metric,
    sg: Tensor<B, 3>,
    sh: Tensor<B, 3>,
    sg_inv: Tensor<B, 3>,
    sh_inv: Tensor<B, 3>,
    /// inv: (S_G^{1/2}, S_H^{1/2}); mix: (S_H^{-1/2}, S_G^{-1/2}) — the right factors of `whiten`.
    whiten_g: Tensor<B, 3>,
    whiten_h: Tensor<B, 3>,
    /// inv only: P, P⁻¹ and 1/(dᵢ + dⱼ) of the Sylvester eigenbasis.
    sylvester: Option<[Tensor<B, 3>; 3]>,
}

impl<B: Backend> AttentionGl<B> {
    /// Builds the frame at `base` = [G, H] on the host (f64) and uploads it.
    pub fn new(block: &str, base: Vec<Tensor<B, 3>>, metric: Metric) -> Result<Self, Error> {
        assert!(metric.uses_symmetry(), "GL(h) blocks use inv or mix");
        let options = (&base[0].device(), base[0].dtype());
        let gs = download_batch(base[0].clone());
        let hs = download_batch(base[1].clone());
        let factor = |m: &DMatrix<f64>, head: usize, side: char| -> Result<SpdFactors, Error> {
            let bad = m.iter().filter(|x| !x.is_finite()).count();
            if bad > 0 {
                return Err(Error::NonFinite {
                    block: block.to_string(),
                    count: bad,
                });
            }
            spd_factors(&gram(m)).map_err(|rcond| Error::RankDeficient {
                block: block.to_string(),
                head,
                side,
                rcond,
            })
        };
        let heads = gs.len();
        let mut fg = Vec::with_capacity(heads);
        let mut fh = Vec::with_capacity(heads);
        for (i, (g, h)) in gs.iter().zip(&hs).enumerate() {
            fg.push(factor(g, i, 'G')?);
            fh.push(factor(h, i, 'H')?);
        }
        let up = |f: &dyn Fn(usize) -> DMatrix<f64>| {
            let mats: Vec<_> = (0..heads).map(f).collect();
            upload_batch::<B>(&mats, options)
        };
        let (whiten_g, whiten_h, sylvester) = match metric {
            Metric::Mix => (
                up(&|i| fh[i].inv_sqrt.clone()),
                up(&|i| fg[i].inv_sqrt.clone()),
                None,
            ),
            _ => {
                let bases: Vec<_> = (0..heads)
                    .map(|i| sylvester_basis(&fg[i], &fh[i].s))
                    .collect();
                let sylvester = [
                    up(&|i| bases[i].p.clone()),
                    up(&|i| bases[i].p_inv.clone()),
                    up(&|i| bases[i].d_inv.clone()),
                ];
                (
                    up(&|i| fg[i].sqrt.clone()),
                    up(&|i| fh[i].sqrt.clone()),
                    Some(sylvester),
                )
            }
        };
        Ok(Self {
            sg: up(&|i| fg[i].s.clone()),
            sh: up(&|i| fh[i].s.clone()),
            sg_inv: up(&|i| fg[i].inv.clone()),
            sh_inv: up(&|i| fh[i].inv.clone()),
            whiten_g,
            whiten_h,
            sylvester,
            base,
            metric,
        })
    }

    fn g(&self) -> Tensor<B, 3> {
        self.base[0].clone()
    }

    fn h(&self) -> Tensor<B, 3> {
        self.base[1].clone()
    }

    /// Λ of the projection P(ξ) = (ξ_G + GΛ, ξ_H − HΛᵀ).
    fn lambda(&self, xi_g: Tensor<B, 3>, xi_h: Tensor<B, 3>) -> Tensor<B, 3> {
        match &self.sylvester {
            // X = P [(P⁻¹ B P) ⊘ (dᵢ + dⱼ)] P⁻¹, B = S_G Hᵀξ_H − ξ_Gᵀ G S_H; Λ = Xᵀ.
            Some([p, p_inv, d_inv]) => {
                let b = self.sg.clone().matmul(t(self.h()).matmul(xi_h))
                    - t(xi_g).matmul(self.g()).matmul(self.sh.clone());
                let y = p_inv.clone().matmul(b).matmul(p.clone()) * d_inv.clone();
                t(p.clone().matmul(y).matmul(p_inv.clone()))
            }
            // Λ = ½ [ξ_Hᵀ H S_H⁻¹ − S_G⁻¹ Gᵀ ξ_G]
            None => (t(xi_h).matmul(self.h()).matmul(self.sh_inv.clone())
                - self.sg_inv.clone().matmul(t(self.g()).matmul(xi_g)))
            .mul_scalar(0.5),
        }
    }
}

/// M = ξᵀ W + Wᵀ ξ (symmetric h×h per head).
fn sym<B: Backend>(xi: Tensor<B, 3>, w: Tensor<B, 3>) -> Tensor<B, 3> {
    let m = t(xi).matmul(w);
    m.clone() + t(m)
}

impl<B: Backend> Geometry<B> for AttentionGl<B> {
    fn name(&self) -> &'static str {
        match self.metric {
            Metric::Mix => "attention-gl/mix",
            _ => "attention-gl/inv",
        }
    }

    fn base(&self) -> &[Tensor<B, 3>] {
        &self.base
    }

    fn inner(&self, a: &[Tensor<B, 3>], b: &[Tensor<B, 3>]) -> Tensor<B, 1> {
        // tr(S⁻¹ ηᵀ ζ) = Σ (η S⁻¹) ⊙ ζ for symmetric S⁻¹.
        let (wg, wh) = match self.metric {
            Metric::Mix => (self.sh.clone(), self.sg.clone()),
            _ => (self.sg_inv.clone(), self.sh_inv.clone()),
        };
        dot(a[0].clone().matmul(wg), b[0].clone()) + dot(a[1].clone().matmul(wh), b[1].clone())
    }

    fn riemannian_gradient(&self, g: &[Tensor<B, 3>]) -> Vec<Tensor<B, 3>> {
        let (wg, wh) = match self.metric {
            Metric::Mix => (self.sh_inv.clone(), self.sg_inv.clone()),
            _ => (self.sg.clone(), self.sh.clone()),
        };
        vec![g[0].clone().matmul(wg), g[1].clone().matmul(wh)]
    }

    fn horizontal(&self, xi: &[Tensor<B, 3>]) -> Vec<Tensor<B, 3>> {
        let lambda = self.lambda(xi[0].clone(), xi[1].clone());
        vec![
            xi[0].clone() + self.g().matmul(lambda.clone()),
            xi[1].clone() - self.h().matmul(t(lambda)),
        ]
    }

    fn christoffel(&self, xi: &[Tensor<B, 3>]) -> Result<Vec<Tensor<B, 3>>, Error> {
        let (xg, xh) = (xi[0].clone(), xi[1].clone());
        let (g, h) = (self.g(), self.h());
        let gram_g = t(xg.clone()).matmul(xg.clone());
        let gram_h = t(xh.clone()).matmul(xh.clone());
        Ok(match self.metric {
            Metric::Mix => vec![
                (xg.clone().matmul(sym(xh.clone(), h.clone())) - g.clone().matmul(gram_h))
                    .matmul(self.sh_inv.clone()),
                (xh.matmul(sym(xg, g)) - h.matmul(gram_g)).matmul(self.sg_inv.clone()),
            ],
            _ => {
                let side = |x: Tensor<B, 3>, w: Tensor<B, 3>, s_inv: Tensor<B, 3>, gram| {
                    -x.clone().matmul(s_inv.clone()).matmul(sym(x, w.clone()))
                        + w.matmul(s_inv).matmul(gram)
                };
                vec![
                    side(xg, g, self.sg_inv.clone(), gram_g),
                    side(xh, h, self.sh_inv.clone(), gram_h),
                ]
            }
        })
    }

    fn default_step(&self) -> GeodesicStep {
        GeodesicStep::SecondOrder
    }

    fn whiten(&self, z: &[Tensor<B, 3>]) -> Vec<Tensor<B, 3>> {
        vec![
            z[0].clone().matmul(self.whiten_g.clone()),
            z[1].clone().matmul(self.whiten_h.clone()),
        ]
    }
}
