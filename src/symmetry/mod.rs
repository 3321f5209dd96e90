//! Symmetries a model declares, the block coordinates they induce, and group actions.
//!
//! This is the bottom layer: [`crate::geometry`] builds one geometry per [`Block`] of a
//! [`BlockLayout`], and models implement [`Symmetric`] to declare their blocks.

mod action;
mod block;
mod error;
mod layout;

pub use action::{GroupElement, act};
pub use block::{BiasFolding, Factor, HeadAxis, Symmetric, Symmetry};
pub use error::Error;
pub use layout::{Block, BlockKind, BlockLayout};
