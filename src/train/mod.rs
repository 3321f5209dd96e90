//! Training: fitting heads on frozen encoders, fine-tuning BERT's top layers on MR, and the ViT
//! with the sharpness-aware optimisers.

pub mod head;
pub mod mr_tail;
pub mod saved;
pub mod vit;

pub use head::{HeadFit, HeadReport, embed, fit_head};
pub use mr_tail::{MrTailConfig, MrTailReport};
pub use saved::{is_vit_checkpoint, load_report, load_vit, save_vit};
pub use vit::{
    BaseOptimizer, EpochStats, Evaluation, OptimizerKind, TrainConfig, TrainReport, train_vit,
};
