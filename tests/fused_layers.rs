//! The model's fused row operations (`models::fused`) against Burn's operations: attention's
//! softmax and LayerNorm — values, gradients under autodiff, the fallbacks, softmax's
//! exponential.

mod common;

use burn::backend::{Autodiff, NdArray};
use burn::prelude::{Backend, Tensor, TensorData};
use burn::tensor::DType;
use common::entries;
use geosharp::models::fused::layer_norm;
use geosharp::models::fused::softmax::{by_ops, exp_nonpositive, fuses, scaled_masked_softmax};
use geosharp::models::layers::LayerNorm;
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

// ---- LayerNorm ----------------------------------------------------------------------------

/// BERT's ε.
const EPS: f64 = 1e-12;

fn vector<B: Backend>(d: usize, seed: u32, offset: f32) -> Tensor<B, 1> {
    let v: Vec<f32> = entries(d, seed).iter().map(|x| x / 10.0 + offset).collect();
    Tensor::from_data(TensorData::new(v, [d]), &Default::default())
}

fn tensor3<B: Backend>(shape: [usize; 3], seed: u32) -> Tensor<B, 3> {
    let n = shape.iter().product();
    Tensor::from_data(
        TensorData::new(entries(n, seed), shape),
        &Default::default(),
    )
}

fn relative_diff(a: &[f32], b: &[f32]) -> (f32, f32) {
    let scale = b.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    (max_abs_diff(a, b) / scale.max(f32::MIN_POSITIVE), scale)
}

#[test]
fn fused_layer_norm_is_burn_s() {
    // 3 × 200 rows: more than one task of rows; d = 384 as in MiniLM, 37 to leave partial lanes.
    for [n, t, d] in [[3, 200, 384], [2, 5, 37]] {
        let x = tensor3::<H>([n, t, d], 11);
        let (gamma, beta) = (vector::<H>(d, 12, 1.0), vector::<H>(d, 13, 0.0));
        assert!(layer_norm::fuses(&x, &gamma, Some(&beta)));
        let fused = values(layer_norm::layer_norm(
            x.clone(),
            gamma.clone(),
            Some(beta.clone()),
            EPS,
        ));
        let reference = values(layer_norm::by_ops(x, gamma, Some(beta), EPS));
        let (diff, scale) = relative_diff(&fused, &reference);
        assert!(
            diff < 1e-6,
            "fused vs Burn's LayerNorm: {diff:e} of {scale}"
        );
    }
}

#[test]
fn the_module_is_burn_s_layer_norm_module() {
    use burn::module::Param;
    use burn::nn::LayerNormConfig;
    let d = 37;
    let mut burn_s = LayerNormConfig::new(d)
        .with_epsilon(1e-5)
        .init::<H>(&Default::default());
    let mut ours = LayerNorm::<H>::new(d, 1e-5, &Default::default());
    assert_eq!(values(ours.gamma.val()), vec![1.0; d]);
    for seed in [14, 15] {
        let gamma = vector::<H>(d, seed, 1.0);
        let beta = vector::<H>(d, seed + 10, 0.0);
        burn_s.gamma = Param::from_tensor(gamma.clone());
        burn_s.beta = Some(Param::from_tensor(beta.clone()));
        ours.gamma = Param::from_tensor(gamma);
        ours.beta = Some(Param::from_tensor(beta));
        let x = tensor3::<H>([2, 9, d], seed);
        let (diff, _) = relative_diff(&values(ours.forward(x.clone())), &values(burn_s.forward(x)));
        assert!(diff < 1e-6, "{diff:e}");
    }
}

/// ∂/∂(x, γ, β) of Σ w ⊙ LayerNorm(x), fused and by Burn's autodiff.
fn layer_norm_gradients(shape: [usize; 3], transposed_weights: bool) -> [(Vec<f32>, Vec<f32>); 3] {
    let grads = |fused: bool| {
        let d = shape[2];
        let x = tensor3::<A>(shape, 16).require_grad();
        let gamma = vector::<A>(d, 17, 1.0).require_grad();
        let beta = vector::<A>(d, 18, 0.0).require_grad();
        assert!(layer_norm::fuses(&x, &gamma, Some(&beta)));
        let y = if fused {
            layer_norm::layer_norm(x.clone(), gamma.clone(), Some(beta.clone()), EPS)
        } else {
            layer_norm::by_ops(x.clone(), gamma.clone(), Some(beta.clone()), EPS)
        };
        let [n, t, d] = shape;
        let w = if transposed_weights {
            tensor3::<A>([n, d, t], 19).swap_dims(1, 2)
        } else {
            tensor3::<A>(shape, 19)
        };
        let g = (y * w).sum().backward();
        [
            values(x.grad(&g).expect("∂/∂x")),
            values(gamma.grad(&g).expect("∂/∂γ")),
            values(beta.grad(&g).expect("∂/∂β")),
        ]
    };
    let (fused, reference) = (grads(true), grads(false));
    let [a, b, c] = fused;
    let [d, e, f] = reference;
    [(a, d), (b, e), (c, f)]
}

#[test]
fn fused_layer_norm_s_gradients_are_burn_s() {
    for (shape, transposed) in [
        ([3, 200, 384], false),
        ([2, 5, 37], false),
        ([2, 5, 37], true),
    ] {
        for (name, (fused, reference)) in ["x", "γ", "β"]
            .iter()
            .zip(layer_norm_gradients(shape, transposed))
        {
            let (diff, scale) = relative_diff(&fused, &reference);
            assert!(
                scale > 0.1,
                "a gradient worth comparing: max |∂/∂{name}| = {scale}"
            );
            assert!(
                diff < 1e-5,
                "∂/∂{name} {shape:?} (transposed dy: {transposed}): {diff:e} of {scale}"
            );
        }
    }
}

#[test]
fn a_constant_row_normalises_to_beta_with_finite_gradients() {
    let d = 37;
    let x = Tensor::<A, 3>::from_data(
        TensorData::new(vec![2.5f32; 2 * d], [1, 2, d]),
        &Default::default(),
    )
    .require_grad();
    let (gamma, beta) = (vector::<A>(d, 20, 1.0), vector::<A>(d, 21, 0.0));
    let y = layer_norm::layer_norm(x.clone(), gamma, Some(beta.clone()), EPS);
    let beta = values(beta);
    assert_eq!(values(y.clone()), [beta.clone(), beta].concat());
    let g = (y * tensor3::<A>([1, 2, d], 22)).sum().backward();
    assert!(values(x.grad(&g).unwrap()).iter().all(|v| v.is_finite()));
}

#[test]
fn other_layer_norm_operands_take_burn_s_operations() {
    let d = 37;
    let x = tensor3::<H>([2, 5, d], 23);
    let (gamma, beta) = (vector::<H>(d, 24, 1.0), vector::<H>(d, 25, 0.0));
    // No shift; f64.
    assert!(!layer_norm::fuses(&x, &gamma, None));
    let y = values(layer_norm::layer_norm(x.clone(), gamma.clone(), None, EPS));
    assert_eq!(
        y,
        values(layer_norm::by_ops(x.clone(), gamma.clone(), None, EPS))
    );
    let (x64, g64, b64) = (
        x.cast(DType::F64),
        gamma.cast(DType::F64),
        beta.cast(DType::F64),
    );
    assert!(!layer_norm::fuses(&x64, &g64, Some(&b64)));
    let y = values(layer_norm::layer_norm(
        x64.clone(),
        g64.clone(),
        Some(b64.clone()),
        EPS,
    ));
    assert_eq!(y, values(layer_norm::by_ops(x64, g64, Some(b64), EPS)));
}
