//! Attention within segments (`models::fused::attention`) against a direct f64 evaluation of
//! its formula and against the padded, masked attention of Burn's operations that it replaces
//! in BERT: values, gradients under autodiff, a whole small BERT, independence of the thread
//! count, the fallbacks.
//!
//! Only f32 backends here: Burn 0.21 keeps one default float dtype per device, set by the first
//! backend to create a tensor on it, and `NdArray<f32>` and `NdArray<f64>` share the CPU device,
//! so a test binary that also built f64 models could hand these tests f64 parameters.

mod common;

use burn::backend::{Autodiff, NdArray};
use burn::prelude::{Backend, Tensor, TensorData};
use burn::tensor::{DType, TensorCreationOptions};
use common::bert::packed_against_padded;
use common::{B32, entries};
use geosharp::models::Packing;
use geosharp::models::bert::additive_mask;
use geosharp::models::fused::attention::{fuses, segment_attention};
use geosharp::models::layers::attend;

type H = NdArray<f32>;
type A = Autodiff<NdArray<f32>>;

/// Segment lengths with an empty one, a single row, tile remainders (37, 5, 3), a multiple of
/// the sixteen lanes (64) and one just above it (17).
const SEGMENTS: [usize; 8] = [37, 0, 5, 1, 17, 64, 3, 16];

/// Head layouts: h = 8 (narrower than a register tile) and h = 32 (MiniLM's).
const LAYOUTS: [(usize, usize); 2] = [(3, 8), (2, 32)];

/// `[rows, d]` values in [−1, 1], so that scores span a few units and softmax rows are far from
/// one-hot.
fn matrix(rows: usize, d: usize, seed: u32) -> Vec<f32> {
    entries(rows * d, seed).iter().map(|x| x / 10.0).collect()
}

fn tensor<B: Backend>(values: &[f32], rows: usize, d: usize) -> Tensor<B, 2> {
    let data = TensorData::new(values.to_vec(), [rows, d]).convert::<B::FloatElem>();
    Tensor::from_data(data, TensorCreationOptions::float())
}

fn values<B: Backend, const D: usize>(x: Tensor<B, D>) -> Vec<f64> {
    x.into_data().convert::<f64>().to_vec::<f64>().unwrap()
}

/// softmax(c·Q Kᵀ) V per segment and head, in f64 with plain loops.
fn reference(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    d: usize,
    heads: usize,
    segments: &[usize],
) -> Vec<f64> {
    let h = d / heads;
    let c = 1.0 / (h as f64).sqrt();
    let mut out = vec![0.0; q.len()];
    let mut start = 0;
    for &len in segments {
        for head in 0..heads {
            let at = |x: &[f32], row: usize, e: usize| x[(start + row) * d + head * h + e] as f64;
            for i in 0..len {
                let scores: Vec<f64> = (0..len)
                    .map(|j| c * (0..h).map(|e| at(q, i, e) * at(k, j, e)).sum::<f64>())
                    .collect();
                let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let weights: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                let total: f64 = weights.iter().sum();
                for e in 0..h {
                    out[(start + i) * d + head * h + e] = (0..len)
                        .map(|j| weights[j] / total * at(v, j, e))
                        .sum::<f64>();
                }
            }
        }
        start += len;
    }
    out
}

#[test]
fn the_fused_forward_pass_is_the_formula() {
    let rows: usize = SEGMENTS.iter().sum();
    for (heads, h) in LAYOUTS {
        let d = heads * h;
        let (q, k, v) = (matrix(rows, d, 1), matrix(rows, d, 2), matrix(rows, d, 3));
        assert!(fuses::<H>() && fuses::<A>());
        let fused = segment_attention(
            tensor::<H>(&q, rows, d),
            tensor(&k, rows, d),
            tensor(&v, rows, d),
            heads,
            &SEGMENTS,
        )
        .expect("f32 on the ndarray backend fuses");
        let fused = values(fused);
        let expected = reference(&q, &k, &v, d, heads, &SEGMENTS);
        let worst = fused
            .iter()
            .zip(&expected)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(
            worst < 2e-6,
            "h = {h}: max |fused − f64 formula| = {worst:e}"
        );
        // Under autodiff the forward pass computes the same bits.
        let tracked = segment_attention(
            tensor::<A>(&q, rows, d).require_grad(),
            tensor(&k, rows, d),
            tensor(&v, rows, d),
            heads,
            &SEGMENTS,
        )
        .unwrap();
        assert_eq!(values(tracked), fused);
    }
}

/// The padded layout of `segments`: a mask `[n, t]` with the first L_i tokens of row i real.
fn packing<B: Backend>(segments: &[usize]) -> (Packing<B>, Tensor<B, 2>) {
    let t = segments.iter().copied().max().unwrap();
    let mask: Vec<f32> = segments
        .iter()
        .flat_map(|&len| (0..t).map(move |p| if p < len { 1.0 } else { 0.0 }))
        .collect();
    let mask = tensor::<B>(&mask, segments.len(), t);
    (Packing::from_mask(&mask), mask)
}

/// Output, ∂q, ∂k, ∂v of ℓ = Σ W ⊙ attention(q, k, v), where attention is `attention`.
fn with_gradients<B: burn::tensor::backend::AutodiffBackend>(
    d: usize,
    rows: usize,
    operands: [&[f32]; 4],
    attention: impl Fn(Tensor<B, 2>, Tensor<B, 2>, Tensor<B, 2>) -> Tensor<B, 2>,
    transposed: bool,
) -> [Vec<f64>; 4] {
    let [q, k, v, w] = operands;
    let [q, k, v] = [q, k, v].map(|x| tensor::<B>(x, rows, d).require_grad());
    let out = attention(q.clone(), k.clone(), v.clone());
    // With `transposed`, the gradient reaching the attention is a transposed (strided) view.
    let loss = if transposed {
        (out.clone().transpose() * tensor::<B>(w, rows, d).transpose()).sum()
    } else {
        (out.clone() * tensor::<B>(w, rows, d)).sum()
    };
    let grads = loss.backward();
    let grad = |x: &Tensor<B, 2>| values(x.grad(&grads).unwrap());
    [values(out), grad(&q), grad(&k), grad(&v)]
}

#[test]
fn the_fused_gradients_are_those_of_padded_masked_attention() {
    let rows: usize = SEGMENTS.iter().sum();
    for (heads, h) in LAYOUTS {
        let d = heads * h;
        let inputs = [1, 2, 3, 4].map(|seed| matrix(rows, d, seed));
        let operands = [&inputs[0][..], &inputs[1], &inputs[2], &inputs[3]];
        // The reference: Burn's batched products (around the fused softmax, checked on its own
        // in tests/fused_layers.rs) on the padded layout, padded keys masked.
        let (packing, mask) = packing::<A>(&SEGMENTS);
        let padded = |q, k, v| {
            let context = attend(
                packing.unpack(q),
                packing.unpack(k),
                packing.unpack(v),
                heads,
                Some(additive_mask(&mask)),
            );
            packing.pack(context)
        };
        let expected = with_gradients::<A>(d, rows, operands, padded, false);
        for transposed in [false, true] {
            let fused = |q, k, v| segment_attention(q, k, v, heads, &SEGMENTS).unwrap();
            let got = with_gradients::<A>(d, rows, operands, fused, transposed);
            for (name, (got, expected)) in ["output", "∂q", "∂k", "∂v"]
                .iter()
                .zip(got.iter().zip(&expected))
            {
                let scale = expected.iter().map(|x| x.abs()).fold(0.0, f64::max);
                assert!(scale > 1e-2, "{name} is not trivially zero");
                for (a, b) in got.iter().zip(expected) {
                    assert!(
                        (a - b).abs() <= 5e-6 * (1.0 + b.abs()),
                        "h = {h}, {name}: fused {a} vs padded {b}"
                    );
                }
            }
        }
    }
}

#[test]
fn the_result_does_not_depend_on_the_number_of_threads() {
    let rows: usize = SEGMENTS.iter().sum();
    let (heads, d) = (2, 64);
    let inputs = [5, 6, 7, 8].map(|seed| matrix(rows, d, seed));
    let operands = [&inputs[0][..], &inputs[1], &inputs[2], &inputs[3]];
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let fused = |q, k, v| segment_attention(q, k, v, heads, &SEGMENTS).unwrap();
            with_gradients::<A>(d, rows, operands, fused, false)
        })
    };
    assert_eq!(run(1), run(3));
}

#[test]
fn other_operands_are_left_to_the_caller() {
    let (rows, d) = (SEGMENTS.iter().sum::<usize>(), 16);
    let x = matrix(rows, d, 9);
    let f32s = || tensor::<H>(&x, rows, d);
    // f64 has no fused path.
    let x64 = f32s().cast(DType::F64);
    assert!(segment_attention(x64.clone(), x64.clone(), x64, 2, &SEGMENTS).is_none());
    // Segments that do not cover the rows, heads that do not divide d, mismatched shapes.
    assert!(segment_attention(f32s(), f32s(), f32s(), 2, &SEGMENTS[1..]).is_none());
    assert!(segment_attention(f32s(), f32s(), f32s(), 3, &SEGMENTS).is_none());
    assert!(segment_attention(f32s(), f32s(), f32s(), 0, &SEGMENTS).is_none());
    let short = tensor::<H>(&x[..(rows - 1) * d], rows - 1, d);
    assert!(segment_attention(f32s(), short, f32s(), 2, &SEGMENTS).is_none());
    // A transposed (strided) operand is not read in place.
    let square = tensor::<H>(&matrix(16, 16, 10), 16, 16).transpose();
    assert!(segment_attention(square.clone(), square.clone(), square, 2, &[16]).is_none());
}

/// A small BERT in f32 — its attention the fused one within sentences, since its parameters
/// are f32 — against the same model with padded, masked attention: the loss and the gradient
/// of every parameter (empty segments are covered above: the padded reference's gradient
/// through the L2 normalisation of an empty sentence is NaN).
#[test]
fn a_bert_with_fused_attention_has_the_padded_loss_and_gradients() {
    let model = common::bert::small_bert::<B32>(2);
    let query = &model.bert.encoder.layer[0].attention.self_attention.query;
    assert_eq!(query.weight.val().dtype(), DType::F32);
    assert!(fuses::<B32>());
    packed_against_padded::<B32>(&[9, 3, 12, 7, 1, 5], 1e-6, 2e-5);
}
