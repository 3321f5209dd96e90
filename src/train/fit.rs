//! The epoch loop every training run shares: the ViT on Fashion-MNIST and BERT's tail on MR
//! train through [`fit`] with any of the optimisers of [`crate::optim`].
//!
//! One loop serves all of them: plain SGD/Adam, the two-pass rules (SAM, ASAM, geodesic SAM,
//! RSAM after its plain warm-up epochs) through [`SharpnessAware`], and SAF/MESA as a loss term
//! on the plain step. What differs between models — how a batch is built, how logits are
//! computed, how a model is evaluated — is the [`Task`] a model implements. The wall time of an
//! epoch counts training only (the evaluation of the test set after it is timed apart), so the
//! ratios between optimisers are the cost of their steps.
//!
//! With [`Checkpoints`] the loop saves its whole state after every epoch (see
//! [`super::resume`]) and, when asked, starts from the last one saved: the continued run is the
//! uninterrupted run, bit for bit, because everything a step depends on is either saved (the
//! weights, the base optimiser's moments, SAF's logit tables, MESA's average) or replayed (the
//! batch order, drawn from a seeded generator, is redrawn for the epochs already done).

use std::time::Instant;

use burn::module::AutodiffModule;
use burn::optim::Optimizer;
use burn::prelude::{Int, Tensor};
use burn::tensor::backend::AutodiffBackend;
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::resume::{Checkpoints, EpochState};
use super::vit::{EpochStats, Evaluation, OptimizerKind, TrainError};
use crate::geometry::Metric;
use crate::measures::Progress;
use crate::models::loss::{count_correct, cross_entropy};
use crate::optim::{self, Mesa, Perturbation, Saf, SharpnessAware, TrajectoryConfig};
use crate::symmetry::Symmetric;

/// The inner (non-autodiff) module of a task's model.
pub type Inner<B, T> = <<T as Task<B>>::Model as AutodiffModule<B>>::InnerModule;

/// A classification task as the training loop sees it: its training samples, in batches, and
/// how its model turns a batch into logits.
pub trait Task<B: AutodiffBackend> {
    /// The model trained.
    type Model: AutodiffModule<B> + Symmetric;
    /// A batch of training samples, on the device.
    type Batch;

    /// Number of training samples.
    fn train_len(&self) -> usize;
    /// Number of classes (the width of SAF's logit tables).
    fn classes(&self) -> usize;
    /// The next epoch's batches of at most `batch` training positions (each in
    /// `0..train_len()`, each once), drawn from `rng`. Called once per epoch in order, also for
    /// the epochs a resumed run replays, so a task may keep state between calls.
    fn next_epoch(&mut self, batch: usize, rng: &mut StdRng) -> Vec<Vec<usize>>;
    /// The training samples at `positions`, with their labels.
    fn batch(&self, positions: &[usize]) -> Self::Batch;
    /// The batch's labels.
    fn labels(batch: &Self::Batch) -> Tensor<B, 1, Int>;
    /// Logits `[batch, classes]` of `model` on `batch`.
    fn logits(model: &Self::Model, batch: &Self::Batch) -> Tensor<B, 2>;
    /// Logits of the inner model (MESA's teacher) on `batch`, without autodiff.
    fn inner_logits(model: &Inner<B, Self>, batch: &Self::Batch) -> Tensor<B::InnerBackend, 2>;
    /// Mean loss and error of `model` on the test set.
    fn test(&self, model: &Inner<B, Self>) -> Evaluation;
}

/// How [`fit`] trains: the optimiser and its schedule, whatever the model.
#[derive(Debug, Clone, PartialEq)]
pub struct Recipe {
    /// The optimiser (the base optimiser is the one [`fit`] is given).
    pub optimizer: OptimizerKind,
    /// ρ of the two-pass rules.
    pub rho: f64,
    /// Geodesic SAM's metric.
    pub metric: Metric,
    /// Learning rate, constant over the run.
    pub learning_rate: f64,
    /// Epochs.
    pub epochs: usize,
    /// Samples per batch.
    pub batch: usize,
    /// Seed of the batch order.
    pub seed: u64,
    /// RSAM's plain warm-up epochs.
    pub warmup_epochs: usize,
    /// SAF/MESA settings (`None`: the paper's defaults).
    pub trajectory: Option<TrajectoryConfig>,
}

/// What [`fit`] returns.
#[derive(Debug)]
pub struct Fitted<M> {
    /// The trained model.
    pub model: M,
    /// Every epoch's figures, those of a resumed run's earlier sessions first.
    pub epochs: Vec<EpochStats>,
    /// Wall time spent by the earlier sessions of a resumed run (0 for a fresh run).
    pub earlier_seconds: f64,
}

/// Trains `model` on `task` with `base` under `recipe` for `recipe.epochs` epochs, saving the
/// state after each epoch into `checkpoints` when given (and starting from the state saved
/// there when it asks to resume).
///
/// # Errors
/// [`TrainError::Config`] for zero epochs or batch, an empty training set, or a resume whose
/// saved run differs; [`TrainError::Optim`] for invalid ρ or SAF/MESA settings and a
/// non-finite loss; [`TrainError::Checkpoint`] for state that cannot be written or read.
pub fn fit<B, T, O>(
    task: &mut T,
    mut model: T::Model,
    base: O,
    recipe: &Recipe,
    checkpoints: Option<&Checkpoints>,
    device: &B::Device,
    progress: &mut dyn Progress,
) -> Result<Fitted<T::Model>, TrainError>
where
    B: AutodiffBackend,
    T: Task<B>,
    O: Optimizer<T::Model, B>,
{
    if recipe.epochs == 0 || recipe.batch == 0 {
        return Err(TrainError::Config(
            "epochs and batch must be at least 1".into(),
        ));
    }
    if task.train_len() == 0 {
        return Err(TrainError::Config("the training set is empty".into()));
    }
    let kind = recipe.optimizer;
    let rule = match kind {
        OptimizerKind::Sam => Some(Perturbation::sam()),
        OptimizerKind::Asam => Some(Perturbation::asam(0.01)),
        OptimizerKind::Gsam => Some(Perturbation::geodesic(recipe.metric)),
        OptimizerKind::Rsam => Some(Perturbation::rsam(1.2)?),
        _ => None,
    };
    let rho = if rule.is_some() { recipe.rho } else { 0.0 };
    let mut optim =
        SharpnessAware::new(base, rule.unwrap_or_else(Perturbation::sam), rho)?.for_model(&model);
    let trajectory = recipe.trajectory.unwrap_or(match kind {
        OptimizerKind::Mesa => TrajectoryConfig::mesa(),
        _ => TrajectoryConfig::saf(),
    });
    let mut saf = (kind == OptimizerKind::Saf)
        .then(|| Saf::<B::InnerBackend>::new(trajectory, task.train_len(), task.classes(), device))
        .transpose()?;
    let mut mesa = (kind == OptimizerKind::Mesa)
        .then(|| Mesa::<Inner<B, T>>::new(trajectory))
        .transpose()?;
    let mut rng = StdRng::seed_from_u64(recipe.seed.wrapping_add(0x5eed));
    let mut epochs = Vec::with_capacity(recipe.epochs);
    let mut earlier_seconds = 0.0;
    if let Some(saved) = checkpoints.and_then(|c| c.resume.then_some(c)) {
        if let Some(state) = saved.load::<B, T::Model, O>(model.clone(), device)? {
            let EpochState {
                model: loaded,
                optimizer,
                saf: saf_record,
                mesa: ema,
                progress: done,
            } = state;
            if done.epochs.len() > recipe.epochs {
                return Err(TrainError::Config(format!(
                    "{} holds {} finished epochs, more than the {} asked for",
                    saved.dir.display(),
                    done.epochs.len(),
                    recipe.epochs
                )));
            }
            model = loaded;
            optim = optim.load_record::<B, T::Model>(optimizer);
            if let (Some(saf), Some(record)) = (saf.as_mut(), saf_record) {
                saf.load_record(record)?;
            }
            if let Some(mesa) = mesa.as_mut() {
                mesa.restore(ema, done.epochs.len());
            }
            for _ in 0..done.epochs.len() {
                task.next_epoch(recipe.batch, &mut rng);
            }
            earlier_seconds = done.seconds;
            epochs = done.epochs;
            eprintln!(
                "resuming from {} after epoch {}",
                saved.dir.display(),
                epochs.len()
            );
        }
    }
    let start = Instant::now();
    for epoch in epochs.len()..recipe.epochs {
        let batches = task.next_epoch(recipe.batch, &mut rng);
        progress.begin(
            &format!("epoch {}/{}", epoch + 1, recipe.epochs),
            batches.len() as u64,
        );
        let started = Instant::now();
        let (mut loss_sum, mut correct) = (0.0, 0.0);
        for positions in &batches {
            let batch = task.batch(positions);
            let teacher = mesa
                .as_ref()
                .filter(|m| m.active())
                .and_then(|m| m.teacher())
                .map(|t| T::inner_logits(t, &batch));
            let mut calls = 0;
            let mut clean_correct = 0.0;
            let mut extra: Result<(), optim::Error> = Ok(());
            let labels = T::labels(&batch);
            let mut loss = |m: &T::Model, _: usize| {
                let logits = T::logits(m, &batch);
                if calls == 0 {
                    clean_correct = count_correct(logits.clone().inner(), &labels.clone().inner());
                }
                calls += 1;
                let mut value = cross_entropy(logits.clone(), labels.clone());
                if let Some(saf) = saf.as_mut() {
                    match saf.term(positions, logits.clone()) {
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
                rule.is_none() || (kind == OptimizerKind::Rsam && epoch < recipe.warmup_epochs);
            let (next, report) = if plain {
                optim.plain_step(recipe.learning_rate, model, 1, &mut loss)?
            } else {
                optim.step(recipe.learning_rate, model, 1, &mut loss)?
            };
            extra?;
            model = next;
            if let Some(mesa) = mesa.as_mut() {
                mesa.update(&model);
            }
            loss_sum += report.loss * positions.len() as f64;
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
        let test = task.test(&model.valid());
        let n = task.train_len() as f64;
        epochs.push(EpochStats {
            train_loss: loss_sum / n,
            train_acc: correct / n,
            test_loss: test.loss,
            test_acc: 1.0 - test.error,
            seconds,
        });
        if let Some(checkpoints) = checkpoints {
            checkpoints.save::<B, T::Model, O>(
                &model,
                optim.to_record::<B, T::Model>(),
                saf.as_ref().map(Saf::to_record),
                mesa.as_ref().and_then(Mesa::teacher),
                &epochs,
                earlier_seconds + start.elapsed().as_secs_f64(),
            )?;
        }
    }
    Ok(Fitted {
        model,
        epochs,
        earlier_seconds,
    })
}
