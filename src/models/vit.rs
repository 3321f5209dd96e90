//! A small Vision Transformer for 28 × 28 grey images (Fashion-MNIST).
//!
//! image `[batch, 28, 28]` → non-overlapping p × p patches → linear patch embedding → a learned
//! class token prepended and learned position embeddings added → `depth` pre-LayerNorm
//! transformer blocks (multi-head self-attention, then a GELU MLP, each in a residual branch)
//! → LayerNorm of the class token → linear classifier.
//!
//! Every block's attention has the transformer's symmetries — per head GL(h) on (W_Q, W_K) and on
//! (W_V, W_Oᵀ), with the Q, K, V biases folded — which [`Symmetric`] declares, so geodesic
//! sharpness and geodesic SAM quotient them out. Parameter paths read like the checkpoint names
//! of timm's ViT (`blocks.0.attention.query.weight`, …).

use burn::module::{Module, Param};
use burn::nn::{Linear, LinearConfig};
use burn::prelude::{Backend, Int, Tensor};
use burn::tensor::Distribution;

use super::layers::{LayerNorm, dense, gelu, multi_head};

/// ε of every LayerNorm (Burn's and PyTorch's default).
const LAYER_NORM_EPS: f64 = 1e-5;
use super::loss::cross_entropy;
use crate::measures::Objective;
use crate::symmetry::{BiasFolding, Symmetric, Symmetry};

/// Sizes of a [`Vit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VitConfig {
    /// Side of the square input image.
    pub image: usize,
    /// Side of a square patch; must divide `image`.
    pub patch: usize,
    /// Width of the token vectors.
    pub d_model: usize,
    /// Attention heads; the head size is `d_model / heads`.
    pub heads: usize,
    /// Transformer blocks.
    pub depth: usize,
    /// Hidden width of the MLP.
    pub mlp: usize,
    /// Number of classes.
    pub classes: usize,
}

impl Default for VitConfig {
    /// 28 × 28 images in 7 × 7 patches (16 tokens + class token), width 64, 4 heads of 16,
    /// 2 blocks, MLP 128, 10 classes: 70 k parameters.
    fn default() -> Self {
        Self {
            image: 28,
            patch: 7,
            d_model: 64,
            heads: 4,
            depth: 2,
            mlp: 128,
            classes: 10,
        }
    }
}

impl VitConfig {
    /// The CI-sized model: width 16, 2 heads of 8, 1 block, MLP 32 (about 3.5 k parameters;
    /// a second per epoch on a few hundred images).
    pub fn tiny() -> Self {
        Self {
            d_model: 16,
            heads: 2,
            depth: 1,
            mlp: 32,
            ..Self::default()
        }
    }

    /// Patches per image.
    pub fn tokens(&self) -> usize {
        (self.image / self.patch).pow(2)
    }

    /// A randomly initialised model: Burn's default initialisers for linear layers, N(0, 0.02²)
    /// for the class token and position embeddings.
    ///
    /// # Panics
    /// If `patch` does not divide `image` or `heads` does not divide `d_model` (configuration
    /// errors caught by [`VitConfig::check`]).
    pub fn init<B: Backend>(&self, device: &B::Device) -> Vit<B> {
        self.check().expect("a valid ViT configuration");
        // The class token and position embeddings are drawn eagerly: under the generator lock.
        crate::params::drawing(|| self.init_unlocked(device))
    }

    /// The body of [`VitConfig::init`], drawing without the generator lock.
    fn init_unlocked<B: Backend>(&self, device: &B::Device) -> Vit<B> {
        let d = self.d_model;
        let linear = |i, o| LinearConfig::new(i, o).init(device);
        let normal = |shape: [usize; 3]| {
            Param::from_tensor(Tensor::random(
                shape,
                Distribution::Normal(0.0, 0.02),
                device,
            ))
        };
        let blocks = (0..self.depth)
            .map(|_| VitBlock {
                norm1: LayerNorm::new(d, LAYER_NORM_EPS, device),
                attention: VitAttention {
                    query: linear(d, d),
                    key: linear(d, d),
                    value: linear(d, d),
                    output: linear(d, d),
                    heads: self.heads,
                },
                norm2: LayerNorm::new(d, LAYER_NORM_EPS, device),
                fc1: linear(d, self.mlp),
                fc2: linear(self.mlp, d),
            })
            .collect();
        let model = Vit {
            patch_embed: linear(self.patch * self.patch, d),
            cls_token: normal([1, 1, d]),
            pos_embed: normal([1, self.tokens() + 1, d]),
            blocks,
            norm: LayerNorm::new(d, LAYER_NORM_EPS, device),
            head: linear(d, self.classes),
            patch: self.patch,
        };
        crate::params::materialize(model)
    }

    /// Checks that the sizes fit together.
    ///
    /// # Errors
    /// A message naming the mismatch.
    pub fn check(&self) -> Result<(), String> {
        if self.patch == 0 || self.image % self.patch != 0 {
            return Err(format!(
                "patch size {} must divide the image size {}",
                self.patch, self.image
            ));
        }
        if self.heads == 0 || self.d_model % self.heads != 0 {
            return Err(format!(
                "{} heads must divide the width {}",
                self.heads, self.d_model
            ));
        }
        Ok(())
    }
}

/// Multi-head self-attention with separate Q, K, V and output projections.
#[derive(Module, Debug)]
pub struct VitAttention<B: Backend> {
    /// Query projection `[d, d]` (Burn's `[in, out]`).
    pub query: Linear<B>,
    /// Key projection.
    pub key: Linear<B>,
    /// Value projection.
    pub value: Linear<B>,
    /// Output projection.
    pub output: Linear<B>,
    /// Number of heads.
    pub heads: usize,
}

impl<B: Backend> VitAttention<B> {
    /// softmax(Q Kᵀ / √h) V per head, concatenated, projected: `[n, t, d]` → `[n, t, d]`.
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let mixed = multi_head(&self.query, &self.key, &self.value, self.heads, x, None);
        dense(&self.output, mixed)
    }
}

/// A pre-LayerNorm transformer block.
#[derive(Module, Debug)]
pub struct VitBlock<B: Backend> {
    /// LayerNorm before attention.
    pub norm1: LayerNorm<B>,
    /// Self-attention.
    pub attention: VitAttention<B>,
    /// LayerNorm before the MLP.
    pub norm2: LayerNorm<B>,
    /// MLP expansion.
    pub fc1: Linear<B>,
    /// MLP projection.
    pub fc2: Linear<B>,
}

impl<B: Backend> VitBlock<B> {
    /// x + attn(LN(x)), then + MLP(LN(·)).
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let x = x.clone() + self.attention.forward(self.norm1.forward(x));
        let hidden = gelu(dense(&self.fc1, self.norm2.forward(x.clone())));
        x + dense(&self.fc2, hidden)
    }
}

/// The Vision Transformer.
#[derive(Module, Debug)]
pub struct Vit<B: Backend> {
    /// Linear embedding of a flattened patch.
    pub patch_embed: Linear<B>,
    /// The class token `[1, 1, d]`.
    pub cls_token: Param<Tensor<B, 3>>,
    /// Position embeddings `[1, tokens + 1, d]`.
    pub pos_embed: Param<Tensor<B, 3>>,
    /// Transformer blocks.
    pub blocks: Vec<VitBlock<B>>,
    /// Final LayerNorm.
    pub norm: LayerNorm<B>,
    /// Classifier.
    pub head: Linear<B>,
    /// Patch side.
    pub patch: usize,
}

/// A batch of images `[batch, side, side]` with labels, and which training samples they are.
#[derive(Debug, Clone)]
pub struct ImageBatch<B: Backend> {
    /// Normalised pixels.
    pub images: Tensor<B, 3>,
    /// Class labels.
    pub labels: Tensor<B, 1, Int>,
    /// Indices of the samples in their data set (for SAF's per-sample memory).
    pub indices: Vec<usize>,
}

impl<B: Backend> Vit<B> {
    /// Class logits `[batch, classes]`.
    pub fn forward(&self, images: Tensor<B, 3>) -> Tensor<B, 2> {
        let [n, side, _] = images.dims();
        let (p, g) = (self.patch, side / self.patch);
        let patches = images
            .reshape([n, g, p, g, p])
            .swap_dims(2, 3)
            .reshape([n, g * g, p * p]);
        let tokens = dense(&self.patch_embed, patches);
        let d = tokens.dims()[2];
        let cls = self.cls_token.val().repeat_dim(0, n);
        let mut x = Tensor::cat(vec![cls, tokens], 1) + self.pos_embed.val();
        for block in &self.blocks {
            x = block.forward(x);
        }
        let first = x.slice([0..n, 0..1, 0..d]).reshape([n, d]);
        self.head.forward(
            self.norm
                .forward(first.unsqueeze_dim::<3>(1))
                .reshape([n, d]),
        )
    }
}

impl<B: Backend> Objective<B> for Vit<B> {
    type Batch = ImageBatch<B>;

    fn loss(&self, batch: &Self::Batch) -> Tensor<B, 1> {
        cross_entropy(self.forward(batch.images.clone()), batch.labels.clone())
    }
}

impl<B: Backend> Symmetric for Vit<B> {
    fn symmetries(&self) -> Vec<Symmetry> {
        (0..self.blocks.len())
            .flat_map(|i| {
                let heads = self.blocks[i].attention.heads;
                let at = |p: &str| format!("blocks.{i}.attention.{p}");
                [
                    Symmetry::attention_qk(
                        format!("blocks.{i}.qk"),
                        &at("query"),
                        &at("key"),
                        heads,
                        BiasFolding::Fold,
                    ),
                    Symmetry::attention_vo(
                        format!("blocks.{i}.vo"),
                        &at("value"),
                        &at("output"),
                        heads,
                        BiasFolding::Fold,
                    ),
                ]
            })
            .collect()
    }
}
