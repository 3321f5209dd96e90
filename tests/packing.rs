//! BERT on packed batches (`models::packing`) against the padded computation it replaces.
//!
//! The reference (`common::bert`) is the encoder as it ran before packing, written from the
//! same layers: every token-wise layer on the padded `[batch, tokens, hidden]` tensor, padded
//! keys masked. In f64 attention is Burn's operations on both sides. Packing must give the same hidden states at real positions, zeros at padded ones, the same
//! loss and the same gradient for every parameter, and the same sentence embedding whatever
//! the padding; a batch without any real token must still give a finite answer.

mod common;

use burn::prelude::{Backend, Tensor};
use common::B64;
use common::bert::{batch, packed_against_padded, padded_hidden_states, small_bert};
use geosharp::measures::Objective;
use geosharp::models::Packing;

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
    packed_against_padded::<B64>(&LENGTHS, 1e-12, 1e-10);
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
