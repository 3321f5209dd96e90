//! The [`Geometry`] trait: the tangent-space geometry of one block at one base point.
//!
//! Every sharpness measure and sharpness-aware optimiser does three things with a perturbation
//! ξ: *measure* it (a norm), *steer* it (Riemannian gradient, horizontal projection) and *apply*
//! it (a geodesic step). A `Geometry` provides exactly these for one block; the whole network
//! is their [`Product`](super::Product). Names follow pymanopt and ManifoldsBase.jl.
//!
//! Which consumer needs which method:
//!
//! | consumer | methods |
//! |---|---|
//! | worst-case sharpness (Auto-PGD) | `riemannian_gradient`, `horizontal`, `norm`, `step` and `step_vjp` (hence `christoffel` and `christoffel_vjp`, or `exp` and `exp_vjp`) |
//! | average-case sharpness | `whiten`, `horizontal`, `step` |
//! | geodesic SAM | `riemannian_gradient`, `norm`, `step` |
//!
//! A geometry is constructed *at* a base point w: everything that depends only on w (the
//! "frame": Gram matrices, inverses, the Sylvester eigenbasis, 1/w) is computed once then, and
//! the methods take tangent vectors only. All metric factors are evaluated at w, never at a
//! perturbed point (spec §2). Tangent vectors are slices of the block's parts (see
//! [`crate::symmetry::BlockLayout`]); scalars stay on the device as one-element f64 tensors.

use burn::prelude::{Backend, Tensor};
use burn::tensor::DType;

use super::error::Error;

/// The Riemannian metric a block uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// ⟨η, ζ⟩ = Σ ηᵢ ζᵢ: plain sharpness and SAM. Every block is elementwise.
    Euclidean,
    /// ⟨η, ζ⟩ = Σ ηᵢ ζᵢ / wᵢ² (Eq. 6): adaptive sharpness and ASAM. Every block is
    /// elementwise; declared symmetries are ignored.
    Adaptive,
    /// The GL-invariant "inv" metric (Eq. 9) on declared blocks, adaptive elsewhere.
    Inv,
    /// The GL-invariant "mix" metric (Eq. 10) on declared blocks, adaptive elsewhere.
    Mix,
}

impl Metric {
    /// Whether declared symmetry blocks are quotiented (inv, mix) or treated elementwise.
    pub fn uses_symmetry(self) -> bool {
        matches!(self, Self::Inv | Self::Mix)
    }

    /// The name used in reports: `euclidean`, `adaptive`, `geodesic_inv`, `geodesic_mix`.
    pub fn measure_name(self) -> &'static str {
        match self {
            Self::Euclidean => "euclidean",
            Self::Adaptive => "adaptive",
            Self::Inv => "geodesic_inv",
            Self::Mix => "geodesic_mix",
        }
    }
}

impl std::fmt::Display for Metric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Euclidean => "euclidean",
            Self::Adaptive => "adaptive",
            Self::Inv => "inv",
            Self::Mix => "mix",
        })
    }
}

impl std::str::FromStr for Metric {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "euclidean" => Ok(Self::Euclidean),
            "adaptive" => Ok(Self::Adaptive),
            "inv" | "geodesic_inv" => Ok(Self::Inv),
            "mix" | "geodesic_mix" => Ok(Self::Mix),
            other => Err(format!(
                "unknown metric '{other}'; expected euclidean, adaptive, inv or mix"
            )),
        }
    }
}

/// How a tangent vector ξ at w becomes a point v(ξ) (spec §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GeodesicStep {
    /// v = w + ξ (a retraction; adaptive sharpness's step).
    FirstOrder,
    /// v = w + ξ − ½ Γ_w(ξ, ξ), the second-order Taylor expansion of the geodesic (Eq. 5).
    SecondOrder,
    /// The geodesic itself, where a closed form exists.
    Exact,
}

/// The geometry of one block at one base point. See the module documentation.
pub trait Geometry<B: Backend> {
    /// A name for messages, e.g. `attention-gl/inv`.
    fn name(&self) -> &'static str;

    /// The base point's parts.
    fn base(&self) -> &[Tensor<B, 3>];

    /// The metric ⟨u, v⟩_w, a one-element tensor accumulated and returned in f64 (whatever the
    /// dtype of the tangent vectors).
    fn inner(&self, u: &[Tensor<B, 3>], v: &[Tensor<B, 3>]) -> Tensor<B, 1>;

    /// The Gram matrix of one to three tangent vectors: ⟨uₐ, u_b⟩_w for a ≤ b in row order
    /// ((0, 0), (0, 1), …; [`gram_pairs`](super::fused::gram_pairs)), one f64 tensor of
    /// k(k+1)/2 elements, each entry `inner(uₐ, u_b)` up to the order of its sums. The default
    /// calls `inner` pair by pair; blocks override it to read each vector once.
    fn gram(&self, u: &[&[Tensor<B, 3>]]) -> Tensor<B, 1> {
        let entries = super::fused::gram_pairs(u.len())
            .into_iter()
            .map(|(a, b)| self.inner(u[a], u[b]))
            .collect();
        Tensor::cat(entries, 0)
    }

    /// The norm ‖u‖_w = √⟨u, u⟩_w.
    fn norm(&self, u: &[Tensor<B, 3>]) -> Tensor<B, 1> {
        self.inner(u, u).clamp_min(0.0).sqrt()
    }

    /// The Riemannian gradient from the Euclidean gradient `egrad`: the vector r with
    /// ⟨r, v⟩_w = ⟨egrad, v⟩ for every v (ManifoldsBase's `change_representer`).
    fn riemannian_gradient(&self, egrad: &[Tensor<B, 3>]) -> Vec<Tensor<B, 3>>;

    /// The metric-orthogonal projection onto the horizontal space.
    fn horizontal(&self, u: &[Tensor<B, 3>]) -> Vec<Tensor<B, 3>>;

    /// The vertical part u − horizontal(u).
    fn vertical(&self, u: &[Tensor<B, 3>]) -> Vec<Tensor<B, 3>> {
        let h = self.horizontal(u);
        u.iter().zip(h).map(|(u, h)| u.clone() - h).collect()
    }

    /// The Christoffel quadratic form Γ_w(ξ, ξ), so that the geodesic satisfies γ̈ = −Γ(γ̇, γ̇).
    fn christoffel(&self, xi: &[Tensor<B, 3>]) -> Result<Vec<Tensor<B, 3>>, Error> {
        let _ = xi;
        Err(Error::Unsupported {
            geometry: self.name(),
            op: "christoffel",
        })
    }

    /// The exponential map exp_w(ξ), where a closed form exists.
    fn exp(&self, xi: &[Tensor<B, 3>]) -> Result<Vec<Tensor<B, 3>>, Error> {
        let _ = xi;
        Err(Error::Unsupported {
            geometry: self.name(),
            op: "exp",
        })
    }

    /// The step a block takes unless told otherwise (ManifoldsBase's
    /// `default_retraction_method`).
    fn default_step(&self) -> GeodesicStep;

    /// v(ξ) by the given method: first order w + ξ, second order w + ξ − ½Γ(ξ, ξ), or exp.
    fn step(&self, xi: &[Tensor<B, 3>], method: GeodesicStep) -> Result<Vec<Tensor<B, 3>>, Error> {
        step_by(self, xi, method)
    }

    /// Whether this block can take `method` and its vector–Jacobian product, checked once
    /// when a product geometry is built so that an unsupported step fails there, naming the
    /// block. The default computes both at ξ = 0, full-size work that every SAM step would pay
    /// again; the blocks here override it with what they know (`tests/geometry.rs` checks
    /// each override against that computation).
    ///
    /// # Errors
    /// [`Error::Unsupported`] naming the missing operation.
    fn check_step(&self, method: GeodesicStep) -> Result<(), Error> {
        let zero: Vec<_> = self.base().iter().map(Tensor::zeros_like).collect();
        self.step(&zero, method)?;
        self.step_vjp(&zero, method, &zero)?;
        Ok(())
    }

    /// The vector–Jacobian product of Γ: for a cotangent c, the a with
    /// ⟨a, δ⟩ = ⟨c, DΓ_ξ\[δ\]⟩ for every δ, where DΓ_ξ\[δ\] = d/dε Γ(ξ + εδ, ξ + εδ) at ε = 0.
    fn christoffel_vjp(
        &self,
        xi: &[Tensor<B, 3>],
        c: &[Tensor<B, 3>],
    ) -> Result<Vec<Tensor<B, 3>>, Error> {
        let _ = (xi, c);
        Err(Error::Unsupported {
            geometry: self.name(),
            op: "christoffel_vjp",
        })
    }

    /// The vector–Jacobian product of exp_w at ξ: J_exp(ξ)ᵀ c.
    fn exp_vjp(&self, xi: &[Tensor<B, 3>], c: &[Tensor<B, 3>]) -> Result<Vec<Tensor<B, 3>>, Error> {
        let _ = (xi, c);
        Err(Error::Unsupported {
            geometry: self.name(),
            op: "exp_vjp",
        })
    }

    /// ∂L/∂ξ from ∂L/∂v at v = v(ξ): J_v(ξ)ᵀ c, the gradient through the step that worst-case
    /// sharpness follows. First order: c; second order: c − ½ (DΓ_ξ)ᵀ c; exact: J_expᵀ c.
    fn step_vjp(
        &self,
        xi: &[Tensor<B, 3>],
        method: GeodesicStep,
        c: &[Tensor<B, 3>],
    ) -> Result<Vec<Tensor<B, 3>>, Error> {
        step_vjp_by(self, xi, method, c)
    }

    /// Maps z with independent standard normal entries to a tangent vector whose law is the
    /// standard Gaussian *of the metric* (covariance G_w⁻¹): the sampler of average-case
    /// sharpness. The result is not projected.
    fn whiten(&self, z: &[Tensor<B, 3>]) -> Vec<Tensor<B, 3>>;
}

/// [`Geometry::step`] from the geometry's `christoffel` or `exp`: the trait's default, which
/// an override calls for the methods it does not specialise.
pub(crate) fn step_by<B: Backend, G: Geometry<B> + ?Sized>(
    geometry: &G,
    xi: &[Tensor<B, 3>],
    method: GeodesicStep,
) -> Result<Vec<Tensor<B, 3>>, Error> {
    match method {
        GeodesicStep::FirstOrder => Ok(add(geometry.base(), xi)),
        GeodesicStep::SecondOrder => {
            let gamma = geometry.christoffel(xi)?;
            Ok(geometry
                .base()
                .iter()
                .zip(xi)
                .zip(gamma)
                .map(|((w, x), g)| w.clone() + x.clone() - g.mul_scalar(0.5))
                .collect())
        }
        GeodesicStep::Exact => geometry.exp(xi),
    }
}

/// [`Geometry::step_vjp`] from the geometry's `christoffel_vjp` or `exp_vjp`: the trait's
/// default, which an override calls for the methods it does not specialise.
pub(crate) fn step_vjp_by<B: Backend, G: Geometry<B> + ?Sized>(
    geometry: &G,
    xi: &[Tensor<B, 3>],
    method: GeodesicStep,
    c: &[Tensor<B, 3>],
) -> Result<Vec<Tensor<B, 3>>, Error> {
    match method {
        GeodesicStep::FirstOrder => Ok(c.to_vec()),
        GeodesicStep::SecondOrder => {
            let a = geometry.christoffel_vjp(xi, c)?;
            Ok(c.iter()
                .zip(a)
                .map(|(c, a)| c.clone() - a.mul_scalar(0.5))
                .collect())
        }
        GeodesicStep::Exact => geometry.exp_vjp(xi, c),
    }
}

/// Part-wise sum a + b.
pub(crate) fn add<B: Backend>(a: &[Tensor<B, 3>], b: &[Tensor<B, 3>]) -> Vec<Tensor<B, 3>> {
    a.iter()
        .zip(b)
        .map(|(a, b)| a.clone() + b.clone())
        .collect()
}

/// The most consecutive products [`dot`] sums in the tensors' own precision.
pub(crate) const DOT_CHUNK: usize = 256;

/// Σ (a ⊙ b) over all entries of a pair of tensors, accumulated in f64, as a one-element f64
/// tensor.
///
/// An f32 product of at least 2·[`DOT_CHUNK`] entries is summed in f32 over chunks of c
/// consecutive entries, c the largest power of two dividing the number of entries up to
/// [`DOT_CHUNK`], and the chunks' sums in f64. A chunk's f32 sum is within
/// (c − 1)·ε_f32·Σ|terms| ≈ 1.5·10⁻⁵·Σ|terms| of exact (at c = 256; ε_f32 = 2⁻²⁴), and about
/// √c·ε_f32 ≈ 10⁻⁶ of it typically, the accuracy of the f32 terms themselves, while the sum over the 10⁴–10⁵ chunks of a large parameter stays as exact as
/// f64 allows. Casting every product to f64 instead (a pass writing twice the tensor's bytes,
/// then a pass reading them) took as long as the two multiplications of a weighted norm.
pub(crate) fn dot<B: Backend>(a: Tensor<B, 3>, b: Tensor<B, 3>) -> Tensor<B, 1> {
    let p = a * b;
    let n = p.shape().num_elements();
    // f64 (and half precision, whose runs of 256 would lose digits) take the plain path.
    if p.dtype() != DType::F32 || n < 2 * DOT_CHUNK {
        return p.cast(DType::F64).sum();
    }
    // 2^(trailing zeros of n), capped: a power of two that divides n.
    let c = 1 << n.trailing_zeros().min(DOT_CHUNK.trailing_zeros());
    p.reshape([n / c, c]).sum_dim(1).cast(DType::F64).sum()
}
