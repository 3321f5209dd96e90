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
