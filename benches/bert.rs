//! Cost of one Auto-PGD iteration on the real MiniLM-L6 checkpoint, per geometry, against one
//! forward+backward pass of the same batch.
//!
//! `cargo bench --bench bert [-- BATCH]` (default batch 128; needs `geosharp fetch`). One
//! batch of MR training sentences; the unit is one forward and one backward pass with respect
//! to every parameter ([`Landscape::loss_and_gradient_at`]).
//!
//! Each Auto-PGD iteration is timed where it runs: the search's progress records when each
//! iteration ends, and iterations 1.. of a `ITERATIONS`-iteration search are the gaps between
//! those ends (so neither the frame, nor the clean loss, nor the final evaluation enters).
//! As many passes alone are timed right after the search (right before it in odd rounds). A
//! *round*'s ratio is the median iteration over the median pass, two sets of timings from the
//! same minute. The bench runs
//! `ROUNDS` rounds; in each the three geometries take turns, the first one rotating, so that
//! the host's drift falls on all three alike and a geometry's ratio to adaptive compares
//! rounds of the same minutes. Each printed figure is the median over the rounds, with every
//! round's value beside it to show the spread.
//!
//! (Earlier versions took (T(LONG) − T(SHORT)) / (LONG − SHORT) from whole searches: a
//! difference of two long timings, on this 2-vCPU host with ±10 % run-to-run noise, scattered
//! by ±0.1 — mix read 1.055 and 1.188 in two runs with the same own work — and minima of the
//! four timings taken separately paired timings of different minutes.)
//!
//! Each geometry's line is followed by its own work in one iteration, stage by stage, timed
//! apart from the model (minimum of 5): the step v(ξ), the step's vector–Jacobian product,
//! the ascent direction (Riemannian gradient, horizontal projection, norm) and
//! the update to ξ_{k+1}, plus moving the point and the gradient between block and parameter
//! coordinates. Their sum is what an iteration costs beyond a forward+backward pass, without
//! the noise of a difference of two long timings. `-- geometry` prints only these.

use std::time::Instant;

use geosharp::geometry::{GeometryConfig, Metric, Probes, Product, Tangent, ZeroWeights};
use geosharp::measures::{
    Inner, Landscape, Objective, Progress, WorstCase, ascent, next_iterate, project_to_ball,
    worst_case,
};
use geosharp::models::Packing;
use geosharp::models::layers::{gelu_by_ops, gelu_on_host};
use geosharp::symmetry::Symmetric;

mod common;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Iterations per timed search, and passes timed beside each.
const ITERATIONS: usize = 10;
/// Rounds of searches: in each, every geometry times one search and the passes beside it.
const ROUNDS: usize = 5;

/// Records when each Auto-PGD iteration ends (`worst_case` advances its progress once per
/// iteration), so that iterations are timed where they run.
struct Stopwatch(Vec<Instant>);

impl Progress for Stopwatch {
    fn advance(&mut self, _: u64) {
        self.0.push(Instant::now());
    }
}

/// One round of one geometry, in seconds: its search's iterations 1.. (each between two
/// consecutive ends; iteration 0 also takes the clean loss) and the passes timed beside it.
#[derive(Clone, Debug)]
struct Round {
    iterations: Vec<f64>,
    passes: Vec<f64>,
}

impl Round {
    /// One iteration: the median of the search's.
    fn per_iteration(&self) -> f64 {
        median(self.iterations.clone())
    }

    /// One forward+backward pass: the median of the passes beside the search.
    fn unit(&self) -> f64 {
        median(self.passes.clone())
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
    let (dir, _) = ascent(geometry, &egrad);
    let stages = [
        ("step", millis(|| geometry.step(&xi))),
        ("to parameters", millis(|| layout.scatter(point.clone()))),
        ("to blocks", millis(|| layout.gather(&flat))),
        ("step_vjp", millis(|| geometry.step_vjp(&xi, &egrad))),
        ("ascent", millis(|| ascent(geometry, &egrad))),
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
    let run = |geometry: GeometryConfig| {
        let config = WorstCase::new(0.1, geometry).with_iterations(ITERATIONS);
        let mut stopwatch = Stopwatch(Vec::with_capacity(ITERATIONS));
        worst_case(
            &landscape,
            std::slice::from_ref(data),
            &config,
            &mut stopwatch,
        )
        .expect("measure");
        let ends = stopwatch.0;
        assert_eq!(ends.len(), ITERATIONS, "one advance per iteration");
        ends.windows(2)
            .map(|w| (w[1] - w[0]).as_secs_f64())
            .collect::<Vec<f64>>()
    };
    // A first, untimed search per geometry faults in the Auto-PGD state's and the frame's
    // memory, so that it is not charged to whichever timed run comes first.
    for &g in &geometries {
        run(g);
    }
    let mut rounds: [Vec<Round>; 3] = std::array::from_fn(|_| Vec::new());
    for round in 0..ROUNDS {
        // The geometries take turns within a round, the first one rotating, so that the host's
        // drift over the minutes falls on all of them alike.
        for turn in 0..metrics.len() {
            let i = (round + turn) % metrics.len();
            // The passes come after the search in even rounds and before it in odd ones, so
            // that neither is always the one to run on the other's memory and caches.
            let passes = || (0..ITERATIONS).map(|_| forward_backward()).collect();
            let (iterations, passes) = if round % 2 == 0 {
                (run(geometries[i]), passes())
            } else {
                let passes = passes();
                (run(geometries[i]), passes)
            };
            rounds[i].push(Round { iterations, passes });
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
