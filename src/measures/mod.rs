//! Sharpness measures over any [`Geometry`](crate::geometry::Geometry).
//!
//! A [`Landscape`] binds a model ([`Objective`]) to its block layout at the current weights;
//! [`worst_case`] (Auto-PGD) and [`average_case`] measure it in a chosen geometry and return a
//! [`SharpnessReport`]. Adaptive, geodesic and Euclidean sharpness are the same code with a
//! different [`GeometryConfig`](crate::geometry::GeometryConfig).

mod autopgd;
mod average_case;
mod error;
mod landscape;
mod objective;
mod progress;
mod report;
mod worst_case;

pub use autopgd::{
    AutoPgdInfo, AutoPgdParams, Maximum, ascent, checkpoints, maximise, next_iterate,
    project_to_ball,
};
pub use average_case::{AverageCase, average_case};
pub use error::Error;
pub(crate) use error::check_count;
pub use landscape::{GradientMode, Inner, Landscape};
pub use objective::Objective;
pub use progress::{Progress, Silent};
pub use report::{SharpnessReport, mean_std};
pub use worst_case::{WorstCase, worst_case, worst_case_in};
