//! Sharpness-aware optimisers for Burn training loops.
//!
//! [`SharpnessAware`] wraps any Burn [`Optimizer`](burn::optim::Optimizer) (SGD, Adam, AdamW…)
//! with the two-pass step of SAM; the [`Perturbation`] rule decides where the second gradient is
//! taken: SAM, ASAM and geodesic SAM are the same rule under the Euclidean, adaptive and
//! inv/mix metrics of [`crate::geometry`], and RSAM is a second rule of the same wrapper. SAF
//! and MESA ([`Saf`], [`Mesa`]) need no second pass: they are a loss term with state.
//!
//! ```
//! # use burn::backend::{Autodiff, NdArray};
//! # use burn::optim::AdamConfig;
//! # use burn::prelude::{Int, Tensor};
//! # use geosharp::models::{TinyAttention, TinyAttentionConfig, SequenceBatch};
//! # use geosharp::measures::Objective;
//! # use geosharp::geometry::Metric;
//! # use geosharp::optim::{Perturbation, SharpnessAware};
//! # type B = Autodiff<NdArray>;
//! let device = Default::default();
//! let mut model: TinyAttention<B> =
//!     TinyAttentionConfig { d_model: 8, heads: 2, classes: 3 }.init(&device);
//! // Two batches of four sequences of five tokens.
//! let batches: Vec<SequenceBatch<B>> = (0..2)
//!     .map(|i| SequenceBatch {
//!         x: Tensor::<B, 1, Int>::arange(0..160, &device)
//!             .float()
//!             .mul_scalar(0.01 * (i + 1) as f64)
//!             .sin()
//!             .reshape([4, 5, 8]),
//!         labels: Tensor::<B, 1, Int>::from_ints([0, 1, 2, 0], &device),
//!     })
//!     .collect();
//! let mut optim = SharpnessAware::new(AdamConfig::new().init(), Perturbation::geodesic(Metric::Mix), 0.05)
//!     .unwrap()
//!     .for_model(&model);
//! for batch in &batches {
//!     let (next, report) = optim.step(1e-3, model, 1, |m, _| m.loss(batch)).unwrap();
//!     model = next;
//!     assert!(report.perturbed_loss.is_finite());
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
pub use trajectory::{Mesa, Saf, SafRecord, TrajectoryConfig, distillation};
pub use two_pass::{Perturbed, SharpnessAware, StepReport};
