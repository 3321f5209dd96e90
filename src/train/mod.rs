//! Training: fitting heads on frozen encoders (and, later, sharpness-aware optimisers).

pub mod head;

pub use head::{HeadFit, HeadReport, embed, fit_head};
