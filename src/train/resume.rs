//! Epoch checkpoints: the whole state of a training run, saved after every epoch so that an
//! interrupted run can continue exactly where it stopped.
//!
//! A run's state is more than its weights. The base optimiser carries moments and step counts,
//! SAF carries its past epochs' logit tables, MESA its moving average, and the report carries
//! the finished epochs' figures; all of them go into `DIR/resume/`:
//!
//! | file | what |
//! |---|---|
//! | `model.mpk` | the weights |
//! | `optimizer.mpk` | the base optimiser's record (the sharpness-aware wrapper has no state) |
//! | `saf.mpk` | SAF's logit tables (SAF runs only) |
//! | `mesa.mpk` | MESA's average model (MESA runs only) |
//! | `progress.json` | the finished epochs' figures, the wall time so far, the run's settings |
//!
//! `progress.json` is written last, through a rename, so it only ever names a complete set of
//! files. The batch order is not saved: it is drawn from a generator seeded by the run's seed,
//! and a resumed run redraws the finished epochs' orders. A resume checks that the saved run's
//! settings (its *fingerprint*: the configuration, less the number of epochs, which a resume may
//! raise) are the ones given, so a run cannot silently continue under other settings.

use std::path::{Path, PathBuf};

use burn::module::{AutodiffModule, Module};
use burn::optim::Optimizer;
use burn::record::{FullPrecisionSettings, NamedMpkFileRecorder, Recorder};
use burn::tensor::backend::AutodiffBackend;
use serde::{Deserialize, Serialize};

use super::vit::{EpochStats, TrainError};
use crate::optim::SafRecord;

type Mpk = NamedMpkFileRecorder<FullPrecisionSettings>;

/// The folder of a checkpoint directory that holds the run's state.
pub const RESUME_DIR: &str = "resume";
const PROGRESS_FILE: &str = "progress.json";

/// Where a run saves its state after every epoch, and whether it starts from the state saved
/// there.
#[derive(Debug, Clone)]
pub struct Checkpoints {
    /// The checkpoint directory (the state goes into its `resume/` folder).
    pub dir: PathBuf,
    /// Start from the state saved in `dir`, if there is one.
    pub resume: bool,
    /// The run's settings; a resume refuses a saved run whose fingerprint differs.
    pub fingerprint: serde_json::Value,
}

/// The figures saved with a run's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedProgress {
    /// The run's settings (see [`Checkpoints::fingerprint`]).
    pub fingerprint: serde_json::Value,
    /// The finished epochs' figures.
    pub epochs: Vec<EpochStats>,
    /// Wall time of the training loop so far, over every session of the run.
    pub seconds: f64,
}

/// A run's state as [`Checkpoints::load`] reads it.
#[derive(Debug)]
pub struct EpochState<B: AutodiffBackend, M: AutodiffModule<B>, R> {
    /// The weights.
    pub model: M,
    /// The base optimiser's record.
    pub optimizer: R,
    /// SAF's state, for a SAF run.
    pub saf: Option<SafRecord<B::InnerBackend>>,
    /// MESA's average model, for a MESA run.
    pub mesa: Option<M::InnerModule>,
    /// The finished epochs.
    pub progress: SavedProgress,
}

/// `value` with the `epochs` field removed: what must match between a run and its resume.
pub fn fingerprint(value: &impl Serialize) -> serde_json::Value {
    let mut value = serde_json::to_value(value).unwrap_or(serde_json::Value::Null);
    if let Some(map) = value.as_object_mut() {
        map.remove("epochs");
    }
    value
}

impl Checkpoints {
    /// The state folder, `dir/resume`.
    pub fn state_dir(&self) -> PathBuf {
        self.dir.join(RESUME_DIR)
    }

    fn error(action: &'static str, path: &Path, reason: impl ToString) -> TrainError {
        TrainError::Checkpoint {
            action,
            path: path.to_path_buf(),
            reason: reason.to_string(),
        }
    }

    /// Saves the state after an epoch: the weights `model`, the base optimiser's `optimizer`
    /// record, SAF's and MESA's states when the run has them, the finished `epochs` and the
    /// wall time `seconds` so far.
    ///
    /// # Errors
    /// [`TrainError::Checkpoint`] when a file cannot be written.
    pub fn save<B, M, O>(
        &self,
        model: &M,
        optimizer: O::Record,
        saf: Option<SafRecord<B::InnerBackend>>,
        mesa: Option<&M::InnerModule>,
        epochs: &[EpochStats],
        seconds: f64,
    ) -> Result<(), TrainError>
    where
        B: AutodiffBackend,
        M: AutodiffModule<B>,
        O: Optimizer<M, B>,
    {
        let dir = self.state_dir();
        std::fs::create_dir_all(&dir).map_err(|e| Self::error("write", &dir, e))?;
        let recorder = Mpk::new();
        model
            .clone()
            .save_file(dir.join("model"), &recorder)
            .map_err(|e| Self::error("write", &dir.join("model.mpk"), e))?;
        Recorder::<B>::record(&recorder, optimizer, dir.join("optimizer"))
            .map_err(|e| Self::error("write", &dir.join("optimizer.mpk"), e))?;
        if let Some(saf) = saf {
            Recorder::<B::InnerBackend>::record(&recorder, saf, dir.join("saf"))
                .map_err(|e| Self::error("write", &dir.join("saf.mpk"), e))?;
        }
        if let Some(ema) = mesa {
            ema.clone()
                .save_file(dir.join("mesa"), &recorder)
                .map_err(|e| Self::error("write", &dir.join("mesa.mpk"), e))?;
        }
        let progress = SavedProgress {
            fingerprint: self.fingerprint.clone(),
            epochs: epochs.to_vec(),
            seconds,
        };
        let path = dir.join(PROGRESS_FILE);
        let partial = dir.join(format!("{PROGRESS_FILE}.partial"));
        let text =
            serde_json::to_string_pretty(&progress).map_err(|e| Self::error("write", &path, e))?;
        std::fs::write(&partial, text + "\n").map_err(|e| Self::error("write", &partial, e))?;
        std::fs::rename(&partial, &path).map_err(|e| Self::error("write", &path, e))
    }

    /// Reads the state saved in the checkpoint directory into `template` (a model of the
    /// run's configuration), or `None` when nothing has been saved there yet.
    ///
    /// # Errors
    /// [`TrainError::Config`] when the saved run's settings differ from this run's;
    /// [`TrainError::Checkpoint`] for a file that is missing, malformed, or of other shapes.
    pub fn load<B, M, O>(
        &self,
        template: M,
        device: &B::Device,
    ) -> Result<Option<EpochState<B, M, O::Record>>, TrainError>
    where
        B: AutodiffBackend,
        M: AutodiffModule<B>,
        O: Optimizer<M, B>,
    {
        let dir = self.state_dir();
        let path = dir.join(PROGRESS_FILE);
        if !path.is_file() {
            eprintln!(
                "nothing to resume in {}: starting from the first epoch",
                self.dir.display()
            );
            return Ok(None);
        }
        let text = std::fs::read_to_string(&path).map_err(|e| Self::error("read", &path, e))?;
        let progress: SavedProgress = serde_json::from_str(&text)
            .map_err(|e| Self::error("read", &path, format!("not a saved run ({e})")))?;
        if let Some(field) = first_difference(&progress.fingerprint, &self.fingerprint) {
            return Err(TrainError::Config(format!(
                "the run saved in {} has other settings ({field}); resume it with the options \
                 it was started with, or --save into a new directory",
                self.dir.display()
            )));
        }
        let recorder = Mpk::new();
        let model = template
            .clone()
            .load_file(dir.join("model"), &recorder, device)
            .map_err(|e| Self::error("read", &dir.join("model.mpk"), e))?;
        let optimizer = Recorder::<B>::load(&recorder, dir.join("optimizer"), device)
            .map_err(|e| Self::error("read", &dir.join("optimizer.mpk"), e))?;
        let saf = if dir.join("saf.mpk").is_file() {
            Some(
                Recorder::<B::InnerBackend>::load(&recorder, dir.join("saf"), device)
                    .map_err(|e| Self::error("read", &dir.join("saf.mpk"), e))?,
            )
        } else {
            None
        };
        let mesa = if dir.join("mesa.mpk").is_file() {
            Some(
                template
                    .valid()
                    .load_file(dir.join("mesa"), &recorder, device)
                    .map_err(|e| Self::error("read", &dir.join("mesa.mpk"), e))?,
            )
        } else {
            None
        };
        Ok(Some(EpochState {
            model,
            optimizer,
            saf,
            mesa,
            progress,
        }))
    }
}

/// The first setting in which `saved` and `now` differ, as `path: saved → now`.
fn first_difference(saved: &serde_json::Value, now: &serde_json::Value) -> Option<String> {
    difference_under("", saved, now)
}

fn difference_under(
    path: &str,
    saved: &serde_json::Value,
    now: &serde_json::Value,
) -> Option<String> {
    use serde_json::Value;
    match (saved, now) {
        (Value::Object(a), Value::Object(b)) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            keys.into_iter().find_map(|k| {
                let name = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                let missing = Value::Null;
                difference_under(
                    &name,
                    a.get(k).unwrap_or(&missing),
                    b.get(k).unwrap_or(&missing),
                )
            })
        }
        _ if saved == now => None,
        _ => Some(format!("{path}: {saved} → {now}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_difference_names_the_nested_setting() {
        let saved = serde_json::json!({"lr": 0.1, "model": {"depth": 2, "heads": 4}, "epochs": 3});
        let now = serde_json::json!({"lr": 0.1, "model": {"depth": 3, "heads": 4}, "epochs": 3});
        assert_eq!(
            first_difference(&saved, &now).as_deref(),
            Some("model.depth: 2 → 3")
        );
        assert_eq!(first_difference(&saved, &saved), None);
        assert_eq!(
            first_difference(
                &fingerprint(&saved),
                &fingerprint(
                    &serde_json::json!({"lr": 0.1, "model": {"depth": 2, "heads": 4}, "epochs": 9})
                )
            ),
            None,
            "the number of epochs may change on resume"
        );
    }
}
