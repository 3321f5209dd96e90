//! The safetensors reader: parameter by parameter, through the remap table.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::prelude::{Backend, Tensor, TensorData};
use safetensors::{Dtype, SafeTensors};

use super::{Error, hf_name, is_ignored};
use crate::models::{BertConfig, BertModel};
use crate::params::ParamTable;

/// What a load did besides filling the model.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LoadReport {
    /// Number of parameters loaded.
    pub loaded: usize,
    /// Tensors in the file that no parameter used (ignored ones excluded).
    pub unused: Vec<String>,
}

fn read(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads `config.json` of a BERT checkpoint.
pub fn read_config(path: &Path) -> Result<BertConfig, Error> {
    let bytes = read(path)?;
    let config: BertConfig = serde_json::from_slice(&bytes).map_err(|source| Error::Config {
        path: path.to_path_buf(),
        source,
    })?;
    if config.hidden_act != "gelu" {
        return Err(Error::Unsupported {
            path: path.to_path_buf(),
            field: "hidden_act",
            value: config.hidden_act,
            supported: "gelu (exact, erf-based)",
        });
    }
    Ok(config)
}

/// Loads the encoder of a Hugging Face BERT checkpoint directory (`config.json` and
/// `model.safetensors`).
pub fn load_bert<B: Backend>(
    dir: &Path,
    device: &B::Device,
) -> Result<(BertModel<B>, BertConfig, LoadReport), Error> {
    let config = read_config(&dir.join("config.json"))?;
    let model = config.init::<B>(device);
    let (model, report) = load_bert_weights(model, &dir.join("model.safetensors"))?;
    Ok((model, config, report))
}

/// Fills an initialised encoder from a safetensors file.
pub fn load_bert_weights<B: Backend>(
    model: BertModel<B>,
    path: &Path,
) -> Result<(BertModel<B>, LoadReport), Error> {
    load_params(model, path, hf_name)
}

/// Fills every float parameter of `model` from the safetensors file at `path`. `names` maps a
/// Burn parameter path and its rank to the checkpoint name and whether the tensor is stored
/// transposed ([`hf_name`] for BERT).
pub fn load_params<B: Backend, M: Module<B>>(
    model: M,
    path: &Path,
    names: impl Fn(&str, usize) -> (String, bool),
) -> Result<(M, LoadReport), Error> {
    let bytes = read(path)?;
    let file = SafeTensors::deserialize(&bytes).map_err(|e| Error::Corrupt {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let (table, current) = ParamTable::read(&model);
    let mut used = std::collections::HashSet::new();
    let mut values = Vec::with_capacity(table.len());
    for (entry, old) in table.entries().iter().zip(&current) {
        let (mut name, transposed) = names(&entry.path, entry.shape.len());
        if file.tensor(&name).is_err() && file.tensor(&format!("bert.{name}")).is_ok() {
            name = format!("bert.{name}");
        }
        let view = file.tensor(&name).map_err(|_| Error::Missing {
            name: name.clone(),
            param: entry.path.clone(),
            path: path.to_path_buf(),
        })?;
        let expected: Vec<usize> = if transposed {
            entry.shape.iter().rev().copied().collect()
        } else {
            entry.shape.clone()
        };
        if view.shape() != expected.as_slice() {
            return Err(Error::Shape {
                name,
                expected,
                found: view.shape().to_vec(),
                path: path.to_path_buf(),
            });
        }
        let floats = to_f32(view.dtype(), view.data()).ok_or_else(|| Error::Dtype {
            name: name.clone(),
            dtype: format!("{:?}", view.dtype()),
            path: PathBuf::from(path),
        })?;
        let options = (&old.device(), old.dtype());
        let numel = entry.numel();
        let value = if transposed {
            let data = TensorData::new(floats, [expected[0], expected[1]]);
            Tensor::<B, 2>::from_data(data, options)
                .transpose()
                .reshape([numel])
        } else {
            Tensor::<B, 1>::from_data(TensorData::new(floats, [numel]), options)
        };
        values.push(value);
        used.insert(name);
    }
    let unused = file
        .names()
        .into_iter()
        .filter(|n| !used.contains(*n) && !is_ignored(n))
        .map(str::to_string)
        .collect();
    let report = LoadReport {
        loaded: table.len(),
        unused,
    };
    Ok((table.load(model, values), report))
}

/// Little-endian F32, F16 or BF16 bytes as f32 values.
fn to_f32(dtype: Dtype, bytes: &[u8]) -> Option<Vec<f32>> {
    let pairs = || {
        bytes
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
    };
    match dtype {
        Dtype::F32 => Some(
            bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        ),
        Dtype::F16 => Some(pairs().map(|b| half::f16::from_bits(b).to_f32()).collect()),
        Dtype::BF16 => Some(pairs().map(|b| half::bf16::from_bits(b).to_f32()).collect()),
        _ => None,
    }
}
