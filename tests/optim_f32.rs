//! The sharpness-aware optimisers in f32, the precision they train in: ρ = 0 is the base
//! optimiser bit for bit, and a resumed run continues bit for bit. (A separate binary: Burn
//! keeps one default float dtype per device type, so f32 and f64 tests do not share one.)

mod common;

use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::record::{FullPrecisionSettings, NamedMpkFileRecorder, Recorder};
use common::B32;
use common::optim::{batch, tiny, values};
use geosharp::geometry::Metric;
use geosharp::measures::Objective;
use geosharp::models::TinyAttention;
use geosharp::optim::{Perturbation, SharpnessAware};

#[test]
fn rho_zero_reproduces_the_base_optimiser_bit_for_bit() {
    let data = batch::<B32>(6, 5, 8, 3, 0.3);
    let start = tiny::<B32>(1);
    let mut plain = start.clone();
    let mut base = AdamConfig::new().init::<B32, TinyAttention<B32>>();
    for _ in 0..4 {
        let grads = GradientsParams::from_grads(plain.loss(&data).backward(), &plain);
        plain = base.step(1e-2, plain, grads);
    }
    let rules = [
        ("SAM", Perturbation::sam()),
        ("ASAM", Perturbation::asam(0.01)),
        ("geodesic SAM (inv)", Perturbation::geodesic(Metric::Inv)),
        ("geodesic SAM (mix)", Perturbation::geodesic(Metric::Mix)),
    ];
    for (name, rule) in rules {
        let mut model = start.clone();
        let mut optim = SharpnessAware::new(AdamConfig::new().init(), rule, 0.0)
            .unwrap()
            .for_model(&model);
        for _ in 0..4 {
            model = optim.step(1e-2, model, 1, |m, _| m.loss(&data)).unwrap().0;
        }
        assert_eq!(values(&model), values(&plain), "{name} with ρ = 0");
    }
    // and ρ > 0 does move them
    let mut model = start.clone();
    let mut optim =
        SharpnessAware::new(AdamConfig::new().init(), Perturbation::sam(), 0.05).unwrap();
    for _ in 0..4 {
        model = optim.step(1e-2, model, 1, |m, _| m.loss(&data)).unwrap().0;
    }
    assert_ne!(values(&model), values(&plain));
}

#[test]
fn resume_from_a_checkpoint_continues_identically() {
    let dir = std::env::temp_dir().join(format!("geosharp-resume-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let data = batch::<B32>(6, 5, 8, 3, 0.9);
    let start = tiny::<B32>(6);
    let new_optim = |model: &TinyAttention<B32>| {
        SharpnessAware::new(
            AdamConfig::new().init(),
            Perturbation::geodesic(Metric::Mix),
            0.05,
        )
        .unwrap()
        .for_model(model)
    };
    // A decaying learning rate driven by the caller: the schedule is a function of the step.
    let lr = |step: usize| 1e-2 * 0.8f64.powi(step as i32);
    let mut model = start.clone();
    let mut optim = new_optim(&model);
    for step in 0..6 {
        model = optim
            .step(lr(step), model, 1, |m, _| m.loss(&data))
            .unwrap()
            .0;
    }
    let uninterrupted = values(&model);

    let mut model = start.clone();
    let mut optim = new_optim(&model);
    for step in 0..3 {
        model = optim
            .step(lr(step), model, 1, |m, _| m.loss(&data))
            .unwrap()
            .0;
    }
    let recorder = NamedMpkFileRecorder::<FullPrecisionSettings>::new();
    model
        .clone()
        .save_file(dir.join("model"), &recorder)
        .unwrap();
    recorder
        .record(
            optim.to_record::<B32, TinyAttention<B32>>(),
            dir.join("optim"),
        )
        .unwrap();
    drop((model, optim));
    let device = Default::default();
    let fresh = tiny::<B32>(99);
    assert_ne!(values(&fresh), values(&start));
    let mut model = fresh
        .load_file(dir.join("model"), &recorder, &device)
        .unwrap();
    let record = recorder.load(dir.join("optim"), &device).unwrap();
    let mut optim = new_optim(&model).load_record::<B32, TinyAttention<B32>>(record);
    for step in 3..6 {
        model = optim
            .step(lr(step), model, 1, |m, _| m.loss(&data))
            .unwrap()
            .0;
    }
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(values(&model), uninterrupted);
}
