//! Attention's softmax, y = softmax(c·s + m) along the last axis, as one operation with its own
//! backward pass.
//!
//! Burn's softmax is five operations, each recorded under autodiff; with the scaling
//! c = 1/√h and the additive mask m in front, attention's probabilities cost seven passes over
//! `[batch, heads, t, t]` forward and about a dozen backward. Here the forward pass is one loop
//! over the rows and the backward pass one more, from the stored output:
//!
//! ∂ℓ/∂sⱼ = c · yⱼ (∂ℓ/∂yⱼ − Σₖ yₖ ∂ℓ/∂yₖ)
//!
//! (the Jacobian of softmax is diag(y) − y yᵀ). A mask of another shape than `[n, 1, 1, k]`, or
//! one that requires a gradient, takes Burn's operations (see [`super`] for the rest).
//!
//! # Numerics
//! Per row: z = c·s + m, M = maxⱼ zⱼ, eⱼ = exp(zⱼ − M), y = e / Σⱼ eⱼ — the max-shift of
//! Burn's `softmax`, so Σⱼ eⱼ ≥ 1 (the maximum contributes exp(0) = 1) and the division is
//! safe. The exponential of a non-positive argument is computed branch-free ([`exp_nonpositive`],
//! within 2 ulp), so that the loop vectorises and a masked score (m = −10⁹) costs what any other
//! does: libm's `expf` takes a slow path on underflow. Its result is flushed to zero below
//! exp(−87) ≈ 1.6·10⁻³⁸, where a probability is already negligible next to the row's 1.
//! The scores are scaled by multiplying with c rounded to f32 where Burn divided by 1/c, so
//! the two paths agree to a few ulps, not bit for bit. NaN scores give NaN rows on both.

use std::mem::MaybeUninit;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn::backend::ndarray::NdArrayTensor;
use burn::prelude::{Backend, Tensor};
use burn::tensor::activation::softmax;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{DType, TensorPrimitive};

use crate::models::gelu_kernel::{LN2_HI, LN2_LO, ROUND, exp_reduced};

use super::{
    Host, Path, Tracked, by_rows, cast, dims, f32_slice, lane_max, lane_sum, primitive, widest,
};

/// softmax(c·s + m) along the last axis of `scores` `[n, heads, q, k]`, with the additive mask
/// `m` broadcast from `[n, 1, 1, k]` (0 for a real key, −10⁹ for a padded one); `scale` is c.
///
/// The mask is data: it receives no gradient on the fused path, which is therefore taken only
/// when it does not require one.
pub fn scaled_masked_softmax<B: Backend>(
    scores: Tensor<B, 4>,
    scale: f64,
    mask: Option<Tensor<B, 4>>,
) -> Tensor<B, 4> {
    match fused_path::<B>(&scores, mask.as_ref()) {
        Some(Path::Tracked) => {
            let scores = cast::<B, Tracked, 4>(scores);
            let mask = mask.map(|m| cast::<B, Tracked, 4>(m).inner());
            cast::<Tracked, B, 4>(tracked(scores, scale as f32, mask))
        }
        Some(Path::Untracked) => {
            let scores = cast::<B, Host, 4>(scores);
            let mask = mask.map(|m| cast::<B, Host, 4>(m));
            cast::<Host, B, 4>(untracked(scores, scale as f32, mask))
        }
        None => by_ops(scores, scale, mask),
    }
}

/// Whether [`scaled_masked_softmax`] of these operands is the fused operation (f32 on the
/// ndarray backend, bare or under autodiff, a mask of shape `[n, 1, 1, k]` that needs no
/// gradient), rather than Burn's operations. A buffer in a non-standard layout still falls
/// back inside.
pub fn fuses<B: Backend>(scores: &Tensor<B, 4>, mask: Option<&Tensor<B, 4>>) -> bool {
    fused_path::<B>(scores, mask).is_some()
}

/// The fused path for these operands, if any (see [`fuses`]).
fn fused_path<B: Backend>(scores: &Tensor<B, 4>, mask: Option<&Tensor<B, 4>>) -> Option<Path> {
    let [n, _, _, k] = scores.dims();
    let mask_fits = mask.is_none_or(|m| {
        m.dims() == [n, 1, 1, k] && m.dtype() == DType::F32 && !m.is_require_grad()
    });
    if scores.dtype() != DType::F32 || !mask_fits {
        return None;
    }
    Path::of::<B>()
}

/// [`scaled_masked_softmax`] with Burn's operations, on any backend: what the models computed
/// before the fused operation, and its reference in the tests.
pub fn by_ops<B: Backend>(
    scores: Tensor<B, 4>,
    scale: f64,
    mask: Option<Tensor<B, 4>>,
) -> Tensor<B, 4> {
    let scores = scores.div_scalar(1.0 / scale);
    let scores = match mask {
        Some(mask) => scores + mask,
        None => scores,
    };
    softmax(scores, 3)
}

/// The fused forward pass on the host, falling back to Burn's operations for a buffer in
/// another layout or dtype.
fn untracked(
    scores: Tensor<Host, 4>,
    scale: f32,
    mask: Option<Tensor<Host, 4>>,
) -> Tensor<Host, 4> {
    let s = scores.clone().into_primitive().tensor();
    let m = mask.clone().map(|m| m.into_primitive().tensor());
    match forward_on_host(&s, scale, m.as_ref()) {
        Some(y) => Tensor::from_primitive(TensorPrimitive::Float(y)),
        None => by_ops(scores, scale as f64, mask),
    }
}

/// The fused operation as one node of the autodiff graph (see the module docs).
fn tracked(
    scores: Tensor<Tracked, 4>,
    scale: f32,
    mask: Option<Tensor<Host, 4>>,
) -> Tensor<Tracked, 4> {
    let s: FloatTensor<Tracked> = scores.clone().into_primitive().tensor();
    let m = mask.clone().map(|m| m.into_primitive().tensor());
    let Some(y) = forward_on_host(&s.primitive, scale, m.as_ref()) else {
        return by_ops(scores, scale as f64, mask.map(Tensor::from_inner));
    };
    let output = match SoftmaxBackward
        .prepare::<NoCheckpointing>([s.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish((y.clone(), scale), y),
        OpsKind::UnTracked(prep) => prep.finish(y),
    };
    Tensor::from_primitive(TensorPrimitive::Float(output))
}

/// The backward step of [`tracked`]; its state is the output y and the scale c.
#[derive(Debug)]
struct SoftmaxBackward;

impl Backward<Host, 1> for SoftmaxBackward {
    type State = (NdArrayTensor, f32);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (y, scale) = ops.state;
        unary::<Host, _>(ops.parents, ops.node, grads, |dy| {
            backward_on_host(&y, &dy, scale).unwrap_or_else(|| backward_by_ops(y, dy, scale))
        });
    }
}

/// c · y ⊙ (dy − Σₖ y ⊙ dy) with Burn's operations (the gradient when dy is strided).
fn backward_by_ops(y: NdArrayTensor, dy: NdArrayTensor, scale: f32) -> NdArrayTensor {
    let y = Tensor::<Host, 4>::from_primitive(TensorPrimitive::Float(y));
    let dy = Tensor::<Host, 4>::from_primitive(TensorPrimitive::Float(dy));
    let dot = (y.clone() * dy.clone()).sum_dim(3);
    (y * (dy - dot)).mul_scalar(scale).into_primitive().tensor()
}

widest! {
    /// Rows `first..` of the forward pass: `s` and `out` hold whole rows of `k` keys; row r's
    /// mask is row `r / rows_per_sentence` of `m`.
    fn forward_rows(
        first: usize,
        k: usize,
        s: &[f32],
        m: Option<&[f32]>,
        rows_per_sentence: usize,
        scale: f32,
        out: &mut [MaybeUninit<f32>],
    ) {
        for (i, (s, out)) in s.chunks_exact(k).zip(out.chunks_exact_mut(k)).enumerate() {
            let mask = m.map(|m| &m[((first + i) / rows_per_sentence) * k..][..k]);
            softmax_row(s, mask, scale, out);
        }
    }
}

widest! {
    /// The backward pass over whole rows of `k` keys.
    fn backward_rows(k: usize, y: &[f32], dy: &[f32], scale: f32, out: &mut [MaybeUninit<f32>]) {
        for ((y, dy), out) in y
            .chunks_exact(k)
            .zip(dy.chunks_exact(k))
            .zip(out.chunks_exact_mut(k))
        {
            softmax_backward_row(y, dy, scale, out);
        }
    }
}

/// y = softmax(c·s + m) on the host, or `None` unless `s` (and `m`, shaped `[n, 1, 1, k]`) are
/// f32 buffers in standard layout.
fn forward_on_host(
    s: &NdArrayTensor,
    scale: f32,
    m: Option<&NdArrayTensor>,
) -> Option<NdArrayTensor> {
    let shape = dims(s);
    let s = f32_slice(s)?;
    let m = match m {
        Some(m) => Some(f32_slice(m)?),
        None => None,
    };
    let (k, rows) = (*shape.last()?, s.len() / shape.last()?.max(&1));
    // Rows of one sentence (heads × queries) share its mask row.
    let rows_per_sentence = rows / shape.first()?.max(&1);
    if k == 0 || m.is_some_and(|m| m.len() != shape[0] * k) {
        return None;
    }
    let y = by_rows(rows, k, |first, out| {
        let s = &s[first * k..][..out.len()];
        forward_rows(first, k, s, m, rows_per_sentence, scale, out)
    });
    primitive(y, &shape)
}

/// dx = c · y ⊙ (dy − Σₖ y ⊙ dy) on the host, or `None` unless both are standard f32 buffers of
/// one shape.
fn backward_on_host(y: &NdArrayTensor, dy: &NdArrayTensor, scale: f32) -> Option<NdArrayTensor> {
    let shape = dims(y);
    if dims(dy) != shape {
        return None;
    }
    let (ys, dys) = (f32_slice(y)?, f32_slice(dy)?);
    let k = *shape.last()?;
    if k == 0 {
        return None;
    }
    let dx = by_rows(ys.len() / k, k, |first, out| {
        let range = first * k..first * k + out.len();
        backward_rows(k, &ys[range.clone()], &dys[range], scale, out)
    });
    primitive(dx, &shape)
}

/// One row: out = softmax(c·s + m) (see the module docs).
#[inline(always)]
fn softmax_row(s: &[f32], m: Option<&[f32]>, scale: f32, out: &mut [MaybeUninit<f32>]) {
    // z = c·s + m, kept in `out` until the probabilities overwrite it.
    match m {
        Some(m) => {
            for ((o, &s), &m) in out.iter_mut().zip(s).zip(m) {
                o.write(s * scale + m);
            }
        }
        None => {
            for (o, &s) in out.iter_mut().zip(s) {
                o.write(s * scale);
            }
        }
    }
    // SAFETY: every element of `out` was written just above (zip over s, as long as out).
    softmax_in_place(unsafe { &mut *(out as *mut [MaybeUninit<f32>] as *mut [f32]) });
}

/// z ← softmax(z): M = maxⱼ zⱼ, eⱼ = exp(zⱼ − M), z = e / Σⱼ eⱼ (see the module docs); shared
/// with [`super::attention`].
#[inline(always)]
pub(super) fn softmax_in_place(z: &mut [f32]) {
    let max = lane_max(z);
    for z in z.iter_mut() {
        *z = exp_nonpositive(*z - max);
    }
    let sum = lane_sum(|j| z[j], z.len());
    for z in z.iter_mut() {
        *z /= sum;
    }
}

/// One row: out = c · y ⊙ (dy − Σₖ yₖ dyₖ).
#[inline(always)]
fn softmax_backward_row(y: &[f32], dy: &[f32], scale: f32, out: &mut [MaybeUninit<f32>]) {
    // dy, kept in `out` until the gradient overwrites it.
    for (o, &dy) in out.iter_mut().zip(dy) {
        o.write(dy);
    }
    // SAFETY: every element of `out` was written just above (zip over dy, as long as out).
    let dx = unsafe { &mut *(out as *mut [MaybeUninit<f32>] as *mut [f32]) };
    softmax_backward_in_place(y, dx, scale);
}

/// g ← c · y ⊙ (g − Σₖ yₖ gₖ): the gradient with respect to the scores, from the gradient g
/// with respect to the probabilities y; shared with [`super::attention`].
#[inline(always)]
pub(super) fn softmax_backward_in_place(y: &[f32], g: &mut [f32], scale: f32) {
    let dot = lane_sum(|j| y[j] * g[j], y.len().min(g.len()));
    for (g, &y) in g.iter_mut().zip(y) {
        *g = scale * (y * (*g - dot));
    }
}

/// exp(x) for x ≤ 0, branch-free, within 2 ulp; 0 below −87 (exp(−87) ≈ 1.6·10⁻³⁸, the edge of
/// f32's normal range) and for −∞; NaN for NaN.
///
/// Cody–Waite reduction: k = round(x / ln 2) ∈ [−126, 0], r = (x − k ln2_hi) − k ln2_lo with
/// ln2_hi of 15 significant bits, so k ln2_hi and the first difference are exact and |r| ≤ 0.35;
/// exp(r) by its Taylor polynomial of degree 7 (remainder < 3·10⁻⁸); 2ᵏ from the exponent bits.
/// (The same reduction as `gelu_kernel`'s exp(−x²/2).)
#[inline(always)]
pub fn exp_nonpositive(x: f32) -> f32 {
    /// The smallest argument kept: exp(−87) is still a normal f32.
    const LIMIT: f32 = -87.0;
    // Clamped into [−87, 0] so that k stays in range; `clamp` keeps a NaN.
    let xc = x.clamp(LIMIT, 0.0);
    // xc/ln 2 + ROUND rounds to an integer in the binade of ROUND, whose ulp is 1: its bits are
    // ROUND's plus k (integer arithmetic below, so that the loop vectorises).
    let shifted = xc * std::f32::consts::LOG2_E + ROUND;
    let k = shifted - ROUND;
    let r = (xc - k * LN2_HI) - k * LN2_LO;
    let e = exp_reduced(r);
    // 2ᵏ for k ∈ [−126, 0]: the biased exponent k + 127 in bits 23..30 (for a NaN, garbage
    // times e = NaN).
    let two_k = f32::from_bits(
        shifted
            .to_bits()
            .wrapping_sub(ROUND.to_bits())
            .wrapping_add(127)
            << 23,
    );
    if x < LIMIT { 0.0 } else { e * two_k }
}
