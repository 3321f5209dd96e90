//! Sharpness-aware training through Burn's own `Learner` (burn-train's `SupervisedTraining`).
//!
//! The integration is a custom `TrainStep`: the step returns
//! [`SharpnessAware::gradients`] — the gradient at the perturbed point — and the `Learner`
//! hands it to its optimiser with its learning-rate schedule, exactly as it does a plain
//! gradient. This file is also the example of how to write one (`SamStep` below). The test:
//! two epochs of geodesic SAM under the `Learner` (data loader, schedule, validation, metric
//! events and all) end at the same weights, bit for bit, as the hand-written loop of
//! [`SharpnessAware::step`] over the same batches.

mod common;

use burn::backend::{Autodiff, NdArray};
use burn::data::dataloader::DataLoaderBuilder;
use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::InMemDataset;
use burn::module::{AutodiffModule, Module, ModuleVisitor, Param};
use burn::optim::AdamConfig;
use burn::prelude::{Backend, Int, Tensor, TensorData};
use burn::tensor::backend::AutodiffBackend;
use burn_train::metric::{Adaptor, LossInput, LossMetric};
use burn_train::{InferenceStep, ItemLazy, Learner, SupervisedTraining, TrainOutput, TrainStep};
use geosharp::geometry::Metric;
use geosharp::host::{scalar, to_f64_vec};
use geosharp::measures::Objective;
use geosharp::models::{SequenceBatch, TinyAttention};
use geosharp::optim::{Perturbation, SharpnessAware};

type B = Autodiff<NdArray<f32>>;

const TOKENS: usize = 5;
const D: usize = 8;

/// A model that Burn's `Learner` trains sharpness-aware: `SharpnessAware<()>` is the
/// perturbation rule alone (the `Learner` owns the base optimiser).
#[derive(Module, Debug)]
struct SamStep<B: Backend> {
    model: TinyAttention<B>,
    #[module(skip)]
    rule: SharpnessAware<()>,
}

/// What a step reports to the `Learner`'s event processor: the clean loss, which its
/// `LossMetric` reads.
struct Loss(f64);

impl ItemLazy for Loss {
    type ItemSync = Loss;
    fn sync(self) -> Loss {
        self
    }
}

impl<B: Backend> Adaptor<LossInput<B>> for Loss {
    fn adapt(&self) -> LossInput<B> {
        LossInput::new(Tensor::from_floats([self.0 as f32], &Default::default()))
    }
}

impl<B: AutodiffBackend> TrainStep for SamStep<B> {
    type Input = SequenceBatch<B>;
    type Output = Loss;
    fn step(&self, batch: SequenceBatch<B>) -> TrainOutput<Loss> {
        let (grads, report) = self
            .rule
            .gradients(&self.model, 1, |m, _| m.loss(&batch))
            .expect("a finite two-pass gradient");
        TrainOutput {
            grads,
            item: Loss(report.loss),
        }
    }
}

impl<B: Backend> InferenceStep for SamStep<B> {
    type Input = SequenceBatch<B>;
    type Output = Loss;
    fn step(&self, batch: SequenceBatch<B>) -> Loss {
        Loss(scalar(self.model.loss(&batch)))
    }
}

/// One sequence of `TOKENS` × `D` features and its label.
#[derive(Debug, Clone)]
struct Item {
    x: Vec<f32>,
    label: i64,
}

#[derive(Clone)]
struct Sequences;

impl<B: Backend> Batcher<B, Item, SequenceBatch<B>> for Sequences {
    fn batch(&self, items: Vec<Item>, device: &B::Device) -> SequenceBatch<B> {
        let n = items.len();
        let x: Vec<f32> = items.iter().flat_map(|i| i.x.iter().copied()).collect();
        let labels: Vec<i64> = items.iter().map(|i| i.label).collect();
        SequenceBatch {
            x: Tensor::from_data(TensorData::new(x, [n, TOKENS, D]), device),
            labels: Tensor::<B, 1, Int>::from_data(TensorData::new(labels, [n]), device),
        }
    }
}

fn items(n: usize) -> Vec<Item> {
    (0..n)
        .map(|k| Item {
            x: (0..TOKENS * D)
                .map(|i| ((k * TOKENS * D + i) as f32 * 0.37).sin())
                .collect(),
            label: (k * 7 % 3) as i64,
        })
        .collect()
}

/// Every float parameter's values, in visiting order.
fn values<M: Module<NdArray<f32>>>(model: &M) -> Vec<Vec<f64>> {
    struct Collect(Vec<Vec<f64>>);
    impl ModuleVisitor<NdArray<f32>> for Collect {
        fn visit_float<const N: usize>(&mut self, param: &Param<Tensor<NdArray<f32>, N>>) {
            self.0.push(to_f64_vec(param.val()));
        }
    }
    let mut collect = Collect(Vec::new());
    model.visit(&mut collect);
    collect.0
}

#[test]
fn geodesic_sam_under_burns_learner_equals_the_hand_written_loop_bit_for_bit() {
    let (batch, epochs, lr) = (4, 2, 5e-3);
    let data = items(12);
    let model: TinyAttention<B> = common::optim::tiny(3);
    let (rule, rho) = (Perturbation::geodesic(Metric::Mix), 0.05);

    // The hand-written loop.
    let mut hand = model.clone();
    let mut optim = SharpnessAware::new(AdamConfig::new().init(), rule, rho)
        .unwrap()
        .for_model(&model);
    let device = Default::default();
    for _ in 0..epochs {
        for chunk in data.chunks(batch) {
            let b: SequenceBatch<B> = Sequences.batch(chunk.to_vec(), &device);
            hand = optim.step(lr, hand, 1, |m, _| m.loss(&b)).unwrap().0;
        }
    }

    // Burn's Learner, with the same Adam (its state lives in the Learner's optimiser).
    let step = SamStep {
        model: model.clone(),
        rule: SharpnessAware::new((), rule, rho)
            .unwrap()
            .for_model(&model),
    };
    let train = DataLoaderBuilder::new(Sequences)
        .batch_size(batch)
        .build(InMemDataset::new(data.clone()));
    let valid = DataLoaderBuilder::new(Sequences)
        .batch_size(batch)
        .build(InMemDataset::new(data));
    let dir = std::env::temp_dir().join(format!("geosharp-learner-{}", std::process::id()));
    let learner = Learner::new(step, AdamConfig::new().init(), lr);
    let result = SupervisedTraining::new(&dir, train, valid)
        .metric_train_numeric(LossMetric::<NdArray<f32>>::new())
        .metric_valid_numeric(LossMetric::<NdArray<f32>>::new())
        .num_epochs(epochs)
        .launch(learner);
    let _ = std::fs::remove_dir_all(&dir);

    let (ours, theirs) = (values(&hand.valid()), values(&result.model.model));
    assert_eq!(ours.len(), theirs.len());
    assert_eq!(ours, theirs, "the Learner's weights differ from the loop's");
    // And training moved them: the comparison is not between two untouched copies.
    assert_ne!(values(&model.valid()), theirs);
}
