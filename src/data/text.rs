//! Tokenising sentences for BERT with the `tokenizers` crate and `tokenizer.json`.
//!
//! The tokenizer of all-MiniLM-L6-v2 has truncation to 128 and *fixed* padding to 128 built in;
//! [`SentenceEncoder`] overrides both: truncation to `max_len` tokens and padding to the longest
//! sentence of each batch, so short batches cost short forward passes.

use std::path::{Path, PathBuf};

use burn::prelude::{Backend, Int, Tensor, TensorData};
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

use super::Error;
use crate::models::{Encoded, TextBatch};

/// A `tokenizer.json` with geosharp's truncation and padding.
pub struct SentenceEncoder {
    tokenizer: Tokenizer,
}

impl std::fmt::Debug for SentenceEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SentenceEncoder").finish_non_exhaustive()
    }
}

impl SentenceEncoder {
    /// Reads `tokenizer.json`; sentences are truncated to `max_len` tokens (special tokens
    /// included) and padded to the longest in their batch.
    pub fn from_file(path: &Path, max_len: usize) -> Result<Self, Error> {
        let tokenizer_error = |reason: String| Error::Tokenizer {
            path: PathBuf::from(path),
            reason,
        };
        let mut tokenizer =
            Tokenizer::from_file(path).map_err(|e| tokenizer_error(e.to_string()))?;
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: max_len,
                ..Default::default()
            }))
            .map_err(|e| tokenizer_error(e.to_string()))?;
        let padding = tokenizer.get_padding().cloned().unwrap_or_default();
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            ..padding
        }));
        Ok(Self { tokenizer })
    }

    /// Encodes `sentences` as one padded batch on `device`.
    pub fn encode<B: Backend>(
        &self,
        sentences: &[&str],
        device: &B::Device,
    ) -> Result<Encoded<B>, Error> {
        if sentences.is_empty() {
            return Err(Error::Empty {
                what: "sentences to encode",
            });
        }
        let encodings = self
            .tokenizer
            .encode_batch(sentences.to_vec(), true)
            .map_err(|e| Error::Tokenizer {
                path: PathBuf::from("tokenizer.json"),
                reason: e.to_string(),
            })?;
        let (n, t) = (encodings.len(), encodings[0].get_ids().len());
        let (mut ids, mut types, mut mask) = (
            Vec::with_capacity(n * t),
            Vec::with_capacity(n * t),
            Vec::with_capacity(n * t),
        );
        for e in &encodings {
            ids.extend(e.get_ids().iter().map(|&x| i64::from(x)));
            types.extend(e.get_type_ids().iter().map(|&x| i64::from(x)));
            mask.extend(e.get_attention_mask().iter().map(|&x| x as f32));
        }
        Ok(Encoded {
            ids: Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [n, t]), device),
            types: Tensor::<B, 2, Int>::from_data(TensorData::new(types, [n, t]), device),
            mask: Tensor::<B, 2>::from_data(TensorData::new(mask, [n, t]), device),
        })
    }

    /// Encodes labelled sentences in batches of `batch_size` (the last may be smaller).
    pub fn batches<B: Backend>(
        &self,
        sentences: &[String],
        labels: &[usize],
        batch_size: usize,
        device: &B::Device,
    ) -> Result<Vec<TextBatch<B>>, Error> {
        if sentences.is_empty() {
            return Err(Error::Empty {
                what: "labelled sentences",
            });
        }
        sentences
            .chunks(batch_size.max(1))
            .zip(labels.chunks(batch_size.max(1)))
            .map(|(s, l)| {
                let refs: Vec<&str> = s.iter().map(String::as_str).collect();
                let labels: Vec<i64> = l.iter().map(|&x| x as i64).collect();
                Ok(TextBatch {
                    input: self.encode(&refs, device)?,
                    labels: Tensor::<B, 1, Int>::from_data(
                        TensorData::new(labels, [l.len()]),
                        device,
                    ),
                })
            })
            .collect()
    }
}
