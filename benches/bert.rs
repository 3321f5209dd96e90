//! Cost of one Auto-PGD iteration on the real MiniLM-L6 checkpoint, per geometry, against one
//! forward+backward pass of the same batch.
//!
//! `cargo bench --bench bert [-- BATCH]` (default batch 128; needs `geosharp fetch`). The
//! per-iteration cost is (T(LONG) − T(SHORT)) / (LONG − SHORT) on one batch of MR training
//! sentences, so the frame and the final evaluation cancel, after an untimed warm-up search.
//! The baseline is one forward and one backward pass with respect to every parameter
//! ([`Landscape::loss_and_gradient_at`]): the minimum of 3 at the start, and for each geometry's
//! ratio the minimum of the two passes timed just before and just after its timed searches, so
//! that a shared machine's drift over the minutes the bench takes does not enter the ratio.

use std::time::Instant;

use geosharp::geometry::{GeometryConfig, Metric, ZeroWeights};
use geosharp::measures::{Landscape, Silent, WorstCase, worst_case};
use geosharp::models::layers::{gelu_by_ops, gelu_on_host};
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

/// The two GELU paths of `models::layers::gelu` (value and derivative, as a tracked forward
/// computes them) on one intermediate activation `[rows, 1536]` of MiniLM, min of 3; the model
/// has 6 of them per forward pass.
fn gelu_costs(rows: usize, fb: f64) {
    use burn::tensor::{Distribution, Tensor};
    type Inner = <common::B as burn::tensor::backend::AutodiffBackend>::InnerBackend;
    let x = Tensor::<Inner, 2>::random(
        [rows, 1536],
        Distribution::Normal(0.0, 1.0),
        &Default::default(),
    );
    let min3 = |f: &dyn Fn()| (0..3).map(|_| seconds(f)).fold(f64::INFINITY, f64::min);
    let host = min3(&|| {
        let _ = gelu_on_host(x.clone(), true);
    });
    let ops = min3(&|| {
        let (y, d) = gelu_by_ops(x.clone(), true);
        let _ = (y.into_data(), d.map(|d| d.into_data()));
    });
    println!(
        "GELU and GELU' on [{rows}, 1536]: vectorised on host {:.4} s, by element-wise ops {:.4} s \
         ({:.1}×); 6 layers: {:.1} % / {:.1} % of forward+backward",
        host,
        ops,
        ops / host,
        600.0 * host / fb,
        600.0 * ops / fb
    );
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
    let forward_backward = || {
        seconds(|| {
            // With respect to every parameter: the model as loaded has a frozen encoder
            // (the head was fitted on it), so its own `loss().backward()` is a forward pass.
            let (loss, gradient) = landscape.loss_and_gradient_at(landscape.base().to_vec(), data);
            let _ = (loss.into_scalar(), gradient);
        })
    };
    let fb = (0..3)
        .map(|_| forward_backward())
        .fold(f64::INFINITY, f64::min);
    println!("forward+backward: {:.3} s (min of 3)", fb);
    gelu_costs(batch * data.input.ids.dims()[1], fb);
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
        // A first, untimed search faults in the Auto-PGD state's and the frame's memory, so
        // that it is not charged to whichever of the two timed runs comes first.
        run(SHORT);
        let before = forward_backward();
        let per = (run(LONG) - run(SHORT)) / (LONG - SHORT) as f64;
        let local = before.min(forward_backward());
        if metric == Metric::Adaptive {
            adaptive = per;
        }
        println!(
            "{:<13} frame {:6.3} s | per iteration {:6.3} s = {:.3}× forward+backward ({:.3} s \
             around it), {:.3}× adaptive",
            metric.measure_name(),
            frame,
            per,
            per / local,
            local,
            per / adaptive
        );
    }
}
