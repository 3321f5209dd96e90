//! A linear head on frozen sentence embeddings (a logistic-regression probe).
//!
//! The encoder runs once per sentence, without autodiff, and the head is fitted on the cached
//! embeddings with full-batch Adam on the mean cross-entropy. This is how the default MiniLM
//! checkpoint gets the classification head it is measured with.

use std::time::Instant;

use burn::module::AutodiffModule;
use burn::nn::{Linear, LinearConfig};
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::prelude::{Backend, Int, Tensor, TensorData};
use burn::tensor::backend::AutodiffBackend;
use serde::Serialize;

use crate::data::{self, LabelledSentences, SentenceEncoder};
use crate::host::scalar;
use crate::measures::Progress;
use crate::models::BertModel;
use crate::models::loss::{count_correct, cross_entropy};

/// Settings of the head fit.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct HeadFit {
    /// Full-batch Adam steps.
    pub steps: usize,
    /// Adam learning rate.
    pub learning_rate: f64,
    /// Sentences per encoder batch when embedding.
    pub batch: usize,
}

impl Default for HeadFit {
    fn default() -> Self {
        Self {
            steps: 400,
            learning_rate: 0.05,
            batch: 128,
        }
    }
}

/// How the fitted head does.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HeadReport {
    /// Training sentences.
    pub train_size: usize,
    /// Test sentences.
    pub test_size: usize,
    /// Mean cross-entropy on the training sentences.
    pub train_loss: f64,
    /// Accuracy on the training sentences.
    pub train_accuracy: f64,
    /// Mean cross-entropy on the test sentences.
    pub test_loss: f64,
    /// Accuracy on the test sentences.
    pub test_accuracy: f64,
    /// Seconds spent embedding and fitting.
    pub seconds: f64,
}

/// Sentence embeddings `[n, hidden]` of `sentences`, computed without autodiff.
pub fn embed<B: Backend>(
    bert: &BertModel<B>,
    encoder: &SentenceEncoder,
    sentences: &[String],
    batch: usize,
    device: &B::Device,
    progress: &mut dyn Progress,
) -> Result<Tensor<B, 2>, data::Error> {
    if sentences.is_empty() {
        return Err(data::Error::Empty {
            what: "sentences to embed",
        });
    }
    progress.begin("embedding", sentences.len() as u64);
    let mut parts = Vec::new();
    for chunk in sentences.chunks(batch.max(1)) {
        let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
        parts.push(bert.sentence_embedding(&encoder.encode(&refs, device)?));
        progress.advance(chunk.len() as u64);
    }
    progress.end();
    Ok(Tensor::cat(parts, 0))
}

/// `labels` as a `[n]` integer tensor.
pub fn labels<B: Backend>(labels: &[usize], device: &B::Device) -> Tensor<B, 1, Int> {
    let v: Vec<i64> = labels.iter().map(|&l| l as i64).collect();
    Tensor::from_data(TensorData::new(v, [labels.len()]), device)
}

/// Mean cross-entropy and accuracy of `head` on features and labels.
fn evaluate<B: Backend>(head: &Linear<B>, x: Tensor<B, 2>, y: Tensor<B, 1, Int>) -> (f64, f64) {
    let n = y.dims()[0];
    let logits = head.forward(x);
    let correct = count_correct(logits.clone(), &y);
    (scalar(cross_entropy(logits, y)), correct / n as f64)
}

/// The linear head `start` (`d → classes`) fitted on features `x` `[n, d]` with labels `y` by
/// `fit.steps` full-batch Adam steps on the mean cross-entropy (a logistic-regression probe).
pub fn fit_linear<B: AutodiffBackend>(
    x: Tensor<B::InnerBackend, 2>,
    y: Tensor<B::InnerBackend, 1, Int>,
    start: Linear<B>,
    fit: &HeadFit,
    progress: &mut dyn Progress,
) -> Linear<B> {
    let mut head = start;
    let mut optimizer = AdamConfig::new().init::<B, Linear<B>>();
    let (xt, yt) = (
        Tensor::<B, 2>::from_inner(x),
        Tensor::<B, 1, Int>::from_inner(y),
    );
    progress.begin("fitting head", fit.steps as u64);
    for _ in 0..fit.steps {
        let loss = cross_entropy(head.forward(xt.clone()), yt.clone());
        let grads = GradientsParams::from_grads(loss.backward(), &head);
        head = optimizer.step(fit.learning_rate, head, grads);
        progress.advance(1);
    }
    progress.end();
    head
}

/// The seed of a fitted head's initial weights.
const HEAD_SEED: u64 = 0;

/// Fits a `classes`-way linear head on the frozen encoder's embeddings of the training
/// sentences, and reports it on the test sentences. The same data and `fit` give the same
/// head: the start is seeded, and the fit is deterministic.
pub fn fit_head<B: AutodiffBackend>(
    bert: &BertModel<B>,
    encoder: &SentenceEncoder,
    (train, test): (&LabelledSentences, &LabelledSentences),
    classes: usize,
    fit: &HeadFit,
    device: &B::Device,
    progress: &mut dyn Progress,
) -> Result<(Linear<B>, HeadReport), data::Error> {
    let start = Instant::now();
    let frozen = bert.valid();
    let inner = device.clone();
    let x_train = embed(
        &frozen,
        encoder,
        &train.sentences,
        fit.batch,
        &inner,
        progress,
    )?;
    let x_test = embed(
        &frozen,
        encoder,
        &test.sentences,
        fit.batch,
        &inner,
        progress,
    )?;
    let (y_train, y_test) = (
        labels::<B::InnerBackend>(&train.labels, &inner),
        labels::<B::InnerBackend>(&test.labels, &inner),
    );
    let hidden = x_train.dims()[1];
    // Seeded: the fit ends where its start sends it, and the main job fits its head on first
    // use, so an unseeded start gave every fresh machine its own head (sharpness 2 % apart).
    let initial: Linear<B> = crate::params::seeded::<B, _>(device, HEAD_SEED, || {
        crate::params::materialize(LinearConfig::new(hidden, classes).init(device))
    });
    let head = fit_linear(x_train.clone(), y_train.clone(), initial, fit, progress);
    let valid = head.valid();
    let (train_loss, train_accuracy) = evaluate(&valid, x_train, y_train);
    let (test_loss, test_accuracy) = evaluate(&valid, x_test, y_test);
    Ok((
        head,
        HeadReport {
            train_size: train.len(),
            test_size: test.len(),
            train_loss,
            train_accuracy,
            test_loss,
            test_accuracy,
            seconds: start.elapsed().as_secs_f64(),
        },
    ))
}
