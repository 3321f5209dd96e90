//! Cost of one Auto-PGD iteration per geometry, against one forward+backward pass.
//!
//! `cargo bench --bench autopgd` — for an attention model of transformer width, times a
//! forward+backward pass, the frame precomputation of each geometry, and the cost of one
//! Auto-PGD iteration of each geometry as (T(25 iterations) − T(5 iterations)) / 20, all
//! interleaved round-robin so that drift of a shared machine hits every configuration alike.
//! It prints the minimum and the median over rounds; the minimum is the robust figure for
//! deterministic work on a noisy machine.

use std::time::Instant;

use burn::backend::{Autodiff, NdArray};
use burn::prelude::{Backend, Int, Tensor};
use burn::tensor::Distribution;
use geosharp::geometry::{GeometryConfig, Metric};
use geosharp::measures::{Landscape, Objective, Silent, WorstCase, worst_case};
use geosharp::models::{SequenceBatch, TinyAttention, TinyAttentionConfig};
use geosharp::symmetry::Symmetric;

type B = Autodiff<NdArray<f32>>;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Per-iteration cost is (T(LONG) − T(SHORT)) / (LONG − SHORT): setup and frame cancel.
const SHORT: usize = 5;
const LONG: usize = 25;
const ROUNDS: usize = 5;

fn seconds(f: impl FnOnce()) -> f64 {
    let t = Instant::now();
    f();
    t.elapsed().as_secs_f64()
}

fn min_median(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[0], v[v.len() / 2])
}

fn main() {
    geosharp::allocator::keep_freed_memory();
    let (d, heads, tokens, batch) = (256, 8, 32, 32);
    let device = Default::default();
    B::seed(&device, 0);
    let model: TinyAttention<B> = TinyAttentionConfig {
        d_model: d,
        heads,
        classes: 4,
    }
    .init(&device);
    let x = Tensor::random([batch, tokens, d], Distribution::Normal(0.0, 1.0), &device);
    let labels = Tensor::<B, 1, Int>::from_data(
        (0..batch as i64)
            .map(|i| i % 4)
            .collect::<Vec<_>>()
            .as_slice(),
        &device,
    );
    let data = SequenceBatch { x, labels };
    let landscape = Landscape::new(model.clone(), &model.symmetries()).expect("valid model");
    println!(
        "attention model: d_model {d}, {heads} heads, {tokens} tokens, batch {batch}, {} parameters; \
         {ROUNDS} interleaved rounds",
        landscape.table().numel()
    );
    let metrics = [Metric::Adaptive, Metric::Inv, Metric::Mix];
    // The model's own forward and backward pass (its parameters require gradients).
    let fwd_bwd = || {
        let _ = model.loss(&data).backward();
    };
    fwd_bwd();
    let (mut base, mut frames, mut runs) = (Vec::new(), vec![Vec::new(); 3], vec![Vec::new(); 3]);
    for _ in 0..ROUNDS {
        base.push(seconds(fwd_bwd));
        for (i, metric) in metrics.iter().enumerate() {
            let geometry = GeometryConfig::new(*metric);
            frames[i].push(seconds(|| {
                landscape.geometry(&geometry).expect("frame");
            }));
            let run = |n| {
                let config = WorstCase::new(0.05, geometry).with_iterations(n);
                seconds(|| {
                    worst_case(
                        &landscape,
                        std::slice::from_ref(&data),
                        &config,
                        &mut Silent,
                    )
                    .expect("measure");
                })
            };
            let (short, long) = (run(SHORT), run(LONG));
            runs[i].push((long - short) / (LONG - SHORT) as f64);
        }
    }
    let (fb_min, fb_med) = min_median(base);
    println!(
        "forward+backward: min {:.2} ms, median {:.2} ms",
        fb_min * 1e3,
        fb_med * 1e3
    );
    let mut adaptive = (f64::NAN, f64::NAN);
    for (i, metric) in metrics.iter().enumerate() {
        let (frame, _) = min_median(frames[i].clone());
        let per = min_median(runs[i].clone());
        if *metric == Metric::Adaptive {
            adaptive = per;
        }
        println!(
            "{:<13} frame {:6.2} ms | per iteration min {:6.2} ms ({:.3}× fwd+bwd, {:.3}× adaptive), \
             median {:6.2} ms ({:.3}×, {:.3}×)",
            metric.measure_name(),
            frame * 1e3,
            per.0 * 1e3,
            per.0 / fb_min,
            per.0 / adaptive.0,
            per.1 * 1e3,
            per.1 / fb_med,
            per.1 / adaptive.1,
        );
    }
}
