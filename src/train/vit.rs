//! Training the ViT on Fashion-MNIST with any of the optimisers of [`crate::optim`].
//!
//! One loop serves all of them: plain SGD/Adam, the two-pass rules (SAM, ASAM, geodesic SAM,
//! RSAM after its plain warm-up epochs) through [`SharpnessAware`], and SAF/MESA as a loss term
//! on the plain step. The wall time of an epoch counts training only (the evaluation of the
//! test set after it is timed apart), so the ratios between optimisers are the cost of their
//! steps.

use std::time::Instant;

use burn::module::AutodiffModule;
use burn::optim::Optimizer;
use burn::prelude::Backend;
use burn::tensor::backend::AutodiffBackend;
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::Serialize;

use crate::data::fashion::Images;
use crate::geometry::Metric;
use crate::host::scalar;
use crate::measures::Progress;
use crate::models::loss::{count_correct, cross_entropy};
use crate::models::{Vit, VitConfig};
use crate::optim::{self, Mesa, Perturbation, Saf, SharpnessAware, TrajectoryConfig};

/// Which optimiser trains the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OptimizerKind {
    /// Plain SGD with momentum.
    Sgd,
    /// Plain Adam.
    Adam,
    /// SAM on the base optimiser.
    Sam,
    /// ASAM (η = 0.01, biases unscaled).
    Asam,
    /// Geodesic SAM on the ViT's attention symmetries.
    Gsam,
    /// RSAM (α = 1.2) after plain warm-up epochs.
    Rsam,
    /// SAF: distillation from this sample's logits Ẽ epochs ago.
    Saf,
    /// MESA: distillation from an EMA of the weights.
    Mesa,
}

impl OptimizerKind {
    /// Every kind, in table order.
    pub const ALL: [OptimizerKind; 8] = [
        Self::Sgd,
        Self::Adam,
        Self::Sam,
        Self::Asam,
        Self::Gsam,
        Self::Rsam,
        Self::Saf,
        Self::Mesa,
    ];

    /// The CLI name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sgd => "sgd",
            Self::Adam => "adam",
            Self::Sam => "sam",
            Self::Asam => "asam",
            Self::Gsam => "gsam",
            Self::Rsam => "rsam",
            Self::Saf => "saf",
            Self::Mesa => "mesa",
        }
    }

    /// The radius the papers use with this rule (SAM 0.05, ASAM 0.5, geodesic SAM 0.05 in the
    /// metric norm, RSAM 0.65); 0 for the rules without one.
    pub fn default_rho(self) -> f64 {
        match self {
            Self::Sam | Self::Gsam => 0.05,
            Self::Asam => 0.5,
            Self::Rsam => 0.65,
            _ => 0.0,
        }
    }
}

impl std::str::FromStr for OptimizerKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                format!("unknown optimizer '{s}'; expected sgd, adam, sam, asam, gsam, rsam, saf or mesa")
            })
    }
}

/// The base optimiser under the sharpness-aware rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BaseOptimizer {
    /// SGD with momentum 0.9.
    Sgd,
    /// Adam (β = 0.9, 0.999).
    Adam,
}

/// Everything that defines a training run.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct TrainConfig {
    /// The optimiser.
    pub optimizer: OptimizerKind,
    /// The base optimiser of the two-pass rules and SAF/MESA (`sgd`/`adam` runs use themselves).
    pub base: BaseOptimizer,
    /// Learning rate, constant over the run.
    pub learning_rate: f64,
    /// L2 weight decay of the base optimiser (Burn's `WeightDecayConfig`: λw added to the
    /// gradient); 0 for none.
    #[serde(default)]
    pub weight_decay: f64,
    /// Fraction of the training labels replaced by a uniformly drawn *other* class, seeded by
    /// `seed` (see [`TrainConfig::training_images`]); 0 for clean labels.
    #[serde(default)]
    pub label_noise: f64,
    /// ρ of the two-pass rules (`None`: the rule's default).
    pub rho: Option<f64>,
    /// Geodesic SAM's metric.
    pub metric: Metric,
    /// Epochs.
    pub epochs: usize,
    /// Images per batch.
    pub batch: usize,
    /// Training images (a seeded subset of the 60 000).
    pub train_size: usize,
    /// Test images (a seeded subset of the 10 000).
    pub test_size: usize,
    /// Seed of the subsets, the initialisation and the batch order.
    pub seed: u64,
    /// RSAM's plain warm-up epochs.
    pub warmup_epochs: usize,
    /// SAF/MESA settings (`None`: the paper's defaults).
    pub trajectory: Option<TrajectoryConfig>,
    /// The model.
    pub model: VitConfig,
}

impl TrainConfig {
    /// The defaults for `optimizer`: Adam at 1e−3 as base, 10 epochs of batches of 128 on
    /// 10 000 training and 2 000 test images.
    pub fn new(optimizer: OptimizerKind) -> Self {
        Self {
            optimizer,
            base: match optimizer {
                OptimizerKind::Sgd => BaseOptimizer::Sgd,
                _ => BaseOptimizer::Adam,
            },
            learning_rate: match optimizer {
                OptimizerKind::Sgd => 0.05,
                _ => 1e-3,
            },
            weight_decay: 0.0,
            label_noise: 0.0,
            rho: None,
            metric: Metric::Mix,
            epochs: 10,
            batch: 128,
            train_size: 10_000,
            test_size: 2_000,
            seed: 0,
            warmup_epochs: 1,
            trajectory: None,
            model: VitConfig::default(),
        }
    }

    /// ρ in effect.
    pub fn effective_rho(&self) -> f64 {
        self.rho.unwrap_or(self.optimizer.default_rho())
    }

    /// The run's training set drawn from the 60 000 training images: the seeded subset of
    /// `train_size`, with `label_noise` of its labels corrupted. Training, measuring and
    /// evaluating a checkpoint all call this, so they see the same images and the same labels.
    pub fn training_images(&self, all: &Images) -> Images {
        all.subset(self.train_size, self.seed)
            .with_label_noise(self.label_noise, self.seed)
    }

    /// The run's test set: the seeded subset of `test_size` of the 10 000 test images.
    pub fn test_images(&self, all: &Images) -> Images {
        all.subset(self.test_size, self.seed)
    }
}

/// One epoch's figures.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, serde::Deserialize)]
pub struct EpochStats {
    /// Mean training loss over the epoch's clean passes.
    pub train_loss: f64,
    /// Training accuracy over the epoch's clean passes.
    pub train_acc: f64,
    /// Test loss after the epoch.
    pub test_loss: f64,
    /// Test accuracy after the epoch.
    pub test_acc: f64,
    /// Wall time of the epoch's training steps.
    pub seconds: f64,
}

/// A finished run.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct TrainReport {
    /// The optimiser's name.
    pub optimizer: String,
    /// The configuration.
    pub config: TrainConfig,
    /// Per-epoch figures.
    pub epochs: Vec<EpochStats>,
    /// The final model on the whole training set (with its noisy labels), evaluated after the
    /// last step — unlike `epochs[..].train_loss`, which averages over the epoch's steps.
    #[serde(default)]
    pub final_train: Option<Evaluation>,
    /// The final model on the test set.
    #[serde(default)]
    pub final_test: Option<Evaluation>,
    /// Wall time of the whole run, evaluation included.
    pub seconds: f64,
}

/// Mean loss and error rate of a model on a data set.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, serde::Deserialize)]
pub struct Evaluation {
    /// Mean cross-entropy.
    pub loss: f64,
    /// Fraction misclassified.
    pub error: f64,
}

impl TrainReport {
    /// Test error minus training error of the final model: the generalisation gap of
    /// sharpness–generalisation studies (Jiang et al. 2020; Andriushchenko et al. 2023).
    /// `None` for reports written before the final evaluation was recorded.
    pub fn error_gap(&self) -> Option<f64> {
        Some(self.final_test?.error - self.final_train?.error)
    }

    /// Test loss minus training loss of the final model.
    pub fn loss_gap(&self) -> Option<f64> {
        Some(self.final_test?.loss - self.final_train?.loss)
    }
}

/// Why training failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrainError {
    /// The optimiser refused its settings or a step.
    #[error(transparent)]
    Optim(#[from] optim::Error),
    /// A setting that makes no run.
    #[error("{0}")]
    Config(String),
    /// A checkpoint file could not be read or written.
    #[error("could not {action} {path}: {reason}")]
    Checkpoint {
        /// `read` or `write`.
        action: &'static str,
        /// The file.
        path: std::path::PathBuf,
        /// What went wrong.
        reason: String,
    },
}

/// Trains a ViT from a seeded initialisation; returns it and the report.
///
/// # Errors
/// [`TrainError::Config`] for an empty data set, zero epochs or batch, or an invalid model
/// configuration; [`TrainError::Optim`] for invalid ρ or a non-finite loss.
pub fn train_vit<B: AutodiffBackend>(
    config: &TrainConfig,
    train: &Images,
    test: &Images,
    device: &B::Device,
    progress: &mut dyn Progress,
) -> Result<(Vit<B>, TrainReport), TrainError> {
    if train.is_empty() || test.is_empty() {
        return Err(TrainError::Config(
            "the training or test set is empty".into(),
        ));
    }
    if config.epochs == 0 || config.batch == 0 {
        return Err(TrainError::Config(
            "epochs and batch must be at least 1".into(),
        ));
    }
    config.model.check().map_err(TrainError::Config)?;
    check_regularisation(config.label_noise, config.weight_decay)?;
    B::seed(device, config.seed);
    let model = config.model.init::<B>(device);
    with_base_optimizer!(config.base, config.weight_decay, |base| run(
        base, model, config, train, test, device, progress
    ))
}

/// Checks the regularisation shared by every kind of run: a label-noise fraction in [0, 1] and
/// a finite weight decay ≥ 0.
pub(crate) fn check_regularisation(label_noise: f64, weight_decay: f64) -> Result<(), TrainError> {
    if !(0.0..=1.0).contains(&label_noise) {
        return Err(TrainError::Config(format!(
            "label noise must be a fraction in [0, 1], got {label_noise}"
        )));
    }
    if !(weight_decay >= 0.0 && weight_decay.is_finite()) {
        return Err(TrainError::Config(format!(
            "weight decay must be a finite number ≥ 0, got {weight_decay}"
        )));
    }
    Ok(())
}

/// Mean loss and accuracy of `model` on `images`, in batches of 500, without autodiff.
pub fn evaluate<B: Backend>(model: &Vit<B>, images: &Images, device: &B::Device) -> (f64, f64) {
    if images.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let (mut loss, mut correct) = (0.0, 0.0);
    for idx in images.batch_indices(500, None) {
        let batch = images.batch::<B>(&idx, device);
        let logits = model.forward(batch.images);
        correct += count_correct(logits.clone(), &batch.labels);
        loss += scalar(cross_entropy(logits, batch.labels)) * idx.len() as f64;
    }
    let n = images.len() as f64;
    (loss / n, correct / n)
}

fn run<B, O>(
    base: O,
    mut model: Vit<B>,
    config: &TrainConfig,
    train: &Images,
    test: &Images,
    device: &B::Device,
    progress: &mut dyn Progress,
) -> Result<(Vit<B>, TrainReport), TrainError>
where
    B: AutodiffBackend,
    O: Optimizer<Vit<B>, B>,
{
    let start = Instant::now();
    let kind = config.optimizer;
    let rule = match kind {
        OptimizerKind::Sam => Some(Perturbation::sam()),
        OptimizerKind::Asam => Some(Perturbation::asam(0.01)),
        OptimizerKind::Gsam => Some(Perturbation::geodesic(config.metric)),
        OptimizerKind::Rsam => Some(Perturbation::rsam(1.2)?),
        _ => None,
    };
    let mut optim = SharpnessAware::new(
        base,
        rule.unwrap_or_else(Perturbation::sam),
        if rule.is_some() {
            config.effective_rho()
        } else {
            0.0
        },
    )?
    .for_model(&model);
    let trajectory = config.trajectory.unwrap_or(match kind {
        OptimizerKind::Mesa => TrajectoryConfig::mesa(),
        _ => TrajectoryConfig::saf(),
    });
    let classes = config.model.classes;
    let mut saf = (kind == OptimizerKind::Saf)
        .then(|| Saf::<B::InnerBackend>::new(trajectory, train.len(), classes, device))
        .transpose()?;
    let mut mesa = (kind == OptimizerKind::Mesa)
        .then(|| Mesa::<Vit<B::InnerBackend>>::new(trajectory))
        .transpose()?;
    let mut rng = StdRng::seed_from_u64(config.seed.wrapping_add(0x5eed));
    let mut epochs = Vec::with_capacity(config.epochs);
    for epoch in 0..config.epochs {
        let batches = train.batch_indices(config.batch, Some(&mut rng));
        progress.begin(
            &format!("epoch {}/{}", epoch + 1, config.epochs),
            batches.len() as u64,
        );
        let started = Instant::now();
        let (mut loss_sum, mut correct) = (0.0, 0.0);
        for idx in &batches {
            let batch = train.batch::<B>(idx, device);
            let teacher = mesa
                .as_ref()
                .filter(|m| m.active())
                .and_then(|m| m.teacher())
                .map(|t| t.forward(batch.images.clone().inner()));
            let mut calls = 0;
            let mut clean_correct = 0.0;
            let mut extra: Result<(), optim::Error> = Ok(());
            let mut loss = |m: &Vit<B>, _: usize| {
                let logits = m.forward(batch.images.clone());
                if calls == 0 {
                    clean_correct =
                        count_correct(logits.clone().inner(), &batch.labels.clone().inner());
                }
                calls += 1;
                let mut value = cross_entropy(logits.clone(), batch.labels.clone());
                if let Some(saf) = saf.as_mut() {
                    match saf.term(&batch.indices, logits.clone()) {
                        Ok(Some(term)) => value = value + term,
                        Ok(None) => {}
                        Err(e) => extra = Err(e),
                    }
                }
                if let (Some(mesa), Some(t)) = (mesa.as_ref(), teacher.clone()) {
                    if let Some(term) = mesa.term(t, logits) {
                        value = value + term;
                    }
                }
                value
            };
            let plain =
                rule.is_none() || (kind == OptimizerKind::Rsam && epoch < config.warmup_epochs);
            let (next, report) = if plain {
                optim.plain_step(config.learning_rate, model, 1, &mut loss)?
            } else {
                optim.step(config.learning_rate, model, 1, &mut loss)?
            };
            extra?;
            model = next;
            if let Some(mesa) = mesa.as_mut() {
                mesa.update(&model);
            }
            loss_sum += report.loss * idx.len() as f64;
            correct += clean_correct;
            progress.advance(1);
        }
        let seconds = started.elapsed().as_secs_f64();
        progress.end();
        if let Some(saf) = saf.as_mut() {
            saf.end_epoch();
        }
        if let Some(mesa) = mesa.as_mut() {
            mesa.end_epoch();
        }
        let (test_loss, test_acc) = evaluate(&model.valid(), test, device);
        let n = train.len() as f64;
        epochs.push(EpochStats {
            train_loss: loss_sum / n,
            train_acc: correct / n,
            test_loss,
            test_acc,
            seconds,
        });
    }
    let valid = model.valid();
    let (train_loss, train_acc) = evaluate(&valid, train, device);
    let (test_loss, test_acc) = epochs
        .last()
        .map_or((f64::NAN, f64::NAN), |e| (e.test_loss, e.test_acc));
    Ok((
        model,
        TrainReport {
            optimizer: kind.name().to_string(),
            config: config.clone(),
            epochs,
            final_train: Some(Evaluation {
                loss: train_loss,
                error: 1.0 - train_acc,
            }),
            final_test: Some(Evaluation {
                loss: test_loss,
                error: 1.0 - test_acc,
            }),
            seconds: start.elapsed().as_secs_f64(),
        },
    ))
}
