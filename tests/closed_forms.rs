//! Worst-case sharpness against values computed by hand (the closed forms).
//!
//! The expected numbers come from these one-liners (NumPy):
//! * toy f = GHx: `(np.exp(-2*0.1/np.sqrt(2)) - 1.2)**2 - 0.04` = 0.0701420475
//! * logistic, x = (1, 2), w = (0.5, 0.25): with `sp = lambda z: np.log1p(np.exp(-z))`,
//!   L2 `sp(1 - 0.1*np.sqrt(5)) - sp(1)` = 0.0652174695,
//!   adaptive L2 `sp(1 - 0.1*np.linalg.norm([0.5, 0.5])) - sp(1)` = 0.0195138753
//! * quadratic ½δᵀdiag(4, 1)δ at 0: ½·4·0.1² = 0.02

mod common;

use approx::assert_relative_eq;
use burn::module::Param;
use common::*;
use geosharp::geometry::{GeodesicStep, GeometryConfig, Metric, StepPolicy};
use geosharp::measures::{Landscape, Objective, Silent, WorstCase, worst_case};
use geosharp::models::{DiagonalNet, RegressionBatch};
use geosharp::symmetry::Symmetric;

fn sharpness<M: Objective<B64> + Symmetric>(
    model: M,
    batch: M::Batch,
    rho: f64,
    config: GeometryConfig,
) -> f64 {
    let symmetries = model.symmetries();
    let landscape = Landscape::new(model, &symmetries).unwrap();
    let report = worst_case(
        &landscape,
        &[batch],
        &WorstCase::new(rho, config),
        &mut Silent,
    )
    .unwrap();
    report.sharpness
}

fn toy(g: f64, h: f64) -> f64 {
    let model = DiagonalNet::<B64>::new(tensor1(&[g]), tensor1(&[h]));
    let batch = RegressionBatch {
        x: tensor2(&[1.0], 1),
        y: tensor1(&[1.2]),
    };
    let config = GeometryConfig::new(Metric::Inv).with_steps(StepPolicy::all(GeodesicStep::Exact));
    sharpness(model, batch, 0.1, config)
}

#[test]
fn scalar_toy_under_the_inv_metric_with_exact_geodesics_is_0_070142() {
    assert_relative_eq!(toy(2.0, 0.5), 0.070_142_047_5, max_relative = 1e-6);
}

#[test]
fn scalar_toy_is_unchanged_by_rescaling_g_and_h() {
    for alpha in [0.25, 4.0] {
        assert_relative_eq!(
            toy(2.0 * alpha, 0.5 / alpha),
            0.070_142_047_5,
            max_relative = 1e-6
        );
    }
}

fn logistic(metric: Metric) -> f64 {
    let model = Logistic::<B64> {
        w: Param::from_tensor(tensor1(&[0.5, 0.25])),
    };
    let batch = LabelledPoints {
        x: tensor2(&[1.0, 2.0], 1),
        y: tensor1(&[1.0]),
    };
    sharpness(model, batch, 0.1, GeometryConfig::new(metric))
}

#[test]
fn logistic_l2_worst_case_sharpness_is_0_065217() {
    assert_relative_eq!(
        logistic(Metric::Euclidean),
        0.065_217_469_5,
        max_relative = 1e-6
    );
}

#[test]
fn logistic_adaptive_l2_worst_case_sharpness_is_0_019514() {
    assert_relative_eq!(
        logistic(Metric::Adaptive),
        0.019_513_875_3,
        max_relative = 1e-6
    );
}

#[test]
fn quadratic_at_its_minimum_has_worst_case_sharpness_rho_squared_lambda_max_over_two() {
    let model = Quadratic::<B64> {
        delta: Param::from_tensor(tensor1(&[0.0, 0.0])),
        curvature: tensor1(&[4.0, 1.0]),
    };
    let value = sharpness(model, (), 0.1, GeometryConfig::new(Metric::Euclidean));
    assert_relative_eq!(value, 0.02, max_relative = 1e-4);
}
