//! BERT (Devlin et al. 2019) as in Hugging Face `modeling_bert.py`, post-LayerNorm, with a
//! classification head on the mean-pooled, L2-normalised sentence embedding.
//!
//! Reference: <https://github.com/huggingface/transformers/blob/v4.44.0/src/transformers/models/bert/modeling_bert.py>.
//! The struct and field names mirror the HF module tree, so that the Burn parameter paths are the
//! checkpoint's tensor names up to the remap table of [`crate::checkpoint`]
//! (`self` → `self_attention`, `LayerNorm.{weight,bias}` → `layer_norm.{gamma,beta}`, Linear
//! weights transposed to Burn's `[d_in, d_out]`).
//!
//! Shapes: input ids `[batch, tokens]` → hidden states `[batch, tokens, hidden]` → pooled
//! `[batch, hidden]` → logits `[batch, classes]`. The attention mask is 1 for real tokens and 0
//! for padding; padded keys get −10⁹ added to their scores, and pooling averages over real
//! tokens only. Inside the encoder the batch is *packed* ([`super::packing`]): the embeddings
//! and every token-wise layer run on the `[real, hidden]` rows of the real tokens alone, and so
//! does attention where it is fused (each sentence's rows attending to each other,
//! [`super::fused::attention`]); elsewhere only attention's scores see the padded layout.

use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig, Linear, LinearConfig};
use burn::prelude::{Backend, Int, Tensor};
use serde::Deserialize;

use super::fused::attention::segment_attention;
use super::layers::{LayerNorm, attend, gelu};
use super::loss::cross_entropy;
use super::packing::Packing;
use crate::measures::Objective;
use crate::symmetry::{BiasFolding, Symmetric, Symmetry};

/// Score added to padded keys (exp underflows to exactly 0 in f32).
const MASKED_SCORE: f64 = -1e9;
/// ε of the L2 normalisation of the pooled embedding (as `torch.nn.functional.normalize`).
const NORMALIZE_EPS: f64 = 1e-12;

/// `config.json` of a Hugging Face BERT checkpoint (same field names). Defaults are bert-base.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(default)]
pub struct BertConfig {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Width of the hidden states.
    pub hidden_size: usize,
    /// Number of encoder layers.
    pub num_hidden_layers: usize,
    /// Attention heads per layer.
    pub num_attention_heads: usize,
    /// Width of the feed-forward layer.
    pub intermediate_size: usize,
    /// Activation of the feed-forward layer; only `gelu` (exact, erf-based) is supported.
    pub hidden_act: String,
    /// Number of learned positions.
    pub max_position_embeddings: usize,
    /// Number of token types (segments).
    pub type_vocab_size: usize,
    /// ε of every LayerNorm.
    pub layer_norm_eps: f64,
}

impl Default for BertConfig {
    fn default() -> Self {
        Self {
            vocab_size: 30522,
            hidden_size: 768,
            num_hidden_layers: 12,
            num_attention_heads: 12,
            intermediate_size: 3072,
            hidden_act: "gelu".into(),
            max_position_embeddings: 512,
            type_vocab_size: 2,
            layer_norm_eps: 1e-12,
        }
    }
}

impl BertConfig {
    /// Head size h = hidden / heads.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }

    /// A randomly initialised encoder (Burn's default initialisers).
    pub fn init<B: Backend>(&self, device: &B::Device) -> BertModel<B> {
        let d = self.hidden_size;
        let norm = || LayerNorm::new(d, self.layer_norm_eps, device);
        let linear = |i, o| LinearConfig::new(i, o).init(device);
        let layer = (0..self.num_hidden_layers)
            .map(|_| BertLayer {
                attention: BertAttention {
                    self_attention: BertSelfAttention {
                        query: linear(d, d),
                        key: linear(d, d),
                        value: linear(d, d),
                        heads: self.num_attention_heads,
                    },
                    output: BertSelfOutput {
                        dense: linear(d, d),
                        layer_norm: norm(),
                    },
                },
                intermediate: BertIntermediate {
                    dense: linear(d, self.intermediate_size),
                },
                output: BertOutput {
                    dense: linear(self.intermediate_size, d),
                    layer_norm: norm(),
                },
            })
            .collect();
        let model = BertModel {
            embeddings: BertEmbeddings {
                word_embeddings: EmbeddingConfig::new(self.vocab_size, d).init(device),
                position_embeddings: EmbeddingConfig::new(self.max_position_embeddings, d)
                    .init(device),
                token_type_embeddings: EmbeddingConfig::new(self.type_vocab_size, d).init(device),
                layer_norm: norm(),
            },
            encoder: BertEncoder { layer },
        };
        crate::params::materialize(model)
    }
}

/// `BertModel` without the pooler.
#[derive(Module, Debug)]
pub struct BertModel<B: Backend> {
    /// Token, position and type embeddings.
    pub embeddings: BertEmbeddings<B>,
    /// The stack of layers.
    pub encoder: BertEncoder<B>,
}

/// `BertEmbeddings`.
#[derive(Module, Debug)]
pub struct BertEmbeddings<B: Backend> {
    /// `[vocab, hidden]`.
    pub word_embeddings: Embedding<B>,
    /// `[positions, hidden]`.
    pub position_embeddings: Embedding<B>,
    /// `[types, hidden]`.
    pub token_type_embeddings: Embedding<B>,
    /// HF `LayerNorm`.
    pub layer_norm: LayerNorm<B>,
}

/// `BertEncoder`.
#[derive(Module, Debug)]
pub struct BertEncoder<B: Backend> {
    /// HF `layer`.
    pub layer: Vec<BertLayer<B>>,
}

/// `BertLayer`.
#[derive(Module, Debug)]
pub struct BertLayer<B: Backend> {
    /// Self-attention and its output block.
    pub attention: BertAttention<B>,
    /// Feed-forward expansion.
    pub intermediate: BertIntermediate<B>,
    /// Feed-forward contraction and LayerNorm.
    pub output: BertOutput<B>,
}

/// `BertAttention`.
#[derive(Module, Debug)]
pub struct BertAttention<B: Backend> {
    /// HF `self` (a Rust keyword).
    pub self_attention: BertSelfAttention<B>,
    /// HF `output`.
    pub output: BertSelfOutput<B>,
}

/// `BertSelfAttention`: Q, K, V projections, `[hidden, hidden]` each in Burn layout.
#[derive(Module, Debug)]
pub struct BertSelfAttention<B: Backend> {
    /// W_Q.
    pub query: Linear<B>,
    /// W_K.
    pub key: Linear<B>,
    /// W_V.
    pub value: Linear<B>,
    /// Number of heads.
    pub heads: usize,
}

/// `BertSelfOutput`: W_O, then LayerNorm of the residual sum.
#[derive(Module, Debug)]
pub struct BertSelfOutput<B: Backend> {
    /// W_O.
    pub dense: Linear<B>,
    /// HF `LayerNorm`.
    pub layer_norm: LayerNorm<B>,
}

/// `BertIntermediate`: dense + GELU.
#[derive(Module, Debug)]
pub struct BertIntermediate<B: Backend> {
    /// `[hidden, intermediate]`.
    pub dense: Linear<B>,
}

/// `BertOutput`: dense, then LayerNorm of the residual sum.
#[derive(Module, Debug)]
pub struct BertOutput<B: Backend> {
    /// `[intermediate, hidden]`.
    pub dense: Linear<B>,
    /// HF `LayerNorm`.
    pub layer_norm: LayerNorm<B>,
}

/// Token ids, token types and the attention mask of a batch of sentences.
#[derive(Debug, Clone)]
pub struct Encoded<B: Backend> {
    /// `[batch, tokens]` token ids.
    pub ids: Tensor<B, 2, Int>,
    /// `[batch, tokens]` token types (all 0 for single sentences).
    pub types: Tensor<B, 2, Int>,
    /// `[batch, tokens]`, 1 for real tokens and 0 for padding.
    pub mask: Tensor<B, 2>,
}

impl<B: Backend> BertSelfAttention<B> {
    /// Packed `[real, hidden]` → packed attention context `[real, hidden]` (before W_O): the
    /// projections run on the packed rows, and so do the scores where attention is fused (each
    /// sentence's rows attending to each other, [`super::fused::attention`]); elsewhere the
    /// scores are computed on the padded layout with padded keys masked.
    fn forward(
        &self,
        x: Tensor<B, 2>,
        packing: &Packing<B>,
        additive_mask: Tensor<B, 4>,
    ) -> Tensor<B, 2> {
        let (q, k, v) = (
            self.query.forward(x.clone()),
            self.key.forward(x.clone()),
            self.value.forward(x),
        );
        let fused = segment_attention(
            q.clone(),
            k.clone(),
            v.clone(),
            self.heads,
            packing.segments(),
        );
        fused.unwrap_or_else(|| {
            let context = attend(
                packing.unpack(q),
                packing.unpack(k),
                packing.unpack(v),
                self.heads,
                Some(additive_mask),
            );
            packing.pack(context)
        })
    }
}

impl<B: Backend> BertLayer<B> {
    /// One post-LayerNorm layer on a packed batch: `[real, hidden]` → same shape, the real
    /// tokens of `packing`; `additive_mask` is [`additive_mask`] of the batch's attention mask.
    pub fn forward(
        &self,
        x: Tensor<B, 2>,
        packing: &Packing<B>,
        additive_mask: Tensor<B, 4>,
    ) -> Tensor<B, 2> {
        let context = self
            .attention
            .self_attention
            .forward(x.clone(), packing, additive_mask);
        let attended = self
            .attention
            .output
            .layer_norm
            .forward(self.attention.output.dense.forward(context) + x);
        let expanded = gelu(self.intermediate.dense.forward(attended.clone()));
        self.output
            .layer_norm
            .forward(self.output.dense.forward(expanded) + attended)
    }
}

/// `(1 − mask) · (−10⁹)`, broadcast over heads and queries: `[batch, 1, 1, tokens]`.
pub fn additive_mask<B: Backend>(mask: &Tensor<B, 2>) -> Tensor<B, 4> {
    let [n, t] = mask.dims();
    (mask.clone().neg().add_scalar(1.0) * MASKED_SCORE).reshape([n, 1, 1, t])
}

/// Mean of `hidden` `[batch, tokens, d]` over the real tokens of `mask`, L2-normalised: the
/// sentence embedding of sentence-transformers (`[batch, d]`).
pub fn mean_pool_normalized<B: Backend>(hidden: Tensor<B, 3>, mask: &Tensor<B, 2>) -> Tensor<B, 2> {
    let [n, t, d] = hidden.dims();
    let mask = mask.clone().reshape([n, t, 1]);
    let summed = (hidden * mask.clone()).sum_dim(1).reshape([n, d]);
    let counts = mask.sum_dim(1).reshape([n, 1]).clamp_min(1e-9);
    let mean = summed / counts;
    let norm = mean
        .clone()
        .square()
        .sum_dim(1)
        .sqrt()
        .clamp_min(NORMALIZE_EPS);
    mean / norm
}

impl<B: Backend> BertModel<B> {
    /// Hidden states of the last layer, `[batch, tokens, hidden]`.
    pub fn forward(&self, input: &Encoded<B>) -> Tensor<B, 3> {
        self.hidden_states(input, self.encoder.layer.len())
    }

    /// Hidden states after the embeddings and the first `layers` layers (all of them when
    /// `layers` exceeds the depth), `[batch, tokens, hidden]`, zeros at padded positions.
    pub fn hidden_states(&self, input: &Encoded<B>, layers: usize) -> Tensor<B, 3> {
        let (x, packing) = self.packed_hidden_states(input, layers);
        packing.unpack(x)
    }

    /// [`Self::hidden_states`] of the real tokens only, `[real, hidden]`, with their packing.
    fn packed_hidden_states(
        &self,
        input: &Encoded<B>,
        layers: usize,
    ) -> (Tensor<B, 2>, Packing<B>) {
        let [n, t] = input.ids.dims();
        let device = input.ids.device();
        let packing = Packing::from_mask(&input.mask);
        let positions = Tensor::<B, 1, Int>::arange(0..t as i64, &device)
            .reshape([1, t])
            .expand([n, t]);
        // `Embedding::forward` takes `[batch, seq]`: the packed tokens as one sequence.
        let real = packing.real();
        let embed = |table: &Embedding<B>, ids: Tensor<B, 2, Int>| {
            let d = table.weight.dims()[1];
            table
                .forward(packing.pack_ids(ids).reshape([1, real]))
                .reshape([real, d])
        };
        let e = &self.embeddings;
        let embedded = embed(&e.word_embeddings, input.ids.clone())
            + embed(&e.position_embeddings, positions)
            + embed(&e.token_type_embeddings, input.types.clone());
        let mut x = e.layer_norm.forward(embedded);
        let additive = additive_mask(&input.mask);
        for layer in self.encoder.layer.iter().take(layers) {
            x = layer.forward(x, &packing, additive.clone());
        }
        (x, packing)
    }

    /// Mean of the hidden states over real tokens, L2-normalised: the sentence embedding of
    /// sentence-transformers (`[batch, hidden]`).
    pub fn sentence_embedding(&self, input: &Encoded<B>) -> Tensor<B, 2> {
        mean_pool_normalized(self.forward(input), &input.mask)
    }

    /// The GL(h) blocks of every layer: (W_Q, W_K) and (W_V, W_Oᵀ) per head.
    pub fn symmetries(&self, prefix: &str, folding: BiasFolding) -> Vec<Symmetry> {
        self.encoder
            .layer
            .iter()
            .enumerate()
            .flat_map(|(i, layer)| layer.symmetries(&format!("{prefix}encoder.layer.{i}"), folding))
            .collect()
    }
}

impl<B: Backend> BertLayer<B> {
    /// The layer's GL(h) blocks, (W_Q, W_K) and (W_V, W_Oᵀ) per head, for a layer whose
    /// parameter path is `path` (e.g. `bert.encoder.layer.5`).
    pub fn symmetries(&self, path: &str, folding: BiasFolding) -> [Symmetry; 2] {
        let heads = self.attention.self_attention.heads;
        let at = format!("{path}.attention");
        let attn = format!("{at}.self_attention");
        [
            Symmetry::attention_qk(
                format!("{at}.qk"),
                &format!("{attn}.query"),
                &format!("{attn}.key"),
                heads,
                folding,
            ),
            Symmetry::attention_vo(
                format!("{at}.vo"),
                &format!("{attn}.value"),
                &format!("{at}.output.dense"),
                heads,
                folding,
            ),
        ]
    }
}

/// A BERT encoder with a linear head on the sentence embedding.
#[derive(Module, Debug)]
pub struct BertClassifier<B: Backend> {
    /// The encoder.
    pub bert: BertModel<B>,
    /// `[hidden, classes]`.
    pub head: Linear<B>,
    /// Bias folding of the declared symmetries.
    #[module(skip)]
    pub folding: BiasFolding,
}

/// Encoded sentences with their labels.
#[derive(Debug, Clone)]
pub struct TextBatch<B: Backend> {
    /// The encoded sentences.
    pub input: Encoded<B>,
    /// `[batch]` class labels.
    pub labels: Tensor<B, 1, Int>,
}

impl<B: Backend> BertClassifier<B> {
    /// An encoder with a freshly initialised head for `classes` classes.
    pub fn new(bert: BertModel<B>, classes: usize, device: &B::Device) -> Self {
        let hidden = bert.embeddings.layer_norm.gamma.dims()[0];
        let head = crate::params::materialize(LinearConfig::new(hidden, classes).init(device));
        Self {
            bert,
            head,
            folding: BiasFolding::Fold,
        }
    }

    /// Class logits `[batch, classes]`.
    pub fn forward(&self, input: &Encoded<B>) -> Tensor<B, 2> {
        self.head.forward(self.bert.sentence_embedding(input))
    }
}

impl<B: Backend> Objective<B> for BertClassifier<B> {
    type Batch = TextBatch<B>;

    fn loss(&self, batch: &Self::Batch) -> Tensor<B, 1> {
        cross_entropy(self.forward(&batch.input), batch.labels.clone())
    }
}

impl<B: Backend> Symmetric for BertClassifier<B> {
    fn symmetries(&self) -> Vec<Symmetry> {
        self.bert.symmetries("bert.", self.folding)
    }
}
