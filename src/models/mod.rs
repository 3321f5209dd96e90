//! Models that declare their symmetries: diagonal linear networks and attention.

pub mod attention;
pub mod diagonal;
pub mod loss;

pub use attention::{SequenceBatch, TinyAttention, TinyAttentionConfig};
pub use diagonal::{DiagonalNet, RegressionBatch};
