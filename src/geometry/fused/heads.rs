//! The GL(h) blocks' per-head products on the host, in f64 from f32 buffers.
//!
//! Why: a GL(h) block's operations (Christoffel form, its VJP, the horizontal projection, the
//! Riemannian gradient, the metric) are products of `[heads, n, h]` parts with h×h matrices,
//! and of two parts with each other, taken in f64 (see `attention_gl`'s precision notes). As
//! Burn operations each is a cast to f64 (a fresh buffer of twice the bytes), a batched
//! product through `matrixmultiply`, element-wise sums of n×h intermediates, and a cast back:
//! on MiniLM at batch 128, about 0.11 s of every Auto-PGD iteration under inv and mix. Head by
//! head, every such operation is made of two kernels:
//!
//! * [`cross`]: Xᵀ Y, h×h, for two n×h parts;
//! * [`combine_into`]: Σₜ Xₜ Aₜ + Σₛ cₛ Yₛ, n×h, for parts Xₜ, Yₛ, h×h matrices Aₜ and scalars
//!   cₛ, written once (f32 for a result, f64 for an intermediate).
//!
//! A head's f32 rows are widened to f64 once per operation ([`widen`], tens of kilobytes that
//! stay in cache for every product of that head), never as a whole f64 copy of a part, and
//! [`per_head_pair`] runs the heads on rayon's threads, each writing its rows of both sides'
//! results. The h×h algebra between the kernels is the caller's, per head, in nalgebra.
//!
//! Every sum is an f64 fused multiply-add in a fixed order (rows, then terms in the order
//! given), so the results do not depend on the thread count or the vector width (`mul_add` is
//! correctly rounded whatever the CPU). The kernels are compiled for AVX-512 and AVX2 besides
//! the baseline (`widest!`) in register tiles of four rows by up to 32 columns: 16 AVX-512
//! registers of accumulators, fed by one vector load and one broadcast per four multiply-adds.

use burn::prelude::{Backend, Tensor};
use nalgebra::DMatrix;
use rayon::prelude::*;

/// Σᵢ xᵢ yᵢ of f64 values (eight interleaved accumulators, summed in order), for the GL(h)
/// blocks' Gram entries.
pub use super::gram::dot_f64_lanes as dot;
use super::{HostF32, from_host};
use crate::models::fused::widest;

/// An f32 `[heads, rows, h]` tensor's buffer on the host, seen as `heads` row-major rows×h
/// matrices.
pub struct Heads {
    host: HostF32,
    heads: usize,
    rows: usize,
    h: usize,
}

impl Heads {
    /// The buffer of `x`, when `B` is burn-ndarray and `x` an f32 tensor in standard layout;
    /// `None` otherwise (the caller then uses Burn's operations).
    pub fn of<B: Backend>(x: &Tensor<B, 3>) -> Option<Self> {
        let [heads, rows, h] = x.dims();
        let host = HostF32::of(x)?;
        (host.slice().len() == heads * rows * h).then_some(Self {
            host,
            heads,
            rows,
            h,
        })
    }

    /// Head k's rows×h matrix, row-major.
    pub fn head(&self, k: usize) -> &[f32] {
        let len = self.rows * self.h;
        &self.host.slice()[k * len..(k + 1) * len]
    }

    /// `[heads, rows, h]`.
    pub fn dims(&self) -> [usize; 3] {
        [self.heads, self.rows, self.h]
    }
}

/// `x` widened to f64: the kernels read f64 rows (a broadcast or a vector load per element,
/// where widening in the loop took a conversion per use). One head's rows·h values, a
/// fraction 1/h of a product's arithmetic.
pub fn widen(x: &[f32]) -> Vec<f64> {
    x.iter().map(|v| f64::from(*v)).collect()
}

/// Xᵀ Y (h×h, f64) for one head's row-major rows×h X and Y.
///
/// # Panics
/// If the lengths differ or are not a multiple of h (programming errors).
pub fn cross(x: &[f64], y: &[f64], h: usize) -> DMatrix<f64> {
    assert_eq!(
        x.len(),
        y.len(),
        "the parts of a cross product share a shape"
    );
    assert!(h > 0 && x.len() % h == 0, "rows of h values");
    let mut out = vec![0.0; h * h];
    cross_head(x, y, x.len() / h, h, &mut out);
    DMatrix::from_row_slice(h, h, &out)
}

/// Row-major copies of h×h matrices (nalgebra stores columns).
fn row_major(products: &[(&[f64], &DMatrix<f64>)], h: usize) -> Vec<Vec<f64>> {
    products
        .iter()
        .map(|(_, a)| {
            assert_eq!(a.shape(), (h, h), "h×h matrices");
            a.transpose().as_slice().to_vec()
        })
        .collect()
}

/// Σₜ Xₜ Aₜ + Σₛ cₛ Yₛ for one head's row-major rows×h parts Xₜ, Yₛ (f64), h×h matrices Aₜ and
/// scalars cₛ, written to `out` (rows×h, f32 or f64). Each element is one f64 sum — the
/// products' terms k = 0..h in order, product by product, then the scaled terms — rounded
/// once.
///
/// # Panics
/// If a part's length is not `out`'s, or a matrix is not h×h (programming errors).
pub fn combine_into<O: Store>(
    products: &[(&[f64], &DMatrix<f64>)],
    scaled: &[(f64, &[f64])],
    h: usize,
    out: &mut [O],
) {
    assert!(h > 0 && out.len() % h == 0, "rows of h values");
    for x in products
        .iter()
        .map(|p| p.0)
        .chain(scaled.iter().map(|s| s.1))
    {
        assert_eq!(
            x.len(),
            out.len(),
            "the terms of a combination share a shape"
        );
    }
    let a = row_major(products, h);
    let prods: Vec<(&[f64], &[f64])> = products
        .iter()
        .zip(&a)
        .map(|((x, _), a)| (*x, a.as_slice()))
        .collect();
    O::combine(&prods, scaled, out.len() / h, h, out);
}

/// The element types [`combine_into`] writes: f32 results, f64 intermediates.
pub trait Store: Copy {
    /// The f64 sum rounded to this type.
    fn from_f64(v: f64) -> Self;
    /// [`combine_tiles`] compiled by `widest!` for this type.
    #[doc(hidden)]
    fn combine(
        prods: &[(&[f64], &[f64])],
        scaled: &[(f64, &[f64])],
        rows: usize,
        h: usize,
        out: &mut [Self],
    );
}

impl Store for f32 {
    fn from_f64(v: f64) -> Self {
        v as f32
    }
    fn combine(
        prods: &[(&[f64], &[f64])],
        scaled: &[(f64, &[f64])],
        rows: usize,
        h: usize,
        out: &mut [Self],
    ) {
        combine_f32(prods, scaled, rows, h, out);
    }
}

impl Store for f64 {
    fn from_f64(v: f64) -> Self {
        v
    }
    fn combine(
        prods: &[(&[f64], &[f64])],
        scaled: &[(f64, &[f64])],
        rows: usize,
        h: usize,
        out: &mut [Self],
    ) {
        combine_f64(prods, scaled, rows, h, out);
    }
}

/// Two f32 results of the given `[heads, rows, h]` shapes on the host backend `B`, head k of
/// both written by `f(k, head k of the first, head k of the second)`, heads on rayon's threads.
///
/// # Panics
/// If the shapes have different head counts, or `B` is not the host backend (programming
/// errors).
pub fn per_head_pair<B: Backend>(
    dims: [[usize; 3]; 2],
    f: impl Fn(usize, &mut [f32], &mut [f32]) + Sync,
) -> Vec<Tensor<B, 3>> {
    assert_eq!(dims[0][0], dims[1][0], "both sides have the same heads");
    let len = |d: [usize; 3]| d[1] * d[2];
    let mut first = vec![0.0f32; dims[0][0] * len(dims[0])];
    let mut second = vec![0.0f32; dims[1][0] * len(dims[1])];
    first
        .par_chunks_mut(len(dims[0]).max(1))
        .zip(second.par_chunks_mut(len(dims[1]).max(1)))
        .enumerate()
        .for_each(|(k, (a, b))| f(k, a, b));
    [(first, dims[0]), (second, dims[1])]
        .into_iter()
        .map(|(values, d)| from_host(values, &d).expect("the host backend"))
        .collect()
}

widest! {
    /// One head of [`cross`]: `out` (row-major h×h) = Xᵀ Y for row-major rows×h X and Y, in
    /// tiles of four rows of the result by up to 32 columns, whose accumulators (16 AVX-512
    /// registers) stay in registers while the rows of X and Y stream past.
    fn cross_head(x: &[f64], y: &[f64], rows: usize, h: usize, out: &mut [f64]) {
        let mut a0 = 0;
        while a0 < h {
            let ra = if a0 + 4 <= h { 4 } else { 1 };
            let mut b0 = 0;
            while b0 < h {
                let jb = tile_width(h - b0);
                let at = (a0, b0);
                match (ra, jb) {
                    (4, 32) => cross_tile::<4, 32>(x, y, rows, h, at, out),
                    (4, 8) => cross_tile::<4, 8>(x, y, rows, h, at, out),
                    (4, _) => cross_tile::<4, 1>(x, y, rows, h, at, out),
                    (_, 32) => cross_tile::<1, 32>(x, y, rows, h, at, out),
                    (_, 8) => cross_tile::<1, 8>(x, y, rows, h, at, out),
                    _ => cross_tile::<1, 1>(x, y, rows, h, at, out),
                }
                b0 += jb;
            }
            a0 += ra;
        }
    }
}

/// The widest column tile (32, 8 or 1) that fits in `left` columns.
#[inline(always)]
fn tile_width(left: usize) -> usize {
    if left >= 32 {
        32
    } else if left >= 8 {
        8
    } else {
        1
    }
}

/// Rows a0..a0+R, columns b0..b0+J of Xᵀ Y: Σᵢ X[i, a] Y[i, b] over i in order.
#[inline(always)]
fn cross_tile<const R: usize, const J: usize>(
    x: &[f64],
    y: &[f64],
    rows: usize,
    h: usize,
    (a0, b0): (usize, usize),
    out: &mut [f64],
) {
    let mut acc = [[0.0f64; J]; R];
    for i in 0..rows {
        let xr = &x[i * h + a0..][..R];
        let yr = &y[i * h + b0..][..J];
        for (acc, xv) in acc.iter_mut().zip(xr) {
            for (a, yv) in acc.iter_mut().zip(yr) {
                *a = xv.mul_add(*yv, *a);
            }
        }
    }
    for (r, acc) in acc.iter().enumerate() {
        out[(a0 + r) * h + b0..][..J].copy_from_slice(acc);
    }
}

widest! {
    /// [`combine_tiles`] into f32.
    fn combine_f32(
        prods: &[(&[f64], &[f64])],
        scaled: &[(f64, &[f64])],
        rows: usize,
        h: usize,
        out: &mut [f32],
    ) {
        combine_tiles(prods, scaled, rows, h, out);
    }
}

widest! {
    /// [`combine_tiles`] into f64.
    fn combine_f64(
        prods: &[(&[f64], &[f64])],
        scaled: &[(f64, &[f64])],
        rows: usize,
        h: usize,
        out: &mut [f64],
    ) {
        combine_tiles(prods, scaled, rows, h, out);
    }
}

/// One head of [`combine_into`] into `out` (row-major rows×h), in tiles of four rows by up to
/// 32 columns whose accumulators stay in registers.
#[inline(always)]
fn combine_tiles<O: Store>(
    prods: &[(&[f64], &[f64])],
    scaled: &[(f64, &[f64])],
    rows: usize,
    h: usize,
    out: &mut [O],
) {
    let mut i0 = 0;
    while i0 < rows {
        let ri = if i0 + 4 <= rows { 4 } else { 1 };
        let mut j0 = 0;
        while j0 < h {
            let jb = tile_width(h - j0);
            let at = (i0, j0);
            match (ri, jb) {
                (4, 32) => combine_tile::<4, 32, O>(prods, scaled, h, at, out),
                (4, 8) => combine_tile::<4, 8, O>(prods, scaled, h, at, out),
                (4, _) => combine_tile::<4, 1, O>(prods, scaled, h, at, out),
                (_, 32) => combine_tile::<1, 32, O>(prods, scaled, h, at, out),
                (_, 8) => combine_tile::<1, 8, O>(prods, scaled, h, at, out),
                _ => combine_tile::<1, 1, O>(prods, scaled, h, at, out),
            }
            j0 += jb;
        }
        i0 += ri;
    }
}

/// Rows i0..i0+R, columns j0..j0+J of Σₜ Xₜ Aₜ + Σₛ cₛ Yₛ (row-major, h columns).
#[inline(always)]
fn combine_tile<const R: usize, const J: usize, O: Store>(
    prods: &[(&[f64], &[f64])],
    scaled: &[(f64, &[f64])],
    h: usize,
    (i0, j0): (usize, usize),
    out: &mut [O],
) {
    let mut acc = [[0.0f64; J]; R];
    for (x, a) in prods {
        let xs: [&[f64]; R] = std::array::from_fn(|r| &x[(i0 + r) * h..][..h]);
        for k in 0..h {
            let ak = &a[k * h + j0..][..J];
            for (acc, x) in acc.iter_mut().zip(xs) {
                let xv = x[k];
                for (s, a) in acc.iter_mut().zip(ak) {
                    *s = xv.mul_add(*a, *s);
                }
            }
        }
    }
    for (c, y) in scaled {
        for (r, acc) in acc.iter_mut().enumerate() {
            let yr = &y[(i0 + r) * h + j0..][..J];
            for (s, y) in acc.iter_mut().zip(yr) {
                *s = c.mul_add(*y, *s);
            }
        }
    }
    for (r, acc) in acc.iter().enumerate() {
        for (o, s) in out[(i0 + r) * h + j0..][..J].iter_mut().zip(acc) {
            *o = O::from_f64(*s);
        }
    }
}
