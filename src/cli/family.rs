//! `geosharp family`: trains the family of ViTs of the correlation study, one `geosharp
//! train` checkpoint per drawn configuration.

use std::path::PathBuf;

use anyhow::Context;
use geosharp::studies::family::{Scale, draw};
use geosharp::train::{TrainReport, load_report};

use geosharp::data::fashion::Split;

use super::measure::fashion_mnist;
use super::train::train_and_save;
use super::write_json;

/// Arguments of `geosharp family`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Directory that receives one checkpoint per model (run-000, run-001, …).
    #[arg(long)]
    out: PathBuf,
    /// Number of models.
    #[arg(long, default_value_t = 30)]
    count: usize,
    /// Seed of the hyperparameter draw.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// study (the default ViT, 500–4 000 images, 2–12 epochs) or ci (tiny, seconds per model).
    #[arg(long, default_value = "study")]
    scale: Scale,
}

/// Trains every model of the family that is not already in `--out` with the same
/// configuration (so an interrupted family resumes), then prints the family's table.
pub fn run<B: burn::tensor::backend::AutodiffBackend>(
    args: &Args,
    device: &B::Device,
) -> anyhow::Result<()> {
    anyhow::ensure!(args.count > 0, "--count must be at least 1");
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("could not create {}", args.out.display()))?;
    let configs = draw(args.count, args.seed, args.scale);
    write_json(&args.out.join("family.json"), &configs)?;
    let (all_train, all_test) = (fashion_mnist(Split::Train)?, fashion_mnist(Split::Test)?);
    let mut reports = Vec::with_capacity(configs.len());
    for (i, config) in configs.iter().enumerate() {
        let dir = args.out.join(format!("run-{i:03}"));
        let done = load_report(&dir).ok().filter(|r| r.config == *config);
        let report = match done {
            Some(report) => {
                eprintln!("run-{i:03}: already trained");
                report
            }
            None => {
                eprintln!("run-{i:03} of {}:", configs.len());
                train_and_save::<B>(config, &all_train, &all_test, Some(&dir), device)?
            }
        };
        reports.push(report);
    }
    print!("{}", table(&reports));
    Ok(())
}

fn table(reports: &[TrainReport]) -> String {
    let mut out = format!(
        "\n{:>4} {:>5} {:>8} {:>8} {:>5} {:>6} {:>5} {:>5} {:>9} {:>8} {:>7}\n",
        "run", "opt", "lr", "wd", "batch", "epochs", "noise", "n", "train err", "test err", "gap"
    );
    for (i, r) in reports.iter().enumerate() {
        let c = &r.config;
        let err = |e: Option<geosharp::train::Evaluation>| e.map_or(f64::NAN, |e| 100.0 * e.error);
        out += &format!(
            "{i:>4} {:>5} {:>8.1e} {:>8.1e} {:>5} {:>6} {:>5.2} {:>5} {:>8.2}% {:>7.2}% {:>7.2}\n",
            r.optimizer,
            c.learning_rate,
            c.weight_decay,
            c.batch,
            c.epochs,
            c.label_noise,
            c.train_size,
            err(r.final_train),
            err(r.final_test),
            r.error_gap().map_or(f64::NAN, |g| 100.0 * g)
        );
    }
    out
}
