//! Checkpoints written by `geosharp train`: a directory holding `model.mpk` (Burn's named
//! MessagePack recorder at full precision) and `train.json` (the [`TrainReport`], whose
//! configuration rebuilds the model before its weights are loaded).
//!
//! The report travels with the weights because everything downstream needs it: `geosharp
//! measure` and `geosharp correlate` rebuild the exact training set (subset and label noise)
//! from its configuration, and the correlation study reads the generalisation gap from it.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::prelude::Backend;
use burn::record::{FullPrecisionSettings, NamedMpkFileRecorder};

use super::vit::{TrainError, TrainReport};
use crate::models::Vit;

/// The report's file name in a checkpoint directory.
pub const REPORT_FILE: &str = "train.json";
/// The weights' file stem (Burn's recorder adds `.mpk`).
pub const MODEL_STEM: &str = "model";

/// Whether `dir` holds a checkpoint written by [`save_vit`] (it has a `train.json`).
pub fn is_vit_checkpoint(dir: &Path) -> bool {
    dir.join(REPORT_FILE).is_file()
}

/// Writes `model` and `report` into `dir` (created if missing).
///
/// # Errors
/// [`TrainError::Checkpoint`] when the directory or a file cannot be written.
pub fn save_vit<B: Backend>(
    dir: &Path,
    model: &Vit<B>,
    report: &TrainReport,
) -> Result<(), TrainError> {
    let fail = |path: PathBuf, reason: String| TrainError::Checkpoint {
        action: "write",
        path,
        reason,
    };
    std::fs::create_dir_all(dir).map_err(|e| fail(dir.to_path_buf(), e.to_string()))?;
    model
        .clone()
        .save_file(
            dir.join(MODEL_STEM),
            &NamedMpkFileRecorder::<FullPrecisionSettings>::new(),
        )
        .map_err(|e| fail(dir.join("model.mpk"), e.to_string()))?;
    let text = serde_json::to_string_pretty(report)
        .map_err(|e| fail(dir.join(REPORT_FILE), e.to_string()))?;
    std::fs::write(dir.join(REPORT_FILE), text + "\n")
        .map_err(|e| fail(dir.join(REPORT_FILE), e.to_string()))
}

/// Reads the report of the checkpoint in `dir`.
///
/// # Errors
/// [`TrainError::Checkpoint`] when `train.json` is missing or is not a training report.
pub fn load_report(dir: &Path) -> Result<TrainReport, TrainError> {
    let path = dir.join(REPORT_FILE);
    let fail = |reason: String| TrainError::Checkpoint {
        action: "read",
        path: path.clone(),
        reason,
    };
    let text = std::fs::read_to_string(&path).map_err(|e| fail(e.to_string()))?;
    serde_json::from_str(&text)
        .map_err(|e| fail(format!("not a report written by `geosharp train` ({e})")))
}

/// Reads the checkpoint in `dir`: its report and the model it describes, on `device`.
///
/// # Errors
/// [`TrainError::Checkpoint`] for a missing or malformed report or weights file (including
/// weights whose shapes do not match the report's model configuration);
/// [`TrainError::Config`] for an invalid model configuration.
pub fn load_vit<B: Backend>(
    dir: &Path,
    device: &B::Device,
) -> Result<(TrainReport, Vit<B>), TrainError> {
    let report = load_report(dir)?;
    report.config.model.check().map_err(TrainError::Config)?;
    let model = report
        .config
        .model
        .init::<B>(device)
        .load_file(
            dir.join(MODEL_STEM),
            &NamedMpkFileRecorder::<FullPrecisionSettings>::new(),
            device,
        )
        .map_err(|e| TrainError::Checkpoint {
            action: "read",
            path: dir.join("model.mpk"),
            reason: e.to_string(),
        })?;
    Ok((report, model))
}

#[cfg(test)]
mod tests {
    /// Saved reports are compared with `==` after loading, so JSON must give back every f64
    /// bit for bit. serde_json's default parser does not (it is off by one ulp for this value,
    /// a train loss that once broke `tests/mr_tail.rs`); its `float_roundtrip` feature does.
    #[test]
    fn json_gives_back_every_f64_bit_for_bit() {
        let mut x = 0.426_713_608_205_318_45_f64;
        for _ in 0..10_000 {
            let back: f64 = serde_json::from_str(&serde_json::to_string(&x).unwrap()).unwrap();
            assert_eq!(back.to_bits(), x.to_bits(), "{x:e} read back as {back:e}");
            x = (x * 1.618_033_988_749_895 + 0.1).fract() * 10f64.powi((x * 97.0) as i32 % 9 - 4);
        }
    }
}
