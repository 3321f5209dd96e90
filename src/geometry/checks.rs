//! Diagnostics every geometry must pass, shipped so that new geometries get them for free
//! (as ManifoldsBase ships `test_suite.jl` and pymanopt `check_retraction`).
//!
//! Each function returns a *relative* residual (0 when the identity holds exactly), computed on
//! the host in f64 from downloaded tensors, so the same check measures an f64 or an f32 backend.
//!
//! * [`horizontal_residual`] — the horizontal condition of a GL(h) pair (spec §2);
//! * [`idempotence`] — P(P u) = P u;
//! * [`vertical_orthogonality`] — ⟨P u, V v⟩_w = 0;
//! * [`representer_residual`] — ⟨grad_R g, v⟩_w = ⟨g, v⟩;
//! * [`integrate_geodesic`] — RK4 on γ̈ = −Γ_γ(γ̇, γ̇), the reference for Taylor slopes
//!   (‖v(tξ) − γ(t)‖ = O(t³) for the second-order step, O(t²) for the first) and energy
//!   conservation (⟨γ̇, γ̇⟩_γ is constant along a geodesic of the Levi-Civita connection).

use burn::prelude::{Backend, Tensor};
use nalgebra::DMatrix;

use super::base::{Geometry, Metric};
use crate::host::{download_batch, scalar, to_f64_vec};

/// Euclidean norm of all parts (host f64).
pub fn euclidean_norm<B: Backend>(parts: &[Tensor<B, 3>]) -> f64 {
    parts
        .iter()
        .flat_map(|p| to_f64_vec(p.clone()))
        .map(|x| x * x)
        .sum::<f64>()
        .sqrt()
}

/// ‖a − b‖ / max(‖b‖, tiny) over all parts (Euclidean, host f64).
pub fn relative_difference<B: Backend>(a: &[Tensor<B, 3>], b: &[Tensor<B, 3>]) -> f64 {
    let diff: Vec<_> = a
        .iter()
        .zip(b)
        .map(|(a, b)| a.clone() - b.clone())
        .collect();
    euclidean_norm(&diff) / euclidean_norm(b).max(f64::MIN_POSITIVE)
}

/// Relative residual of the horizontal condition of ξ at (G, H), worst over heads:
/// inv ‖Gᵀξ_G S_G⁻¹ − S_H⁻¹ξ_HᵀH‖ and mix ‖Gᵀξ_G S_H − S_Gξ_HᵀH‖, each divided by the sum of
/// the norms of its two terms. S = GᵀG exactly (no ridge).
pub fn horizontal_residual<B: Backend>(
    base: &[Tensor<B, 3>],
    xi: &[Tensor<B, 3>],
    metric: Metric,
) -> f64 {
    let (gs, hs) = (
        download_batch(base[0].clone()),
        download_batch(base[1].clone()),
    );
    let (xgs, xhs) = (download_batch(xi[0].clone()), download_batch(xi[1].clone()));
    let mut worst: f64 = 0.0;
    for i in 0..gs.len() {
        let (g, h, xg, xh) = (&gs[i], &hs[i], &xgs[i], &xhs[i]);
        let (sg, sh) = (g.transpose() * g, h.transpose() * h);
        let inv = |s: &DMatrix<f64>| s.clone().try_inverse().unwrap_or_else(|| s * f64::NAN);
        let (left, right) = match metric {
            Metric::Mix => (g.transpose() * xg * &sh, &sg * xh.transpose() * h),
            _ => (g.transpose() * xg * inv(&sg), inv(&sh) * xh.transpose() * h),
        };
        let scale = (left.norm() + right.norm()).max(f64::MIN_POSITIVE);
        worst = worst.max((left - right).norm() / scale);
    }
    worst
}

/// ‖P(P u) − P u‖ / ‖P u‖ (Euclidean norms).
pub fn idempotence<B: Backend, G: Geometry<B> + ?Sized>(geometry: &G, u: &[Tensor<B, 3>]) -> f64 {
    let once = geometry.horizontal(u);
    let twice = geometry.horizontal(&once);
    relative_difference(&twice, &once)
}

/// |⟨P u, V v⟩_w| / (‖P u‖_w ‖V v‖_w).
pub fn vertical_orthogonality<B: Backend, G: Geometry<B> + ?Sized>(
    geometry: &G,
    u: &[Tensor<B, 3>],
    v: &[Tensor<B, 3>],
) -> f64 {
    let hu = geometry.horizontal(u);
    let vv = geometry.vertical(v);
    let inner = scalar(geometry.inner(&hu, &vv));
    let scale = scalar(geometry.norm(&hu)) * scalar(geometry.norm(&vv));
    inner.abs() / scale.max(f64::MIN_POSITIVE)
}

/// |⟨grad_R g, v⟩_w − ⟨g, v⟩| / (|⟨g, v⟩| + ‖g‖‖v‖·ε-free scale).
pub fn representer_residual<B: Backend, G: Geometry<B> + ?Sized>(
    geometry: &G,
    egrad: &[Tensor<B, 3>],
    v: &[Tensor<B, 3>],
) -> f64 {
    let r = geometry.riemannian_gradient(egrad);
    let riemannian = scalar(geometry.inner(&r, v));
    let euclidean: f64 = egrad
        .iter()
        .zip(v)
        .map(|(g, v)| scalar((g.clone() * v.clone()).sum()))
        .sum();
    let scale = euclidean_norm(egrad) * euclidean_norm(v);
    (riemannian - euclidean).abs() / scale.max(f64::MIN_POSITIVE)
}

/// Integrates the geodesic ODE γ̈ = −Γ_γ(γ̇, γ̇) from (x0, v0) to time `t` with `steps` RK4
/// steps. `at` builds the geometry at a point (its Christoffel form is evaluated there).
/// Returns (γ(t), γ̇(t)).
pub fn integrate_geodesic<B: Backend, G: Geometry<B>>(
    at: impl Fn(Vec<Tensor<B, 3>>) -> G,
    x0: Vec<Tensor<B, 3>>,
    v0: Vec<Tensor<B, 3>>,
    t: f64,
    steps: usize,
) -> (Vec<Tensor<B, 3>>, Vec<Tensor<B, 3>>) {
    type State<B> = (Vec<Tensor<B, 3>>, Vec<Tensor<B, 3>>);
    let axpy = |x: &[Tensor<B, 3>], a: f64, y: &[Tensor<B, 3>]| -> Vec<Tensor<B, 3>> {
        x.iter()
            .zip(y)
            .map(|(x, y)| x.clone() + y.clone().mul_scalar(a))
            .collect()
    };
    let field = |(x, v): &State<B>| -> State<B> {
        let gamma = at(x.clone())
            .christoffel(v)
            .expect("integrate_geodesic needs a geometry with a Christoffel form");
        (v.clone(), gamma.into_iter().map(|g| -g).collect())
    };
    let h = t / steps as f64;
    let mut state: State<B> = (x0, v0);
    for _ in 0..steps {
        let k1 = field(&state);
        let s2 = (
            axpy(&state.0, h / 2.0, &k1.0),
            axpy(&state.1, h / 2.0, &k1.1),
        );
        let k2 = field(&s2);
        let s3 = (
            axpy(&state.0, h / 2.0, &k2.0),
            axpy(&state.1, h / 2.0, &k2.1),
        );
        let k3 = field(&s3);
        let s4 = (axpy(&state.0, h, &k3.0), axpy(&state.1, h, &k3.1));
        let k4 = field(&s4);
        let combine = |y: &[Tensor<B, 3>],
                       a: &[Tensor<B, 3>],
                       b: &[Tensor<B, 3>],
                       c: &[Tensor<B, 3>],
                       d: &[Tensor<B, 3>]| {
            let sum = axpy(&axpy(&axpy(a, 2.0, b), 2.0, c), 1.0, d);
            axpy(y, h / 6.0, &sum)
        };
        state = (
            combine(&state.0, &k1.0, &k2.0, &k3.0, &k4.0),
            combine(&state.1, &k1.1, &k2.1, &k3.1, &k4.1),
        );
    }
    state
}

/// Least-squares slope of log(errors) against log(ts): the observed order of an error.
pub fn loglog_slope(ts: &[f64], errors: &[f64]) -> f64 {
    let xs: Vec<f64> = ts.iter().map(|t| t.ln()).collect();
    let ys: Vec<f64> = errors.iter().map(|e| e.ln()).collect();
    let n = xs.len() as f64;
    let (mx, my) = (xs.iter().sum::<f64>() / n, ys.iter().sum::<f64>() / n);
    let cov: f64 = xs.iter().zip(&ys).map(|(x, y)| (x - mx) * (y - my)).sum();
    let var: f64 = xs.iter().map(|x| (x - mx).powi(2)).sum();
    cov / var
}
