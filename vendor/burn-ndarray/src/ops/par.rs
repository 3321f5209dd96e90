//! geosharp patch: element-wise arithmetic over large contiguous arrays on rayon's threads.
//!
//! Upstream runs `a + b`, `a * c`, `exp(a)`, … through ndarray's operators, on one core; on a
//! transformer's activations that left half of a two-core machine idle for a third of a
//! forward+backward pass. These helpers take the common cases — both operands of the same
//! shape and in standard layout, or one operand in standard layout and the other broadcast to
//! its shape (a bias row, an attention mask, a softmax or LayerNorm statistic), with at least
//! [`MIN_PAR`] elements — and hand everything else (strided views, operands that both
//! broadcast, small arrays) back to the caller's upstream path. A unique full-size operand is
//! overwritten in place, as upstream's owned operators do (upstream's `&a + &b` always
//! allocated, and the fresh pages of a linear layer's output cost more to fault in than the
//! addition of its bias); otherwise a new buffer is collected without being zeroed first. The
//! results are bit-for-bit upstream's: the same operation on the same pair of elements.

use crate::SharedArray;
use ndarray::{ArcArray, Zip};
use rayon::prelude::*;

/// Arrays smaller than this stay on upstream's single-threaded path (splitting costs more).
pub(crate) const MIN_PAR: usize = 1 << 15;
/// Elements per rayon task.
const CHUNK: usize = 1 << 13;

/// `f(lhs, rhs)` element by element, or the operands back where the fast path does not apply.
#[allow(clippy::type_complexity)]
pub(crate) fn binary<E, F>(
    mut lhs: SharedArray<E>,
    mut rhs: SharedArray<E>,
    f: F,
) -> Result<SharedArray<E>, (SharedArray<E>, SharedArray<E>)>
where
    E: Copy + Send + Sync,
    F: Fn(E, E) -> E + Send + Sync,
{
    if lhs.shape() != rhs.shape() {
        return broadcast(lhs, rhs, f);
    }
    if lhs.len() < MIN_PAR || !lhs.is_standard_layout() || !rhs.is_standard_layout() {
        return Err((lhs, rhs));
    }
    if lhs.is_unique() {
        {
            let b = rhs.as_slice().expect("standard layout");
            let a = lhs.as_slice_mut().expect("standard layout");
            a.par_chunks_mut(CHUNK)
                .zip(b.par_chunks(CHUNK))
                .for_each(|(a, b)| a.iter_mut().zip(b).for_each(|(a, b)| *a = f(*a, *b)));
        }
        return Ok(lhs);
    }
    if rhs.is_unique() {
        {
            let a = lhs.as_slice().expect("standard layout");
            let b = rhs.as_slice_mut().expect("standard layout");
            b.par_chunks_mut(CHUNK)
                .zip(a.par_chunks(CHUNK))
                .for_each(|(b, a)| b.iter_mut().zip(a).for_each(|(b, a)| *b = f(*a, *b)));
        }
        return Ok(rhs);
    }
    let a = lhs.as_slice().expect("standard layout");
    let b = rhs.as_slice().expect("standard layout");
    let out: alloc::vec::Vec<E> = a
        .par_iter()
        .with_min_len(CHUNK)
        .zip(b.par_iter())
        .map(|(a, b)| f(*a, *b))
        .collect();
    Ok(ArcArray::from_shape_vec(lhs.raw_dim(), out)
        .expect("same number of elements")
        .into_shared())
}

/// `f(lhs, rhs)` where one operand has the shape of the result and the other broadcasts to
/// it, or the operands back where that does not hold.
#[allow(clippy::type_complexity)]
fn broadcast<E, F>(
    lhs: SharedArray<E>,
    rhs: SharedArray<E>,
    f: F,
) -> Result<SharedArray<E>, (SharedArray<E>, SharedArray<E>)>
where
    E: Copy + Send + Sync,
    F: Fn(E, E) -> E + Send + Sync,
{
    let spans = |full: &SharedArray<E>, other: &SharedArray<E>| {
        full.len() >= MIN_PAR
            && full.is_standard_layout()
            && other.broadcast(full.raw_dim()).is_some()
    };
    if spans(&lhs, &rhs) {
        Ok(onto(lhs, &rhs, f))
    } else if spans(&rhs, &lhs) {
        Ok(onto(rhs, &lhs, move |b, a| f(a, b)))
    } else {
        Err((lhs, rhs))
    }
}

/// `g(full, other)` element by element, `other` broadcast to the shape of `full` (checked by
/// the caller): in place when `full` is unique, else into a new buffer.
fn onto<E, G>(mut full: SharedArray<E>, other: &SharedArray<E>, g: G) -> SharedArray<E>
where
    E: Copy + Send + Sync,
    G: Fn(E, E) -> E + Send + Sync,
{
    let other = other
        .broadcast(full.raw_dim())
        .expect("checked by the caller");
    if full.is_unique() {
        Zip::from(full.view_mut())
            .and(other)
            .par_for_each(|a, b| *a = g(*a, *b));
        return full;
    }
    Zip::from(full.view())
        .and(other)
        .par_map_collect(|a, b| g(*a, *b))
        .into_shared()
}

/// `f(x)` element by element, or the operand back where the fast path does not apply.
pub(crate) fn unary<E, F>(mut x: SharedArray<E>, f: F) -> Result<SharedArray<E>, SharedArray<E>>
where
    E: Copy + Send + Sync,
    F: Fn(E) -> E + Send + Sync,
{
    if x.len() < MIN_PAR || !x.is_standard_layout() {
        return Err(x);
    }
    if x.is_unique() {
        x.as_slice_mut()
            .expect("standard layout")
            .par_chunks_mut(CHUNK)
            .for_each(|a| a.iter_mut().for_each(|a| *a = f(*a)));
        return Ok(x);
    }
    let out: alloc::vec::Vec<E> = x
        .as_slice()
        .expect("standard layout")
        .par_iter()
        .with_min_len(CHUNK)
        .map(|a| f(*a))
        .collect();
    Ok(ArcArray::from_shape_vec(x.raw_dim(), out)
        .expect("same number of elements")
        .into_shared())
}

/// geosharp patch: the maximum of every lane of `lane` consecutive elements of a
/// standard-layout array (the maxima along its last axis), on rayon's threads; `None` where
/// the fast path does not apply.
pub(crate) fn max_lanes<E>(array: &SharedArray<E>, lane: usize) -> Option<Vec<E>>
where
    E: Copy + PartialOrd + Send + Sync,
{
    if lane == 0 || array.len() < MIN_PAR || !array.is_standard_layout() {
        return None;
    }
    let data = array.as_slice()?;
    let lanes_per_task = (CHUNK / lane).max(1);
    // rayon collects in order: lane i's maximum lands at i.
    let mut out = Vec::with_capacity(data.len() / lane);
    out.par_extend(
        data.par_chunks(lane * lanes_per_task)
            .flat_map_iter(|block| block.chunks(lane).map(|l| super::base::lane_max(l.iter()))),
    );
    Some(out)
}
