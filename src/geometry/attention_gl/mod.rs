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
//!
//! # Precision
//! Every per-iteration product here runs in f64, whatever the model's dtype: inputs are cast to
//! f64 and results back. A GL action by A multiplies the condition number of S_G and S_H by up to
//! cond(A)², and the paper's invariance experiment draws Gaussian A whose condition number
//! reaches 10⁴–10⁵ for some of a model's heads; explicit products with S⁻¹, P and P⁻¹ then lose
//! all precision in f32 (geodesic sharpness collapsed to 1 % of its value on MiniLM), while in
//! f64 the measure stays invariant to 10⁻⁶. The tensors involved are `[heads, n, h]`, small
//! next to the model.
//!
//! # On the host
//! Where the device is the host and the model f32, the same formulas run as fused f64 products
//! read straight from the f32 buffers ([`on_host`], on [`fused::heads`](super::fused::heads)):
//! no f64 copy of a part and no n×h intermediate is made, and the second-order step and its
//! VJP each take one pass per side. Elsewhere (CUDA, autodiff, f64 models) they run as Burn's
//! batched operations below; `tests/gl_host.rs` checks that both give the same results.

use burn::prelude::{Backend, Tensor};
use burn::tensor::{DType, TensorData};
use nalgebra::DMatrix;

use super::base::{GeodesicStep, Geometry, Metric, dot, step_by, step_vjp_by};
use super::error::Error;
use super::fused::heads::Heads;
use super::fused::{dot_f64_on_host, gram_pairs, host_backend};
use super::host::{SpdFactors, gram, spd_factors, sylvester_basis};
use crate::host::{download_batch, upload_batch};

mod on_host;

use on_host::HostFrame;

/// Batched transpose of the last two axes.
fn t<B: Backend>(x: Tensor<B, 3>) -> Tensor<B, 3> {
    x.swap_dims(1, 2)
}

/// Casts to the working precision, f64.
fn f64<B: Backend>(x: &Tensor<B, 3>) -> Tensor<B, 3> {
    x.clone().cast(DType::F64)
}

/// A GL(h) pair block at a base point, under the inv or mix metric.
#[derive(Debug, Clone)]
pub struct AttentionGl<B: Backend> {
    /// The base point in the model's dtype (returned by `base()` and used by steps).
    base: Vec<Tensor<B, 3>>,
    /// The base point in f64 (used in every formula).
    base64: [Tensor<B, 3>; 2],
    /// The model's dtype, of every returned tangent.
    dtype: DType,
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
    /// The same frame per head on the host, with the base point in f64, where the device is
    /// the host and the model's dtype f32: the operations then run as [`on_host`]'s fused
    /// products.
    host: Option<HostFrame>,
}

impl<B: Backend> AttentionGl<B> {
    /// Builds the frame at `base` = [G, H] on the host (f64) and uploads it.
    pub fn new(block: &str, base: Vec<Tensor<B, 3>>, metric: Metric) -> Result<Self, Error> {
        assert!(metric.uses_symmetry(), "GL(h) blocks use inv or mix");
        let options = (&base[0].device(), DType::F64);
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
        let bases: Option<Vec<_>> = (metric != Metric::Mix).then(|| {
            (0..heads)
                .map(|i| sylvester_basis(&fg[i], &fh[i].s))
                .collect()
        });
        let (whiten_g, whiten_h) = match metric {
            Metric::Mix => (
                up(&|i| fh[i].inv_sqrt.clone()),
                up(&|i| fg[i].inv_sqrt.clone()),
            ),
            _ => (up(&|i| fg[i].sqrt.clone()), up(&|i| fh[i].sqrt.clone())),
        };
        let sylvester = bases.as_ref().map(|bases| {
            [
                up(&|i| bases[i].p.clone()),
                up(&|i| bases[i].p_inv.clone()),
                up(&|i| bases[i].d_inv.clone()),
            ]
        });
        let host = (host_backend::<B>() && base[0].dtype() == DType::F32)
            .then(|| HostFrame::new(metric, &fg, &fh, bases, [&gs, &hs]));
        Ok(Self {
            sg: up(&|i| fg[i].s.clone()),
            sh: up(&|i| fh[i].s.clone()),
            sg_inv: up(&|i| fg[i].inv.clone()),
            sh_inv: up(&|i| fh[i].inv.clone()),
            whiten_g,
            whiten_h,
            sylvester,
            host,
            base64: [f64(&base[0]), f64(&base[1])],
            dtype: base[0].dtype(),
            base,
            metric,
        })
    }

    /// Whether the operations run as fused products on the host (burn-ndarray, f32), rather
    /// than as Burn's operations.
    pub fn runs_on_host(&self) -> bool {
        self.host.is_some()
    }

    fn g(&self) -> Tensor<B, 3> {
        self.base64[0].clone()
    }

    fn h(&self) -> Tensor<B, 3> {
        self.base64[1].clone()
    }

    /// The host frame with the buffers of each of `vectors` (two parts each), when all are f32
    /// buffers on the host in standard layout; `None` sends the caller to Burn's operations.
    fn on_host<const K: usize>(
        &self,
        vectors: [&[Tensor<B, 3>]; K],
    ) -> Option<(&HostFrame, [[Heads; 2]; K])> {
        let (frame, vectors) = self.on_host_all(&vectors)?;
        Some((frame, vectors.try_into().ok()?))
    }

    /// [`on_host`](Self::on_host) for any number of vectors.
    fn on_host_all(&self, vectors: &[&[Tensor<B, 3>]]) -> Option<(&HostFrame, Vec<[Heads; 2]>)> {
        let frame = self.host.as_ref()?;
        let parts = |v: &[Tensor<B, 3>]| {
            let parts = [Heads::of(&v[0])?, Heads::of(&v[1])?];
            frame.fits(&parts).then_some(parts)
        };
        let vectors = vectors.iter().map(|v| parts(v)).collect::<Option<_>>()?;
        Some((frame, vectors))
    }

    /// The values as one f64 tensor on the base point's device.
    fn f64_entries(&self, values: Vec<f64>) -> Tensor<B, 1> {
        let n = values.len();
        Tensor::from_data(
            TensorData::new(values, [n]),
            (&self.sg.device(), DType::F64),
        )
    }

    /// Casts results back to the model's dtype.
    fn back(&self, parts: [Tensor<B, 3>; 2]) -> Vec<Tensor<B, 3>> {
        parts.into_iter().map(|p| p.cast(self.dtype)).collect()
    }

    /// The metric's h×h weights of the two sides, ⟨η, ζ⟩ = tr(W_G η_Gᵀζ_G) + tr(W_H η_Hᵀζ_H):
    /// (S_G⁻¹, S_H⁻¹) for inv, (S_H, S_G) for mix.
    fn metric_weights(&self) -> (&Tensor<B, 3>, &Tensor<B, 3>) {
        match self.metric {
            Metric::Mix => (&self.sh, &self.sg),
            _ => (&self.sg_inv, &self.sh_inv),
        }
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
        if let Some((frame, [a, b])) = self.on_host([a, b]) {
            return self.f64_entries(frame.gram(&[a, b], &[(0, 1)]));
        }
        // tr(S⁻¹ ηᵀ ζ) = Σ S⁻¹ ⊙ (ηᵀ ζ) for symmetric S⁻¹: one h×n by n×h product per head
        // and a sum over h² terms, where (η S⁻¹) ⊙ ζ would take an n×h by h×h product and a
        // sum over n·h terms.
        let (wg, wh) = self.metric_weights();
        let (wg, wh) = (wg.clone(), wh.clone());
        let gram = |a: &Tensor<B, 3>, b: &Tensor<B, 3>| t(f64(a)).matmul(f64(b));
        dot(wg, gram(&a[0], &b[0])) + dot(wh, gram(&a[1], &b[1]))
    }

    /// ⟨uₐ, u_b⟩ = Σ (uₐ S⁻¹) ⊙ u_b per side: one n×h by h×h product per vector and side,
    /// then a sum over n·h terms per pair. `inner`'s form tr(S⁻¹ uₐᵀu_b) takes an h×n by n×h
    /// product per *pair*: six instead of three per side for Auto-PGD's three vectors, and
    /// the products are most of the cost. An f32 model on the host takes `on_host`'s fused
    /// form of the same sums; an f64 one takes each sum as one pass over both f64 buffers
    /// and the entries as one tensor, where Burn takes a product, a sum and a concatenation.
    /// The entries equal `inner`'s up to the order of the f64 sums.
    fn gram(&self, u: &[&[Tensor<B, 3>]]) -> Tensor<B, 1> {
        let pairs = gram_pairs(u.len());
        if let Some((frame, vectors)) = self.on_host_all(u) {
            return self.f64_entries(frame.gram(&vectors, &pairs));
        }
        let (wg, wh) = self.metric_weights();
        let sides: Vec<[Tensor<B, 3>; 2]> = u.iter().map(|v| [f64(&v[0]), f64(&v[1])]).collect();
        let weighted: Vec<[Tensor<B, 3>; 2]> = sides
            .iter()
            .map(|[g, h]| [g.clone().matmul(wg.clone()), h.clone().matmul(wh.clone())])
            .collect();
        let on_host: Option<Vec<f64>> = pairs
            .iter()
            .map(|&(a, b)| {
                let (x, y) = (&weighted[a], &sides[b]);
                Some(dot_f64_on_host(&x[0], &y[0])? + dot_f64_on_host(&x[1], &y[1])?)
            })
            .collect();
        if let Some(entries) = on_host {
            return self.f64_entries(entries);
        }
        let entries = pairs
            .into_iter()
            .map(|(a, b)| {
                let (x, y) = (&weighted[a], &sides[b]);
                dot(x[0].clone(), y[0].clone()) + dot(x[1].clone(), y[1].clone())
            })
            .collect();
        Tensor::cat(entries, 0)
    }

    fn riemannian_gradient(&self, g: &[Tensor<B, 3>]) -> Vec<Tensor<B, 3>> {
        if let Some((frame, [g])) = self.on_host([g]) {
            return frame.riemannian_gradient(&g);
        }
        let (wg, wh) = match self.metric {
            Metric::Mix => (self.sh_inv.clone(), self.sg_inv.clone()),
            _ => (self.sg.clone(), self.sh.clone()),
        };
        self.back([f64(&g[0]).matmul(wg), f64(&g[1]).matmul(wh)])
    }

    fn horizontal(&self, xi: &[Tensor<B, 3>]) -> Vec<Tensor<B, 3>> {
        if let Some((frame, [xi])) = self.on_host([xi]) {
            return frame.horizontal(&xi);
        }
        let (xg, xh) = (f64(&xi[0]), f64(&xi[1]));
        let lambda = self.lambda(xg.clone(), xh.clone());
        self.back([
            xg + self.g().matmul(lambda.clone()),
            xh - self.h().matmul(t(lambda)),
        ])
    }

    fn christoffel(&self, xi: &[Tensor<B, 3>]) -> Result<Vec<Tensor<B, 3>>, Error> {
        if let Some((frame, [xi])) = self.on_host([xi]) {
            return Ok(frame.christoffel(&xi, false));
        }
        let (xg, xh) = (f64(&xi[0]), f64(&xi[1]));
        let (g, h) = (self.g(), self.h());
        let gram_g = t(xg.clone()).matmul(xg.clone());
        let gram_h = t(xh.clone()).matmul(xh.clone());
        // The h×h factors are multiplied first, so that each side takes two n×h by h×h
        // products (besides the two Gram-type products), not three or four.
        Ok(self.back(match self.metric {
            // Γ_G = ξ_G (M_H S_H⁻¹) − G (ξ_Hᵀξ_H S_H⁻¹), and Γ_H alike.
            Metric::Mix => {
                let (m_g, m_h) = (sym(xg.clone(), g.clone()), sym(xh.clone(), h.clone()));
                [
                    xg.matmul(m_h.matmul(self.sh_inv.clone()))
                        - g.matmul(gram_h.matmul(self.sh_inv.clone())),
                    xh.matmul(m_g.matmul(self.sg_inv.clone()))
                        - h.matmul(gram_g.matmul(self.sg_inv.clone())),
                ]
            }
            // Γ = −ξ (S⁻¹ M) + W (S⁻¹ ξᵀξ) per side.
            _ => {
                let side = |x: Tensor<B, 3>, w: Tensor<B, 3>, s_inv: Tensor<B, 3>, gram| {
                    -x.clone().matmul(s_inv.clone().matmul(sym(x, w.clone())))
                        + w.matmul(s_inv.matmul(gram))
                };
                [
                    side(xg, g, self.sg_inv.clone(), gram_g),
                    side(xh, h, self.sh_inv.clone(), gram_h),
                ]
            }
        }))
    }

    fn christoffel_vjp(
        &self,
        xi: &[Tensor<B, 3>],
        c: &[Tensor<B, 3>],
    ) -> Result<Vec<Tensor<B, 3>>, Error> {
        if let Some((frame, [xi, c])) = self.on_host([xi, c]) {
            return Ok(frame.christoffel_vjp(&xi, &c, false));
        }
        let (xg, xh) = (f64(&xi[0]), f64(&xi[1]));
        let (cg, ch) = (f64(&c[0]), f64(&c[1]));
        let (g, h) = (self.g(), self.h());
        let sym2 = |x: Tensor<B, 3>| x.clone() + t(x);
        Ok(self.back(match self.metric {
            // Γ_G = (ξ_G M_H − G ξ_Hᵀξ_H) S_H⁻¹ and Γ_H = (ξ_H M_G − H ξ_Gᵀξ_G) S_G⁻¹, M = ξᵀW + Wᵀξ.
            // With D = C S⁻¹ of one side (W its factor, ξ_W its tangent) and the other side (V, ξ_V):
            // δ_W gets D M_V; δ_V gets V (R + Rᵀ) − ξ_V (T + Tᵀ), R = Dᵀ ξ_W, T = Dᵀ W.
            // D is never formed: D M_V = C (S⁻¹ M_V), R = S⁻¹ (Cᵀ ξ_W), T = S⁻¹ (Cᵀ W), so the
            // n×h products are three per side instead of four.
            Metric::Mix => {
                let (m_g, m_h) = (sym(xg.clone(), g.clone()), sym(xh.clone(), h.clone()));
                let from = |c: &Tensor<B, 3>,
                            s_inv: &Tensor<B, 3>,
                            w: &Tensor<B, 3>,
                            xw: &Tensor<B, 3>,
                            v: &Tensor<B, 3>,
                            xv: &Tensor<B, 3>,
                            m_v: Tensor<B, 3>| {
                    let own = c.clone().matmul(s_inv.clone().matmul(m_v));
                    let r = s_inv.clone().matmul(t(c.clone()).matmul(xw.clone()));
                    let tt = s_inv.clone().matmul(t(c.clone()).matmul(w.clone()));
                    let other = v.clone().matmul(sym2(r)) - xv.clone().matmul(sym2(tt));
                    (own, other)
                };
                let (g_own, h_from_g) = from(&cg, &self.sh_inv, &g, &xg, &h, &xh, m_h);
                let (h_own, g_from_h) = from(&ch, &self.sg_inv, &h, &xh, &g, &xg, m_g);
                [g_own + g_from_h, h_own + h_from_g]
            }
            // Γ = −ξ S⁻¹ M + W S⁻¹ ξᵀξ per side; a = −C (M S⁻¹) − W (P + Pᵀ) + ξ (Q + Qᵀ),
            // P = Cᵀ ξ S⁻¹, Q = Cᵀ W S⁻¹.
            _ => {
                let side =
                    |x: Tensor<B, 3>, w: Tensor<B, 3>, cc: Tensor<B, 3>, s_inv: Tensor<B, 3>| {
                        let m = sym(x.clone(), w.clone());
                        let p = t(cc.clone()).matmul(x.clone()).matmul(s_inv.clone());
                        let q = t(cc.clone()).matmul(w.clone()).matmul(s_inv.clone());
                        -cc.matmul(m.matmul(s_inv)) - w.matmul(sym2(p)) + x.matmul(sym2(q))
                    };
                [
                    side(xg, g, cg, self.sg_inv.clone()),
                    side(xh, h, ch, self.sh_inv.clone()),
                ]
            }
        }))
    }

    /// On the host, the second-order step w + ξ − ½Γ(ξ, ξ) is one fused pass per side
    /// (`on_host`); otherwise as every geometry takes it.
    fn step(&self, xi: &[Tensor<B, 3>], method: GeodesicStep) -> Result<Vec<Tensor<B, 3>>, Error> {
        if method == GeodesicStep::SecondOrder {
            if let Some((frame, [xi])) = self.on_host([xi]) {
                return Ok(frame.christoffel(&xi, true));
            }
        }
        step_by(self, xi, method)
    }

    /// On the host, the second-order step's VJP c − ½(DΓ_ξ)ᵀc is one fused pass per side
    /// (`on_host`); otherwise as every geometry takes it.
    fn step_vjp(
        &self,
        xi: &[Tensor<B, 3>],
        method: GeodesicStep,
        c: &[Tensor<B, 3>],
    ) -> Result<Vec<Tensor<B, 3>>, Error> {
        if method == GeodesicStep::SecondOrder {
            if let Some((frame, [xi, c])) = self.on_host([xi, c]) {
                return Ok(frame.christoffel_vjp(&xi, &c, true));
            }
        }
        step_vjp_by(self, xi, method, c)
    }

    fn default_step(&self) -> GeodesicStep {
        GeodesicStep::SecondOrder
    }

    /// First and second order; no exact step, since no closed-form geodesic is known.
    fn check_step(&self, method: GeodesicStep) -> Result<(), Error> {
        match method {
            GeodesicStep::Exact => Err(Error::Unsupported {
                geometry: self.name(),
                op: "exp",
            }),
            _ => Ok(()),
        }
    }

    fn whiten(&self, z: &[Tensor<B, 3>]) -> Vec<Tensor<B, 3>> {
        if let Some((frame, [z])) = self.on_host([z]) {
            return frame.whiten(&z);
        }
        self.back([
            f64(&z[0]).matmul(self.whiten_g.clone()),
            f64(&z[1]).matmul(self.whiten_h.clone()),
        ])
    }
}
