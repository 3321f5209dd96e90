//! MiniLM-L6 with its last layer fine-tuned on MR (the text models of the correlation study):
//! the tail on precomputed, padded front features computes exactly the full classifier; a
//! CI-sized run trains the attention weights, flips exactly the asked share of labels, and its
//! checkpoint reloads to the same function.

mod common;

use burn::backend::{Autodiff, NdArray};
use burn::module::AutodiffModule;
use burn::prelude::Tensor;
use common::assets::cache_with;
use common::optim::values;
use geosharp::assets::Asset;
use geosharp::checkpoint::load_bert;
use geosharp::data::{SentenceEncoder, mr};
use geosharp::measures::Silent;
use geosharp::models::{BertClassifier, BertTail};
use geosharp::symmetry::Symmetric;
use geosharp::train::mr_tail::{
    Features, MrTailConfig, load_tail, save_tail, split_base, train_tail,
    train_tail_with_checkpoints,
};
use geosharp::train::resume::fingerprint;
use geosharp::train::{Checkpoints, HeadFit, OptimizerKind, fit_head};

type B = Autodiff<NdArray<f32>>;
type I = NdArray<f32>;

fn max_abs_diff(a: Tensor<I, 2>, b: Tensor<I, 2>) -> f32 {
    (a - b).abs().max().into_scalar()
}

#[test]
fn the_tail_on_padded_front_features_computes_the_full_classifier() {
    let cache = cache_with(&[Asset::MiniLm, Asset::MovieReviews]);
    let device = Default::default();
    let (bert, _, _) = load_bert::<I>(&cache.minilm(), &device).unwrap();
    let encoder = SentenceEncoder::from_file(&cache.minilm().join("tokenizer.json"), 64).unwrap();
    let (train, _) = mr::load(&cache, 0, 0.2).unwrap();
    let sentences = train.take(12);
    let refs: Vec<&str> = sentences.sentences.iter().map(String::as_str).collect();
    // The full classifier on one batch padded to its own longest sentence.
    let full = BertClassifier::new(bert.clone(), 2, &device);
    let expected = full.forward(&encoder.encode::<I>(&refs, &device).unwrap());
    // The front on batches of 5 (three different paddings), padded to 64 tokens, then the tail.
    for k in [1, 2] {
        let (front, tail) = BertTail::split(bert.clone(), k, full.head.clone());
        assert_eq!(front.encoder.layer.len(), 6 - k);
        assert_eq!(
            tail.symmetries().len(),
            2 * k,
            "(W_Q, W_K) and (W_V, W_Oᵀ) per layer"
        );
        let features =
            Features::compute(&front, &encoder, &sentences, (64, 5), &device, &mut Silent).unwrap();
        assert_eq!(features.hidden.dims(), [12, 64, 384]);
        let got = tail.forward(features.hidden.clone(), &features.mask);
        let diff = max_abs_diff(got, expected.clone());
        assert!(diff < 1e-4, "k = {k}: logits differ by {diff}");
    }
}

#[test]
fn a_ci_sized_tail_trains_its_attention_and_reloads_to_the_same_function() {
    let cache = cache_with(&[Asset::MiniLm, Asset::MovieReviews]);
    let device = Default::default();
    let config = ci_config();
    // Exactly a quarter of the 32 training labels are flipped, and the same ones every call.
    let (train, _) = mr::load(&cache, config.split_seed, 0.2).unwrap();
    let pool_sentences = train.take(config.pool);
    let clean: Vec<usize> = config
        .training_positions()
        .iter()
        .map(|&i| pool_sentences.labels[i])
        .collect();
    let noisy = config.training_labels(&pool_sentences.labels);
    assert_eq!(noisy, config.training_labels(&pool_sentences.labels));
    assert_eq!(clean.iter().zip(&noisy).filter(|(a, b)| a != b).count(), 8);

    let (template, pool, test) = ci_base(&config);
    let (tail, report) = train_tail::<B>(
        &config,
        template.clone(),
        (&pool, &test),
        &device,
        &mut Silent,
    )
    .unwrap();
    // The attention weights moved (the loaded checkpoint's weights are made trainable).
    let query = |t: &BertTail<B>| {
        t.layer[0]
            .attention
            .self_attention
            .query
            .weight
            .val()
            .inner()
    };
    let moved: f32 = (query(&tail) - query(&template)).abs().max().into_scalar();
    assert!(moved > 1e-5, "the query weights did not train ({moved})");
    // From a random head (no probe steps), training lowers the training loss.
    assert!(
        report.final_train.loss < report.probe_train.loss,
        "{:?} → {:?}",
        report.probe_train,
        report.final_train
    );
    assert_eq!(report.epochs.len(), 3);
    assert!((0.0..=1.0).contains(&report.final_test.error));

    let dir = std::env::temp_dir().join(format!("geosharp-tail-{}", std::process::id()));
    save_tail(&dir, &tail, &report).unwrap();
    let (loaded_report, loaded) = load_tail(&dir, template, &device).unwrap();
    assert_eq!(loaded_report, report);
    let batch = pool.batch(&[0, 1, 2, 3], &[0, 1, 0, 1]);
    let (a, b) = (
        tail.valid().forward(batch.hidden.clone(), &batch.mask),
        loaded.valid().forward(batch.hidden, &batch.mask),
    );
    assert_eq!(max_abs_diff(a, b), 0.0);
    // A checkpoint of another model is refused by name.
    std::fs::write(dir.join("train.json"), "{\"optimizer\": \"adam\"}").unwrap();
    let (bert, _, _) = load_bert::<B>(&cache.minilm(), &device).unwrap();
    let e = load_tail(&dir, split_base(bert, &config, &device).1, &device).unwrap_err();
    assert!(e.to_string().contains("not a tail report"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}

/// A head fitted twice on the same sentences is the same head (its start is seeded): a fresh
/// machine fits the head the main job measures with, so an unseeded start would give each
/// machine its own results.
#[test]
fn a_head_fitted_twice_is_the_same_head() {
    let cache = cache_with(&[Asset::MiniLm, Asset::MovieReviews]);
    let device = Default::default();
    let (bert, _, _) = load_bert::<B>(&cache.minilm(), &device).unwrap();
    let encoder = SentenceEncoder::from_file(&cache.minilm().join("tokenizer.json"), 32).unwrap();
    let (train, test) = mr::load(&cache, 0, 0.2).unwrap();
    let (train, test) = (train.take(16), test.take(8));
    let fit = HeadFit {
        steps: 5,
        ..HeadFit::default()
    };
    let head = || {
        let (head, _) = fit_head::<B>(
            &bert,
            &encoder,
            (&train, &test),
            2,
            &fit,
            &device,
            &mut Silent,
        )
        .unwrap();
        values(&head)
    };
    let first = head();
    assert_eq!(first.len(), 2, "weight and bias");
    assert_eq!(head(), first);
}

/// The pretrained tail of `config` and the frozen front's features of its pool and of 16 test
/// sentences.
fn ci_base(config: &MrTailConfig) -> (BertTail<B>, Features<I>, Features<I>) {
    let cache = cache_with(&[Asset::MiniLm, Asset::MovieReviews]);
    let device = Default::default();
    let (train, test) = mr::load(&cache, config.split_seed, 0.2).unwrap();
    let pool_sentences = train.take(config.pool);
    let (bert, _, _) = load_bert::<B>(&cache.minilm(), &device).unwrap();
    let (front, template) = split_base(bert, config, &device);
    let encoder =
        SentenceEncoder::from_file(&cache.minilm().join("tokenizer.json"), config.max_len).unwrap();
    let front = front.valid();
    let shape = (config.max_len, 16);
    let pool = Features::compute(
        &front,
        &encoder,
        &pool_sentences,
        shape,
        &device,
        &mut Silent,
    )
    .unwrap();
    let test = Features::compute(
        &front,
        &encoder,
        &test.take(16),
        shape,
        &device,
        &mut Silent,
    )
    .unwrap();
    (template, pool, test)
}

fn ci_config() -> MrTailConfig {
    MrTailConfig {
        learning_rate: 1e-3,
        label_noise: 0.25,
        epochs: 3,
        batch: 8,
        train_size: 32,
        test_size: 16,
        pool: 48,
        max_len: 16,
        probe_steps: 0,
        seed: 3,
        ..MrTailConfig::default()
    }
}

#[test]
fn geodesic_sam_trains_the_tail_and_a_resumed_run_ends_where_the_whole_run_ends() {
    let config = MrTailConfig {
        optimizer: OptimizerKind::Gsam,
        probe_steps: 20,
        ..ci_config()
    };
    let (template, pool, test) = ci_base(&config);
    let device = Default::default();
    let (whole, report) = train_tail::<B>(
        &config,
        template.clone(),
        (&pool, &test),
        &device,
        &mut Silent,
    )
    .unwrap();
    assert_eq!(report.optimizer, "gsam");
    assert!(
        report.final_train.loss < report.probe_train.loss,
        "{:?} → {:?}",
        report.probe_train,
        report.final_train
    );
    assert!(report.epochs.iter().all(|e| e.test.is_some()));
    let dir = std::env::temp_dir().join(format!("geosharp-tail-resume-{}", std::process::id()));
    let run = |config: &MrTailConfig, resume: bool| {
        let checkpoints = Checkpoints {
            dir: dir.clone(),
            resume,
            fingerprint: fingerprint(config),
        };
        train_tail_with_checkpoints::<B>(
            config,
            template.clone(),
            (&pool, &test),
            Some(&checkpoints),
            &device,
            &mut Silent,
        )
        .unwrap()
    };
    let two = MrTailConfig {
        epochs: 2,
        ..config.clone()
    };
    let (stopped, _) = run(&two, false);
    assert_ne!(values(&stopped), values(&whole));
    let (resumed, resumed_report) = run(&config, true);
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(values(&resumed), values(&whole));
    assert_eq!(resumed_report.final_test, report.final_test);
    assert_eq!(resumed_report.epochs.len(), 3);
}
