//! Worst-case sharpness (spec §4, Eq. 4), m-sharpness style: one Auto-PGD per batch,
//! averaged over batches,
//!
//! $$ S(w) = \mathbb{E}_B \Big[ \max_{\xi \text{ horizontal},\ \|\xi\|_w \le \rho} L_B(v(\xi)) - L_B(w) \Big]. $$
//!
//! With [`Metric::Adaptive`](crate::geometry::Metric::Adaptive) this is adaptive sharpness
//! (Kwon et al.; Andriushchenko et al.), with `Inv` or `Mix` geodesic sharpness, with
//! `Euclidean` plain sharpness: one function, the geometry decides.

use std::collections::BTreeMap;
use std::time::Instant;

use burn::prelude::Tensor;
use burn::tensor::backend::AutodiffBackend;

use super::autopgd::{AutoPgdParams, maximise};
use super::error::{Error, check_count, check_radius};
use super::landscape::{Inner, Landscape};
use super::objective::Objective;
use super::progress::Progress;
use super::report::{SharpnessReport, mean_std};
use crate::geometry::{GeometryConfig, Product};
use crate::host;

/// Settings of a worst-case sharpness measurement.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct WorstCase {
    /// ρ, the radius of the ball in the metric.
    pub rho: f64,
    /// The geometry (metric, steps, zero-weight policy).
    pub geometry: GeometryConfig,
    /// Auto-PGD tuning.
    pub pgd: AutoPgdParams,
    /// Seed for the random direction of a stationary start.
    pub seed: u64,
}

impl WorstCase {
    /// Worst-case sharpness of radius `rho` in `geometry`, with the paper's Auto-PGD settings.
    pub fn new(rho: f64, geometry: GeometryConfig) -> Self {
        Self {
            rho,
            geometry,
            pgd: AutoPgdParams::default(),
            seed: 0,
        }
    }

    /// The same settings with `iterations` Auto-PGD iterations.
    pub fn with_iterations(mut self, iterations: usize) -> Self {
        self.pgd.iterations = iterations;
        self
    }
}

/// Measures worst-case sharpness of `landscape` on `batches`.
pub fn worst_case<B: AutodiffBackend, M: Objective<B>>(
    landscape: &Landscape<B, M>,
    batches: &[M::Batch],
    config: &WorstCase,
    progress: &mut dyn Progress,
) -> Result<SharpnessReport, Error> {
    check_radius("rho", config.rho)?;
    check_count("iterations", config.pgd.iterations, 1)?;
    if batches.is_empty() {
        return Err(Error::EmptyData);
    }
    let start = Instant::now();
    let geometry = landscape.geometry(&config.geometry)?;
    worst_case_in(landscape, &geometry, batches, config, progress, start)
}

/// Worst-case sharpness in a geometry built by the caller — e.g. one
/// [restricted](crate::geometry::Product::restrict) to some blocks. `config.geometry` only labels
/// the report; `start` is when the measurement began (frame construction included).
pub fn worst_case_in<B: AutodiffBackend, M: Objective<B>>(
    landscape: &Landscape<B, M>,
    geometry: &Product<Inner<B>>,
    batches: &[M::Batch],
    config: &WorstCase,
    progress: &mut dyn Progress,
    start: Instant,
) -> Result<SharpnessReport, Error> {
    check_radius("rho", config.rho)?;
    check_count("iterations", config.pgd.iterations, 1)?;
    if batches.is_empty() {
        return Err(Error::EmptyData);
    }
    let label = config.geometry.metric.measure_name();
    progress.begin(
        label,
        (batches.len() * config.pgd.iterations * config.pgd.restarts.max(1)) as u64,
    );
    let (mut per_batch, mut clean) = (Vec::new(), Vec::new());
    let mut shares = vec![0.0; geometry.len()];
    for (b, batch) in batches.iter().enumerate() {
        let max = maximise(landscape, geometry, batch, config, b, progress)?;
        per_batch.push(max.info.best_loss - max.info.clean_loss);
        clean.push(max.info.clean_loss);
        let norms = host::to_f64_vec(Tensor::cat(geometry.block_sq_norms(&max.xi), 0));
        for (s, n) in shares.iter_mut().zip(norms) {
            *s += n / (config.rho * config.rho) / batches.len() as f64;
        }
    }
    progress.end();
    let (sharpness, std) = mean_std(&per_batch);
    let per_block: BTreeMap<_, _> = geometry.names().iter().cloned().zip(shares).collect();
    Ok(SharpnessReport {
        geometry: label.to_string(),
        kind: "worst_case".into(),
        rho: config.rho,
        sharpness,
        std,
        per_batch,
        clean_loss: mean_std(&clean).0,
        per_block,
        settings: serde_json::to_value(config).unwrap_or_default(),
        seconds: start.elapsed().as_secs_f64(),
    })
}
