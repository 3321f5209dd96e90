//! `geosharp train`: a ViT on Fashion-MNIST, or MiniLM-L6's top layers on MR, with any of the
//! sharpness-aware optimisers.

use std::path::PathBuf;

use anyhow::Context;
use geosharp::data::fashion::{Images, Split};
use geosharp::geometry::Metric;
use geosharp::train::mr_tail::{
    MrTailConfig, MrTailReport, save_tail, train_tail_with_checkpoints,
};
use geosharp::train::resume::fingerprint;
use geosharp::train::{
    BaseOptimizer, Checkpoints, OptimizerKind, TrainConfig, TrainReport, save_vit,
    train_vit_with_checkpoints,
};

use super::measure::fashion_mnist;
use super::progress::Bars;
use super::write_json;
use burn::tensor::backend::AutodiffBackend;

/// Arguments of `geosharp train`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Model and data: vit (a small ViT on Fashion-MNIST) or mr (MiniLM-L6's top layers and a
    /// sentiment head fine-tuned on MR, the frozen layers' outputs computed once).
    #[arg(long, default_value = "vit", value_parser = ["vit", "mr"])]
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
    /// Learning rate (vit: 1e-3 for Adam, 0.05 for SGD; mr: 1e-4 for Adam, 1e-2 for SGD).
    #[arg(long)]
    lr: Option<f64>,
    /// Epochs (vit: 10, mr: 3).
    #[arg(long)]
    epochs: Option<usize>,
    /// Samples per batch (vit: 128, mr: 32).
    #[arg(long)]
    batch: Option<usize>,
    /// Training samples, a seeded subset (vit: 10 000 of the 60 000 images; mr: 1 000 of a
    /// pool of the first 2 000 training sentences).
    #[arg(long)]
    train_size: Option<usize>,
    /// Test samples (vit: a seeded 2 000 of the 10 000 images; mr: the first 2 000 test
    /// sentences).
    #[arg(long)]
    test_size: Option<usize>,
    /// mr: the top layers fine-tuned (the others are frozen).
    #[arg(long, default_value_t = 1)]
    tail_layers: usize,
    /// L2 weight decay of the base optimiser.
    #[arg(long, default_value_t = 0.0)]
    weight_decay: f64,
    /// Fraction of training labels replaced by a random other class (seeded by --seed).
    #[arg(long, default_value_t = 0.0)]
    label_noise: f64,
    /// Seed of the data subsets, the label noise, the initialisation and the batch order.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Save the trained model, its configuration and the report (train.json) here, and the
    /// run's whole state after every epoch (in DIR/resume/).
    #[arg(long)]
    save: Option<PathBuf>,
    /// Continue the run saved in --save DIR from its last finished epoch (the same options,
    /// except that --epochs may be raised); without a saved state, start from the first epoch.
    #[arg(long, requires = "save")]
    resume: bool,
    /// Write the report as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

impl Args {
    fn base(&self) -> Option<BaseOptimizer> {
        self.base.as_deref().map(|b| match b {
            "sgd" => BaseOptimizer::Sgd,
            _ => BaseOptimizer::Adam,
        })
    }

    /// The ViT run the options describe.
    fn vit_config(&self) -> TrainConfig {
        let mut config = TrainConfig::new(self.optimizer);
        if let Some(base) = self.base() {
            config.base = base;
            config.learning_rate = if base == BaseOptimizer::Sgd {
                0.05
            } else {
                1e-3
            };
        }
        config.learning_rate = self.lr.unwrap_or(config.learning_rate);
        config.rho = self.rho;
        config.metric = self.metric;
        config.epochs = self.epochs.unwrap_or(config.epochs);
        config.batch = self.batch.unwrap_or(config.batch);
        config.train_size = self.train_size.unwrap_or(config.train_size);
        config.test_size = self.test_size.unwrap_or(config.test_size);
        config.seed = self.seed;
        config.weight_decay = self.weight_decay;
        config.label_noise = self.label_noise;
        config
    }

    /// The MR tail run the options describe.
    fn mr_config(&self) -> MrTailConfig {
        let defaults = MrTailConfig::default();
        let base = self.base().unwrap_or(match self.optimizer {
            OptimizerKind::Sgd => BaseOptimizer::Sgd,
            _ => BaseOptimizer::Adam,
        });
        let train_size = self.train_size.unwrap_or(defaults.train_size);
        MrTailConfig {
            optimizer: self.optimizer,
            rho: self.rho,
            metric: self.metric,
            base,
            learning_rate: self.lr.unwrap_or(match base {
                BaseOptimizer::Sgd => 1e-2,
                BaseOptimizer::Adam => 1e-4,
            }),
            weight_decay: self.weight_decay,
            label_noise: self.label_noise,
            epochs: self.epochs.unwrap_or(defaults.epochs),
            batch: self.batch.unwrap_or(defaults.batch),
            train_size,
            test_size: self.test_size.unwrap_or(defaults.test_size),
            pool: defaults.pool.max(train_size),
            tail_layers: self.tail_layers,
            seed: self.seed,
            ..defaults
        }
    }

    fn checkpoints(&self, config: &impl serde::Serialize) -> Option<Checkpoints> {
        self.save.as_ref().map(|dir| Checkpoints {
            dir: dir.clone(),
            resume: self.resume,
            fingerprint: fingerprint(config),
        })
    }
}

/// Trains, prints per-epoch figures, saves.
pub fn run<B: AutodiffBackend>(args: &Args, device: &B::Device) -> anyhow::Result<()> {
    if args.model == "mr" {
        return run_mr::<B>(args, device);
    }
    let config = args.vit_config();
    let report = train_and_save::<B>(
        &config,
        &fashion_mnist(Split::Train)?,
        &fashion_mnist(Split::Test)?,
        args.checkpoints(&config).as_ref(),
        device,
    )?;
    print!("{}", table(&report));
    if let Some(path) = &args.json {
        write_json(path, &report)?;
    }
    Ok(())
}

fn run_mr<B: AutodiffBackend>(args: &Args, device: &B::Device) -> anyhow::Result<()> {
    let config = args.mr_config();
    let base = super::family::tail_base::<B>(&config, config.test_size, device)?;
    let test = base.test.as_ref().context("test features were asked for")?;
    eprintln!(
        "fine-tuning MiniLM-L6's top {} layer(s) with {} on {} MR sentences, testing on {}",
        config.tail_layers,
        config.optimizer_name(),
        config.train_size,
        config.test_size
    );
    let (tail, report) = train_tail_with_checkpoints::<B>(
        &config,
        base.template,
        (&base.pool, test),
        args.checkpoints(&config).as_ref(),
        device,
        &mut Bars::default(),
    )
    .context("training failed")?;
    if let Some(dir) = &args.save {
        save_tail(dir, &tail, &report)?;
        eprintln!("saved tail.mpk and train.json in {}", dir.display());
    }
    print!("{}", mr_table(&report));
    if let Some(path) = &args.json {
        write_json(path, &report)?;
    }
    Ok(())
}

/// Trains the ViT `config` describes on its subsets of the Fashion-MNIST splits `all_train`
/// and `all_test`, saving its state after every epoch into `checkpoints` (and resuming from
/// it when asked) and the model at the end; `geosharp family` trains each of its models
/// through this too.
pub fn train_and_save<B: AutodiffBackend>(
    config: &TrainConfig,
    all_train: &Images,
    all_test: &Images,
    checkpoints: Option<&Checkpoints>,
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
    let (model, report) = train_vit_with_checkpoints::<B>(
        config,
        &train,
        &test,
        checkpoints,
        device,
        &mut Bars::default(),
    )
    .context("training failed")?;
    if let Some(dir) = checkpoints.map(|c| &c.dir) {
        save_vit(dir, &model, &report)?;
        eprintln!("saved model.mpk and train.json in {}", dir.display());
    }
    Ok(report)
}

/// One line per epoch: train loss and accuracy, test loss and accuracy, seconds.
fn epoch_rows(rows: impl Iterator<Item = (f64, f64, f64, f64, f64)>) -> String {
    let mut out = format!(
        "{:>5} {:>10} {:>9} {:>10} {:>9} {:>9}\n",
        "epoch", "train loss", "train acc", "test loss", "test acc", "seconds"
    );
    for (i, (train_loss, train_acc, test_loss, test_acc, seconds)) in rows.enumerate() {
        out += &format!(
            "{:>5} {:>10.4} {:>8.2}% {:>10.4} {:>8.2}% {:>9.1}\n",
            i + 1,
            train_loss,
            100.0 * train_acc,
            test_loss,
            100.0 * test_acc,
            seconds
        );
    }
    out
}

fn final_line(train: (f64, f64), test: (f64, f64)) -> String {
    format!(
        "final: train loss {:.4}, error {:.2}%; test loss {:.4}, error {:.2}%; gap {:.2} points\n",
        train.0,
        100.0 * train.1,
        test.0,
        100.0 * test.1,
        100.0 * (test.1 - train.1)
    )
}

fn table(report: &TrainReport) -> String {
    let c = &report.config;
    let rho = if c.effective_rho() > 0.0 {
        format!(", ρ = {}", c.effective_rho())
    } else {
        String::new()
    };
    let mut out = format!(
        "\n{} (base {:?}, lr {}{rho}), seed {}\n",
        report.optimizer, c.base, c.learning_rate, c.seed,
    );
    out += &epoch_rows(report.epochs.iter().map(|e| {
        (
            e.train_loss,
            e.train_acc,
            e.test_loss,
            e.test_acc,
            e.seconds,
        )
    }));
    if let (Some(train), Some(test)) = (report.final_train, report.final_test) {
        out += &final_line((train.loss, train.error), (test.loss, test.error));
    }
    out += &format!("total {:.1} s\n", report.seconds);
    out
}

fn mr_table(report: &MrTailReport) -> String {
    let c = &report.config;
    let rho = c.effective_rho();
    let rho = if c.is_plain() || rho == 0.0 {
        String::new()
    } else {
        format!(", ρ = {rho}")
    };
    let mut out = format!(
        "\n{} (base {:?}, lr {}{rho}), top {} layer(s), seed {}; probe: train error {:.2}%\n",
        report.optimizer,
        c.base,
        c.learning_rate,
        c.tail_layers,
        c.seed,
        100.0 * report.probe_train.error
    );
    out += &epoch_rows(report.epochs.iter().map(|e| {
        let test = e.test.unwrap_or(geosharp::train::Evaluation {
            loss: f64::NAN,
            error: f64::NAN,
        });
        (
            e.train_loss,
            e.train_acc,
            test.loss,
            1.0 - test.error,
            e.seconds,
        )
    }));
    out += &final_line(
        (report.final_train.loss, report.final_train.error),
        (report.final_test.loss, report.final_test.error),
    );
    out += &format!("total {:.1} s\n", report.seconds);
    out
}
