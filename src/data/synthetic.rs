//! Synthetic sparse regression, the task of the diagonal-network study.
//!
//! x ~ N(0, I_d), y = xᵀβ* + σ ε with β* k-sparse (k nonzero entries of ±1 at random
//! positions; the paper's "90 %-sparse β*" is k = d/10). With n < d the problem is
//! overparametrised: many β interpolate, and which one gradient descent finds depends on how
//! the network is trained. For isotropic Gaussian inputs the test loss has a closed form,
//! E(xᵀβ − y)² = ‖β − β*‖² + σ², so no test sample (and no sampling noise) is needed.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, StandardNormal};

/// A sparse linear regression problem.
#[derive(Debug, Clone, PartialEq)]
pub struct SparseRegression {
    /// Dimension d.
    pub dim: usize,
    /// The k-sparse ground truth β*.
    pub beta_star: Vec<f64>,
    /// Training inputs, row-major `[n, d]`.
    pub x: Vec<f64>,
    /// Training targets `[n]`.
    pub y: Vec<f64>,
    /// Label noise standard deviation σ.
    pub noise: f64,
}

impl SparseRegression {
    /// Draws a problem with `n` training points in dimension `dim`, `nonzeros` active
    /// coordinates and label noise `noise`, from `seed`.
    pub fn sample(dim: usize, nonzeros: usize, n: usize, noise: f64, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut positions: Vec<usize> = (0..dim).collect();
        positions.shuffle(&mut rng);
        let mut beta_star = vec![0.0; dim];
        for &p in positions.iter().take(nonzeros.min(dim)) {
            beta_star[p] = if rng.random::<bool>() { 1.0 } else { -1.0 };
        }
        let x: Vec<f64> = (0..n * dim)
            .map(|_| StandardNormal.sample(&mut rng))
            .collect();
        let y = (0..n)
            .map(|i| {
                let row = &x[i * dim..(i + 1) * dim];
                let clean: f64 = row.iter().zip(&beta_star).map(|(a, b)| a * b).sum();
                let e: f64 = StandardNormal.sample(&mut rng);
                clean + noise * e
            })
            .collect();
        Self {
            dim,
            beta_star,
            x,
            y,
            noise,
        }
    }

    /// Number of training points.
    pub fn n(&self) -> usize {
        self.y.len()
    }

    /// Population test loss E(xᵀβ − y)² = ‖β − β*‖² + σ² for x ~ N(0, I).
    pub fn test_loss(&self, beta: &[f64]) -> f64 {
        let err: f64 = beta
            .iter()
            .zip(&self.beta_star)
            .map(|(b, s)| (b - s).powi(2))
            .sum();
        err + self.noise * self.noise
    }

    /// Mean training loss (1/n) Σ (xᵢᵀβ − yᵢ)².
    pub fn train_loss(&self, beta: &[f64]) -> f64 {
        let d = self.dim;
        let total: f64 = (0..self.n())
            .map(|i| {
                let row = &self.x[i * d..(i + 1) * d];
                let p: f64 = row.iter().zip(beta).map(|(a, b)| a * b).sum();
                (p - self.y[i]).powi(2)
            })
            .sum();
        total / self.n() as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn has_exactly_k_unit_nonzeros_and_interpolates_its_truth() {
        let p = SparseRegression::sample(200, 20, 50, 0.0, 3);
        let nz: Vec<_> = p.beta_star.iter().filter(|b| **b != 0.0).collect();
        assert_eq!(nz.len(), 20);
        assert!(nz.iter().all(|b| b.abs() == 1.0));
        assert!(p.train_loss(&p.beta_star) < 1e-24);
        assert_eq!(p.test_loss(&p.beta_star), 0.0);
        assert_eq!(p.test_loss(&vec![0.0; 200]), 20.0);
    }

    #[test]
    fn the_same_seed_gives_the_same_problem() {
        assert_eq!(
            SparseRegression::sample(10, 2, 5, 0.1, 9),
            SparseRegression::sample(10, 2, 5, 0.1, 9)
        );
    }
}
