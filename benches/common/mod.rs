//! What the MiniLM benches share: the real checkpoint with its MR head, and the batch size
//! from the command line.

use burn::backend::Autodiff;
use geosharp::assets::{Asset, Cache};
use geosharp::measures::Silent;
use geosharp::tasks::{MrOptions, MrTask};

/// The backend of the benches: ndarray, or Flex with `--features flex`.
#[cfg(not(feature = "flex"))]
pub type B = Autodiff<burn::backend::NdArray<f32>>;
/// The backend of the benches: ndarray, or Flex with `--features flex`.
#[cfg(feature = "flex")]
pub type B = Autodiff<burn::backend::Flex>;

/// The first number among the bench's arguments (`cargo bench --bench NAME -- 64`), else
/// `default`.
pub fn batch_from_args(default: usize) -> usize {
    std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(default)
}

/// MiniLM-L6 with its MR head (fitted on 256 sentences, cached), exiting with a hint when the
/// assets have not been fetched.
pub fn minilm_task() -> MrTask<B> {
    geosharp::allocator::keep_freed_memory();
    let cache = Cache::from_env();
    if !cache.has(Asset::MiniLm) || !cache.has(Asset::MovieReviews) {
        eprintln!("this benchmark needs the MiniLM checkpoint and MR: run `geosharp fetch` first");
        std::process::exit(2);
    }
    let options = MrOptions {
        head_train_limit: Some(256),
        ..MrOptions::default()
    };
    MrTask::<B>::load(
        &cache.minilm(),
        &cache,
        &options,
        &Default::default(),
        &mut Silent,
    )
    .expect("the fetched checkpoint loads")
}
