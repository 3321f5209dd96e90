//! Errors raised by the sharpness measures.

use crate::{geometry, symmetry};

/// Why a measurement could not be made.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// ρ (or σ) is not a positive finite number.
    #[error("{name} must be positive and finite, got {value}; typical values are 0.01 to 1")]
    InvalidRadius {
        /// `rho` or `sigma`.
        name: &'static str,
        /// The value given.
        value: f64,
    },
    /// A count below its minimum.
    #[error("{name} must be at least {min}, got {found}")]
    TooFew {
        /// The setting.
        name: &'static str,
        /// Its minimum.
        min: usize,
        /// The value given.
        found: usize,
    },
    /// No data to measure on.
    #[error("the data set is empty: a sharpness measure needs at least one batch")]
    EmptyData,
    /// The model has no float parameters.
    #[error("the model has no float parameters to perturb")]
    NoParameters,
    /// The loss became NaN or infinite.
    #[error(
        "the loss is not finite ({loss}) at iteration {iteration} of batch {batch}; \
         ρ is probably too large for this model (try a smaller --rho)"
    )]
    NonFiniteLoss {
        /// The batch.
        batch: usize,
        /// The Auto-PGD iteration (or sample).
        iteration: usize,
        /// The value read.
        loss: f64,
    },
    /// The gradient became NaN or infinite (the loss was finite).
    #[error(
        "the gradient is not finite at iteration {iteration} of batch {batch} (loss {loss}); the \
         metric is probably degenerate at this point (weights near zero under a metric that \
         divides by them): try a smaller --rho or --zero-weights freeze"
    )]
    NonFiniteGradient {
        /// The batch.
        batch: usize,
        /// The Auto-PGD iteration.
        iteration: usize,
        /// The (finite) loss at that point.
        loss: f64,
    },
    /// The geometry could not be built.
    #[error(transparent)]
    Geometry(#[from] geometry::Error),
    /// The symmetry declaration does not fit the model.
    #[error(transparent)]
    Symmetry(#[from] symmetry::Error),
}

/// Checks that a radius is positive and finite.
pub(crate) fn check_radius(name: &'static str, value: f64) -> Result<(), Error> {
    if value > 0.0 && value.is_finite() {
        Ok(())
    } else {
        Err(Error::InvalidRadius { name, value })
    }
}

/// Checks that a count is at least `min`.
pub(crate) fn check_count(name: &'static str, value: usize, min: usize) -> Result<(), Error> {
    if value >= min {
        Ok(())
    } else {
        Err(Error::TooFew {
            name,
            min,
            found: value,
        })
    }
}
