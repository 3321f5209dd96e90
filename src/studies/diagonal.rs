//! The diagonal-network study (Hide & Seek §6.1, Table 1, first row): train a family of
//! diagonal linear networks y = xᵀ(u ⊙ v) on one sparse regression task with varied training
//! hyperparameters, measure adaptive, geodesic-inv and geodesic-mix worst-case sharpness on the
//! training set, and correlate each with the test loss (Kendall τ-a and τ-b, Spearman ρ).
//!
//! # Design (the paper does not state it; these are our choices)
//! * Task: one [`SparseRegression`] problem, d = 200, k = 20 (90 %-sparse β*, entries ±1),
//!   n = 100 noiseless training points. Test loss in closed form, ‖β − β*‖².
//! * Per model, drawn from the study seed: initialisation scale α ~ log-U[10⁻³, 1] with
//!   u₀ = √2 α 𝟙, v₀ = 0 (so u² − v² = 2α² is conserved by gradient flow: small α gives
//!   sparse, ℓ1-like solutions, large α dense, ℓ2-like ones), and learning rate
//!   η ~ log-U[0.01, 0.05].
//! * Training: full-batch gradient descent on (1/n)‖Xβ − y‖² for at most 3000 steps, stopping
//!   a model once its training loss is below 10⁻⁸. Small-α models are slow (saddle-to-saddle
//!   dynamics) and some end the budget with a small residual.
//! * Measures: worst-case sharpness on the whole training set (one batch), ρ = 0.01, 20 Auto-PGD
//!   iterations; adaptive with the first-order step, inv and mix with exact geodesics. ρ is
//!   small because the only term of geodesic-mix sharpness that differs between models is
//!   first order in ρ (see below); at ρ ≥ 0.1 the data-only second-order term dominates it.
//!
//! # Why the task and n are held fixed
//! Under the mix metric the quotient geometry of a diagonal network is flat in β: a horizontal
//! ξ moves β to β₀ ⊙ (1 + 2b) with ‖ξ‖² = 2‖b ⊙ β₀‖², i.e. to any β₀ + δ with ‖δ‖ ≤ √2 ρ. For the
//! squared loss at an interpolating β the rise is exactly (1/n)‖Xδ‖², so geodesic-mix sharpness
//! is 2ρ² λ_max(XᵀX)/n — a property of the *data*, identical for every interpolating model.
//! Varying n or the data across models would make it measure the data size instead; only the
//! residual of models that are not fully converged distinguishes them. Geodesic-inv and
//! adaptive sharpness coincide to first order in ρ here (both are √2 ρ ‖β ⊙ ∇_β L‖ plus
//! curvature), so they differ only through higher-order terms.

use std::time::Instant;

use burn::prelude::{Backend, Tensor};
use burn::tensor::backend::AutodiffBackend;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::Serialize;

use crate::data::SparseRegression;
use crate::geometry::{GeodesicStep, GeometryConfig, Metric, StepPolicy, ZeroWeights};
use crate::host::{to_f64_vec, upload};
use crate::measures::{self, Landscape, Progress, WorstCase, worst_case};
use crate::models::{DiagonalNet, RegressionBatch};
use crate::stats::{spearman, tau_a, tau_b};
use crate::symmetry::Symmetric;

/// Why the study failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A setting is out of range.
    #[error(transparent)]
    Settings(#[from] measures::Error),
    /// Measuring one network failed.
    #[error(
        "measuring {measure} sharpness of network {network} (α = {alpha:.3e}, η = {lr:.3e}) failed: {source}"
    )]
    Measure {
        /// Index of the network.
        network: usize,
        /// Which measure.
        measure: &'static str,
        /// Its initialisation scale.
        alpha: f64,
        /// Its learning rate.
        lr: f64,
        /// The measure's error.
        #[source]
        source: measures::Error,
    },
}

/// The paper's Table 1 values for diagonal networks (adaptive, geodesic inv, geodesic mix).
pub const PAPER_TAU: [f64; 3] = [-0.68, -0.83, -0.86];

/// Settings of the study; [`Default`] is the documented design.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct DiagonalStudyConfig {
    /// Number of networks.
    pub models: usize,
    /// Seed of the task and of the hyperparameter draws.
    pub seed: u64,
    /// Dimension d.
    pub dim: usize,
    /// Nonzero entries of β*.
    pub nonzeros: usize,
    /// Training points n.
    pub n_train: usize,
    /// Label noise σ.
    pub noise: f64,
    /// Range of the initialisation scale α (log-uniform).
    pub alpha: (f64, f64),
    /// Range of the learning rate (log-uniform).
    pub learning_rate: (f64, f64),
    /// Gradient-descent step budget.
    pub max_steps: usize,
    /// Training loss at which a model stops.
    pub tolerance: f64,
    /// ρ of the three sharpness measures.
    pub rho: f64,
    /// Auto-PGD iterations.
    pub iterations: usize,
}

impl Default for DiagonalStudyConfig {
    fn default() -> Self {
        Self {
            models: 50,
            seed: 0,
            dim: 200,
            nonzeros: 20,
            n_train: 100,
            noise: 0.0,
            alpha: (1e-3, 1.0),
            learning_rate: (0.01, 0.05),
            max_steps: 3000,
            tolerance: 1e-8,
            rho: 0.01,
            iterations: 20,
        }
    }
}

/// One trained network and its measurements.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DiagonalModel {
    /// Initialisation scale α.
    pub alpha: f64,
    /// Learning rate η.
    pub learning_rate: f64,
    /// Gradient steps taken.
    pub steps: usize,
    /// Final training loss.
    pub train_loss: f64,
    /// Population test loss.
    pub test_loss: f64,
    /// Adaptive worst-case sharpness.
    pub adaptive: f64,
    /// Geodesic sharpness, inv metric.
    pub geodesic_inv: f64,
    /// Geodesic sharpness, mix metric.
    pub geodesic_mix: f64,
}

/// Correlations of the three measures with the test loss.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Correlations {
    /// With adaptive sharpness.
    pub adaptive: f64,
    /// With geodesic-inv sharpness.
    pub geodesic_inv: f64,
    /// With geodesic-mix sharpness.
    pub geodesic_mix: f64,
}

/// The study's result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DiagonalStudy {
    /// Number of networks.
    pub models: usize,
    /// Kendall τ-a (the paper's statistic) with the test loss.
    pub kendall_tau: Correlations,
    /// Kendall τ-b with the test loss.
    pub kendall_tau_b: Correlations,
    /// Spearman ρ with the test loss.
    pub spearman: Correlations,
    /// The paper's τ values.
    pub paper_kendall_tau: Correlations,
    /// Every network.
    pub networks: Vec<DiagonalModel>,
    /// The settings.
    pub settings: DiagonalStudyConfig,
    /// Seconds spent training.
    pub train_seconds: f64,
    /// Seconds spent measuring.
    pub measure_seconds: f64,
}

/// Trained factors of every model, row-major `[models, d]`, with steps and final losses.
struct Trained {
    u: Vec<f64>,
    v: Vec<f64>,
    steps: Vec<usize>,
}

/// Full-batch gradient descent of all models at once, on the device:
/// β = U ⊙ V, R = β Xᵀ − y, ∇β = (2/n) R X, U ← U − η ⊙ V ⊙ ∇β, V ← V − η ⊙ U ⊙ ∇β.
/// A model whose loss is below the tolerance at a check (every 50 steps) is frozen.
fn train<B: Backend>(
    task: &SparseRegression,
    alphas: &[f64],
    lrs: &[f64],
    config: &DiagonalStudyConfig,
    device: &B::Device,
    progress: &mut dyn Progress,
) -> Trained {
    const CHECK_EVERY: usize = 50;
    let (m, d, n) = (alphas.len(), task.dim, task.n());
    let dtype = Tensor::<B, 1>::zeros([1], device).dtype();
    let opts = (device, dtype);
    let x = upload::<B, 2>(&task.x, [n, d], opts);
    let x_t = x.clone().transpose();
    let y = upload::<B, 2>(&task.y, [1, n], opts);
    let u0: Vec<f64> = alphas
        .iter()
        .flat_map(|a| vec![2f64.sqrt() * a; d])
        .collect();
    let mut u = upload::<B, 2>(&u0, [m, d], opts);
    let mut v = Tensor::<B, 2>::zeros([m, d], opts);
    let mut lr = upload::<B, 2>(lrs, [m, 1], opts);
    let mut active = vec![true; m];
    let mut steps = vec![config.max_steps; m];
    progress.begin("training", config.max_steps as u64);
    for t in 0..config.max_steps {
        let r = (u.clone() * v.clone()).matmul(x_t.clone()) - y.clone();
        if t % CHECK_EVERY == 0 {
            let losses = to_f64_vec(r.clone().square().mean_dim(1));
            for (i, loss) in losses.iter().enumerate() {
                if active[i] && *loss < config.tolerance {
                    active[i] = false;
                    steps[i] = t;
                }
            }
            if active.iter().all(|a| !a) {
                progress.advance((config.max_steps - t) as u64);
                break;
            }
            let mask: Vec<f64> = lrs
                .iter()
                .zip(&active)
                .map(|(l, a)| if *a { *l } else { 0.0 })
                .collect();
            lr = upload::<B, 2>(&mask, [m, 1], opts);
            progress.advance(CHECK_EVERY.min(config.max_steps - t) as u64);
        }
        let g = r.matmul(x.clone()).mul_scalar(2.0 / n as f64) * lr.clone();
        let (du, dv) = (v.clone() * g.clone(), u.clone() * g);
        u = u - du;
        v = v - dv;
    }
    progress.end();
    Trained {
        u: to_f64_vec(u),
        v: to_f64_vec(v),
        steps,
    }
}

/// Runs the study on backend `B` (training on its inner backend, measuring with autodiff).
pub fn run<B: AutodiffBackend>(
    config: &DiagonalStudyConfig,
    device: &B::Device,
    progress: &mut dyn Progress,
) -> Result<DiagonalStudy, Error> {
    measures::check_count("models", config.models, 2)?;
    measures::check_count("iterations", config.iterations, 1)?;
    let task = SparseRegression::sample(
        config.dim,
        config.nonzeros,
        config.n_train,
        config.noise,
        config.seed,
    );
    let mut rng = StdRng::seed_from_u64(config.seed.wrapping_add(0x5eed));
    let log_uniform = |rng: &mut StdRng, (lo, hi): (f64, f64)| {
        (lo.ln() + rng.random::<f64>() * (hi.ln() - lo.ln())).exp()
    };
    let alphas: Vec<f64> = (0..config.models)
        .map(|_| log_uniform(&mut rng, config.alpha))
        .collect();
    let lrs: Vec<f64> = (0..config.models)
        .map(|_| log_uniform(&mut rng, config.learning_rate))
        .collect();

    let start = Instant::now();
    let trained = train::<B::InnerBackend>(&task, &alphas, &lrs, config, device, progress);
    let train_seconds = start.elapsed().as_secs_f64();

    let start = Instant::now();
    let (d, n) = (config.dim, task.n());
    let dtype = Tensor::<B, 1>::zeros([1], device).dtype();
    let batch = RegressionBatch {
        x: upload::<B, 2>(&task.x, [n, d], (device, dtype)),
        y: upload::<B, 1>(&task.y, [n], (device, dtype)),
    };
    let exact = StepPolicy {
        rescale: Some(GeodesicStep::Exact),
        ..StepPolicy::default()
    };
    let configs = [
        GeometryConfig::new(Metric::Adaptive),
        GeometryConfig::new(Metric::Inv).with_steps(exact),
        GeometryConfig::new(Metric::Mix).with_steps(exact),
    ]
    .map(|g| {
        WorstCase::new(config.rho, g.with_zero_weights(ZeroWeights::Freeze))
            .with_iterations(config.iterations)
    });

    progress.begin("measuring", (config.models * 3) as u64);
    let mut networks = Vec::with_capacity(config.models);
    for i in 0..config.models {
        let (u, v) = (
            &trained.u[i * d..(i + 1) * d],
            &trained.v[i * d..(i + 1) * d],
        );
        let beta: Vec<f64> = u.iter().zip(v).map(|(a, b)| a * b).collect();
        let model = DiagonalNet::new(
            upload::<B, 1>(u, [d], (device, dtype)),
            upload::<B, 1>(v, [d], (device, dtype)),
        );
        let landscape = Landscape::new(model.clone(), &model.symmetries())?;
        let mut values = [0.0; 3];
        for (value, wc) in values.iter_mut().zip(&configs) {
            let report = worst_case(
                &landscape,
                std::slice::from_ref(&batch),
                wc,
                &mut measures::Silent,
            )
            .map_err(|source| Error::Measure {
                network: i,
                measure: wc.geometry.metric.measure_name(),
                alpha: alphas[i],
                lr: lrs[i],
                source,
            })?;
            *value = report.sharpness;
            progress.advance(1);
        }
        networks.push(DiagonalModel {
            alpha: alphas[i],
            learning_rate: lrs[i],
            steps: trained.steps[i],
            train_loss: task.train_loss(&beta),
            test_loss: task.test_loss(&beta),
            adaptive: values[0],
            geodesic_inv: values[1],
            geodesic_mix: values[2],
        });
    }
    progress.end();
    let test: Vec<f64> = networks.iter().map(|m| m.test_loss).collect();
    let column = |f: fn(&DiagonalModel) -> f64| networks.iter().map(f).collect::<Vec<_>>();
    let columns = [
        column(|m| m.adaptive),
        column(|m| m.geodesic_inv),
        column(|m| m.geodesic_mix),
    ];
    let correlate = |f: fn(&[f64], &[f64]) -> f64| Correlations {
        adaptive: f(&columns[0], &test),
        geodesic_inv: f(&columns[1], &test),
        geodesic_mix: f(&columns[2], &test),
    };
    Ok(DiagonalStudy {
        models: config.models,
        kendall_tau: correlate(tau_a),
        kendall_tau_b: correlate(tau_b),
        spearman: correlate(spearman),
        paper_kendall_tau: Correlations {
            adaptive: PAPER_TAU[0],
            geodesic_inv: PAPER_TAU[1],
            geodesic_mix: PAPER_TAU[2],
        },
        networks,
        settings: *config,
        train_seconds,
        measure_seconds: start.elapsed().as_secs_f64(),
    })
}
