//! The main job's task: a BERT checkpoint with a sentiment head, on MR movie reviews.
//!
//! [`MrTask::load`] resolves everything a measurement needs from a checkpoint directory
//! (`config.json`, `model.safetensors`, optionally `tokenizer.json` and `head.mpk`):
//!
//! * the encoder, through [`crate::checkpoint`];
//! * the tokenizer: the directory's own, else the fetched MiniLM one (BERT uncased vocabulary);
//! * MR sentences with a seeded 80/20 split;
//! * the head: `DIR/head.mpk` if present, else a cached fit in `CACHE/heads/`, else a fresh fit
//!   on frozen embeddings (saved to the cache for next time).
//!
//! Sharpness is measured on the first `points` training sentences of the shuffled split, the
//! points the head was fitted on.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::record::{FullPrecisionSettings, NamedMpkFileRecorder};
use burn::tensor::backend::AutodiffBackend;

use crate::assets::{Asset, Cache};
use crate::checkpoint;
use crate::data::{self, LabelledSentences, SentenceEncoder, mr};
use crate::measures::Progress;
use crate::models::{BertClassifier, TextBatch};
use crate::train::{HeadFit, HeadReport, fit_head};

/// Why the task could not be assembled.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The checkpoint could not be loaded.
    #[error(transparent)]
    Checkpoint(#[from] checkpoint::Error),
    /// The data could not be loaded.
    #[error(transparent)]
    Data(#[from] data::Error),
    /// An asset is missing.
    #[error(transparent)]
    Asset(#[from] crate::assets::Error),
    /// The head could not be saved or loaded.
    #[error("head {path}: {reason}; delete it to refit")]
    Head {
        /// The head file.
        path: PathBuf,
        /// What the recorder reported.
        reason: String,
    },
}

/// Settings of the task.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct MrOptions {
    /// Seed of the train/test split.
    pub split_seed: u64,
    /// Maximum tokens per sentence.
    pub max_len: usize,
    /// How the head is fitted when there is none.
    pub head: HeadFit,
    /// Fit the head on at most this many training sentences, and report it on a quarter as many
    /// test sentences (all of both when `None`).
    pub head_train_limit: Option<usize>,
}

impl Default for MrOptions {
    fn default() -> Self {
        Self {
            split_seed: 0,
            max_len: 128,
            head: HeadFit::default(),
            head_train_limit: None,
        }
    }
}

/// A BERT classifier with its tokenizer and data.
#[derive(Debug)]
pub struct MrTask<B: AutodiffBackend> {
    /// Encoder and head.
    pub model: BertClassifier<B>,
    /// The tokenizer.
    pub encoder: SentenceEncoder,
    /// Training sentences (shuffled).
    pub train: LabelledSentences,
    /// Test sentences.
    pub test: LabelledSentences,
    /// Where the head came from.
    pub head_file: PathBuf,
    /// The fit report, when the head was fitted now.
    pub head_report: Option<HeadReport>,
}

/// The cache file of the head fitted for `checkpoint` with `options`.
fn cached_head(cache: &Cache, checkpoint: &Path, options: &MrOptions) -> PathBuf {
    let name = checkpoint
        .file_name()
        .map_or_else(|| "checkpoint".into(), |n| n.to_string_lossy().into_owned());
    let limit = options
        .head_train_limit
        .map_or_else(|| "all".to_string(), |n| n.to_string());
    cache
        .root()
        .join("heads")
        .join(format!("{name}-mr-split{}-{limit}.mpk", options.split_seed))
}

impl<B: AutodiffBackend> MrTask<B> {
    /// Loads the task for the checkpoint in `dir` (see the module docs).
    pub fn load(
        dir: &Path,
        cache: &Cache,
        options: &MrOptions,
        device: &B::Device,
        progress: &mut dyn Progress,
    ) -> Result<Self, Error> {
        let (bert, _config, _report) = checkpoint::load_bert::<B>(dir, device)?;
        let own_tokenizer = dir.join("tokenizer.json");
        let tokenizer = if own_tokenizer.is_file() {
            own_tokenizer
        } else {
            cache.verify(Asset::MiniLm)?;
            cache.minilm().join("tokenizer.json")
        };
        let encoder = SentenceEncoder::from_file(&tokenizer, options.max_len)?;
        let (train, test) = mr::load(cache, options.split_seed, 0.2)?;
        let recorder = NamedMpkFileRecorder::<FullPrecisionSettings>::new();
        let own_head = dir.join("head.mpk");
        let cached = cached_head(cache, dir, options);
        let head_file = if own_head.is_file() {
            own_head
        } else {
            cached.clone()
        };
        let hidden = bert.embeddings.layer_norm.gamma.dims()[0];
        let (head, head_report) = if head_file.is_file() {
            let template: Linear<B> = LinearConfig::new(hidden, 2).init(device);
            let head = template
                .load_file(&head_file, &recorder, device)
                .map_err(|e| Error::Head {
                    path: head_file.clone(),
                    reason: e.to_string(),
                })?;
            (head, None)
        } else {
            let (fit_on, report_on) = match options.head_train_limit {
                Some(n) => (train.take(n), test.take((n / 4).max(32))),
                None => (train.clone(), test.clone()),
            };
            let (head, report) = fit_head(
                &bert,
                &encoder,
                (&fit_on, &report_on),
                2,
                &options.head,
                device,
                progress,
            )?;
            if let Some(parent) = cached.parent() {
                std::fs::create_dir_all(parent).map_err(|e| Error::Head {
                    path: cached.clone(),
                    reason: e.to_string(),
                })?;
            }
            head.clone()
                .save_file(cached.clone(), &recorder)
                .map_err(|e| Error::Head {
                    path: cached.clone(),
                    reason: e.to_string(),
                })?;
            (head, Some(report))
        };
        let mut model = BertClassifier::new(bert, 2, device);
        model.head = head;
        Ok(Self {
            model,
            encoder,
            train,
            test,
            head_file,
            head_report,
        })
    }

    /// The first `points` training sentences, encoded in batches of `batch`.
    pub fn batches(
        &self,
        points: usize,
        batch: usize,
        device: &B::Device,
    ) -> Result<Vec<TextBatch<B>>, Error> {
        let data = self.train.take(points);
        Ok(self
            .encoder
            .batches(&data.sentences, &data.labels, batch, device)?)
    }
}
