//! Kendall's rank correlation τ, in the two variants used in sharpness studies.
//!
//! For pairs (tᵢ, sᵢ), i = 1..M, with n₀ = M(M − 1)/2 pairs, C concordant and D discordant:
//!
//! * τ-a = (C − D) / n₀ = 2/(M(M−1)) Σ_{i<j} sign(tᵢ − tⱼ) sign(sᵢ − sⱼ) — the paper's Table 1;
//! * τ-b = (C − D) / √((n₀ − n₁)(n₀ − n₂)), with n₁ = Σ tₖ(tₖ − 1)/2 over groups of tied x values
//!   and n₂ likewise for y — which reaches ±1 even with ties.
//!
//! Both are computed over all pairs, O(M²): studies have tens to thousands of models.

/// C − D and the tie counts of x and y over all pairs.
fn pair_counts(x: &[f64], y: &[f64]) -> (f64, f64, f64, f64) {
    let m = x.len();
    let (mut s, mut tx, mut ty) = (0.0, 0.0, 0.0);
    for i in 0..m {
        for j in i + 1..m {
            let a = sign(x[i] - x[j]);
            let b = sign(y[i] - y[j]);
            s += a * b;
            tx += f64::from(a == 0.0);
            ty += f64::from(b == 0.0);
        }
    }
    let n0 = (m * m.saturating_sub(1) / 2) as f64;
    (s, n0, tx, ty)
}

/// S = C − D, the numerator of both τs (0 for mismatched lengths).
pub(crate) fn concordance(x: &[f64], y: &[f64]) -> f64 {
    if x.len() != y.len() {
        return 0.0;
    }
    pair_counts(x, y).0
}

fn sign(v: f64) -> f64 {
    if v > 0.0 {
        1.0
    } else if v < 0.0 {
        -1.0
    } else {
        0.0
    }
}

/// Kendall τ-a. NaN when fewer than two pairs of values are given or lengths differ.
pub fn tau_a(x: &[f64], y: &[f64]) -> f64 {
    if x.len() != y.len() || x.len() < 2 {
        return f64::NAN;
    }
    let (s, n0, _, _) = pair_counts(x, y);
    s / n0
}

/// Kendall τ-b. NaN when lengths differ, fewer than two values are given, or one variable is
/// constant (τ-b is undefined then).
pub fn tau_b(x: &[f64], y: &[f64]) -> f64 {
    if x.len() != y.len() || x.len() < 2 {
        return f64::NAN;
    }
    // n1 (resp. n2) counts the pairs tied in x (resp. y), which is Σ t(t − 1)/2 over tie groups.
    let (s, n0, n1, n2) = pair_counts(x, y);
    let denominator = ((n0 - n1) * (n0 - n2)).sqrt();
    if denominator > 0.0 {
        s / denominator
    } else {
        f64::NAN
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfectly_ordered_and_reversed_pairs_give_plus_and_minus_one() {
        let x = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(tau_a(&x, &[10.0, 20.0, 30.0, 40.0]), 1.0);
        assert_eq!(tau_b(&x, &[4.0, 3.0, 2.0, 1.0]), -1.0);
    }

    #[test]
    fn one_swap_of_four_gives_two_thirds() {
        // 6 pairs, one discordant: (5 − 1)/6.
        assert!((tau_a(&[1.0, 2.0, 3.0, 4.0], &[1.0, 3.0, 2.0, 4.0]) - 4.0 / 6.0).abs() < 1e-15);
    }

    #[test]
    fn ties_lower_tau_a_but_not_tau_b() {
        // x has one tie: pairs 6, tied-in-x 1, all others concordant.
        let x = [1.0, 1.0, 2.0, 3.0];
        let y = [1.0, 1.0, 2.0, 3.0];
        assert!((tau_a(&x, &y) - 5.0 / 6.0).abs() < 1e-15);
        assert!((tau_b(&x, &y) - 1.0).abs() < 1e-15);
        // scipy.stats.kendalltau([1,1,2,3],[1,2,2,3]).statistic = 0.8
        assert!((tau_b(&x, &[1.0, 2.0, 2.0, 3.0]) - 0.8).abs() < 1e-12);
    }

    #[test]
    fn undefined_cases_are_nan_not_a_panic() {
        assert!(tau_a(&[1.0], &[1.0]).is_nan());
        assert!(tau_b(&[1.0, 1.0], &[1.0, 2.0]).is_nan());
        assert!(tau_a(&[1.0, 2.0], &[1.0]).is_nan());
    }
}
