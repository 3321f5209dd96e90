//! BERT on packed batches (`models::packing`) against the padded computation it replaces.
//!
//! The reference below is the encoder as it ran before packing, written from the same layers:
//! every token-wise layer on the padded `[batch, tokens, hidden]` tensor, padded keys masked.
//! Packing must give the same hidden states at real positions, zeros at padded ones, the same
//! loss and the same gradient for every parameter, and the same sentence embedding whatever
//! the padding; a batch without any real token must still give a finite answer.

mod common;

use burn::module::Module;
use burn::prelude::{Backend, Int, Tensor, TensorData};
use common::B64;
use geosharp::measures::{Landscape, Objective};
use geosharp::models::bert::{additive_mask, mean_pool_normalized};
use geosharp::models::layers::{dense, gelu, multi_head};
use geosharp::models::{BertClassifier, BertConfig, BertModel, Encoded, Packing, TextBatch};

/// A small random BERT: 2 layers, 4 heads of 4, vocabulary 40, 12 positions.
fn small_bert<B: Backend>(seed: u64) -> BertClassifier<B> {
    let device = Default::default();
    B::seed(&device, seed);
    let config = BertConfig {
        vocab_size: 40,
        hidden_size: 16,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        intermediate_size: 24,
        max_position_embeddings: 12,
        ..BertConfig::default()
    };
    BertClassifier::new(config.init(&device), 3, &device)
}

/// A batch of sentences of `lengths` real tokens each, padded to the longest (pad id 0).
fn batch<B: Backend>(lengths: &[usize]) -> TextBatch<B> {
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
fn padded_hidden_states<B: Backend>(bert: &BertModel<B>, input: &Encoded<B>) -> Tensor<B, 3> {
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
struct Padded<B: Backend> {
    model: BertClassifier<B>,
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

fn values<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f64> {
    t.into_data().convert::<f64>().into_vec::<f64>().unwrap()
}

/// Lengths with a full row, short rows and one of a single token.
const LENGTHS: [usize; 5] = [9, 3, 7, 1, 5];

#[test]
fn packed_hidden_states_are_the_padded_ones_at_real_tokens_and_zero_elsewhere() {
    let model = small_bert::<B64>(1);
    let batch = batch::<B64>(&LENGTHS);
    let packed = values(model.bert.hidden_states(&batch.input, usize::MAX));
    let padded = values(padded_hidden_states(&model.bert, &batch.input));
    let mask = values(batch.input.mask.clone());
    let d = 16;
    let mut worst = 0.0f64;
    for (position, &m) in mask.iter().enumerate() {
        for j in 0..d {
            let (p, r) = (packed[position * d + j], padded[position * d + j]);
            if m > 0.5 {
                worst = worst.max((p - r).abs());
            } else {
                assert_eq!(p, 0.0, "padded position {position} is not zero");
            }
        }
    }
    // f64 throughout: only the order of sums differs.
    assert!(worst < 1e-12, "max |packed − padded| = {worst:e}");
    let packing = Packing::<B64>::from_mask(&batch.input.mask);
    assert_eq!(packing.real(), LENGTHS.iter().sum::<usize>());
}

#[test]
fn packed_loss_and_every_gradient_equal_the_padded_ones() {
    let model = small_bert::<B64>(2);
    let batch = batch::<B64>(&LENGTHS);
    let packed = Landscape::new(model.clone(), &[]).unwrap();
    let padded = Landscape::new(Padded { model }, &[]).unwrap();
    let (loss, gradient) = packed.loss_and_gradient_at(packed.base().to_vec(), &batch);
    let (ref_loss, ref_gradient) = padded.loss_and_gradient_at(padded.base().to_vec(), &batch);
    let (loss, ref_loss) = (values(loss)[0], values(ref_loss)[0]);
    assert!(
        (loss - ref_loss).abs() < 1e-12,
        "loss {loss} vs padded {ref_loss}"
    );
    assert_eq!(gradient.parts.len(), ref_gradient.parts.len());
    let mut largest = 0.0f64;
    for (g, r) in gradient.parts.iter().zip(&ref_gradient.parts) {
        let (g, r) = (values(g.clone()), values(r.clone()));
        assert_eq!(g.len(), r.len());
        for (a, b) in g.iter().zip(&r) {
            assert!(a.is_finite());
            assert!((a - b).abs() <= 1e-10 * (1.0 + b.abs()), "{a} vs {b}");
            largest = largest.max(b.abs());
        }
    }
    // The gradient is not trivially zero.
    assert!(largest > 1e-3, "largest gradient entry {largest}");
}

#[test]
fn a_sentence_embedding_does_not_depend_on_the_batch_s_padding() {
    let model = small_bert::<B64>(3);
    let alone = values(model.bert.sentence_embedding(&batch::<B64>(&[4]).input));
    let padded = values(model.bert.sentence_embedding(&batch::<B64>(&[4, 11]).input));
    for (a, b) in alone.iter().zip(&padded[..16]) {
        assert!((a - b).abs() < 1e-12, "{a} vs {b}");
    }
}

#[test]
fn a_batch_without_real_tokens_gives_the_head_s_bias() {
    let model = small_bert::<B64>(4);
    let mut empty = batch::<B64>(&[3, 3]);
    empty.input.mask = empty.input.mask.zeros_like();
    let logits = values(model.forward(&empty.input));
    let bias = values(model.head.bias.as_ref().unwrap().val());
    assert_eq!(logits.len(), 2 * 3);
    for (row, logit) in logits.chunks(3).enumerate() {
        for (l, b) in logit.iter().zip(&bias) {
            assert!(
                l.is_finite() && (l - b).abs() < 1e-12,
                "row {row}: {l} vs {b}"
            );
        }
    }
    let loss = values(model.loss(&empty));
    assert!(loss[0].is_finite());
}
