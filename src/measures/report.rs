//! The result of a sharpness measurement, serialisable to JSON.

use std::collections::BTreeMap;

use serde::Serialize;

/// Mean and sample standard deviation (n − 1 in the denominator; 0 for one value).
pub fn mean_std(values: &[f64]) -> (f64, f64) {
    let n = values.len();
    if n == 0 {
        return (f64::NAN, f64::NAN);
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    if n == 1 {
        return (mean, 0.0);
    }
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    (mean, var.sqrt())
}

/// One sharpness measurement over a set of batches.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SharpnessReport {
    /// `adaptive`, `geodesic_inv`, `geodesic_mix` or `euclidean`.
    pub geometry: String,
    /// `worst_case` or `average_case`.
    pub kind: String,
    /// ρ (worst case: the radius) or σ (average case: the per-coordinate standard deviation).
    pub rho: f64,
    /// Mean over batches of max L_B(v(ξ)) − L_B(w) (or of the mean rise, average case).
    pub sharpness: f64,
    /// Standard deviation over batches.
    pub std: f64,
    /// The value of every batch.
    pub per_batch: Vec<f64>,
    /// Mean clean loss L_B(w) over batches.
    pub clean_loss: f64,
    /// Worst case: for each block, the mean over batches of ‖ξ*_b‖²_w / ρ², the share of the
    /// perturbation budget the maximiser spends on that block. Empty for the average case.
    pub per_block: BTreeMap<String, f64>,
    /// The settings that produced the numbers.
    pub settings: serde_json::Value,
    /// Wall time in seconds.
    pub seconds: f64,
}
