//! A one-layer multi-head self-attention classifier, small enough for exhaustive tests.
//!
//! x `[batch, tokens, d_model]` → per head softmax((x W_Q⁽ⁱ⁾ + b_Q)(x W_K⁽ⁱ⁾ + b_K)ᵀ / √h)
//! (x W_V⁽ⁱ⁾ + b_V) → concatenated heads → output projection, added to x → mean over tokens →
//! linear classifier → cross-entropy. It has exactly the symmetries of a transformer layer: per
//! head GL(h) on (Q, K) and on (V, O), with the Q, K, V biases folded, which it declares.

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::prelude::{Backend, Int, Tensor};

use super::layers::{dense, multi_head};
use super::loss::cross_entropy;
use crate::measures::Objective;
use crate::symmetry::{BiasFolding, Symmetric, Symmetry};

/// Sizes of a [`TinyAttention`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TinyAttentionConfig {
    /// Width of the token vectors.
    pub d_model: usize,
    /// Number of heads; the head size is d_model / heads.
    pub heads: usize,
    /// Number of classes.
    pub classes: usize,
}

/// The model. Field names follow the roles (`query`, `key`, `value`, `output`).
#[derive(Module, Debug)]
pub struct TinyAttention<B: Backend> {
    /// Query projection, `[d_model, d_model]`.
    pub query: Linear<B>,
    /// Key projection.
    pub key: Linear<B>,
    /// Value projection.
    pub value: Linear<B>,
    /// Output projection.
    pub output: Linear<B>,
    /// Classifier on the mean token.
    pub classifier: Linear<B>,
    /// Number of heads.
    pub heads: usize,
    /// Bias folding used in the symmetry declaration.
    #[module(skip)]
    pub folding: BiasFolding,
}

/// A classification batch: token vectors `[batch, tokens, d_model]` and labels `[batch]`.
#[derive(Debug, Clone)]
pub struct SequenceBatch<B: Backend> {
    /// Inputs.
    pub x: Tensor<B, 3>,
    /// Class labels.
    pub labels: Tensor<B, 1, Int>,
}

impl TinyAttentionConfig {
    /// A randomly initialised model (Burn's default initialisers).
    pub fn init<B: Backend>(&self, device: &B::Device) -> TinyAttention<B> {
        let d = self.d_model;
        let linear = |o| LinearConfig::new(d, o).init(device);
        let model = TinyAttention {
            query: linear(d),
            key: linear(d),
            value: linear(d),
            output: linear(d),
            classifier: linear(self.classes),
            heads: self.heads,
            folding: BiasFolding::Fold,
        };
        crate::params::materialize(model)
    }
}

impl<B: Backend> TinyAttention<B> {
    /// Declares biases as elementwise blocks instead of folding them (not invariant).
    pub fn with_folding(mut self, folding: BiasFolding) -> Self {
        self.folding = folding;
        self
    }

    /// Class logits `[batch, classes]`.
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 2> {
        let [n, _, d] = x.dims();
        let mixed = multi_head(
            &self.query,
            &self.key,
            &self.value,
            self.heads,
            x.clone(),
            None,
        );
        let y = x + dense(&self.output, mixed);
        self.classifier.forward(y.mean_dim(1).reshape([n, d]))
    }
}

impl<B: Backend> Objective<B> for TinyAttention<B> {
    type Batch = SequenceBatch<B>;

    fn loss(&self, batch: &Self::Batch) -> Tensor<B, 1> {
        cross_entropy(self.forward(batch.x.clone()), batch.labels.clone())
    }
}

impl<B: Backend> Symmetric for TinyAttention<B> {
    fn symmetries(&self) -> Vec<Symmetry> {
        let folding = self.folding;
        vec![
            Symmetry::attention_qk("qk", "query", "key", self.heads, folding),
            Symmetry::attention_vo("vo", "value", "output", self.heads, folding),
        ]
    }
}
