//! Significance of Kendall's τ by permutation: how often does a random pairing of the same
//! values give a τ at least as far from 0?
//!
//! Permuting y leaves the tie counts n₁, n₂ of both variables unchanged, so τ-a and τ-b are
//! the same multiple of S = C − D under every permutation and share one p-value; the test runs
//! on S, an integer, so "at least as extreme" is decided exactly. The null distribution is
//! enumerated over all M! permutations when M ≤ [`EXACT_MAX`] and sampled otherwise, with the
//! add-one estimate p = (1 + #{|S*| ≥ |S|}) / (1 + N) that keeps a sampled p-value valid
//! (never 0). Unlike the normal approximation this is exact with ties and for small families —
//! which correlation studies with 30 models are.

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::Serialize;

use super::kendall::{concordance, tau_a, tau_b};

/// Families up to this size get the exact null distribution (8! = 40 320 permutations).
pub const EXACT_MAX: usize = 8;

/// Kendall's τ with its two-sided permutation p-value.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct KendallTest {
    /// Number of pairs (xᵢ, yᵢ).
    pub n: usize,
    /// τ-a.
    pub tau_a: f64,
    /// τ-b.
    pub tau_b: f64,
    /// P(|S*| ≥ |S|) under random pairing.
    pub p_value: f64,
    /// Whether the p-value enumerates every permutation (else: sampled).
    pub exact: bool,
}

/// τ-a, τ-b and the two-sided permutation p-value of (x, y); `permutations` random
/// permutations (seeded by `seed`) when there are more than [`EXACT_MAX`] pairs. NaN entries
/// for fewer than two pairs or mismatched lengths.
pub fn kendall_test(x: &[f64], y: &[f64], permutations: usize, seed: u64) -> KendallTest {
    let n = x.len();
    let (tau_a, tau_b) = (tau_a(x, y), tau_b(x, y));
    if n != y.len() || n < 2 {
        return KendallTest {
            n,
            tau_a,
            tau_b,
            p_value: f64::NAN,
            exact: true,
        };
    }
    let observed = concordance(x, y).abs();
    let mut perm = y.to_vec();
    let extreme = |p: &[f64]| concordance(x, p).abs() >= observed;
    if n <= EXACT_MAX {
        let (mut hits, mut total) = (0u64, 0u64);
        heap_permutations(&mut perm, &mut |p| {
            total += 1;
            hits += u64::from(extreme(p));
        });
        KendallTest {
            n,
            tau_a,
            tau_b,
            p_value: hits as f64 / total as f64,
            exact: true,
        }
    } else {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut hits = 0u64;
        for _ in 0..permutations {
            perm.shuffle(&mut rng);
            hits += u64::from(extreme(&perm));
        }
        KendallTest {
            n,
            tau_a,
            tau_b,
            p_value: (1 + hits) as f64 / (1 + permutations) as f64,
            exact: false,
        }
    }
}

/// Calls `visit` on every permutation of `v` (Heap's algorithm, iterative).
fn heap_permutations(v: &mut [f64], visit: &mut dyn FnMut(&[f64])) {
    let n = v.len();
    let mut c = vec![0usize; n];
    visit(v);
    let mut i = 0;
    while i < n {
        if c[i] < i {
            if i % 2 == 0 {
                v.swap(0, i);
            } else {
                v.swap(c[i], i);
            }
            visit(v);
            c[i] += 1;
            i = 0;
        } else {
            c[i] = 0;
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heap_visits_every_permutation_once() {
        let mut v = [1.0, 2.0, 3.0, 4.0];
        let mut seen = Vec::new();
        heap_permutations(&mut v, &mut |p| seen.push(p.to_vec()));
        assert_eq!(seen.len(), 24);
        seen.sort_by(|a, b| a.partial_cmp(b).unwrap());
        seen.dedup();
        assert_eq!(seen.len(), 24);
    }

    #[test]
    fn a_perfect_order_of_four_has_p_one_in_twelve() {
        // Only the identity and the reversal reach |S| = 6: p = 2/24.
        let t = kendall_test(&[1.0, 2.0, 3.0, 4.0], &[1.0, 2.0, 3.0, 4.0], 0, 0);
        assert!(t.exact);
        assert!((t.p_value - 2.0 / 24.0).abs() < 1e-15);
    }
}
