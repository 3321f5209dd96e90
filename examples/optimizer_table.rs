//! The optimiser comparison of issue 4: the same ViT, the same epoch budget, several seeds, for
//! every optimiser; test accuracy (mean ± std over seeds) and training time per epoch with its
//! ratio to the base optimiser (Adam).
//!
//! ```text
//! cargo run --release --example optimizer_table -- [epochs] [train_size] [seeds] [json]
//! ```
//! Defaults: 6 epochs, 10 000 training images, 3 seeds, no JSON. SAF and MESA switch on at
//! epoch 3 (SAF with targets two epochs back), scaled down from the papers' epoch 5 of 200.

use burn::backend::{Autodiff, NdArray};
use geosharp::assets::{self, Asset, Cache};
use geosharp::data::fashion::{self, Split};
use geosharp::measures::{Silent, mean_std};
use geosharp::optim::TrajectoryConfig;
use geosharp::train::{OptimizerKind, TrainConfig, TrainReport, train_vit};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

type B = Autodiff<NdArray<f32>>;

fn main() -> anyhow::Result<()> {
    geosharp::allocator::keep_freed_memory();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, default: usize| -> usize {
        args.get(i).and_then(|s| s.parse().ok()).unwrap_or(default)
    };
    let (epochs, train_size, seeds) = (arg(0, 6), arg(1, 10_000), arg(2, 3));
    let json = args.get(3).cloned();
    let cache = Cache::from_env();
    assets::fetch(&cache, Asset::FashionMnist, &mut |l| eprintln!("{l}"))?;
    let full_train = fashion::load(&cache, Split::Train)?;
    let full_test = fashion::load(&cache, Split::Test)?;
    let mut reports: Vec<TrainReport> = Vec::new();
    for seed in 0..seeds as u64 {
        let train = full_train.subset(train_size, seed);
        let test = full_test.subset(2_000, seed);
        for kind in OptimizerKind::ALL {
            let mut config = TrainConfig::new(kind);
            config.epochs = epochs;
            config.seed = seed;
            config.train_size = train_size;
            config.trajectory = match kind {
                OptimizerKind::Saf => Some(TrajectoryConfig::saf().starting_at(3).with_lag(2)),
                OptimizerKind::Mesa => Some(TrajectoryConfig::mesa().starting_at(3)),
                _ => None,
            };
            let (_, report) =
                train_vit::<B>(&config, &train, &test, &Default::default(), &mut Silent)?;
            let last = report.epochs.last().expect("at least one epoch");
            eprintln!(
                "seed {seed} {:<5} test acc {:.2}%  {:.2} s/epoch",
                kind.name(),
                100.0 * last.test_acc,
                report.epochs.iter().map(|e| e.seconds).sum::<f64>() / epochs as f64
            );
            reports.push(report);
        }
    }
    let per_epoch =
        |r: &TrainReport| r.epochs.iter().map(|e| e.seconds).sum::<f64>() / r.epochs.len() as f64;
    let of = |kind: OptimizerKind| reports.iter().filter(move |r| r.config.optimizer == kind);
    let (base_time, _) = mean_std(&of(OptimizerKind::Adam).map(per_epoch).collect::<Vec<_>>());
    println!(
        "ViT ({} blocks, width {}) on {train_size} Fashion-MNIST images, {epochs} epochs, {seeds} seeds; test on 2 000\n",
        TrainConfig::new(OptimizerKind::Adam).model.depth,
        TrainConfig::new(OptimizerKind::Adam).model.d_model
    );
    println!("| optimizer | base | ρ | test accuracy (%) | s / epoch | × Adam |");
    println!("|---|---|---|---|---|---|");
    for kind in OptimizerKind::ALL {
        let accs: Vec<f64> = of(kind)
            .map(|r| 100.0 * r.epochs.last().unwrap().test_acc)
            .collect();
        let times: Vec<f64> = of(kind).map(per_epoch).collect();
        let (acc, acc_sd) = mean_std(&accs);
        let (time, _) = mean_std(&times);
        let config = TrainConfig::new(kind);
        println!(
            "| {} | {:?} | {} | {acc:.2} ± {acc_sd:.2} | {time:.2} | {:.2} |",
            kind.name(),
            config.base,
            config.effective_rho(),
            time / base_time
        );
    }
    if let Some(path) = json {
        std::fs::write(&path, serde_json::to_string_pretty(&reports)? + "\n")?;
    }
    Ok(())
}
