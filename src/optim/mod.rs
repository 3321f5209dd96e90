//! Sharpness-aware optimisers for Burn training loops.
//!
//! [`SharpnessAware`] wraps any Burn [`Optimizer`](burn::optim::Optimizer) (SGD, Adam, AdamW…)
//! with the two-pass step of SAM; the [`Perturbation`] rule decides where the second gradient is
//! taken: SAM, ASAM and geodesic SAM are the same rule under the Euclidean, adaptive and
//! inv/mix metrics of [`crate::geometry`], and RSAM is a second rule of the same wrapper. SAF
//! and MESA ([`Saf`], [`Mesa`]) need no second pass: they are a loss term with state.
//!
//! ```no_run
//! # use burn::backend::{Autodiff, NdArray};
//! # use burn::optim::AdamConfig;
//! # use geosharp::models::{TinyAttention, TinyAttentionConfig, SequenceBatch};
//! # use geosharp::measures::Objective;
//! # use geosharp::geometry::Metric;
//! # use geosharp::optim::{Perturbation, SharpnessAware};
//! # type B = Autodiff<NdArray>;
//! # fn batches() -> Vec<SequenceBatch<B>> { unimplemented!() }
//! let device = Default::default();
//! let mut model: TinyAttention<B> =
//!     TinyAttentionConfig { d_model: 8, heads: 2, classes: 3 }.init(&device);
//! let mut optim = SharpnessAware::new(AdamConfig::new().init(), Perturbation::geodesic(Metric::Mix), 0.05)
//!     .unwrap()
//!     .for_model(&model);
//! for batch in batches() {
//!     let (next, report) = optim.step(1e-3, model, 1, |m, _| m.loss(&batch)).unwrap();
//!     model = next;
//!     println!("loss {:.4} → perturbed {:.4}", report.loss, report.perturbed_loss);
//! }
//! ```

mod error;
mod gradients;
mod rule;
mod trajectory;
mod two_pass;

pub use error::Error;
pub use rule::{NORM_EPS, Perturbation, ascent_direction};
pub use trajectory::{Mesa, Saf, TrajectoryConfig, distillation};
pub use two_pass::{Perturbed, SharpnessAware, StepReport};
