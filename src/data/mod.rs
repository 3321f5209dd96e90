//! Data: synthetic problems and loaders for the fetched assets.

pub mod fashion;
pub mod mr;
pub mod synthetic;
pub mod text;

use std::path::PathBuf;

pub use mr::LabelledSentences;
pub use synthetic::SparseRegression;
pub use text::SentenceEncoder;

/// Why data could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The asset is missing or corrupt.
    #[error(transparent)]
    Asset(#[from] crate::assets::Error),
    /// A data file could not be read.
    #[error("could not read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A line of a data file is malformed.
    #[error("line {line}: {reason}")]
    Parse {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// The tokenizer failed.
    #[error("tokenizer {path}: {reason}")]
    Tokenizer {
        /// The tokenizer file.
        path: PathBuf,
        /// What the tokenizers crate reported.
        reason: String,
    },
    /// A binary data file is malformed.
    #[error("{path}: {reason}; delete it and run `geosharp fetch` again")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Nothing to work on.
    #[error("no {what}: the data set is empty")]
    Empty {
        /// What is empty.
        what: &'static str,
    },
}

/// Replaces exactly `round(noise · n)` of `labels` (at uniformly drawn positions, seeded by
/// `seed`) with `relabel(label, rng)`, which must pick a *different* class. The noise fraction
/// is clamped to [0, 1]. Training, measuring and evaluating a model all call this with the
/// model's seed, so they see the same corrupted labels.
pub fn corrupt_labels<T: Copy>(
    labels: &mut [T],
    noise: f64,
    seed: u64,
    mut relabel: impl FnMut(T, &mut rand::rngs::StdRng) -> T,
) {
    use rand::SeedableRng;
    use rand::seq::SliceRandom;
    let count = (noise.clamp(0.0, 1.0) * labels.len() as f64).round() as usize;
    if count == 0 {
        return;
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ 0x1abe1_0015e);
    let mut order: Vec<usize> = (0..labels.len()).collect();
    order.shuffle(&mut rng);
    for &i in &order[..count] {
        labels[i] = relabel(labels[i], &mut rng);
    }
}
