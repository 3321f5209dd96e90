//! Models that declare their symmetries: diagonal linear networks, attention, BERT.

pub mod attention;
pub mod bert;
pub mod diagonal;
pub mod loss;

pub use attention::{SequenceBatch, TinyAttention, TinyAttentionConfig};
pub use bert::{BertClassifier, BertConfig, BertModel, Encoded, TextBatch};
pub use diagonal::{DiagonalNet, RegressionBatch};
