//! # geosharp — sharpness after removing a network's symmetries
//!
//! Sharpness measures how fast the loss rises around trained weights. Transformers have large
//! symmetry groups — per attention head, (W_Q, W_K) ↦ (W_Q A⁻¹, W_K Aᵀ) for any invertible A —
//! that move the weights without changing the function, and ordinary sharpness measures move
//! with them. *Geodesic sharpness* (da Silva, Dangel & Oore, ICML 2025) measures sharpness on
//! the quotient by those symmetries instead: with a symmetry-invariant Riemannian metric,
//! horizontal projections and a second-order geodesic step.
//!
//! The crate is layered; each layer uses only the ones before it:
//!
//! * [`symmetry`] — what a model declares: GL(h) pairs, GL(1) rescalings, elementwise blocks;
//! * [`geometry`] — metric, Riemannian gradient, horizontal projection, geodesic steps;
//! * [`measures`] — worst-case (Auto-PGD) and average-case sharpness over any geometry;
//! * [`optim`] — SAM, ASAM, geodesic SAM and RSAM as a two-pass wrapper of any Burn optimiser;
//!   SAF and MESA as loss terms;
//! * [`models`] — diagonal linear networks and attention models that declare their symmetries;
//! * [`data`], [`stats`], [`studies`] — synthetic data, rank correlations, the paper's studies.
//!
//! The mathematics, with the paper's errata, is documented beside the code that computes it.
#![warn(missing_docs)]

pub mod allocator;
pub mod assets;
pub mod checkpoint;
pub mod data;
pub mod geometry;
pub mod hessian;
pub mod host;
pub mod measures;
pub mod models;
pub mod optim;
pub mod params;
pub mod stats;
pub mod studies;
pub mod symmetry;
pub mod tasks;
pub mod train;
