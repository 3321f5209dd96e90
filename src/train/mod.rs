//! Training: fitting heads on frozen encoders, and the ViT with the sharpness-aware optimisers.

pub mod head;
pub mod vit;

pub use head::{HeadFit, HeadReport, embed, fit_head};
pub use vit::{BaseOptimizer, EpochStats, OptimizerKind, TrainConfig, TrainReport, train_vit};
