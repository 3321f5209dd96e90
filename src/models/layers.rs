//! Two building blocks every transformer here uses, written around two defects of Burn 0.21's
//! own.
//!
//! * **GELU's gradient.** `burn::tensor::activation::gelu` computes the exact, erf-based
//!   GELU forward, but its backward (`ActivationOps::gelu_backward`, which no CPU backend
//!   overrides) is the derivative of the *tanh approximation*: off by up to 8.7·10⁻⁴ near
//!   x = 2, so every gradient through a feed-forward layer was the gradient of a different
//!   function than the loss, and Hessian–vector products by differences of gradients were not
//!   symmetric. [`gelu`] has the same forward and the exact derivative; its backward is one
//!   product instead of fifteen passes with `tanh` and `powf`. On Burn's ndarray backend, whose
//!   device is the host, its forward is one fused, multi-threaded, vectorised loop over the
//!   buffer ([`super::gelu_kernel`]): Burn
//!   evaluates `erf` as libm's f64 `erf` on one core, one pass per op, which was 7.5 % of a
//!   MiniLM forward+backward.
//! * **Token-wise linear layers.** `Linear::forward` on `[batch, tokens, d]` runs one small
//!   matrix product per sentence (repacking the weight each time), and its weight gradient
//!   materialises `[batch, d_in, d_out]` partial products before summing them — 300 MB of
//!   freshly faulted pages per feed-forward layer of MiniLM at batch 128. [`dense`] flattens
//!   the tokens first, so each of the three products is one large matrix product.

use std::any::TypeId;
use std::f64::consts::{PI, SQRT_2};

use burn::backend::ndarray::NdArrayDevice;
use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::prelude::{Backend, Tensor};
use burn::tensor::{DType, TensorData};
use rayon::prelude::*;

use super::fused::attention::segment_attention;
use super::fused::layer_norm::layer_norm;
use super::fused::softmax::scaled_masked_softmax;
use super::gelu_kernel::gelu_in_place;

/// `linear` applied to every token of `x` `[batch, tokens, d_in]` → `[batch, tokens, d_out]`,
/// as one `[batch·tokens, d_in] × [d_in, d_out]` product (see the module docs for why).
pub fn dense<B: Backend>(linear: &Linear<B>, x: Tensor<B, 3>) -> Tensor<B, 3> {
    let [n, t, d] = x.dims();
    let y = linear.forward(x.reshape([n * t, d]));
    let out = y.dims()[1];
    y.reshape([n, t, out])
}

/// GELU(x) = x Φ(x), Φ(x) = ½(1 + erf(x/√2)), with the exact derivative
/// GELU′(x) = Φ(x) + x φ(x), φ(x) = exp(−x²/2)/√(2π).
///
/// Under autodiff the result is y₀ + (x − sg(x)) ⊙ GELU′(sg(x)), sg = detach, y₀ = GELU(sg(x)):
/// the second term is exactly zero in value (x − x = 0) and carries the derivative, so the
/// backward pass is one product and only GELU′ is kept for it (as Burn keeps x). y₀ and GELU′
/// come from [`gelu_on_host`] for f32 on the ndarray backend, and from Burn's element-wise ops
/// elsewhere (there y₀ is Burn's `gelu` bit for bit).
pub fn gelu<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    let tracked = B::ad_enabled(&x.device());
    let x0 = x.clone().detach();
    let (y0, derivative) = if host_is_device::<B>() && x.dtype() == DType::F32 {
        gelu_on_host(x0.clone(), tracked)
    } else {
        gelu_by_ops(x0.clone(), tracked)
    };
    match derivative {
        Some(derivative) => y0 + (x - x0) * derivative,
        None => y0,
    }
}

/// Whether `B` computes on the host: Burn's ndarray backend, bare or under autodiff (whose
/// device type is its inner backend's).
fn host_is_device<B: Backend>() -> bool {
    TypeId::of::<B::Device>() == TypeId::of::<NdArrayDevice>()
}

/// GELU(x) and (when `derivative`) GELU′(x) of an untracked f32 tensor on the host, in one
/// pass over its buffer, split across rayon's threads, by the vectorised kernel of
/// [`super::gelu_kernel`] (Φ accurate relative to its size on the left tail too, where
/// 1 + erf(x/√2) cancels).
pub fn gelu_on_host<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    derivative: bool,
) -> (Tensor<B, D>, Option<Tensor<B, D>>) {
    /// Elements per rayon task: large enough to amortise the task, small enough to balance.
    const CHUNK: usize = 1 << 14;
    let (shape, device) = (x.shape(), x.device());
    // burn-ndarray's `into_data` hands over the buffer of a tensor that owns it, but copies a
    // shared one (here: shared with the caller's `x` and perhaps the autodiff graph) element
    // by element through an `IxDyn` iterator, ≈ 15 ns per element — more than GELU itself.
    // `mul_scalar(1.0)` (exact) gives this tensor a buffer of its own (a memcpy when shared,
    // an in-place pass otherwise); GELU then overwrites it in place.
    let mut y = x
        .mul_scalar(1.0)
        .into_data()
        .into_vec::<f32>()
        .expect("an f32 tensor");
    let dy = if derivative {
        let mut dy = vec![0.0f32; y.len()];
        y.par_chunks_mut(CHUNK)
            .zip(dy.par_chunks_mut(CHUNK))
            .for_each(|(y, dy)| gelu_in_place(y, Some(dy)));
        Some(Tensor::from_data(
            TensorData::new(dy, shape.clone()),
            &device,
        ))
    } else {
        y.par_chunks_mut(CHUNK).for_each(|y| gelu_in_place(y, None));
        None
    };
    (Tensor::from_data(TensorData::new(y, shape), &device), dy)
}

/// GELU(x) (Burn's `gelu`, bit for bit: x·(1 + erf(x/√2))/2) and (when `derivative`) GELU′(x)
/// of an untracked tensor, with Burn's element-wise ops on any backend.
pub fn gelu_by_ops<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    derivative: bool,
) -> (Tensor<B, D>, Option<Tensor<B, D>>) {
    let u = x.clone().div_scalar(SQRT_2);
    let one_plus_erf = u.clone().erf().add_scalar(1.0);
    let y0 = x.clone().mul(one_plus_erf.clone()).div_scalar(2.0);
    if !derivative {
        return (y0, None);
    }
    let cdf = one_plus_erf.div_scalar(2.0);
    let x_pdf = u
        .clone()
        .mul(u)
        .neg()
        .exp()
        .mul(x)
        .mul_scalar(1.0 / (2.0 * PI).sqrt());
    (y0, Some(cdf + x_pdf))
}

/// softmax((x W_Q⁽ⁱ⁾ + b_Q)(x W_K⁽ⁱ⁾ + b_K)ᵀ / √h + mask)(x W_V⁽ⁱ⁾ + b_V) per head i, heads
/// concatenated: `[n, t, d]` → `[n, t, d]`, before the output projection. `additive_mask`
/// (`[n, 1, 1, t]`, 0 or −10⁹) hides padded keys. Shared by every attention model here, so
/// that they all have exactly the symmetries they declare.
pub fn multi_head<B: Backend>(
    query: &Linear<B>,
    key: &Linear<B>,
    value: &Linear<B>,
    heads: usize,
    x: Tensor<B, 3>,
    additive_mask: Option<Tensor<B, 4>>,
) -> Tensor<B, 3> {
    attend(
        dense(query, x.clone()),
        dense(key, x.clone()),
        dense(value, x),
        heads,
        additive_mask,
    )
}

/// LayerNorm over the last axis: y = γ ⊙ (x − μ)/√(σ² + ε) + β per row.
///
/// The fields are `burn::nn::LayerNorm`'s (so the parameter names, `gamma` and `beta`, and the
/// records are the same); the forward pass is [`layer_norm`], one fused operation on the ndarray
/// backend (`models::fused`) and Burn's own LayerNorm elsewhere.
#[derive(Module, Debug)]
pub struct LayerNorm<B: Backend> {
    /// The scale γ, `[d]`.
    pub gamma: Param<Tensor<B, 1>>,
    /// The shift β, `[d]`.
    pub beta: Option<Param<Tensor<B, 1>>>,
    /// ε, added to the variance.
    pub epsilon: f64,
}

impl<B: Backend> LayerNorm<B> {
    /// γ = 1, β = 0 over `d` features (Burn's `LayerNormConfig::new(d).init`).
    pub fn new(d: usize, epsilon: f64, device: &B::Device) -> Self {
        Self {
            gamma: Param::from_tensor(Tensor::ones([d], device)),
            beta: Some(Param::from_tensor(Tensor::zeros([d], device))),
            epsilon,
        }
    }

    /// LayerNorm of `x` over its last axis.
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        layer_norm(
            x,
            self.gamma.val(),
            self.beta.as_ref().map(Param::val),
            self.epsilon,
        )
    }
}

/// softmax(q⁽ⁱ⁾ k⁽ⁱ⁾ᵀ / √h + mask) v⁽ⁱ⁾ per head i, heads concatenated: projected queries, keys
/// and values `[n, t, d]` → `[n, t, d]` (the core of [`multi_head`], also run on the unpacked
/// projections of a packed batch, [`super::packing`]).
///
/// Without a mask, on the ndarray backend in f32, this is one fused operation with each
/// sequence a segment ([`super::fused::attention`]); otherwise Burn's batched products around
/// the fused softmax.
pub fn attend<B: Backend>(
    q: Tensor<B, 3>,
    k: Tensor<B, 3>,
    v: Tensor<B, 3>,
    heads: usize,
    additive_mask: Option<Tensor<B, 4>>,
) -> Tensor<B, 3> {
    let [n, t, d] = q.dims();
    if additive_mask.is_none() {
        let rows = |x: &Tensor<B, 3>| x.clone().reshape([n * t, d]);
        let fused = segment_attention(rows(&q), rows(&k), rows(&v), heads, &vec![t; n]);
        if let Some(context) = fused {
            return context.reshape([n, t, d]);
        }
    }
    let h = d / heads;
    let split = |y: Tensor<B, 3>| y.reshape([n, t, heads, h]).swap_dims(1, 2);
    let (q, k, v) = (split(q), split(k), split(v));
    let scores = q.matmul(k.swap_dims(2, 3));
    scaled_masked_softmax(scores, 1.0 / (h as f64).sqrt(), additive_mask)
        .matmul(v)
        .swap_dims(1, 2)
        .reshape([n, t, d])
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, NdArray};
    use burn::nn::LinearConfig;
    use burn::tensor::TensorData;

    type A = Autodiff<NdArray<f32>>;

    fn points() -> Vec<f32> {
        (-400..=400).map(|i| i as f32 * 0.02).collect()
    }

    /// `xs` as an untracked f32 tensor on the ndarray backend.
    fn tensor(xs: &[f32]) -> Tensor<NdArray<f32>, 1> {
        Tensor::from_data(
            TensorData::new(xs.to_vec(), [xs.len()]),
            &Default::default(),
        )
    }

    /// The values of an f32 tensor.
    fn values<const D: usize>(t: Tensor<NdArray<f32>, D>) -> Vec<f32> {
        t.to_data().to_vec::<f32>().unwrap()
    }

    /// Φ(x) + x φ(x) in f64, from the f64 erf of `libm`.
    fn exact_derivative(x: f64) -> f64 {
        0.5 * (1.0 + libm::erf(x / SQRT_2)) + x * (-x * x / 2.0).exp() / (2.0 * PI).sqrt()
    }

    /// GELU′ of `xs` through [`gelu`] on the backend `B`, and its values.
    fn gelu_and_gradient<B: burn::tensor::backend::AutodiffBackend>(
        xs: &[f32],
    ) -> (Vec<f32>, Vec<f32>) {
        let device = Default::default();
        let x = Tensor::<B, 1>::from_data(TensorData::new(xs.to_vec(), [xs.len()]), &device)
            .require_grad();
        let y = gelu(x.clone());
        let values = y.to_data().convert::<f32>().to_vec::<f32>().unwrap();
        let grads = y.sum().backward();
        let g = x.grad(&grads).unwrap().to_data().convert::<f32>();
        (values, g.to_vec::<f32>().unwrap())
    }

    /// The largest |a − b| / (|b| + floor) over the grid.
    fn worst(xs: &[f32], got: &[f32], exact: impl Fn(f64) -> f64, floor: f64) -> f64 {
        xs.iter()
            .zip(got)
            .map(|(&x, &g)| {
                let e = exact(x as f64);
                (g as f64 - e).abs() / (e.abs() + floor)
            })
            .fold(0.0, f64::max)
    }

    #[test]
    fn gradient_is_the_exact_derivative_on_both_paths() {
        let xs = points();
        assert!(
            host_is_device::<A>(),
            "f32 on ndarray must take the host path"
        );
        // f32 on ndarray: the fused host loop; f64 on ndarray and anything but ndarray: the
        // element-wise ops (checked here through f64, whose dtype takes that path).
        let (host_values, host_gradient) = gelu_and_gradient::<A>(&xs);
        let (ops_values, ops_gradient) = gelu_and_gradient::<Autodiff<NdArray<f64>>>(&xs);
        let exact_value = |x: f64| x * 0.5 * (1.0 + libm::erf(x / SQRT_2));
        // f32 rounding of Φ + xφ is ≈ 1e-7; Burn's tanh-based derivative is off by 8.7e-4.
        for gradient in [&host_gradient, &ops_gradient] {
            let error = worst(&xs, gradient, exact_derivative, 1.0);
            assert!(error < 1e-6, "max |GELU' error| = {error:e}");
        }
        // Values within a few f32 ulps of the f64 closed form (relative to |y| + 1e-6).
        for values in [&host_values, &ops_values] {
            let error = worst(&xs, values, exact_value, 1e-6);
            assert!(error < 1e-6, "max relative GELU error = {error:e}");
        }
    }

    #[test]
    fn the_element_wise_path_is_burns_gelu_bit_for_bit() {
        let xs = points();
        let x = tensor(&xs);
        let (y, d) = gelu_by_ops(x.clone(), false);
        assert!(d.is_none());
        assert_eq!(values(y), values(burn::tensor::activation::gelu(x)));
    }

    /// The host path works in place over a buffer of its own: a caller's tensor that shares
    /// the input's buffer keeps its values, and a shared and an unshared input give the same
    /// result.
    #[test]
    fn the_host_path_leaves_a_shared_input_alone() {
        let xs = points();
        let x = tensor(&xs);
        let (shared, _) = gelu_on_host(x.clone(), true);
        assert_eq!(values(x.clone()), xs);
        let (owned, _) = gelu_on_host(x, true);
        let owned = values(owned);
        assert_eq!(values(shared), owned);
        assert_ne!(owned, xs);
    }

    #[test]
    fn without_autodiff_the_host_path_gives_the_same_values() {
        let xs = points();
        let x = tensor(&xs);
        let (tracked_values, _) = gelu_and_gradient::<A>(&xs);
        assert_eq!(values(gelu(x)), tracked_values);
    }

    #[test]
    fn dense_equals_linear_on_tokens() {
        let device = Default::default();
        let linear = LinearConfig::new(5, 3).init::<NdArray<f32>>(&device);
        let x = Tensor::<NdArray<f32>, 3>::random(
            [2, 4, 5],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            &device,
        );
        let a = values(dense(&linear, x.clone()));
        let b = values(linear.forward(x));
        assert_eq!(a.len(), 2 * 4 * 3);
        for (a, b) in a.iter().zip(&b) {
            assert!((a - b).abs() <= 1e-6 * (1.0 + b.abs()), "{a} vs {b}");
        }
    }
}
