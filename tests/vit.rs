//! The ViT declares its symmetries correctly: acting on every head's (Q, K) and (V, O) pairs
//! with random invertible matrices leaves the logits unchanged.

mod common;

use burn::prelude::Tensor;
use burn::tensor::Distribution;
use burn::tensor::TensorCreationOptions;
use common::B64;
use geosharp::host::to_f64_vec;
use geosharp::measures::Landscape;
use geosharp::models::{ImageBatch, VitConfig};
use geosharp::symmetry::{GroupElement, Symmetric, act};
use nalgebra::DMatrix;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution as _, StandardNormal};

/// A two-block ViT on 8 × 8 images: 3 heads of dimension 4.
fn tiny() -> VitConfig {
    VitConfig {
        image: 8,
        patch: 4,
        d_model: 12,
        heads: 3,
        depth: 2,
        mlp: 16,
        classes: 5,
    }
}

#[test]
fn gl_actions_on_every_head_leave_the_vit_function_unchanged() {
    let device = Default::default();
    let config = tiny();
    let model = config.init::<B64>(&device);
    let symmetries = model.symmetries();
    assert_eq!(symmetries.len(), 4, "a QK and a VO pair per block");
    // Under the generator lock, so that this draw never lands inside a seeded fixture's.
    let images: Tensor<B64, 3> = geosharp::params::drawing(|| {
        Tensor::random(
            [6, 8, 8],
            Distribution::Normal(0.0, 1.0),
            TensorCreationOptions::float(),
        )
    });
    let before = to_f64_vec(model.forward(images.clone()));

    let landscape = Landscape::new(model.clone(), &symmetries).unwrap();
    let mut rng = StdRng::seed_from_u64(3);
    let mut parts = landscape.base().to_vec();
    for block in 0..symmetries.len() {
        let per_head = (0..3)
            .map(|_| DMatrix::<f64>::from_fn(4, 4, |_, _| StandardNormal.sample(&mut rng)))
            .collect();
        parts = act(
            landscape.layout(),
            parts,
            block,
            &GroupElement::Gl(per_head),
        )
        .unwrap();
    }
    let moved = landscape.model_at(parts.clone());
    let weights_moved = parts
        .iter()
        .zip(landscape.base())
        .any(|(a, b)| to_f64_vec(a.clone()) != to_f64_vec(b.clone()));
    assert!(weights_moved);
    let after = to_f64_vec(moved.forward(images));
    let scale = before.iter().map(|x| x.abs()).fold(0.0, f64::max);
    for (a, b) in before.iter().zip(&after) {
        assert!((a - b).abs() < 1e-9 * scale.max(1.0), "{a} vs {b}");
    }
}

/// The gradient of the ViT's loss is the derivative of that loss: along a random direction V
/// over all parameters, ⟨∇L, V⟩ from autodiff matches the central difference
/// (L(w + hV) − L(w − hV)) / 2h in f64. Burn 0.21's own `gelu` fails this: its backward is the
/// derivative of the tanh approximation (off by up to 8.7e-4), which shows here as a relative
/// error of 5e-4, against 1e-8 with the exact `models::layers::gelu`.
#[test]
fn the_vit_gradient_matches_central_differences() {
    let device = Default::default();
    let config = tiny();
    // Pixels of scale 3 put many MLP pre-activations near ±2, where the tanh-based derivative
    // is furthest from the exact one.
    let (model, images) = geosharp::params::seeded::<B64, _>(&device, 11, || {
        let model = config.init::<B64>(&device);
        let images = Tensor::random(
            [6, 8, 8],
            Distribution::Normal(0.0, 3.0),
            TensorCreationOptions::float(),
        );
        (model, images)
    });
    let landscape = Landscape::new(model.clone(), &model.symmetries()).unwrap();
    let batch = ImageBatch {
        images,
        labels: Tensor::from_ints([0, 1, 2, 3, 4, 0], &device),
        indices: (0..6).collect(),
    };
    let direction: Vec<Tensor<_, 3>> = landscape
        .base()
        .iter()
        .map(|w| geosharp::params::drawing(|| w.random_like(Distribution::Normal(0.0, 1.0))))
        .collect();
    let (_, gradient) = landscape.loss_and_gradient_at(landscape.base().to_vec(), &batch);
    let analytic: f64 = gradient
        .parts
        .iter()
        .zip(&direction)
        .map(|(g, v)| to_f64_vec((g.clone() * v.clone()).sum())[0])
        .sum();
    // Pixels of scale 3 make the loss strongly curved along V: the central difference's
    // truncation error is 1e-2 relative at h = 1e-3 and 1e-8 at h = 1e-6, where f64 rounding
    // (≈ 1e-16 / h) is still 1e-10.
    let h = 1e-6;
    let at = |sign: f64| {
        let point = landscape
            .base()
            .iter()
            .zip(&direction)
            .map(|(w, v)| w.clone() + v.clone().mul_scalar(sign * h))
            .collect();
        to_f64_vec(landscape.loss_at(point, &batch))[0]
    };
    let numeric = (at(1.0) - at(-1.0)) / (2.0 * h);
    let error = (analytic - numeric).abs() / numeric.abs().max(1e-12);
    assert!(
        error < 1e-6,
        "⟨∇L, V⟩ = {analytic} but the central difference is {numeric} (relative error {error:e})"
    );
}
