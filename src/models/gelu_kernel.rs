//! GELU and its exact derivative over an f32 buffer, in a loop the compiler vectorises.
//!
//! Why not libm: its `erfcf` (and the f64 `erf` that Burn's ndarray backend calls for
//! `Tensor::erf`) is a scalar function with a branch per range, about 15 ns an element here,
//! which made GELU a tenth of MiniLM's forward+backward. Here Φ(x) = ½ erfc(−x/√2) and
//! φ(x) = exp(−x²/2)/√(2π) come from branch-free arithmetic on each element:
//!
//! * with a = |x|/√2, erfc(a) = erfcx(a) · exp(−a²) and exp(−a²) = exp(−x²/2) = √(2π) φ(x),
//!   so one exponential serves Φ and φ; Φ(x) = ½ erfc(a) for x < 0 and 1 − ½ erfc(a)
//!   otherwise — no cancellation on the left tail, where 1 + erf(x/√2) would lose everything;
//! * erfcx(a) (1 + 2a) = p(q) with q = (a − 2)/(a + 2) ∈ [−1, 1): a smooth function from 1 to
//!   2/√π, fitted by a degree-9 polynomial (`ERFCX_P`);
//! * exp(−x²/2) with x²/2 split into an exact head (the top 12 bits of x, squared) and a small
//!   tail, so that the rounding of x² does not grow with x² (`exp_minus_half_square`).
//!
//! Accuracy: Φ within 3·10⁻⁷ relative of the f64 closed form over the whole f32 line (the
//! tests check it on a dense grid), against ≈ 1.2·10⁻⁷ for one rounding. Rust never contracts
//! a·b + c into a fused multiply–add, so the AVX2 and AVX-512 versions chosen at run time
//! compute exactly what the baseline does: results do not depend on the machine.

/// Coefficients of p(q) ≈ erfcx(a)·(1 + 2a), q = (a − 2)/(a + 2), constant term first: a
/// least-squares Chebyshev fit of degree 9 on q ∈ [−1, 0.67] (a ∈ [0, 10.1]; beyond a = 9.4
/// the factor exp(−a²) is below f32's range) against 30-digit mpmath, then rounded to f32.
/// Relative error 1.7·10⁻⁸ in exact arithmetic, 1.1·10⁻⁷ evaluated in f32 by Horner's rule.
/// `tools/fit_erfcx.py` recomputes them.
const ERFCX_P: [f32; 10] = [
    1.276_978_4,
    -0.092_764,
    -0.166_031_08,
    0.164_055_62,
    -0.054_207_627,
    -0.008_061_96,
    0.008_642_157,
    0.001_320_760_2,
    -0.001_240_412_1,
    -0.000_408_993_7,
];

/// 1/√2 and 1/√(2π) in f32.
const FRAC_1_SQRT_2: f32 = std::f32::consts::FRAC_1_SQRT_2;
const FRAC_1_SQRT_2PI: f32 = 0.398_942_3;

/// ln 2 = LN2_HI + LN2_LO for Cody–Waite reduction: LN2_HI = 0x3F317200 has its low 9 bits
/// zero (15 significant bits), so k·LN2_HI is exact for |k| ≤ 126.
pub(crate) const LN2_HI: f32 = 0.693_145_75;
/// The rest of ln 2 after [`LN2_HI`].
pub(crate) const LN2_LO: f32 = 1.428_606_8e-6;
/// 1.5·2²³: v + ROUND − ROUND is v rounded to the nearest integer for |v| < 2²².
pub(crate) const ROUND: f32 = 12_582_912.0;

/// exp(r) for a reduced argument |r| ≤ 0.35 by its Taylor polynomial of degree 7, in Horner
/// form (remainder < 3·10⁻⁸ relative).
#[inline(always)]
pub(crate) fn exp_reduced(r: f32) -> f32 {
    let mut e = 1.0 / 5040.0;
    for c in [
        1.0 / 720.0,
        1.0 / 120.0,
        1.0 / 24.0,
        1.0 / 6.0,
        0.5,
        1.0,
        1.0,
    ] {
        e = e * r + c;
    }
    e
}

/// exp(−x²/2), to within a few ulps for every f32 x.
///
/// x = x_h + x_l with x_h the top 12 significant bits of x, so x²/2 = t_h + δ with
/// t_h = x_h²/2 exact in f32 and δ = x_l (x_h + x_l/2) small. Cody–Waite reduction:
/// k = round(−x²/(2 ln 2)), r = (−t_h − k ln2_hi) − δ − k ln2_lo, where ln2_hi has 15
/// significant bits so that k ln2_hi is exact for |k| ≤ 126 and the first difference is exact;
/// then exp(r) for |r| ≤ 0.35 by its Taylor polynomial of degree 7 (remainder < 3·10⁻⁸), and
/// 2^k from the exponent bits. Zero once |x| > 13.19 (x²/2 > 86.99), where exp(−x²/2) is about
/// to leave f32's normal range; NaN for NaN.
#[inline(always)]
fn exp_minus_half_square(x: f32) -> f32 {
    /// The largest x²/2 handled: exp(−87) ≈ 1.6·10⁻³⁸ is still a normal f32; and the largest
    /// |x| (13.19²/2 = 86.99) below it.
    const LIMIT: f32 = 87.0;
    const X_MAX: f32 = 13.19;
    let xh = f32::from_bits(x.to_bits() & 0xFFFF_F000);
    let xl = x - xh;
    let th = 0.5 * xh * xh;
    let delta = xl * (xh + 0.5 * xl);
    // Capped so that k stays in range (and finite for x = ±∞, whose result is set below).
    let t = (th + delta).min(LIMIT);
    let k = (-t * std::f32::consts::LOG2_E + ROUND) - ROUND;
    let r = ((-th - k * LN2_HI) - delta) - k * LN2_LO;
    let e = exp_reduced(r);
    // 2^k for k ∈ [−126, 0]: the biased exponent k + 127 in bits 23..30.
    let two_k = f32::from_bits(((k as i32 + 127) as u32) << 23);
    if x.abs() > X_MAX { 0.0 } else { e * two_k }
}

/// Φ(x) and φ(x) of the standard normal distribution (see the module docs).
#[inline(always)]
fn cdf_and_pdf(x: f32) -> (f32, f32) {
    let e = exp_minus_half_square(x);
    // Past a = 10 the tail is zero anyway (e is); capping a keeps q finite for x = ±∞.
    let a = (x.abs() * FRAC_1_SQRT_2).min(10.0);
    let q = (a - 2.0) / (a + 2.0);
    let mut p = ERFCX_P[9];
    for c in ERFCX_P[..9].iter().rev() {
        p = p * q + c;
    }
    // ½ erfc(a) = Φ(−|x|).
    let tail = 0.5 * p / (1.0 + 2.0 * a) * e;
    let cdf = if x < 0.0 { tail } else { 1.0 - tail };
    (cdf, e * FRAC_1_SQRT_2PI)
}

/// y ← GELU(y) = y Φ(y) and dy ← GELU′(y) = Φ(y) + y φ(y), element by element.
#[inline(always)]
fn gelu_and_derivative_kernel(y: &mut [f32], dy: &mut [f32]) {
    for (y, dy) in y.iter_mut().zip(dy.iter_mut()) {
        let x = *y;
        let (cdf, pdf) = cdf_and_pdf(x);
        *y = x * cdf;
        *dy = cdf + x * pdf;
    }
}

/// y ← GELU(y), element by element.
#[inline(always)]
fn gelu_kernel(y: &mut [f32]) {
    for y in y.iter_mut() {
        *y *= cdf_and_pdf(*y).0;
    }
}

/// The kernels compiled for AVX-512 and AVX2 (taken when the CPU has them; the baseline x86-64
/// build only assumes SSE2, four lanes) — the same arithmetic, so the same results.
#[cfg(target_arch = "x86_64")]
mod wide {
    #[target_feature(enable = "avx512f")]
    pub fn gelu_and_derivative_avx512(y: &mut [f32], dy: &mut [f32]) {
        super::gelu_and_derivative_kernel(y, dy)
    }
    #[target_feature(enable = "avx2")]
    pub fn gelu_and_derivative_avx2(y: &mut [f32], dy: &mut [f32]) {
        super::gelu_and_derivative_kernel(y, dy)
    }
    #[target_feature(enable = "avx512f")]
    pub fn gelu_avx512(y: &mut [f32]) {
        super::gelu_kernel(y)
    }
    #[target_feature(enable = "avx2")]
    pub fn gelu_avx2(y: &mut [f32]) {
        super::gelu_kernel(y)
    }
}

/// y ← GELU(y) and, when `dy` is given (of the same length), dy ← GELU′(y), with the widest
/// vector instructions the CPU has.
///
/// # Panics
/// If `dy` is given and its length is not `y`'s (a programming error).
pub fn gelu_in_place(y: &mut [f32], dy: Option<&mut [f32]>) {
    if let Some(dy) = &dy {
        assert_eq!(y.len(), dy.len(), "GELU′ needs one slot per value");
    }
    #[cfg(target_arch = "x86_64")]
    {
        let avx512 = std::arch::is_x86_feature_detected!("avx512f");
        let avx2 = std::arch::is_x86_feature_detected!("avx2");
        // SAFETY: each function is called only when the CPU has its target feature.
        unsafe {
            match dy {
                Some(dy) => {
                    if avx512 {
                        wide::gelu_and_derivative_avx512(y, dy)
                    } else if avx2 {
                        wide::gelu_and_derivative_avx2(y, dy)
                    } else {
                        gelu_and_derivative_kernel(y, dy)
                    }
                }
                None if avx512 => wide::gelu_avx512(y),
                None if avx2 => wide::gelu_avx2(y),
                None => gelu_kernel(y),
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    match dy {
        Some(dy) => gelu_and_derivative_kernel(y, dy),
        None => gelu_kernel(y),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Φ(x) in f64 from libm's erfc, accurate to an ulp or two of f64.
    fn phi(x: f64) -> f64 {
        0.5 * libm::erfc(-x / std::f64::consts::SQRT_2)
    }

    /// Every 2⁻¹⁰ from −14 to 14: the whole range where Φ(x) or 1 − Φ(x) is a normal f32.
    fn grid() -> Vec<f32> {
        (-14 * 1024..=14 * 1024)
            .map(|i| i as f32 / 1024.0)
            .collect()
    }

    #[test]
    fn cdf_and_pdf_are_accurate_relative_to_their_size_everywhere() {
        let (mut worst_cdf, mut worst_tail, mut worst_pdf) = (0.0f64, 0.0f64, 0.0f64);
        for x in grid() {
            let (cdf, pdf) = cdf_and_pdf(x);
            let x64 = x as f64;
            let exact = phi(x64);
            let exact_pdf = (-x64 * x64 / 2.0).exp() / (2.0 * std::f64::consts::PI).sqrt();
            if exact > f32::MIN_POSITIVE as f64 {
                worst_cdf = worst_cdf.max((cdf as f64 - exact).abs() / exact);
            }
            // 1 − Φ on the right, where Φ rounds to 1 but the tail is what GELU′ sees.
            let (tail, exact_tail) = (1.0 - cdf as f64, phi(-x64));
            if x > 0.0 && exact_tail > 1e-6 {
                worst_tail = worst_tail.max((tail - exact_tail).abs() / exact_tail);
            }
            if exact_pdf > f32::MIN_POSITIVE as f64 {
                worst_pdf = worst_pdf.max((pdf as f64 - exact_pdf).abs() / exact_pdf);
            }
        }
        eprintln!("relative errors: Φ {worst_cdf:e}, φ {worst_pdf:e}, 1 − Φ {worst_tail:e}");
        assert!(worst_cdf < 3e-7, "Φ relative error {worst_cdf:e}");
        assert!(worst_pdf < 3e-7, "φ relative error {worst_pdf:e}");
        // 1 − Φ(x) is computed as tail = ½ erfc(x/√2) and rounded in 1 − tail: at most an ulp
        // of 1 (6e-8) absolute, i.e. 6e-2 relative where the tail is 1e-6.
        assert!(worst_tail < 0.1, "1 − Φ relative error {worst_tail:e}");
    }

    #[test]
    fn extremes_give_the_limits() {
        for (x, cdf) in [
            (20.0f32, 1.0f32),
            (-20.0, 0.0),
            (f32::INFINITY, 1.0),
            (f32::NEG_INFINITY, 0.0),
        ] {
            assert_eq!(cdf_and_pdf(x), (cdf, 0.0), "Φ and φ at {x}");
        }
        assert!((cdf_and_pdf(0.0).0 - 0.5).abs() <= 6e-8);
        assert!(cdf_and_pdf(f32::NAN).0.is_nan() && cdf_and_pdf(f32::NAN).1.is_nan());
        let mut y = [30.0, -30.0, f32::INFINITY];
        let mut dy = [0.0; 3];
        gelu_in_place(&mut y, Some(&mut dy));
        assert_eq!(y, [30.0, 0.0, f32::INFINITY]);
        assert_eq!(dy[..2], [1.0, 0.0]);
    }

    /// The dispatched (vector) kernels give the scalar kernel's results bit for bit, including
    /// lengths that leave a remainder after the vector loop.
    #[test]
    fn every_vector_width_gives_the_same_bits() {
        let xs: Vec<f32> = grid().into_iter().step_by(7).collect();
        let (mut y, mut dy) = (xs.clone(), vec![0.0; xs.len()]);
        gelu_in_place(&mut y, Some(&mut dy));
        let (mut y_only, mut y_scalar, mut dy_scalar) =
            (xs.clone(), xs.clone(), vec![0.0; xs.len()]);
        gelu_in_place(&mut y_only, None);
        for (y, dy) in y_scalar.iter_mut().zip(&mut dy_scalar) {
            let x = *y;
            let (cdf, pdf) = std::hint::black_box(cdf_and_pdf(std::hint::black_box(x)));
            *y = x * cdf;
            *dy = cdf + x * pdf;
        }
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&y), bits(&y_scalar));
        assert_eq!(bits(&dy), bits(&dy_scalar));
        assert_eq!(bits(&y_only), bits(&y_scalar));
    }
}
