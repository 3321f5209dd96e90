use crate::UnsafeSharedRef;
use crate::{NdArrayElement, ShapeOps, SharedArray, iter_range_par, ops::NdArrayOps, run_par};

use alloc::{vec, vec::Vec};
use burn_backend::ElementConversion;
use burn_backend::Shape;
use ndarray::{ArrayView2, ArrayViewMut2, Axis, Ix2, IxDyn, s};

pub(crate) fn matmul<E: NdArrayElement>(
    lhs: SharedArray<E>,
    rhs: SharedArray<E>,
) -> SharedArray<E> {
    let shape_lhs = lhs.shape();
    let shape_rhs = rhs.shape();
    let ndims = shape_lhs.num_dims();
    let m = shape_lhs[ndims - 2]; // # of left rows
    let n = shape_rhs[ndims - 1]; // # of right cols

    let (out_shape, _, _, strides_out) = output_shape(shape_lhs, shape_rhs);
    let out_mat_size = m * n; // size of matrix component of output array
    let num_out_batches = out_shape.num_elements() / out_mat_size;

    // geosharp patch: each batch's matrices are taken as views of the operands, whatever
    // their strides: a transposed matrix (every weight gradient's Xᵀ, every dY·Wᵀ) and a
    // batch of heads split off a token-major activation (attention's q, k, v and their
    // gradients, `[n, t, heads, h]` with axes 1 and 2 swapped) reach the matrix product as
    // they are. Upstream reshaped every operand to `[batches, rows, cols]` first, copying
    // each non-standard one element by element on one core.
    let (shape_lhs, shape_rhs) = (shape_lhs.to_vec(), shape_rhs.to_vec());

    let alpha: E = 1.0.elem();
    let beta: E = 0.0.elem();

    let out = run_par!(|| {
        let mut out_array = ndarray::Array3::<E>::zeros((num_out_batches, m, n));
        // Un-flatten the output batch into a component-based batch index, and take the
        // matrix of each operand at it (index 0 along the operand's broadcast axes).
        let matrices = |out_batch: usize| {
            let out_index = strides_out.unflatten(out_batch);
            (
                batch_matrix(&lhs, &shape_lhs, &out_index),
                batch_matrix(&rhs, &shape_rhs, &out_index),
            )
        };

        // geosharp patch: fewer products than threads (a single matrix product: every linear
        // layer and its two gradients) are each split across rayon's threads by
        // `split_product`; matrixmultiply's own threading is off (Cargo.toml).
        #[cfg(feature = "multi-threads")]
        let one_by_one = num_out_batches < rayon::current_num_threads();
        #[cfg(not(feature = "multi-threads"))]
        let one_by_one = false;
        if one_by_one {
            for (out_batch, out_slice) in out_array.outer_iter_mut().enumerate() {
                let (lhs_slice, rhs_slice) = matrices(out_batch);
                split_product(lhs_slice, rhs_slice, out_slice);
            }
            return out_array.into_shared().into_dyn();
        }

        let unsafe_shared_out_array = UnsafeSharedRef::new(&mut out_array);

        iter_range_par!(0, num_out_batches).for_each(|out_batch| {
            let (lhs_slice, rhs_slice) = matrices(out_batch);

            unsafe {
                let mut out_slice = unsafe_shared_out_array
                    .get()
                    .slice_mut(s!(out_batch, .., ..));

                ndarray::linalg::general_mat_mul(
                    alpha,
                    &lhs_slice,
                    &rhs_slice,
                    beta,
                    &mut out_slice,
                )
            }
        });

        out_array.into_shared().into_dyn()
    });

    NdArrayOps::reshape(out, out_shape)
}

/// geosharp patch: the matrix (last two axes) of `array` at the batch index `out_index` of the
/// product's output, as a view with `array`'s own strides; an axis of length 1 in `shape`
/// is broadcast (index 0).
fn batch_matrix<'a, E>(
    array: &'a SharedArray<E>,
    shape: &[usize],
    out_index: &[usize],
) -> ArrayView2<'a, E> {
    let mut view = array.view();
    for (&len, &index) in shape.iter().zip(out_index) {
        view = view.index_axis_move(Axis(0), if len == 1 { 0 } else { index });
    }
    view.into_dimensionality::<Ix2>()
        .expect("the last two axes are left")
}

/// geosharp patch: below this many multiply–adds a product runs on the calling thread.
#[cfg(feature = "multi-threads")]
const MIN_SPLIT: usize = 1 << 21;
/// geosharp patch: the length of the slices a long inner dimension is cut into. Fixed (not
/// derived from the number of threads), so that every machine with more than one thread gets
/// the same result.
#[cfg(feature = "multi-threads")]
const K_SLICE: usize = 2048;

/// geosharp patch: `c = a·b` on rayon's threads, matrixmultiply single-threaded in each.
///
/// * A long inner dimension (`k ≥ 4·max(m, n)`: a weight gradient `Xᵀ·dY`, whose `k` is the
///   number of tokens) is cut into slices of about [`K_SLICE`]; the partial products run in
///   parallel and are added in slice order. matrixmultiply's own threading splits only the
///   rows of such a product and reached 80–100 GFLOP/s on MiniLM's weight gradients on two
///   Zen 3 cores, against 105–140 so. This changes the order of the sum over `k` (the result
///   differs from an unsplit product in the last bits), deterministically.
/// * Otherwise the rows of `c` are split evenly across the threads: each entry is the same
///   single-threaded sum as before, bit for bit.
fn split_product<E: NdArrayElement>(
    a: ArrayView2<'_, E>,
    b: ArrayView2<'_, E>,
    mut c: ArrayViewMut2<'_, E>,
) {
    let (one, zero): (E, E) = (1.0.elem(), 0.0.elem());
    #[cfg(feature = "multi-threads")]
    {
        use rayon::prelude::*;
        let (m, k) = a.dim();
        let n = b.dim().1;
        let threads = rayon::current_num_threads();
        if threads > 1 && m * n * k >= MIN_SPLIT {
            if k >= 4 * m.max(n) && k >= 2 * K_SLICE {
                let parts = k.div_ceil(K_SLICE);
                let len = k.div_ceil(parts);
                let mut partials: Vec<ndarray::Array2<E>> = (0..parts)
                    .into_par_iter()
                    .map(|p| {
                        let r = p * len..((p + 1) * len).min(k);
                        let mut out = ndarray::Array2::<E>::zeros((m, n));
                        ndarray::linalg::general_mat_mul(
                            one,
                            &a.slice(s![.., r.clone()]),
                            &b.slice(s![r, ..]),
                            zero,
                            &mut out,
                        );
                        out
                    })
                    .collect();
                let first = partials.remove(0);
                c.assign(&first);
                for partial in &partials {
                    c.zip_mut_with(partial, |c, p| *c = *c + *p);
                }
                return;
            }
            let rows = m.div_ceil(threads).max(1);
            c.axis_chunks_iter_mut(Axis(0), rows)
                .into_par_iter()
                .zip(a.axis_chunks_iter(Axis(0), rows).into_par_iter())
                .for_each(|(mut c, a)| ndarray::linalg::general_mat_mul(one, &a, &b, zero, &mut c));
            return;
        }
    }
    ndarray::linalg::general_mat_mul(one, &a, &b, zero, &mut c);
}

#[derive(Debug, PartialEq)]
struct Strides {
    strides: Vec<usize>,
}
impl Strides {
    fn new(strides: Vec<usize>) -> Self {
        Strides { strides }
    }

    fn unflatten(&self, linear_index: usize) -> Vec<usize> {
        let mut coord = Vec::with_capacity(self.strides.len());
        let mut rem = linear_index;
        for stride in self.strides.iter() {
            coord.push(rem / stride);
            rem %= stride;
        }
        coord
    }
    // geosharp patch: upstream's `flatten` (a flat batch index into an operand reshaped to
    // `[batches, rows, cols]`) is gone: `batch_matrix` indexes each operand's own axes.
}

/// Compute the (broadcasted) output shape of matrix multiplication, along with strides for
/// the non-matrix dimensions of all arrays.
///
/// # Arguments
/// * `lsh`: Shape of the first (left-hand) matrix multiplication argument.
/// * `rsh`: Shape of the second (right-hand) matrix multiplication argument.
///
/// # Panics
/// * If `D` is not at least 2.
/// * If the matrix multiplication dimensions (last 2) are incompatible.
/// * If any other dimension is not the same for both tensors, or equal to 1. (Any dimension where
///   one dim is equal to 1 is broadcast.)
fn output_shape(lsh: &[usize], rsh: &[usize]) -> (Shape, Strides, Strides, Strides) {
    let ndims = lsh.num_dims();
    if ndims < 2 {
        panic!("Matrix multiplication requires an array with at least 2 dimensions.");
    }

    // Fetch matrix dimensions and check compatibility.
    let l_rows = lsh[ndims - 2];
    let l_cols = lsh[ndims - 1];
    let r_rows = rsh[ndims - 2];
    let r_cols = rsh[ndims - 1];
    if l_cols != r_rows {
        panic!("Dimensions are incompatible for matrix multiplication.");
    }
    // Set matrix dimensions of the output shape.
    let mut osh = vec![0; ndims];
    osh[ndims - 2] = l_rows;
    osh[ndims - 1] = r_cols;

    // Set other array dimensions, broadcasting as necessary.
    // Compute the strides inline.
    let mut cur_l_stride: usize = 1;
    let mut cur_r_stride: usize = 1;
    let mut cur_o_stride: usize = 1;
    let mut l_strides = Vec::with_capacity(ndims - 2);
    let mut r_strides = Vec::with_capacity(ndims - 2);
    let mut o_strides = Vec::with_capacity(ndims - 2);
    for i in (0..ndims - 2).rev() {
        let l_dim = lsh[i];
        let r_dim = rsh[i];

        // Compatible dimensions are:
        //   1. Both dimensions are equal.
        //   2. One of the dimensions is equal to 1.
        let o_dim: usize;
        if l_dim == r_dim {
            o_dim = l_dim; // both dimensions are equal
            l_strides.push(cur_l_stride);
            r_strides.push(cur_r_stride);
        } else if l_dim == 1 {
            o_dim = r_dim; // broadcast the left
            l_strides.push(0);
            r_strides.push(cur_r_stride);
        } else if r_dim == 1 {
            o_dim = l_dim; // broadcast the right
            l_strides.push(cur_l_stride);
            r_strides.push(0);
        } else {
            panic!("Dimensions differ and cannot be broadcasted.");
        }
        osh[i] = o_dim;
        o_strides.push(cur_o_stride);
        cur_o_stride *= o_dim;

        cur_l_stride *= l_dim;
        cur_r_stride *= r_dim;
    }
    l_strides.reverse();
    r_strides.reverse();
    o_strides.reverse();

    (
        Shape::from(osh),
        Strides::new(l_strides),
        Strides::new(r_strides),
        Strides::new(o_strides),
    )
}

pub(crate) fn cross<E: NdArrayElement>(
    lhs: SharedArray<E>,
    rhs: SharedArray<E>,
    dim: usize,
) -> SharedArray<E> {
    let shape_lhs = lhs.shape();
    let shape_rhs = rhs.shape();
    let ndims = shape_lhs.num_dims();

    // Broadcast the shapes except along dim
    let mut broadcast_shape = vec![0; ndims];
    for i in 0..ndims {
        if i == dim {
            broadcast_shape[i] = shape_lhs[i]; // already checked to be 3
        } else {
            let l = shape_lhs[i];
            let r = shape_rhs[i];
            if l == r {
                broadcast_shape[i] = l;
            } else if l == 1 {
                broadcast_shape[i] = r;
            } else if r == 1 {
                broadcast_shape[i] = l;
            } else {
                panic!("Tensors are not broadcastable along dimension {}", i);
            }
        }
    }

    // Broadcast lhs and rhs
    let lhs_broadcast = if shape_lhs == broadcast_shape.as_slice() {
        lhs
    } else {
        NdArrayOps::expand(lhs, Shape::from(broadcast_shape.clone()))
    };
    let rhs_broadcast = if shape_rhs == broadcast_shape.as_slice() {
        rhs
    } else {
        NdArrayOps::expand(rhs, Shape::from(broadcast_shape.clone()))
    };

    // Now, move dim to the last dimension
    let mut perm = (0..ndims).collect::<Vec<_>>();
    perm.remove(dim);
    perm.push(dim);

    let lhs_permuted = NdArrayOps::permute(lhs_broadcast, &perm);
    let rhs_permuted = NdArrayOps::permute(rhs_broadcast, &perm);

    // Reshape to (*, 3)
    let total_elements = lhs_permuted.shape().num_elements();
    let batch_size = total_elements / 3;
    let lhs_reshaped = NdArrayOps::reshape(lhs_permuted, Shape::new([batch_size, 3]));
    let rhs_reshaped = NdArrayOps::reshape(rhs_permuted, Shape::new([batch_size, 3]));

    // Compute cross product
    let mut result = ndarray::ArrayD::<E>::zeros(IxDyn(&[batch_size, 3]));
    for i in 0..batch_size {
        let a1 = lhs_reshaped[IxDyn(&[i, 0])];
        let a2 = lhs_reshaped[IxDyn(&[i, 1])];
        let a3 = lhs_reshaped[IxDyn(&[i, 2])];
        let b1 = rhs_reshaped[IxDyn(&[i, 0])];
        let b2 = rhs_reshaped[IxDyn(&[i, 1])];
        let b3 = rhs_reshaped[IxDyn(&[i, 2])];
        result[IxDyn(&[i, 0])] = a2.mul(b3).sub(a3.mul(b2));
        result[IxDyn(&[i, 1])] = a3.mul(b1).sub(a1.mul(b3));
        result[IxDyn(&[i, 2])] = a1.mul(b2).sub(a2.mul(b1));
    }

    let result_shared = result.into_shared();

    // Reshape back to the broadcast shape with dim at the end
    let mut result_shape = broadcast_shape;
    result_shape.remove(dim);
    result_shape.push(3);
    let result_reshaped = NdArrayOps::reshape(result_shared, Shape::from(result_shape));

    // Permute back
    let mut inv_perm = vec![0; ndims];
    for (i, &p) in perm.iter().enumerate() {
        inv_perm[p] = i;
    }
    NdArrayOps::permute(result_reshaped, &inv_perm)
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Strides {
        fn empty() -> Self {
            Strides {
                strides: Vec::with_capacity(0),
            }
        }
    }

    #[test]
    fn test_output_shape() {
        // plain matrix multiply
        assert_eq!(
            output_shape(&[5, 3], &[3, 7]),
            (
                Shape::from([5, 7]),
                Strides::empty(),
                Strides::empty(),
                Strides::empty()
            )
        );
        // matrix multiply with one extra stack dimension
        assert_eq!(
            output_shape(&[4, 5, 3], &[4, 3, 7]),
            (
                Shape::from([4, 5, 7]),
                Strides::new(vec![1]),
                Strides::new(vec![1]),
                Strides::new(vec![1])
            )
        );
        // rank 3, broadcast left
        assert_eq!(
            output_shape(&[1, 5, 3], &[4, 3, 7]),
            (
                Shape::from([4, 5, 7]),
                Strides::new(vec![0]),
                Strides::new(vec![1]),
                Strides::new(vec![1])
            )
        );
        // rank 3, broadcast right
        assert_eq!(
            output_shape(&[4, 5, 3], &[1, 3, 7]),
            (
                Shape::from([4, 5, 7]),
                Strides::new(vec![1]),
                Strides::new(vec![0]),
                Strides::new(vec![1])
            )
        );
        // rank 4, multi broadcast
        assert_eq!(
            output_shape(&[1, 4, 5, 3], &[8, 1, 3, 7]),
            (
                Shape::from([8, 4, 5, 7]),
                Strides::new(vec![0, 1]),
                Strides::new(vec![1, 0]),
                Strides::new(vec![4, 1])
            )
        );
        // rank 5, multi-broadcast
        assert_eq!(
            output_shape(&[1, 3, 4, 5, 3], &[8, 3, 1, 3, 7]),
            (
                Shape::from([8, 3, 4, 5, 7]),
                Strides::new(vec![0, 4, 1]),
                Strides::new(vec![3, 1, 0]),
                Strides::new(vec![12, 4, 1])
            )
        )
    }

    #[test]
    #[should_panic(
        expected = "Matrix multiplication requires an array with at least 2 dimensions."
    )]
    fn test_output_shape_too_small() {
        output_shape(&[4], &[4]);
    }

    #[test]
    #[should_panic(expected = "Dimensions are incompatible for matrix multiplication.")]
    fn test_output_shape_bad_matrix_dims() {
        output_shape(&[5, 3], &[4, 7]);
    }

    #[test]
    #[should_panic(expected = "Dimensions differ and cannot be broadcasted.")]
    fn test_output_shape_non_broadcast() {
        output_shape(&[4, 5, 3], &[2, 3, 7]);
    }
}
