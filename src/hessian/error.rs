//! Errors raised by the Hessian tools.

use crate::measures;

/// Why a Hessian estimate could not be made.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A count below its minimum (Lanczos steps, probes, iterations).
    #[error("{name} must be at least {min}, got {found}")]
    TooFew {
        /// The setting.
        name: &'static str,
        /// Its minimum.
        min: usize,
        /// The value given.
        found: usize,
    },
    /// A Rényi order that is not a positive finite number.
    #[error("the Rényi order α must be positive and finite, got {0}; typical values are 0.5 and 2")]
    InvalidAlpha(f64),
    /// ρ is not a positive finite number.
    #[error("ρ must be positive and finite, got {0}; typical values are 0.01 to 0.1")]
    InvalidRadius(f64),
    /// No data.
    #[error("the data set is empty: a Hessian needs at least one batch")]
    EmptyData,
    /// Batch weights do not match the batches or do not sum to a positive number.
    #[error("{weights} batch weights for {batches} batches (they must match and be positive)")]
    BadWeights {
        /// Number of weights.
        weights: usize,
        /// Number of batches.
        batches: usize,
    },
    /// The block filter selected nothing.
    #[error("no parameter block matches {pattern:?}; `geosharp hessian --list-blocks` shows them")]
    NoBlocks {
        /// The filter.
        pattern: String,
    },
    /// A Hessian-vector product or a loss became NaN or infinite.
    #[error("{what} is not finite; the model may be diverging at these weights, or ρ is too large")]
    NonFinite {
        /// What was computed.
        what: &'static str,
    },
    /// The sharpness machinery failed (layout, data).
    #[error(transparent)]
    Measures(#[from] measures::Error),
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

/// Checks that a value is finite.
pub(crate) fn finite(what: &'static str, value: f64) -> Result<f64, Error> {
    if value.is_finite() {
        Ok(value)
    } else {
        Err(Error::NonFinite { what })
    }
}
