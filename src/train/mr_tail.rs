//! Fine-tuning the last layers of MiniLM-L6 with a sentiment head on MR: the text models of
//! the correlation study.
//!
//! A family of fully fine-tuned BERTs is out of reach on two CPU cores (a MiniLM
//! forward+backward of 128 sentences takes 12 s), and a frozen encoder with a trained linear
//! probe has no attention weights that differ between models. Fine-tuning the top `k` layers
//! sits between: the frozen front's hidden states are computed once per sentence
//! ([`Features::compute`]) and shared by every model of a family, and each model trains its own
//! copy of the top layer(s) and head ([`BertTail`]) — attention weights included, so the
//! geodesic measures have GL(h) blocks to act on.
//!
//! A run ([`train_tail`]): the training subset is a seeded sample of `train_size` sentences of
//! a fixed pool (the first `pool` sentences of the shuffled MR training split), with
//! `label_noise` of its labels flipped; the head starts from a logistic-regression probe on the
//! pretrained tail's embeddings of that subset (so the first steps do not spend themselves
//! fitting a random head), then tail and head train jointly with Adam or SGD + momentum and
//! L2 weight decay. The report records the final model's loss and error on the noisy training
//! subset and on the test sentences.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::{AutodiffModule, Module};
use burn::nn::{Linear, LinearConfig};
use burn::optim::Optimizer;
use burn::prelude::{Backend, Int, Tensor, TensorData};
use burn::record::{FullPrecisionSettings, NamedMpkFileRecorder};
use burn::tensor::backend::AutodiffBackend;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use super::fit::{Recipe, Task, fit};
use super::head::{HeadFit, fit_linear, labels as label_tensor};
use super::resume::Checkpoints;
use super::vit::{BaseOptimizer, EpochStats, Evaluation, OptimizerKind, TrainError};
use crate::data::{self, LabelledSentences, SentenceEncoder};
use crate::geometry::Metric;
use crate::host::scalar;
use crate::measures::Progress;
use crate::models::loss::{count_correct, cross_entropy};
use crate::models::{BertModel, BertTail, TailBatch};
use crate::optim::TrajectoryConfig;

/// The `task` field of a tail's `train.json`, which tells it from a ViT report.
pub const TASK: &str = "mr_tail";
/// The tail's weights' file stem in a checkpoint directory (Burn's recorder adds `.mpk`).
pub const TAIL_STEM: &str = "tail";

/// Everything that defines a fine-tuning run of a tail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MrTailConfig {
    /// The training rule: plain steps of `base` (`sgd` or `adam`, whichever `base` is), a
    /// two-pass rule on `base`, or SAF/MESA on `base`.
    #[serde(default = "plain")]
    pub optimizer: OptimizerKind,
    /// ρ of the two-pass rules (`None`: the rule's default).
    #[serde(default)]
    pub rho: Option<f64>,
    /// Geodesic SAM's metric.
    #[serde(default = "mix")]
    pub metric: Metric,
    /// RSAM's plain warm-up epochs.
    #[serde(default = "one")]
    pub warmup_epochs: usize,
    /// SAF/MESA settings (`None`: the papers' defaults).
    #[serde(default)]
    pub trajectory: Option<TrajectoryConfig>,
    /// The base optimiser (with L2 weight decay `weight_decay`).
    pub base: BaseOptimizer,
    /// Learning rate, constant over the run.
    pub learning_rate: f64,
    /// L2 weight decay (λw added to the gradient); 0 for none.
    pub weight_decay: f64,
    /// Fraction of the training labels flipped, seeded by `seed`.
    pub label_noise: f64,
    /// Epochs.
    pub epochs: usize,
    /// Sentences per batch.
    pub batch: usize,
    /// Training sentences: a seeded sample of the pool.
    pub train_size: usize,
    /// Test sentences: the first of the MR test split.
    pub test_size: usize,
    /// The pool the training subset is drawn from: the first sentences of the MR training split.
    pub pool: usize,
    /// Layers fine-tuned (the top `k`; the others are frozen).
    pub tail_layers: usize,
    /// Maximum tokens per sentence (every sentence is padded to this length).
    pub max_len: usize,
    /// Seed of MR's train/test split.
    pub split_seed: u64,
    /// Full-batch Adam steps of the initial probe (learning rate 0.05).
    pub probe_steps: usize,
    /// Seed of the subset, the label noise and the batch order.
    pub seed: u64,
}

fn plain() -> OptimizerKind {
    OptimizerKind::Adam
}

fn mix() -> Metric {
    Metric::Mix
}

fn one() -> usize {
    1
}

impl Default for MrTailConfig {
    /// Plain Adam at 1e−4 for 3 epochs of batches of 32 on 1 000 of a 2 000-sentence pool, the
    /// last layer fine-tuned, sentences truncated to 32 tokens, 2 000 test sentences.
    fn default() -> Self {
        Self {
            optimizer: plain(),
            rho: None,
            metric: mix(),
            warmup_epochs: one(),
            trajectory: None,
            base: BaseOptimizer::Adam,
            learning_rate: 1e-4,
            weight_decay: 0.0,
            label_noise: 0.0,
            epochs: 3,
            batch: 32,
            train_size: 1_000,
            test_size: 2_000,
            pool: 2_000,
            tail_layers: 1,
            max_len: 32,
            split_seed: 0,
            probe_steps: 200,
            seed: 0,
        }
    }
}

impl MrTailConfig {
    /// Whether the run takes plain steps of its base optimiser (`optimizer` is `sgd` or `adam`).
    pub fn is_plain(&self) -> bool {
        matches!(self.optimizer, OptimizerKind::Sgd | OptimizerKind::Adam)
    }

    /// The rule's name: the base optimiser's for plain steps, else the rule's.
    pub fn optimizer_name(&self) -> &'static str {
        match (self.is_plain(), self.base) {
            (true, BaseOptimizer::Sgd) => "sgd",
            (true, BaseOptimizer::Adam) => "adam",
            (false, _) => self.optimizer.name(),
        }
    }

    /// ρ: the given one, or the rule's default.
    pub fn effective_rho(&self) -> f64 {
        self.rho.unwrap_or(self.optimizer.default_rho())
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

    /// Positions in the pool of the run's training sentences: a seeded sample of `train_size`.
    pub fn training_positions(&self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.pool).collect();
        order.shuffle(&mut StdRng::seed_from_u64(self.seed));
        order.truncate(self.train_size.min(self.pool));
        order
    }

    /// The labels the run trains on: `pool_labels` at [`Self::training_positions`], with
    /// `label_noise` of them flipped. Training, measuring and evaluating all call this.
    pub fn training_labels(&self, pool_labels: &[usize]) -> Vec<usize> {
        let mut labels: Vec<usize> = self
            .training_positions()
            .iter()
            .map(|&i| pool_labels[i])
            .collect();
        data::corrupt_labels(&mut labels, self.label_noise, self.seed, |l, _| 1 - l);
        labels
    }

    fn check(&self) -> Result<(), TrainError> {
        let bad = |m: String| Err(TrainError::Config(m));
        if self.epochs == 0 || self.batch == 0 || self.train_size == 0 || self.test_size == 0 {
            return bad("epochs, batch, train and test sizes must be at least 1".into());
        }
        if self.train_size > self.pool {
            return bad(format!(
                "train_size {} exceeds the pool of {} sentences",
                self.train_size, self.pool
            ));
        }
        super::vit::check_regularisation(self.label_noise, self.weight_decay)?;
        if !(self.learning_rate > 0.0 && self.learning_rate.is_finite()) {
            return bad(format!(
                "learning rate must be positive, got {}",
                self.learning_rate
            ));
        }
        Ok(())
    }
}

/// One epoch of a tail's training.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TailEpoch {
    /// Mean training loss over the epoch's steps.
    pub train_loss: f64,
    /// Training accuracy over the epoch's steps.
    pub train_acc: f64,
    /// The model after the epoch on the test sentences (absent from reports written before
    /// it was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test: Option<Evaluation>,
    /// Wall time of the epoch's steps.
    pub seconds: f64,
}

impl From<EpochStats> for TailEpoch {
    fn from(e: EpochStats) -> Self {
        Self {
            train_loss: e.train_loss,
            train_acc: e.train_acc,
            test: Some(e.test_evaluation()),
            seconds: e.seconds,
        }
    }
}

/// A finished tail run: what `train.json` of its checkpoint holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MrTailReport {
    /// Always [`TASK`].
    pub task: String,
    /// The optimiser's name (`adam` or `sgd`).
    pub optimizer: String,
    /// The configuration.
    pub config: MrTailConfig,
    /// Per-epoch figures.
    pub epochs: Vec<TailEpoch>,
    /// The initial probe on the noisy training subset.
    pub probe_train: Evaluation,
    /// The final model on the (noisy) training subset.
    pub final_train: Evaluation,
    /// The final model on the test sentences.
    pub final_test: Evaluation,
    /// Wall time of the run, evaluation included.
    pub seconds: f64,
}

/// The frozen front's hidden states of a list of sentences, padded to `max_len` tokens, on
/// the device: computed once, then batched by position for every model of a family.
#[derive(Debug, Clone)]
pub struct Features<B: Backend> {
    /// `[n, max_len, hidden]`.
    pub hidden: Tensor<B, 3>,
    /// `[n, max_len]`, 1 for real tokens.
    pub mask: Tensor<B, 2>,
    /// The sentences' (clean) labels.
    pub labels: Vec<usize>,
}

impl<B: Backend> Features<B> {
    /// Runs `front` (the frozen layers) on `sentences` in batches of `batch`; sentences are
    /// truncated by `encoder` and padded with zero states and a zero mask to `max_len`. A
    /// padded position is masked out of attention and pooling, so the tail's outputs equal
    /// those of the batch padded to its own longest sentence.
    ///
    /// # Errors
    /// [`data::Error`] for no sentences or a tokenizer failure.
    pub fn compute(
        front: &BertModel<B>,
        encoder: &SentenceEncoder,
        sentences: &LabelledSentences,
        (max_len, batch): (usize, usize),
        device: &B::Device,
        progress: &mut dyn Progress,
    ) -> Result<Self, data::Error> {
        if sentences.is_empty() {
            return Err(data::Error::Empty {
                what: "sentences to compute features of",
            });
        }
        progress.begin("frozen layers", sentences.len() as u64);
        let (mut hidden, mut mask) = (Vec::new(), Vec::new());
        for chunk in sentences.sentences.chunks(batch.max(1)) {
            let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
            let input = encoder.encode::<B>(&refs, device)?;
            let h = front.hidden_states(&input, usize::MAX);
            let [n, t, d] = h.dims();
            let pad = max_len.saturating_sub(t);
            let (h, m) = if pad == 0 {
                (h, input.mask)
            } else {
                (
                    Tensor::cat(vec![h, Tensor::zeros([n, pad, d], device)], 1),
                    Tensor::cat(vec![input.mask, Tensor::zeros([n, pad], device)], 1),
                )
            };
            hidden.push(h);
            mask.push(m);
            progress.advance(chunk.len() as u64);
        }
        progress.end();
        Ok(Self {
            hidden: Tensor::cat(hidden, 0),
            mask: Tensor::cat(mask, 0),
            labels: sentences.labels.clone(),
        })
    }

    /// Number of sentences.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Hidden states and mask of the sentences at `positions`.
    pub fn select(&self, positions: &[usize]) -> (Tensor<B, 3>, Tensor<B, 2>) {
        let idx = Tensor::<B, 1, Int>::from_data(
            TensorData::new(
                positions.iter().map(|&i| i as i64).collect(),
                [positions.len()],
            ),
            &self.hidden.device(),
        );
        (
            self.hidden.clone().select(0, idx.clone()),
            self.mask.clone().select(0, idx),
        )
    }

    /// The sentences at `positions` with `labels` (one per position) as a batch.
    pub fn batch(&self, positions: &[usize], labels: &[usize]) -> TailBatch<B> {
        let (hidden, mask) = self.select(positions);
        TailBatch {
            hidden,
            mask,
            labels: label_tensor(labels, &self.hidden.device()),
        }
    }
}

/// `batch` on the autodiff backend.
pub fn lift<B: AutodiffBackend>(batch: TailBatch<B::InnerBackend>) -> TailBatch<B> {
    TailBatch {
        hidden: Tensor::from_inner(batch.hidden),
        mask: Tensor::from_inner(batch.mask),
        labels: Tensor::from_inner(batch.labels),
    }
}

/// Mean loss and error of `tail` on the sentences at `positions` with `labels`, in batches of
/// 256, without autodiff.
pub fn evaluate<B: Backend>(
    tail: &BertTail<B>,
    features: &Features<B>,
    positions: &[usize],
    labels: &[usize],
) -> Evaluation {
    let (mut loss, mut correct) = (0.0, 0.0);
    for (p, l) in positions.chunks(256).zip(labels.chunks(256)) {
        let batch = features.batch(p, l);
        let logits = tail.forward(batch.hidden, &batch.mask);
        correct += count_correct(logits.clone(), &batch.labels);
        loss += scalar(cross_entropy(logits, batch.labels)) * p.len() as f64;
    }
    let n = positions.len().max(1) as f64;
    Evaluation {
        loss: loss / n,
        error: 1.0 - correct / n,
    }
}

/// Trains `tail` (the pretrained top layers; its head is replaced by the probe) on `pool`
/// and reports it on the first `test_size` sentences of `test`.
///
/// # Errors
/// [`TrainError::Config`] for an invalid configuration or too few sentences;
/// [`TrainError::Optim`] for invalid ρ or a loss that stops being finite.
pub fn train_tail<B: AutodiffBackend>(
    config: &MrTailConfig,
    tail: BertTail<B>,
    features: (&Features<B::InnerBackend>, &Features<B::InnerBackend>),
    device: &B::Device,
    progress: &mut dyn Progress,
) -> Result<(BertTail<B>, MrTailReport), TrainError> {
    train_tail_with_checkpoints(config, tail, features, None, device, progress)
}

/// [`train_tail`], saving the run's state after every epoch into `checkpoints` (and starting
/// from the state saved there when it asks to resume; see [`super::resume`]).
///
/// # Errors
/// Those of [`train_tail`], a resume of a run with other settings ([`TrainError::Config`]),
/// and state that cannot be written or read ([`TrainError::Checkpoint`]).
pub fn train_tail_with_checkpoints<B: AutodiffBackend>(
    config: &MrTailConfig,
    tail: BertTail<B>,
    (pool, test): (&Features<B::InnerBackend>, &Features<B::InnerBackend>),
    checkpoints: Option<&Checkpoints>,
    device: &B::Device,
    progress: &mut dyn Progress,
) -> Result<(BertTail<B>, MrTailReport), TrainError> {
    config.check()?;
    if pool.len() < config.pool || test.len() < config.test_size {
        return Err(TrainError::Config(format!(
            "the run needs a pool of {} and {} test sentences, the features hold {} and {}",
            config.pool,
            config.test_size,
            pool.len(),
            test.len()
        )));
    }
    with_base_optimizer!(config.base, config.weight_decay, |base| run(
        base,
        tail,
        config,
        (pool, test),
        checkpoints,
        device,
        progress
    ))
}

/// The tail's [`Task`]: the run's training subset of the pool's features, reshuffled each
/// epoch (each epoch's order a shuffle of the last one's), and the first `test_size` test
/// sentences.
struct TailTask<'a, B: AutodiffBackend> {
    pool: &'a Features<B::InnerBackend>,
    test: &'a Features<B::InnerBackend>,
    test_size: usize,
    /// Pool positions of the training subset.
    positions: Vec<usize>,
    /// The (noisy) labels of the training subset.
    labels: Vec<usize>,
    /// The current order of the training subset.
    order: Vec<usize>,
}

impl<B: AutodiffBackend> Task<B> for TailTask<'_, B> {
    type Model = BertTail<B>;
    type Batch = TailBatch<B>;

    fn train_len(&self) -> usize {
        self.positions.len()
    }

    fn classes(&self) -> usize {
        2
    }

    fn next_epoch(&mut self, batch: usize, rng: &mut StdRng) -> Vec<Vec<usize>> {
        self.order.shuffle(rng);
        self.order
            .chunks(batch.max(1))
            .map(<[usize]>::to_vec)
            .collect()
    }

    fn batch(&self, subset: &[usize]) -> TailBatch<B> {
        let p: Vec<usize> = subset.iter().map(|&i| self.positions[i]).collect();
        let l: Vec<usize> = subset.iter().map(|&i| self.labels[i]).collect();
        lift::<B>(self.pool.batch(&p, &l))
    }

    fn labels(batch: &TailBatch<B>) -> Tensor<B, 1, Int> {
        batch.labels.clone()
    }

    fn logits(model: &BertTail<B>, batch: &TailBatch<B>) -> Tensor<B, 2> {
        model.forward(batch.hidden.clone(), &batch.mask)
    }

    fn inner_logits(
        model: &BertTail<B::InnerBackend>,
        batch: &TailBatch<B>,
    ) -> Tensor<B::InnerBackend, 2> {
        model.forward(batch.hidden.clone().inner(), &batch.mask.clone().inner())
    }

    fn test(&self, model: &BertTail<B::InnerBackend>) -> Evaluation {
        let positions: Vec<usize> = (0..self.test_size).collect();
        evaluate(
            model,
            self.test,
            &positions,
            &self.test.labels[..self.test_size],
        )
    }
}

fn run<B, O>(
    base: O,
    tail: BertTail<B>,
    config: &MrTailConfig,
    (pool, test): (&Features<B::InnerBackend>, &Features<B::InnerBackend>),
    checkpoints: Option<&Checkpoints>,
    device: &B::Device,
    progress: &mut dyn Progress,
) -> Result<(BertTail<B>, MrTailReport), TrainError>
where
    B: AutodiffBackend,
    O: Optimizer<BertTail<B>, B>,
{
    let start = Instant::now();
    // Checkpoint loaders write untracked weights; the tail's layers must train.
    let mut tail = crate::params::trainable(tail);
    let positions = config.training_positions();
    let labels = config.training_labels(&pool.labels);
    // The probe: a linear head on the pretrained tail's embeddings of the noisy subset. (A
    // resumed run fits it again, for the report, and then loads the saved weights over it.)
    let frozen = tail.valid();
    let mut embeddings = Vec::new();
    for p in positions.chunks(256) {
        let (hidden, mask) = pool.select(p);
        embeddings.push(frozen.pooled(hidden, &mask));
    }
    let fit_probe = HeadFit {
        steps: config.probe_steps,
        learning_rate: 0.05,
        batch: 256,
    };
    let y = label_tensor::<B::InnerBackend>(&labels, device);
    let hidden = tail.head.weight.dims()[0];
    let start_head = crate::params::seeded::<B, _>(device, config.seed, || {
        crate::params::materialize(LinearConfig::new(hidden, 2).init(device))
    });
    tail.head = fit_linear::<B>(
        Tensor::cat(embeddings, 0),
        y,
        start_head,
        &fit_probe,
        progress,
    );
    let probe_train = evaluate(&tail.valid(), pool, &positions, &labels);

    let mut task = TailTask::<B> {
        pool,
        test,
        test_size: config.test_size,
        order: (0..positions.len()).collect(),
        positions,
        labels,
    };
    let fitted = fit(
        &mut task,
        tail,
        base,
        &config.recipe(),
        checkpoints,
        device,
        progress,
    )?;
    let valid = fitted.model.valid();
    let final_train = evaluate(&valid, pool, &task.positions, &task.labels);
    let final_test = fitted
        .epochs
        .last()
        .map(EpochStats::test_evaluation)
        .unwrap_or_else(|| Task::<B>::test(&task, &valid));
    let report = MrTailReport {
        task: TASK.into(),
        optimizer: config.optimizer_name().into(),
        config: config.clone(),
        epochs: fitted.epochs.into_iter().map(TailEpoch::from).collect(),
        probe_train,
        final_train,
        final_test,
        seconds: fitted.earlier_seconds + start.elapsed().as_secs_f64(),
    };
    Ok((fitted.model, report))
}

/// Whether `dir` holds a tail checkpoint written by [`save_tail`].
pub fn is_tail_checkpoint(dir: &Path) -> bool {
    dir.join(format!("{TAIL_STEM}.mpk")).is_file()
}

fn checkpoint_error(action: &'static str, path: PathBuf, reason: impl ToString) -> TrainError {
    TrainError::Checkpoint {
        action,
        path,
        reason: reason.to_string(),
    }
}

/// Writes `tail` (`tail.mpk`) and `report` (`train.json`) into `dir` (created if missing).
///
/// # Errors
/// [`TrainError::Checkpoint`] when a file cannot be written.
pub fn save_tail<B: Backend>(
    dir: &Path,
    tail: &BertTail<B>,
    report: &MrTailReport,
) -> Result<(), TrainError> {
    std::fs::create_dir_all(dir).map_err(|e| checkpoint_error("write", dir.into(), e))?;
    tail.clone()
        .save_file(
            dir.join(TAIL_STEM),
            &NamedMpkFileRecorder::<FullPrecisionSettings>::new(),
        )
        .map_err(|e| checkpoint_error("write", dir.join("tail.mpk"), e))?;
    let report_path = dir.join(super::saved::REPORT_FILE);
    let text = serde_json::to_string_pretty(report)
        .map_err(|e| checkpoint_error("write", report_path.clone(), e))?;
    std::fs::write(&report_path, text + "\n").map_err(|e| checkpoint_error("write", report_path, e))
}

/// Reads the report of the tail checkpoint in `dir`.
///
/// # Errors
/// [`TrainError::Checkpoint`] when `train.json` is missing or is not a tail's report.
pub fn load_tail_report(dir: &Path) -> Result<MrTailReport, TrainError> {
    let path = dir.join(super::saved::REPORT_FILE);
    let text =
        std::fs::read_to_string(&path).map_err(|e| checkpoint_error("read", path.clone(), e))?;
    let report: MrTailReport = serde_json::from_str(&text)
        .map_err(|e| checkpoint_error("read", path.clone(), format!("not a tail report ({e})")))?;
    if report.task != TASK {
        return Err(checkpoint_error(
            "read",
            path,
            format!("task '{}' is not '{TASK}'", report.task),
        ));
    }
    Ok(report)
}

/// Reads the tail checkpoint in `dir` into `template` (the pretrained tail of the same base
/// model, which fixes the shapes).
///
/// # Errors
/// [`TrainError::Checkpoint`] for a missing or malformed report or weights file.
pub fn load_tail<B: Backend>(
    dir: &Path,
    template: BertTail<B>,
    device: &B::Device,
) -> Result<(MrTailReport, BertTail<B>), TrainError> {
    let report = load_tail_report(dir)?;
    let tail = template
        .load_file(
            dir.join(TAIL_STEM),
            &NamedMpkFileRecorder::<FullPrecisionSettings>::new(),
            device,
        )
        .map_err(|e| checkpoint_error("read", dir.join("tail.mpk"), e))?;
    Ok((report, tail))
}

/// The pretrained MiniLM split for `config`: the frozen front and the tail (with a fresh
/// binary head), ready for [`train_tail`] or as the template of [`load_tail`].
pub fn split_base<B: Backend>(
    bert: BertModel<B>,
    config: &MrTailConfig,
    device: &B::Device,
) -> (BertModel<B>, BertTail<B>) {
    let hidden = bert.embeddings.layer_norm.gamma.dims()[0];
    let head: Linear<B> = crate::params::materialize(LinearConfig::new(hidden, 2).init(device));
    BertTail::split(bert, config.tail_layers, head)
}

/// The batches a tail checkpoint is measured on: the first `points` of its training subset,
/// with its noisy labels, in batches of `batch`.
pub fn measurement_batches<B: AutodiffBackend>(
    config: &MrTailConfig,
    pool: &Features<B::InnerBackend>,
    points: usize,
    batch: usize,
) -> Vec<TailBatch<B>> {
    let positions = config.training_positions();
    let labels = config.training_labels(&pool.labels);
    let n = points.min(positions.len());
    positions[..n]
        .chunks(batch.max(1))
        .zip(labels[..n].chunks(batch.max(1)))
        .map(|(p, l)| lift::<B>(pool.batch(p, l)))
        .collect()
}
