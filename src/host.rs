//! Moving small dense matrices and scalars between the host (f64, nalgebra) and a Burn device.
//!
//! The geometry keeps its per-base-point linear algebra (Gram matrices, inverses, the Sylvester
//! eigenbasis) on the host in f64 and uploads the results once; measures read back only the
//! scalars that decide control flow. These helpers are the only place such transfers happen.

use burn::prelude::{Backend, Tensor, TensorData};
use burn::tensor::TensorCreationOptions;
use nalgebra::DMatrix;

/// Uploads `mats` (all r×c) as one `[mats.len(), r, c]` tensor.
///
/// Pass the device *and* the dtype (`(&device, like.dtype())`): Burn 0.21 registers default
/// dtypes per device type, so e.g. `NdArray<f32>` and `NdArray<f64>` share one default and a
/// tensor created from the default may not have the backend's element type.
///
/// # Panics
/// If `mats` is empty or the matrices differ in shape (a programming error).
pub fn upload_batch<B: Backend>(
    mats: &[DMatrix<f64>],
    options: impl Into<TensorCreationOptions<B>>,
) -> Tensor<B, 3> {
    let (r, c) = mats[0].shape();
    let mut values = Vec::with_capacity(mats.len() * r * c);
    for m in mats {
        assert_eq!(m.shape(), (r, c), "matrices of one batch share a shape");
        // nalgebra is column-major; the tensor is row-major.
        for i in 0..r {
            values.extend(m.row(i).iter().copied());
        }
    }
    Tensor::from_data(TensorData::new(values, [mats.len(), r, c]), options)
}

/// Downloads a `[k, r, c]` tensor as `k` f64 matrices.
pub fn download_batch<B: Backend>(t: Tensor<B, 3>) -> Vec<DMatrix<f64>> {
    let [k, r, c] = t.dims();
    let values = to_f64_vec(t);
    (0..k)
        .map(|i| DMatrix::from_row_slice(r, c, &values[i * r * c..(i + 1) * r * c]))
        .collect()
}

/// Uploads a vector of f64 values as a tensor of the given shape (see [`upload_batch`] on
/// passing the dtype).
pub fn upload<B: Backend, const D: usize>(
    values: &[f64],
    shape: [usize; D],
    options: impl Into<TensorCreationOptions<B>>,
) -> Tensor<B, D> {
    Tensor::from_data(TensorData::new(values.to_vec(), shape), options)
}

/// Downloads any float tensor as f64 values in row-major order.
pub fn to_f64_vec<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f64> {
    t.into_data().iter::<f64>().collect()
}

/// Reads a one-element tensor as f64.
pub fn scalar<B: Backend, const D: usize>(t: Tensor<B, D>) -> f64 {
    t.into_data().iter::<f64>().next().unwrap_or(f64::NAN)
}
