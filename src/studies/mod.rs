//! The paper's studies, as library functions the CLI and the tests call.

pub mod diagonal;
pub mod invariance;
