//! Average-case sharpness and the diagonal-network study at CI size.

mod common;

use burn::module::Param;
use common::*;
use geosharp::geometry::{GeometryConfig, Metric};
use geosharp::measures::{AverageCase, Landscape, Silent, average_case};
use geosharp::studies::diagonal::{DiagonalStudyConfig, run};

#[test]
fn average_case_sharpness_of_a_quadratic_is_half_sigma_squared_trace() {
    // E ½ δᵀ diag(4, 1) δ with δ ~ N(0, σ² I) = ½ σ² · 5.
    let model = Quadratic::<B32> {
        delta: Param::from_tensor(tensor1(&[0.0, 0.0])),
        curvature: tensor1(&[4.0, 1.0]),
    };
    let landscape = Landscape::new(model, &[]).unwrap();
    let config = AverageCase {
        sigma: 0.1,
        samples: 4000,
        geometry: GeometryConfig::new(Metric::Euclidean),
        seed: 3,
    };
    let report = average_case(&landscape, &[()], &config, &mut Silent).unwrap();
    // Monte-Carlo standard error ≈ 0.025 · √34/5 / √4000 ≈ 4.6e-4.
    assert!(
        (report.sharpness - 0.025).abs() < 2e-3,
        "{}",
        report.sharpness
    );
}

#[test]
fn the_diagonal_study_gives_three_negative_correlations_at_ci_size() {
    let config = DiagonalStudyConfig {
        models: 20,
        ..DiagonalStudyConfig::default()
    };
    let study = run::<B32>(&config, &Default::default(), &mut Silent).unwrap();
    let t = study.kendall_tau;
    assert!(
        t.adaptive < -0.5 && t.geodesic_inv < -0.5 && t.geodesic_mix < -0.5,
        "{t:?}"
    );
    // No ties among 20 continuous values: τ-b equals τ-a.
    assert!((study.kendall_tau_b.adaptive - t.adaptive).abs() < 1e-12);
    // Adaptive and geodesic-inv sharpness of a diagonal network agree to first order in ρ.
    assert!((t.adaptive - t.geodesic_inv).abs() < 0.1, "{t:?}");
    // Every network trained to a small loss or used its whole budget.
    assert!(
        study
            .networks
            .iter()
            .all(|m| m.train_loss < 1e-2 && m.test_loss.is_finite())
    );
}
