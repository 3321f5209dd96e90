//! Errors raised by the geometry.

/// Why a geometry cannot be built or cannot perform an operation.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An optional operation this geometry does not provide.
    #[error(
        "geometry '{geometry}' provides no '{op}'; choose another geodesic step \
         (first_order or second_order)"
    )]
    Unsupported {
        /// The geometry.
        geometry: &'static str,
        /// The operation.
        op: &'static str,
    },
    /// ASAM's offset η in T = |w| + η must be finite and non-negative.
    #[error("the adaptive offset η = {eta} is invalid; it must be finite and ≥ 0 (ASAM uses 0.01)")]
    InvalidOffset {
        /// The offset given.
        eta: f64,
    },
    /// Exactly-zero weights under a metric that divides by the weight.
    #[error(
        "block '{block}' has {count} weights that are zero or below 1e-16 in magnitude (first \
         at flat index {first}); the adaptive metric 1/w² is undefined there. Set `zero_weights` \
         to `freeze` \
         (CLI: --zero-weights freeze) to hold them fixed, as the reference adaptive-sharpness \
         code does"
    )]
    ZeroWeight {
        /// The block.
        block: String,
        /// How many entries are zero.
        count: usize,
        /// Flat index of the first zero entry within the block's first part holding one.
        first: usize,
    },
    /// NaN or infinite weights.
    #[error(
        "block '{block}' has {count} non-finite weights (NaN or ±inf); the checkpoint is corrupt or diverged"
    )]
    NonFinite {
        /// The block.
        block: String,
        /// How many entries are not finite.
        count: usize,
    },
    /// A GL(h) factor whose Gram matrix is (numerically) singular.
    #[error(
        "block '{block}', head {head}: factor {side} is rank-deficient (λ_min/λ_max of its \
         Gram matrix is {rcond:.3e}); the inv and mix metrics need full column rank. Measure \
         this model with the adaptive metric, or declare fewer heads"
    )]
    RankDeficient {
        /// The block.
        block: String,
        /// The head.
        head: usize,
        /// `G` or `H`.
        side: char,
        /// Reciprocal condition number found.
        rcond: f64,
    },
    /// An error raised by one block of a product geometry.
    #[error("block {index} ('{block}')")]
    InBlock {
        /// Index of the block in the layout.
        index: usize,
        /// Name of the block.
        block: String,
        /// What went wrong there.
        #[source]
        source: Box<Error>,
    },
}
