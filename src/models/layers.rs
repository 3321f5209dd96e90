//! Two building blocks every transformer here uses, written around two defects of Burn 0.21's
//! own.
//!
//! * **GELU's gradient.** `burn::tensor::activation::gelu` computes the exact, erf-based
//!   GELU forward, but its backward (`ActivationOps::gelu_backward`, which no CPU backend
//!   overrides) is the derivative of the *tanh approximation*: off by up to 8.7·10⁻⁴ near
//!   x = 2, so every gradient through a feed-forward layer was the gradient of a different
//!   function than the loss, and Hessian–vector products by differences of gradients were not
//!   symmetric. [`gelu`] has the same forward, bit for bit, and the exact derivative; its
//!   backward is one product instead of fifteen passes with `tanh` and `powf`.
//! * **Token-wise linear layers.** `Linear::forward` on `[batch, tokens, d]` runs one small
//!   matrix product per sentence (repacking the weight each time), and its weight gradient
//!   materialises `[batch, d_in, d_out]` partial products before summing them — 300 MB of
//!   freshly faulted pages per feed-forward layer of MiniLM at batch 128. [`dense`] flattens
//!   the tokens first, so each of the three products is one large matrix product.

use std::f64::consts::{PI, SQRT_2};

use burn::nn::Linear;
use burn::prelude::{Backend, Tensor};
use burn::tensor::activation::softmax;

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
/// The value is Burn's `gelu` bit for bit (x·(1 + erf(x/√2))/2, in that order). Under
/// autodiff the result is y₀ + (x − sg(x)) ⊙ GELU′(sg(x)), sg = detach: the second term is
/// exactly zero in value (x − x = 0) and carries the derivative, so the backward pass is one
/// product and only GELU′ is kept for it (as Burn keeps x).
pub fn gelu<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    let x0 = x.clone().detach();
    let u = x0.clone().div_scalar(SQRT_2);
    let one_plus_erf = u.clone().erf().add_scalar(1.0);
    let y0 = x0.clone().mul(one_plus_erf.clone()).div_scalar(2.0);
    if !B::ad_enabled(&x.device()) {
        return y0;
    }
    let cdf = one_plus_erf.div_scalar(2.0);
    let x_pdf = u
        .clone()
        .mul(u)
        .neg()
        .exp()
        .mul(x0.clone())
        .mul_scalar(1.0 / (2.0 * PI).sqrt());
    y0 + (x - x0) * (cdf + x_pdf)
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
    let [n, t, d] = x.dims();
    let h = d / heads;
    let split = |y: Tensor<B, 3>| y.reshape([n, t, heads, h]).swap_dims(1, 2);
    let q = split(dense(query, x.clone()));
    let k = split(dense(key, x.clone()));
    let v = split(dense(value, x));
    let scores = q.matmul(k.swap_dims(2, 3)).div_scalar((h as f64).sqrt());
    let scores = match additive_mask {
        Some(mask) => scores + mask,
        None => scores,
    };
    softmax(scores, 3)
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

    /// Φ(x) + x φ(x) in f64, from the f64 erf of `libm`.
    fn exact_derivative(x: f64) -> f64 {
        0.5 * (1.0 + libm::erf(x / SQRT_2)) + x * (-x * x / 2.0).exp() / (2.0 * PI).sqrt()
    }

    #[test]
    fn gradient_is_the_exact_derivative_and_value_is_burns() {
        let device = Default::default();
        let xs = points();
        let x = Tensor::<A, 1>::from_data(TensorData::new(xs.clone(), [xs.len()]), &device)
            .require_grad();
        let y = gelu(x.clone());
        let burn = burn::tensor::activation::gelu(x.clone());
        assert_eq!(
            y.to_data().to_vec::<f32>().unwrap(),
            burn.to_data().to_vec::<f32>().unwrap(),
            "the value must be Burn's exact GELU bit for bit"
        );
        let grads = y.sum().backward();
        let g = x.grad(&grads).unwrap().to_data().to_vec::<f32>().unwrap();
        let worst = xs
            .iter()
            .zip(&g)
            .map(|(&x, &g)| (g as f64 - exact_derivative(x as f64)).abs())
            .fold(0.0, f64::max);
        // f32 rounding of Φ + xφ is ≈ 1e-7; Burn's tanh-based derivative is off by 8.7e-4.
        assert!(worst < 1e-6, "max |GELU' error| = {worst:e}");
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
        let a = dense(&linear, x.clone()).to_data().to_vec::<f32>().unwrap();
        let b = linear.forward(x).to_data().to_vec::<f32>().unwrap();
        assert_eq!(a.len(), 2 * 4 * 3);
        for (a, b) in a.iter().zip(&b) {
            assert!((a - b).abs() <= 1e-6 * (1.0 + b.abs()), "{a} vs {b}");
        }
    }
}
