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

/// The CPU backend: Burn's ndarray backend (f32) with autodiff.
pub type Cpu = burn::backend::Autodiff<burn::backend::NdArray<f32>>;

/// The CUDA backend: Burn's CUDA backend (f32) with autodiff.
#[cfg(feature = "cuda")]
pub type Gpu = burn::backend::Autodiff<burn::backend::Cuda<f32>>;

/// Where the tensors live (`--device`): the CPU, or the CUDA GPU of the given index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceArg {
    /// Burn's ndarray backend.
    Cpu,
    /// Burn's CUDA backend on GPU `index` (`cuda` is `cuda:0`).
    Cuda(usize),
}

impl std::str::FromStr for DeviceArg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "cpu" => Ok(Self::Cpu),
            "cuda" => Ok(Self::Cuda(0)),
            _ => s
                .strip_prefix("cuda:")
                .and_then(|i| i.parse().ok())
                .map(Self::Cuda)
                .ok_or_else(|| format!("unknown device '{s}'; expected cpu, cuda or cuda:N")),
        }
    }
}

/// Writes `value` as pretty JSON to `path`.
pub fn write_json(path: &Path, value: &impl serde::Serialize) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value).context("could not serialise the result")?;
    std::fs::write(path, text + "\n").with_context(|| format!("could not write {}", path.display()))
}
