//! Bad input gives a typed error whose message says what to do — never a panic or a NaN.

mod common;

use burn::module::Param;
use burn::prelude::{Int, Tensor};
use common::*;
use geosharp::geometry::{self, GeometryConfig, Metric, ZeroWeights};
use geosharp::measures::{
    AverageCase, Error, Landscape, Silent, WorstCase, average_case, worst_case,
};
use geosharp::models::{DiagonalNet, RegressionBatch, SequenceBatch, TinyAttentionConfig};
use geosharp::symmetry::{self, Factor, HeadAxis, Symmetric, Symmetry};

fn logistic(w: &[f64]) -> (Landscape<B32, Logistic<B32>>, LabelledPoints<B32>) {
    let model = Logistic::<B32> {
        w: Param::from_tensor(tensor1(w)),
    };
    let batch = LabelledPoints {
        x: tensor2(&[1.0, 2.0], 1),
        y: tensor1(&[1.0]),
    };
    (Landscape::new(model, &[]).unwrap(), batch)
}

fn measure(
    landscape: &Landscape<B32, Logistic<B32>>,
    batches: &[LabelledPoints<B32>],
    config: WorstCase,
) -> Result<f64, Error> {
    worst_case(landscape, batches, &config, &mut Silent).map(|r| r.sharpness)
}

#[test]
fn a_radius_that_is_not_positive_and_finite_is_refused() {
    let (landscape, batch) = logistic(&[0.5, 0.25]);
    for rho in [0.0, -0.1, f64::NAN, f64::INFINITY] {
        let err = measure(
            &landscape,
            std::slice::from_ref(&batch),
            WorstCase::new(rho, GeometryConfig::new(Metric::Adaptive)),
        )
        .unwrap_err();
        assert!(
            matches!(err, Error::InvalidRadius { name: "rho", .. }),
            "{err}"
        );
    }
    let config = AverageCase {
        sigma: -1.0,
        samples: 4,
        geometry: GeometryConfig::new(Metric::Adaptive),
        seed: 0,
    };
    let err = average_case(&landscape, &[batch], &config, &mut Silent).unwrap_err();
    assert!(
        matches!(err, Error::InvalidRadius { name: "sigma", .. }),
        "{err}"
    );
}

#[test]
fn an_empty_data_set_and_zero_iterations_are_refused() {
    let (landscape, batch) = logistic(&[0.5, 0.25]);
    let err = measure(
        &landscape,
        &[],
        WorstCase::new(0.1, GeometryConfig::new(Metric::Adaptive)),
    )
    .unwrap_err();
    assert_eq!(err, Error::EmptyData);
    let config = WorstCase::new(0.1, GeometryConfig::new(Metric::Adaptive)).with_iterations(0);
    let err = measure(&landscape, &[batch], config).unwrap_err();
    assert!(
        matches!(
            err,
            Error::TooFew {
                name: "iterations",
                min: 1,
                found: 0
            }
        ),
        "{err}"
    );
}

#[test]
fn a_zero_weight_under_the_adaptive_metric_is_refused_unless_frozen() {
    let (landscape, batch) = logistic(&[0.0, 0.25]);
    let err = measure(
        &landscape,
        std::slice::from_ref(&batch),
        WorstCase::new(0.1, GeometryConfig::new(Metric::Adaptive)),
    )
    .unwrap_err();
    let Error::Geometry(geometry::Error::ZeroWeight {
        block,
        count,
        first,
    }) = &err
    else {
        panic!("expected a zero-weight error, got {err}");
    };
    assert_eq!((block.as_str(), *count, *first), ("w", 1, 0));
    assert!(err.to_string().contains("--zero-weights freeze"), "{err}");
    // Frozen: only w₂ = 0.25 moves, δ₂ = −ρ·w₂ (margin term x₂ = 2): rise sp(1 − 0.05) − sp(1).
    let frozen = GeometryConfig::new(Metric::Adaptive).with_zero_weights(ZeroWeights::Freeze);
    let value = measure(&landscape, &[batch], WorstCase::new(0.1, frozen)).unwrap();
    let sp = |z: f64| (1.0 + (-z).exp()).ln();
    let margin = 0.5;
    assert!(
        (value - (sp(margin - 0.05) - sp(margin))).abs() < 1e-6,
        "{value}"
    );
}

#[test]
fn nan_weights_are_refused_naming_the_block() {
    let model = DiagonalNet::<B32>::new(tensor1(&[1.0, f64::NAN]), tensor1(&[1.0, 1.0]));
    let batch = RegressionBatch {
        x: tensor2(&[1.0, 1.0], 1),
        y: tensor1(&[1.0]),
    };
    let landscape = Landscape::new(model.clone(), &model.symmetries()).unwrap();
    for metric in [Metric::Adaptive, Metric::Inv, Metric::Euclidean] {
        let err = worst_case(
            &landscape,
            std::slice::from_ref(&batch),
            &WorstCase::new(0.1, GeometryConfig::new(metric)),
            &mut Silent,
        )
        .unwrap_err();
        assert!(
            matches!(
                &err,
                Error::Geometry(geometry::Error::NonFinite { count: 1, .. })
            ),
            "{metric}: {err}"
        );
    }
}

#[test]
fn head_counts_that_do_not_fit_the_weights_are_refused() {
    let mut model = TinyAttentionConfig {
        d_model: 8,
        heads: 2,
        classes: 3,
    }
    .init::<B32>(&Default::default());
    model.heads = 3;
    let err = Landscape::new(model.clone(), &model.symmetries()).unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Symmetry(symmetry::Error::HeadsDoNotDivide {
                size: 8,
                heads: 3,
                ..
            })
        ),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("is the head count from the same config?")
    );
    // G = query.weight split in heads of 8 columns, H = classifier.weight in heads of 3.
    let mismatched = Symmetry::GlPair {
        name: "bad".into(),
        g: Factor::new("query.weight", HeadAxis::Columns),
        h: Factor::new("classifier.weight", HeadAxis::Columns),
        heads: 1,
    };
    let err = Landscape::new(model.clone(), &[mismatched]).unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Symmetry(symmetry::Error::HeadDimMismatch { g: 8, h: 3, .. })
        ),
        "{err}"
    );
    let unknown = Symmetry::Rescale {
        name: "r".into(),
        u: "query.weight".into(),
        v: "nope".into(),
    };
    let err = Landscape::new(model, &[unknown]).unwrap_err();
    assert!(
        matches!(&err, Error::Symmetry(symmetry::Error::UnknownParameter { path, .. }) if path == "nope"),
        "{err}"
    );
}

#[test]
fn a_rank_deficient_attention_factor_is_refused_under_inv_and_mix() {
    let model = TinyAttentionConfig {
        d_model: 8,
        heads: 2,
        classes: 3,
    }
    .init::<B32>(&Default::default());
    let mut model = model;
    model.query.weight = Param::from_tensor(Tensor::zeros([8, 8], &Default::default()));
    model.query.bias = Some(Param::from_tensor(Tensor::zeros([8], &Default::default())));
    let landscape = Landscape::new(model.clone(), &model.symmetries()).unwrap();
    let batch = SequenceBatch {
        x: Tensor::ones([2, 3, 8], &Default::default()),
        labels: Tensor::<B32, 1, Int>::from_data([0, 1], &Default::default()),
    };
    for metric in [Metric::Inv, Metric::Mix] {
        let err = worst_case(
            &landscape,
            std::slice::from_ref(&batch),
            &WorstCase::new(0.1, GeometryConfig::new(metric)),
            &mut Silent,
        )
        .unwrap_err();
        assert!(
            matches!(
                &err,
                Error::Geometry(geometry::Error::RankDeficient {
                    side: 'G',
                    head: 0,
                    ..
                })
            ),
            "{metric}: {err}"
        );
    }
}
