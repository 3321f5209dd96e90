//! Auto-PGD over ξ in the ρ-ball of the metric (Croce & Hein 2020; Hide & Seek App. C.2, Alg. 1).
//!
//! Maximises L_B(v(ξ)) over horizontal ξ with ‖ξ‖_w ≤ ρ, starting at ξ = 0:
//!
//! * ascent direction: the horizontal Riemannian gradient ĝ = P(grad_R) / ‖P(grad_R)‖_w;
//! * P_S = horizontal projection, then rescaling into the ρ-ball (rescaling keeps
//!   horizontality); since the horizontal space at w is linear, the intermediate point z needs
//!   only the rescaling, and each new iterate is projected once (against round-off drift);
//! * z = P_S(ξ_k + η ĝ_k), ξ_{k+1} = P_S(ξ_k + α(z − ξ_k) + (1 − α)(ξ_k − ξ_{k−1})), α = 0.75,
//!   and ξ_1 = P_S(ξ_0 + η ĝ_0);
//! * η starts at 2ρ and halves at checkpoints w_j = ⌈p_j N⌉, p₀ = 0, p₁ = 0.22,
//!   p_{j+1} = p_j + max(p_j − p_{j−1} − 0.03, 0.06), when fewer than 75 % of the steps since
//!   the last checkpoint improved the best loss, or when neither η nor the best loss changed;
//!   the search then restarts from the best point.
//!
//! The loss and gradient at ξ_k come from one forward and one backward pass, so N iterations
//! cost N forward+backward passes plus one forward pass for ξ_N. The state is four vectors of
//! the model's size (ξ, ξ_prev, ξ_best and the ascent direction at ξ_best) besides the base
//! weights. Per iteration, one two-element tensor (loss, ‖grad‖) is read back to the host, and
//! the update reads back the Gram matrix of (ξ_k, grad, ξ_{k−1}): six numbers.
//!
//! A start at a stationary point (grad = 0 exactly, e.g. the minimum of a quadratic) has no
//! ascent direction; the first step then goes along a seeded random horizontal direction.

use burn::prelude::{Backend, Tensor};
use burn::tensor::DType;
use burn::tensor::backend::AutodiffBackend;

use super::error::Error;
use super::landscape::{GradientMode, Inner, Landscape};
use super::objective::Objective;
use super::progress::Progress;
use super::worst_case::WorstCase;
use crate::geometry::{Probes, Product, Tangent};
use crate::host;

/// Tuning of Auto-PGD; the defaults are the paper's.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AutoPgdParams {
    /// N, the number of iterations (gradient evaluations). Default 20.
    pub iterations: usize,
    /// α, the weight of the new point in the momentum step. Default 0.75.
    pub momentum: f64,
    /// Initial step size as a multiple of ρ. Default 2.
    pub initial_step: f64,
    /// Fraction of improving steps below which the step halves. Default 0.75.
    pub min_update_ratio: f64,
    /// How ∇_ξ is taken. Default through the step.
    pub gradient: GradientMode,
    /// Searches per batch, keeping the best. The first starts at ξ = 0 (the paper's Alg. 1);
    /// each further one at a seeded random point on the ρ-sphere, for landscapes whose
    /// maximum a local ascent from ξ = 0 misses (Croce & Hein's restarts). Default 1.
    pub restarts: usize,
}

impl Default for AutoPgdParams {
    fn default() -> Self {
        Self {
            iterations: 20,
            momentum: 0.75,
            initial_step: 2.0,
            min_update_ratio: 0.75,
            gradient: GradientMode::ThroughStep,
            restarts: 1,
        }
    }
}

/// What happened during one maximisation.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AutoPgdInfo {
    /// L_B(w).
    pub clean_loss: f64,
    /// The best L_B(v(ξ)) found.
    pub best_loss: f64,
    /// Iteration at which the best point was found (0 = the base point).
    pub best_iteration: usize,
    /// How many times the step was halved.
    pub step_halvings: usize,
    /// The final step size.
    pub final_step: f64,
    /// Whether the first step had to use a random direction (stationary start).
    pub random_start: bool,
    /// The restart that found the best point (0 = the start at ξ = 0).
    pub restart: usize,
}

/// The checkpoints w_j = ⌈p_j N⌉, j ≥ 1, at which the step size is reconsidered.
pub fn checkpoints(n: usize) -> Vec<usize> {
    let mut p = vec![0.0_f64, 0.22];
    let mut w = vec![0_usize, (0.22 * n as f64).ceil() as usize];
    while w[w.len() - 1] < n && w[w.len() - 1] != w[w.len() - 2] {
        let (a, b) = (p[p.len() - 2], p[p.len() - 1]);
        let next = b + (b - a - 0.03).max(0.06);
        p.push(next);
        w.push((next * n as f64).ceil() as usize);
    }
    w.remove(0);
    w
}

/// The result of one maximisation: the best perturbation and the bookkeeping.
#[derive(Debug, Clone)]
pub struct Maximum<B: AutodiffBackend> {
    /// The best ξ found (inner backend).
    pub xi: Tangent<Inner<B>>,
    /// What happened.
    pub info: AutoPgdInfo,
}

/// P_S: horizontal projection, then rescaling into the ρ-ball (no host round trip).
pub fn project_to_ball<B: Backend>(geometry: &Product<B>, xi: &Tangent<B>, rho: f64) -> Tangent<B> {
    rescale_to_ball(geometry, &geometry.horizontal(xi), rho)
}

/// Rescales ξ into the ρ-ball of the metric: ξ · min(1, ρ/‖ξ‖_w).
fn rescale_to_ball<B: Backend>(geometry: &Product<B>, xi: &Tangent<B>, rho: f64) -> Tangent<B> {
    // A zero norm gives +inf, clamped to 1, and 0·1 = 0.
    let scale = geometry.norm(xi).recip().mul_scalar(rho).clamp_max(1.0);
    xi.scale_by(&scale)
}

/// Runs Auto-PGD on one batch with the radius, tuning and seed of `config`, over
/// `config.pgd.restarts` starts, keeping the best. `batch_index` labels errors and offsets the
/// seeds; `progress` advances once per iteration.
pub fn maximise<B: AutodiffBackend, M: Objective<B>>(
    landscape: &Landscape<B, M>,
    geometry: &Product<Inner<B>>,
    batch: &M::Batch,
    config: &WorstCase,
    batch_index: usize,
    progress: &mut dyn Progress,
) -> Result<Maximum<B>, Error> {
    let seed = config.seed.wrapping_add(1_000_003 * batch_index as u64);
    let zero = Tangent::zeros_like(landscape.base());
    let mut best: Option<Maximum<B>> = None;
    let mut clean_loss = f64::NAN;
    for restart in 0..config.pgd.restarts.max(1) {
        let start = if restart == 0 {
            zero.clone()
        } else {
            let direction =
                random_direction(geometry, &zero, seed.wrapping_add(7919 * restart as u64));
            direction.scale(config.rho).detach()
        };
        let mut found = search(
            landscape,
            geometry,
            batch,
            config,
            start,
            batch_index,
            seed,
            progress,
        )?;
        if restart == 0 {
            clean_loss = found.info.clean_loss;
        }
        found.info.restart = restart;
        if best
            .as_ref()
            .is_none_or(|b| found.info.best_loss > b.info.best_loss)
        {
            best = Some(found);
        }
    }
    let mut best = best.expect("at least one restart");
    best.info.clean_loss = clean_loss;
    Ok(best)
}

/// One Auto-PGD search from `start`. Its `clean_loss` is the loss at `start`.
#[allow(clippy::too_many_arguments)] // the search's state, passed once from `maximise`
fn search<B: AutodiffBackend, M: Objective<B>>(
    landscape: &Landscape<B, M>,
    geometry: &Product<Inner<B>>,
    batch: &M::Batch,
    config: &WorstCase,
    start: Tangent<Inner<B>>,
    batch_index: usize,
    seed: u64,
    progress: &mut dyn Progress,
) -> Result<Maximum<B>, Error> {
    let (rho, params) = (config.rho, &config.pgd);
    let n = params.iterations;
    let checkpoints = checkpoints(n);
    let alpha = params.momentum;
    let mut eta = params.initial_step * rho;

    let mut xi = start;
    let mut xi_prev = xi.clone();
    let mut best_xi = xi.clone();
    let mut best_dir: Option<Tangent<Inner<B>>> = None;
    let mut clean_loss = f64::NAN;
    let mut best_loss = f64::NEG_INFINITY;
    let mut info = AutoPgdInfo {
        clean_loss,
        best_loss,
        best_iteration: 0,
        step_halvings: 0,
        final_step: eta,
        random_start: false,
        restart: 0,
    };
    let (mut updates, mut prev_cp, mut prev_eta, mut prev_best) = (0_usize, 0_usize, eta, f64::NAN);

    for k in 0..n {
        let (loss, egrad) = landscape.loss_and_gradient(geometry, &xi, batch, params.gradient);
        let (grad, gnorm) = ascent(geometry, &egrad);
        let read = host::to_f64_vec(Tensor::cat(vec![loss.cast(DType::F64), gnorm], 0));
        let (loss, gn) = (read[0], read[1]);
        if !loss.is_finite() {
            return Err(Error::NonFiniteLoss {
                batch: batch_index,
                iteration: k,
                loss,
            });
        }
        if !gn.is_finite() {
            return Err(Error::NonFiniteGradient {
                batch: batch_index,
                iteration: k,
                loss,
            });
        }
        // The ascent direction; `next_iterate` normalises it.
        let mut dir = if gn > 0.0 {
            grad
        } else {
            info.random_start |= k == 0;
            random_direction(geometry, &xi, seed.wrapping_add(k as u64))
        };
        if k == 0 {
            clean_loss = loss;
            best_loss = loss;
            prev_best = loss;
            best_dir = Some(dir.clone());
        } else if loss > best_loss {
            best_loss = loss;
            best_xi = xi.clone();
            best_dir = Some(dir.clone());
            info.best_iteration = k;
            updates += 1;
        }
        // Checkpoint after evaluating ξ_k, i.e. at the end of reference iteration k − 1.
        if k >= 1 && checkpoints.contains(&(k - 1)) {
            let i = k - 1;
            let too_few = (updates as f64) < params.min_update_ratio * (i - prev_cp) as f64;
            let stalled = prev_eta == eta && prev_best == best_loss;
            (prev_eta, prev_best, prev_cp, updates) = (eta, best_loss, i, 0);
            if too_few || stalled {
                eta *= 0.5;
                info.step_halvings += 1;
                xi = best_xi.clone();
                xi_prev = best_xi.clone();
                dir = best_dir.clone().expect("set at k = 0");
            }
        }
        let next = next_iterate(
            geometry,
            &xi,
            (k > 0).then_some(&xi_prev),
            &dir,
            eta,
            alpha,
            rho,
        );
        xi_prev = std::mem::replace(&mut xi, next.detach());
        progress.advance(1);
    }
    // The last iterate is evaluated with a forward pass only.
    let last = host::scalar(landscape.loss_at(geometry.step(&xi), batch));
    if !last.is_finite() {
        return Err(Error::NonFiniteLoss {
            batch: batch_index,
            iteration: n,
            loss: last,
        });
    }
    if last > best_loss {
        best_loss = last;
        best_xi = xi;
        info.best_iteration = n;
    }
    info.clean_loss = clean_loss;
    info.best_loss = best_loss;
    info.final_step = eta;
    Ok(Maximum { xi: best_xi, info })
}

/// The horizontal Riemannian gradient P(grad_R L) from the Euclidean gradient ∇_ξ L, and its
/// norm ‖P(grad_R L)‖_w (a one-element device tensor).
pub fn ascent<B: Backend>(geometry: &Product<B>, egrad: &Tangent<B>) -> (Tangent<B>, Tensor<B, 1>) {
    let grad = geometry.horizontal(&geometry.riemannian_gradient(egrad));
    let norm = geometry.norm(&grad);
    (grad, norm)
}

/// One Auto-PGD update: ξ_{k+1} from ξ_k, ξ_{k−1} (`None` at k = 0) and an ascent direction
/// d with ĝ_k = d/‖d‖_w, with step η, momentum α and radius ρ:
///
/// z = P_S(ξ_k + η ĝ_k), ξ_{k+1} = P_S(ξ_k + α(z − ξ_k) + (1 − α)(ξ_k − ξ_{k−1})), ξ_1 = z.
///
/// ξ_k and ĝ are horizontal and the horizontal space at w is linear, so z only needs
/// rescaling: z = s₁ y with y = ξ_k + η ĝ_k and s₁ = min(1, ρ/‖y‖_w). The momentum point is
/// m = α s₁ y + 2(1 − α) ξ_k − (1 − α) ξ_{k−1}, and ξ_{k+1} = P(s₂ m) with
/// s₂ = min(1, ρ/‖m‖_w).
///
/// Both norms are quadratic forms in (ξ_k, d, ξ_{k−1}): with G their Gram matrix
/// ([`Product::gram`], one read of the three vectors) and y = aᵀ(ξ_k, d, ξ_{k−1}),
/// ‖y‖² = aᵀGa, and likewise for m. So no intermediate point is formed: the update is that
/// read, one host read-back of G (k(k+1)/2 numbers, beside the loss Auto-PGD reads anyway),
/// and one pass that writes s₂ m ([`Tangent::combination`]) before the projection, which
/// removes floating-point drift. P is metric-orthogonal, so ‖P(s₂ m)‖ ≤ ‖s₂ m‖ ≤ ρ: the
/// iterate stays in the ball whether or not the inputs are exactly horizontal; for horizontal
/// inputs P(s₂ m) = s₂ m = P_S(m) up to rounding.
///
/// A zero or non-finite ‖d‖ gives no step along d (the guarded 1/‖d‖ is 0).
pub fn next_iterate<B: Backend>(
    geometry: &Product<B>,
    xi: &Tangent<B>,
    xi_prev: Option<&Tangent<B>>,
    dir: &Tangent<B>,
    eta: f64,
    alpha: f64,
    rho: f64,
) -> Tangent<B> {
    let vectors: Vec<&Tangent<B>> = [xi, dir].into_iter().chain(xi_prev).collect();
    let gram = Gram::new(vectors.len(), host::to_f64_vec(geometry.gram(&vectors)));
    let d_norm = gram.get(1, 1).max(0.0).sqrt();
    let step = if d_norm > 0.0 && d_norm.is_finite() {
        eta / d_norm
    } else {
        0.0
    };
    // min(1, ρ/‖v‖): ρ/0 = +inf and min(1, +inf) = 1; a NaN norm gives 1 (f64::min).
    let into_ball = |sq: f64| (rho / sq.max(0.0).sqrt()).min(1.0);
    let s1 = into_ball(gram.quadratic(&[1.0, step, 0.0]));
    match xi_prev {
        None => Tangent::combination(&[(s1, xi), (s1 * step, dir)]),
        Some(xi_prev) => {
            let c = 1.0 - alpha;
            let m = [alpha * s1 + 2.0 * c, alpha * s1 * step, -c];
            let s2 = into_ball(gram.quadratic(&m));
            let momentum =
                Tangent::combination(&[(s2 * m[0], xi), (s2 * m[1], dir), (s2 * m[2], xi_prev)]);
            geometry.horizontal(&momentum)
        }
    }
}

/// A symmetric k×k Gram matrix (k ≤ 3) from its upper triangle in row order, on the host.
struct Gram {
    k: usize,
    entries: Vec<f64>,
}

impl Gram {
    fn new(k: usize, entries: Vec<f64>) -> Self {
        debug_assert_eq!(entries.len(), k * (k + 1) / 2);
        Self { k, entries }
    }

    /// G_ab for a, b < k.
    fn get(&self, a: usize, b: usize) -> f64 {
        let (a, b) = (a.min(b), a.max(b));
        // Row a of the upper triangle starts after a rows of k, k − 1, … entries.
        self.entries[a * self.k - a * (a.saturating_sub(1)) / 2 + (b - a)]
    }

    /// cᵀGc = ‖Σₐ cₐ uₐ‖², over the first k coefficients (the rest must be 0).
    fn quadratic(&self, c: &[f64]) -> f64 {
        debug_assert!(c[self.k..].iter().all(|x| *x == 0.0));
        let mut sum = 0.0;
        for a in 0..self.k {
            for b in 0..self.k {
                sum += c[a] * c[b] * self.get(a, b);
            }
        }
        sum
    }
}

/// A unit-norm random horizontal direction (seeded), for a stationary start.
fn random_direction<B: Backend>(geometry: &Product<B>, like: &Tangent<B>, seed: u64) -> Tangent<B> {
    let z = Probes::new(seed).gaussian(like);
    let h = geometry.horizontal(&geometry.whiten(&z));
    let norm = geometry.norm(&h);
    h.scale_by(&norm.clamp_min(f64::MIN_POSITIVE).recip())
}
