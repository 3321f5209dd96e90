//! Models, data and comparisons shared by the optimiser tests.

use burn::module::AutodiffModule;
use burn::prelude::{Backend, Int, Tensor, TensorData};
use burn::tensor::DType;
use burn::tensor::backend::AutodiffBackend;
use geosharp::host::to_f64_vec;
use geosharp::models::{SequenceBatch, TinyAttention, TinyAttentionConfig};
use geosharp::params::ParamTable;

/// A deterministic classification batch of `n` sequences.
pub fn batch<B: Backend>(
    n: usize,
    tokens: usize,
    d: usize,
    classes: usize,
    seed: f64,
) -> SequenceBatch<B> {
    let x: Vec<f64> = (0..n * tokens * d)
        .map(|i| (seed + 1.618 * i as f64).sin())
        .collect();
    let labels: Vec<i64> = (0..n).map(|i| ((i * 7 + 3) % classes) as i64).collect();
    // Explicit dtype: this binary runs f32 and f64 backends side by side.
    let dtype = if std::mem::size_of::<B::FloatElem>() == 4 {
        DType::F32
    } else {
        DType::F64
    };
    SequenceBatch {
        x: geosharp::host::upload(&x, [n, tokens, d], (&Default::default(), dtype)),
        labels: Tensor::<B, 1, Int>::from_data(TensorData::new(labels, [n]), &Default::default()),
    }
}

/// A seeded TinyAttention with 2 heads of 4 and 3 classes.
pub fn tiny<B: Backend>(seed: u64) -> TinyAttention<B> {
    let device = Default::default();
    let config = TinyAttentionConfig {
        d_model: 8,
        heads: 2,
        classes: 3,
    };
    geosharp::params::seeded::<B, _>(&device, seed, || config.init(&device))
}

/// Every parameter's values, in table order.
pub fn values<B: AutodiffBackend, M: AutodiffModule<B>>(model: &M) -> Vec<Vec<f64>> {
    ParamTable::read(model)
        .1
        .into_iter()
        .map(|v| to_f64_vec(v.inner()))
        .collect()
}
