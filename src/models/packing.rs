//! Packed batches: a transformer's token-wise layers run on the real tokens only.
//!
//! A batch of sentences is padded to its longest sentence, and on real text most of that
//! rectangle is padding: in the default measurement (the first 1024 movie-review sentences in
//! batches of 128) 46 % of the positions are real tokens. Everything in a BERT layer except
//! attention's two batched products — the six linear layers, GELU, both LayerNorms, the
//! residual sums, and before them the embeddings — acts on each token alone, so it has no need
//! to see the padding. Those layers run on a `[real, d]` matrix of the real tokens
//! ([`Packing::pack`]). Attention either runs on the packed rows too, each sentence a segment
//! of [`Packing::segments`] (the fused operation of [`super::fused::attention`]), or — on
//! other backends — computes its scores and weighted sums on the padded `[batch, tokens]`
//! layout ([`Packing::unpack`], zeros at padded positions), where the additive mask hides
//! padded keys exactly as before. This is what "removing padding" in
//! NVIDIA's FasterTransformer and `unpad_input` in FlashAttention's BERT do.
//!
//! The result is the padded computation's, up to the order of floating-point sums: a padded
//! position never reaches the loss (its key gets exactly zero attention weight, since
//! `exp(−10⁹)` underflows to 0 in f32, and pooling skips it), so in the padded computation its
//! row added exact zeros to every gradient. Padded queries, whose outputs are discarded, now
//! see a zero vector instead of the projection's bias; that changes only what is discarded.
//!
//! Packing a *superset* of the real tokens is exact for the same reason, which is how a row
//! without any real token is handled: its first position is packed, so that no tensor is
//! empty.

use burn::prelude::{Backend, Int, Tensor};
use burn::tensor::{IndexingUpdateOp, TensorData};

/// Where the real tokens of a padded `[batch, tokens]` batch are.
#[derive(Debug, Clone)]
pub struct Packing<B: Backend> {
    /// `[real]`: the flat position `sentence · tokens + token` of each packed token, in order.
    rows: Tensor<B, 1, Int>,
    /// Sentences in the batch.
    batch: usize,
    /// Positions per sentence (the padded length).
    tokens: usize,
    /// Packed tokens.
    real: usize,
    /// Packed tokens per sentence, in order (they are consecutive rows of a packed tensor).
    segments: Vec<usize>,
}

impl<B: Backend> Packing<B> {
    /// The packing of an attention mask `[batch, tokens]` (1 for a real token, 0 for padding;
    /// an entry above ½ counts as real). Reads the mask on the host: one small transfer per
    /// batch.
    pub fn from_mask(mask: &Tensor<B, 2>) -> Self {
        let [batch, tokens] = mask.dims();
        let values = mask
            .to_data()
            .convert::<f32>()
            .into_vec::<f32>()
            .expect("an f32 mask");
        let mut rows: Vec<i64> = values
            .iter()
            .enumerate()
            .filter(|&(_, &m)| m > 0.5)
            .map(|(i, _)| i as i64)
            .collect();
        if rows.is_empty() && batch * tokens > 0 {
            // No real token at all: pack the first position, so that no tensor is empty
            // (exact, see the module docs).
            rows.push(0);
        }
        let real = rows.len();
        let mut segments = vec![0; batch];
        for &row in &rows {
            segments[row as usize / tokens] += 1;
        }
        Self {
            rows: Tensor::from_data(TensorData::new(rows, [real]), &mask.device()),
            batch,
            tokens,
            real,
            segments,
        }
    }

    /// Number of packed tokens.
    pub fn real(&self) -> usize {
        self.real
    }

    /// Packed tokens per sentence: the segments of consecutive packed rows that attend to
    /// each other ([`super::fused::attention`]).
    pub fn segments(&self) -> &[usize] {
        &self.segments
    }

    /// `[batch, tokens]` → `[real]`: the packed tokens' entries of a per-position tensor
    /// (token ids, types, positions).
    pub fn pack_ids(&self, ids: Tensor<B, 2, Int>) -> Tensor<B, 1, Int> {
        ids.reshape([self.batch * self.tokens])
            .select(0, self.rows.clone())
    }

    /// `[batch, tokens, d]` → `[real, d]`: the packed tokens' rows. Its gradient scatters
    /// back, with zeros at the other positions.
    pub fn pack(&self, x: Tensor<B, 3>) -> Tensor<B, 2> {
        let d = x.dims()[2];
        x.reshape([self.batch * self.tokens, d])
            .select(0, self.rows.clone())
    }

    /// `[real, d]` → `[batch, tokens, d]`, zeros at the positions not packed. Its gradient
    /// gathers the packed rows.
    pub fn unpack(&self, x: Tensor<B, 2>) -> Tensor<B, 3> {
        let d = x.dims()[1];
        // x's dtype, not the device's default: Burn 0.21 keeps one default float dtype per
        // device, and NdArray<f32> and NdArray<f64> share theirs.
        Tensor::<B, 2>::zeros([self.batch * self.tokens, d], (&x.device(), x.dtype()))
            .select_assign(0, self.rows.clone(), x, IndexingUpdateOp::Add)
            .reshape([self.batch, self.tokens, d])
    }
}
