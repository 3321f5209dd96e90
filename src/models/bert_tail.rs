//! The last layers of a BERT encoder with its classification head: the trainable part of a
//! model fine-tuned on frozen lower layers.
//!
//! Fine-tuning only the top `k` layers of a BERT is standard when compute is short, and it
//! makes a family of fine-tuned models cheap: the frozen layers' hidden states are computed
//! once per sentence ([`crate::train::mr_tail::Features`]) and every model of the family
//! trains, and is measured, on them. Sharpness of such a model is sharpness with respect to the
//! weights that were trained — the tail's attention blocks still carry their full GL(h)
//! symmetries, so the geodesic measures apply unchanged.
//!
//! Shapes: hidden states `[batch, tokens, hidden]` and mask `[batch, tokens]` → the tail's
//! layers → mean-pooled, L2-normalised `[batch, hidden]` → logits `[batch, classes]`, exactly
//! the [`BertClassifier`](super::BertClassifier) computation from layer `L − k` on.

use burn::module::Module;
use burn::nn::Linear;
use burn::prelude::{Backend, Int, Tensor};

use super::bert::{BertLayer, BertModel, additive_mask, mean_pool_normalized};
use super::loss::cross_entropy;
use super::packing::Packing;
use crate::measures::Objective;
use crate::symmetry::{BiasFolding, Symmetric, Symmetry};

/// The top layers of a BERT encoder and a linear head.
#[derive(Module, Debug)]
pub struct BertTail<B: Backend> {
    /// The trainable layers, bottom first (`layer.0` is layer `L − k` of the encoder).
    pub layer: Vec<BertLayer<B>>,
    /// `[hidden, classes]`.
    pub head: Linear<B>,
    /// Bias folding of the declared symmetries.
    #[module(skip)]
    pub folding: BiasFolding,
}

/// Hidden states of the frozen layers with their labels: one batch of a tail.
#[derive(Debug, Clone)]
pub struct TailBatch<B: Backend> {
    /// `[batch, tokens, hidden]` hidden states after the frozen layers.
    pub hidden: Tensor<B, 3>,
    /// `[batch, tokens]`, 1 for real tokens and 0 for padding.
    pub mask: Tensor<B, 2>,
    /// `[batch]` class labels.
    pub labels: Tensor<B, 1, Int>,
}

impl<B: Backend> BertTail<B> {
    /// Splits `bert` into its first `L − k` layers (returned as a `BertModel`, the frozen
    /// front) and a tail of its last `k` layers with `head`. `k` is clamped to `1..=L`.
    pub fn split(mut bert: BertModel<B>, k: usize, head: Linear<B>) -> (BertModel<B>, Self) {
        let depth = bert.encoder.layer.len();
        let k = k.clamp(1, depth.max(1));
        let layer = bert.encoder.layer.split_off(depth - k);
        let tail = Self {
            layer,
            head,
            folding: BiasFolding::Fold,
        };
        (bert, tail)
    }

    /// The sentence embedding `[batch, hidden]` from the frozen layers' hidden states: the
    /// tail's layers (on the real tokens only, [`super::packing`]), then mean pooling over
    /// real tokens and L2 normalisation.
    pub fn pooled(&self, hidden: Tensor<B, 3>, mask: &Tensor<B, 2>) -> Tensor<B, 2> {
        let additive = additive_mask(mask);
        let packing = Packing::from_mask(mask);
        let mut x = packing.pack(hidden);
        for layer in &self.layer {
            x = layer.forward(x, &packing, additive.clone());
        }
        mean_pool_normalized(packing.unpack(x), mask)
    }

    /// Class logits `[batch, classes]` from the frozen layers' hidden states.
    pub fn forward(&self, hidden: Tensor<B, 3>, mask: &Tensor<B, 2>) -> Tensor<B, 2> {
        self.head.forward(self.pooled(hidden, mask))
    }
}

impl<B: Backend> Objective<B> for BertTail<B> {
    type Batch = TailBatch<B>;

    fn loss(&self, batch: &Self::Batch) -> Tensor<B, 1> {
        cross_entropy(
            self.forward(batch.hidden.clone(), &batch.mask),
            batch.labels.clone(),
        )
    }
}

impl<B: Backend> Symmetric for BertTail<B> {
    fn symmetries(&self) -> Vec<Symmetry> {
        self.layer
            .iter()
            .enumerate()
            .flat_map(|(i, layer)| layer.symmetries(&format!("layer.{i}"), self.folding))
            .collect()
    }
}
