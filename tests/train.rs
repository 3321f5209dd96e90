//! CI-sized training runs on real Fashion-MNIST: every optimiser lowers the loss of a small ViT
//! in two epochs on a few hundred images, and a run resumed from its epoch checkpoint ends
//! where the uninterrupted run ends.

mod common;

use std::path::Path;

use common::B32;
use common::assets::cache_with;
use common::optim::values;
use geosharp::assets::Asset;
use geosharp::data::fashion::{self, Images, Split};
use geosharp::measures::Silent;
use geosharp::models::{Vit, VitConfig};
use geosharp::optim::TrajectoryConfig;
use geosharp::train::resume::fingerprint;
use geosharp::train::vit::TrainError;
use geosharp::train::{
    Checkpoints, OptimizerKind, TrainConfig, TrainReport, train_vit, train_vit_with_checkpoints,
};

#[test]
fn every_optimizer_lowers_the_loss_of_a_small_vit() {
    let cache = cache_with(&[Asset::FashionMnist]);
    let train = fashion::load(&cache, Split::Train).unwrap().subset(384, 1);
    let test = fashion::load(&cache, Split::Test).unwrap().subset(256, 1);
    assert_eq!(train.len(), 384);
    assert!(train.labels.iter().all(|&l| l < 10));
    let chance = (10f64).ln();
    for kind in OptimizerKind::ALL {
        let mut config = TrainConfig::new(kind);
        config.epochs = 2;
        config.batch = 32;
        config.model = VitConfig {
            d_model: 32,
            heads: 2,
            depth: 1,
            mlp: 64,
            ..VitConfig::default()
        };
        config.warmup_epochs = 1;
        config.trajectory = from_the_second_epoch(kind);
        let (_, report) =
            train_vit::<B32>(&config, &train, &test, &Default::default(), &mut Silent).unwrap();
        let e = &report.epochs;
        assert_eq!(e.len(), 2);
        assert!(
            e[1].train_loss < e[0].train_loss,
            "{}: train loss {} → {}",
            kind.name(),
            e[0].train_loss,
            e[1].train_loss
        );
        assert!(
            e[1].test_loss < chance && e[1].test_acc > 0.2,
            "{}: test loss {} (chance {chance}), accuracy {}",
            kind.name(),
            e[1].test_loss,
            e[1].test_acc
        );
    }
}

/// A seed names one model even while other threads draw from Burn's shared generator through
/// geosharp's constructors (a fresh head, a fresh model): each draw holds the generator lock
/// that `seeded` holds from seeding to its last draw. Without the lock in `materialize`, the
/// other threads' draws land inside the seeded window and the seeded models differ.
#[test]
fn a_seed_names_one_model_while_other_threads_draw() {
    use geosharp::models::TinyAttentionConfig;
    use std::sync::atomic::{AtomicBool, Ordering};
    let device = Default::default();
    let config = VitConfig {
        d_model: 8,
        heads: 2,
        depth: 1,
        mlp: 16,
        ..VitConfig::default()
    };
    let seeded = || {
        values(&geosharp::params::seeded::<B32, _>(&device, 7, || {
            config.init::<B32>(&device)
        }))
    };
    let tiny = TinyAttentionConfig {
        d_model: 8,
        heads: 2,
        classes: 3,
    };
    let stop = AtomicBool::new(false);
    let (first, later) = std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    let _ = tiny.init::<B32>(&device);
                    let _ = config.init::<B32>(&device);
                }
            });
        }
        let first = seeded();
        let later: Vec<_> = (0..100).map(|_| seeded()).collect();
        stop.store(true, Ordering::Relaxed);
        (first, later)
    });
    let differing = later.iter().filter(|v| **v != first).count();
    assert_eq!(
        differing, 0,
        "{differing} of 100 seeded models differ from the first"
    );
    let other = values(&geosharp::params::seeded::<B32, _>(&device, 8, || {
        config.init::<B32>(&device)
    }));
    assert_ne!(other, first, "another seed gives another model");
}

#[test]
fn bad_training_settings_are_refused() {
    let cache = cache_with(&[Asset::FashionMnist]);
    let test = fashion::load(&cache, Split::Test).unwrap().subset(16, 0);
    let empty = test.subset(0, 0);
    let config = TrainConfig::new(OptimizerKind::Sam);
    let e = train_vit::<B32>(&config, &empty, &test, &Default::default(), &mut Silent).unwrap_err();
    assert!(e.to_string().contains("empty"), "{e}");
    let mut bad = config.clone();
    bad.rho = Some(-1.0);
    let e = train_vit::<B32>(&bad, &test, &test, &Default::default(), &mut Silent).unwrap_err();
    assert!(e.to_string().contains("rho"), "{e}");
    let mut bad = config.clone();
    bad.label_noise = 1.5;
    let e = train_vit::<B32>(&bad, &test, &test, &Default::default(), &mut Silent).unwrap_err();
    assert!(e.to_string().contains("label noise"), "{e}");
    let mut bad = config.clone();
    bad.weight_decay = -1e-3;
    let e = train_vit::<B32>(&bad, &test, &test, &Default::default(), &mut Silent).unwrap_err();
    assert!(e.to_string().contains("weight decay"), "{e}");
    let mut bad = config;
    bad.model.patch = 5;
    let e = train_vit::<B32>(&bad, &test, &test, &Default::default(), &mut Silent).unwrap_err();
    assert!(e.to_string().contains("patch"), "{e}");
}

#[test]
fn a_checkpoint_saved_by_train_is_measurable_by_measure() {
    let _ = cache_with(&[Asset::FashionMnist]);
    let dir = std::env::temp_dir().join(format!("geosharp-train-{}", std::process::id()));
    let exe = env!("CARGO_BIN_EXE_geosharp");
    let run = |args: &[&str]| {
        let out = std::process::Command::new(exe).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "geosharp {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let save = dir.to_str().unwrap();
    let train_json = dir.join("report.json");
    run(&[
        "train",
        "--optimizer",
        "gsam",
        "--epochs",
        "1",
        "--train-size",
        "128",
        "--test-size",
        "64",
        "--batch",
        "32",
        "--save",
        save,
        "--json",
        train_json.to_str().unwrap(),
    ]);
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&train_json).unwrap()).unwrap();
    assert_eq!(report["optimizer"], "gsam");
    assert!(report["epochs"][0]["test_acc"].as_f64().unwrap() > 0.0);
    assert!(report["seconds"].as_f64().unwrap() > 0.0);
    let measured = dir.join("measure.json");
    let table = run(&[
        "measure",
        "--checkpoint",
        save,
        "--points",
        "32",
        "--batch",
        "16",
        "--iters",
        "2",
        "--json",
        measured.to_str().unwrap(),
    ]);
    assert!(table.contains("geodesic_mix"), "{table}");
    let out: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&measured).unwrap()).unwrap();
    assert_eq!(out["data"], "fashion-mnist");
    let results = out["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    for r in results {
        let s = r["sharpness"].as_f64().unwrap();
        assert!(s.is_finite() && s > 0.0, "{r}");
        assert_eq!(r["per_batch"].as_array().unwrap().len(), 2);
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn weight_decay_shrinks_the_weights_and_the_report_records_the_final_gap() {
    use burn::module::AutodiffModule;
    let cache = cache_with(&[Asset::FashionMnist]);
    let train = fashion::load(&cache, Split::Train).unwrap().subset(128, 2);
    let test = fashion::load(&cache, Split::Test).unwrap().subset(64, 2);
    let norm = |decay: f64| {
        let mut config = TrainConfig::new(OptimizerKind::Sgd);
        config.epochs = 2;
        config.batch = 32;
        config.weight_decay = decay;
        config.model = VitConfig::tiny();
        let (model, report) =
            train_vit::<B32>(&config, &train, &test, &Default::default(), &mut Silent).unwrap();
        let (_, values) = geosharp::params::ParamTable::read(&model.valid());
        let squares: f64 = values
            .into_iter()
            .map(|v| f64::from(v.powi_scalar(2).sum().into_scalar()))
            .sum();
        let (tr, te) = (report.final_train.unwrap(), report.final_test.unwrap());
        assert!((report.error_gap().unwrap() - (te.error - tr.error)).abs() < 1e-15);
        assert!((te.error - (1.0 - report.epochs[1].test_acc)).abs() < 1e-15);
        squares.sqrt()
    };
    let (plain, decayed) = (norm(0.0), norm(0.05));
    assert!(
        decayed < 0.97 * plain,
        "‖w‖ with weight decay {decayed} vs without {plain}"
    );
}

/// SAF/MESA switched on in the second epoch, one epoch back (`None` for the other rules), so
/// that a two- or three-epoch run exercises their terms.
fn from_the_second_epoch(kind: OptimizerKind) -> Option<TrajectoryConfig> {
    match kind {
        OptimizerKind::Saf => Some(TrajectoryConfig::saf().starting_at(1).with_lag(1)),
        OptimizerKind::Mesa => Some(TrajectoryConfig::mesa().starting_at(1)),
        _ => None,
    }
}

/// Trains `config` on `train`/`test`, saving into `dir` and resuming from it when `resume`.
fn run_saving(
    config: &TrainConfig,
    (train, test): (&Images, &Images),
    dir: &Path,
    resume: bool,
) -> Result<(Vit<B32>, TrainReport), TrainError> {
    let checkpoints = Checkpoints {
        dir: dir.to_path_buf(),
        resume,
        fingerprint: fingerprint(config),
    };
    train_vit_with_checkpoints::<B32>(
        config,
        train,
        test,
        Some(&checkpoints),
        &Default::default(),
        &mut Silent,
    )
}

#[test]
fn a_resumed_run_ends_where_the_uninterrupted_run_ends() {
    let cache = cache_with(&[Asset::FashionMnist]);
    let train = fashion::load(&cache, Split::Train).unwrap().subset(96, 2);
    let test = fashion::load(&cache, Split::Test).unwrap().subset(64, 2);
    let root = std::env::temp_dir().join(format!("geosharp-train-resume-{}", std::process::id()));
    // Each kind carries state beyond the weights into the third epoch: Adam's moments (geodesic
    // SAM), SAF's logit table of the second epoch, MESA's moving average.
    for kind in [OptimizerKind::Gsam, OptimizerKind::Saf, OptimizerKind::Mesa] {
        let mut config = TrainConfig::new(kind);
        config.epochs = 3;
        config.batch = 32;
        config.seed = 5;
        config.model = VitConfig {
            d_model: 16,
            heads: 2,
            depth: 1,
            mlp: 32,
            ..VitConfig::default()
        };
        config.trajectory = from_the_second_epoch(kind);
        let (whole, report) =
            train_vit::<B32>(&config, &train, &test, &Default::default(), &mut Silent).unwrap();
        let dir = root.join(kind.name());
        let stopped = TrainConfig {
            epochs: 2,
            ..config.clone()
        };
        let (after_two, _) = run_saving(&stopped, (&train, &test), &dir, false).unwrap();
        assert_ne!(values(&after_two), values(&whole), "{}", kind.name());
        let (resumed, resumed_report) = run_saving(&config, (&train, &test), &dir, true).unwrap();
        assert_eq!(values(&resumed), values(&whole), "{} resumed", kind.name());
        let losses = |r: &TrainReport| -> Vec<(f64, f64)> {
            r.epochs
                .iter()
                .map(|e| (e.train_loss, e.test_loss))
                .collect()
        };
        assert_eq!(losses(&resumed_report), losses(&report), "{}", kind.name());
        // Other settings are refused by name, before any training.
        let other = TrainConfig {
            learning_rate: 2e-3,
            ..config.clone()
        };
        let e = run_saving(&other, (&train, &test), &dir, true).unwrap_err();
        assert!(
            e.to_string().contains("learning_rate: 0.001 → 0.002"),
            "{e}"
        );
    }
    std::fs::remove_dir_all(&root).ok();
}
