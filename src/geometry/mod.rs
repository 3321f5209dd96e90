//! The Riemannian geometry of each block and of the whole network (spec §2–3).
//!
//! [`Geometry`] is the per-block trait (inner product, Riemannian gradient, horizontal
//! projection, Christoffel form, geodesic step); [`Elementwise`], [`Rescaling`] and
//! [`AttentionGl`] implement it, and [`Product`] assembles them over a
//! [`BlockLayout`](crate::symmetry::BlockLayout). Per base point, small h×h linear algebra runs
//! once on the host in f64 ([`host`]); per iteration, everything is batched tensor work on the
//! backend's device.

mod attention_gl;
mod base;
pub mod checks;
mod elementwise;
mod error;
pub mod fused;
pub mod host;
mod probes;
mod product;
mod rescaling;
mod tangent;

pub use attention_gl::AttentionGl;
pub use base::{GeodesicStep, Geometry, Metric};
pub use elementwise::{Elementwise, ZERO_FLOOR, ZeroWeights};
pub use error::Error;
pub use probes::Probes;
pub use product::{AdaptiveOffset, GeometryConfig, Product, StepPolicy};
pub use rescaling::Rescaling;
pub use tangent::Tangent;

pub(crate) use base::dot;
pub(crate) use elementwise::sum_scalars;
