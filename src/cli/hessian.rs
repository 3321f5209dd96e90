//! `geosharp hessian`: Hessian-based measures of a BERT checkpoint on MR — top eigenvalues,
//! trace, spectral density, Rényi sharpness and Wen et al.'s directional sharpness.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use geosharp::geometry::{GeometryConfig, Metric};
use geosharp::hessian::{
    self, HessianOperator, LinearOperator, Order, PowerIteration, Renyi, Slq, SpectralDensity,
};
use geosharp::measures::{Landscape, SharpnessReport, WorstCase, worst_case_in};
use geosharp::symmetry::Symmetric;
use serde::Serialize;

use super::measure::load_task;
use super::progress::Bars;
use super::{plot, write_json};

/// Arguments of `geosharp hessian`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Checkpoint directory (default: the fetched all-MiniLM-L6-v2 with its MR head).
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// What to estimate.
    #[arg(long, default_value = "all", value_parser = ["lmax", "trace", "density", "renyi", "wen", "all"])]
    what: String,
    /// Only the parameter blocks whose name contains this (e.g. `layer.5.`); default all.
    #[arg(long)]
    blocks: Option<String>,
    /// Print the parameter blocks and exit.
    #[arg(long)]
    list_blocks: bool,
    /// Rényi orders α.
    #[arg(long, value_delimiter = ',', default_value = "0.5,1,2")]
    alpha: Vec<f64>,
    /// Lanczos steps (top eigenvalues and each SLQ probe).
    #[arg(long, default_value_t = 15)]
    steps: usize,
    /// Probes for the trace (Hutch++ uses 3× this many products), SLQ and the average direction.
    /// Rényi sharpness's reference setting is 100; each probe costs `steps` Hessian-vector
    /// products of two forward+backward passes per batch.
    #[arg(long, default_value_t = 10)]
    probes: usize,
    /// ρ of Wen et al.'s directional sharpness (Euclidean radius).
    #[arg(long, default_value_t = 0.01)]
    rho: f64,
    /// Norm of the finite-difference step ‖hv‖ of the Hessian-vector products (default ε^{1/3}
    /// of f32, 4.9e−3).
    #[arg(long)]
    fd_step: Option<f64>,
    /// Richardson-extrapolate the finite differences (error O(h⁴) instead of O(h²), twice the
    /// cost); on MiniLM the plain difference is a few % off on λ_max.
    #[arg(long)]
    richardson: bool,
    /// Training sentences.
    #[arg(long, default_value_t = 128)]
    points: usize,
    /// Sentences per batch (the Hessian is of the mean loss over all of them).
    #[arg(long, default_value_t = 128)]
    batch: usize,
    /// Seed of the probes and of the split.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Fit a missing head on at most this many training sentences (default: all).
    #[arg(long)]
    head_train_limit: Option<usize>,
    /// Write the results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Plot the spectral density (log scale) as SVG here.
    #[arg(long)]
    plot: Option<PathBuf>,
}

#[derive(Serialize, Default)]
struct Output {
    checkpoint: String,
    blocks: Option<String>,
    dim: usize,
    points: usize,
    lmax: Option<Lmax>,
    trace: Option<Trace>,
    density: Option<SpectralDensity>,
    renyi: Option<Vec<Renyi>>,
    wen: Option<Wen>,
    hessian_vector_products: usize,
    seconds: f64,
}

#[derive(Serialize)]
struct Lmax {
    /// (Ritz value, residual bound), largest algebraic first.
    lanczos: Vec<(f64, f64)>,
    power: hessian::Eigenvalue,
    seconds: f64,
}

#[derive(Serialize)]
struct Trace {
    hutch_plus_plus: hessian::Estimate,
    seconds: f64,
}

#[derive(Serialize)]
struct Wen {
    rho: f64,
    worst_direction: SharpnessReport,
    worst_direction_limit: Option<f64>,
    ascent_direction: hessian::AscentDirection,
    average_direction: hessian::Estimate,
    average_direction_limit: Option<f64>,
}

/// Runs the estimators and prints their table.
pub fn run<B: burn::tensor::backend::AutodiffBackend>(
    args: &Args,
    device: &B::Device,
) -> anyhow::Result<()> {
    let start = Instant::now();
    let (dir, task) = load_task::<B>(
        args.checkpoint.as_ref(),
        args.seed,
        args.head_train_limit,
        device,
    )?;
    let landscape = Landscape::new(task.model.clone(), &task.model.symmetries())?;
    if args.list_blocks {
        for block in landscape.layout().blocks() {
            println!("{}", block.name);
        }
        return Ok(());
    }
    let batches = task.batches(args.points, args.batch, device)?;
    let sizes: Vec<usize> = batches.iter().map(|b| b.labels.dims()[0]).collect();
    let mut op = HessianOperator::new(&landscape, &batches)?
        .with_batch_sizes(&sizes)?
        .with_richardson(args.richardson);
    if let Some(step) = args.fd_step {
        anyhow::ensure!(
            step > 0.0 && step.is_finite(),
            "--fd-step must be positive, got {step}"
        );
        op = op.with_step_norm(step);
    }
    if let Some(pattern) = &args.blocks {
        op = op.restrict_to(pattern)?;
    }
    let all = args.what == "all";
    let wants = |w: &str| all || args.what == w;
    let mut out = Output {
        checkpoint: dir.display().to_string(),
        blocks: args.blocks.clone(),
        dim: op.dim(),
        points: sizes.iter().sum(),
        ..Output::default()
    };
    println!(
        "Hessian of the mean MR loss of {} over {} sentences, {} parameters{}\n",
        dir.display(),
        out.points,
        out.dim,
        args.blocks
            .as_ref()
            .map(|b| format!(" (blocks matching {b:?})"))
            .unwrap_or_default()
    );
    if wants("lmax") || wants("wen") {
        let t = Instant::now();
        let lanczos = stage("λ_max (Lanczos)", || {
            hessian::top_eigenvalues(&op, 3, args.steps, Order::LargestAlgebraic, args.seed)
        })?;
        let power = stage("λ_max (power)", || {
            hessian::power_iteration(
                &op,
                &PowerIteration {
                    seed: args.seed,
                    ..PowerIteration::default()
                },
                Order::LargestAlgebraic,
            )
        })?;
        println!(
            "λ_max          {:.6} (Lanczos, residual bound {:.2e}; power iteration {:.6} in {} products)",
            lanczos[0].0, lanczos[0].1, power.value, power.products
        );
        out.lmax = Some(Lmax {
            lanczos,
            power,
            seconds: t.elapsed().as_secs_f64(),
        });
    }
    if wants("trace") || wants("wen") {
        let t = Instant::now();
        let estimate = stage("trace (Hutch++)", || {
            hessian::hutch_plus_plus(&op, 3 * args.probes, args.seed)
        })?;
        println!(
            "trace          {:.6} ± {:.6} (Hutch++, {} products)",
            estimate.value, estimate.std_error, estimate.products
        );
        out.trace = Some(Trace {
            hutch_plus_plus: estimate,
            seconds: t.elapsed().as_secs_f64(),
        });
    }
    if wants("density") || wants("renyi") {
        let config = Slq {
            steps: args.steps,
            probes: args.probes,
            seed: args.seed,
        };
        let density = stage("density (SLQ)", || hessian::slq(&op, &config))?;
        let (lo, hi) = density.range();
        println!(
            "spectrum       nodes in [{lo:.4}, {hi:.4}] ({} probes × {} steps)",
            config.probes, config.steps
        );
        if wants("renyi") {
            let renyi = hessian::renyi_from_density(&density, &args.alpha)?;
            for r in &renyi {
                println!(
                    "Rényi α = {:<4} {:.6} ± {:.6}",
                    r.alpha, r.sharpness, r.std_error
                );
            }
            out.renyi = Some(renyi);
        }
        if let Some(path) = &args.plot {
            let pad = 0.05 * (hi - lo).max(1e-6);
            let grid: Vec<f64> = (0..=800)
                .map(|i| lo - pad + (hi - lo + 2.0 * pad) * i as f64 / 800.0)
                .collect();
            let sigma = 0.01 * (hi - lo).max(1e-6);
            plot::line_svg(
                path,
                &format!("Hessian spectral density ({} parameters)", out.dim),
                "eigenvalue",
                "density",
                &grid,
                &density.smoothed(&grid, sigma),
                true,
            )?;
        }
        out.density = Some(density);
    }
    if wants("wen") {
        let ascent = stage("ascent direction", || {
            hessian::ascent_direction(&op, args.rho)
        })?;
        let average = stage("average direction", || {
            hessian::average_direction(&op, args.rho, args.probes, args.seed)
        })?;
        let geometry = GeometryConfig::new(Metric::Euclidean);
        let (product, _) = landscape
            .geometry(&geometry)?
            .restrict(|name| args.blocks.as_ref().is_none_or(|p| name.contains(p)));
        let config = WorstCase::new(args.rho, geometry);
        let worst = worst_case_in(
            &landscape,
            &product,
            &batches,
            &config,
            &mut Bars::default(),
            Instant::now(),
        )
        .context("measuring worst-direction sharpness")?;
        let lambda = out.lmax.as_ref().map(|l| l.lanczos[0].0);
        let trace = out.trace.as_ref().map(|t| t.hutch_plus_plus.value);
        let wen = Wen {
            rho: args.rho,
            worst_direction_limit: lambda.map(|l| args.rho * args.rho * l / 2.0),
            average_direction_limit: trace
                .map(|t| hessian::average_direction_limit(args.rho, t, op.dim())),
            worst_direction: worst,
            ascent_direction: ascent,
            average_direction: average,
        };
        let show = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{v:.6e}"));
        println!("\nWen et al. at ρ = {}:", args.rho);
        println!(
            "  worst direction   {:.6e}   (ρ²λ₁/2 = {})",
            wen.worst_direction.sharpness,
            show(wen.worst_direction_limit)
        );
        println!(
            "  ascent direction  {:.6e}   (ρ‖∇L‖ + ρ²ĝᵀHĝ/2 = {:.6e})",
            wen.ascent_direction.value, wen.ascent_direction.small_rho_limit
        );
        println!(
            "  average direction {:.6e} ± {:.1e}   (ρ² tr H / 2D = {})",
            wen.average_direction.value,
            wen.average_direction.std_error,
            show(wen.average_direction_limit)
        );
        out.wen = Some(wen);
    }
    out.hessian_vector_products = op.products();
    out.seconds = start.elapsed().as_secs_f64();
    println!(
        "\n{} Hessian-vector products in {:.1} s",
        out.hessian_vector_products, out.seconds
    );
    if let Some(path) = &args.json {
        write_json(path, &out)?;
    }
    Ok(())
}

/// Runs one estimator under a spinner.
fn stage<T>(label: &str, f: impl FnOnce() -> Result<T, hessian::Error>) -> anyhow::Result<T> {
    let spinner = indicatif::ProgressBar::new_spinner();
    spinner.set_message(label.to_string());
    spinner.enable_steady_tick(std::time::Duration::from_millis(200));
    let result = f().with_context(|| format!("estimating {label}"));
    spinner.finish_and_clear();
    result
}
