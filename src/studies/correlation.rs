//! The correlation study: does a sharpness measure rank a family of trained models by their
//! generalisation gap?
//!
//! The expensive part is measuring every checkpoint (minutes each), so the study is built
//! around a per-checkpoint cache: each checkpoint directory keeps a `sharpness.json` mapping a
//! [`MeasureKey`] — the measure *and every setting that changes its value* — to the value.
//! An interrupted study resumes where it stopped, a study sharded over machines ([`Shard`])
//! merges by running once more without a shard, and changing a setting (ρ, the number of
//! points…) measures afresh rather than reusing a stale number.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::stats::{KendallTest, kendall_test};

/// The cache file in each checkpoint directory.
pub const CACHE_FILE: &str = "sharpness.json";

/// Every checkpoint directory directly under `runs` (those with a `train.json`), sorted by
/// name so that shards and reports agree on the order.
///
/// # Errors
/// The I/O error when `runs` cannot be listed.
pub fn checkpoints(runs: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(runs)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| crate::train::is_vit_checkpoint(p))
        .collect();
    dirs.sort();
    Ok(dirs)
}

/// One machine's share of a study: the checkpoints at positions i − 1, i − 1 + n, … of the
/// sorted list (written `i/n`, 1-based, as on the command line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// 0-based index of this shard.
    pub index: usize,
    /// Number of shards.
    pub count: usize,
}

impl Shard {
    /// The whole study on one machine.
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    /// Whether the checkpoint at `position` of the sorted list belongs to this shard.
    pub fn contains(self, position: usize) -> bool {
        position % self.count == self.index
    }
}

impl std::str::FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("shard '{s}' is not of the form i/n with 1 ≤ i ≤ n (e.g. 2/4)");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let (i, n): (usize, usize) = (
            i.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        );
        if i == 0 || i > n {
            return Err(bad());
        }
        Ok(Shard {
            index: i - 1,
            count: n,
        })
    }
}

/// A measure with the settings that determine its value; its string form is the cache key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeasureKey {
    /// The measure's name (`adaptive`, `geodesic_inv`, `lambda_max`, …): the report's label.
    pub measure: String,
    /// The radius, for worst-case measures.
    pub rho: Option<f64>,
    /// Every other setting, as `name=value`, in a fixed order.
    pub settings: String,
}

impl MeasureKey {
    /// The label of the report's table and plot: the measure, with ρ when it has one.
    pub fn label(&self) -> String {
        match self.rho {
            Some(rho) => format!("{} ρ={rho}", self.measure),
            None => self.measure.clone(),
        }
    }

    /// The cache key: the label and the settings.
    pub fn cache_key(&self) -> String {
        format!("{} [{}]", self.label(), self.settings)
    }
}

/// A cached value of one measure on one checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Cached {
    /// The measure's value.
    pub value: f64,
    /// Wall time it took.
    pub seconds: f64,
}

/// The measurements of one checkpoint, read from and written to its `sharpness.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MeasureCache {
    /// Cache key → value.
    pub values: BTreeMap<String, Cached>,
    /// Cache key → why the measure is undefined on this checkpoint (e.g. a collapsed attention
    /// head, whose rank-deficient factor the inv and mix metrics cannot use). Recorded so a
    /// study neither stops at such a model nor retries it on every run; the report leaves it
    /// out of that measure's τ and says so.
    #[serde(default)]
    pub failures: BTreeMap<String, String>,
}

impl MeasureCache {
    /// The cache of the checkpoint in `dir`; empty when it has none yet. A cache that cannot be
    /// parsed (a write cut short) is treated as empty, so the study re-measures rather than
    /// stops.
    pub fn load(dir: &Path) -> MeasureCache {
        std::fs::read_to_string(dir.join(CACHE_FILE))
            .ok()
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_default()
    }

    /// The cached value of `key`.
    pub fn get(&self, key: &MeasureKey) -> Option<Cached> {
        self.values.get(&key.cache_key()).copied()
    }

    /// Why `key` could not be measured on this checkpoint, if it could not.
    pub fn failure(&self, key: &MeasureKey) -> Option<&str> {
        self.failures.get(&key.cache_key()).map(String::as_str)
    }

    /// Whether `key` has a value or a recorded failure (nothing left to do).
    pub fn settled(&self, key: &MeasureKey) -> bool {
        self.get(key).is_some() || self.failure(key).is_some()
    }

    /// Records `value` for `key` and writes the cache to `dir` at once, through a temporary
    /// file renamed over the old one so that an interruption never leaves half a file.
    ///
    /// # Errors
    /// The I/O error when the file cannot be written.
    pub fn insert(&mut self, dir: &Path, key: &MeasureKey, value: Cached) -> std::io::Result<()> {
        self.failures.remove(&key.cache_key());
        self.values.insert(key.cache_key(), value);
        self.write(dir)
    }

    /// Records that `key` is undefined on this checkpoint, and why; writes like
    /// [`MeasureCache::insert`].
    ///
    /// # Errors
    /// The I/O error when the file cannot be written.
    pub fn insert_failure(
        &mut self,
        dir: &Path,
        key: &MeasureKey,
        reason: String,
    ) -> std::io::Result<()> {
        self.failures.insert(key.cache_key(), reason);
        self.write(dir)
    }

    fn write(&self, dir: &Path) -> std::io::Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        let tmp = dir.join(format!("{CACHE_FILE}.tmp"));
        std::fs::write(&tmp, text + "\n")?;
        std::fs::rename(tmp, dir.join(CACHE_FILE))
    }
}

/// Which generalisation gap the study ranks by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Gap {
    /// Test error − training error (the paper's and Jiang et al.'s choice).
    Error,
    /// Test loss − training loss.
    Loss,
}

impl std::str::FromStr for Gap {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "error" => Ok(Self::Error),
            "loss" => Ok(Self::Loss),
            _ => Err(format!("unknown gap '{s}'; expected error or loss")),
        }
    }
}

/// The correlation of one measure with the gap across the checkpoints that have both.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Correlation {
    /// The measure.
    pub measure: String,
    /// Its radius, for worst-case measures.
    pub rho: Option<f64>,
    /// τ-a, τ-b and the permutation p-value.
    #[serde(flatten)]
    pub test: KendallTest,
}

/// Kendall's τ between `key`'s values and the gaps: `pairs` holds (sharpness, gap) for every
/// checkpoint measured with `key`.
pub fn correlate(
    key: &MeasureKey,
    pairs: &[(f64, f64)],
    permutations: usize,
    seed: u64,
) -> Correlation {
    let (x, y): (Vec<f64>, Vec<f64>) = pairs.iter().copied().unzip();
    Correlation {
        measure: key.measure.clone(),
        rho: key.rho,
        test: kendall_test(&x, &y, permutations, seed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_partition_the_checkpoints() {
        let shards: Vec<Shard> = (1..=3).map(|i| format!("{i}/3").parse().unwrap()).collect();
        for position in 0..10 {
            assert_eq!(shards.iter().filter(|s| s.contains(position)).count(), 1);
        }
        assert!("0/3".parse::<Shard>().is_err());
        assert!("4/3".parse::<Shard>().is_err());
        assert!("2".parse::<Shard>().is_err());
        assert!(Shard::ALL.contains(17));
    }

    #[test]
    fn the_cache_round_trips_and_separates_settings() {
        let dir = std::env::temp_dir().join(format!("geosharp-cache-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = |points: usize| MeasureKey {
            measure: "geodesic_mix".into(),
            rho: Some(0.1),
            settings: format!("points={points}"),
        };
        let mut cache = MeasureCache::load(&dir);
        assert!(cache.get(&key(64)).is_none());
        let value = Cached {
            value: 0.25,
            seconds: 1.5,
        };
        cache.insert(&dir, &key(64), value).unwrap();
        let reread = MeasureCache::load(&dir);
        assert_eq!(reread.get(&key(64)), Some(value));
        assert!(
            reread.get(&key(128)).is_none(),
            "a new setting is a new key"
        );
        std::fs::write(dir.join(CACHE_FILE), "{ truncated").unwrap();
        assert!(MeasureCache::load(&dir).values.is_empty());
        std::fs::remove_dir_all(&dir).ok();
    }
}
