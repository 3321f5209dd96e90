//! The ViT declares its symmetries correctly: acting on every head's (Q, K) and (V, O) pairs
//! with random invertible matrices leaves the logits unchanged.

mod common;

use burn::prelude::Tensor;
use burn::tensor::Distribution;
use burn::tensor::TensorCreationOptions;
use common::B64;
use geosharp::host::to_f64_vec;
use geosharp::measures::Landscape;
use geosharp::models::VitConfig;
use geosharp::symmetry::{GroupElement, Symmetric, act};
use nalgebra::DMatrix;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution as _, StandardNormal};

#[test]
fn gl_actions_on_every_head_leave_the_vit_function_unchanged() {
    let device = Default::default();
    let config = VitConfig {
        image: 8,
        patch: 4,
        d_model: 12,
        heads: 3,
        depth: 2,
        mlp: 16,
        classes: 5,
    };
    let model = config.init::<B64>(&device);
    let symmetries = model.symmetries();
    assert_eq!(symmetries.len(), 4, "a QK and a VO pair per block");
    let images: Tensor<B64, 3> = Tensor::random(
        [6, 8, 8],
        Distribution::Normal(0.0, 1.0),
        TensorCreationOptions::float(),
    );
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
