//! A family of ViTs trained with randomly drawn hyperparameters: the models of the
//! correlation study ([`super::correlation`]).
//!
//! Sharpness–generalisation studies (Jiang et al. 2020, Andriushchenko et al. 2023, da Silva et
//! al. 2025 §6) need models whose generalisation gaps spread widely; a single recipe with
//! different seeds gives gaps within noise of each other. So every knob known to move the gap is
//! drawn independently per model: the base optimiser and its learning rate, weight decay, batch
//! size, epochs, label noise (memorising corrupted labels is the strongest lever: train error 0,
//! test error up), the size of the training subset, and the seed. The draw is itself seeded, so
//! a family is reproducible from `(count, seed, scale)`.

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::models::VitConfig;
use crate::train::{BaseOptimizer, MrTailConfig, OptimizerKind, TrainConfig};

/// How big the family's models and budgets are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scale {
    /// The study: the default ViT (2 blocks, width 64, 4 heads), 500–4 000 training images,
    /// 2–12 epochs, 2 000 test images — one to three minutes per model on 2 CPU cores.
    Study,
    /// CI: a one-block, width-16 ViT on 128–256 images for 1–2 epochs — about a second per
    /// model.
    Ci,
}

impl std::str::FromStr for Scale {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "study" => Ok(Self::Study),
            "ci" => Ok(Self::Ci),
            _ => Err(format!("unknown scale '{s}'; expected study or ci")),
        }
    }
}

/// log-uniform on [lo, hi].
fn log_uniform(rng: &mut StdRng, lo: f64, hi: f64) -> f64 {
    (lo.ln() + (hi.ln() - lo.ln()) * rng.random::<f64>()).exp()
}

fn pick<T: Copy>(rng: &mut StdRng, values: &[T]) -> T {
    values[rng.random_range(0..values.len())]
}

/// The training configurations of a family of `count` ViTs, drawn from `seed`:
///
/// | knob | distribution |
/// |---|---|
/// | base optimiser | Adam (p = 0.7, lr log-U[3e−4, 3e−3]) or SGD + momentum 0.9 (lr log-U[0.01, 0.1]) |
/// | weight decay | 0 (p = 0.5) or log-U[1e−5, 1e−2] |
/// | batch size | {32, 64, 128, 256} |
/// | epochs | U{2, …, 12} (CI: U{1, 2}) |
/// | label noise | 0 (p = 0.5) or U[0, 0.4] |
/// | training images | {500, 1 000, 2 000, 4 000} (CI: {128, 256}) |
/// | seed | a fresh u32 per model |
///
/// The optimiser kind is plain Adam or SGD: the study asks whether sharpness predicts the gap
/// of ordinarily trained models, so no model is trained to be flat.
pub fn draw(count: usize, seed: u64, scale: Scale) -> Vec<TrainConfig> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..count)
        .map(|_| {
            let sgd = rng.random::<f64>() < 0.3;
            let mut config = TrainConfig::new(if sgd {
                OptimizerKind::Sgd
            } else {
                OptimizerKind::Adam
            });
            config.base = if sgd {
                BaseOptimizer::Sgd
            } else {
                BaseOptimizer::Adam
            };
            config.learning_rate = if sgd {
                log_uniform(&mut rng, 0.01, 0.1)
            } else {
                log_uniform(&mut rng, 3e-4, 3e-3)
            };
            config.weight_decay = if rng.random::<f64>() < 0.5 {
                0.0
            } else {
                log_uniform(&mut rng, 1e-5, 1e-2)
            };
            config.batch = pick(&mut rng, &[32, 64, 128, 256]);
            config.label_noise = if rng.random::<f64>() < 0.5 {
                0.0
            } else {
                0.4 * rng.random::<f64>()
            };
            config.seed = u64::from(rng.random::<u32>());
            match scale {
                Scale::Study => {
                    config.epochs = rng.random_range(2..=12);
                    config.train_size = pick(&mut rng, &[500, 1_000, 2_000, 4_000]);
                    config.test_size = 2_000;
                }
                Scale::Ci => {
                    config.epochs = rng.random_range(1..=2);
                    config.train_size = pick(&mut rng, &[128, 256]);
                    config.test_size = 256;
                    config.batch = config.batch.min(64);
                    config.model = VitConfig::tiny();
                }
            }
            config
        })
        .collect()
}

/// The fine-tuning configurations of a family of `count` MiniLM tails on MR
/// ([`crate::train::mr_tail`]), drawn from `seed`:
///
/// | knob | distribution |
/// |---|---|
/// | optimiser | Adam (p = 0.7, lr log-U[5e−6, 1e−4]) or SGD + momentum 0.9 (lr log-U[1e−3, 0.03]) |
/// | weight decay | 0 (p = 0.5) or log-U[1e−5, 1e−2] |
/// | batch size | {16, 32, 64} |
/// | epochs | U{1, …, 6} (CI: 1) |
/// | label noise | 0 (p = 0.5) or U[0, 0.4] |
/// | training sentences | {250, 500, 1 000, 2 000} of a 2 000-sentence pool (CI: {32, 64} of 96) |
/// | seed | a fresh u32 per model |
///
/// Adam's range is BERT fine-tuning's usual one (without warm-up, 3e−4 already wrecks the
/// pretrained layer within a few steps). Every model fine-tunes the last layer of MiniLM-L6 on sentences truncated to 32 tokens
/// (CI: 16) and is tested on 2 000 test sentences (CI: 48).
pub fn draw_mr(count: usize, seed: u64, scale: Scale) -> Vec<MrTailConfig> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..count)
        .map(|_| {
            let sgd = rng.random::<f64>() < 0.3;
            let mut config = MrTailConfig {
                base: if sgd {
                    BaseOptimizer::Sgd
                } else {
                    BaseOptimizer::Adam
                },
                ..MrTailConfig::default()
            };
            config.learning_rate = if sgd {
                log_uniform(&mut rng, 1e-3, 0.03)
            } else {
                log_uniform(&mut rng, 5e-6, 1e-4)
            };
            config.weight_decay = if rng.random::<f64>() < 0.5 {
                0.0
            } else {
                log_uniform(&mut rng, 1e-5, 1e-2)
            };
            config.batch = pick(&mut rng, &[16, 32, 64]);
            config.label_noise = if rng.random::<f64>() < 0.5 {
                0.0
            } else {
                0.4 * rng.random::<f64>()
            };
            config.seed = u64::from(rng.random::<u32>());
            config.epochs = rng.random_range(1..=6);
            config.train_size = pick(&mut rng, &[250, 500, 1_000, 2_000]);
            if scale == Scale::Ci {
                config.epochs = 1;
                config.train_size = pick(&mut rng, &[32, 64]);
                config.pool = 96;
                config.test_size = 48;
                config.max_len = 16;
                config.batch = 16;
                config.probe_steps = 20;
            }
            config
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How many different values `f` takes on `items`.
    fn distinct<C>(items: &[C], f: impl Fn(&C) -> String) -> usize {
        let mut v: Vec<String> = items.iter().map(f).collect();
        v.sort();
        v.dedup();
        v.len()
    }

    #[test]
    fn the_draw_is_reproducible_and_spreads_every_knob() {
        let a = draw(40, 7, Scale::Study);
        assert_eq!(a, draw(40, 7, Scale::Study));
        assert_ne!(a, draw(40, 8, Scale::Study));
        assert!(distinct(&a, |c| c.batch.to_string()) >= 3);
        assert!(distinct(&a, |c| c.epochs.to_string()) >= 5);
        assert!(distinct(&a, |c| c.train_size.to_string()) >= 3);
        assert!(distinct(&a, |c| format!("{:?}", c.base)) == 2);
        assert!(a.iter().any(|c| c.label_noise == 0.0) && a.iter().any(|c| c.label_noise > 0.1));
        assert!(a.iter().all(|c| (0.0..=0.4).contains(&c.label_noise)));
        assert!(a.iter().all(|c| (3e-4..=0.1).contains(&c.learning_rate)));
        let mr = draw_mr(40, 7, Scale::Study);
        assert_eq!(mr, draw_mr(40, 7, Scale::Study));
        assert!(distinct(&mr, |c| c.epochs.to_string()) >= 4);
        assert!(distinct(&mr, |c| c.train_size.to_string()) >= 3);
        assert!(mr.iter().all(|c| c.train_size <= c.pool));
        assert!(mr.iter().any(|c| c.label_noise == 0.0) && mr.iter().any(|c| c.label_noise > 0.1));
        assert!(
            draw(5, 0, Scale::Ci)
                .iter()
                .all(|c| c.epochs <= 2 && c.train_size <= 256)
        );
    }
}
