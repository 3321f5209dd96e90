//! Model-level invariance and reductions, in f64 (this binary uses only the f64 backend, so
//! Burn's per-device default dtype is f64 for every tensor it creates).

mod common;

use burn::prelude::{Int, Tensor};
use burn::tensor::{Distribution, TensorCreationOptions};
use common::B64;
use geosharp::geometry::{GeodesicStep, GeometryConfig, Metric, StepPolicy};
use geosharp::host::{scalar, upload};
use geosharp::measures::{Landscape, Objective, Silent, WorstCase, worst_case};
use geosharp::models::{
    DiagonalNet, RegressionBatch, SequenceBatch, TinyAttention, TinyAttentionConfig,
};
use geosharp::studies::invariance::{self, InvarianceConfig, MergeError};
use geosharp::symmetry::{BiasFolding, GroupElement, Symmetric, act};
use nalgebra::{DMatrix, DVector};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution as _, StandardNormal};

fn attention(seed: u64, folding: BiasFolding) -> (TinyAttention<B64>, SequenceBatch<B64>) {
    let device = Default::default();
    let (model, x) = geosharp::params::seeded::<B64, _>(&device, seed, || {
        let model = TinyAttentionConfig {
            d_model: 8,
            heads: 2,
            classes: 3,
        }
        .init::<B64>(&device);
        let x = Tensor::random(
            [12, 5, 8],
            Distribution::Normal(0.0, 1.0),
            TensorCreationOptions::float(),
        );
        (model, x)
    });
    let model = model.with_folding(folding);
    let labels = Tensor::<B64, 1, Int>::from_data([0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2], &device);
    (model, SequenceBatch { x, labels })
}

/// A ∈ GL(h) with singular values log-spread over [1, cond].
fn conditioned(rng: &mut StdRng, h: usize, cond: f64) -> DMatrix<f64> {
    let g = |rng: &mut StdRng| DMatrix::<f64>::from_fn(h, h, |_, _| StandardNormal.sample(rng));
    let (u, v) = (g(rng).qr().q(), g(rng).qr().q());
    let s = DVector::from_fn(h, |i, _| cond.powf(i as f64 / (h - 1) as f64));
    u * DMatrix::from_diagonal(&s) * v.transpose()
}

/// The model with one random A per head acting on both its QK and its VO pair.
fn act_on_heads(model: &TinyAttention<B64>, seed: u64, cond: f64) -> TinyAttention<B64> {
    let landscape = Landscape::new(model.clone(), &model.symmetries()).unwrap();
    let mut rng = StdRng::seed_from_u64(seed);
    let per_head: Vec<_> = (0..2).map(|_| conditioned(&mut rng, 4, cond)).collect();
    let mut parts = landscape.base().to_vec();
    for block in 0..2 {
        parts = act(
            landscape.layout(),
            parts,
            block,
            &GroupElement::Gl(per_head.clone()),
        )
        .unwrap();
    }
    landscape.model_at(parts)
}

fn sharpness<M: Objective<B64> + Symmetric>(model: &M, batch: &M::Batch, metric: Metric) -> f64 {
    let landscape = Landscape::new(model.clone(), &model.symmetries()).unwrap();
    let config = WorstCase::new(0.05, GeometryConfig::new(metric)).with_iterations(10);
    worst_case(
        &landscape,
        std::slice::from_ref(batch),
        &config,
        &mut Silent,
    )
    .unwrap()
    .sharpness
}

#[test]
fn geodesic_sharpness_is_invariant_under_gl_actions_with_condition_1e3_and_adaptive_is_not() {
    let (model, batch) = attention(1, BiasFolding::Fold);
    let moved = act_on_heads(&model, 2, 1e3);
    let (l0, l1) = (scalar(model.loss(&batch)), scalar(moved.loss(&batch)));
    assert!(
        (l0 - l1).abs() < 1e-10 * l0,
        "the loss must not change: {l0} vs {l1}"
    );
    for metric in [Metric::Inv, Metric::Mix] {
        let (s0, s1) = (
            sharpness(&model, &batch, metric),
            sharpness(&moved, &batch, metric),
        );
        assert!(s0 > 0.0);
        assert!((s1 / s0 - 1.0).abs() < 1e-6, "{metric}: {s0} vs {s1}");
    }
    let (a0, a1) = (
        sharpness(&model, &batch, Metric::Adaptive),
        sharpness(&moved, &batch, Metric::Adaptive),
    );
    assert!(
        (a1 / a0 - 1.0).abs() > 0.1,
        "adaptive sharpness should move: {a0} vs {a1}"
    );
}

#[test]
fn unfolded_biases_keep_the_loss_invariant_but_not_the_measure() {
    // Act with the true group (biases transformed), then declare the biases elementwise.
    let (model, batch) = attention(3, BiasFolding::Fold);
    let moved = act_on_heads(&model, 4, 1e3).with_folding(BiasFolding::Unfolded);
    let model = model.with_folding(BiasFolding::Unfolded);
    let (l0, l1) = (scalar(model.loss(&batch)), scalar(moved.loss(&batch)));
    assert!((l0 - l1).abs() < 1e-10 * l0);
    let (s0, s1) = (
        sharpness(&model, &batch, Metric::Inv),
        sharpness(&moved, &batch, Metric::Inv),
    );
    // Folded, the same action leaves the measure unchanged to 1e-6 (test above).
    assert!(
        (s1 / s0 - 1.0).abs() > 1e-2,
        "unfolded biases should break invariance: {s0} vs {s1}"
    );
}

#[test]
fn geodesic_sharpness_with_only_elementwise_blocks_and_first_order_steps_is_adaptive_sharpness() {
    let (model, batch) = attention(5, BiasFolding::Fold);
    let adaptive = sharpness(&model, &batch, Metric::Adaptive);
    // The same model with no symmetry declared, under the inv metric with first-order steps.
    let landscape = Landscape::new(model.clone(), &[]).unwrap();
    let config = WorstCase::new(
        0.05,
        GeometryConfig::new(Metric::Inv).with_steps(StepPolicy::all(GeodesicStep::FirstOrder)),
    )
    .with_iterations(10);
    let reduced = worst_case(
        &landscape,
        std::slice::from_ref(&batch),
        &config,
        &mut Silent,
    )
    .unwrap()
    .sharpness;
    assert!(
        (reduced - adaptive).abs() < 1e-12 * adaptive,
        "{reduced} vs {adaptive}"
    );
}

#[test]
fn geodesic_mix_sharpness_of_an_interpolating_diagonal_net_is_two_rho_squared_lambda_max() {
    // Under mix the quotient is flat in β: S = max_{‖δ‖ ≤ √2ρ} (1/n)‖Xδ‖² = 2ρ² λ_max(XᵀX)/n.
    let (n, d, rho) = (6, 10, 0.05);
    let mut rng = StdRng::seed_from_u64(7);
    let x: Vec<f64> = (0..n * d)
        .map(|_| StandardNormal.sample(&mut rng))
        .collect();
    let beta: Vec<f64> = (0..d).map(|i| 0.5 + 0.1 * i as f64).collect();
    let xm = DMatrix::from_row_slice(n, d, &x);
    let y: Vec<f64> = (&xm * DVector::from_vec(beta.clone()))
        .iter()
        .copied()
        .collect();
    let lambda = (xm.transpose() * &xm).symmetric_eigen().eigenvalues.max();
    let opts = TensorCreationOptions::<B64>::float();
    let u: Vec<f64> = beta.iter().map(|b| b.sqrt() * 2.0).collect();
    let v: Vec<f64> = beta.iter().map(|b| b.sqrt() / 2.0).collect();
    let model = DiagonalNet::new(upload(&u, [d], opts.clone()), upload(&v, [d], opts.clone()));
    let batch = RegressionBatch {
        x: upload(&x, [n, d], opts.clone()),
        y: upload(&y, [n], opts),
    };
    let landscape = Landscape::new(model.clone(), &model.symmetries()).unwrap();
    let exact = StepPolicy {
        rescale: Some(GeodesicStep::Exact),
        ..StepPolicy::default()
    };
    let config = WorstCase::new(rho, GeometryConfig::new(Metric::Mix).with_steps(exact))
        .with_iterations(100);
    let s = worst_case(&landscape, &[batch], &config, &mut Silent)
        .unwrap()
        .sharpness;
    let expected = 2.0 * rho * rho * lambda / n as f64;
    assert!((s / expected - 1.0).abs() < 1e-3, "{s} vs {expected}");
}

#[test]
fn acting_with_gl_moves_the_weights_but_not_the_function() {
    let (model, batch) = attention(9, BiasFolding::Fold);
    let moved = act_on_heads(&model, 10, 100.0);
    let (w0, w1) = (model.query.weight.val(), moved.query.weight.val());
    let change = scalar((w0.clone() - w1).abs().max()) / scalar(w0.abs().max());
    assert!(change > 0.5, "the weights should change: relative {change}");
    let (y0, y1) = (
        model.forward(batch.x.clone()),
        moved.forward(batch.x.clone()),
    );
    assert!(scalar((y0 - y1).abs().max()) < 1e-10);
}

#[test]
fn gathering_and_scattering_block_coordinates_round_trips_every_parameter() {
    let (model, batch) = attention(11, BiasFolding::Fold);
    let landscape = Landscape::new(model.clone(), &model.symmetries()).unwrap();
    let back = landscape.model_at(landscape.base().to_vec());
    for (a, b) in [
        (model.query.weight.val(), back.query.weight.val()),
        (model.output.weight.val(), back.output.weight.val()),
    ] {
        assert_eq!(scalar((a - b).abs().max()), 0.0);
    }
    let qb = (model.query.bias.as_ref().unwrap().val() - back.query.bias.as_ref().unwrap().val())
        .abs()
        .max();
    assert_eq!(scalar(qb), 0.0);
    assert_eq!(scalar(model.loss(&batch)), scalar(back.loss(&batch)));
}

/// The experiment can be run a few scales at a time and merged: N depends on the scale, not on
/// its place in the list, and a known original sharpness stands in for measuring it again.
#[test]
fn an_invariance_run_split_over_scales_and_merged_equals_the_whole_run() {
    let (model, batch) = attention(21, BiasFolding::Fold);
    let batches = vec![batch];
    let config = InvarianceConfig {
        scales: vec![0.1, 1.0, 10.0],
        iterations: 3,
        ..InvarianceConfig::default()
    };
    let run = |config: InvarianceConfig| invariance::run(&model, &batches, &config, &mut Silent);
    let whole = run(config.clone()).unwrap();
    let last = run(InvarianceConfig {
        scales: vec![10.0],
        ..config.clone()
    })
    .unwrap();
    let rest = run(InvarianceConfig {
        scales: vec![1.0, 0.1],
        original: Some(last.original),
        ..config.clone()
    })
    .unwrap();
    let merged = invariance::merge(&[last, rest]).unwrap();
    assert_eq!(merged.scales, whole.scales);
    assert_eq!(merged.original, whole.original);
    assert_eq!(merged.ratios, whole.ratios);
    assert_eq!(merged.loss_rel_change, whole.loss_rel_change);
    // The ratios are not trivially equal: adaptive moves with a, geodesic does not.
    assert!(whole.ratios.adaptive.iter().any(|r| (r - 1.0).abs() > 0.1));

    let other = run(InvarianceConfig {
        scales: vec![5.0],
        rho: 0.2,
        ..config.clone()
    })
    .unwrap();
    assert_eq!(
        invariance::merge(&[whole.clone(), other]),
        Err(MergeError::Mismatch {
            index: 1,
            what: "the settings"
        })
    );
    assert_eq!(
        invariance::merge(&[whole.clone(), whole]),
        Err(MergeError::DuplicateScale(0.1))
    );
    assert_eq!(invariance::merge(&[]), Err(MergeError::Empty));
}
