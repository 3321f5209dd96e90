//! Hessian-based sharpness measures: the ones geodesic sharpness is compared against.
//!
//! Burn's autodiff is first order, so the Hessian is a matrix-free operator
//! ([`HessianOperator`]: central differences of gradients, averaged over batches, optionally
//! restricted to some parameter blocks). Every estimator is written once against
//! [`LinearOperator`] and tested on explicit matrices ([`DenseOperator`]) with known spectra:
//!
//! * top eigenvalues: [`power_iteration`] and [`top_eigenvalues`] (Lanczos with full
//!   reorthogonalisation), largest algebraic or largest magnitude ([`Order`]);
//! * trace: [`hutchinson`] and [`hutch_plus_plus`];
//! * spectral density and tr f(H): stochastic Lanczos quadrature ([`slq`]);
//! * Rényi sharpness from SLQ ([`renyi_from_density`]) or an explicit spectrum
//!   ([`renyi_sharpness`]);
//! * Wen et al.'s ascent- and average-direction sharpness ([`ascent_direction`],
//!   [`average_direction`]) with their small-ρ limits.
//!
//! The small tridiagonal eigenproblems run on the host in f64 (nalgebra); every vector
//! operation runs on the backend's device.

mod error;
mod lanczos;
mod operator;
mod power;
mod renyi;
mod slq;
mod trace;
mod wen;

pub use error::Error;
pub use lanczos::{Order, RitzValues, Tridiagonal, lanczos, top_eigenvalues};
pub use operator::{DenseOperator, HessianOperator, LinearOperator, dot, norm};
pub use power::{Eigenvalue, PowerIteration, power_iteration};
pub use renyi::{Renyi, renyi_from_density, renyi_sharpness};
pub use slq::{Slq, SpectralDensity, slq};
pub use trace::{Estimate, hutch_plus_plus, hutchinson};
pub use wen::{AscentDirection, ascent_direction, average_direction, average_direction_limit};
