//! The paper's studies, as library functions the CLI and the tests call.

pub mod correlation;
pub mod diagonal;
pub mod family;
pub mod invariance;
