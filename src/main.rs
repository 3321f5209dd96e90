//! `geosharp`: measure symmetry-invariant sharpness from the command line.
//!
//! Exit codes: 0 success, 1 a measurement or I/O error (the message says what to do),
//! 2 invalid arguments (clap's convention).

mod cli;

/// See Cargo.toml: glibc malloc maps and unmaps every large tensor; mimalloc reuses them
/// (with purging off, [`geosharp::allocator`]).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand};

/// Geodesic sharpness: sharpness of a trained network after removing its symmetries.
#[derive(Debug, Parser)]
#[command(name = "geosharp", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Where to compute: cpu (Burn's ndarray backend) or cuda / cuda:N (Burn's CUDA backend;
    /// needs a binary built with `--features cuda`).
    #[arg(long, global = true, default_value = "cpu")]
    device: cli::DeviceArg,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Train diagonal linear networks and correlate their sharpness with test loss (paper §6.1).
    Diagonal(cli::diagonal::Args),
    /// Download the real assets (MiniLM checkpoint, MR sentences, Fashion-MNIST) into the cache.
    Fetch(cli::fetch::Args),
    /// Adaptive and geodesic sharpness of a BERT checkpoint on MR (the main job).
    Measure(cli::measure::Args),
    /// Act on every attention head with A = a·N and compare sharpness (paper §6.2).
    Invariance(cli::invariance::Args),
    /// Hessian measures of a BERT checkpoint: λ_max, trace, spectral density, Rényi sharpness,
    /// Wen et al.'s directional sharpness.
    Hessian(cli::hessian::Args),
    /// Train a ViT on Fashion-MNIST with SGD, Adam, SAM, ASAM, geodesic SAM, RSAM, SAF or MESA.
    Train(cli::train::Args),
    /// Train a family of ViTs with randomly drawn hyperparameters (the correlation study's
    /// models).
    Family(cli::family::Args),
    /// Measure every checkpoint of a family and correlate each measure with the
    /// generalisation gap (Kendall τ, permutation p-value, scatter plots).
    Correlate(cli::correlate::Args),
}

/// Runs `command` on backend `B`, on `device`: every subcommand is generic over the backend,
/// so `--device` picks one at run time from the backends compiled in.
fn run<B: burn::tensor::backend::AutodiffBackend>(
    command: &Command,
    device: &B::Device,
) -> anyhow::Result<()> {
    match command {
        Command::Diagonal(args) => cli::diagonal::run::<B>(args, device),
        Command::Fetch(args) => cli::fetch::run(args),
        Command::Measure(args) => cli::measure::run::<B>(args, device),
        Command::Invariance(args) => cli::invariance::run::<B>(args, device),
        Command::Hessian(args) => cli::hessian::run::<B>(args, device),
        Command::Train(args) => cli::train::run::<B>(args, device),
        Command::Family(args) => cli::family::run::<B>(args, device),
        Command::Correlate(args) => cli::correlate::run::<B>(args, device),
    }
}

fn main() -> std::process::ExitCode {
    geosharp::allocator::keep_freed_memory();
    let cli = Cli::parse();
    let result = match cli.device {
        cli::DeviceArg::Cpu => run::<cli::Cpu>(&cli.command, &Default::default()),
        #[cfg(feature = "cuda")]
        cli::DeviceArg::Cuda(index) => {
            run::<cli::Gpu>(&cli.command, &burn::backend::cuda::CudaDevice { index })
        }
        #[cfg(not(feature = "cuda"))]
        cli::DeviceArg::Cuda(_) => Err(anyhow::anyhow!(
            "this geosharp was built without CUDA; rebuild with `cargo build --release --features cuda`"
        )),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
