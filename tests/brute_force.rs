//! Geodesic sharpness of one GL(h) block against a dense search of the perturbed loss, on an
//! attention model small enough to search (f64: this binary uses only the f64 backend).

mod common;

use std::f64::consts::PI;
use std::time::Instant;

use burn::prelude::{Int, Tensor};
use burn::tensor::{Distribution, TensorCreationOptions};
use common::B64;

/// The inner backend, where the geometry lives.
type F64 = burn::backend::NdArray<f64>;
use geosharp::geometry::{GeometryConfig, Metric, Product, Tangent};
use geosharp::host::scalar;
use geosharp::measures::{Landscape, Silent, WorstCase, worst_case_in};
use geosharp::models::{SequenceBatch, TinyAttention, TinyAttentionConfig};
use geosharp::symmetry::{BiasFolding, Symmetric};

/// A metric-orthonormal basis of the horizontal space of the active blocks (Gram–Schmidt on
/// projected random vectors; vectors whose residual vanishes are dependent and dropped).
fn horizontal_basis(
    geometry: &Product<F64>,
    like: &[Tensor<F64, 3>],
    tries: usize,
) -> Vec<Tangent<F64>> {
    let mut basis: Vec<Tangent<F64>> = Vec::new();
    for _ in 0..tries {
        // Under the generator lock, so that these draws never land inside a seeded fixture's.
        let z = Tangent::new(geosharp::params::drawing(|| {
            like.iter()
                .map(|p| {
                    Tensor::random(
                        p.shape(),
                        Distribution::Normal(0.0, 1.0),
                        TensorCreationOptions::float(),
                    )
                })
                .collect()
        }));
        let mut v = geometry.horizontal(&z);
        for e in &basis {
            v = v.axpy(-scalar(geometry.inner(&v, e)), e);
        }
        let n = scalar(geometry.norm(&v));
        if n > 1e-8 {
            basis.push(v.scale(1.0 / n));
        }
    }
    basis
}

/// Unit vector of S³ from hyperspherical angles.
fn s3(a: f64, b: f64, c: f64) -> [f64; 4] {
    [
        a.cos(),
        a.sin() * b.cos(),
        a.sin() * b.sin() * c.cos(),
        a.sin() * b.sin() * c.sin(),
    ]
}

#[test]
fn geodesic_sharpness_of_one_gl_block_is_the_dense_search_maximum() {
    let device = Default::default();
    let (model, x) = geosharp::params::seeded::<B64, _>(&device, 3, || {
        let model: TinyAttention<B64> = TinyAttentionConfig {
            d_model: 2,
            heads: 1,
            classes: 2,
        }
        .init(&device);
        let x = Tensor::random(
            [6, 3, 2],
            Distribution::Normal(0.0, 1.0),
            TensorCreationOptions::float(),
        );
        (model, x)
    });
    let model = model.with_folding(BiasFolding::Unfolded);
    let batch = SequenceBatch {
        x,
        labels: Tensor::<B64, 1, Int>::from_data([0, 1, 1, 0, 1, 0], &device),
    };
    let landscape = Landscape::new(model.clone(), &model.symmetries()).unwrap();
    let rho = 0.3;
    for metric in [Metric::Inv, Metric::Mix] {
        // The perturbed loss on this sphere has several local maxima (for mix, a single ascent
        // from ξ = 0 stops at 70 % of the global one); restarts find the global maximum.
        let mut config = WorstCase::new(rho, GeometryConfig::new(metric)).with_iterations(100);
        config.pgd.restarts = 8;
        let (geometry, kept) = landscape
            .geometry(&config.geometry)
            .unwrap()
            .restrict(|name| name == "qk");
        assert_eq!(kept, 1);
        let apgd = worst_case_in(
            &landscape,
            &geometry,
            std::slice::from_ref(&batch),
            &config,
            &mut Silent,
            Instant::now(),
        )
        .unwrap()
        .sharpness;

        // (2 + 2)·2 coordinates minus dim GL(2) = 4 horizontal directions.
        let basis = horizontal_basis(&geometry, landscape.base(), 8);
        assert_eq!(
            basis.len(),
            4,
            "{metric}: the horizontal space of one GL(2) pair is 4-dimensional"
        );
        let clean = scalar(landscape.loss_at(landscape.base().to_vec(), &batch));
        let rise = |c: [f64; 4]| {
            let mut xi = Tangent::zeros_like(landscape.base());
            for (e, ci) in basis.iter().zip(c) {
                xi = xi.axpy(rho * ci, e);
            }
            scalar(landscape.loss_at(geometry.step(&xi), &batch)) - clean
        };
        // Coarse grid on the sphere, then a finer grid around the best cell.
        let (n1, n2, n3) = (16, 16, 32);
        let mut best = (f64::NEG_INFINITY, (0.0, 0.0, 0.0));
        for i in 0..=n1 {
            for j in 0..=n2 {
                for k in 0..n3 {
                    let angles = (
                        PI * i as f64 / n1 as f64,
                        PI * j as f64 / n2 as f64,
                        2.0 * PI * k as f64 / n3 as f64,
                    );
                    let r = rise(s3(angles.0, angles.1, angles.2));
                    if r > best.0 {
                        best = (r, angles);
                    }
                }
            }
        }
        let (step1, step2, step3) = (PI / n1 as f64, PI / n2 as f64, 2.0 * PI / n3 as f64);
        let centre = best.1;
        for i in -8..=8 {
            for j in -8..=8 {
                for k in -8..=8 {
                    let a = centre.0 + step1 * i as f64 / 8.0;
                    let b = centre.1 + step2 * j as f64 / 8.0;
                    let c = centre.2 + step3 * k as f64 / 8.0;
                    best.0 = best.0.max(rise(s3(a, b, c)));
                }
            }
        }
        let dense = best.0;
        assert!(dense > 0.0);
        assert!(
            apgd >= dense * (1.0 - 1e-3),
            "{metric}: Auto-PGD {apgd} below the dense maximum {dense}"
        );
        assert!(
            apgd <= dense * (1.0 + 1e-2),
            "{metric}: Auto-PGD {apgd} above the dense maximum {dense}"
        );
    }
}
