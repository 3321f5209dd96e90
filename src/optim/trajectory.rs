//! SAF and MESA: sharpness-aware training for free, as a loss term.
//!
//! Both add to the training loss a distillation term from the model's own past,
//!
//!   λ · τ² · KL( softmax(ŷ_past / τ) ‖ softmax(f(x) / τ) ),
//!
//! averaged over the batch, where ŷ_past is this sample's logits Ẽ epochs ago ([`Saf`]) or the
//! logits of an exponential moving average of the weights ([`Mesa`]). The past logits are
//! constants (no gradient flows into them), so the term costs no second backward pass: SAF
//! stores logits the training loop computes anyway, MESA adds one forward pass of the EMA model
//! without autodiff. Defaults follow the papers: τ = 5, Ẽ = 3, the term switched on from
//! epoch 5, λ = 0.3 (SAF) / 0.8 (MESA), EMA decay 0.9995 (MESA).

use std::collections::VecDeque;

use burn::module::AutodiffModule;
use burn::prelude::{Backend, Int, Tensor, TensorData};
use burn::record::Record;
use burn::tensor::IndexingUpdateOp;
use burn::tensor::activation::{log_softmax, softmax};
use burn::tensor::backend::AutodiffBackend;

use super::error::Error;
use crate::params::ParamTable;

/// Settings shared by SAF and MESA.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TrajectoryConfig {
    /// Weight λ of the term.
    pub lambda: f64,
    /// Temperature τ.
    pub tau: f64,
    /// The first epoch (0-based) in which the term is added.
    pub start_epoch: usize,
    /// SAF: how many epochs back the target logits are (Ẽ).
    pub lag_epochs: usize,
    /// MESA: decay β of the EMA, ŵ ← β ŵ + (1 − β) w after every step.
    pub ema_decay: f64,
}

impl TrajectoryConfig {
    /// SAF's defaults: λ = 0.3, τ = 5, Ẽ = 3, from epoch 5.
    pub fn saf() -> Self {
        Self {
            lambda: 0.3,
            tau: 5.0,
            start_epoch: 5,
            lag_epochs: 3,
            ema_decay: 0.9995,
        }
    }

    /// MESA's defaults: λ = 0.8, τ = 5, EMA decay 0.9995, from epoch 5.
    pub fn mesa() -> Self {
        Self {
            lambda: 0.8,
            ..Self::saf()
        }
    }

    /// The same settings starting at `epoch`.
    pub fn starting_at(mut self, epoch: usize) -> Self {
        self.start_epoch = epoch;
        self
    }

    /// The same settings with SAF's lag Ẽ.
    pub fn with_lag(mut self, epochs: usize) -> Self {
        self.lag_epochs = epochs;
        self
    }

    fn validate(&self) -> Result<(), Error> {
        let invalid = |name, value: f64, why| Error::InvalidSetting { name, value, why };
        if !(self.lambda.is_finite() && self.lambda >= 0.0) {
            return Err(invalid("lambda", self.lambda, "must be finite and ≥ 0"));
        }
        if !(self.tau.is_finite() && self.tau > 0.0) {
            return Err(invalid("tau", self.tau, "must be finite and > 0"));
        }
        if !(0.0..1.0).contains(&self.ema_decay) {
            return Err(invalid("ema_decay", self.ema_decay, "must be in [0, 1)"));
        }
        if self.lag_epochs == 0 {
            return Err(invalid("lag_epochs", 0.0, "must be at least 1"));
        }
        Ok(())
    }
}

/// λ τ² · mean over the batch of KL(softmax(target/τ) ‖ softmax(logits/τ)); `target` is a
/// constant.
pub fn distillation<B: Backend>(
    target: Tensor<B, 2>,
    logits: Tensor<B, 2>,
    lambda: f64,
    tau: f64,
) -> Tensor<B, 1> {
    let target = target.div_scalar(tau);
    let p = softmax(target.clone(), 1);
    let kl = p * (log_softmax(target, 1) - log_softmax(logits.div_scalar(tau), 1));
    kl.sum_dim(1).mean().mul_scalar(lambda * tau * tau)
}

/// SAF's state between epochs, for saving with any Burn recorder: the stored epochs' logit
/// tables, oldest first, and the number of epochs closed.
#[derive(Record, Debug, Clone)]
pub struct SafRecord<B: Backend> {
    /// The last (at most Ẽ) epochs' `len × classes` logit tables, oldest first.
    pub past: Vec<Tensor<B, 2>>,
    /// Epochs closed so far.
    pub epoch: usize,
}

/// SAF's state: every training sample's logits for the last Ẽ epochs.
#[derive(Debug, Clone)]
pub struct Saf<B: Backend> {
    config: TrajectoryConfig,
    len: usize,
    past: VecDeque<Tensor<B, 2>>,
    current: Tensor<B, 2>,
    epoch: usize,
}

impl<B: Backend> Saf<B> {
    /// The state for a training set of `len` samples and `classes` logits, stored on `device`
    /// (Ẽ + 1 tables of `len × classes` floats).
    ///
    /// # Errors
    /// [`Error::InvalidSetting`] for settings outside their domains.
    pub fn new(
        config: TrajectoryConfig,
        len: usize,
        classes: usize,
        device: &B::Device,
    ) -> Result<Self, Error> {
        config.validate()?;
        Ok(Self {
            config,
            len,
            past: VecDeque::with_capacity(config.lag_epochs),
            current: Tensor::zeros([len, classes], device),
            epoch: 0,
        })
    }

    /// The current epoch (0-based).
    pub fn epoch(&self) -> usize {
        self.epoch
    }

    /// Records this batch's logits (samples `indices` of the training set, each at most once
    /// per epoch) and returns the SAF term for them, or `None` before the start epoch or while
    /// fewer than Ẽ epochs are stored.
    ///
    /// # Errors
    /// [`Error::SampleIndex`] for an index outside the training set.
    pub fn term<AB>(
        &mut self,
        indices: &[usize],
        logits: Tensor<AB, 2>,
    ) -> Result<Option<Tensor<AB, 1>>, Error>
    where
        AB: AutodiffBackend<InnerBackend = B>,
    {
        if let Some(&index) = indices.iter().find(|&&i| i >= self.len) {
            return Err(Error::SampleIndex {
                index,
                len: self.len,
            });
        }
        let device = self.current.device();
        let idx = Tensor::<B, 1, Int>::from_data(
            TensorData::new(
                indices.iter().map(|&i| i as i64).collect::<Vec<_>>(),
                [indices.len()],
            ),
            &device,
        );
        let now = logits.clone().inner();
        let old = self.current.clone().select(0, idx.clone());
        self.current =
            self.current
                .clone()
                .select_assign(0, idx.clone(), now - old, IndexingUpdateOp::Add);
        if self.epoch < self.config.start_epoch || self.past.len() < self.config.lag_epochs {
            return Ok(None);
        }
        let target = self.past[0].clone().select(0, idx);
        Ok(Some(distillation(
            Tensor::from_inner(target),
            logits,
            self.config.lambda,
            self.config.tau,
        )))
    }

    /// The state at an epoch boundary (the current epoch's table is empty there and is not
    /// part of the record).
    pub fn to_record(&self) -> SafRecord<B> {
        SafRecord {
            past: self.past.iter().cloned().collect(),
            epoch: self.epoch,
        }
    }

    /// Restores the state `record` holds, saved at an epoch boundary by a run with the same
    /// training set and settings.
    ///
    /// # Errors
    /// [`Error::SafRecord`] when the record holds more than Ẽ tables or tables of another
    /// shape than this state's.
    pub fn load_record(&mut self, record: SafRecord<B>) -> Result<(), Error> {
        let shape = self.current.dims();
        if record.past.len() > self.config.lag_epochs {
            return Err(Error::SafRecord(format!(
                "{} stored epochs, more than Ẽ = {}",
                record.past.len(),
                self.config.lag_epochs
            )));
        }
        if let Some(t) = record.past.iter().find(|t| t.dims() != shape) {
            return Err(Error::SafRecord(format!(
                "a logit table of shape {:?}, expected {shape:?}",
                t.dims()
            )));
        }
        let device = self.current.device();
        self.past = record
            .past
            .into_iter()
            .map(|t| t.to_device(&device))
            .collect();
        self.current = self.current.zeros_like();
        self.epoch = record.epoch;
        Ok(())
    }

    /// Closes the epoch: its logits become the newest stored epoch.
    pub fn end_epoch(&mut self) {
        let fresh = self.current.zeros_like();
        self.past
            .push_back(std::mem::replace(&mut self.current, fresh));
        while self.past.len() > self.config.lag_epochs {
            self.past.pop_front();
        }
        self.epoch += 1;
    }
}

/// MESA's state: an exponential moving average of the weights.
#[derive(Debug, Clone)]
pub struct Mesa<M> {
    config: TrajectoryConfig,
    ema: Option<M>,
    epoch: usize,
}

impl<M> Mesa<M> {
    /// An empty EMA; the first [`update`](Self::update) copies the weights.
    ///
    /// # Errors
    /// [`Error::InvalidSetting`] for settings outside their domains.
    pub fn new(config: TrajectoryConfig) -> Result<Self, Error> {
        config.validate()?;
        Ok(Self {
            config,
            ema: None,
            epoch: 0,
        })
    }

    /// The EMA model, once there is one.
    pub fn teacher(&self) -> Option<&M> {
        self.ema.as_ref()
    }

    /// Whether the term is on in the current epoch (and there is a teacher).
    pub fn active(&self) -> bool {
        self.epoch >= self.config.start_epoch && self.ema.is_some()
    }

    /// Closes the epoch.
    pub fn end_epoch(&mut self) {
        self.epoch += 1;
    }

    /// Epochs closed so far.
    pub fn epoch(&self) -> usize {
        self.epoch
    }

    /// Restores a state saved at an epoch boundary: the average `ema` (none before the first
    /// step) after `epoch` closed epochs.
    pub fn restore(&mut self, ema: Option<M>, epoch: usize) {
        self.ema = ema;
        self.epoch = epoch;
    }

    /// ŵ ← β ŵ + (1 − β) w after an optimiser step (ŵ ← w the first time).
    pub fn update<B>(&mut self, model: &impl AutodiffModule<B, InnerModule = M>)
    where
        B: AutodiffBackend,
        M: burn::module::Module<B::InnerBackend>,
    {
        let current = model.valid();
        self.ema = Some(match self.ema.take() {
            None => current,
            Some(ema) => {
                let beta = self.config.ema_decay;
                let (table, averaged) = ParamTable::read(&ema);
                let (_, now) = ParamTable::read(&current);
                let values = averaged
                    .into_iter()
                    .zip(now)
                    .map(|(a, w)| a.mul_scalar(beta) + w.mul_scalar(1.0 - beta))
                    .collect();
                table.load(ema, values)
            }
        });
    }

    /// The MESA term for a batch whose logits under the EMA model are `teacher_logits` (from a
    /// forward pass of [`teacher`](Self::teacher)), or `None` when the term is off.
    pub fn term<AB: AutodiffBackend>(
        &self,
        teacher_logits: Tensor<AB::InnerBackend, 2>,
        logits: Tensor<AB, 2>,
    ) -> Option<Tensor<AB, 1>> {
        self.active().then(|| {
            distillation(
                Tensor::from_inner(teacher_logits),
                logits,
                self.config.lambda,
                self.config.tau,
            )
        })
    }
}
