//! Host-side f64 linear algebra of a GL(h) pair, computed once per base point.
//!
//! Everything the per-iteration device code needs that depends only on the base point (G, H)
//! is computed here, per head, in f64 with nalgebra, and uploaded once: the Gram matrices
//! S_G = GᵀG and S_H = HᵀH, their inverses and square roots, and the eigenbasis that
//! diagonalises the (corrected) Sylvester equation of the inv-metric horizontal projection.
//!
//! # The Sylvester equation (spec §2; the paper's printed form is wrong)
//! The inv horizontal projection needs X = Λᵀ solving
//!
//! $$ A X + X A = B, \qquad A = S_G S_H . $$
//!
//! With R = S_G^{1/2} and R S_H R = Q diag(d) Qᵀ, A = P diag(d) P⁻¹ where P = R Q and
//! P⁻¹ = Qᵀ R⁻¹, so X = P [ (P⁻¹ B P) ⊘ (dᵢ + dⱼ) ] P⁻¹. Only the two products with B depend on
//! the tangent vector; [`SylvesterBasis`] holds the rest.
//!
//! # Regularisation
//! Gram matrices are used as S + εI with ε = [`GRAM_EPS`]·tr(S)/h, negligible next to every
//! eigenvalue of a well-conditioned factor. A factor whose Gram matrix has
//! λ_min/λ_max below [`MIN_RCOND`] is rank-deficient for the inv and mix metrics and is refused.

use nalgebra::{DMatrix, SymmetricEigen};

/// Relative ridge added to Gram matrices: S + (GRAM_EPS · tr(S)/h) I.
pub const GRAM_EPS: f64 = 1e-13;

/// Smallest accepted reciprocal condition number λ_min/λ_max of a Gram matrix.
pub const MIN_RCOND: f64 = 1e-12;

/// A symmetric positive definite matrix with its inverse and square roots.
#[derive(Debug, Clone)]
pub struct SpdFactors {
    /// S (regularised).
    pub s: DMatrix<f64>,
    /// S⁻¹.
    pub inv: DMatrix<f64>,
    /// S^{1/2}.
    pub sqrt: DMatrix<f64>,
    /// S^{-1/2}.
    pub inv_sqrt: DMatrix<f64>,
    /// λ_min/λ_max of S before regularisation.
    pub rcond: f64,
}

/// The Gram matrix MᵀM.
pub fn gram(m: &DMatrix<f64>) -> DMatrix<f64> {
    m.transpose() * m
}

/// Factors a symmetric positive semi-definite `s` (regularised as documented above).
/// Returns `Err(rcond)` when s is numerically rank-deficient or not finite.
pub fn spd_factors(s: &DMatrix<f64>) -> Result<SpdFactors, f64> {
    let h = s.nrows();
    if s.iter().any(|x| !x.is_finite()) {
        return Err(f64::NAN);
    }
    let sym = (s + s.transpose()) * 0.5;
    let eig = SymmetricEigen::new(sym.clone());
    let max = eig.eigenvalues.max();
    let min = eig.eigenvalues.min();
    let rcond = if max > 0.0 { min / max } else { 0.0 };
    if rcond.is_nan() || rcond < MIN_RCOND {
        return Err(rcond);
    }
    let eps = GRAM_EPS * sym.trace() / h as f64;
    let lambda = eig.eigenvalues.map(|l| l + eps);
    let v = &eig.eigenvectors;
    let with = |f: &dyn Fn(f64) -> f64| v * DMatrix::from_diagonal(&lambda.map(f)) * v.transpose();
    Ok(SpdFactors {
        s: with(&|l| l),
        inv: with(&|l| 1.0 / l),
        sqrt: with(&|l| l.sqrt()),
        inv_sqrt: with(&|l| 1.0 / l.sqrt()),
        rcond,
    })
}

/// The eigenbasis that diagonalises X ↦ A X + X A for A = S_G S_H.
#[derive(Debug, Clone)]
pub struct SylvesterBasis {
    /// P = S_G^{1/2} Q.
    pub p: DMatrix<f64>,
    /// P⁻¹ = Qᵀ S_G^{-1/2}.
    pub p_inv: DMatrix<f64>,
    /// 1 / (dᵢ + dⱼ), the elementwise divisor in the eigenbasis.
    pub d_inv: DMatrix<f64>,
}

/// Builds the Sylvester eigenbasis from the factors of S_G and the matrix S_H.
pub fn sylvester_basis(sg: &SpdFactors, sh: &DMatrix<f64>) -> SylvesterBasis {
    let r = &sg.sqrt;
    let m = r * sh * r;
    let m = (&m + m.transpose()) * 0.5;
    let eig = SymmetricEigen::new(m);
    let q = eig.eigenvectors;
    let d = eig.eigenvalues;
    let h = d.len();
    let d_inv = DMatrix::from_fn(h, h, |i, j| 1.0 / (d[i] + d[j]));
    SylvesterBasis {
        p: r * &q,
        p_inv: q.transpose() * &sg.inv_sqrt,
        d_inv,
    }
}

impl SylvesterBasis {
    /// Solves A X + X A = B (host reference of the batched device solve).
    pub fn solve(&self, b: &DMatrix<f64>) -> DMatrix<f64> {
        let y = (&self.p_inv * b * &self.p).component_mul(&self.d_inv);
        &self.p * y * &self.p_inv
    }
}

/// The inv-metric horizontal projection of one head on the host, in f64: returns
/// (ξ_G + G Λ, ξ_H − H Λᵀ) with Λ from the corrected Sylvester equation. The device code
/// computes the same thing batched over heads; this is its reference.
pub fn horizontal_inv(
    g: &DMatrix<f64>,
    h: &DMatrix<f64>,
    xi_g: &DMatrix<f64>,
    xi_h: &DMatrix<f64>,
) -> Result<(DMatrix<f64>, DMatrix<f64>), f64> {
    let sg = spd_factors(&gram(g))?;
    let sh = spd_factors(&gram(h))?;
    let basis = sylvester_basis(&sg, &sh.s);
    let b = &sg.s * h.transpose() * xi_h - xi_g.transpose() * g * &sh.s;
    let x = basis.solve(&b);
    Ok((xi_g + g * x.transpose(), xi_h - h * x))
}

/// The mix-metric horizontal projection of one head on the host (closed form):
/// Λ = ½ [ξ_Hᵀ H S_H⁻¹ − S_G⁻¹ Gᵀ ξ_G].
pub fn horizontal_mix(
    g: &DMatrix<f64>,
    h: &DMatrix<f64>,
    xi_g: &DMatrix<f64>,
    xi_h: &DMatrix<f64>,
) -> Result<(DMatrix<f64>, DMatrix<f64>), f64> {
    let sg = spd_factors(&gram(g))?;
    let sh = spd_factors(&gram(h))?;
    let lambda = (xi_h.transpose() * h * &sh.inv - &sg.inv * g.transpose() * xi_g) * 0.5;
    Ok((xi_g + g * &lambda, xi_h - h * lambda.transpose()))
}
