//! Cost of one Auto-PGD iteration on the real MiniLM-L6 checkpoint, per geometry, against one
//! forward+backward pass of the same batch.
//!
//! `cargo bench --bench bert [-- BATCH]` (default batch 128; needs `geosharp fetch`). The
//! per-iteration cost is (T(LONG) − T(SHORT)) / (LONG − SHORT) on one batch of MR training
//! sentences, so the frame and the final evaluation cancel, after an untimed warm-up search;
//! the unit is one forward and one backward pass with respect to every parameter
//! ([`Landscape::loss_and_gradient_at`]), by the same estimator applied to LONG and SHORT
//! passes alone, timed beside the searches — like with like, so that neither the host's drift
//! nor the bias of a minimum against a mean (a single pass's minimum sat 5–10 % under a typical
//! pass on this shared machine) enters the ratio.
//!
//! The bench runs `ROUNDS` rounds. In each, the three geometries take turns, the first one
//! rotating, and each times a LONG search, LONG passes, a SHORT search and SHORT passes: a
//! round's ratio compares timings of the same minute, and a geometry's ratio to adaptive
//! compares rounds of the same minutes. Each printed figure is the median over the rounds,
//! with every round's value beside it to show the spread. (Timing one geometry after another,
//! mix's ratio once moved from 1.055 to 1.188 between two runs with the same own work; minima
//! of each of the four timings taken separately pair timings of different minutes, and read
//! 1.206 for a geometry whose three rounds read 1.206, 1.042 and 1.044.)
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
/// Rounds of searches: in each, every geometry times both lengths and the passes beside them.
const ROUNDS: usize = 5;

/// One round of one geometry, in seconds: T(LONG) and T(SHORT) of the search and of as many
/// passes alone, timed one after another.
#[derive(Clone, Copy, Debug)]
struct Round {
    long: f64,
    long_fb: f64,
    short: f64,
    short_fb: f64,
}

impl Round {
    /// One iteration: (T(LONG) − T(SHORT)) / (LONG − SHORT).
    fn per_iteration(&self) -> f64 {
        (self.long - self.short) / (LONG - SHORT) as f64
    }

    /// One forward+backward pass, by the same estimator on the passes beside the searches.
    fn unit(&self) -> f64 {
        (self.long_fb - self.short_fb) / (LONG - SHORT) as f64
    }

    /// The round's iteration in forward+backward passes.
    fn ratio(&self) -> f64 {
        self.per_iteration() / self.unit()
    }
}

/// The median of `values` (the mean of the middle two for an even count).
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        0.5 * (values[n / 2 - 1] + values[n / 2])
    }
}

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
    let metrics = [Metric::Adaptive, Metric::Inv, Metric::Mix];
    let geometries = metrics.map(|m| GeometryConfig::new(m).with_zero_weights(ZeroWeights::Freeze));
    if geometry_only {
        for (metric, geometry) in metrics.iter().zip(&geometries) {
            println!("{}", metric.measure_name());
            let product = landscape.geometry(geometry).expect("frame");
            geometry_costs(&landscape, &product, 0.1, fb);
        }
        return;
    }
    // Each frame is dropped at once, so that the timed searches do not run beside a second
    // frame; `geometry_costs` builds its own afterwards.
    let frames = geometries.map(|g| {
        seconds(|| {
            landscape.geometry(&g).expect("frame");
        })
    });
    let run = |geometry: GeometryConfig, n| {
        let config = WorstCase::new(0.1, geometry).with_iterations(n);
        seconds(|| {
            worst_case(&landscape, std::slice::from_ref(data), &config, &mut Silent)
                .expect("measure");
        })
    };
    // A first, untimed search per geometry faults in the Auto-PGD state's and the frame's
    // memory, so that it is not charged to whichever timed run comes first.
    for &g in &geometries {
        run(g, SHORT);
    }
    // The passes alone, timed by the same estimator, interleaved with the searches.
    let passes = |n| (0..n).map(|_| forward_backward()).sum::<f64>();
    let mut rounds: [Vec<Round>; 3] = std::array::from_fn(|_| Vec::new());
    for round in 0..ROUNDS {
        // The geometries take turns within a round, the first one rotating, so that the host's
        // drift over the minutes falls on all of them alike.
        for turn in 0..metrics.len() {
            let i = (round + turn) % metrics.len();
            let long = run(geometries[i], LONG);
            let long_fb = passes(LONG);
            let short = run(geometries[i], SHORT);
            let short_fb = passes(SHORT);
            rounds[i].push(Round {
                long,
                long_fb,
                short,
                short_fb,
            });
        }
    }
    let of = |i: usize, f: fn(&Round) -> f64| rounds[i].iter().map(f).collect::<Vec<f64>>();
    for (i, (metric, geometry)) in metrics.iter().zip(&geometries).enumerate() {
        let ratios = of(i, Round::ratio);
        // Against adaptive round by round: the two searches ran within the same minutes.
        let to_adaptive: Vec<f64> = ratios
            .iter()
            .zip(of(0, Round::ratio))
            .map(|(r, a)| r / a)
            .collect();
        let unit = median(of(i, Round::unit));
        let list = |v: &[f64]| {
            v.iter()
                .map(|r| format!("{r:.3}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        println!(
            "{:<13} frame {:6.3} s | per iteration {:6.3} s = {:.3}× forward+backward ({:.3} s \
             beside it), {:.3}× adaptive (medians of {ROUNDS} rounds; round by round {} and {})",
            metric.measure_name(),
            frames[i],
            median(of(i, Round::per_iteration)),
            median(ratios.clone()),
            unit,
            median(to_adaptive.clone()),
            list(&ratios),
            list(&to_adaptive),
        );
        let product = landscape.geometry(geometry).expect("frame");
        geometry_costs(&landscape, &product, 0.1, unit);
    }
}
