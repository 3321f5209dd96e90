//! Errors raised by the sharpness-aware optimisers.

use crate::{geometry, symmetry};

/// Why an optimiser could not be built or could not take a step.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// ρ is negative or not finite (ρ = 0 is allowed: it reproduces the base optimiser).
    #[error("rho must be finite and ≥ 0, got {rho}; SAM uses 0.05, ASAM 0.5 to 2, RSAM 0.65")]
    InvalidRho {
        /// The value given.
        rho: f64,
    },
    /// A hyperparameter outside its domain.
    #[error("{name} = {value} is invalid: {why}")]
    InvalidSetting {
        /// The setting.
        name: &'static str,
        /// The value given.
        value: f64,
        /// What it must be.
        why: &'static str,
    },
    /// A saved SAF state that does not fit this training set or these settings.
    #[error(
        "the saved SAF state does not fit this run: {0}; resume with the settings it was saved with"
    )]
    SafRecord(String),
    /// A step over zero micro-batches.
    #[error("a step needs at least one micro-batch, got 0")]
    NoMicroBatches,
    /// The model has no parameter that received a gradient.
    #[error(
        "no parameter of the model received a gradient; check that the loss depends on the \
         parameters and that they are not frozen"
    )]
    NoGradient,
    /// The loss of a pass is NaN or infinite.
    #[error("the {pass} loss is {value}; lower the learning rate or ρ, or check the data for NaN")]
    NonFiniteLoss {
        /// `clean` or `perturbed`.
        pass: &'static str,
        /// The value.
        value: f64,
    },
    /// SAF/MESA were given a sample index outside the training set.
    #[error("sample index {index} is outside the training set of {len} samples")]
    SampleIndex {
        /// The index.
        index: usize,
        /// The training set size the loss term was built for.
        len: usize,
    },
    /// The model's symmetry declaration does not resolve.
    #[error(transparent)]
    Symmetry(#[from] symmetry::Error),
    /// The geometry cannot be built at the current weights.
    #[error(transparent)]
    Geometry(#[from] geometry::Error),
}
