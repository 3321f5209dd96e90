//! Rényi sharpness: the negative Rényi entropy of the normalised |Hessian| spectrum.
//!
//! With pᵢ = |λᵢ| / Σ|λ|,
//!
//! $$ H_\alpha = \frac{1}{1-\alpha} \log \sum_i p_i^\alpha
//!            = \frac{1}{1-\alpha} \log \frac{\operatorname{tr}|H|^\alpha}{(\operatorname{tr}|H|)^\alpha},
//!    \qquad H_1 = \log \operatorname{tr}|H| - \frac{\operatorname{tr}(|H| \log |H|)}{\operatorname{tr}|H|}, $$
//!
//! and Rényi sharpness is −H_α: high when the curvature concentrates in few directions. It is
//! invariant to scaling H. The traces come from SLQ (reference: 15 steps, 100 probes); the
//! standard error is the jackknife over probes.

use serde::Serialize;

use super::error::{Error, finite};
use super::slq::SpectralDensity;
use super::trace::mean_se;

/// |α − 1| below this is treated as α = 1 (Shannon); the two formulas agree to ~1e−12 there.
const SHANNON: f64 = 1e-9;

/// A Rényi sharpness estimate at one order.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Renyi {
    /// α.
    pub alpha: f64,
    /// −H_α.
    pub sharpness: f64,
    /// Jackknife standard error over probes (NaN for one probe).
    pub std_error: f64,
}

fn check_alpha(alpha: f64) -> Result<(), Error> {
    if alpha > 0.0 && alpha.is_finite() {
        Ok(())
    } else {
        Err(Error::InvalidAlpha(alpha))
    }
}

/// −H_α from tr|H|, tr|H|^α (or tr(|H| log|H|) at α = 1).
fn from_traces(alpha: f64, trace: f64, power: f64) -> f64 {
    if (alpha - 1.0).abs() < SHANNON {
        -(trace.ln() - power / trace)
    } else {
        -(power.ln() - alpha * trace.ln()) / (1.0 - alpha)
    }
}

fn power_fn(alpha: f64) -> impl Fn(f64) -> f64 {
    move |t: f64| {
        let a = t.abs();
        if (alpha - 1.0).abs() < SHANNON {
            if a > 0.0 { a * a.ln() } else { 0.0 }
        } else {
            a.powf(alpha)
        }
    }
}

/// Rényi sharpness −H_α of an explicit spectrum (absolute values are taken).
pub fn renyi_sharpness(spectrum: &[f64], alpha: f64) -> Result<f64, Error> {
    check_alpha(alpha)?;
    let trace: f64 = spectrum.iter().map(|l| l.abs()).sum();
    if trace.is_nan() || trace <= 0.0 {
        return Err(Error::NonFinite {
            what: "the Rényi entropy of an all-zero spectrum",
        });
    }
    let power: f64 = spectrum.iter().map(|&l| power_fn(alpha)(l)).sum();
    finite("a Rényi sharpness", from_traces(alpha, trace, power))
}

/// Rényi sharpness −H_α at each of `alphas`, from an SLQ quadrature.
pub fn renyi_from_density(density: &SpectralDensity, alphas: &[f64]) -> Result<Vec<Renyi>, Error> {
    let traces = density.trace_samples(f64::abs);
    let n = traces.len();
    alphas
        .iter()
        .map(|&alpha| {
            check_alpha(alpha)?;
            let powers = density.trace_samples(power_fn(alpha));
            let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
            let sharpness = finite(
                "a Rényi sharpness (is the Hessian zero?)",
                from_traces(alpha, mean(&traces), mean(&powers)),
            )?;
            // Jackknife: leave one probe out.
            let std_error = if n < 2 {
                f64::NAN
            } else {
                let (st, sp) = (traces.iter().sum::<f64>(), powers.iter().sum::<f64>());
                let loo: Vec<f64> = (0..n)
                    .map(|i| {
                        let m = (n - 1) as f64;
                        from_traces(alpha, (st - traces[i]) / m, (sp - powers[i]) / m)
                    })
                    .collect();
                let (_, se) = mean_se(&loo);
                // var_jack = (n − 1)/n Σ (θ₍ᵢ₎ − θ̄)² = (n − 1)² · se(loo)², with se the
                // standard error of the mean of the leave-one-out values.
                se * (n - 1) as f64
            };
            Ok(Renyi {
                alpha,
                sharpness,
                std_error,
            })
        })
        .collect()
}
