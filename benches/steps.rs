//! Cost of one optimiser step — plain Adam, and SAM, ASAM and geodesic SAM on Adam — and of one
//! Hessian–vector product, on the real MiniLM-L6 checkpoint with its MR head, against one
//! forward+backward pass of the same batch.
//!
//! `cargo bench --bench steps [-- BATCH]` (default batch 32, so the whole run takes about a
//! minute on 2 CPU cores; needs `geosharp fetch`). Every parameter trains (the whole encoder,
//! not only the head), so a step's backward pass is the full one. Each figure is the minimum
//! over `REPEATS` runs. A two-pass step cannot cost less than 2 forward+backward passes, and a
//! central-difference HVP is two gradients (2×).

use std::time::Instant;

use burn::optim::AdamConfig;
use geosharp::geometry::Metric;
use geosharp::geometry::Probes;
use geosharp::hessian::{HessianOperator, LinearOperator};
use geosharp::measures::{Landscape, Objective};
use geosharp::models::BertClassifier;
use geosharp::optim::{Perturbation, SharpnessAware};
use geosharp::symmetry::Symmetric;

mod common;

use common::B;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const REPEATS: usize = 3;

fn min_seconds(mut f: impl FnMut()) -> f64 {
    (0..REPEATS)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let batch = common::batch_from_args(32);
    let task = common::minilm_task();
    let device = Default::default();
    let model: BertClassifier<B> = geosharp::params::trainable(task.model.clone());
    let batches = task.batches(batch, batch, &device).expect("batch");
    let data = &batches[0];
    println!(
        "MiniLM-L6 + head, every parameter trained; one MR batch of {batch} sentences × {} tokens",
        data.input.ids.dims()[1]
    );
    let fb = min_seconds(|| {
        let grads = model.loss(data).backward();
        drop(grads);
    });
    println!("forward+backward        {fb:7.3} s   1.000×");
    let report = |name: &str, t: f64| println!("{name:<23} {t:7.3} s   {:.3}×", t / fb);

    let rules = [
        ("adam (one pass)", None),
        ("sam + adam", Some(Perturbation::sam())),
        ("asam + adam", Some(Perturbation::asam(0.01))),
        (
            "geodesic sam (mix)",
            Some(Perturbation::geodesic(Metric::Mix)),
        ),
    ];
    for (name, rule) in rules {
        let plain = rule.is_none();
        let mut optim = SharpnessAware::new(
            AdamConfig::new().init(),
            rule.unwrap_or_else(Perturbation::sam),
            0.05,
        )
        .expect("rho")
        .for_model(&model);
        let t = min_seconds(|| {
            let loss = |m: &BertClassifier<B>, _: usize| m.loss(data);
            let next = if plain {
                optim.plain_step(1e-5, model.clone(), 1, loss)
            } else {
                optim.step(1e-5, model.clone(), 1, loss)
            };
            drop(next.expect("step"));
        });
        report(name, t);
    }

    let landscape =
        Landscape::new(task.model.clone(), &task.model.symmetries()).expect("landscape");
    let op = HessianOperator::new(&landscape, std::slice::from_ref(data)).expect("operator");
    let v = op.rademacher(&mut Probes::new(0));
    let t = min_seconds(|| {
        drop(op.apply(&v).expect("hvp"));
    });
    report("hvp (central diff.)", t);
}
