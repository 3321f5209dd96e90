//! Loading Hugging Face checkpoints (safetensors) into geosharp's Burn models.
//!
//! Burn cannot rename fields, so the few differences between a Burn parameter path and the
//! checkpoint's tensor name live in one table, [`hf_name`]:
//!
//! | Burn path | checkpoint name | why |
//! |---|---|---|
//! | `…attention.self_attention.…` | `…attention.self.…` | `self` is a Rust keyword |
//! | `…layer_norm.gamma` / `.beta` | `…LayerNorm.weight` / `.bias` | Burn's LayerNorm names, snake case |
//! | Linear `….weight`, `[d_in, d_out]` | `….weight`, `[out, in]` | Burn stores the transpose |
//!
//! A checkpoint of `BertForSequenceClassification` prefixes the encoder with `bert.`; the
//! loader accepts both. `embeddings.position_ids` (a buffer) and `pooler.*` (unused by
//! geosharp) are ignored; any other tensor not loaded is reported in [`LoadReport::unused`].

mod safetensors;

use std::path::PathBuf;

pub use self::safetensors::{LoadReport, load_bert, load_bert_weights, load_params};

/// Why a checkpoint could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The file could not be read.
    #[error("could not read {path}: {source}; run `geosharp fetch` or check --checkpoint")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a valid safetensors file (e.g. truncated).
    #[error(
        "{path} is not a valid safetensors file ({reason}); it may be truncated: fetch it again"
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What the parser reported.
        reason: String,
    },
    /// `config.json` could not be parsed.
    #[error("{path} is not a BERT config.json: {source}")]
    Config {
        /// The file.
        path: PathBuf,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// A config value geosharp does not implement.
    #[error("{path}: {field} = {value} is not supported (geosharp implements {supported})")]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// The field.
        field: &'static str,
        /// Its value.
        value: String,
        /// What is supported.
        supported: &'static str,
    },
    /// A tensor the model needs is not in the file.
    #[error(
        "tensor '{name}' (for parameter '{param}') is missing from {path}; is this a \
         BERT-architecture checkpoint with the same number of layers as its config.json?"
    )]
    Missing {
        /// The checkpoint name looked for.
        name: String,
        /// The Burn parameter it would fill.
        param: String,
        /// The file.
        path: PathBuf,
    },
    /// A tensor has the wrong shape.
    #[error(
        "tensor '{name}' has shape {found:?}, expected {expected:?}; is config.json from the \
         same revision as {path}?"
    )]
    Shape {
        /// The checkpoint name.
        name: String,
        /// The shape the model needs (checkpoint layout).
        expected: Vec<usize>,
        /// The shape in the file.
        found: Vec<usize>,
        /// The file.
        path: PathBuf,
    },
    /// A tensor has a dtype geosharp cannot read.
    #[error("tensor '{name}' in {path} has dtype {dtype}; geosharp reads F32, F16 and BF16")]
    Dtype {
        /// The checkpoint name.
        name: String,
        /// Its dtype.
        dtype: String,
        /// The file.
        path: PathBuf,
    },
}

/// The checkpoint name of a Burn parameter path, and whether the tensor is stored transposed
/// (Burn `Linear` weights are `[d_in, d_out]`, PyTorch's are `[out, in]`).
pub fn hf_name(burn_path: &str, rank: usize) -> (String, bool) {
    let name = burn_path
        .replace(".self_attention.", ".self.")
        .replace("layer_norm.gamma", "LayerNorm.weight")
        .replace("layer_norm.beta", "LayerNorm.bias");
    let transposed = rank == 2 && name.ends_with(".weight") && !name.contains("embeddings.");
    (name, transposed)
}

/// Checkpoint tensors that are deliberately not loaded.
pub fn is_ignored(name: &str) -> bool {
    let name = name.strip_prefix("bert.").unwrap_or(name);
    name == "embeddings.position_ids" || name.starts_with("pooler.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_remap_table_covers_self_layer_norm_and_transposed_linears() {
        assert_eq!(
            hf_name("encoder.layer.3.attention.self_attention.query.weight", 2),
            ("encoder.layer.3.attention.self.query.weight".into(), true)
        );
        assert_eq!(
            hf_name("encoder.layer.0.output.layer_norm.gamma", 1),
            ("encoder.layer.0.output.LayerNorm.weight".into(), false)
        );
        assert_eq!(
            hf_name("embeddings.word_embeddings.weight", 2),
            ("embeddings.word_embeddings.weight".into(), false)
        );
        assert!(is_ignored("bert.pooler.dense.weight") && is_ignored("embeddings.position_ids"));
        assert!(!is_ignored("encoder.layer.0.output.dense.bias"));
    }
}
