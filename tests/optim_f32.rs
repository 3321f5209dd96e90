//! The sharpness-aware optimisers in f32, the precision they train in: ρ = 0 is the base
//! optimiser bit for bit, and a resumed run continues bit for bit; and the f32 gradients they
//! step on are exact to f32 rounding and the same on every call. (A separate binary: Burn
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

/// The gradients of the two divisions every model here backpropagates through — the log of
/// cross-entropy's normaliser and softmax's division by its sum — against their closed forms
/// in f64, repeated. Burn's backward of `x / y` and `log y` multiplies by `recip(y)`, and
/// burn-ndarray's `simd` feature computes `recip` with x86's approximate `rcp` instruction
/// (relative error up to 3.7e-4) on the SIMD-aligned part of a buffer only, so with that
/// feature these gradients were off by ~1e-4 and differed from call to call with the buffers'
/// alignment (which broke bit-for-bit resume). geosharp builds burn-ndarray without it; this
/// test fails if it comes back.
#[test]
fn f32_gradients_through_log_and_division_are_exact_and_reproducible() {
    use burn::module::Param;
    use burn::prelude::{Int, Tensor, TensorData};
    use burn::tensor::activation::softmax;
    use geosharp::host::to_f64_vec;
    use geosharp::models::loss::cross_entropy;

    let (n, c) = (64, 10);
    let device = Default::default();
    let x: Vec<f32> = (0..n * c).map(|i| (i as f32 * 0.37).sin() * 3.0).collect();
    let y: Vec<i64> = (0..n).map(|i| (i * 7 % c) as i64).collect();
    let t: Vec<f32> = (0..n * c).map(|i| (i as f32 * 0.11).cos()).collect();
    let logits = Param::from_tensor(Tensor::<B32, 2>::from_data(
        TensorData::new(x.clone(), [n, c]),
        &device,
    ));
    let labels = Tensor::<B32, 1, Int>::from_data(TensorData::new(y.clone(), [n]), &device);
    let weights = Tensor::<B32, 2>::from_data(TensorData::new(t.clone(), [n, c]), &device);
    let grad_of = |loss: Tensor<B32, 1>| to_f64_vec(logits.grad(&loss.backward()).unwrap());
    // Host f64: p = softmax(x) per row; ∂CE/∂x = (p − onehot(y)) / n; ∂Σ(p ⊙ t)/∂x = p ⊙ (t − ⟨p, t⟩).
    let (mut ce, mut sm) = (vec![0.0; n * c], vec![0.0; n * c]);
    for r in 0..n {
        let row = &x[r * c..(r + 1) * c];
        let max = row.iter().fold(f64::MIN, |m, &v| m.max(v as f64));
        let e: Vec<f64> = row.iter().map(|&v| (v as f64 - max).exp()).collect();
        let z: f64 = e.iter().sum();
        let pt: f64 = (0..c).map(|k| e[k] / z * t[r * c + k] as f64).sum();
        for k in 0..c {
            let p = e[k] / z;
            ce[r * c + k] = (p - f64::from(u8::from(k as i64 == y[r]))) / n as f64;
            sm[r * c + k] = p * (t[r * c + k] as f64 - pt);
        }
    }
    for (name, exact, loss) in [
        (
            "cross-entropy",
            &ce,
            &(|| cross_entropy(logits.val(), labels.clone())) as &dyn Fn() -> Tensor<B32, 1>,
        ),
        ("softmax", &sm, &|| {
            (softmax(logits.val(), 1) * weights.clone()).sum()
        }),
    ] {
        let first = grad_of(loss());
        let scale = exact.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let error = first
            .iter()
            .zip(exact.iter())
            .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
        assert!(
            error < 2e-6 * scale,
            "{name}: max |∇f32 − ∇exact| = {error:e} of max |∇| = {scale:e}"
        );
        for _ in 0..20 {
            assert_eq!(
                grad_of(loss()),
                first,
                "{name}: the gradient changed between calls"
            );
        }
    }
}
