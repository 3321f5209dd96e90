//! Models that declare their symmetries: diagonal linear networks, attention, BERT, a ViT.

pub mod attention;
pub mod bert;
pub mod bert_tail;
pub mod diagonal;
pub mod fused;
pub mod gelu_kernel;
pub mod layers;
pub mod loss;
pub mod packing;
pub mod vit;

pub use attention::{SequenceBatch, TinyAttention, TinyAttentionConfig};
pub use bert::{BertClassifier, BertConfig, BertModel, Encoded, TextBatch};
pub use bert_tail::{BertTail, TailBatch};
pub use diagonal::{DiagonalNet, RegressionBatch};
pub use packing::Packing;
pub use vit::{ImageBatch, Vit, VitConfig};
