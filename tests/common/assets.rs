//! The real assets for tests: fetched once per test binary through the registries if missing.

use std::sync::OnceLock;

use geosharp::assets::{self, Asset, Cache};

/// The cache, with `assets` fetched (once per test binary).
pub fn cache_with(wanted: &[Asset]) -> Cache {
    static FETCHED: OnceLock<std::sync::Mutex<()>> = OnceLock::new();
    let _guard = FETCHED
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let cache = Cache::from_env();
    for &asset in wanted {
        assets::fetch(&cache, asset, &mut |line| eprintln!("{line}"))
            .unwrap_or_else(|e| panic!("the tests need {}: {e}", asset.name()));
    }
    cache
}
