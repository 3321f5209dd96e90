//! Training: fitting heads on frozen encoders, fine-tuning BERT's top layers on MR, and the ViT
//! with the sharpness-aware optimisers.

/// Evaluates `$run`, an expression using the identifier `$optim`, with `$optim` bound to the
/// base optimiser `$base` ([`BaseOptimizer`]: SGD with momentum 0.9, or Adam) carrying L2 weight
/// decay `$weight_decay` (none when 0). A macro because the two optimisers are different types
/// and every training loop is generic over its optimiser.
macro_rules! with_base_optimizer {
    ($base:expr, $weight_decay:expr, |$optim:ident| $run:expr) => {{
        let decay = ($weight_decay > 0.0)
            .then(|| burn::optim::decay::WeightDecayConfig::new($weight_decay as f32));
        match $base {
            $crate::train::BaseOptimizer::Sgd => {
                let $optim = burn::optim::SgdConfig::new()
                    .with_momentum(Some(burn::optim::momentum::MomentumConfig::new()))
                    .with_weight_decay(decay)
                    .init();
                $run
            }
            $crate::train::BaseOptimizer::Adam => {
                let $optim = burn::optim::AdamConfig::new()
                    .with_weight_decay(decay)
                    .init();
                $run
            }
        }
    }};
}

pub mod fit;
pub mod head;
pub mod mr_tail;
pub mod resume;
pub mod saved;
pub mod vit;

pub use fit::{Fitted, Recipe, Task, fit};
pub use head::{HeadFit, HeadReport, embed, fit_head};
pub use mr_tail::{MrTailConfig, MrTailReport};
pub use resume::{Checkpoints, SavedProgress};
pub use saved::{is_vit_checkpoint, load_report, load_vit, save_vit};
pub use vit::{
    BaseOptimizer, EpochStats, Evaluation, OptimizerKind, TrainConfig, TrainReport, train_vit,
    train_vit_with_checkpoints,
};
