//! `geosharp invariance`: the paper's §6.2 experiment on a BERT checkpoint.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use geosharp::studies::invariance::{
    self, InvarianceConfig, InvarianceReport, METRICS, NoiseDraw, measure_settings,
};
use serde::{Deserialize, Serialize};

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
    /// The sharpness at the original weights from `geosharp measure --json` on the same
    /// checkpoint, head, sentences and settings, instead of measuring it again: the experiment
    /// then costs three measurements per scale.
    #[arg(long)]
    original: Option<PathBuf>,
    /// Merge these `geosharp invariance --json` files (the same experiment run on different
    /// scales) into one table and `--json`, measuring nothing.
    #[arg(long, value_delimiter = ',', num_args = 1..)]
    merge: Vec<PathBuf>,
    /// Write the results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// What a run measured on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Subject {
    checkpoint: String,
    head: String,
    points: usize,
    batch: usize,
}

/// The JSON of a run: what it measured on, and the report.
#[derive(Debug, Serialize, Deserialize)]
struct Saved {
    #[serde(flatten)]
    subject: Subject,
    #[serde(flatten)]
    report: InvarianceReport,
}

/// Runs the experiment (or merges earlier runs) and prints the table.
pub fn run<B: burn::tensor::backend::AutodiffBackend>(
    args: &Args,
    device: &B::Device,
) -> anyhow::Result<()> {
    if !args.merge.is_empty() {
        return merge(args);
    }
    let (dir, task) = load_task::<B>(
        args.checkpoint.as_ref(),
        args.seed,
        args.head_train_limit,
        device,
    )?;
    let batches = task.batches(args.points, args.batch, device)?;
    let mut config = InvarianceConfig {
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
    let subject = Subject {
        checkpoint: dir.display().to_string(),
        head: task.head_file.display().to_string(),
        points: args.points,
        batch: args.batch,
    };
    if let Some(path) = &args.original {
        let clean_loss = invariance::mean_loss(&task.model, &batches);
        config.original = Some(original_from_measure(path, &subject, &config, clean_loss)?);
    }
    let report = invariance::run(&task.model, &batches, &config, &mut Bars::default())
        .context("the invariance experiment failed")?;
    print_table(&Saved { subject, report }, args.json.as_deref())
}

/// `--merge`: one report from the runs in `args.merge`.
fn merge(args: &Args) -> anyhow::Result<()> {
    let runs = args
        .merge
        .iter()
        .map(|path| {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("could not read {}", path.display()))?;
            serde_json::from_str::<Saved>(&text).with_context(|| {
                format!(
                    "{} is not the JSON of `geosharp invariance`",
                    path.display()
                )
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let subject = runs[0].subject.clone();
    for (path, run) in args.merge.iter().zip(&runs) {
        if run.subject != subject {
            let s = &run.subject;
            bail!(
                "{} measured {} (head {}, {} sentences in batches of {}), not what {} measured; \
                 only runs on the same checkpoint and sentences can be merged",
                path.display(),
                s.checkpoint,
                s.head,
                s.points,
                s.batch,
                args.merge[0].display()
            );
        }
    }
    let reports: Vec<_> = runs.into_iter().map(|r| r.report).collect();
    let report = invariance::merge(&reports).context("the runs cannot be merged")?;
    print_table(&Saved { subject, report }, args.json.as_deref())
}

/// The sharpness at the original weights recorded by `geosharp measure --json` in `path`,
/// after checking that it measured `subject` with the settings of `config`, and the same model:
/// its clean loss must be `clean_loss`, this run's loss at the original weights. Paths alone
/// do not say that: a head refitted in a new cache keeps its file name (one refit moved the
/// loss by 2.1e-4, test accuracy 75.4 % → 75.6 %).
fn original_from_measure(
    path: &Path,
    subject: &Subject,
    config: &InvarianceConfig,
    clean_loss: f64,
) -> anyhow::Result<[f64; 3]> {
    /// Relative tolerance on the clean loss: the same weights evaluated through the flat
    /// parameter vector of Auto-PGD agree to ≈ 1e-7; another head or checkpoint differs by
    /// orders of magnitude more.
    const SAME_LOSS: f64 = 1e-5;
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("could not read {}", path.display()))?;
    let measured: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    let check = |what: &str, got: &serde_json::Value, want: serde_json::Value| {
        if *got != want {
            bail!(
                "{} has {what} {got}, but this run uses {want}: run `geosharp measure` with the \
                 same checkpoint and settings, or leave out --original",
                path.display()
            );
        }
        Ok(())
    };
    check(
        "checkpoint",
        &measured["checkpoint"],
        subject.checkpoint.clone().into(),
    )?;
    check("head", &measured["head"], subject.head.clone().into())?;
    check("points", &measured["points"], subject.points.into())?;
    check("batch", &measured["batch"], subject.batch.into())?;
    let mut original = [f64::NAN; 3];
    for (value, metric) in original.iter_mut().zip(METRICS) {
        let name = metric.measure_name();
        let result = measured["results"]
            .as_array()
            .and_then(|results| results.iter().find(|r| r["geometry"] == name))
            .with_context(|| format!("{} has no {name} result", path.display()))?;
        let want = serde_json::to_value(measure_settings(config, metric))?;
        check(&format!("{name} settings"), &result["settings"], want)?;
        let recorded = result["clean_loss"].as_f64().unwrap_or(f64::NAN);
        let change = (recorded - clean_loss).abs() / clean_loss.abs().max(f64::MIN_POSITIVE);
        // A NaN (no clean loss recorded) fails the check too.
        if change.is_nan() || change > SAME_LOSS {
            bail!(
                "{} recorded a clean loss of {recorded} for {name}, but the model loaded now has \
                 {clean_loss} on the same sentences: the head or the checkpoint has changed since \
                 (a head refitted in a new cache, say). Run `geosharp measure --json {}` again, or \
                 leave out --original",
                path.display(),
                path.display()
            );
        }
        *value = result["sharpness"]
            .as_f64()
            .filter(|s| s.is_finite() && *s > 0.0)
            .with_context(|| {
                format!(
                    "{}: the {name} sharpness is not a positive number",
                    path.display()
                )
            })?;
    }
    Ok(original)
}

/// Prints the table of `saved` and writes it to `json`.
fn print_table(saved: &Saved, json: Option<&Path>) -> anyhow::Result<()> {
    let report = &saved.report;
    println!(
        "Every head of {} acted on by A = a·N ({} N per scale); sharpness relative to the original weights\n",
        saved.subject.checkpoint,
        match report.noise {
            NoiseDraw::Shared => "one shared",
            NoiseDraw::PerScale => "a fresh",
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
    if let Some(path) = json {
        write_json(path, saved)?;
    }
    Ok(())
}
