//! Tasks: a model, its data and its loss, assembled from checkpoints and assets.

pub mod mr;

pub use mr::{MrOptions, MrTask};
