//! The two-pass step shared by SAM, ASAM, geodesic SAM and RSAM.
//!
//! 1. gradient g of the batch loss at w (accumulated over micro-batches);
//! 2. the perturbed point w̃ of the [`Perturbation`] rule;
//! 3. gradient g̃ of the batch loss at w̃;
//! 4. the base optimiser's step from w with g̃.
//!
//! w itself is never modified: the perturbed pass runs on a copy of the model with its
//! parameters replaced, and the base optimiser steps the original, so nothing has to be
//! "restored" and the base optimiser's state (momenta, step counts, the learning-rate schedule
//! the caller drives) only ever sees the step it would see without the wrapper. With ρ = 0 the
//! perturbed point is w, bit for bit, and the step is the base optimiser's.
//!
//! # Running statistics
//! Burn modules share running statistics (BatchNorm's running mean and variance) between
//! clones. The clean pass updates them as plain training would; the perturbed pass would update
//! them a second time, at perturbed weights. The wrapper snapshots the model's record after the
//! clean pass and loads it back after the perturbed one, so running statistics are exactly what
//! one plain step leaves (the reference SAM code disables them in the second pass instead).
//!
//! # Several devices
//! The rule is applied to the gradient the caller's loss produces. Run one wrapper per device on
//! that device's shard, and each device perturbs with its own gradient: this is SAM's
//! m-sharpness with m the per-device batch, which is what the reference implementations do
//! under data parallelism and usually generalises better. For one perturbation synchronised
//! across devices, compute the clean gradient of the whole batch in the closure (for example
//! with [`GradientsParams::all_reduce`]) before calling [`SharpnessAware::perturb`].

use burn::module::AutodiffModule;
use burn::optim::{GradientsParams, LearningRate, Optimizer};
use burn::prelude::Tensor;
use burn::tensor::backend::AutodiffBackend;

use super::error::Error;
use super::gradients::{accumulate, flatten};
use super::rule::Perturbation;
use crate::geometry::Tangent;
use crate::params::{ParamEntry, ParamTable};
use crate::symmetry::{BlockLayout, Symmetric, Symmetry};

/// What one step measured, in f64.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct StepReport {
    /// Mean loss of the batch at w (the clean pass).
    pub loss: f64,
    /// Mean loss of the batch at the perturbed point (equals `loss` for a plain step).
    pub perturbed_loss: f64,
    /// Norm of the ascent direction before scaling to ρ (metric norm; ‖g‖₂ for RSAM); 0 for a
    /// plain step.
    pub gradient_norm: f64,
}

/// A model with its parameters moved to a perturbed point.
#[derive(Debug, Clone)]
pub struct Perturbed<M> {
    /// The model at w̃, its perturbed parameters tracked for gradients.
    pub model: M,
    /// ‖ĝ‖ before scaling, as in [`StepReport::gradient_norm`].
    pub gradient_norm: f64,
}

/// A sharpness-aware optimiser: any Burn optimiser `O` with a two-pass step.
#[derive(Debug, Clone)]
pub struct SharpnessAware<O> {
    base: O,
    rule: Perturbation,
    rho: f64,
    symmetries: Vec<Symmetry>,
}

impl<O> SharpnessAware<O> {
    /// Wraps `base` with perturbation `rule` of radius `rho`. Rules that use the model's
    /// symmetries need [`with_symmetries`](Self::with_symmetries) or
    /// [`for_model`](Self::for_model); without them every block is elementwise.
    ///
    /// # Errors
    /// [`Error::InvalidRho`] unless ρ is finite and ≥ 0.
    pub fn new(base: O, rule: Perturbation, rho: f64) -> Result<Self, Error> {
        if !(rho.is_finite() && rho >= 0.0) {
            return Err(Error::InvalidRho { rho });
        }
        Ok(Self {
            base,
            rule,
            rho,
            symmetries: Vec::new(),
        })
    }

    /// The same optimiser with the symmetry blocks geodesic SAM quotients by.
    pub fn with_symmetries(mut self, symmetries: Vec<Symmetry>) -> Self {
        self.symmetries = symmetries;
        self
    }

    /// The same optimiser with `model`'s declared symmetries.
    pub fn for_model(self, model: &impl Symmetric) -> Self {
        let symmetries = model.symmetries();
        self.with_symmetries(symmetries)
    }

    /// The perturbation rule.
    pub fn rule(&self) -> &Perturbation {
        &self.rule
    }

    /// The radius ρ.
    pub fn rho(&self) -> f64 {
        self.rho
    }

    /// The base optimiser.
    pub fn base(&self) -> &O {
        &self.base
    }

    /// The model at the perturbed point of `grads` (the clean gradient at `model`'s weights).
    /// Parameters without a gradient (frozen ones, running statistics) are not moved.
    ///
    /// # Errors
    /// [`Error::NoGradient`] if no parameter has a gradient; the geometry's errors.
    pub fn perturb<B, M>(&self, model: &M, grads: &GradientsParams) -> Result<Perturbed<M>, Error>
    where
        B: AutodiffBackend,
        M: AutodiffModule<B>,
    {
        let (table, values) = ParamTable::read(model);
        let flat = flatten::<B, M>(model, grads);
        // Only parameters with a gradient take part.
        let (mut entries, mut w, mut g) = (Vec::new(), Vec::new(), Vec::new());
        for ((entry, value), grad) in table.entries().iter().zip(values).zip(flat) {
            if let Some(grad) = grad {
                entries.push(ParamEntry::clone(entry));
                w.push(value.inner());
                g.push(grad);
            }
        }
        if entries.is_empty() {
            return Err(Error::NoGradient);
        }
        let table = ParamTable::from_entries(entries);
        let symmetries = if self.rule.uses_symmetry() {
            self.symmetries.as_slice()
        } else {
            &[]
        };
        let layout = BlockLayout::new(&table, symmetries)?;
        let base = layout.gather(&w);
        let grad = Tangent::new(layout.gather(&g));
        let (point, gradient_norm) = self.rule.perturbed_point(self.rho, &layout, base, &grad)?;
        let params = layout
            .scatter(point)
            .into_iter()
            .map(Tensor::from_inner)
            .collect();
        Ok(Perturbed {
            model: table.load_trainable(model.clone(), params),
            gradient_norm,
        })
    }

    /// The gradient of the two-pass rule without the base optimiser's step: the gradient at
    /// the perturbed point of the clean gradient at `model`'s weights, for a batch split into
    /// `micro_batches` equally weighted micro-batches (`loss(model, i)` is the mean loss of
    /// micro-batch `i`, called twice per micro-batch). This is what a Burn `TrainStep`
    /// returns for `Learner` to hand to its optimiser; [`step`](Self::step) is this followed
    /// by the base optimiser's step. Running statistics are left as the clean pass set them.
    ///
    /// # Errors
    /// [`Error::NoMicroBatches`], [`Error::NonFiniteLoss`], and those of
    /// [`perturb`](Self::perturb).
    pub fn gradients<B, M, F>(
        &self,
        model: &M,
        micro_batches: usize,
        mut loss: F,
    ) -> Result<(GradientsParams, StepReport), Error>
    where
        B: AutodiffBackend,
        M: AutodiffModule<B>,
        F: FnMut(&M, usize) -> Tensor<B, 1>,
    {
        let (clean, grads) = accumulate(model, micro_batches, &mut loss, "clean")?;
        let snapshot = model.clone().into_record();
        let perturbed = self.perturb(model, &grads)?;
        let (perturbed_loss, grads) =
            accumulate(&perturbed.model, micro_batches, &mut loss, "perturbed")?;
        // Undo the perturbed pass's updates of running statistics, which clones share: Burn
        // holds them per thread until the next sync, so sync first (into_record), then load
        // the snapshot (which writes the shared state in place).
        drop(perturbed.model.into_record());
        drop(model.clone().load_record(snapshot));
        Ok((
            grads,
            StepReport {
                loss: clean,
                perturbed_loss,
                gradient_norm: perturbed.gradient_norm,
            },
        ))
    }

    /// One two-pass step: [`gradients`](Self::gradients), then the base optimiser's step from
    /// the unperturbed weights. `lr` goes to the base optimiser unchanged: drive it from any
    /// schedule.
    ///
    /// # Errors
    /// Those of [`gradients`](Self::gradients).
    pub fn step<B, M, F>(
        &mut self,
        lr: LearningRate,
        model: M,
        micro_batches: usize,
        loss: F,
    ) -> Result<(M, StepReport), Error>
    where
        B: AutodiffBackend,
        M: AutodiffModule<B>,
        O: Optimizer<M, B>,
        F: FnMut(&M, usize) -> Tensor<B, 1>,
    {
        let (grads, report) = self.gradients(&model, micro_batches, loss)?;
        Ok((self.base.step(lr, model, grads), report))
    }

    /// One plain step of the base optimiser (one pass): RSAM's warm-up epochs, or any step the
    /// caller wants unperturbed.
    ///
    /// # Errors
    /// [`Error::NoMicroBatches`], [`Error::NonFiniteLoss`].
    pub fn plain_step<B, M, F>(
        &mut self,
        lr: LearningRate,
        model: M,
        micro_batches: usize,
        mut loss: F,
    ) -> Result<(M, StepReport), Error>
    where
        B: AutodiffBackend,
        M: AutodiffModule<B>,
        O: Optimizer<M, B>,
        F: FnMut(&M, usize) -> Tensor<B, 1>,
    {
        let (clean, grads) = accumulate(&model, micro_batches, &mut loss, "clean")?;
        let model = self.base.step(lr, model, grads);
        Ok((
            model,
            StepReport {
                loss: clean,
                perturbed_loss: clean,
                gradient_norm: 0.0,
            },
        ))
    }

    /// The base optimiser's state, for saving with any Burn recorder. The wrapper has no state
    /// of its own (its rule and ρ are configuration), so this is all a resume needs.
    pub fn to_record<B, M>(&self) -> O::Record
    where
        B: AutodiffBackend,
        M: AutodiffModule<B>,
        O: Optimizer<M, B>,
    {
        self.base.to_record()
    }

    /// The same optimiser with the base optimiser's state loaded from `record`.
    pub fn load_record<B, M>(mut self, record: O::Record) -> Self
    where
        B: AutodiffBackend,
        M: AutodiffModule<B>,
        O: Optimizer<M, B>,
    {
        self.base = self.base.load_record(record);
        self
    }
}
