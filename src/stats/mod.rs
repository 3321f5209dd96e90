//! Rank correlations between sharpness and generalisation.

mod kendall;
mod spearman;

pub use kendall::{tau_a, tau_b};
pub use spearman::{pearson, ranks, spearman};
