//! Spearman's rank correlation: Pearson's correlation of the mid-ranks (ties share the average
//! of the ranks they span).

/// Mid-ranks (1-based) of `x`.
pub fn ranks(x: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..x.len()).collect();
    order.sort_by(|&a, &b| x[a].total_cmp(&x[b]));
    let mut r = vec![0.0; x.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && x[order[j + 1]] == x[order[i]] {
            j += 1;
        }
        let mid = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            r[k] = mid;
        }
        i = j + 1;
    }
    r
}

/// Pearson's correlation; NaN when a variable is constant or lengths differ.
pub fn pearson(x: &[f64], y: &[f64]) -> f64 {
    if x.len() != y.len() || x.len() < 2 {
        return f64::NAN;
    }
    let n = x.len() as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let cov: f64 = x.iter().zip(y).map(|(a, b)| (a - mx) * (b - my)).sum();
    let vx: f64 = x.iter().map(|a| (a - mx).powi(2)).sum();
    let vy: f64 = y.iter().map(|b| (b - my).powi(2)).sum();
    let denominator = (vx * vy).sqrt();
    if denominator > 0.0 {
        cov / denominator
    } else {
        f64::NAN
    }
}

/// Spearman's ρ.
pub fn spearman(x: &[f64], y: &[f64]) -> f64 {
    pearson(&ranks(x), &ranks(y))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ties_get_mid_ranks() {
        assert_eq!(ranks(&[10.0, 20.0, 20.0, 5.0]), vec![2.0, 3.5, 3.5, 1.0]);
    }

    #[test]
    fn monotone_transformations_keep_rho_at_one() {
        let x = [0.1, 0.5, 0.2, 3.0];
        let y: Vec<f64> = x.iter().map(|v: &f64| v.exp().powi(3)).collect();
        assert!((spearman(&x, &y) - 1.0).abs() < 1e-15);
    }

    #[test]
    fn matches_the_textbook_formula_without_ties() {
        // 1 − 6 Σ d² / (n(n² − 1)) with d = (0, 1, −1, 0, 0): 1 − 12/120 = 0.9
        let rho = spearman(&[1.0, 2.0, 3.0, 4.0, 5.0], &[1.0, 3.0, 2.0, 4.0, 5.0]);
        assert!((rho - 0.9).abs() < 1e-15);
    }
}
