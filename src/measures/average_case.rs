//! Average-case sharpness: E_B E_ξ [L_B(v(ξ)) − L_B(w)].
//!
//! ξ = σ · whiten(z) with z standard normal, i.e. ξ ~ N(0, σ² G_w⁻¹): under the adaptive metric
//! δ ~ N(0, σ² diag(w²)) and the first-order step, as in Andriushchenko et al.; under the
//! Euclidean metric δ ~ N(0, σ² I). Note σ is a per-coordinate standard deviation, not a
//! radius. Under inv and mix the sample is projected onto the horizontal space and applied
//! with the configured geodesic step (the geodesic average-case variant).

use std::time::Instant;

use burn::tensor::backend::AutodiffBackend;

use super::error::{Error, check_count, check_radius};
use super::landscape::Landscape;
use super::objective::Objective;
use super::progress::Progress;
use super::report::{SharpnessReport, mean_std};
use crate::geometry::{GeometryConfig, Probes, Tangent};
use crate::host;

/// Settings of an average-case sharpness measurement.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct AverageCase {
    /// σ, the standard deviation of the noise in the metric.
    pub sigma: f64,
    /// Noise samples per batch.
    pub samples: usize,
    /// The geometry.
    pub geometry: GeometryConfig,
    /// Seed of the backend's random generator for the noise.
    pub seed: u64,
}

/// Measures average-case sharpness of `landscape` on `batches`.
pub fn average_case<B: AutodiffBackend, M: Objective<B>>(
    landscape: &Landscape<B, M>,
    batches: &[M::Batch],
    config: &AverageCase,
    progress: &mut dyn Progress,
) -> Result<SharpnessReport, Error> {
    check_radius("sigma", config.sigma)?;
    check_count("samples", config.samples, 1)?;
    if batches.is_empty() {
        return Err(Error::EmptyData);
    }
    let start = Instant::now();
    let geometry = landscape.geometry(&config.geometry)?;
    let project = config.geometry.metric.uses_symmetry();
    let base = landscape.base();
    let mut probes = Probes::new(config.seed);
    let like = Tangent::new(base.to_vec());
    let label = config.geometry.metric.measure_name();
    progress.begin(label, (batches.len() * config.samples) as u64);
    let (mut per_batch, mut clean) = (Vec::new(), Vec::new());
    for (b, batch) in batches.iter().enumerate() {
        let l0 = host::scalar(landscape.loss_at(base.to_vec(), batch));
        let mut total = 0.0;
        for s in 0..config.samples {
            let z = probes.gaussian(&like);
            let mut xi = geometry.whiten(&z).scale(config.sigma);
            if project {
                xi = geometry.horizontal(&xi);
            }
            let loss = host::scalar(landscape.loss_at(geometry.step(&xi), batch));
            if !loss.is_finite() {
                return Err(Error::NonFiniteLoss {
                    batch: b,
                    iteration: s,
                    loss,
                });
            }
            total += loss - l0;
            progress.advance(1);
        }
        per_batch.push(total / config.samples as f64);
        clean.push(l0);
    }
    progress.end();
    let (sharpness, std) = mean_std(&per_batch);
    Ok(SharpnessReport {
        geometry: label.to_string(),
        kind: "average_case".into(),
        rho: config.sigma,
        sharpness,
        std,
        per_batch,
        clean_loss: mean_std(&clean).0,
        per_block: Default::default(),
        settings: serde_json::to_value(config).unwrap_or_default(),
        seconds: start.elapsed().as_secs_f64(),
    })
}
