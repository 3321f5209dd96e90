//! `geosharp invariance`: the paper's §6.2 experiment on a BERT checkpoint.

use std::path::PathBuf;

use anyhow::Context;
use geosharp::studies::invariance::{self, InvarianceConfig, NoiseDraw};

use super::measure::load_task;
use super::progress::Bars;
use super::write_json;

/// Arguments of `geosharp invariance`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Checkpoint directory (default: the fetched all-MiniLM-L6-v2 with its MR head).
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// Scales a of A = a·N.
    #[arg(long, value_delimiter = ',', default_value = "0.01,0.1,1,10,100")]
    scales: Vec<f64>,
    /// Radius ρ of every measure.
    #[arg(long, default_value_t = 0.1)]
    rho: f64,
    /// Auto-PGD iterations.
    #[arg(long, default_value_t = 20)]
    iters: usize,
    /// Training sentences to measure on.
    #[arg(long, default_value_t = 1024)]
    points: usize,
    /// Sentences per batch.
    #[arg(long, default_value_t = 128)]
    batch: usize,
    /// Seed of N and of the train/test split.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Reuse one N at every scale instead of drawing a fresh one per scale.
    #[arg(long)]
    shared_noise: bool,
    /// Fit a missing head on at most this many training sentences (default: all).
    #[arg(long)]
    head_train_limit: Option<usize>,
    /// Write the results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// Runs the experiment and prints the table.
pub fn run<B: burn::tensor::backend::AutodiffBackend>(
    args: &Args,
    device: &B::Device,
) -> anyhow::Result<()> {
    let (dir, task) = load_task::<B>(
        args.checkpoint.as_ref(),
        args.seed,
        args.head_train_limit,
        device,
    )?;
    let batches = task.batches(args.points, args.batch, device)?;
    let config = InvarianceConfig {
        scales: args.scales.clone(),
        rho: args.rho,
        iterations: args.iters,
        seed: args.seed,
        noise: if args.shared_noise {
            NoiseDraw::Shared
        } else {
            NoiseDraw::PerScale
        },
        ..InvarianceConfig::default()
    };
    let report = invariance::run(&task.model, &batches, &config, &mut Bars::default())
        .context("the invariance experiment failed")?;
    println!(
        "Every head of {} acted on by A = a·N ({} N per scale); sharpness relative to the original weights\n",
        dir.display(),
        if args.shared_noise {
            "one shared"
        } else {
            "a fresh"
        }
    );
    println!(
        "{:>8} {:>12} {:>10} {:>13} {:>13}",
        "a", "loss change", "adaptive", "geodesic inv", "geodesic mix"
    );
    for (i, a) in report.scales.iter().enumerate() {
        println!(
            "{:>8} {:>12.2e} {:>10.3} {:>13.4} {:>13.4}",
            a,
            report.loss_rel_change[i],
            report.ratios.adaptive[i],
            report.ratios.geodesic_inv[i],
            report.ratios.geodesic_mix[i]
        );
    }
    println!(
        "\noriginal sharpness: adaptive {:.5}, geodesic inv {:.5}, geodesic mix {:.5}; {:.0} s",
        report.original[0], report.original[1], report.original[2], report.seconds
    );
    if let Some(path) = &args.json {
        write_json(path, &report)?;
    }
    Ok(())
}
