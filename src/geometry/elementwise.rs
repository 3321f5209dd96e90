//! Elementwise blocks: the Euclidean metric and the adaptive metric ⟨η, ζ⟩ = Σ ηᵢζᵢ / wᵢ².
//!
//! Parameters outside any declared symmetry use the adaptive metric under the geodesic
//! measures ("the recipe of adaptive sharpness"), and *every* parameter uses it under
//! [`Metric::Adaptive`](super::Metric::Adaptive) — which is why adaptive sharpness is exactly
//! geodesic sharpness with only elementwise blocks and the first-order step.
//!
//! | | adaptive | Euclidean |
//! |---|---|---|
//! | ⟨η, ζ⟩ | Σ ηζ/w² | Σ ηζ |
//! | Riemannian gradient | w² ⊙ g | g |
//! | Γ(ξ, ξ) | −ξ²/w | 0 |
//! | exp_w(ξ) | w ⊙ exp(ξ/w) | w + ξ |
//! | whiten(z) | \|w\| ⊙ z | z |
//!
//! There is no symmetry, so `horizontal` is the identity.
//!
//! # Zero weights
//! 1/w is undefined at w = 0, and for |w| < [`ZERO_FLOOR`] = 10⁻¹⁶ it overflows in f32 (1/w²
//! beyond 3·10³⁸, while w² underflows, giving 0·∞ = NaN); such a weight's perturbation budget
//! ρ|w| is also far below any effect on the loss. Weights below the floor therefore count as
//! zero. With [`ZeroWeights::Error`] (the default) a block holding one is refused with
//! [`Error::ZeroWeight`]. With [`ZeroWeights::Freeze`] the coordinate is held fixed: 1/w is
//! replaced by 0 there, so the Riemannian gradient w²g, the exact step and the sampled noise
//! are all zero in that coordinate and it contributes nothing to the norm — the limit of the
//! constraint ‖δ ⊘ |w|‖ ≤ ρ as wᵢ → 0, and what the reference code computes.

use burn::prelude::{Backend, Tensor};

use super::base::{GeodesicStep, Geometry};
use super::error::Error;
use super::fused::{self, weighted_dot};
use crate::host;

/// Weights with |w| below this count as zero under metrics that divide by them (see the module
/// docs).
pub const ZERO_FLOOR: f64 = 1e-16;

/// What to do with weights that are exactly zero under a metric that divides by them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ZeroWeights {
    /// Refuse the block with [`Error::ZeroWeight`].
    #[default]
    Error,
    /// Hold zero coordinates fixed (1/w := 0 there).
    Freeze,
}

impl std::str::FromStr for ZeroWeights {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "error" => Ok(Self::Error),
            "freeze" => Ok(Self::Freeze),
            other => Err(format!(
                "unknown zero-weight policy '{other}'; expected error or freeze"
            )),
        }
    }
}

/// Per-part reciprocals of a base point: 1/w, with 0 where |w| < [`ZERO_FLOOR`].
pub(crate) fn reciprocal<B: Backend>(w: &Tensor<B, 3>) -> Tensor<B, 3> {
    let zero = w.clone().abs().lower_elem(ZERO_FLOOR);
    w.clone()
        .mask_fill(zero.clone(), 1.0)
        .recip()
        .mask_fill(zero, 0.0)
}

/// Refuses non-finite weights always, and zero weights unless `zeros` is `Freeze`.
pub(crate) fn check_weights<B: Backend>(
    block: &str,
    parts: &[Tensor<B, 3>],
    zeros: Option<ZeroWeights>,
) -> Result<(), Error> {
    // One read-only pass per part on the host; four passes and a read-back elsewhere.
    for w in parts {
        let bad = fused::count_on_host(w, |x| !x.is_finite()).unwrap_or_else(|| {
            host::scalar(w.clone().is_finite().bool_not().int().sum().float()) as usize
        });
        if bad > 0 {
            return Err(Error::NonFinite {
                block: block.to_string(),
                count: bad,
            });
        }
    }
    if zeros != Some(ZeroWeights::Error) {
        return Ok(());
    }
    for w in parts {
        let count = fused::count_on_host(w, |x| x.abs() < ZERO_FLOOR as f32).unwrap_or_else(|| {
            host::scalar(w.clone().abs().lower_elem(ZERO_FLOOR).int().sum().float()) as usize
        });
        if count > 0 {
            let values = host::to_f64_vec(w.clone());
            let first = values
                .iter()
                .position(|x| x.abs() < ZERO_FLOOR)
                .unwrap_or(0);
            return Err(Error::ZeroWeight {
                block: block.to_string(),
                count,
                first,
            });
        }
    }
    Ok(())
}

/// An elementwise block under the adaptive or the Euclidean metric.
#[derive(Debug, Clone)]
pub struct Elementwise<B: Backend> {
    base: Vec<Tensor<B, 3>>,
    frame: Option<AdaptiveFrame<B>>,
}

/// 1/s, 1/s², s² and |s| of every part, where s = w + η·sgn(w) is the shifted point of ASAM's
/// T = |w| + η (s = w for the adaptive metric proper, η = 0), and the shift s − w.
#[derive(Debug, Clone)]
struct AdaptiveFrame<B: Backend> {
    inv_w: Vec<Tensor<B, 3>>,
    inv_w2: Vec<Tensor<B, 3>>,
    w2: Vec<Tensor<B, 3>>,
    abs_w: Vec<Tensor<B, 3>>,
    shift: Option<Vec<Tensor<B, 3>>>,
}

impl<B: Backend> Elementwise<B> {
    /// The Euclidean geometry at `base`.
    pub fn euclidean(block: &str, base: Vec<Tensor<B, 3>>) -> Result<Self, Error> {
        check_weights(block, &base, None)?;
        Ok(Self { base, frame: None })
    }

    /// The adaptive geometry at `base`.
    pub fn adaptive(
        block: &str,
        base: Vec<Tensor<B, 3>>,
        zeros: ZeroWeights,
    ) -> Result<Self, Error> {
        Self::adaptive_offset(block, base, 0.0, zeros)
    }

    /// ASAM's adaptive geometry with T = |w| + η: the metric Σ ηζ / T², which is the adaptive
    /// metric at the shifted point s = w + η·sgn(w) (sgn(0) = +1), so every formula of the
    /// table above holds with s in place of w, and the exact step is w + s ⊙ (exp(ξ/s) − 1).
    /// η = 0 is [`Elementwise::adaptive`]; η > 0 has no zero weights (|s| ≥ η).
    ///
    /// # Errors
    /// [`Error::InvalidOffset`] for η < 0 or non-finite; the weight checks of `adaptive` when
    /// η = 0.
    pub fn adaptive_offset(
        block: &str,
        base: Vec<Tensor<B, 3>>,
        eta: f64,
        zeros: ZeroWeights,
    ) -> Result<Self, Error> {
        if !(eta.is_finite() && eta >= 0.0) {
            return Err(Error::InvalidOffset { eta });
        }
        check_weights(block, &base, (eta == 0.0).then_some(zeros))?;
        let (inv_w, inv_w2, w2, abs_w, shift) = if let Some(frame) = frame_on_host(&base, eta) {
            frame
        } else {
            frame_by_ops(&base, eta)
        };
        Ok(Self {
            base,
            frame: Some(AdaptiveFrame {
                inv_w,
                inv_w2,
                w2,
                abs_w,
                shift,
            }),
        })
    }
}

/// The parts of an [`AdaptiveFrame`]: 1/s, 1/s², s², |s| and (for η > 0) the shift s − w.
type FrameParts<B> = (
    Vec<Tensor<B, 3>>,
    Vec<Tensor<B, 3>>,
    Vec<Tensor<B, 3>>,
    Vec<Tensor<B, 3>>,
    Option<Vec<Tensor<B, 3>>>,
);

/// The frame at s = w + η·sgn(w) (sgn(0) = +1) with Burn's operations, on any backend.
fn frame_by_ops<B: Backend>(base: &[Tensor<B, 3>], eta: f64) -> FrameParts<B> {
    let (point, shift) = if eta == 0.0 {
        (base.to_vec(), None)
    } else {
        // η·sgn(w) with sgn(0) = +1: η where w ≥ 0, −η where w < 0.
        let shift: Vec<_> = base
            .iter()
            .map(|w| {
                let negative = w.clone().lower_elem(0.0);
                w.ones_like().mask_fill(negative, -1.0).mul_scalar(eta)
            })
            .collect();
        let point = base
            .iter()
            .zip(&shift)
            .map(|(w, d)| w.clone() + d.clone())
            .collect();
        (point, Some(shift))
    };
    let inv_w: Vec<_> = point.iter().map(reciprocal).collect();
    let inv_w2 = inv_w.iter().map(|r| r.clone().square()).collect();
    let w2 = point.iter().map(|w| w.clone().square()).collect();
    let abs_w = point.iter().map(|w| w.clone().abs()).collect();
    (inv_w, inv_w2, w2, abs_w, shift)
}

/// The same frame in one pass per part on the host ([`fused::map_on_host`]), the same
/// formulas element by element in f32; `None` unless every part is an f32 ndarray buffer.
fn frame_on_host<B: Backend>(base: &[Tensor<B, 3>], eta: f64) -> Option<FrameParts<B>> {
    let (eta, floor) = (eta as f32, ZERO_FLOOR as f32);
    let (mut inv_w, mut inv_w2, mut w2, mut abs_w, mut shift) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    // r = 1/s, 0 where |s| is below the floor (as `reciprocal`).
    let recip = move |s: f32| if s.abs() < floor { 0.0 } else { 1.0 / s };
    for w in base {
        let [r, r2, s2, a] = if eta == 0.0 {
            fused::map_on_host(w, |s| {
                let r = recip(s);
                [r, r * r, s * s, s.abs()]
            })?
        } else {
            let [r, r2, s2, a, d] = fused::map_on_host(w, |w| {
                // η·sgn(w) with sgn(0) = +1.
                let d = if w < 0.0 { -eta } else { eta };
                let s = w + d;
                let r = recip(s);
                [r, r * r, s * s, s.abs(), d]
            })?;
            shift.push(d);
            [r, r2, s2, a]
        };
        inv_w.push(r);
        inv_w2.push(r2);
        w2.push(s2);
        abs_w.push(a);
    }
    Some((inv_w, inv_w2, w2, abs_w, (eta > 0.0).then_some(shift)))
}

impl<B: Backend> Geometry<B> for Elementwise<B> {
    fn name(&self) -> &'static str {
        match self.frame {
            Some(_) => "elementwise/adaptive",
            None => "elementwise/euclidean",
        }
    }

    fn base(&self) -> &[Tensor<B, 3>] {
        &self.base
    }

    fn inner(&self, u: &[Tensor<B, 3>], v: &[Tensor<B, 3>]) -> Tensor<B, 1> {
        let terms = u
            .iter()
            .zip(v)
            .enumerate()
            .map(|(i, (u, v))| match &self.frame {
                Some(f) => weighted_dot(u, v, Some(&f.inv_w2[i])),
                None => weighted_dot(u, v, None),
            });
        sum_scalars(terms)
    }

    /// One pass per part over all the vectors ([`fused::weighted_gram`]), the parts' entries
    /// added in part order as `inner` adds them.
    fn gram(&self, u: &[&[Tensor<B, 3>]]) -> Tensor<B, 1> {
        let terms = (0..self.base.len()).map(|i| {
            let xs: Vec<&Tensor<B, 3>> = u.iter().map(|v| &v[i]).collect();
            fused::weighted_gram(&xs, self.frame.as_ref().map(|f| &f.inv_w2[i]))
        });
        sum_scalars(terms)
    }

    fn riemannian_gradient(&self, egrad: &[Tensor<B, 3>]) -> Vec<Tensor<B, 3>> {
        match &self.frame {
            Some(f) => egrad
                .iter()
                .zip(&f.w2)
                .map(|(g, w2)| g.clone() * w2.clone())
                .collect(),
            None => egrad.to_vec(),
        }
    }

    fn horizontal(&self, u: &[Tensor<B, 3>]) -> Vec<Tensor<B, 3>> {
        u.to_vec()
    }

    fn christoffel(&self, xi: &[Tensor<B, 3>]) -> Result<Vec<Tensor<B, 3>>, Error> {
        Ok(match &self.frame {
            // Γ(ξ, ξ) = −ξ² / w
            Some(f) => xi
                .iter()
                .zip(&f.inv_w)
                .map(|(x, r)| -(x.clone().square() * r.clone()))
                .collect(),
            None => xi.iter().map(Tensor::zeros_like).collect(),
        })
    }

    fn exp(&self, xi: &[Tensor<B, 3>]) -> Result<Vec<Tensor<B, 3>>, Error> {
        Ok(match &self.frame {
            // exp_w(ξ) = w ⊙ exp(ξ / w); with an offset, s ⊙ exp(ξ / s) − (s − w).
            Some(f) => self
                .base
                .iter()
                .zip(xi)
                .zip(&f.inv_w)
                .enumerate()
                .map(|(i, ((w, x), r))| match &f.shift {
                    None => w.clone() * (x.clone() * r.clone()).exp(),
                    Some(shift) => {
                        let s = w.clone() + shift[i].clone();
                        s * (x.clone() * r.clone()).exp() - shift[i].clone()
                    }
                })
                .collect(),
            None => super::base::add(&self.base, xi),
        })
    }

    fn christoffel_vjp(
        &self,
        xi: &[Tensor<B, 3>],
        c: &[Tensor<B, 3>],
    ) -> Result<Vec<Tensor<B, 3>>, Error> {
        Ok(match &self.frame {
            // DΓ[δ] = −2ξδ/w, self-adjoint: a = −2 ξ c / w.
            Some(f) => xi
                .iter()
                .zip(c)
                .zip(&f.inv_w)
                .map(|((x, c), r)| -(x.clone() * c.clone() * r.clone()).mul_scalar(2.0))
                .collect(),
            None => c.iter().map(Tensor::zeros_like).collect(),
        })
    }

    fn exp_vjp(&self, xi: &[Tensor<B, 3>], c: &[Tensor<B, 3>]) -> Result<Vec<Tensor<B, 3>>, Error> {
        Ok(match &self.frame {
            // d/dξ w·exp(ξ/w) = exp(ξ/w).
            Some(f) => xi
                .iter()
                .zip(c)
                .zip(&f.inv_w)
                .map(|((x, c), r)| c.clone() * (x.clone() * r.clone()).exp())
                .collect(),
            None => c.to_vec(),
        })
    }

    fn default_step(&self) -> GeodesicStep {
        GeodesicStep::FirstOrder
    }

    /// Every step: Γ, exp and their VJPs all have closed forms here.
    fn check_step(&self, _method: GeodesicStep) -> Result<(), Error> {
        Ok(())
    }

    fn whiten(&self, z: &[Tensor<B, 3>]) -> Vec<Tensor<B, 3>> {
        match &self.frame {
            // |w| ⊙ z (|s| ⊙ z with an offset), with 0 at frozen zeros since w = 0 there.
            Some(f) => z
                .iter()
                .zip(&f.abs_w)
                .map(|(z, a)| z.clone() * a.clone())
                .collect(),
            None => z.to_vec(),
        }
    }
}

/// Sums one-element tensors (an empty sum is never asked for: every block has a part).
pub(crate) fn sum_scalars<B: Backend>(terms: impl Iterator<Item = Tensor<B, 1>>) -> Tensor<B, 1> {
    terms
        .reduce(|a, b| a + b)
        .expect("a block has at least one part")
}
