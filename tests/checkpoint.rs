//! The real MiniLM-L6 checkpoint: loading, embeddings, and loader errors.

mod common;

use std::path::{Path, PathBuf};

use common::B32;
use common::assets::cache_with;
use geosharp::assets::Asset;
use geosharp::checkpoint::{Error, load_bert, load_bert_weights};
use geosharp::data::SentenceEncoder;
use geosharp::host::to_f64_vec;
use geosharp::models::BertConfig;

fn embeddings(sentences: &[&str]) -> Vec<Vec<f64>> {
    let cache = cache_with(&[Asset::MiniLm]);
    let device = Default::default();
    let (model, _, report) = load_bert::<B32>(&cache.minilm(), &device).unwrap();
    assert!(
        report.unused.is_empty(),
        "unused tensors: {:?}",
        report.unused
    );
    let encoder = SentenceEncoder::from_file(&cache.minilm().join("tokenizer.json"), 128).unwrap();
    let e = model.sentence_embedding(&encoder.encode::<B32>(sentences, &device).unwrap());
    let d = e.dims()[1];
    let flat = to_f64_vec(e);
    flat.chunks(d).map(<[f64]>::to_vec).collect()
}

fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
    dot / (norm(a) * norm(b))
}

#[test]
fn minilm_embeddings_match_an_independent_numpy_forward_pass() {
    let e = embeddings(&[
        "A man is playing a guitar.",
        "Someone plays an instrument.",
        "The stock market fell sharply today.",
    ]);
    for v in &e {
        let norm: f64 = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        assert!(
            (norm - 1.0).abs() < 1e-5,
            "sentence embeddings are L2-normalised: {norm}"
        );
    }
    let (related, unrelated) = (cosine(&e[0], &e[1]), cosine(&e[0], &e[2]));
    assert!(
        (related - 0.667).abs() < 0.005,
        "cos(guitar, instrument) = {related}"
    );
    assert!(
        (unrelated + 0.054).abs() < 0.005,
        "cos(guitar, stock market) = {unrelated}"
    );
}

#[test]
fn padding_does_not_change_a_sentence_embedding() {
    let alone = embeddings(&["Short."]);
    let padded = embeddings(&[
        "Short.",
        "A considerably longer sentence that forces padding of the first.",
    ]);
    let diff: f64 = alone[0]
        .iter()
        .zip(&padded[0])
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(
        diff < 1e-5,
        "masked positions leak into the embedding: {diff}"
    );
}

/// A copy of the real checkpoint, edited by `edit`, in a fresh temporary directory.
fn broken_copy(tag: &str, edit: impl FnOnce(&mut Vec<u8>)) -> PathBuf {
    let cache = cache_with(&[Asset::MiniLm]);
    let dir = std::env::temp_dir().join(format!("geosharp-test-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut bytes = std::fs::read(cache.minilm().join("model.safetensors")).unwrap();
    edit(&mut bytes);
    std::fs::write(dir.join("model.safetensors"), bytes).unwrap();
    std::fs::copy(cache.minilm().join("config.json"), dir.join("config.json")).unwrap();
    dir
}

fn replace_in_header(bytes: &mut [u8], from: &str, to: &str) {
    assert_eq!(from.len(), to.len(), "same length keeps the header valid");
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = &mut bytes[8..8 + header_len];
    let at = header
        .windows(from.len())
        .position(|w| w == from.as_bytes())
        .expect("name in header");
    header[at..at + to.len()].copy_from_slice(to.as_bytes());
}

fn load(dir: &Path) -> Result<(), Error> {
    load_bert::<B32>(dir, &Default::default()).map(|_| ())
}

#[test]
fn a_truncated_checkpoint_is_reported_as_corrupt() {
    let dir = broken_copy("truncated", |b| b.truncate(b.len() / 2));
    let err = load(&dir).unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("truncated"), "{err}");
}

#[test]
fn a_renamed_tensor_is_named_in_the_error() {
    let dir = broken_copy("renamed", |b| {
        replace_in_header(
            b,
            "encoder.layer.2.attention.self.key.weight",
            "encoder.layer.2.attention.self.kez.weight",
        );
    });
    let err = load(&dir).unwrap_err();
    let Error::Missing { name, param, .. } = &err else {
        panic!("expected a missing tensor, got {err}")
    };
    assert_eq!(name, "encoder.layer.2.attention.self.key.weight");
    assert_eq!(param, "encoder.layer.2.attention.self_attention.key.weight");
}

#[test]
fn a_wrong_shape_is_named_in_the_error() {
    let cache = cache_with(&[Asset::MiniLm]);
    // A config with a wider intermediate layer than the checkpoint's.
    let config = BertConfig {
        intermediate_size: 1600,
        hidden_size: 384,
        num_hidden_layers: 6,
        ..BertConfig::default()
    };
    let model = config.init::<B32>(&Default::default());
    let err = load_bert_weights(model, &cache.minilm().join("model.safetensors")).unwrap_err();
    let Error::Shape {
        name,
        expected,
        found,
        ..
    } = &err
    else {
        panic!("expected a shape error, got {err}")
    };
    assert_eq!(name, "encoder.layer.0.intermediate.dense.weight");
    assert_eq!(
        (expected.as_slice(), found.as_slice()),
        (&[1600, 384][..], &[1536, 384][..])
    );
    assert!(
        err.to_string()
            .contains("is config.json from the same revision")
    );
}
