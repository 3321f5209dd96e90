//! The Lanczos process with full reorthogonalisation, and what its tridiagonal matrix gives:
//! Ritz values (extreme eigenvalues) and Gauss quadrature nodes and weights (for SLQ).
//!
//! After m steps from a unit vector q₁, Qₘᵀ H Qₘ = Tₘ, tridiagonal with diagonal α and
//! off-diagonal β. Plain three-term Lanczos loses orthogonality as Ritz values converge and
//! produces spurious copies of them; here every new vector is orthogonalised against all
//! previous ones twice (classical Gram–Schmidt twice, "twice is enough"), which costs m stored
//! vectors of the operator's size and keeps Qₘ orthonormal to working precision. With m = D
//! steps the Ritz values are the eigenvalues of H.

use burn::prelude::{Backend, Tensor};
use burn::tensor::DType;
use nalgebra::{DMatrix, SymmetricEigen};

use super::error::{Error, check_count, finite};
use super::operator::{LinearOperator, dot, norm};
use crate::geometry::{Probes, Tangent};
use crate::host;

/// A breakdown β below this fraction of the largest |α| or β seen means the Krylov space is
/// invariant: the process stops early with exact Ritz values. 1e−10 is far above f64 round-off
/// and far below any meaningful coupling.
const BREAKDOWN: f64 = 1e-10;

/// Which end of the spectrum "top" means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Order {
    /// The largest eigenvalues λ (the sharpest ascent directions; what "λ_max" usually means).
    #[default]
    LargestAlgebraic,
    /// The eigenvalues of largest |λ| (what power iteration converges to).
    LargestMagnitude,
}

/// The tridiagonal matrix Tₘ of a Lanczos run.
#[derive(Debug, Clone, PartialEq)]
pub struct Tridiagonal {
    /// The diagonal α₁ … αₘ.
    pub alpha: Vec<f64>,
    /// The off-diagonal β₁ … βₘ₋₁.
    pub beta: Vec<f64>,
    /// βₘ, the norm of the residual after the last step (0 at a breakdown).
    pub residual: f64,
}

/// Eigenvalues θⱼ of Tₘ (ascending), the Gauss quadrature weights τⱼ² (squared first components
/// of its eigenvectors, summing to 1) and the residual bounds βₘ|sⱼ,ₘ| (|θⱼ − λ| ≤ bound for
/// some eigenvalue λ of H).
#[derive(Debug, Clone, PartialEq)]
pub struct RitzValues {
    /// θⱼ, ascending.
    pub values: Vec<f64>,
    /// τⱼ².
    pub weights: Vec<f64>,
    /// βₘ |sⱼ,ₘ|.
    pub bounds: Vec<f64>,
}

impl Tridiagonal {
    /// The number of steps m.
    pub fn len(&self) -> usize {
        self.alpha.len()
    }

    /// Whether the run took no step.
    pub fn is_empty(&self) -> bool {
        self.alpha.is_empty()
    }

    /// Tₘ as a dense matrix.
    pub fn matrix(&self) -> DMatrix<f64> {
        let m = self.len();
        DMatrix::from_fn(m, m, |i, j| {
            if i == j {
                self.alpha[i]
            } else if i + 1 == j {
                self.beta[i]
            } else if j + 1 == i {
                self.beta[j]
            } else {
                0.0
            }
        })
    }

    /// The Ritz values, quadrature weights and residual bounds (host, f64; m is small).
    pub fn ritz(&self) -> RitzValues {
        let m = self.len();
        let eigen = SymmetricEigen::new(self.matrix());
        let mut order: Vec<usize> = (0..m).collect();
        order.sort_by(|&a, &b| eigen.eigenvalues[a].total_cmp(&eigen.eigenvalues[b]));
        RitzValues {
            values: order.iter().map(|&j| eigen.eigenvalues[j]).collect(),
            weights: order
                .iter()
                .map(|&j| eigen.eigenvectors[(0, j)].powi(2))
                .collect(),
            bounds: order
                .iter()
                .map(|&j| self.residual * eigen.eigenvectors[(m - 1, j)].abs())
                .collect(),
        }
    }
}

/// Runs m = `steps` Lanczos steps of `op` from `start` (normalised here), with full
/// reorthogonalisation. Stops early at an invariant subspace.
pub fn lanczos<B: Backend, O: LinearOperator<B> + ?Sized>(
    op: &O,
    start: &Tangent<B>,
    steps: usize,
) -> Result<Tridiagonal, Error> {
    check_count("Lanczos steps", steps, 1)?;
    let start = op.restrict(start.clone());
    let start_norm = finite("the Lanczos start vector", norm(&start))?;
    if start_norm == 0.0 {
        return Err(Error::NonFinite {
            what: "the Lanczos start vector's inverse norm (it is zero)",
        });
    }
    let steps = steps.min(op.dim());
    let mut basis = vec![start.scale(1.0 / start_norm)];
    let mut alpha: Vec<f64> = Vec::with_capacity(steps);
    let mut beta: Vec<f64> = Vec::with_capacity(steps);
    let mut scale = 0.0_f64;
    let mut residual = 0.0;
    for j in 0..steps {
        let q = &basis[j];
        let mut w = op.apply(q)?;
        let a = finite("a Lanczos coefficient", dot(&w, q))?;
        alpha.push(a);
        w = w.axpy(-a, q);
        if j > 0 {
            w = w.axpy(-beta[j - 1], &basis[j - 1]);
        }
        for _ in 0..2 {
            w = orthogonalise(w, &basis);
        }
        let b = finite("a Lanczos coefficient", norm(&w))?;
        scale = scale.max(a.abs()).max(b);
        if j + 1 == steps || b <= BREAKDOWN * scale {
            residual = if b <= BREAKDOWN * scale { 0.0 } else { b };
            break;
        }
        beta.push(b);
        basis.push(w.scale(1.0 / b));
    }
    Ok(Tridiagonal {
        alpha,
        beta,
        residual,
    })
}

/// w − Σᵢ ⟨w, qᵢ⟩ qᵢ, with every inner product read back in one transfer.
fn orthogonalise<B: Backend>(w: Tangent<B>, basis: &[Tangent<B>]) -> Tangent<B> {
    let dots: Vec<Tensor<B, 1>> = basis
        .iter()
        .map(|q| {
            let per_part: Vec<Tensor<B, 1>> = q
                .parts
                .iter()
                .zip(&w.parts)
                .map(|(a, b)| (a.clone().cast(DType::F64) * b.clone().cast(DType::F64)).sum())
                .collect();
            Tensor::cat(per_part, 0).sum()
        })
        .collect();
    let coefficients = host::to_f64_vec(Tensor::cat(dots, 0));
    basis
        .iter()
        .zip(coefficients)
        .fold(w, |w, (q, c)| w.axpy(-c, q))
}

/// The `k` extreme Ritz values of an m-step Lanczos run from a seeded Rademacher start, in the
/// requested order, each with its residual bound. Extreme eigenvalues converge first; m of 20
/// to 50 gives the top few to several digits on network Hessians.
pub fn top_eigenvalues<B: Backend, O: LinearOperator<B> + ?Sized>(
    op: &O,
    k: usize,
    steps: usize,
    order: Order,
    seed: u64,
) -> Result<Vec<(f64, f64)>, Error> {
    check_count("k", k, 1)?;
    let start = op.rademacher(&mut Probes::new(seed));
    let ritz = lanczos(op, &start, steps.max(k))?.ritz();
    let mut pairs: Vec<(f64, f64)> = ritz.values.into_iter().zip(ritz.bounds).collect();
    match order {
        Order::LargestAlgebraic => pairs.sort_by(|a, b| b.0.total_cmp(&a.0)),
        Order::LargestMagnitude => pairs.sort_by(|a, b| b.0.abs().total_cmp(&a.0.abs())),
    }
    pairs.truncate(k);
    Ok(pairs)
}
