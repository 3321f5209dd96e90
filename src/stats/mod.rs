//! Rank correlations between sharpness and generalisation.

mod kendall;
mod permutation;
mod spearman;

pub use kendall::{tau_a, tau_b};
pub use permutation::{EXACT_MAX, KendallTest, kendall_test};
pub use spearman::{pearson, ranks, spearman};
