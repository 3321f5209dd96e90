//! `geosharp train`: a ViT on Fashion-MNIST with any of the sharpness-aware optimisers.

use std::path::PathBuf;

use anyhow::Context;
use geosharp::data::fashion::{Images, Split};
use geosharp::geometry::Metric;
use geosharp::train::{OptimizerKind, TrainConfig, TrainReport, save_vit, train_vit};

use super::measure::fashion_mnist;
use super::progress::Bars;
use super::write_json;
use burn::tensor::backend::AutodiffBackend;

/// Arguments of `geosharp train`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Model and data: vit (a small ViT on Fashion-MNIST).
    #[arg(long, default_value = "vit", value_parser = ["vit"])]
    model: String,
    /// sgd | adam (plain), sam | asam | gsam | rsam (two-pass on --base), saf | mesa (loss
    /// term on --base).
    #[arg(long, default_value = "adam")]
    optimizer: OptimizerKind,
    /// Base optimiser of the sharpness-aware rules: sgd (momentum 0.9) or adam.
    #[arg(long, value_parser = ["sgd", "adam"])]
    base: Option<String>,
    /// Radius ρ (default per rule: SAM 0.05, ASAM 0.5, geodesic SAM 0.05, RSAM 0.65).
    #[arg(long)]
    rho: Option<f64>,
    /// Geodesic SAM's metric: inv or mix.
    #[arg(long, default_value = "mix")]
    metric: Metric,
    /// Learning rate (default 1e-3 for Adam, 0.05 for SGD).
    #[arg(long)]
    lr: Option<f64>,
    /// Epochs.
    #[arg(long, default_value_t = 10)]
    epochs: usize,
    /// Images per batch.
    #[arg(long, default_value_t = 128)]
    batch: usize,
    /// Training images (a seeded subset of the 60 000).
    #[arg(long, default_value_t = 10_000)]
    train_size: usize,
    /// Test images (a seeded subset of the 10 000).
    #[arg(long, default_value_t = 2_000)]
    test_size: usize,
    /// L2 weight decay of the base optimiser.
    #[arg(long, default_value_t = 0.0)]
    weight_decay: f64,
    /// Fraction of training labels replaced by a random other class (seeded by --seed).
    #[arg(long, default_value_t = 0.0)]
    label_noise: f64,
    /// Seed of the data subsets, the label noise, the initialisation and the batch order.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Save the trained model (model.mpk), its configuration and the report (train.json) here.
    #[arg(long)]
    save: Option<PathBuf>,
    /// Write the report as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// Trains, prints per-epoch figures, saves.
pub fn run<B: AutodiffBackend>(args: &Args, device: &B::Device) -> anyhow::Result<()> {
    let mut config = TrainConfig::new(args.optimizer);
    if let Some(base) = &args.base {
        config.base = match base.as_str() {
            "sgd" => geosharp::train::BaseOptimizer::Sgd,
            _ => geosharp::train::BaseOptimizer::Adam,
        };
        if args.lr.is_none() {
            config.learning_rate = if base == "sgd" { 0.05 } else { 1e-3 };
        }
    }
    if let Some(lr) = args.lr {
        config.learning_rate = lr;
    }
    config.rho = args.rho;
    config.metric = args.metric;
    config.epochs = args.epochs;
    config.batch = args.batch;
    config.train_size = args.train_size;
    config.test_size = args.test_size;
    config.seed = args.seed;
    config.weight_decay = args.weight_decay;
    config.label_noise = args.label_noise;
    let report = train_and_save::<B>(
        &config,
        &fashion_mnist(Split::Train)?,
        &fashion_mnist(Split::Test)?,
        args.save.as_deref(),
        device,
    )?;
    print!("{}", table(&report));
    if let Some(path) = &args.json {
        write_json(path, &report)?;
    }
    Ok(())
}

/// Trains the ViT `config` describes on its subsets of the Fashion-MNIST splits `all_train`
/// and `all_test`, and saves it in `save` when given; `geosharp family` trains each of its
/// models through this too.
pub fn train_and_save<B: AutodiffBackend>(
    config: &TrainConfig,
    all_train: &Images,
    all_test: &Images,
    save: Option<&std::path::Path>,
    device: &B::Device,
) -> anyhow::Result<TrainReport> {
    let train = config.training_images(all_train);
    let test = config.test_images(all_test);
    eprintln!(
        "training a ViT ({} blocks, width {}) with {} on {} Fashion-MNIST images, testing on {}",
        config.model.depth,
        config.model.d_model,
        config.optimizer.name(),
        train.len(),
        test.len()
    );
    let (model, report) = train_vit::<B>(config, &train, &test, device, &mut Bars::default())
        .context("training failed")?;
    if let Some(dir) = save {
        save_vit(dir, &model, &report)?;
        eprintln!("saved model.mpk and train.json in {}", dir.display());
    }
    Ok(report)
}

fn table(report: &TrainReport) -> String {
    let c = &report.config;
    let rho = if c.effective_rho() > 0.0 {
        format!(", ρ = {}", c.effective_rho())
    } else {
        String::new()
    };
    let mut out = format!(
        "\n{} (base {:?}, lr {}{rho}), seed {}\n{:>5} {:>10} {:>9} {:>10} {:>9} {:>9}\n",
        report.optimizer,
        c.base,
        c.learning_rate,
        c.seed,
        "epoch",
        "train loss",
        "train acc",
        "test loss",
        "test acc",
        "seconds"
    );
    for (i, e) in report.epochs.iter().enumerate() {
        out += &format!(
            "{:>5} {:>10.4} {:>8.2}% {:>10.4} {:>8.2}% {:>9.1}\n",
            i + 1,
            e.train_loss,
            100.0 * e.train_acc,
            e.test_loss,
            100.0 * e.test_acc,
            e.seconds
        );
    }
    if let (Some(train), Some(test)) = (report.final_train, report.final_test) {
        out += &format!(
            "final: train loss {:.4}, error {:.2}%; test loss {:.4}, error {:.2}%; gap {:.2} points\n",
            train.loss,
            100.0 * train.error,
            test.loss,
            100.0 * test.error,
            100.0 * (test.error - train.error)
        );
    }
    out += &format!("total {:.1} s\n", report.seconds);
    out
}
