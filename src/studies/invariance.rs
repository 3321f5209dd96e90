//! The invariance experiment (Hide & Seek §6.2): reparametrise every attention head by
//! A = a·N and compare the sharpness of the moved model with that of the original.
//!
//! For each scale a, every head gets A = a·N with N an h×h standard Gaussian matrix; the QK and
//! the VO pair of one head (blocks named `….qk` and `….vo` with the same prefix) share their A.
//! The loss must not change; geodesic sharpness must not change either; adaptive sharpness,
//! which is blind to GL(h), does. Reported: the relative change of the clean loss and, per
//! measure, the ratio of its value at the moved weights to its value at the original weights.
//!
//! If N were drawn once and reused across scales, a alone would be a GL(1) rescaling that
//! adaptive sharpness absorbs, and its ratio would be the same at every a; by default a fresh N
//! is drawn per scale ([`NoiseDraw::PerScale`]), which shows the spread.
//!
//! At full size (MiniLM-L6, 1 024 sentences, 20 iterations) every scale costs three full
//! measurements — about an hour on 2 CPU cores — so the experiment can be run a few scales at a
//! time and [`merge`]d: N depends only on the seed and the scale (not on its position in the
//! list), and the sharpness at the original weights can be passed in
//! ([`InvarianceConfig::original`]) instead of measured again, e.g. from `geosharp measure`.

use std::collections::HashMap;
use std::time::Instant;

use burn::tensor::backend::AutodiffBackend;
use nalgebra::DMatrix;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use crate::geometry::{GeometryConfig, Metric, ZeroWeights};
use crate::host::scalar;
use crate::measures::{self, Landscape, Objective, Progress, Silent, WorstCase, worst_case};
use crate::symmetry::{BlockKind, GroupElement, Symmetric, act};

/// How the Gaussian factor N is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoiseDraw {
    /// A fresh N per scale (the default).
    PerScale,
    /// One N, reused at every scale.
    Shared,
}

/// Settings of the experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InvarianceConfig {
    /// The scales a.
    pub scales: Vec<f64>,
    /// ρ of every measure.
    pub rho: f64,
    /// Auto-PGD iterations.
    pub iterations: usize,
    /// Seed of the Gaussian factors.
    pub seed: u64,
    /// Fresh or shared N.
    pub noise: NoiseDraw,
    /// Zero-weight policy of the adaptive metric.
    pub zero_weights: ZeroWeights,
    /// Sharpness at the original weights (adaptive, inv, mix) when already known from a run
    /// with the same data and settings; measured when `None`.
    #[serde(default)]
    pub original: Option<[f64; 3]>,
}

impl Default for InvarianceConfig {
    fn default() -> Self {
        Self {
            scales: vec![1e-2, 1e-1, 1.0, 1e1, 1e2],
            rho: 0.1,
            iterations: 20,
            seed: 0,
            noise: NoiseDraw::PerScale,
            zero_weights: ZeroWeights::Freeze,
            original: None,
        }
    }
}

/// Ratios of each measure at the moved weights to its value at the original weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ratios {
    /// Adaptive sharpness.
    pub adaptive: Vec<f64>,
    /// Geodesic sharpness, inv.
    pub geodesic_inv: Vec<f64>,
    /// Geodesic sharpness, mix.
    pub geodesic_mix: Vec<f64>,
}

/// The experiment's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InvarianceReport {
    /// The scales a.
    pub scales: Vec<f64>,
    /// |L(moved) − L(original)| / L(original), mean loss over the batches.
    pub loss_rel_change: Vec<f64>,
    /// Sharpness ratios per scale.
    pub ratios: Ratios,
    /// Sharpness at the original weights (adaptive, inv, mix).
    pub original: [f64; 3],
    /// Which N was used.
    pub noise: NoiseDraw,
    /// Settings.
    pub settings: InvarianceConfig,
    /// Wall time in seconds.
    pub seconds: f64,
}

/// The three measures, in the order of [`InvarianceReport::original`].
pub const METRICS: [Metric; 3] = [Metric::Adaptive, Metric::Inv, Metric::Mix];

/// The worst-case measurement of `metric` that the experiment runs at every weight setting.
pub fn measure_settings(config: &InvarianceConfig, metric: Metric) -> WorstCase {
    let geometry = GeometryConfig::new(metric).with_zero_weights(config.zero_weights);
    WorstCase::new(config.rho, geometry).with_iterations(config.iterations)
}

fn sharpness<B: AutodiffBackend, M: Objective<B> + Symmetric>(
    model: &M,
    batches: &[M::Batch],
    config: &InvarianceConfig,
    progress: &mut dyn Progress,
) -> Result<[f64; 3], measures::Error> {
    let landscape = Landscape::new(model.clone(), &model.symmetries())?;
    let mut out = [0.0; 3];
    for (value, metric) in out.iter_mut().zip(METRICS) {
        let wc = measure_settings(config, metric);
        *value = worst_case(&landscape, batches, &wc, &mut Silent)?.sharpness;
        progress.advance(1);
    }
    Ok(out)
}

/// The loss of `model` averaged over `batches` (one forward pass each), accumulated in f64.
pub fn mean_loss<B: AutodiffBackend, M: Objective<B>>(model: &M, batches: &[M::Batch]) -> f64 {
    batches.iter().map(|b| scalar(model.loss(b))).sum::<f64>() / batches.len() as f64
}

/// `model` with every head of every GL(h) block acted on by a·N (shared by the `.qk` and `.vo`
/// blocks of a head).
pub fn reparametrise<B: AutodiffBackend, M: Objective<B> + Symmetric>(
    model: &M,
    scale: f64,
    rng: &mut StdRng,
) -> Result<M, measures::Error> {
    let landscape = Landscape::new(model.clone(), &model.symmetries())?;
    let layout = landscape.layout();
    let mut factors: HashMap<String, Vec<DMatrix<f64>>> = HashMap::new();
    let mut parts = landscape.base().to_vec();
    for (b, block) in layout.blocks().iter().enumerate() {
        let BlockKind::GlPair {
            heads, head_dim, ..
        } = block.kind
        else {
            continue;
        };
        let group = block
            .name
            .strip_suffix(".qk")
            .or_else(|| block.name.strip_suffix(".vo"))
            .unwrap_or(&block.name)
            .to_string();
        let per_head = factors
            .entry(group)
            .or_insert_with(|| {
                (0..heads)
                    .map(|_| {
                        DMatrix::from_fn(head_dim, head_dim, |_, _| {
                            scale * Distribution::<f64>::sample(&StandardNormal, rng)
                        })
                    })
                    .collect()
            })
            .clone();
        parts = act(layout, parts, b, &GroupElement::Gl(per_head))?;
    }
    Ok(landscape.model_at(parts))
}

/// The seed of N at scale `a`: the same N (up to a) at every scale when shared; otherwise one
/// that depends on the seed and the value of a only, so that any subset of the scales draws
/// the N of a full run.
pub fn noise_seed(config: &InvarianceConfig, a: f64) -> u64 {
    match config.noise {
        NoiseDraw::Shared => config.seed,
        NoiseDraw::PerScale => config.seed.wrapping_add(a.to_bits()),
    }
}

/// Why reports cannot be merged.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MergeError {
    /// Nothing to merge.
    #[error("no invariance reports to merge")]
    Empty,
    /// Two reports differ in a setting or in the original sharpness.
    #[error(
        "report {index} differs from the first in {what}: only runs with the same checkpoint, \
         data and settings (other than the scales) can be merged"
    )]
    Mismatch {
        /// Position of the report (0-based).
        index: usize,
        /// What differs.
        what: &'static str,
    },
    /// A scale occurs in two reports.
    #[error("scale {0} occurs in more than one report")]
    DuplicateScale(f64),
}

/// One report from several runs of the same experiment on different scales, sorted by scale;
/// `seconds` is the sum of the runs' times.
pub fn merge(reports: &[InvarianceReport]) -> Result<InvarianceReport, MergeError> {
    let first = reports.first().ok_or(MergeError::Empty)?;
    let settings_but_scales = |r: &InvarianceReport| InvarianceConfig {
        scales: Vec::new(),
        original: None,
        ..r.settings.clone()
    };
    let mut rows: Vec<(f64, f64, [f64; 3])> = Vec::new();
    for (index, report) in reports.iter().enumerate() {
        if settings_but_scales(report) != settings_but_scales(first) {
            return Err(MergeError::Mismatch {
                index,
                what: "the settings",
            });
        }
        if report.original != first.original {
            return Err(MergeError::Mismatch {
                index,
                what: "the sharpness at the original weights",
            });
        }
        for (i, &a) in report.scales.iter().enumerate() {
            if rows.iter().any(|row| row.0 == a) {
                return Err(MergeError::DuplicateScale(a));
            }
            let r = &report.ratios;
            rows.push((
                a,
                report.loss_rel_change[i],
                [r.adaptive[i], r.geodesic_inv[i], r.geodesic_mix[i]],
            ));
        }
    }
    rows.sort_by(|x, y| x.0.total_cmp(&y.0));
    let scales: Vec<f64> = rows.iter().map(|row| row.0).collect();
    let column = |m: usize| rows.iter().map(|row| row.2[m]).collect();
    Ok(InvarianceReport {
        scales: scales.clone(),
        loss_rel_change: rows.iter().map(|row| row.1).collect(),
        ratios: Ratios {
            adaptive: column(0),
            geodesic_inv: column(1),
            geodesic_mix: column(2),
        },
        original: first.original,
        noise: first.noise,
        settings: InvarianceConfig {
            scales,
            ..first.settings.clone()
        },
        seconds: reports.iter().map(|r| r.seconds).sum(),
    })
}

/// Runs the experiment on `model` and `batches`.
pub fn run<B: AutodiffBackend, M: Objective<B> + Symmetric>(
    model: &M,
    batches: &[M::Batch],
    config: &InvarianceConfig,
    progress: &mut dyn Progress,
) -> Result<InvarianceReport, measures::Error> {
    if batches.is_empty() {
        return Err(measures::Error::EmptyData);
    }
    let start = Instant::now();
    let measured = if config.original.is_some() { 0 } else { 1 };
    progress.begin("invariance", (3 * (config.scales.len() + measured)) as u64);
    let original = match config.original {
        Some(known) => known,
        None => sharpness(model, batches, config, progress)?,
    };
    let loss0 = mean_loss(model, batches);
    let mut ratios = Ratios {
        adaptive: Vec::new(),
        geodesic_inv: Vec::new(),
        geodesic_mix: Vec::new(),
    };
    let mut loss_rel_change = Vec::new();
    for &scale in &config.scales {
        let seed = noise_seed(config, scale);
        let moved = reparametrise(model, scale, &mut StdRng::seed_from_u64(seed))?;
        loss_rel_change
            .push((mean_loss(&moved, batches) - loss0).abs() / loss0.abs().max(f64::MIN_POSITIVE));
        let s = sharpness(&moved, batches, config, progress)?;
        ratios.adaptive.push(s[0] / original[0]);
        ratios.geodesic_inv.push(s[1] / original[1]);
        ratios.geodesic_mix.push(s[2] / original[2]);
    }
    progress.end();
    Ok(InvarianceReport {
        scales: config.scales.clone(),
        loss_rel_change,
        ratios,
        original,
        noise: config.noise,
        settings: config.clone(),
        seconds: start.elapsed().as_secs_f64(),
    })
}
