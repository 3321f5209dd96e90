//! `geosharp measure`: adaptive and geodesic sharpness of a BERT checkpoint on MR.

use std::path::{Path, PathBuf};

use anyhow::Context;
use geosharp::assets::{self, Asset, Cache};
use geosharp::data::fashion::Images;
use geosharp::data::fashion::{self, Split};
use geosharp::geometry::{GeometryConfig, Metric, ZeroWeights};
use geosharp::measures::Objective;
use geosharp::measures::{Landscape, SharpnessReport, WorstCase, worst_case};
use geosharp::models::{ImageBatch, Vit};
use geosharp::symmetry::Symmetric;
use geosharp::tasks::{MrOptions, MrTask};
use geosharp::train::mr_tail::{
    is_tail_checkpoint, load_tail, load_tail_report, measurement_batches,
};
use geosharp::train::{TrainReport, is_vit_checkpoint, load_vit};
use serde::Serialize;

use super::progress::Bars;
use super::write_json;
use burn::tensor::backend::AutodiffBackend;

/// Arguments of `geosharp measure`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Checkpoint directory: a BERT checkpoint (config.json, model.safetensors; optional
    /// tokenizer.json, head.mpk), or one saved by `geosharp train` (a ViT, or MiniLM's tail
    /// fine-tuned on MR). Default: the fetched all-MiniLM-L6-v2 with its MR head (fetched and
    /// fitted if missing).
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// Data set: mr (MR movie-review sentences with a BERT checkpoint) or fashion-mnist (a
    /// checkpoint saved by `geosharp train`, recognised by its train.json).
    #[arg(long, default_value = "mr", value_parser = ["mr", "fashion-mnist"])]
    data: String,
    /// Which geometries to measure.
    #[arg(long, default_value = "all", value_parser = ["adaptive", "inv", "mix", "all"])]
    geometry: String,
    /// Radius ρ of the worst-case ball in the metric.
    #[arg(long, default_value_t = 0.1)]
    rho: f64,
    /// Auto-PGD iterations per batch.
    #[arg(long, default_value_t = 20)]
    iters: usize,
    /// Training sentences to measure on.
    #[arg(long, default_value_t = 1024)]
    points: usize,
    /// Sentences per batch (m of m-sharpness).
    #[arg(long, default_value_t = 128)]
    batch: usize,
    /// Seed of the train/test split (and of Auto-PGD's random start, if needed).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Exactly-zero weights under the adaptive metric: freeze (hold them fixed, as the reference
    /// adaptive-sharpness code does; all-MiniLM-L6-v2 has 3 in its word embeddings) or error.
    #[arg(long, default_value = "freeze")]
    zero_weights: ZeroWeights,
    /// Fit a missing head on at most this many training sentences (default: all).
    #[arg(long)]
    head_train_limit: Option<usize>,
    /// Write the results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Serialize)]
struct Output<'a> {
    checkpoint: String,
    data: &'a str,
    points: usize,
    batch: usize,
    head: String,
    results: Vec<SharpnessReport>,
}

/// The metrics selected by `--geometry`.
pub fn metrics(geometry: &str) -> Vec<Metric> {
    match geometry {
        "adaptive" => vec![Metric::Adaptive],
        "inv" => vec![Metric::Inv],
        "mix" => vec![Metric::Mix],
        _ => vec![Metric::Adaptive, Metric::Inv, Metric::Mix],
    }
}

/// Loads the MR task for `checkpoint` (the fetched MiniLM by default), fetching what is missing;
/// `seed` splits the sentences, a missing head is fitted on at most `head_train_limit` of them.
pub fn load_task<B: AutodiffBackend>(
    checkpoint: Option<&PathBuf>,
    seed: u64,
    head_train_limit: Option<usize>,
    device: &B::Device,
) -> anyhow::Result<(PathBuf, MrTask<B>)> {
    let options = MrOptions {
        split_seed: seed,
        head_train_limit,
        ..MrOptions::default()
    };
    let cache = Cache::from_env();
    let dir = match checkpoint {
        Some(dir) => dir.clone(),
        None => {
            assets::fetch(&cache, Asset::MiniLm, &mut |l| eprintln!("{l}"))
                .context("fetching the default checkpoint")?;
            cache.minilm()
        }
    };
    assets::fetch(&cache, Asset::MovieReviews, &mut |l| eprintln!("{l}"))
        .context("fetching the MR sentences")?;
    let task = MrTask::load(&dir, &cache, &options, device, &mut Bars::default())
        .with_context(|| format!("loading the checkpoint in {}", dir.display()))?;
    if let Some(r) = &task.head_report {
        eprintln!(
            "fitted a head on {} sentences: train accuracy {:.1} %, test accuracy {:.1} % ({:.0} s); saved to {}",
            r.train_size,
            100.0 * r.train_accuracy,
            100.0 * r.test_accuracy,
            r.seconds,
            task.head_file.display()
        );
    }
    Ok((dir, task))
}

/// The Auto-PGD settings of `measure` and `correlate`: `iters` iterations at radius `rho` in
/// `metric`, random start seeded by `seed`.
pub fn worst_case_config(
    metric: Metric,
    rho: f64,
    iters: usize,
    seed: u64,
    zero_weights: ZeroWeights,
) -> WorstCase {
    let mut config = WorstCase::new(
        rho,
        GeometryConfig::new(metric).with_zero_weights(zero_weights),
    )
    .with_iterations(iters);
    config.seed = seed;
    config
}

/// Measures every selected geometry on `batches`.
fn measure_all<B: AutodiffBackend, M: Objective<B> + Symmetric>(
    model: &M,
    batches: &[M::Batch],
    args: &Args,
) -> anyhow::Result<Vec<SharpnessReport>> {
    let landscape = Landscape::new(model.clone(), &model.symmetries())?;
    let mut results = Vec::new();
    for metric in metrics(&args.geometry) {
        let config = worst_case_config(metric, args.rho, args.iters, args.seed, args.zero_weights);
        let report = worst_case(&landscape, batches, &config, &mut Bars::default())
            .with_context(|| format!("measuring {} sharpness", metric.measure_name()))?;
        results.push(report);
    }
    Ok(results)
}

/// Prints the table under `title` and writes `output` as JSON when `--json` is given.
fn report(title: &str, output: Output, json: Option<&PathBuf>) -> anyhow::Result<()> {
    print_table(title, &output.results);
    match json {
        Some(path) => write_json(path, &output),
        None => Ok(()),
    }
}

fn print_table(title: &str, results: &[SharpnessReport]) {
    println!("{title}\n");
    println!(
        "{:<14} {:>6} {:>24} {:>11} {:>9}",
        "measure", "ρ", "sharpness (mean ± std)", "clean loss", "time"
    );
    for r in results {
        println!(
            "{:<14} {:>6} {:>13.5} ± {:<8.5} {:>11.4} {:>8.1}s",
            r.geometry, r.rho, r.sharpness, r.std, r.clean_loss, r.seconds
        );
    }
}

/// A split of Fashion-MNIST, fetched first if it is missing.
pub fn fashion_mnist(split: Split) -> anyhow::Result<Images> {
    let cache = Cache::from_env();
    assets::fetch(&cache, Asset::FashionMnist, &mut |l| eprintln!("{l}"))
        .context("fetching Fashion-MNIST")?;
    Ok(fashion::load(&cache, split)?)
}

/// The ViT checkpoint in `dir` and the first `points` images of the training set it was
/// trained on (its subset of `all_train`, with its label noise), in batches of `batch`.
pub fn vit_batches<B: AutodiffBackend>(
    dir: &Path,
    all_train: &Images,
    points: usize,
    batch: usize,
    device: &B::Device,
) -> anyhow::Result<(TrainReport, Vit<B>, Vec<ImageBatch<B>>)> {
    let (report, model) = load_vit::<B>(dir, device)?;
    let train = report.config.training_images(all_train);
    let order: Vec<usize> = (0..points.min(train.len())).collect();
    let batches = order
        .chunks(batch.max(1))
        .map(|idx| train.batch::<B>(idx, device))
        .collect();
    Ok((report, model, batches))
}

/// A checkpoint saved by `geosharp train` (train.json + model.mpk): the ViT on the first
/// `--points` images of the training subset it was trained on.
fn run_vit<B: AutodiffBackend>(dir: &Path, args: &Args, device: &B::Device) -> anyhow::Result<()> {
    let all_train = fashion_mnist(Split::Train)?;
    let (report, model, batches) =
        vit_batches::<B>(dir, &all_train, args.points, args.batch, device)?;
    let points = batches.iter().map(|b| b.indices.len()).sum::<usize>();
    let results = measure_all(&model, &batches, args)?;
    let title = format!(
        "Worst-case sharpness of the ViT in {} ({}) on {points} of its Fashion-MNIST training images, batches of {}, {} Auto-PGD iterations",
        dir.display(),
        report.optimizer,
        args.batch,
        args.iters
    );
    let output = Output {
        checkpoint: dir.display().to_string(),
        data: "fashion-mnist",
        points,
        batch: args.batch,
        head: String::new(),
        results,
    };
    self::report(&title, output, args.json.as_ref())
}

/// A tail checkpoint saved by `geosharp train --model mr` or `geosharp family --task mr`:
/// MiniLM-L6 with its fine-tuned top layers, on the first `--points` sentences of the training
/// subset it was trained on (with its noisy labels).
fn run_tail<B: AutodiffBackend>(dir: &Path, args: &Args, device: &B::Device) -> anyhow::Result<()> {
    let config = load_tail_report(dir)?.config;
    let base = super::family::tail_base::<B>(&config, 0, device)?;
    let (report, tail) = load_tail(dir, base.template, device)?;
    let batches = measurement_batches::<B>(&config, &base.pool, args.points, args.batch);
    let points = batches.iter().map(|b| b.labels.dims()[0]).sum::<usize>();
    let results = measure_all(&tail, &batches, args)?;
    let title = format!(
        "Worst-case sharpness of the MiniLM-L6 tail in {} ({}, top {} layer(s) fine-tuned) on {points} of its MR training sentences, batches of {}, {} Auto-PGD iterations",
        dir.display(),
        report.optimizer,
        config.tail_layers,
        args.batch,
        args.iters
    );
    let output = Output {
        checkpoint: dir.display().to_string(),
        data: "mr",
        points,
        batch: args.batch,
        head: dir.join("tail.mpk").display().to_string(),
        results,
    };
    self::report(&title, output, args.json.as_ref())
}

/// Runs the measurement and prints the table.
pub fn run<B: AutodiffBackend>(args: &Args, device: &B::Device) -> anyhow::Result<()> {
    if let Some(dir) = &args.checkpoint {
        if is_tail_checkpoint(dir) {
            return run_tail::<B>(dir, args, device);
        }
        if is_vit_checkpoint(dir) || args.data == "fashion-mnist" {
            return run_vit::<B>(dir, args, device);
        }
    }
    let (dir, task) = load_task::<B>(
        args.checkpoint.as_ref(),
        args.seed,
        args.head_train_limit,
        device,
    )?;
    let batches = task.batches(args.points, args.batch, device)?;
    let results = measure_all(&task.model, &batches, args)?;
    let title = format!(
        "Worst-case sharpness of {} on MR ({} training sentences, batches of {}, {} Auto-PGD iterations)",
        dir.display(),
        batches.iter().map(|b| b.labels.dims()[0]).sum::<usize>(),
        args.batch,
        args.iters
    );
    let output = Output {
        checkpoint: dir.display().to_string(),
        data: &args.data,
        points: args.points,
        batch: args.batch,
        head: task.head_file.display().to_string(),
        results,
    };
    report(&title, output, args.json.as_ref())
}
