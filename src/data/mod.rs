//! Data: synthetic problems (and, later, loaders for the fetched assets).

pub mod synthetic;

pub use synthetic::SparseRegression;
