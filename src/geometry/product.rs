//! The network's geometry: the product of its blocks' geometries.
//!
//! The metric of the product is the sum of the block metrics, so the norm is
//! ‖ξ‖_w = (Σ_b ‖ξ_b‖²_w)^{1/2} — one global radius ρ over all blocks, which for elementwise
//! blocks is exactly the global ‖δ ⊘ |w|‖₂ of adaptive sharpness. Projections, gradients and
//! steps act block by block.
//!
//! Which geometry a block gets:
//!
//! | metric | GL(h) pair | GL(1) rescaling | elementwise |
//! |---|---|---|---|
//! | Euclidean | elementwise/euclidean | elementwise/euclidean | elementwise/euclidean |
//! | Adaptive | elementwise/adaptive | elementwise/adaptive | elementwise/adaptive |
//! | Inv, Mix | attention-gl (2nd order) | rescaling (exact) | elementwise/adaptive (1st order) |
//!
//! The default steps are the paper's recipe; [`StepPolicy`] overrides them per block kind.

use std::ops::Range;

use burn::prelude::{Backend, Tensor};
use rayon::prelude::*;

use super::attention_gl::AttentionGl;
use super::base::{GeodesicStep, Geometry, Metric};
use super::elementwise::{Elementwise, ZeroWeights};
use super::error::Error;
use super::fused;
use super::rescaling::Rescaling;
use super::tangent::Tangent;
use crate::symmetry::{BlockKind, BlockLayout};

/// Geodesic steps per block kind; `None` keeps the block's default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StepPolicy {
    /// GL(h) pairs (default second order).
    pub gl: Option<GeodesicStep>,
    /// GL(1) rescaling pairs (default exact).
    pub rescale: Option<GeodesicStep>,
    /// Elementwise blocks, and every block under the Euclidean or adaptive metric
    /// (default first order).
    pub elementwise: Option<GeodesicStep>,
}

impl StepPolicy {
    /// The same step for every block.
    pub fn all(step: GeodesicStep) -> Self {
        Self {
            gl: Some(step),
            rescale: Some(step),
            elementwise: Some(step),
        }
    }
}

/// ASAM's variant of the adaptive metric on elementwise blocks: T = |w| + η instead of |w|,
/// and optionally biases left unscaled (T = 1).
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AdaptiveOffset {
    /// η in T = |w| + η; 0 is the adaptive metric proper (the paper's, and adaptive
    /// sharpness's). ASAM's reference code uses 0.01.
    pub eta: f64,
    /// Give parameters whose path ends in `bias` or `beta` the Euclidean metric (T = 1), as
    /// ASAM's reference code does (it scales only parameters named `weight`).
    pub unscaled_biases: bool,
}

impl AdaptiveOffset {
    /// ASAM's reference setting: η = 0.01, biases unscaled.
    pub fn asam() -> Self {
        Self {
            eta: 0.01,
            unscaled_biases: true,
        }
    }
}

/// Whether a parameter path names a bias (last segment `bias`, or LayerNorm's `beta`).
fn is_bias(path: &str) -> bool {
    matches!(path.rsplit('.').next(), Some("bias" | "beta"))
}

/// Everything that selects a network geometry.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GeometryConfig {
    /// The metric.
    pub metric: Metric,
    /// Geodesic steps per block kind.
    pub steps: StepPolicy,
    /// Policy for exactly-zero weights under metrics that divide by them.
    pub zero_weights: ZeroWeights,
    /// The adaptive metric's offset on elementwise blocks (ASAM); zero by default.
    #[serde(default)]
    pub offset: AdaptiveOffset,
}

impl GeometryConfig {
    /// The metric with default steps and zero weights refused.
    pub fn new(metric: Metric) -> Self {
        Self {
            metric,
            steps: StepPolicy::default(),
            zero_weights: ZeroWeights::Error,
            offset: AdaptiveOffset::default(),
        }
    }

    /// The same configuration with an adaptive offset (ASAM).
    pub fn with_offset(mut self, offset: AdaptiveOffset) -> Self {
        self.offset = offset;
        self
    }

    /// The same configuration with `steps`.
    pub fn with_steps(mut self, steps: StepPolicy) -> Self {
        self.steps = steps;
        self
    }

    /// The same configuration with a zero-weight policy.
    pub fn with_zero_weights(mut self, zero_weights: ZeroWeights) -> Self {
        self.zero_weights = zero_weights;
        self
    }
}

/// A block's geometry, shareable between the threads that run blocks side by side.
type Block<B> = Box<dyn Geometry<B> + Send + Sync>;

/// The product geometry of all blocks at one base point.
///
/// Where the device is the host, the blocks' operations run side by side on rayon's threads
/// (each block's own operations may spread further): a GL(h) block's work is dozens of small
/// batched products on `[heads, n, h]` tensors, each too small to keep two threads busy
/// without waiting on each other, so running whole blocks at once halves that waiting. The
/// results are collected and summed in block order, so they do not depend on the thread count.
/// On any other device the blocks run one after another, as the device queues them anyway.
pub struct Product<B: Backend> {
    blocks: Vec<Block<B>>,
    /// Whether blocks run side by side (the device is the host).
    parallel: bool,
    active: Vec<bool>,
    steps: Vec<GeodesicStep>,
    ranges: Vec<Range<usize>>,
    names: Vec<String>,
}

impl<B: Backend> std::fmt::Debug for Product<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Product")
            .field("blocks", &self.names)
            .field("steps", &self.steps)
            .finish()
    }
}

impl<B: Backend> Product<B> {
    /// Builds every block's geometry at the point `base` (block coordinates of `layout`).
    pub fn new(
        layout: &BlockLayout,
        base: Vec<Tensor<B, 3>>,
        config: &GeometryConfig,
    ) -> Result<Self, Error> {
        let n = layout.blocks().len();
        let (mut blocks, mut steps, mut ranges, mut names) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        for (b, block) in layout.blocks().iter().enumerate() {
            let range = layout.parts_of(b);
            let parts = base[range.clone()].to_vec();
            let name = block.name.as_str();
            let zeros = config.zero_weights;
            let (geometry, step): (Block<B>, _) = match (config.metric, block.kind) {
                (Metric::Euclidean, _) => (
                    Box::new(Elementwise::euclidean(name, parts)?),
                    config.steps.elementwise,
                ),
                (Metric::Adaptive, _) | (_, BlockKind::Elementwise { .. })
                    if config.offset.unscaled_biases && is_bias(name) =>
                {
                    (
                        Box::new(Elementwise::euclidean(name, parts)?),
                        config.steps.elementwise,
                    )
                }
                (Metric::Adaptive, _) | (_, BlockKind::Elementwise { .. }) => (
                    Box::new(Elementwise::adaptive_offset(
                        name,
                        parts,
                        config.offset.eta,
                        zeros,
                    )?),
                    config.steps.elementwise,
                ),
                (metric, BlockKind::Rescale { .. }) => (
                    Box::new(Rescaling::new(name, parts, metric, zeros)?),
                    config.steps.rescale,
                ),
                (metric, BlockKind::GlPair { .. }) => (
                    Box::new(AttentionGl::new(name, parts, metric)?),
                    config.steps.gl,
                ),
            };
            let step = step.unwrap_or_else(|| geometry.default_step());
            // Refuse an unsupported step (or its derivative) now, naming the block, not
            // mid-measurement.
            geometry.check_step(step).map_err(|e| Error::InBlock {
                index: b,
                block: block.name.clone(),
                source: Box::new(e),
            })?;
            blocks.push(geometry);
            steps.push(step);
            ranges.push(range);
            names.push(block.name.clone());
        }
        Ok(Self {
            parallel: fused::host_backend::<B>(),
            active: vec![true; blocks.len()],
            blocks,
            steps,
            ranges,
            names,
        })
    }

    /// The same geometry with only the blocks whose name satisfies `keep` perturbed: the
    /// Riemannian gradient, the horizontal projection and sampled noise are zero on the
    /// others, so a solver never moves them and their step stays at w. Returns the geometry
    /// and the number of blocks kept.
    pub fn restrict(mut self, keep: impl Fn(&str) -> bool) -> (Self, usize) {
        self.active = self.names.iter().map(|n| keep(n)).collect();
        let kept = self.active.iter().filter(|a| **a).count();
        (self, kept)
    }

    /// The same geometry with its blocks run one after another on the host too, for callers
    /// that already keep every thread busy, and for comparisons: the results are the same bit
    /// for bit (`tests/fused.rs`).
    pub fn sequential(mut self) -> Self {
        self.parallel = false;
        self
    }

    /// Whether block `b` is perturbed.
    pub fn is_active(&self, b: usize) -> bool {
        self.active[b]
    }

    /// Number of blocks.
    pub fn len(&self) -> usize {
        self.blocks.len()
    }

    /// Whether there are no blocks.
    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    /// Block `b`'s geometry.
    pub fn block(&self, b: usize) -> &dyn Geometry<B> {
        self.blocks[b].as_ref()
    }

    /// Block names, in order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The step each block takes.
    pub fn steps(&self) -> &[GeodesicStep] {
        &self.steps
    }

    /// The base point's parts.
    pub fn base(&self) -> Vec<Tensor<B, 3>> {
        self.blocks.iter().flat_map(|g| g.base().to_vec()).collect()
    }

    /// Block `b`'s parts of the tangent vector `u`.
    pub fn block_parts<'a>(&self, b: usize, u: &'a Tangent<B>) -> &'a [Tensor<B, 3>] {
        &u.parts[self.ranges[b].clone()]
    }

    /// `f(b)` for every block b, in block order: side by side where the device is the host
    /// (see the type's docs), else one after another.
    fn map_blocks<T: Send>(&self, f: impl Fn(usize) -> T + Send + Sync) -> Vec<T> {
        if self.parallel {
            (0..self.len()).into_par_iter().map(f).collect()
        } else {
            (0..self.len()).map(f).collect()
        }
    }

    /// The parts `f(b)` of every block b, concatenated in block order (by [`map_blocks`]).
    ///
    /// [`map_blocks`]: Self::map_blocks
    fn concat_blocks(
        &self,
        f: impl Fn(usize) -> Vec<Tensor<B, 3>> + Send + Sync,
    ) -> Vec<Tensor<B, 3>> {
        self.map_blocks(f).into_iter().flatten().collect()
    }

    /// Applies `f` to every active block's parts; inactive blocks get zeros.
    fn per_block(
        &self,
        u: &Tangent<B>,
        f: impl Fn(usize, &[Tensor<B, 3>]) -> Vec<Tensor<B, 3>> + Send + Sync,
    ) -> Tangent<B> {
        Tangent::new(self.concat_blocks(|b| {
            let parts = self.block_parts(b, u);
            if self.active[b] {
                f(b, parts)
            } else {
                parts.iter().map(Tensor::zeros_like).collect()
            }
        }))
    }

    /// ⟨u, v⟩_w = Σ_b ⟨u_b, v_b⟩_w, the blocks' terms added in block order.
    pub fn inner(&self, u: &Tangent<B>, v: &Tangent<B>) -> Tensor<B, 1> {
        self.map_blocks(|b| self.blocks[b].inner(self.block_parts(b, u), self.block_parts(b, v)))
            .into_iter()
            .reduce(|a, b| a + b)
            .expect("a model has at least one block")
    }

    /// The Gram matrix of one to three tangent vectors, ⟨uₐ, u_b⟩_w = Σ_b ⟨uₐ_b, u_b_b⟩_w for
    /// a ≤ b in row order ([`gram_pairs`](super::fused::gram_pairs)), as one f64 tensor of
    /// k(k+1)/2 elements, the blocks' terms added in block order: each entry is
    /// [`inner`](Self::inner) up to the order of the sums within a block (bit for bit on
    /// elementwise blocks), and each block reads each vector once.
    pub fn gram(&self, u: &[&Tangent<B>]) -> Tensor<B, 1> {
        self.map_blocks(|b| {
            let parts: Vec<&[Tensor<B, 3>]> = u.iter().map(|v| self.block_parts(b, v)).collect();
            self.blocks[b].gram(&parts)
        })
        .into_iter()
        .reduce(|a, b| a + b)
        .expect("a model has at least one block")
    }

    /// ‖u‖_w.
    pub fn norm(&self, u: &Tangent<B>) -> Tensor<B, 1> {
        self.inner(u, u).clamp_min(0.0).sqrt()
    }

    /// ‖u_b‖²_w for every block b.
    pub fn block_sq_norms(&self, u: &Tangent<B>) -> Vec<Tensor<B, 1>> {
        self.map_blocks(|b| {
            let p = self.block_parts(b, u);
            self.blocks[b].inner(p, p)
        })
    }

    /// The Riemannian gradient from a Euclidean gradient.
    pub fn riemannian_gradient(&self, egrad: &Tangent<B>) -> Tangent<B> {
        self.per_block(egrad, |b, p| self.blocks[b].riemannian_gradient(p))
    }

    /// The horizontal projection.
    pub fn horizontal(&self, u: &Tangent<B>) -> Tangent<B> {
        self.per_block(u, |b, p| self.blocks[b].horizontal(p))
    }

    /// The vertical part.
    pub fn vertical(&self, u: &Tangent<B>) -> Tangent<B> {
        self.per_block(u, |b, p| self.blocks[b].vertical(p))
    }

    /// Maps standard normal coordinates to a metric-standard-normal tangent (not projected).
    pub fn whiten(&self, z: &Tangent<B>) -> Tangent<B> {
        self.per_block(z, |b, p| self.blocks[b].whiten(p))
    }

    /// ∂L/∂ξ from ∂L/∂v at v = v(ξ), block by block through each block's step (zero on
    /// inactive blocks).
    pub fn step_vjp(&self, xi: &Tangent<B>, cotangent: &Tangent<B>) -> Tangent<B> {
        self.per_block(cotangent, |b, c| {
            self.blocks[b]
                .step_vjp(self.block_parts(b, xi), self.steps[b], c)
                .expect("steps are validated when the product is built")
        })
    }

    /// v(ξ): every block's configured geodesic step (parts of a point).
    pub fn step(&self, xi: &Tangent<B>) -> Vec<Tensor<B, 3>> {
        self.concat_blocks(|b| {
            self.blocks[b]
                .step(self.block_parts(b, xi), self.steps[b])
                .expect("steps are validated when the product is built")
        })
    }
}
