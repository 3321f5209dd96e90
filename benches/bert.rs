//! Cost of one Auto-PGD iteration on the real MiniLM-L6 checkpoint, per geometry, against one
//! forward+backward pass of the same batch.
//!
//! `cargo bench --bench bert [-- BATCH]` (default batch 128; needs `geosharp fetch`). The
//! per-iteration cost is (T(LONG) − T(SHORT)) / (LONG − SHORT) on one batch of MR training
//! sentences, so the frame and the final evaluation cancel. The baseline is one forward and
//! one backward pass with respect to every parameter ([`Landscape::loss_and_gradient_at`]).

use std::time::Instant;

use geosharp::geometry::{GeometryConfig, Metric, ZeroWeights};
use geosharp::measures::{Landscape, Silent, WorstCase, worst_case};
use geosharp::symmetry::Symmetric;

mod common;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SHORT: usize = 2;
const LONG: usize = 6;

fn seconds(f: impl FnOnce()) -> f64 {
    let t = Instant::now();
    f();
    t.elapsed().as_secs_f64()
}

fn main() {
    let batch = common::batch_from_args(128);
    let task = common::minilm_task();
    let device = Default::default();
    let batches = task.batches(batch, batch, &device).expect("batch");
    let data = &batches[0];
    let landscape =
        Landscape::new(task.model.clone(), &task.model.symmetries()).expect("landscape");
    println!(
        "MiniLM-L6 + head ({} parameters), one MR batch of {} sentences × {} tokens",
        landscape.table().numel(),
        batch,
        data.input.ids.dims()[1]
    );
    let fwd_bwd: Vec<f64> = (0..3)
        .map(|_| {
            seconds(|| {
                // With respect to every parameter: the model as loaded has a frozen encoder
                // (the head was fitted on it), so its own `loss().backward()` is a forward pass.
                let (loss, gradient) =
                    landscape.loss_and_gradient_at(landscape.base().to_vec(), data);
                let _ = (loss.into_scalar(), gradient);
            })
        })
        .collect();
    let fb = fwd_bwd.iter().copied().fold(f64::INFINITY, f64::min);
    println!("forward+backward: {:.3} s (min of 3)", fb);
    let mut adaptive = f64::NAN;
    for metric in [Metric::Adaptive, Metric::Inv, Metric::Mix] {
        let geometry = GeometryConfig::new(metric).with_zero_weights(ZeroWeights::Freeze);
        let frame = seconds(|| {
            landscape.geometry(&geometry).expect("frame");
        });
        let run = |n| {
            let config = WorstCase::new(0.1, geometry).with_iterations(n);
            seconds(|| {
                worst_case(&landscape, std::slice::from_ref(data), &config, &mut Silent)
                    .expect("measure");
            })
        };
        let per = (run(LONG) - run(SHORT)) / (LONG - SHORT) as f64;
        if metric == Metric::Adaptive {
            adaptive = per;
        }
        println!(
            "{:<13} frame {:6.3} s | per iteration {:6.3} s = {:.3}× forward+backward, {:.3}× adaptive",
            metric.measure_name(),
            frame,
            per,
            per / fb,
            per / adaptive
        );
    }
}
