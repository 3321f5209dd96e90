//! `geosharp correlate`: measures every checkpoint of a family (cached per checkpoint,
//! shardable) and reports Kendall's τ between each measure and the generalisation gap. A
//! family may hold ViT checkpoints (`geosharp train`/`family --task vit`) and MiniLM tails
//! (`family --task mr`); each is measured on the first `--points` of its own training set,
//! with its own (noisy) labels, over the weights it trained.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use burn::tensor::backend::AutodiffBackend;
use geosharp::geometry::{Metric, ZeroWeights};
use geosharp::hessian::{self, HessianOperator, Order, Slq};
use geosharp::measures::Objective;
use geosharp::measures::{Landscape, Progress, Silent, worst_case};
use geosharp::studies::correlation::{
    Cached, Correlation, Gap, MeasureCache, MeasureKey, Shard, checkpoints, correlate,
};
use geosharp::symmetry::Symmetric;
use geosharp::train::mr_tail::{
    MrTailConfig, is_tail_checkpoint, load_tail, load_tail_report, measurement_batches,
};
use geosharp::train::{Evaluation, load_report};
use serde::Serialize;

use geosharp::data::fashion::{Images, Split};

use super::family::{TailBase, same_base, tail_base};
use super::measure::{fashion_mnist, metrics, vit_batches, worst_case_config};
use super::plot::{Panel, scatter_svg};
use super::progress::Bars;
use super::write_json;

/// Arguments of `geosharp correlate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Directory of checkpoints saved by `geosharp train` or `geosharp family` (one per
    /// subdirectory).
    #[arg(long)]
    runs: PathBuf,
    /// Worst-case geometries to measure (none: only the Hessian measures).
    #[arg(long, default_value = "all", value_parser = ["adaptive", "inv", "mix", "all", "none"])]
    geometry: String,
    /// Radii ρ of the worst-case measures (comma-separated: the study sweeps it).
    #[arg(long, value_delimiter = ',', default_value = "0.1")]
    rho: Vec<f64>,
    /// Also the Hessian measures: λ_max (Lanczos), trace (Hutch++) and Rényi sharpness α = 1
    /// (SLQ).
    #[arg(long)]
    hessian: bool,
    /// Training examples each checkpoint is measured on (the first of its training set).
    #[arg(long, default_value_t = 512)]
    points: usize,
    /// Images per batch (m of m-sharpness).
    #[arg(long, default_value_t = 128)]
    batch: usize,
    /// Auto-PGD iterations per batch.
    #[arg(long, default_value_t = 20)]
    iters: usize,
    /// Lanczos steps of λ_max and of each SLQ probe.
    #[arg(long, default_value_t = 20)]
    steps: usize,
    /// Probes of SLQ (Hutch++ uses 3× this many products).
    #[arg(long, default_value_t = 5)]
    probes: usize,
    /// Measure only this shard of the sorted checkpoints, i/n (the report covers every
    /// checkpoint measured so far, by any shard).
    #[arg(long, default_value = "1/1")]
    shard: Shard,
    /// Generalisation gap: error (test − train error) or loss (test − train loss).
    #[arg(long, default_value = "error")]
    gap: Gap,
    /// Random permutations of the p-value (families of more than 8; smaller ones are exact).
    #[arg(long, default_value_t = 10_000)]
    permutations: usize,
    /// Seed of the measures' random starts and probes, and of the permutations.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Write the per-checkpoint values and the τ table as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write the scatter plots (one panel per measure) as SVG here.
    #[arg(long)]
    plot: Option<PathBuf>,
}

#[derive(Serialize)]
struct Output {
    runs: String,
    gap: Gap,
    settings: serde_json::Value,
    checkpoints: Vec<Row>,
    correlations: Vec<Correlation>,
    measured: usize,
    cached: usize,
    seconds: f64,
}

#[derive(Serialize)]
struct Row {
    name: String,
    optimizer: String,
    learning_rate: f64,
    weight_decay: f64,
    batch: usize,
    epochs: usize,
    label_noise: f64,
    train_size: usize,
    train_error: Option<f64>,
    test_error: Option<f64>,
    train_loss: Option<f64>,
    test_loss: Option<f64>,
    gap: Option<f64>,
    /// Measure label → value, for the measures this checkpoint has.
    sharpness: std::collections::BTreeMap<String, f64>,
    /// Measure label → why it is undefined on this checkpoint.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    undefined: std::collections::BTreeMap<String, String>,
}

/// What to compute for one key.
#[derive(Clone, Copy)]
enum Kind {
    WorstCase(Metric, f64),
    LambdaMax,
    Trace,
    Renyi,
}

fn keys(args: &Args) -> Vec<(MeasureKey, Kind)> {
    let base = format!(
        "points={} batch={} seed={}",
        args.points, args.batch, args.seed
    );
    let mut out = Vec::new();
    if args.geometry != "none" {
        for metric in metrics(&args.geometry) {
            for &rho in &args.rho {
                out.push((
                    MeasureKey {
                        measure: metric.measure_name().into(),
                        rho: Some(rho),
                        settings: format!("{base} iters={} zero_weights=freeze", args.iters),
                    },
                    Kind::WorstCase(metric, rho),
                ));
            }
        }
    }
    if args.hessian {
        let hessian = |name: &str, settings: String, kind| {
            let key = MeasureKey {
                measure: name.into(),
                rho: None,
                settings,
            };
            (key, kind)
        };
        out.push(hessian(
            "lambda_max",
            format!("{base} steps={}", args.steps),
            Kind::LambdaMax,
        ));
        out.push(hessian(
            "trace",
            format!("{base} products={}", 3 * args.probes),
            Kind::Trace,
        ));
        out.push(hessian(
            "renyi_1",
            format!("{base} steps={} probes={}", args.steps, args.probes),
            Kind::Renyi,
        ));
    }
    out
}

/// Data loaded once per study and shared by its checkpoints: the Fashion-MNIST training split
/// (ViTs) and the frozen MiniLM front's features (tails). Loaded when a checkpoint first needs
/// them, so a fully cached study loads nothing.
#[derive(Default)]
struct Shared<B: AutodiffBackend> {
    fashion: Option<Images>,
    tails: Option<(MrTailConfig, TailBase<B>)>,
}

/// Measures the keys `dir`'s cache lacks, saving each value as soon as it is known.
fn measure<B: AutodiffBackend>(
    dir: &Path,
    keys: &[(MeasureKey, Kind)],
    args: &Args,
    shared: &mut Shared<B>,
    device: &B::Device,
) -> anyhow::Result<usize> {
    let mut cache = MeasureCache::load(dir);
    let missing: Vec<&(MeasureKey, Kind)> =
        keys.iter().filter(|(k, _)| !cache.settled(k)).collect();
    if missing.is_empty() {
        return Ok(0);
    }
    if is_tail_checkpoint(dir) {
        let config = load_tail_report(dir)?.config;
        if !shared
            .tails
            .as_ref()
            .is_some_and(|(c, _)| same_base(c, &config))
        {
            shared.tails = Some((config.clone(), tail_base::<B>(&config, 0, device)?));
        }
        let (_, base) = shared.tails.as_ref().expect("loaded just above");
        let (_, tail) = load_tail(dir, base.template.clone(), device)?;
        let batches = measurement_batches::<B>(&config, &base.pool, args.points, args.batch);
        let sizes = batches.iter().map(|b| b.labels.dims()[0]).collect();
        measure_model(dir, tail, &batches, sizes, &missing, args, &mut cache)
    } else {
        if shared.fashion.is_none() {
            shared.fashion = Some(fashion_mnist(Split::Train)?);
        }
        let all_train = shared.fashion.as_ref().expect("loaded just above");
        let (_, model, batches) =
            vit_batches::<B>(dir, all_train, args.points, args.batch, device)?;
        let sizes = batches.iter().map(|b| b.indices.len()).collect();
        measure_model(dir, model, &batches, sizes, &missing, args, &mut cache)
    }
}

/// Measures `missing` on `model` (batches of `sizes` points) and writes each into `cache`.
fn measure_model<B: AutodiffBackend, M: Objective<B> + Symmetric>(
    dir: &Path,
    model: M,
    batches: &[M::Batch],
    sizes: Vec<usize>,
    missing: &[&(MeasureKey, Kind)],
    args: &Args,
    cache: &mut MeasureCache,
) -> anyhow::Result<usize> {
    anyhow::ensure!(
        !batches.is_empty(),
        "{} has no training examples to measure on",
        dir.display()
    );
    let symmetries = model.symmetries();
    let landscape = Landscape::new(model, &symmetries)?;
    let op = HessianOperator::new(&landscape, batches)?.with_batch_sizes(&sizes)?;
    for (key, kind) in missing {
        let start = Instant::now();
        // Ok(value), or Err(why the measure is undefined at this model).
        let outcome = match *kind {
            Kind::WorstCase(metric, rho) => {
                let config =
                    worst_case_config(metric, rho, args.iters, args.seed, ZeroWeights::Freeze);
                match worst_case(&landscape, batches, &config, &mut Silent) {
                    Ok(report) => Ok(report.sharpness),
                    // The metric is undefined at this model (a collapsed head, an exactly zero
                    // weight): a property of the checkpoint, recorded and left out of this τ.
                    Err(e @ geosharp::measures::Error::Geometry(_)) => Err(e.to_string()),
                    Err(e) => return Err(e.into()),
                }
            }
            Kind::LambdaMax => Ok(hessian::top_eigenvalues(
                &op,
                1,
                args.steps,
                Order::LargestAlgebraic,
                args.seed,
            )?[0]
                .0),
            Kind::Trace => Ok(hessian::hutch_plus_plus(&op, 3 * args.probes, args.seed)?.value),
            Kind::Renyi => {
                let config = Slq {
                    steps: args.steps,
                    probes: args.probes,
                    seed: args.seed,
                };
                let density = hessian::slq(&op, &config)?;
                Ok(hessian::renyi_from_density(&density, &[1.0])?[0].sharpness)
            }
        };
        let written = match outcome {
            Ok(value) => {
                anyhow::ensure!(
                    value.is_finite(),
                    "{} of {} is not finite ({value})",
                    key.label(),
                    dir.display()
                );
                let seconds = start.elapsed().as_secs_f64();
                cache.insert(dir, key, Cached { value, seconds })
            }
            Err(reason) => {
                eprintln!("{}: {} is undefined: {reason}", dir.display(), key.label());
                cache.insert_failure(dir, key, reason)
            }
        };
        written.with_context(|| format!("could not write the cache in {}", dir.display()))?;
    }
    Ok(missing.len())
}

/// What a checkpoint's report says about its run, whichever task trained it.
struct Summary {
    optimizer: String,
    learning_rate: f64,
    weight_decay: f64,
    batch: usize,
    epochs: usize,
    label_noise: f64,
    train_size: usize,
    final_train: Option<Evaluation>,
    final_test: Option<Evaluation>,
}

fn summary(dir: &Path) -> anyhow::Result<Summary> {
    Ok(if is_tail_checkpoint(dir) {
        let r = load_tail_report(dir)?;
        let c = &r.config;
        Summary {
            optimizer: r.optimizer.clone(),
            learning_rate: c.learning_rate,
            weight_decay: c.weight_decay,
            batch: c.batch,
            epochs: c.epochs,
            label_noise: c.label_noise,
            train_size: c.train_size,
            final_train: Some(r.final_train),
            final_test: Some(r.final_test),
        }
    } else {
        let r = load_report(dir)?;
        let c = &r.config;
        Summary {
            optimizer: r.optimizer.clone(),
            learning_rate: c.learning_rate,
            weight_decay: c.weight_decay,
            batch: c.batch,
            epochs: c.epochs,
            label_noise: c.label_noise,
            train_size: c.train_size,
            final_train: r.final_train,
            final_test: r.final_test,
        }
    })
}

fn row(
    dir: &Path,
    run: &Summary,
    gap: Gap,
    cache: &MeasureCache,
    keys: &[(MeasureKey, Kind)],
) -> Row {
    let (train, test) = (run.final_train, run.final_test);
    Row {
        name: dir
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
        optimizer: run.optimizer.clone(),
        learning_rate: run.learning_rate,
        weight_decay: run.weight_decay,
        batch: run.batch,
        epochs: run.epochs,
        label_noise: run.label_noise,
        train_size: run.train_size,
        train_error: train.map(|e| e.error),
        test_error: test.map(|e| e.error),
        train_loss: train.map(|e| e.loss),
        test_loss: test.map(|e| e.loss),
        gap: match (gap, train, test) {
            (Gap::Error, Some(a), Some(b)) => Some(b.error - a.error),
            (Gap::Loss, Some(a), Some(b)) => Some(b.loss - a.loss),
            _ => None,
        },
        sharpness: keys
            .iter()
            .filter_map(|(k, _)| cache.get(k).map(|v| (k.label(), v.value)))
            .collect(),
        undefined: keys
            .iter()
            .filter_map(|(k, _)| cache.failure(k).map(|e| (k.label(), e.to_string())))
            .collect(),
    }
}

/// Measures this shard's checkpoints, then correlates every measured checkpoint.
pub fn run<B: AutodiffBackend>(args: &Args, device: &B::Device) -> anyhow::Result<()> {
    let start = Instant::now();
    anyhow::ensure!(
        args.rho.iter().all(|r| *r > 0.0 && r.is_finite()),
        "every --rho must be positive, got {:?}",
        args.rho
    );
    let keys = keys(args);
    anyhow::ensure!(
        !keys.is_empty(),
        "nothing to measure: --geometry none without --hessian"
    );
    let dirs = checkpoints(&args.runs)
        .with_context(|| format!("could not list the checkpoints in {}", args.runs.display()))?;
    anyhow::ensure!(
        !dirs.is_empty(),
        "{} holds no checkpoints (subdirectories with a train.json); train some with `geosharp family --out {}`",
        args.runs.display(),
        args.runs.display()
    );
    let mine: Vec<&PathBuf> = dirs
        .iter()
        .enumerate()
        .filter(|(i, _)| args.shard.contains(*i))
        .map(|(_, d)| d)
        .collect();
    let mut bars = Bars::default();
    bars.begin(
        &format!("measuring {} checkpoints", mine.len()),
        mine.len() as u64,
    );
    let mut measured = 0;
    let mut shared = Shared::default();
    for dir in &mine {
        measured += measure::<B>(dir, &keys, args, &mut shared, device)
            .with_context(|| format!("measuring {}", dir.display()))?;
        bars.advance(1);
    }
    bars.end();

    let mut rows = Vec::with_capacity(dirs.len());
    for dir in &dirs {
        rows.push(row(
            dir,
            &summary(dir)?,
            args.gap,
            &MeasureCache::load(dir),
            &keys,
        ));
    }
    let total_values = rows.iter().map(|r| r.sharpness.len()).sum::<usize>();
    // (sharpness, gap) of every checkpoint that has both, per key.
    let pairs: Vec<Vec<(f64, f64)>> = keys
        .iter()
        .map(|(key, _)| {
            rows.iter()
                .filter_map(|r| Some((*r.sharpness.get(&key.label())?, r.gap?)))
                .collect()
        })
        .collect();
    let correlations: Vec<Correlation> = keys
        .iter()
        .zip(&pairs)
        .map(|((key, _), pairs)| correlate(key, pairs, args.permutations, args.seed))
        .collect();
    let undefined = rows.iter().map(|r| r.undefined.len()).sum::<usize>();
    print_table(&correlations, args.gap, dirs.len());
    if undefined > 0 {
        println!(
            "\n{undefined} values are undefined (listed under \"undefined\" in the JSON) and left out of their τ"
        );
    }
    if let Some(path) = &args.plot {
        let panels: Vec<Panel> = keys
            .iter()
            .zip(&correlations)
            .zip(pairs)
            .map(|(((key, _), c), points)| Panel {
                title: format!("{}: τ-b = {:.3}", key.label(), c.test.tau_b),
                x_label: key.label(),
                y_label: format!("{:?} gap", args.gap).to_lowercase(),
                points,
            })
            .collect();
        scatter_svg(path, &panels)?;
    }
    if let Some(path) = &args.json {
        let output = Output {
            runs: args.runs.display().to_string(),
            gap: args.gap,
            settings: serde_json::json!({
                "points": args.points, "batch": args.batch, "iters": args.iters,
                "steps": args.steps, "probes": args.probes, "seed": args.seed,
                "permutations": args.permutations, "rho": args.rho,
            }),
            checkpoints: rows,
            correlations,
            measured,
            cached: (total_values + undefined).saturating_sub(measured),
            seconds: start.elapsed().as_secs_f64(),
        };
        write_json(path, &output)?;
    }
    Ok(())
}

fn print_table(correlations: &[Correlation], gap: Gap, checkpoints: usize) {
    println!(
        "\nKendall τ between each measure and the {} gap ({checkpoints} checkpoints)\n",
        format!("{gap:?}").to_lowercase()
    );
    println!(
        "{:<16} {:>6} {:>4} {:>8} {:>8} {:>9}",
        "measure", "ρ", "n", "τ-a", "τ-b", "p"
    );
    for c in correlations {
        let t = &c.test;
        println!(
            "{:<16} {:>6} {:>4} {:>8.3} {:>8.3} {:>9.4}{}",
            c.measure,
            c.rho.map_or("–".into(), |r| r.to_string()),
            t.n,
            t.tau_a,
            t.tau_b,
            t.p_value,
            if t.exact { " (exact)" } else { "" }
        );
    }
    if correlations.iter().any(|c| c.test.n < checkpoints) {
        println!(
            "\nn < {checkpoints}: some checkpoints lack a measure (undefined there, or not yet measured: run the remaining shards, then once more without --shard)"
        );
    }
}
