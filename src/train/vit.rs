//! Training the ViT on Fashion-MNIST with any of the optimisers of [`crate::optim`], through
//! the shared epoch loop [`fit`]: this module is the ViT's [`Task`], its
//! configuration and its report.

use std::time::Instant;

use burn::module::AutodiffModule;
use burn::optim::Optimizer;
use burn::prelude::{Backend, Int, Tensor};
use burn::tensor::backend::AutodiffBackend;
use rand::rngs::StdRng;
use serde::Serialize;

use super::fit::{Recipe, Task, fit};
use super::resume::Checkpoints;
use crate::data::fashion::Images;
use crate::geometry::Metric;
use crate::host::scalar;
use crate::measures::Progress;
use crate::models::loss::{count_correct, cross_entropy};
use crate::models::{ImageBatch, Vit, VitConfig};
use crate::optim::{self, TrajectoryConfig};

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

    /// What the epoch loop needs of this configuration.
    pub fn recipe(&self) -> Recipe {
        Recipe {
            optimizer: self.optimizer,
            rho: self.effective_rho(),
            metric: self.metric,
            learning_rate: self.learning_rate,
            epochs: self.epochs,
            batch: self.batch,
            seed: self.seed,
            warmup_epochs: self.warmup_epochs,
            trajectory: self.trajectory,
        }
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

impl EpochStats {
    /// The test loss and error after the epoch.
    pub fn test_evaluation(&self) -> Evaluation {
        Evaluation {
            loss: self.test_loss,
            error: 1.0 - self.test_acc,
        }
    }
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
    train_vit_with_checkpoints(config, train, test, None, device, progress)
}

/// [`train_vit`], saving the run's state after every epoch into `checkpoints` (and starting
/// from the state saved there when it asks to resume; see [`super::resume`]).
///
/// # Errors
/// Those of [`train_vit`], a resume of a run with other settings ([`TrainError::Config`]), and
/// state that cannot be written or read ([`TrainError::Checkpoint`]).
pub fn train_vit_with_checkpoints<B: AutodiffBackend>(
    config: &TrainConfig,
    train: &Images,
    test: &Images,
    checkpoints: Option<&Checkpoints>,
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
    let model = crate::params::seeded::<B, _>(device, config.seed, || config.model.init(device));
    with_base_optimizer!(config.base, config.weight_decay, |base| run(
        base,
        model,
        config,
        (train, test),
        checkpoints,
        device,
        progress
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

/// The ViT's [`Task`]: Fashion-MNIST images in reshuffled batches each epoch.
struct VitTask<'a, B: Backend> {
    train: &'a Images,
    test: &'a Images,
    classes: usize,
    device: B::Device,
}

impl<B: AutodiffBackend> Task<B> for VitTask<'_, B> {
    type Model = Vit<B>;
    type Batch = ImageBatch<B>;

    fn train_len(&self) -> usize {
        self.train.len()
    }

    fn classes(&self) -> usize {
        self.classes
    }

    fn next_epoch(&mut self, batch: usize, rng: &mut StdRng) -> Vec<Vec<usize>> {
        self.train.batch_indices(batch, Some(rng))
    }

    fn batch(&self, positions: &[usize]) -> ImageBatch<B> {
        self.train.batch::<B>(positions, &self.device)
    }

    fn labels(batch: &ImageBatch<B>) -> Tensor<B, 1, Int> {
        batch.labels.clone()
    }

    fn logits(model: &Vit<B>, batch: &ImageBatch<B>) -> Tensor<B, 2> {
        model.forward(batch.images.clone())
    }

    fn inner_logits(
        model: &Vit<B::InnerBackend>,
        batch: &ImageBatch<B>,
    ) -> Tensor<B::InnerBackend, 2> {
        model.forward(batch.images.clone().inner())
    }

    fn test(&self, model: &Vit<B::InnerBackend>) -> Evaluation {
        let (loss, acc) = evaluate(model, self.test, &self.device);
        Evaluation {
            loss,
            error: 1.0 - acc,
        }
    }
}

fn run<B, O>(
    base: O,
    model: Vit<B>,
    config: &TrainConfig,
    (train, test): (&Images, &Images),
    checkpoints: Option<&Checkpoints>,
    device: &B::Device,
    progress: &mut dyn Progress,
) -> Result<(Vit<B>, TrainReport), TrainError>
where
    B: AutodiffBackend,
    O: Optimizer<Vit<B>, B>,
{
    let start = Instant::now();
    let mut task = VitTask::<B> {
        train,
        test,
        classes: config.model.classes,
        device: device.clone(),
    };
    let fitted = fit(
        &mut task,
        model,
        base,
        &config.recipe(),
        checkpoints,
        device,
        progress,
    )?;
    let valid = fitted.model.valid();
    let (train_loss, train_acc) = evaluate(&valid, train, device);
    let final_test = fitted.epochs.last().map(EpochStats::test_evaluation);
    Ok((
        fitted.model,
        TrainReport {
            optimizer: config.optimizer.name().to_string(),
            config: config.clone(),
            epochs: fitted.epochs,
            final_train: Some(Evaluation {
                loss: train_loss,
                error: 1.0 - train_acc,
            }),
            // `fit` refuses zero epochs, so there is a last one.
            final_test,
            seconds: fitted.earlier_seconds + start.elapsed().as_secs_f64(),
        },
    ))
}
