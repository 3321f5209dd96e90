//! Cost of one Auto-PGD iteration on the real MiniLM-L6 checkpoint, per geometry, against one
//! forward+backward pass of the same batch.
//!
//! `cargo bench --bench bert [-- BATCH]` (default batch 128; needs `geosharp fetch`). The
//! per-iteration cost is (T(LONG) − T(SHORT)) / (LONG − SHORT) on one batch of MR training
//! sentences, so the frame and the final evaluation cancel, after an untimed warm-up search;
//! each T is the minimum of `REPEATS` runs, the two lengths alternating (one slow run on a
//! shared machine moved a single difference by half a forward+backward). The unit is one
//! forward and one backward pass with respect to every parameter
//! ([`Landscape::loss_and_gradient_at`]): the minimum of 3 at the start, and for each
//! geometry's ratio the same estimator applied to LONG and SHORT passes alone, timed between
//! its searches — like with like, so that neither the host's drift over the bench's minutes nor
//! the bias of a minimum against a mean (a single pass's minimum sat 5–10 % under a typical
//! pass on this shared machine) enters the ratio.
//!
//! Each geometry's line is followed by its own work in one iteration, stage by stage, timed
//! apart from the model (minimum of 5): the step v(ξ), the step's vector–Jacobian product,
//! the ascent direction (Riemannian gradient, horizontal projection, norm, normalisation) and
//! the update to ξ_{k+1}, plus moving the point and the gradient between block and parameter
//! coordinates. Their sum is what an iteration costs beyond a forward+backward pass, without
//! the noise of a difference of two long timings. `-- geometry` prints only these.

use std::time::Instant;

use geosharp::geometry::{GeometryConfig, Metric, Probes, Product, Tangent, ZeroWeights};
use geosharp::measures::{
    Inner, Landscape, Objective, Silent, WorstCase, ascent, next_iterate, project_to_ball,
    worst_case,
};
use geosharp::models::Packing;
use geosharp::models::layers::{gelu_by_ops, gelu_on_host};
use geosharp::symmetry::Symmetric;

mod common;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SHORT: usize = 2;
/// Eight iterations between the two lengths: on this 2-vCPU host one run in twenty is 5–10 %
/// slow, and over four iterations (LONG = 6) such a run moved a geometry's ratio by 0.1.
const LONG: usize = 10;
/// Each search length is timed this many times, alternately; the minimum of each counts.
const REPEATS: usize = 2;

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

/// The minimum over 5 runs of `f`, in milliseconds.
fn millis<T>(f: impl Fn() -> T) -> f64 {
    (0..5)
        .map(|_| seconds(|| drop(f())))
        .fold(f64::INFINITY, f64::min)
        * 1e3
}

/// Prints the geometry's own work in one Auto-PGD iteration, stage by stage, at a random
/// horizontal ξ on the ρ-sphere, against `fb`.
fn geometry_costs<M: Objective<common::B>>(
    landscape: &Landscape<common::B, M>,
    geometry: &Product<Inner<common::B>>,
    rho: f64,
    fb: f64,
) {
    let zero = Tangent::zeros_like(landscape.base());
    let sphere = |seed| {
        let z = Probes::new(seed).gaussian(&zero);
        project_to_ball(geometry, &geometry.whiten(&z), rho)
    };
    let (xi, xi_prev, egrad) = (sphere(1), sphere(2), Probes::new(3).gaussian(&zero));
    let layout = landscape.layout();
    let point = geometry.step(&xi);
    let flat = layout.scatter(point.clone());
    let (grad, gnorm) = ascent(geometry, &egrad);
    let dir = grad.scale_by(&gnorm.recip());
    let stages = [
        ("step", millis(|| geometry.step(&xi))),
        ("to parameters", millis(|| layout.scatter(point.clone()))),
        ("to blocks", millis(|| layout.gather(&flat))),
        ("step_vjp", millis(|| geometry.step_vjp(&xi, &egrad))),
        (
            "ascent",
            millis(|| {
                let (grad, gnorm) = ascent(geometry, &egrad);
                grad.scale_by(&gnorm.recip())
            }),
        ),
        (
            "update",
            millis(|| next_iterate(geometry, &xi, Some(&xi_prev), &dir, 0.2 * rho, 0.75, rho)),
        ),
    ];
    let total: f64 = stages.iter().map(|(_, t)| t).sum();
    let list: Vec<String> = stages
        .iter()
        .map(|(name, t)| format!("{name} {t:.1}"))
        .collect();
    println!(
        "  its own work: {} ms; {:.3} s in all = {:.1} % of forward+backward",
        list.join(", "),
        total / 1e3,
        100.0 * total / 1e3 / fb
    );
}

/// Writes the timed batch's token ids, mask and labels to `target/bert-bench-batch-BATCH.json`,
/// so that `benches/pytorch/reference.py` times the very same batch.
fn write_batch(data: &geosharp::models::TextBatch<common::B>, batch: usize) {
    let rows = |t: &burn::tensor::Tensor<common::B, 2, burn::tensor::Int>| {
        let [_, width] = t.dims();
        let v = t.to_data().convert::<i64>().into_vec::<i64>().expect("ids");
        v.chunks(width).map(<[i64]>::to_vec).collect::<Vec<_>>()
    };
    let mask = data.input.mask.clone().int();
    let labels = data.labels.to_data().convert::<i64>().into_vec::<i64>();
    let json = serde_json::json!({
        "ids": rows(&data.input.ids),
        "mask": rows(&mask),
        "labels": labels.expect("labels"),
    });
    let path = std::path::Path::new("target").join(format!("bert-bench-batch-{batch}.json"));
    match std::fs::write(&path, json.to_string()) {
        Ok(()) => println!(
            "the batch is in {} (for benches/pytorch/reference.py)",
            path.display()
        ),
        Err(e) => eprintln!("could not write {}: {e}", path.display()),
    }
}

fn main() {
    let batch = common::batch_from_args(128);
    // `-- geometry`: only the forward+backward and each geometry's own work, no searches.
    let geometry_only = std::env::args().any(|a| a == "geometry");
    let task = common::minilm_task();
    let device = Default::default();
    let batches = task.batches(batch, batch, &device).expect("batch");
    let data = &batches[0];
    let landscape =
        Landscape::new(task.model.clone(), &task.model.symmetries()).expect("landscape");
    // The token-wise layers see only the real tokens (`models::packing`).
    let real = Packing::from_mask(&data.input.mask).real();
    write_batch(data, batch);
    println!(
        "MiniLM-L6 + head ({} parameters), one MR batch of {} sentences × {} tokens ({} real)",
        landscape.table().numel(),
        batch,
        data.input.ids.dims()[1],
        real
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
    gelu_costs(real, fb);
    let mut adaptive = f64::NAN;
    for metric in [Metric::Adaptive, Metric::Inv, Metric::Mix] {
        let geometry = GeometryConfig::new(metric).with_zero_weights(ZeroWeights::Freeze);
        // The unit of this geometry's own work: the passes timed beside its searches (with
        // `-- geometry`, those at the start).
        let unit = if geometry_only {
            println!("{}", metric.measure_name());
            fb
        } else {
            // Dropped at once, so that the timed searches do not run beside a second frame;
            // `geometry_costs` builds its own afterwards.
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
            // The passes alone, timed by the same estimator, interleaved with the searches.
            let passes = |n| (0..n).map(|_| forward_backward()).sum::<f64>();
            let [mut long, mut short, mut long_fb, mut short_fb] = [f64::INFINITY; 4];
            for _ in 0..REPEATS {
                long = long.min(run(LONG));
                long_fb = long_fb.min(passes(LONG));
                short = short.min(run(SHORT));
                short_fb = short_fb.min(passes(SHORT));
            }
            let per = (long - short) / (LONG - SHORT) as f64;
            let local = (long_fb - short_fb) / (LONG - SHORT) as f64;
            if metric == Metric::Adaptive {
                adaptive = per;
            }
            println!(
                "{:<13} frame {:6.3} s | per iteration {:6.3} s = {:.3}× forward+backward ({:.3} s \
                 beside it), {:.3}× adaptive",
                metric.measure_name(),
                frame,
                per,
                per / local,
                local,
                per / adaptive
            );
            local
        };
        let product = landscape.geometry(&geometry).expect("frame");
        geometry_costs(&landscape, &product, 0.1, unit);
    }
}
