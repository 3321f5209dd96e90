//! The command-line interface (binary only): argument parsing, progress bars, tables and JSON.
//! The library never prints; everything user-facing is here.

pub mod correlate;
pub mod diagonal;
pub mod family;
pub mod fetch;
pub mod hessian;
pub mod invariance;
pub mod measure;
pub mod plot;
pub mod progress;
pub mod train;

use std::path::Path;

use anyhow::Context;

/// The backend the CLI measures with: Burn's ndarray CPU backend with autodiff.
pub type Backend = burn::backend::Autodiff<burn::backend::NdArray<f32>>;

/// Writes `value` as pretty JSON to `path`.
pub fn write_json(path: &Path, value: &impl serde::Serialize) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value).context("could not serialise the result")?;
    std::fs::write(path, text + "\n").with_context(|| format!("could not write {}", path.display()))
}
