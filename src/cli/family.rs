//! `geosharp family`: trains the family of models of the correlation study, one checkpoint per
//! drawn configuration — ViTs on Fashion-MNIST (`--task vit`, the checkpoints of `geosharp
//! train`) or MiniLM-L6 with its last layer fine-tuned on MR (`--task mr`).

use std::path::{Path, PathBuf};

use anyhow::Context;
use burn::module::AutodiffModule;
use burn::tensor::backend::AutodiffBackend;
use geosharp::assets::{self, Asset, Cache};
use geosharp::data::{SentenceEncoder, mr};
use geosharp::models::BertTail;
use geosharp::studies::family::{Scale, draw, draw_mr};
use geosharp::train::mr_tail::{
    Features, MrTailConfig, MrTailReport, load_tail_report, save_tail, split_base, train_tail,
};
use geosharp::train::{TrainReport, load_report};

use geosharp::data::fashion::Split;

use super::measure::fashion_mnist;
use super::progress::Bars;
use super::train::train_and_save;
use super::write_json;
use geosharp::train::Checkpoints;
use geosharp::train::resume::fingerprint;

/// Arguments of `geosharp family`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Directory that receives one checkpoint per model (run-000, run-001, …).
    #[arg(long)]
    out: PathBuf,
    /// Number of models.
    #[arg(long, default_value_t = 30)]
    count: usize,
    /// Seed of the hyperparameter draw.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// study (full-size models and budgets) or ci (tiny, seconds per model).
    #[arg(long, default_value = "study")]
    scale: Scale,
    /// vit: ViTs on Fashion-MNIST; mr: MiniLM-L6 with its last layer fine-tuned on MR.
    #[arg(long, default_value = "vit", value_parser = ["vit", "mr"])]
    task: String,
}

/// Trains every model of the family that is not already in `--out` with the same
/// configuration (so an interrupted family resumes), then prints the family's table.
pub fn run<B: AutodiffBackend>(args: &Args, device: &B::Device) -> anyhow::Result<()> {
    anyhow::ensure!(args.count > 0, "--count must be at least 1");
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("could not create {}", args.out.display()))?;
    if args.task == "mr" {
        return run_mr::<B>(args, device);
    }
    let configs = draw(args.count, args.seed, args.scale);
    write_json(&args.out.join("family.json"), &configs)?;
    let (all_train, all_test) = (fashion_mnist(Split::Train)?, fashion_mnist(Split::Test)?);
    let reports = train_missing(
        &args.out,
        &configs,
        |dir, config| load_report(dir).ok().filter(|r| r.config == *config),
        |dir, config| {
            // A model interrupted mid-run continues from its last finished epoch.
            let checkpoints = Checkpoints {
                dir: dir.to_path_buf(),
                resume: true,
                fingerprint: fingerprint(config),
            };
            train_and_save::<B>(config, &all_train, &all_test, Some(&checkpoints), device)
        },
    )?;
    print!("{}", table(&reports));
    Ok(())
}

/// Trains `configs[i]` into `out/run-{i:03}` unless `done` finds that checkpoint already
/// trained with the same configuration (so an interrupted family resumes); returns every
/// model's report, in order.
fn train_missing<C, R>(
    out: &Path,
    configs: &[C],
    done: impl Fn(&Path, &C) -> Option<R>,
    mut train: impl FnMut(&Path, &C) -> anyhow::Result<R>,
) -> anyhow::Result<Vec<R>> {
    let mut reports = Vec::with_capacity(configs.len());
    for (i, config) in configs.iter().enumerate() {
        let dir = out.join(format!("run-{i:03}"));
        let report = match done(&dir, config) {
            Some(report) => {
                eprintln!("run-{i:03}: already trained");
                report
            }
            None => {
                eprintln!("run-{i:03} of {}:", configs.len());
                train(&dir, config)?
            }
        };
        reports.push(report);
    }
    Ok(reports)
}

fn table(reports: &[TrainReport]) -> String {
    let mut out = format!(
        "\n{:>4} {:>5} {:>8} {:>8} {:>5} {:>6} {:>5} {:>5} {:>9} {:>8} {:>7}\n",
        "run", "opt", "lr", "wd", "batch", "epochs", "noise", "n", "train err", "test err", "gap"
    );
    for (i, r) in reports.iter().enumerate() {
        let c = &r.config;
        let err = |e: Option<geosharp::train::Evaluation>| e.map_or(f64::NAN, |e| 100.0 * e.error);
        out += &format!(
            "{i:>4} {:>5} {:>8.1e} {:>8.1e} {:>5} {:>6} {:>5.2} {:>5} {:>8.2}% {:>7.2}% {:>7.2}\n",
            r.optimizer,
            c.learning_rate,
            c.weight_decay,
            c.batch,
            c.epochs,
            c.label_noise,
            c.train_size,
            err(r.final_train),
            err(r.final_test),
            r.error_gap().map_or(f64::NAN, |g| 100.0 * g)
        );
    }
    out
}

/// The pretrained base of a family of tails: the tail template and the frozen front's features
/// of the pool and (when `test_size > 0`) of the test sentences.
pub struct TailBase<B: AutodiffBackend> {
    /// The pretrained tail (its head is fresh).
    pub template: BertTail<B>,
    /// Features of the pool of training sentences.
    pub pool: Features<B::InnerBackend>,
    /// Features of the test sentences.
    pub test: Option<Features<B::InnerBackend>>,
}

/// Loads MiniLM-L6 and MR (fetching them if missing), splits the encoder as `config` says and
/// runs the frozen front on the pool and on `test_size` test sentences.
pub fn tail_base<B: AutodiffBackend>(
    config: &MrTailConfig,
    test_size: usize,
    device: &B::Device,
) -> anyhow::Result<TailBase<B>> {
    let cache = Cache::from_env();
    for asset in [Asset::MiniLm, Asset::MovieReviews] {
        assets::fetch(&cache, asset, &mut |l| eprintln!("{l}"))
            .with_context(|| format!("fetching {asset:?}"))?;
    }
    let (bert, _, _) = geosharp::checkpoint::load_bert::<B>(&cache.minilm(), device)
        .context("loading MiniLM-L6")?;
    let (front, template) = split_base(bert, config, device);
    let front = front.valid();
    let encoder =
        SentenceEncoder::from_file(&cache.minilm().join("tokenizer.json"), config.max_len)?;
    let (train, test) = mr::load(&cache, config.split_seed, 0.2)?;
    let shape = (config.max_len, 128);
    let mut bars = Bars::default();
    let pool = Features::compute(
        &front,
        &encoder,
        &train.take(config.pool),
        shape,
        device,
        &mut bars,
    )?;
    let test = (test_size > 0)
        .then(|| {
            Features::compute(
                &front,
                &encoder,
                &test.take(test_size),
                shape,
                device,
                &mut bars,
            )
        })
        .transpose()?;
    Ok(TailBase {
        template,
        pool,
        test,
    })
}

/// Whether two tail configurations share their base (pool, split, layers, truncation), so one
/// [`TailBase`] serves both.
pub fn same_base(a: &MrTailConfig, b: &MrTailConfig) -> bool {
    (a.pool, a.split_seed, a.tail_layers, a.max_len)
        == (b.pool, b.split_seed, b.tail_layers, b.max_len)
}

fn run_mr<B: AutodiffBackend>(args: &Args, device: &B::Device) -> anyhow::Result<()> {
    let configs = draw_mr(args.count, args.seed, args.scale);
    write_json(&args.out.join("family.json"), &configs)?;
    let test_size = configs.iter().map(|c| c.test_size).max().unwrap_or(0);
    let base = tail_base::<B>(&configs[0], test_size, device)?;
    let test = base.test.as_ref().context("test features were asked for")?;
    if let Some(i) = configs.iter().position(|c| !same_base(c, &configs[0])) {
        anyhow::bail!("run-{i:03} has another base");
    }
    let reports = train_missing(
        &args.out,
        &configs,
        |dir, config| load_tail_report(dir).ok().filter(|r| r.config == *config),
        |dir, config| {
            let (tail, report) = train_tail::<B>(
                config,
                base.template.clone(),
                (&base.pool, test),
                device,
                &mut Bars::default(),
            )?;
            save_tail(dir, &tail, &report)?;
            Ok(report)
        },
    )?;
    print!("{}", mr_table(&reports));
    Ok(())
}

fn mr_table(reports: &[MrTailReport]) -> String {
    let mut out = format!(
        "\n{:>4} {:>5} {:>8} {:>8} {:>5} {:>6} {:>5} {:>5} {:>9} {:>9} {:>8} {:>7} {:>6}\n",
        "run",
        "opt",
        "lr",
        "wd",
        "batch",
        "epochs",
        "noise",
        "n",
        "probe err",
        "train err",
        "test err",
        "gap",
        "s"
    );
    for (i, r) in reports.iter().enumerate() {
        let c = &r.config;
        out += &format!(
            "{i:>4} {:>5} {:>8.1e} {:>8.1e} {:>5} {:>6} {:>5.2} {:>5} {:>8.2}% {:>8.2}% {:>7.2}% {:>7.2} {:>6.0}\n",
            r.optimizer,
            c.learning_rate,
            c.weight_decay,
            c.batch,
            c.epochs,
            c.label_noise,
            c.train_size,
            100.0 * r.probe_train.error,
            100.0 * r.final_train.error,
            100.0 * r.final_test.error,
            100.0 * (r.final_test.error - r.final_train.error),
            r.seconds,
        );
    }
    out
}
