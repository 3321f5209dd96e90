//! [`AttentionGl`](super::AttentionGl)'s operations on the host: the same formulas (see the
//! parent module's table), head by head, as f64 products on the f32 buffers
//! ([`fused::heads`](crate::geometry::fused::heads)), with the h×h algebra in nalgebra.
//!
//! Why: written as Burn operations, every formula casts its n×h inputs to f64, forms n×h
//! intermediates and casts back; here each head's tangent rows are widened once, its cross
//! products and coefficients formed, and each result written by one [`combine_into`] of the
//! parts with h×h coefficient matrices, which also folds the step's `w + ξ − ½Γ` and the step
//! VJP's `c − ½a` into the same pass. A head's rows stay in cache from the first product to the
//! last. The formulas name their coefficients; the parts are G, H (the base point, kept in f64
//! here), ξ (the tangent) and C (a cotangent), and each result is Σ part · coefficient.

use burn::prelude::{Backend, Tensor};
use nalgebra::DMatrix;
use rayon::prelude::*;

use crate::geometry::base::Metric;
use crate::geometry::fused::heads::{Heads, combine_into, cross, dot, per_head_pair, widen};
use crate::geometry::host::{SpdFactors, SylvesterBasis};

/// One h×h matrix per head.
type PerHead = Vec<DMatrix<f64>>;

/// The frame of a GL(h) block at its base point, per head on the host.
#[derive(Debug, Clone)]
pub(super) struct HostFrame {
    metric: Metric,
    sg: PerHead,
    sh: PerHead,
    sg_inv: PerHead,
    sh_inv: PerHead,
    whiten_g: PerHead,
    whiten_h: PerHead,
    /// inv only.
    sylvester: Option<Vec<SylvesterBasis>>,
    /// G and H per head, row-major f64.
    base: [Vec<Vec<f64>>; 2],
    /// `[heads, rows, h]` of G and H.
    dims: [[usize; 3]; 2],
}

/// X + Xᵀ.
fn sym2(x: &DMatrix<f64>) -> DMatrix<f64> {
    x + x.transpose()
}

/// A head's two sides, widened.
fn widen_pair(u: &[Heads; 2], k: usize) -> [Vec<f64>; 2] {
    [widen(u[0].head(k)), widen(u[1].head(k))]
}

impl HostFrame {
    /// The frame from the heads' factors of S_G and S_H (and, for inv, the Sylvester bases),
    /// and the base point's heads G and H (n×h each).
    pub(super) fn new(
        metric: Metric,
        fg: &[SpdFactors],
        fh: &[SpdFactors],
        sylvester: Option<Vec<SylvesterBasis>>,
        base: [&[DMatrix<f64>]; 2],
    ) -> Self {
        let each = |f: &[SpdFactors], pick: fn(&SpdFactors) -> &DMatrix<f64>| {
            f.iter().map(|f| pick(f).clone()).collect::<PerHead>()
        };
        let (whiten_g, whiten_h) = match metric {
            Metric::Mix => (each(fh, |f| &f.inv_sqrt), each(fg, |f| &f.inv_sqrt)),
            _ => (each(fg, |f| &f.sqrt), each(fh, |f| &f.sqrt)),
        };
        let rows = |m: &[DMatrix<f64>]| -> Vec<Vec<f64>> {
            m.iter()
                .map(|m| m.transpose().as_slice().to_vec())
                .collect()
        };
        let dims = base.map(|m| [m.len(), m[0].nrows(), m[0].ncols()]);
        Self {
            metric,
            sg: each(fg, |f| &f.s),
            sh: each(fh, |f| &f.s),
            sg_inv: each(fg, |f| &f.inv),
            sh_inv: each(fh, |f| &f.inv),
            whiten_g,
            whiten_h,
            sylvester,
            base: [rows(base[0]), rows(base[1])],
            dims,
        }
    }

    /// h.
    fn h(&self) -> usize {
        self.dims[0][2]
    }

    /// Whether `u`'s parts have the block's shapes.
    pub(super) fn fits(&self, u: &[Heads; 2]) -> bool {
        u[0].dims() == self.dims[0] && u[1].dims() == self.dims[1]
    }

    /// Head k of G and H.
    fn base(&self, k: usize) -> [&[f64]; 2] {
        [&self.base[0][k], &self.base[1][k]]
    }

    /// The metric's weights (W_G, W_H), ⟨η, ζ⟩ = Σ W_G ⊙ η_Gᵀζ_G + Σ W_H ⊙ η_Hᵀζ_H:
    /// (S_G⁻¹, S_H⁻¹) for inv, (S_H, S_G) for mix.
    fn metric_weights(&self) -> [&[DMatrix<f64>]; 2] {
        match self.metric {
            Metric::Mix => [&self.sh, &self.sg],
            _ => [&self.sg_inv, &self.sh_inv],
        }
    }

    /// ⟨uₐ, u_b⟩ for the given pairs of tangents: Σ_heads Σ_sides (uₐ W) ⊙ u_b, one f64 product
    /// uₐ W per vector that starts a pair (never rounded to f32) and a dot product per pair.
    /// The trace form tr(W uₐᵀ u_b) would take a cross product per pair: six instead of
    /// three for Auto-PGD's three vectors. Heads are summed in order.
    pub(super) fn gram(&self, u: &[[Heads; 2]], pairs: &[(usize, usize)]) -> Vec<f64> {
        let weights = self.metric_weights();
        let h = self.h();
        let per_head: Vec<Vec<f64>> = (0..self.dims[0][0])
            .into_par_iter()
            .map(|k| {
                let mut entries = vec![0.0; pairs.len()];
                for (s, w) in weights.iter().enumerate() {
                    let plain: Vec<Vec<f64>> = u.iter().map(|v| widen(v[s].head(k))).collect();
                    let weighted: Vec<Option<Vec<f64>>> = (0..u.len())
                        .map(|a| {
                            pairs.iter().any(|p| p.0 == a).then(|| {
                                let mut out = vec![0.0f64; plain[a].len()];
                                combine_into(&[(&plain[a], &w[k])], &[], h, &mut out);
                                out
                            })
                        })
                        .collect();
                    for (e, &(a, b)) in entries.iter_mut().zip(pairs) {
                        let v = weighted[a].as_ref().expect("formed for every first index");
                        *e += dot(v, &plain[b]);
                    }
                }
                entries
            })
            .collect();
        (0..pairs.len())
            .map(|p| per_head.iter().map(|e| e[p]).sum())
            .collect()
    }

    /// Mix: (g_G S_H⁻¹, g_H S_G⁻¹); inv: (g_G S_G, g_H S_H).
    pub(super) fn riemannian_gradient<B: Backend>(&self, g: &[Heads; 2]) -> Vec<Tensor<B, 3>> {
        let (wg, wh) = match self.metric {
            Metric::Mix => (&self.sh_inv, &self.sg_inv),
            _ => (&self.sg, &self.sh),
        };
        let h = self.h();
        per_head_pair(self.dims, |k, og, oh| {
            let [gg, gh] = widen_pair(g, k);
            combine_into(&[(&gg, &wg[k])], &[], h, og);
            combine_into(&[(&gh, &wh[k])], &[], h, oh);
        })
    }

    /// (ξ_G + G Λ, ξ_H − H Λᵀ), with K₁ = Gᵀξ_G and K₂ = Hᵀξ_H:
    /// mix Λ = ½ [K₂ᵀ S_H⁻¹ − S_G⁻¹ K₁]; inv Λ = Xᵀ with S_G S_H X + X S_G S_H = S_G K₂ − K₁ᵀ S_H.
    pub(super) fn horizontal<B: Backend>(&self, xi: &[Heads; 2]) -> Vec<Tensor<B, 3>> {
        let h = self.h();
        per_head_pair(self.dims, |k, og, oh| {
            let [g, hh] = self.base(k);
            let [xg, xh] = widen_pair(xi, k);
            let (k1, k2) = (cross(g, &xg, h), cross(hh, &xh, h));
            let lambda = match &self.sylvester {
                Some(bases) => {
                    let b = &self.sg[k] * &k2 - k1.transpose() * &self.sh[k];
                    bases[k].solve(&b).transpose()
                }
                None => (k2.transpose() * &self.sh_inv[k] - &self.sg_inv[k] * &k1) * 0.5,
            };
            combine_into(&[(g, &lambda)], &[(1.0, &xg)], h, og);
            combine_into(&[(hh, &-lambda.transpose())], &[(1.0, &xh)], h, oh);
        })
    }

    /// Γ(ξ, ξ) of head k per side as ξ A_ξ + W A_W; returns [(A_ξ, A_W) of G, of H]. With
    /// K = ξᵀξ and M = ξᵀW + Wᵀξ of each side:
    /// * inv: A_ξ = −S⁻¹M, A_W = S⁻¹K, each side with its own S;
    /// * mix: A_ξ,G = M_H S_H⁻¹, A_G = −K_H S_H⁻¹, and H alike with G's M, K and S_G⁻¹.
    fn christoffel_terms(&self, k: usize, xi: &[Vec<f64>; 2]) -> [[DMatrix<f64>; 2]; 2] {
        let h = self.h();
        let [g, hh] = self.base(k);
        let (kg, mg) = (cross(&xi[0], &xi[0], h), sym2(&cross(&xi[0], g, h)));
        let (kh, mh) = (cross(&xi[1], &xi[1], h), sym2(&cross(&xi[1], hh, h)));
        match self.metric {
            Metric::Mix => [
                [mh * &self.sh_inv[k], -(kh * &self.sh_inv[k])],
                [mg * &self.sg_inv[k], -(kg * &self.sg_inv[k])],
            ],
            _ => [
                [-(&self.sg_inv[k] * mg), &self.sg_inv[k] * kg],
                [-(&self.sh_inv[k] * mh), &self.sh_inv[k] * kh],
            ],
        }
    }

    /// Γ(ξ, ξ) = (ξ_G A_ξ,G + G A_G, ξ_H A_ξ,H + H A_H) when `step` is false; the second-order
    /// step w + ξ − ½Γ(ξ, ξ) = ξ (−½A_ξ) + W (−½A_W) + W + ξ per side when it is true.
    pub(super) fn christoffel<B: Backend>(&self, xi: &[Heads; 2], step: bool) -> Vec<Tensor<B, 3>> {
        let h = self.h();
        per_head_pair(self.dims, |k, og, oh| {
            let x = widen_pair(xi, k);
            let terms = self.christoffel_terms(k, &x);
            for (s, out) in [og, oh].into_iter().enumerate() {
                let w = self.base(k)[s];
                let [a_xi, a_w] = &terms[s];
                if step {
                    let (a_xi, a_w) = (a_xi * -0.5, a_w * -0.5);
                    combine_into(
                        &[(&x[s], &a_xi), (w, &a_w)],
                        &[(1.0, w), (1.0, &x[s])],
                        h,
                        out,
                    );
                } else {
                    combine_into(&[(&x[s], a_xi), (w, a_w)], &[], h, out);
                }
            }
        })
    }

    /// (DΓ_ξ)ᵀ C of head k per side as C A_C + W A_W + ξ A_ξ; returns [[A_C, A_W, A_ξ] of G,
    /// of H].
    /// * inv, each side: A_C = −M S⁻¹, A_W = −(P + Pᵀ), A_ξ = Q + Qᵀ with M = ξᵀW + Wᵀξ,
    ///   P = Cᵀξ S⁻¹, Q = CᵀW S⁻¹;
    /// * mix: A_C,G = S_H⁻¹ M_H, A_G = R + Rᵀ, A_ξ,G = −(T + Tᵀ) with R = S_G⁻¹ C_Hᵀξ_H and
    ///   T = S_G⁻¹ C_HᵀH, and H alike with the sides swapped.
    fn vjp_terms(&self, k: usize, xi: &[Vec<f64>; 2], c: &[Vec<f64>; 2]) -> [[DMatrix<f64>; 3]; 2] {
        let h = self.h();
        let w = self.base(k);
        let m = [0, 1].map(|s| sym2(&cross(&xi[s], w[s], h)));
        let c_xi = [0, 1].map(|s| cross(&c[s], &xi[s], h));
        let c_w = [0, 1].map(|s| cross(&c[s], w[s], h));
        match self.metric {
            Metric::Mix => {
                // C_G's terms land on H (with S_H⁻¹), C_H's on G (with S_G⁻¹).
                let (sg_inv, sh_inv) = (&self.sg_inv[k], &self.sh_inv[k]);
                [
                    [
                        sh_inv * &m[1],
                        sym2(&(sg_inv * &c_xi[1])),
                        -sym2(&(sg_inv * &c_w[1])),
                    ],
                    [
                        sg_inv * &m[0],
                        sym2(&(sh_inv * &c_xi[0])),
                        -sym2(&(sh_inv * &c_w[0])),
                    ],
                ]
            }
            _ => {
                let s_inv = [&self.sg_inv[k], &self.sh_inv[k]];
                [0, 1].map(|s| {
                    [
                        -(&m[s] * s_inv[s]),
                        -sym2(&(&c_xi[s] * s_inv[s])),
                        sym2(&(&c_w[s] * s_inv[s])),
                    ]
                })
            }
        }
    }

    /// (DΓ_ξ)ᵀ C = C A_C + W A_W + ξ A_ξ per side when `step` is false; the second-order
    /// step's VJP c − ½(DΓ_ξ)ᵀ c = C (−½A_C) + W (−½A_W) + ξ (−½A_ξ) + C when it is true.
    pub(super) fn christoffel_vjp<B: Backend>(
        &self,
        xi: &[Heads; 2],
        c: &[Heads; 2],
        step: bool,
    ) -> Vec<Tensor<B, 3>> {
        let h = self.h();
        per_head_pair(self.dims, |k, og, oh| {
            let (x, cc) = (widen_pair(xi, k), widen_pair(c, k));
            let terms = self.vjp_terms(k, &x, &cc);
            for (s, out) in [og, oh].into_iter().enumerate() {
                let w = self.base(k)[s];
                let scale = if step { -0.5 } else { 1.0 };
                let [a_c, a_w, a_xi] = terms[s].each_ref().map(|a| a * scale);
                let products = [(cc[s].as_slice(), &a_c), (w, &a_w), (&x[s], &a_xi)];
                let scaled: &[(f64, &[f64])] = if step { &[(1.0, &cc[s])] } else { &[] };
                combine_into(&products, scaled, h, out);
            }
        })
    }

    /// (z_G F_G, z_H F_H) with the whitening factors of the metric.
    pub(super) fn whiten<B: Backend>(&self, z: &[Heads; 2]) -> Vec<Tensor<B, 3>> {
        let h = self.h();
        per_head_pair(self.dims, |k, og, oh| {
            let [zg, zh] = widen_pair(z, k);
            combine_into(&[(&zg, &self.whiten_g[k])], &[], h, og);
            combine_into(&[(&zh, &self.whiten_h[k])], &[], h, oh);
        })
    }
}
