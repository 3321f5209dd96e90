//! The sharpness-aware optimisers: closed forms of the first perturbation, reductions between
//! rules, ρ = 0, horizontality, zero gradients, running statistics, accumulation and resume.

mod common;

use burn::module::{Module, Param};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig};
use burn::optim::{GradientsParams, Optimizer, SgdConfig};
use burn::prelude::{Backend, Tensor, TensorData};
use burn::tensor::TensorCreationOptions;
use common::optim::{batch, tiny, values};
use common::{B64, tensor1};
use geosharp::geometry::checks::{euclidean_norm, horizontal_residual};
use geosharp::geometry::{
    AdaptiveOffset, GeodesicStep, GeometryConfig, Metric, StepPolicy, Tangent, ZeroWeights,
};
use geosharp::host::{scalar, to_f64_vec};
use geosharp::measures::{Landscape, Objective};
use geosharp::models::{SequenceBatch, TinyAttention};
use geosharp::optim::{
    Mesa, Perturbation, Saf, SharpnessAware, TrajectoryConfig, ascent_direction, distillation,
};
use geosharp::params::ParamTable;
use geosharp::symmetry::Symmetric;

/// One parameter w ∈ ℝ² and the linear loss gᵀw, whose gradient is g everywhere.
#[derive(Module, Debug)]
struct Linear2<B: Backend> {
    w: Param<Tensor<B, 1>>,
}

fn linear2<B: Backend>(w: [f64; 2]) -> Linear2<B> {
    Linear2 {
        w: Param::from_tensor(tensor1(&w)),
    }
}

fn linear_loss<B: Backend>(m: &Linear2<B>, g: [f64; 2]) -> Tensor<B, 1> {
    (m.w.val() * tensor1::<B>(&g)).sum()
}

fn first_perturbation(rule: Perturbation, rho: f64) -> Vec<f64> {
    let model = linear2::<B64>([1.0, -2.0]);
    let g = [3.0, 4.0];
    let grads = GradientsParams::from_grads(linear_loss(&model, g).backward(), &model);
    let optim =
        SharpnessAware::new(SgdConfig::new().init::<B64, Linear2<B64>>(), rule, rho).unwrap();
    let perturbed = optim.perturb(&model, &grads).unwrap().model;
    let w = to_f64_vec(perturbed.w.val().inner());
    vec![w[0] - 1.0, w[1] + 2.0]
}

fn assert_close(found: &[f64], expected: &[f64], tol: f64, what: &str) {
    for (f, e) in found.iter().zip(expected) {
        assert!((f - e).abs() < tol, "{what}: {found:?} vs {expected:?}");
    }
}

#[test]
fn first_perturbations_match_their_closed_forms() {
    assert_close(
        &first_perturbation(Perturbation::sam(), 0.05),
        &[0.03, 0.04],
        1e-12,
        "SAM",
    );
    assert_close(
        &first_perturbation(Perturbation::asam(0.0), 0.05),
        &[0.0175562, 0.0936329],
        5e-8,
        "ASAM η = 0",
    );
    assert_close(
        &first_perturbation(Perturbation::asam(0.01), 0.05),
        &[0.0178090, 0.0940433],
        5e-8,
        "ASAM η = 0.01",
    );
    // RSAM: ε = −sign(1 − α) ρ Σ|g|^{2α} / ‖g‖^{2(α+1)} g, by hand in f64.
    let (alpha, rho) = (1.2, 0.65);
    let c = (3f64.powf(2.0 * alpha) + 4f64.powf(2.0 * alpha)) / 25f64.powf(alpha + 1.0);
    let expected = [rho * c * 3.0, rho * c * 4.0];
    assert_close(
        &first_perturbation(Perturbation::rsam(alpha).unwrap(), rho),
        &expected,
        1e-12,
        "RSAM",
    );
    // α < 1 flips the sign (s = +1): a descent-side perturbation.
    let low = first_perturbation(Perturbation::rsam(0.5).unwrap(), rho);
    assert!(low[0] < 0.0 && low[1] < 0.0, "RSAM α = 0.5: {low:?}");
}

#[test]
fn invalid_settings_are_refused_with_errors() {
    let base = || SgdConfig::new().init::<B64, Linear2<B64>>();
    for rho in [-0.1, f64::NAN, f64::INFINITY] {
        let e = SharpnessAware::new(base(), Perturbation::sam(), rho)
            .err()
            .expect("refused");
        assert!(e.to_string().contains("rho"), "{e}");
    }
    assert!(Perturbation::rsam(0.0).is_err());
    assert!(Perturbation::rsam(f64::NAN).is_err());
    let mut optim = SharpnessAware::new(base(), Perturbation::sam(), 0.1).unwrap();
    let e = optim
        .step(0.1, linear2::<B64>([1.0, 2.0]), 0, |m, _| {
            linear_loss(m, [1.0, 1.0])
        })
        .unwrap_err();
    assert!(e.to_string().contains("micro-batch"), "{e}");
    let e = optim
        .step(0.1, linear2::<B64>([1.0, 2.0]), 1, |m, _| {
            linear_loss(m, [1.0, 1.0]).mul_scalar(f64::NAN)
        })
        .unwrap_err();
    assert!(e.to_string().contains("NaN"), "{e}");
    assert!(
        Saf::<burn::backend::NdArray<f64>>::new(
            TrajectoryConfig::saf().with_lag(0),
            4,
            2,
            &Default::default()
        )
        .is_err()
    );
}

#[test]
fn geodesic_sam_with_elementwise_blocks_and_first_order_is_asam_without_offset() {
    let data = batch::<B64>(6, 5, 8, 3, 0.7);
    let model = tiny::<B64>(2);
    let grads = GradientsParams::from_grads(model.loss(&data).backward(), &model);
    let geodesic = Perturbation::Geometric(
        GeometryConfig::new(Metric::Mix)
            .with_steps(StepPolicy::all(GeodesicStep::FirstOrder))
            .with_zero_weights(ZeroWeights::Freeze),
    );
    let asam = Perturbation::asam_with(AdaptiveOffset {
        eta: 0.0,
        unscaled_biases: false,
    });
    let perturbed = |rule| {
        let optim = SharpnessAware::new(
            SgdConfig::new().init::<B64, TinyAttention<B64>>(),
            rule,
            0.1,
        )
        .unwrap();
        values(&optim.perturb(&model, &grads).unwrap().model)
    };
    // No symmetries declared: every block is elementwise.
    let (a, b) = (perturbed(geodesic), perturbed(asam));
    let w = values(&model);
    let mut moved = 0.0;
    for ((a, b), w) in a.iter().zip(&b).zip(&w) {
        for ((a, b), w) in a.iter().zip(b).zip(w) {
            assert!((a - b).abs() < 1e-14, "{a} vs {b}");
            moved += (a - w).abs();
        }
    }
    assert!(moved > 1e-3, "the perturbation is not trivial");
}

#[test]
fn geodesic_sam_perturbation_is_horizontal_with_riemannian_norm_rho() {
    let data = batch::<B64>(6, 5, 8, 3, 1.1);
    let model = tiny::<B64>(3);
    let symmetries = model.symmetries();
    let landscape = Landscape::new(model.clone(), &symmetries).unwrap();
    let (_, grad) = landscape.loss_and_gradient_at(landscape.base().to_vec(), &data);
    for metric in [Metric::Inv, Metric::Mix] {
        let config = GeometryConfig::new(metric).with_zero_weights(ZeroWeights::Freeze);
        let geometry = landscape.geometry(&config).unwrap();
        let rho = 0.05;
        let (xi, norm) = ascent_direction(&geometry, rho, &grad);
        assert!(norm > 1e-6);
        let found = scalar(geometry.norm(&xi));
        assert!((found - rho).abs() < 1e-12, "{metric}: ‖ξ‖_w = {found}");
        for b in 0..2 {
            let range = landscape.layout().parts_of(b);
            let r = horizontal_residual(
                &landscape.base()[range.clone()],
                &xi.parts[range.clone()],
                metric,
            );
            assert!(r < 1e-10, "{metric} block {b}: residual {r:e}");
        }
        // The wrapper's perturbed point is the second-order step of this ξ.
        let expected = geometry.step(&xi);
        let optim = SharpnessAware::new(
            SgdConfig::new().init::<B64, TinyAttention<B64>>(),
            Perturbation::geodesic(metric),
            rho,
        )
        .unwrap()
        .for_model(&model);
        let grads = GradientsParams::from_grads(model.loss(&data).backward(), &model);
        let perturbed = optim.perturb(&model, &grads).unwrap().model;
        let (table, flat) = ParamTable::read(&perturbed);
        assert_eq!(table.len(), landscape.table().len());
        let inner: Vec<_> = flat.into_iter().map(|v| v.inner()).collect();
        let found = landscape.layout().gather(&inner);
        let diff = Tangent::new(found).sub(&Tangent::new(expected.clone()));
        assert!(euclidean_norm(&diff.parts) < 1e-12 * euclidean_norm(&expected));
    }
    // A zero gradient gives a zero perturbation, not NaN.
    let geometry = landscape
        .geometry(&GeometryConfig::new(Metric::Inv))
        .unwrap();
    let (xi, norm) = ascent_direction(&geometry, 0.05, &Tangent::zeros_like(landscape.base()));
    assert_eq!(norm, 0.0);
    assert_eq!(euclidean_norm(&xi.parts), 0.0);
    let optim = SharpnessAware::new(
        SgdConfig::new().init::<B64, TinyAttention<B64>>(),
        Perturbation::geodesic(Metric::Mix),
        0.05,
    )
    .unwrap()
    .for_model(&model);
    let zero = GradientsParams::from_grads(model.loss(&data).mul_scalar(0.0).backward(), &model);
    let perturbed = optim.perturb(&model, &zero).unwrap().model;
    assert_eq!(values(&perturbed), values(&model));
}

#[test]
fn micro_batches_accumulate_to_the_full_batch_step() {
    let full = batch::<B64>(8, 5, 8, 3, 0.2);
    let half = |i: usize| SequenceBatch::<B64> {
        x: full.x.clone().slice([4 * i..4 * i + 4, 0..5, 0..8]),
        labels: full.labels.clone().narrow(0, 4 * i, 4),
    };
    let start = tiny::<B64>(4);
    let run = |micro: usize| {
        let mut optim = SharpnessAware::new(
            SgdConfig::new().init(),
            Perturbation::geodesic(Metric::Mix),
            0.1,
        )
        .unwrap()
        .for_model(&start);
        let (model, report) = optim
            .step(0.5, start.clone(), micro, |m, i| {
                if micro == 1 {
                    m.loss(&full)
                } else {
                    m.loss(&half(i))
                }
            })
            .unwrap();
        (values(&model), report)
    };
    let ((one, r1), (two, r2)) = (run(1), run(2));
    assert!((r1.loss - r2.loss).abs() < 1e-12);
    assert!((r1.perturbed_loss - r2.perturbed_loss).abs() < 1e-12);
    assert!(
        r1.perturbed_loss > r1.loss,
        "the ascent step raises the loss"
    );
    for (a, b) in one.iter().flatten().zip(two.iter().flatten()) {
        assert!((a - b).abs() < 1e-12, "{a} vs {b}");
    }
}

/// Linear → BatchNorm → Linear, to watch running statistics.
#[derive(Module, Debug)]
struct Normed<B: Backend> {
    input: Linear<B>,
    norm: BatchNorm<B>,
    output: Linear<B>,
}

impl<B: Backend> Normed<B> {
    fn new() -> Self {
        let device = Default::default();
        geosharp::params::seeded::<B, _>(&device, 5, || {
            geosharp::params::materialize(Self {
                input: LinearConfig::new(4, 6).init(&device),
                norm: BatchNormConfig::new(6).init(&device),
                output: LinearConfig::new(6, 1).init(&device),
            })
        })
    }

    fn loss(&self, x: Tensor<B, 2>) -> Tensor<B, 1> {
        let [n, _] = x.dims();
        let h = self.input.forward(x).reshape([n, 6, 1]);
        let h = self.norm.forward(h).reshape([n, 6]);
        self.output.forward(h).square().mean()
    }
}

#[test]
fn running_statistics_are_untouched_by_the_perturbed_pass() {
    let x: Tensor<B64, 2> = Tensor::from_data(
        TensorData::new(
            (0..32)
                .map(|i| (i as f64 * 0.77).cos() * 3.0)
                .collect::<Vec<_>>(),
            [8, 4],
        ),
        TensorCreationOptions::float(),
    );
    let start = Normed::<B64>::new();
    // one plain step: the clean pass updates the running mean once
    let plain = {
        let model = Normed::<B64>::new();
        let grads = GradientsParams::from_grads(model.loss(x.clone()).backward(), &model);
        SgdConfig::new().init().step(0.1, model, grads)
    };
    let expected = to_f64_vec(plain.norm.running_mean.value_sync());
    let mut optim = SharpnessAware::new(SgdConfig::new().init(), Perturbation::sam(), 0.5).unwrap();
    let (model, report) = optim.step(0.1, start, 1, |m, _| m.loss(x.clone())).unwrap();
    assert!(report.perturbed_loss != report.loss);
    let found = to_f64_vec(model.norm.running_mean.value_sync());
    assert!(
        expected.iter().any(|m| m.abs() > 1e-3),
        "the clean pass moved the mean"
    );
    assert_eq!(
        found, expected,
        "the perturbed pass left the running mean alone"
    );
    assert_eq!(
        to_f64_vec(model.norm.running_var.value_sync()),
        to_f64_vec(plain.norm.running_var.value_sync())
    );
}

#[test]
fn distillation_is_zero_on_its_target_and_matches_the_kl_closed_form() {
    let logits = common::tensor2::<B64>(&[1.0, -1.0, 0.5, 2.0], 2);
    let same = distillation(logits.clone(), logits.clone(), 0.3, 5.0);
    assert!(scalar(same).abs() < 1e-15);
    // one sample, two classes: KL(p ‖ q) with p = softmax([0, 0]/τ) = (½, ½)
    let (tau, lambda) = (2.0, 0.5);
    let target = common::tensor2::<B64>(&[0.0, 0.0], 1);
    let student = common::tensor2::<B64>(&[2.0, 0.0], 1);
    let q1 = 1.0 / (1.0 + (-1.0f64).exp()); // softmax([1, 0])₀
    let kl = 0.5 * (0.5 / q1).ln() + 0.5 * (0.5 / (1.0 - q1)).ln();
    let found = scalar(distillation(target, student, lambda, tau));
    assert!((found - lambda * tau * tau * kl).abs() < 1e-14, "{found}");
}

#[test]
fn saf_targets_the_logits_of_lag_epochs_ago_and_mesa_averages_the_weights() {
    type I = burn::backend::NdArray<f64>;
    let config = TrajectoryConfig::saf().starting_at(2).with_lag(2);
    let mut saf = Saf::<I>::new(config, 4, 2, &Default::default()).unwrap();
    // Epoch e's logits for sample i are (e + i, −e).
    let logits = |e: usize, idx: &[usize]| {
        let v: Vec<f64> = idx
            .iter()
            .flat_map(|&i| [(e + i) as f64, -(e as f64)])
            .collect();
        common::tensor2::<B64>(&v, idx.len())
    };
    for e in 0..4 {
        for idx in [[2usize, 0], [3, 1]] {
            let term = saf.term(&idx, logits(e, &idx)).unwrap();
            if e < 2 {
                assert!(term.is_none(), "epoch {e}: off before the start epoch");
            } else {
                let expected = distillation(logits(e - 2, &idx), logits(e, &idx), 0.3, 5.0);
                let (f, x) = (scalar(term.expect("on")), scalar(expected));
                assert!((f - x).abs() < 1e-14 && f > 0.0, "epoch {e}: {f} vs {x}");
            }
        }
        saf.end_epoch();
    }
    assert!(saf.term(&[4], logits(0, &[0])).is_err());

    let mut mesa = Mesa::new(TrajectoryConfig::mesa().starting_at(0)).unwrap();
    let w0 = linear2::<B64>([1.0, 2.0]);
    let w1 = linear2::<B64>([3.0, -2.0]);
    assert!(!mesa.active());
    mesa.update(&w0);
    mesa.update(&w1);
    let beta = 0.9995;
    let found = to_f64_vec(mesa.teacher().unwrap().w.val());
    assert_close(
        &found,
        &[beta + (1.0 - beta) * 3.0, 2.0 * beta - 2.0 * (1.0 - beta)],
        1e-14,
        "EMA",
    );
    assert!(mesa.active());
}
