//! Mean losses shared by the models.

use burn::prelude::{Backend, Int, Tensor};
use burn::tensor::activation::log_softmax;

/// Mean softmax cross-entropy of `logits` `[n, classes]` against integer `labels` `[n]`.
pub fn cross_entropy<B: Backend>(logits: Tensor<B, 2>, labels: Tensor<B, 1, Int>) -> Tensor<B, 1> {
    let n = labels.dims()[0];
    let picked = log_softmax(logits, 1).gather(1, labels.reshape([n, 1]));
    -picked.mean()
}

/// How many rows of `logits` `[n, classes]` have their largest entry at `labels` `[n]`.
pub fn count_correct<B: Backend>(logits: Tensor<B, 2>, labels: &Tensor<B, 1, Int>) -> f64 {
    let n = labels.dims()[0];
    let hits = logits.argmax(1).reshape([n]).equal(labels.clone());
    crate::host::scalar(hits.int().sum().float())
}

/// Mean squared error (1/n) Σ (ŷ − y)², without a factor ½.
pub fn squared_error<B: Backend>(prediction: Tensor<B, 1>, target: Tensor<B, 1>) -> Tensor<B, 1> {
    (prediction - target).square().mean()
}
