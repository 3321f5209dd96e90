//! Stochastic trace estimators: Hutchinson and Hutch++.
//!
//! Hutchinson: tr(H) = E[zᵀHz] for Rademacher z; the mean over n probes has standard error
//! std/√n, large when H has a few dominant eigenvalues. Hutch++ (Meyer, Musco, Musco &
//! Woodruff 2021) spends a third of its m products on a sketch Q = orth(H S) of the top
//! eigenspace (Gaussian S), takes tr(QᵀHQ) exactly and Hutchinson only on the deflated
//! remainder (I − QQᵀ)H(I − QQᵀ): error O(1/m) instead of O(1/√m).

use burn::prelude::Backend;

use super::error::{Error, check_count, finite};
use super::operator::{LinearOperator, dot, norm};
use crate::geometry::{Probes, Tangent};

/// An estimate with its standard error (NaN where none can be computed from one sample).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Estimate {
    /// The estimate.
    pub value: f64,
    /// Its standard error.
    pub std_error: f64,
    /// Hessian-vector products used.
    pub products: usize,
}

/// Mean and standard error of the mean (n − 1 in the variance; NaN for one sample).
pub(crate) fn mean_se(samples: &[f64]) -> (f64, f64) {
    let n = samples.len() as f64;
    let mean = samples.iter().sum::<f64>() / n;
    if samples.len() < 2 {
        return (mean, f64::NAN);
    }
    let var = samples.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, (var / n).sqrt())
}

/// Hutchinson's estimate of tr(H) from `probes` Rademacher vectors.
pub fn hutchinson<B: Backend, O: LinearOperator<B> + ?Sized>(
    op: &O,
    probes: usize,
    seed: u64,
) -> Result<Estimate, Error> {
    check_count("trace probes", probes, 1)?;
    let mut draws = Probes::new(seed);
    let samples = (0..probes)
        .map(|_| {
            let z = op.rademacher(&mut draws);
            finite("a Hutchinson sample", dot(&z, &op.apply(&z)?))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let (value, std_error) = mean_se(&samples);
    Ok(Estimate {
        value,
        std_error,
        products: probes,
    })
}

/// Hutch++'s estimate of tr(H) from `products` Hessian-vector products (a multiple of 3; at
/// least 3). The standard error is that of the Hutchinson part on the deflated remainder.
pub fn hutch_plus_plus<B: Backend, O: LinearOperator<B> + ?Sized>(
    op: &O,
    products: usize,
    seed: u64,
) -> Result<Estimate, Error> {
    check_count("Hutch++ products", products, 3)?;
    let k = products / 3;
    let mut probes = Probes::new(seed);
    // Q = orth(H S), S with k Gaussian columns (modified Gram–Schmidt, twice). Gaussian, not
    // Rademacher: when k reaches the dimension, Q must span all of it for the estimate to be
    // exact, and ±1 columns are often dependent there.
    let mut q: Vec<Tangent<B>> = Vec::with_capacity(k);
    for _ in 0..k {
        let mut y = op.apply(&op.gaussian(&mut probes))?;
        let before = norm(&y);
        for _ in 0..2 {
            for b in &q {
                y = y.axpy(-dot(&y, b), b);
            }
        }
        let n = norm(&y);
        // A column (numerically) in the span of the others adds nothing: H has rank < k.
        if n > 1e-10 * before {
            q.push(y.scale(1.0 / n));
        }
    }
    let mut exact = 0.0;
    for b in &q {
        exact += finite("a Hutch++ sketch term", dot(b, &op.apply(b)?))?;
    }
    let deflate = |mut g: Tangent<B>| {
        for b in &q {
            g = g.axpy(-dot(&g, b), b);
        }
        g
    };
    let mut samples = Vec::with_capacity(k);
    for _ in 0..k {
        let g = deflate(op.rademacher(&mut probes));
        let hg = deflate(op.apply(&g)?);
        samples.push(finite("a Hutch++ sample", dot(&g, &hg))?);
    }
    let (rest, se) = mean_se(&samples);
    Ok(Estimate {
        value: exact + rest,
        std_error: se,
        products: k + q.len() + k,
    })
}
