//! Self-attention within segments of rows — each sentence of a packed batch attending to its
//! own tokens only — as one operation with its own backward pass.
//!
//! The rows of q, k and v `[rows, d]` fall into consecutive segments (a packed batch's
//! sentences, `models::packing`); their columns into `heads` heads of h = d / heads. For each
//! segment of L rows and each head, with Q, K, V its L × h blocks and c = 1/√h:
//!
//! S = Q Kᵀ,  P = softmax(c·S) row by row,  O = P V.
//!
//! Backward, with G = ∂ℓ/∂O (the softmax's Jacobian as in [`super::softmax`]):
//!
//! ∂V = Pᵀ G,  ∂P = G Vᵀ,  ∂S = c · P ⊙ (∂P − rowsum(P ⊙ ∂P)),  ∂Q = ∂S K,  ∂K = ∂Sᵀ Q.
//!
//! This is the padded computation with padded keys masked, exactly up to the order of sums: a
//! masked key gets exactly zero weight there (`exp(−10⁹)` underflows to 0), so each real query
//! sees the same keys here; the padded queries, whose outputs were discarded, are not computed.
//!
//! Why: written with Burn's operations, attention unpacks q, k and v into the padded
//! `[batch, heads, t, t]` layout and runs two batched products forward and four backward, one
//! tiny product per sentence and head (t ≈ 57, h = 32 on MiniLM's movie reviews). matrixmultiply
//! packs both operands of each and finishes most tiles with its masked edge kernel, so those
//! products ran at about 30 GFLOP/s and took 16 % of a forward+backward pass at batch 128 —
//! on a rectangle of which real tokens filled a quarter (Σ L² against batch · t²; the mean
//! sentence is 28 tokens). Here each (segment, head) is a few register-tiled products over its
//! real tokens only, with the probabilities kept for the backward pass (`heads · Σ L·⌈L⌉₁₆`
//! values, a fraction of the padded scores).
//!
//! # Numerics
//! f32 throughout, each product summed in the order of its inner index; the softmax is
//! [`super::softmax`]'s (max-shifted, so its denominator is at least 1). Segments are computed
//! independently, each by one thread, so the result does not depend on the number of threads,
//! and every CPU gets the same bits (see [`super`] on `widest!`).

use std::ops::Range;
use std::sync::Arc;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::ndarray::NdArrayTensor;
use burn::prelude::{Backend, Tensor};
use burn::tensor::ops::FloatTensor;
use burn::tensor::{DType, TensorPrimitive};
use rayon::prelude::*;

use super::softmax::{softmax_backward_in_place, softmax_in_place};
use super::{Host, Path, Tracked, cast, dims, f32_slice, prim, primitive, widest};

/// Width of a register tile: sixteen f32 lanes (one AVX-512 register, two AVX2 ones).
const LANES: usize = 16;
/// Rows of a register tile: four rows of [`LANES`] accumulators.
const TILE_ROWS: usize = 4;

/// softmax(c · q⁽ⁱ⁾ k⁽ⁱ⁾ᵀ) v⁽ⁱ⁾ per head i within each segment of consecutive rows of
/// `segments` (lengths, summing to the number of rows; zero-length segments allowed), heads
/// concatenated: q, k, v `[rows, d]` → `[rows, d]`, with c = 1/√(d / heads).
///
/// `None` where this backend or these operands have no fused path (see [`fuses`]) or a
/// buffer is not in standard layout; the caller then computes attention with Burn's
/// operations (the padded, masked form).
pub fn segment_attention<B: Backend>(
    q: Tensor<B, 2>,
    k: Tensor<B, 2>,
    v: Tensor<B, 2>,
    heads: usize,
    segments: &[usize],
) -> Option<Tensor<B, 2>> {
    if !fits(&q, &k, &v, heads, segments) {
        return None;
    }
    let layout = Layout::new(q.dims(), heads, segments);
    match Path::of::<B>()? {
        Path::Tracked => {
            let (q, k, v) = (
                cast::<B, Tracked, 2>(q),
                cast::<B, Tracked, 2>(k),
                cast::<B, Tracked, 2>(v),
            );
            Some(cast::<Tracked, B, 2>(tracked(q, k, v, layout)?))
        }
        Path::Untracked => {
            let (q, k, v) = (
                cast::<B, Host, 2>(q),
                cast::<B, Host, 2>(k),
                cast::<B, Host, 2>(v),
            );
            let (o, _) = forward_on_host(&prim(&q), &prim(&k), &prim(&v), &layout)?;
            Some(cast::<Host, B, 2>(Tensor::from_primitive(
                TensorPrimitive::Float(o),
            )))
        }
    }
}

/// Whether [`segment_attention`] has a fused path on backend `B`: the ndarray backend, bare or
/// under autodiff (the operands must also be f32 in standard layout).
pub fn fuses<B: Backend>() -> bool {
    Path::of::<B>().is_some()
}

/// The operands' shapes and dtypes agree with `heads` and `segments`.
fn fits<B: Backend>(
    q: &Tensor<B, 2>,
    k: &Tensor<B, 2>,
    v: &Tensor<B, 2>,
    heads: usize,
    segments: &[usize],
) -> bool {
    let [rows, d] = q.dims();
    [q.dtype(), k.dtype(), v.dtype()] == [DType::F32; 3]
        && k.dims() == [rows, d]
        && v.dims() == [rows, d]
        && heads > 0
        && d > 0
        && d % heads == 0
        && segments.iter().sum::<usize>() == rows
}

/// Where each segment's rows and probabilities are.
#[derive(Debug, Clone)]
struct Layout {
    /// Rows of q, k, v.
    rows: usize,
    /// Columns d = heads · h.
    d: usize,
    /// Heads.
    heads: usize,
    /// Columns per head, h.
    h: usize,
    /// c = 1/√h.
    scale: f32,
    /// Rows per segment.
    lens: Vec<usize>,
}

impl Layout {
    fn new([rows, d]: [usize; 2], heads: usize, segments: &[usize]) -> Self {
        let h = d / heads;
        Self {
            rows,
            d,
            heads,
            h,
            scale: (1.0 / (h as f64).sqrt()) as f32,
            lens: segments.to_vec(),
        }
    }

    /// Values of one segment's probabilities: L rows of ⌈L⌉₁₆ per head.
    fn probabilities(&self, len: usize) -> usize {
        self.heads * len * len.next_multiple_of(LANES)
    }

    /// `buffer` split into one slice per segment, `per(len)` values each.
    fn split<'a, T>(
        &self,
        mut buffer: &'a mut [T],
        per: impl Fn(usize) -> usize,
    ) -> Vec<&'a mut [T]> {
        self.lens
            .iter()
            .map(|&len| {
                let (head, rest) = std::mem::take(&mut buffer).split_at_mut(per(len));
                buffer = rest;
                head
            })
            .collect()
    }

    /// Each segment's range in a buffer of `per(len)` values per segment, segments in order.
    fn ranges(&self, per: impl Fn(usize) -> usize) -> Vec<Range<usize>> {
        self.lens
            .iter()
            .scan(0, |start, &len| {
                let range = *start..*start + per(len);
                *start = range.end;
                Some(range)
            })
            .collect()
    }
}

/// The fused operation as one node of the autodiff graph, with parents q, k and v.
fn tracked(
    q: Tensor<Tracked, 2>,
    k: Tensor<Tracked, 2>,
    v: Tensor<Tracked, 2>,
    layout: Layout,
) -> Option<Tensor<Tracked, 2>> {
    let (qp, kp, vp): (FloatTensor<Tracked>, _, _) = (prim(&q), prim(&k), prim(&v));
    let (o, p) = forward_on_host(&qp.primitive, &kp.primitive, &vp.primitive, &layout)?;
    let nodes = [qp.node.clone(), kp.node.clone(), vp.node.clone()];
    let output = match AttentionBackward
        .prepare::<NoCheckpointing>(nodes)
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let state = State {
                q: qp.primitive,
                k: kp.primitive,
                v: vp.primitive,
                p: Arc::new(p),
                layout,
            };
            prep.finish(state, o)
        }
        OpsKind::UnTracked(prep) => prep.finish(o),
    };
    Some(Tensor::from_primitive(TensorPrimitive::Float(output)))
}

/// What the backward pass reads: the operands, the probabilities and the layout.
#[derive(Debug, Clone)]
struct State {
    q: NdArrayTensor,
    k: NdArrayTensor,
    v: NdArrayTensor,
    /// Each segment's P per head, rows of ⌈L⌉₁₆ (zeros past L), segments in order.
    p: Arc<Vec<f32>>,
    layout: Layout,
}

/// The backward step of [`tracked`].
#[derive(Debug)]
struct AttentionBackward;

impl Backward<Host, 3> for AttentionBackward {
    type State = State;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let state = ops.state;
        let g = grads.consume::<Host>(&ops.node);
        let (dq, dk, dv) = backward_on_host(&state, &g);
        let [pq, pk, pv] = ops.parents;
        for (parent, grad) in [(pq, dq), (pk, dk), (pv, dv)] {
            if let Some(node) = parent {
                grads.register::<Host>(node.id, grad);
            }
        }
    }
}

/// O and the probabilities on the host, or `None` unless q, k, v are f32 buffers in standard
/// layout.
fn forward_on_host(
    q: &NdArrayTensor,
    k: &NdArrayTensor,
    v: &NdArrayTensor,
    layout: &Layout,
) -> Option<(NdArrayTensor, Vec<f32>)> {
    let (q, k, v) = (f32_slice(q)?, f32_slice(k)?, f32_slice(v)?);
    let d = layout.d;
    let mut o = vec![0.0f32; layout.rows * d];
    let total: usize = layout.lens.iter().map(|&l| layout.probabilities(l)).sum();
    let mut p = vec![0.0f32; total];
    let rows = layout.ranges(|len| len * d);
    let o_parts = layout.split(&mut o, |len| len * d);
    let p_parts = layout.split(&mut p, |len| layout.probabilities(len));
    o_parts
        .into_par_iter()
        .zip(p_parts)
        .zip(rows)
        .zip(layout.lens.par_iter())
        .for_each(|(((o, p), rows), &len)| {
            forward_segment(
                layout,
                len,
                &q[rows.clone()],
                &k[rows.clone()],
                &v[rows],
                o,
                p,
            );
        });
    Some((primitive(o, &[layout.rows, d])?, p))
}

/// ∂ℓ/∂q, ∂ℓ/∂k, ∂ℓ/∂v from ∂ℓ/∂O = `g` on the host (a strided `g` is first copied into
/// standard layout).
fn backward_on_host(
    state: &State,
    g: &NdArrayTensor,
) -> (NdArrayTensor, NdArrayTensor, NdArrayTensor) {
    let layout = &state.layout;
    let d = layout.d;
    let read = "the forward pass read it so";
    let (q, k, v) = (
        f32_slice(&state.q).expect(read),
        f32_slice(&state.k).expect(read),
        f32_slice(&state.v).expect(read),
    );
    let owned;
    let g = match f32_slice(g) {
        Some(g) => g,
        None => {
            owned = standard(g);
            &owned[..]
        }
    };
    assert_eq!(dims(&state.q), [layout.rows, d], "q's shape changed");
    assert_eq!(
        g.len(),
        layout.rows * d,
        "the gradient has the output's shape"
    );
    let [mut dq, mut dk, mut dv] = [(); 3].map(|_| vec![0.0f32; layout.rows * d]);
    let per = |len: usize| len * d;
    let rows = layout.ranges(per);
    let p_ranges = layout.ranges(|len| layout.probabilities(len));
    layout
        .split(&mut dq, per)
        .into_par_iter()
        .zip(layout.split(&mut dk, per))
        .zip(layout.split(&mut dv, per))
        .zip(p_ranges)
        .zip(rows)
        .zip(layout.lens.par_iter())
        .for_each(|(((((dq, dk), dv), p), rows), &len)| {
            let p = &state.p[p];
            let operands = [
                &q[rows.clone()],
                &k[rows.clone()],
                &v[rows.clone()],
                &g[rows],
            ];
            backward_segment(layout, len, operands, p, [dq, dk, dv]);
        });
    let shape = [layout.rows, d];
    let wrap = |x: Vec<f32>| primitive(x, &shape).expect("rows × d values");
    (wrap(dq), wrap(dk), wrap(dv))
}

/// The values of an f32 primitive in row-major order, whatever its layout.
fn standard(t: &NdArrayTensor) -> Vec<f32> {
    match t {
        NdArrayTensor::F32(storage) => storage.view().iter().copied().collect(),
        _ => panic!("attention's gradient is f32, as its output"),
    }
}

/// `x`'s head block `[len, h]` (columns `head·h..`, rows of `d`) copied into rows of
/// `width` ≥ h, zeros past h.
fn gather(x: &[f32], len: usize, d: usize, head: usize, h: usize, width: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; len * width];
    for (row, out) in x.chunks_exact(d).zip(out.chunks_exact_mut(width)).take(len) {
        out[..h].copy_from_slice(&row[head * h..][..h]);
    }
    out
}

/// The transpose of `x`'s head block: `[h, width]`, row e holding column `head·h + e` of the
/// `len` rows, zeros past `len`.
fn gather_transposed(
    x: &[f32],
    len: usize,
    d: usize,
    head: usize,
    h: usize,
    width: usize,
) -> Vec<f32> {
    let mut out = vec![0.0f32; h * width];
    for (j, row) in x.chunks_exact(d).take(len).enumerate() {
        for (e, &value) in row[head * h..][..h].iter().enumerate() {
            out[e * width + j] = value;
        }
    }
    out
}

/// The `store` of a [`product`] with h columns into head `head`'s columns of `out`, rows of d.
#[inline(always)]
fn into_head(
    out: &mut [f32],
    d: usize,
    head: usize,
    h: usize,
) -> impl FnMut(usize, usize, &[f32; LANES]) + '_ {
    move |i, j0, tile| {
        let out = &mut out[i * d + head * h + j0..][..(h - j0).min(LANES)];
        out.copy_from_slice(&tile[..out.len()]);
    }
}

/// A matrix read element by element: A(i, p) = `values[i·row + p·col]`.
#[derive(Clone, Copy)]
struct Strided<'a> {
    values: &'a [f32],
    row: usize,
    col: usize,
}

/// C = A B for an m × k matrix A and a k × n matrix B whose rows are `ldb` ≥ ⌈n⌉₁₆ values
/// (zeros past n), C handed out a tile row at a time: `store(i, j₀, &c[i][j₀..j₀ + 16])` for
/// each row i < m and each multiple j₀ of 16 below n (lanes past n hold zeros).
///
/// Register tiles of four rows by sixteen columns: per step p of the inner index, one row of
/// B is read once and added, times A(i, p), to four rows of accumulators, each sum taken in
/// the order of p.
///
/// # Panics
/// If an index of A or B would fall outside its slice.
#[inline(always)]
fn product(
    m: usize,
    n: usize,
    k: usize,
    a: Strided<'_>,
    b: &[f32],
    ldb: usize,
    mut store: impl FnMut(usize, usize, &[f32; LANES]),
) {
    if m == 0 || n == 0 {
        return;
    }
    let n16 = n.next_multiple_of(LANES);
    assert!(k == 0 || (m - 1) * a.row + (k - 1) * a.col < a.values.len());
    assert!(ldb >= n16 && (k == 0 || (k - 1) * ldb + n16 <= b.len()));
    for j0 in (0..n).step_by(LANES) {
        let mut i0 = 0;
        while i0 + TILE_ROWS <= m {
            for (r, row) in tile::<TILE_ROWS>(i0, j0, k, a, b, ldb).iter().enumerate() {
                store(i0 + r, j0, row);
            }
            i0 += TILE_ROWS;
        }
        for i in i0..m {
            store(i, j0, &tile::<1>(i, j0, k, a, b, ldb)[0]);
        }
    }
}

/// Rows `i₀..i₀ + R`, columns `j₀..j₀ + 16` of A B (see [`product`], which checks the bounds).
#[inline(always)]
fn tile<const R: usize>(
    i0: usize,
    j0: usize,
    k: usize,
    a: Strided<'_>,
    b: &[f32],
    ldb: usize,
) -> [[f32; LANES]; R] {
    let mut acc = [[0.0f32; LANES]; R];
    for p in 0..k {
        // SAFETY: `product` checked (k − 1)·ldb + j₀ + 16 ≤ b.len() (j₀ + 16 ≤ ⌈n⌉₁₆) and
        // (m − 1)·row + (k − 1)·col < a.len() (i₀ + R ≤ m).
        let b_row = unsafe { &*(b.as_ptr().add(p * ldb + j0) as *const [f32; LANES]) };
        for (r, acc) in acc.iter_mut().enumerate() {
            let x = unsafe { *a.values.get_unchecked((i0 + r) * a.row + p * a.col) };
            for (acc, &b) in acc.iter_mut().zip(b_row) {
                *acc += x * b;
            }
        }
    }
    acc
}

widest! {
    /// One segment of `len` rows (q, k, v its rows of d), every head: its rows of O into `o`
    /// and its probabilities into `p` (see the module docs).
    fn forward_segment(
        layout: &Layout,
        len: usize,
        q: &[f32],
        k: &[f32],
        v: &[f32],
        o: &mut [f32],
        p: &mut [f32],
    ) {
        if len == 0 {
            return;
        }
        let (d, h, c) = (layout.d, layout.h, layout.scale);
        let (width, h16) = (len.next_multiple_of(LANES), h.next_multiple_of(LANES));
        for (head, p) in p.chunks_exact_mut(len * width).enumerate().take(layout.heads) {
            // c·S = c·Q Kᵀ into P's rows, then each row's softmax over its first len entries.
            let kt = gather_transposed(k, len, d, head, h, width);
            let q_head = Strided { values: &q[head * h..], row: d, col: 1 };
            product(len, len, h, q_head, &kt, width, |i, j0, tile| {
                for (p, &s) in p[i * width + j0..][..LANES].iter_mut().zip(tile) {
                    *p = c * s;
                }
            });
            for row in p.chunks_exact_mut(width) {
                softmax_in_place(&mut row[..len]);
            }
            // O = P V.
            let vh = gather(v, len, d, head, h, h16);
            let probabilities = Strided { values: p, row: width, col: 1 };
            product(len, h, len, probabilities, &vh, h16, into_head(o, d, head, h));
        }
    }
}

widest! {
    /// The backward pass of one segment (see the module docs): from its rows of q, k, v and
    /// G = ∂ℓ/∂O and its probabilities, its rows of ∂q, ∂k, ∂v.
    fn backward_segment(
        layout: &Layout,
        len: usize,
        operands: [&[f32]; 4],
        p: &[f32],
        grads: [&mut [f32]; 3],
    ) {
        let [q, k, v, g] = operands;
        let [dq, dk, dv] = grads;
        if len == 0 {
            return;
        }
        let (d, h, c) = (layout.d, layout.h, layout.scale);
        let (width, h16) = (len.next_multiple_of(LANES), h.next_multiple_of(LANES));
        let mut ds = vec![0.0f32; len * width];
        for (head, p) in p.chunks_exact(len * width).enumerate().take(layout.heads) {
            let column = head * h;
            // ∂V = Pᵀ G.
            let gh = gather(g, len, d, head, h, h16);
            let p_t = Strided { values: p, row: 1, col: width };
            product(len, h, len, p_t, &gh, h16, into_head(dv, d, head, h));
            // ∂P = G Vᵀ, then ∂S = c · P ⊙ (∂P − rowsum(P ⊙ ∂P)) in its place.
            let vt = gather_transposed(v, len, d, head, h, width);
            let g_head = Strided { values: &g[column..], row: d, col: 1 };
            product(len, len, h, g_head, &vt, width, |i, j0, tile| {
                ds[i * width + j0..][..LANES].copy_from_slice(tile);
            });
            for (ds, p) in ds.chunks_exact_mut(width).zip(p.chunks_exact(width)) {
                softmax_backward_in_place(&p[..len], &mut ds[..len], c);
            }
            // ∂Q = ∂S K and ∂K = ∂Sᵀ Q.
            let kh = gather(k, len, d, head, h, h16);
            let ds_rows = Strided { values: &ds, row: width, col: 1 };
            product(len, h, len, ds_rows, &kh, h16, into_head(dq, d, head, h));
            let qh = gather(q, len, d, head, h, h16);
            let ds_t = Strided { values: &ds, row: 1, col: width };
            product(len, h, len, ds_t, &qh, h16, into_head(dk, d, head, h));
        }
    }
}
