//! Attention's fused softmax (`models::softmax`) against Burn's operations: values, gradients
//! under autodiff, the fallbacks, and its exponential.

mod common;

use burn::backend::{Autodiff, NdArray};
use burn::prelude::{Backend, Tensor, TensorData};
use burn::tensor::DType;
use common::entries;
use geosharp::models::softmax::{by_ops, exp_nonpositive, fuses, scaled_masked_softmax};
use std::f32::consts::LN_2;

type H = NdArray<f32>;
type A = Autodiff<NdArray<f32>>;

/// [n, heads, q, k] = [3, 4, 5, 37]: 37 keys leave a partial group of the sixteen sum lanes, and
/// 60 rows fall in one task of the fused loop while the larger case below spans several.
const SHAPE: [usize; 4] = [3, 4, 5, 37];
const SCALE: f64 = 0.353_553_390_593_273_8; // 1/√8

fn scores<B: Backend>(shape: [usize; 4], seed: u32) -> Tensor<B, 4> {
    let n: usize = shape.iter().product();
    // entries() spans [−10, 10]: scaled by 1/√8, rows whose probabilities range over e⁷.
    Tensor::from_data(
        TensorData::new(entries(n, seed), shape),
        &Default::default(),
    )
}

/// Additive mask [n, 1, 1, k]: sentence i has its last 7i keys padded (−10⁹).
fn mask<B: Backend>(n: usize, k: usize) -> Tensor<B, 4> {
    let values: Vec<f32> = (0..n)
        .flat_map(|i| (0..k).map(move |j| if j + 7 * i >= k { -1e9 } else { 0.0 }))
        .collect();
    Tensor::from_data(TensorData::new(values, [n, 1, 1, k]), &Default::default())
}

fn values<B: Backend, const D: usize>(x: Tensor<B, D>) -> Vec<f32> {
    x.into_data().convert::<f32>().to_vec::<f32>().unwrap()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max)
}

#[test]
fn the_fused_forward_pass_is_burn_s_softmax() {
    for shape in [SHAPE, [2, 12, 57, 57]] {
        let [n, _, _, k] = shape;
        let (s, m) = (scores::<H>(shape, 1), mask::<H>(n, k));
        assert!(fuses(&s, Some(&m)));
        let fused = values(scaled_masked_softmax(s.clone(), SCALE, Some(m.clone())));
        let reference = values(by_ops(s, SCALE, Some(m)));
        // Probabilities (≤ 1) to a few f32 ulps.
        let diff = max_abs_diff(&fused, &reference);
        assert!(diff < 3e-7, "fused vs Burn's softmax: {diff:e}");
        for (r, row) in fused.chunks(k).enumerate() {
            let sum: f64 = row.iter().map(|&p| p as f64).sum();
            assert!((sum - 1.0).abs() < 1e-6, "row {r} sums to {sum}");
            // Padded keys of sentence i (the last 7i) get probability zero.
            let i = r / (shape[1] * shape[2]);
            assert!(row[k - (7 * i).min(k)..].iter().all(|&p| p == 0.0));
        }
    }
}

#[test]
fn without_a_mask_the_fused_pass_is_burn_s_softmax() {
    let s = scores::<H>(SHAPE, 2);
    let fused = values(scaled_masked_softmax(s.clone(), SCALE, None));
    let reference = values(by_ops(s, SCALE, None));
    assert!(max_abs_diff(&fused, &reference) < 3e-7);
}

/// ∂/∂s of Σ w ⊙ softmax(c·s + m) for fixed weights w, fused and by Burn's autodiff.
fn gradients(transposed_weights: bool) -> (Vec<f32>, Vec<f32>) {
    let grad = |fused: bool| {
        let s = scores::<A>(SHAPE, 3).require_grad();
        let m = mask::<A>(SHAPE[0], SHAPE[3]);
        assert!(fuses(&s, Some(&m)));
        let y = if fused {
            scaled_masked_softmax(s.clone(), SCALE, Some(m))
        } else {
            by_ops(s.clone(), SCALE, Some(m))
        };
        // A transposed weight makes the incoming gradient a strided view: the fused backward
        // pass then falls back to Burn's operations.
        let [n, h, q, k] = SHAPE;
        let w = if transposed_weights {
            scores::<A>([n, h, k, q], 4).swap_dims(2, 3)
        } else {
            scores::<A>(SHAPE, 4)
        };
        assert_eq!(w.dims(), [n, h, q, k]);
        let grads = (y * w).sum().backward();
        values(s.grad(&grads).expect("a gradient for the scores"))
    };
    (grad(true), grad(false))
}

#[test]
fn the_fused_backward_pass_is_burn_s_gradient() {
    for transposed in [false, true] {
        let (fused, reference) = gradients(transposed);
        let scale = reference.iter().fold(0.0f32, |a, g| a.max(g.abs()));
        assert!(scale > 0.1, "a gradient worth comparing: max |g| = {scale}");
        let diff = max_abs_diff(&fused, &reference);
        assert!(
            diff < 2e-6 * scale,
            "fused vs Burn's gradient (transposed dy: {transposed}): {diff:e} of {scale}"
        );
    }
}

#[test]
fn a_nan_score_spoils_its_row_only() {
    let mut s = entries(SHAPE.iter().product(), 5);
    s[40] = f32::NAN; // row 1 (of 37 keys)
    let s = Tensor::<H, 4>::from_data(TensorData::new(s, SHAPE), &Default::default());
    let y = values(scaled_masked_softmax(
        s,
        SCALE,
        Some(mask::<H>(SHAPE[0], SHAPE[3])),
    ));
    let k = SHAPE[3];
    assert!(y[k..2 * k].iter().all(|p| p.is_nan()));
    assert!(y[..k].iter().chain(&y[2 * k..]).all(|p| p.is_finite()));
}

#[test]
fn other_operands_take_burn_s_operations() {
    // f64 tensors, a mask that needs a gradient, a mask of another shape.
    let s64 = scores::<H>(SHAPE, 6).cast(DType::F64);
    assert!(!fuses(&s64, None));
    let y = values(scaled_masked_softmax(s64.clone(), SCALE, None));
    assert_eq!(y, values(by_ops(s64, SCALE, None)));
    let s = scores::<A>(SHAPE, 7);
    let m = mask::<A>(SHAPE[0], SHAPE[3]).require_grad();
    assert!(!fuses(&s, Some(&m)));
    let y = scaled_masked_softmax(s.clone(), SCALE, Some(m.clone()));
    let grads = (y * scores::<A>(SHAPE, 8)).sum().backward();
    assert!(m.grad(&grads).is_some(), "the mask keeps its gradient");
    let wide = mask::<H>(1, SHAPE[3]).expand([SHAPE[0], SHAPE[1], 1, SHAPE[3]]);
    assert!(!fuses(&scores::<H>(SHAPE, 9), Some(&wide)));
    let y = values(scaled_masked_softmax(
        scores::<H>(SHAPE, 9),
        SCALE,
        Some(wide.clone()),
    ));
    assert_eq!(y, values(by_ops(scores::<H>(SHAPE, 9), SCALE, Some(wide))));
}

#[test]
fn the_exponential_is_accurate_to_two_ulps_on_its_domain() {
    // Every 2⁻¹⁰ on [−87, 0], and the f32 neighbours of a few awkward points.
    let mut xs: Vec<f32> = (0..=87 * 1024).map(|i| -(i as f32) / 1024.0).collect();
    for x in [-87.0f32, -0.5 * LN_2, -LN_2, -1e-30, -0.0] {
        xs.extend([x, f32::from_bits(x.to_bits() + 1), x.next_up()]);
    }
    for x in xs.into_iter().filter(|&x| (-87.0..=0.0).contains(&x)) {
        let (got, exact) = (exp_nonpositive(x) as f64, (x as f64).exp());
        // One ulp of the exact value's binade, as f32 spaces it.
        let ulp = f32::EPSILON as f64 * 2f64.powi(exact.log2().floor() as i32);
        assert!(
            (got - exact).abs() <= 2.0 * ulp,
            "exp({x}) = {got}, exactly {exact}"
        );
    }
    assert_eq!(exp_nonpositive(-87.5), 0.0);
    assert_eq!(exp_nonpositive(-1e9), 0.0);
    assert_eq!(exp_nonpositive(f32::NEG_INFINITY), 0.0);
    assert!(exp_nonpositive(f32::NAN).is_nan());
}
