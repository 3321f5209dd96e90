//! A small BERT, batches of given sentence lengths, and the padded encoder that packing
//! (`models::packing`) and fused attention (`models::fused::attention`) are checked against.
//!
//! The padded reference is the encoder as it ran before packing, written from the same
//! layers: every token-wise layer on the padded `[batch, tokens, hidden]` tensor, padded keys
//! masked.

use burn::module::Module;
use burn::prelude::{Backend, Int, Tensor, TensorData};
use burn::tensor::backend::AutodiffBackend;
use geosharp::measures::{Landscape, Objective};
use geosharp::models::bert::{additive_mask, mean_pool_normalized};
use geosharp::models::layers::{dense, gelu, multi_head};
use geosharp::models::{BertClassifier, BertConfig, BertModel, Encoded, TextBatch};

/// A small random BERT: 2 layers, 4 heads of 4, vocabulary 40, 12 positions.
pub fn small_bert<B: Backend>(seed: u64) -> BertClassifier<B> {
    let device = Default::default();
    let config = BertConfig {
        vocab_size: 40,
        hidden_size: 16,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        intermediate_size: 24,
        max_position_embeddings: 12,
        ..BertConfig::default()
    };
    geosharp::params::seeded::<B, _>(&device, seed, || {
        BertClassifier::new(config.init(&device), 3, &device)
    })
}

/// A batch of sentences of `lengths` real tokens each, padded to the longest (pad id 0).
pub fn batch<B: Backend>(lengths: &[usize]) -> TextBatch<B> {
    let device = Default::default();
    let (n, t) = (lengths.len(), lengths.iter().copied().max().unwrap_or(0));
    let mut ids = vec![0i64; n * t];
    let mut mask = vec![0f64; n * t];
    for (s, &len) in lengths.iter().enumerate() {
        for p in 0..len {
            ids[s * t + p] = 1 + ((7 * s + 11 * p + 3) % 39) as i64;
            mask[s * t + p] = 1.0;
        }
    }
    let labels: Vec<i64> = (0..n).map(|s| (s % 3) as i64).collect();
    TextBatch {
        input: Encoded {
            ids: Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [n, t]), &device),
            types: Tensor::<B, 2, Int>::zeros([n, t], &device),
            mask: Tensor::from_data(TensorData::new(mask, [n, t]), &device),
        },
        labels: Tensor::<B, 1, Int>::from_data(TensorData::new(labels, [n]), &device),
    }
}

/// The encoder on the padded batch, every token-wise layer on `[batch, tokens, hidden]`.
pub fn padded_hidden_states<B: Backend>(bert: &BertModel<B>, input: &Encoded<B>) -> Tensor<B, 3> {
    let [n, t] = input.ids.dims();
    let positions = Tensor::<B, 1, Int>::arange(0..t as i64, &input.ids.device())
        .reshape([1, t])
        .expand([n, t]);
    let e = &bert.embeddings;
    let mut x = e.layer_norm.forward(
        e.word_embeddings.forward(input.ids.clone())
            + e.position_embeddings.forward(positions)
            + e.token_type_embeddings.forward(input.types.clone()),
    );
    let additive = additive_mask(&input.mask);
    for layer in &bert.encoder.layer {
        let sa = &layer.attention.self_attention;
        let context = multi_head(
            &sa.query,
            &sa.key,
            &sa.value,
            sa.heads,
            x.clone(),
            Some(additive.clone()),
        );
        let attended = layer
            .attention
            .output
            .layer_norm
            .forward(dense(&layer.attention.output.dense, context) + x);
        let expanded = gelu(dense(&layer.intermediate.dense, attended.clone()));
        x = layer
            .output
            .layer_norm
            .forward(dense(&layer.output.dense, expanded) + attended);
    }
    x
}

/// The classifier with the padded encoder: the reference objective.
#[derive(Module, Debug)]
pub struct Padded<B: Backend> {
    /// The classifier whose encoder runs padded.
    pub model: BertClassifier<B>,
}

impl<B: Backend> Objective<B> for Padded<B> {
    type Batch = TextBatch<B>;

    fn loss(&self, batch: &Self::Batch) -> Tensor<B, 1> {
        let hidden = padded_hidden_states(&self.model.bert, &batch.input);
        let logits = self
            .model
            .head
            .forward(mean_pool_normalized(hidden, &batch.input.mask));
        geosharp::models::loss::cross_entropy(logits, batch.labels.clone())
    }
}

/// The packed classifier's loss and gradient on sentences of `lengths` against the padded reference's, to `loss_tol`
/// (absolute) and `tol` (relative to 1 + |entry|).
pub fn packed_against_padded<B: AutodiffBackend>(lengths: &[usize], loss_tol: f64, tol: f64) {
    let model = small_bert::<B>(2);
    let batch = batch::<B>(lengths);
    let packed = Landscape::new(model.clone(), &[]).unwrap();
    let padded = Landscape::new(Padded { model }, &[]).unwrap();
    let (loss, gradient) = packed.loss_and_gradient_at(packed.base().to_vec(), &batch);
    let (ref_loss, ref_gradient) = padded.loss_and_gradient_at(padded.base().to_vec(), &batch);
    let (loss, ref_loss) = (f64s(loss)[0], f64s(ref_loss)[0]);
    assert!(
        (loss - ref_loss).abs() < loss_tol,
        "loss {loss} vs padded {ref_loss}"
    );
    assert_eq!(gradient.parts.len(), ref_gradient.parts.len());
    let mut largest = 0.0f64;
    for (g, r) in gradient.parts.iter().zip(&ref_gradient.parts) {
        let (g, r) = (f64s(g.clone()), f64s(r.clone()));
        assert_eq!(g.len(), r.len());
        for (a, b) in g.iter().zip(&r) {
            assert!(a.is_finite());
            assert!((a - b).abs() <= tol * (1.0 + b.abs()), "{a} vs {b}");
            largest = largest.max(b.abs());
        }
    }
    // The gradient is not trivially zero.
    assert!(largest > 1e-3, "largest gradient entry {largest}");
}

fn f64s<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f64> {
    t.into_data().convert::<f64>().into_vec::<f64>().unwrap()
}
