//! `geosharp diagonal`: the diagonal-network study and its τ table.

use std::path::PathBuf;

use anyhow::Context;
use geosharp::studies::diagonal::{self, DiagonalStudy, DiagonalStudyConfig};

use super::progress::Bars;
use super::write_json;

/// Arguments of `geosharp diagonal`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Number of networks to train and measure.
    #[arg(long, default_value_t = 50)]
    models: usize,
    /// Seed of the task and of the hyperparameter draws.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Radius ρ of the three worst-case sharpness measures.
    #[arg(long, default_value_t = 0.01)]
    rho: f64,
    /// Auto-PGD iterations per measurement.
    #[arg(long, default_value_t = 20)]
    iters: usize,
    /// Gradient-descent step budget per network.
    #[arg(long, default_value_t = 3000)]
    max_steps: usize,
    /// Write the full result (every network, all correlations) as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// Runs the study and prints the table.
pub fn run<B: burn::tensor::backend::AutodiffBackend>(
    args: &Args,
    device: &B::Device,
) -> anyhow::Result<()> {
    let config = DiagonalStudyConfig {
        models: args.models,
        seed: args.seed,
        rho: args.rho,
        iterations: args.iters,
        max_steps: args.max_steps,
        ..DiagonalStudyConfig::default()
    };
    let study = diagonal::run::<B>(&config, device, &mut Bars::default())
        .context("the diagonal-network study failed")?;
    print!("{}", table(&study));
    if let Some(path) = &args.json {
        write_json(path, &study)?;
    }
    Ok(())
}

fn table(s: &DiagonalStudy) -> String {
    let c = &s.settings;
    let mut out = format!(
        "Kendall τ between worst-case sharpness and test loss\n\
         {} diagonal networks, d = {}, n = {}, {} nonzeros; ρ = {}, {} Auto-PGD iterations, seed {}\n\n",
        s.models, c.dim, c.n_train, c.nonzeros, c.rho, c.iterations, c.seed
    );
    out += &format!(
        "{:<14} {:>8} {:>8} {:>9} {:>10}\n",
        "measure", "τ-a", "τ-b", "Spearman", "paper τ"
    );
    let rows = [
        (
            "adaptive",
            s.kendall_tau.adaptive,
            s.kendall_tau_b.adaptive,
            s.spearman.adaptive,
            s.paper_kendall_tau.adaptive,
        ),
        (
            "geodesic inv",
            s.kendall_tau.geodesic_inv,
            s.kendall_tau_b.geodesic_inv,
            s.spearman.geodesic_inv,
            s.paper_kendall_tau.geodesic_inv,
        ),
        (
            "geodesic mix",
            s.kendall_tau.geodesic_mix,
            s.kendall_tau_b.geodesic_mix,
            s.spearman.geodesic_mix,
            s.paper_kendall_tau.geodesic_mix,
        ),
    ];
    for (name, a, b, r, p) in rows {
        out += &format!("{name:<14} {a:>8.3} {b:>8.3} {r:>9.3} {p:>10.2}\n");
    }
    out += &format!(
        "\ntrained in {:.1} s, measured in {:.1} s\n",
        s.train_seconds, s.measure_seconds
    );
    out
}
