//! Identities of every block geometry: horizontality, projection, representer, invariance
//! under the group, Taylor order of the geodesic steps against RK4, energy conservation.

mod common;

use burn::backend::NdArray;
use burn::prelude::{Backend, Tensor};
use burn::tensor::TensorCreationOptions;
use common::{B32, B64};
use geosharp::geometry::checks::{
    horizontal_residual, idempotence, integrate_geodesic, loglog_slope, relative_difference,
    representer_residual, vertical_orthogonality,
};
use geosharp::geometry::host::{horizontal_inv, horizontal_mix};
use geosharp::geometry::{
    AttentionGl, Elementwise, Error, GeodesicStep, Geometry, GeometryConfig, Metric, Product,
    Rescaling, StepPolicy, ZeroWeights,
};
use geosharp::host::{download_batch, scalar, upload_batch};
use geosharp::params::ParamTable;
use geosharp::symmetry::{BlockLayout, Symmetry};
use nalgebra::DMatrix;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, StandardNormal};

type F64 = NdArray<f64>;
type F32 = NdArray<f32>;

fn gaussian(rng: &mut StdRng, r: usize, c: usize) -> DMatrix<f64> {
    DMatrix::from_fn(r, c, |_, _| StandardNormal.sample(rng))
}

fn batch<B: Backend>(rng: &mut StdRng, heads: usize, r: usize, c: usize) -> Tensor<B, 3> {
    let mats: Vec<_> = (0..heads).map(|_| gaussian(rng, r, c)).collect();
    upload_batch(&mats, TensorCreationOptions::<B>::float())
}

/// A random GL(h) pair (3 heads, n = h + 5, m = h + 3) and a random tangent vector.
fn pair<B: Backend>(seed: u64, h: usize) -> (Vec<Tensor<B, 3>>, Vec<Tensor<B, 3>>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let (n, m) = (h + 5, h + 3);
    let base = vec![batch(&mut rng, 3, n, h), batch(&mut rng, 3, m, h)];
    let xi = vec![batch(&mut rng, 3, n, h), batch(&mut rng, 3, m, h)];
    (base, xi)
}

fn gl<B: Backend>(base: Vec<Tensor<B, 3>>, metric: Metric) -> AttentionGl<B> {
    AttentionGl::new("test", base, metric).unwrap()
}

#[test]
fn projected_vectors_are_horizontal_to_1e_10_in_f64() {
    for metric in [Metric::Inv, Metric::Mix] {
        for h in [1, 4, 32] {
            let (base, xi) = pair::<F64>(h as u64, h);
            let g = gl(base.clone(), metric);
            let r = horizontal_residual(&base, &g.horizontal(&xi), metric);
            assert!(r < 1e-10, "{metric} h={h}: residual {r:e}");
            // and an unprojected vector is not
            assert!(horizontal_residual(&base, &xi, metric) > 1e-2);
        }
    }
}

#[test]
fn projected_vectors_are_horizontal_to_1e_4_relative_in_f32() {
    for metric in [Metric::Inv, Metric::Mix] {
        for h in [1, 4, 32] {
            let (base, xi) = pair::<F32>(100 + h as u64, h);
            let g = gl(base.clone(), metric);
            let r = horizontal_residual(&base, &g.horizontal(&xi), metric);
            assert!(r < 1e-4, "{metric} h={h}: residual {r:e}");
        }
    }
}

#[test]
fn batched_device_projection_matches_the_per_head_host_reference() {
    let (base, xi) = pair::<F64>(7, 4);
    for metric in [Metric::Inv, Metric::Mix] {
        let device = gl(base.clone(), metric).horizontal(&xi);
        let (dg, dh) = (
            download_batch(device[0].clone()),
            download_batch(device[1].clone()),
        );
        let (gs, hs) = (
            download_batch(base[0].clone()),
            download_batch(base[1].clone()),
        );
        let (xg, xh) = (download_batch(xi[0].clone()), download_batch(xi[1].clone()));
        for i in 0..3 {
            let reference = match metric {
                Metric::Inv => horizontal_inv(&gs[i], &hs[i], &xg[i], &xh[i]),
                _ => horizontal_mix(&gs[i], &hs[i], &xg[i], &xh[i]),
            }
            .unwrap();
            assert!((&dg[i] - &reference.0).norm() < 1e-10 * reference.0.norm());
            assert!((&dh[i] - &reference.1).norm() < 1e-10 * reference.1.norm());
        }
    }
}

/// One geometry of every kind at a random base point, with two random tangent vectors.
/// A geometry with two tangent vectors at its base point.
type Case = (
    Box<dyn Geometry<F64>>,
    Vec<Tensor<F64, 3>>,
    Vec<Tensor<F64, 3>>,
);

fn every_geometry(seed: u64) -> Vec<Case> {
    let (base, u) = pair::<F64>(seed, 3);
    let (_, v) = pair::<F64>(seed + 1, 3);
    let mut rng = StdRng::seed_from_u64(seed + 2);
    let mut flat = || batch::<F64>(&mut rng, 1, 1, 6);
    let (w, wu, wv) = (vec![flat()], vec![flat()], vec![flat()]);
    let (r, ru, rv) = (
        vec![flat(), flat()],
        vec![flat(), flat()],
        vec![flat(), flat()],
    );
    let zeros = ZeroWeights::Error;
    vec![
        (
            Box::new(gl(base.clone(), Metric::Inv)) as Box<dyn Geometry<F64>>,
            u.clone(),
            v.clone(),
        ),
        (Box::new(gl(base, Metric::Mix)), u, v),
        (
            Box::new(Rescaling::new("r", r.clone(), Metric::Inv, zeros).unwrap()),
            ru.clone(),
            rv.clone(),
        ),
        (
            Box::new(Rescaling::new("r", r, Metric::Mix, zeros).unwrap()),
            ru,
            rv,
        ),
        (
            Box::new(Elementwise::adaptive("e", w.clone(), zeros).unwrap()),
            wu.clone(),
            wv.clone(),
        ),
        (Box::new(Elementwise::euclidean("e", w).unwrap()), wu, wv),
    ]
}

/// `check_step` (what `Product::new` asks before a measurement) says a step is available
/// exactly when computing it and its VJP succeeds; only the GL(h) blocks lack one (exact).
#[test]
fn every_block_s_step_check_agrees_with_computing_the_step() {
    let mut refused = Vec::new();
    for (g, u, _) in every_geometry(13) {
        for method in [
            GeodesicStep::FirstOrder,
            GeodesicStep::SecondOrder,
            GeodesicStep::Exact,
        ] {
            let computed = g.step(&u, method).is_ok() && g.step_vjp(&u, method, &u).is_ok();
            let checked = g.check_step(method);
            assert_eq!(checked.is_ok(), computed, "{} {method:?}", g.name());
            if let Err(e) = checked {
                assert!(e.to_string().contains("provides no 'exp'"), "{e}");
                refused.push((g.name(), method));
            }
        }
    }
    assert_eq!(
        refused,
        [
            ("attention-gl/inv", GeodesicStep::Exact),
            ("attention-gl/mix", GeodesicStep::Exact)
        ]
    );
}

#[test]
fn horizontal_projection_is_idempotent_and_metric_orthogonal_to_the_vertical_space() {
    for (g, u, v) in every_geometry(11) {
        assert!(idempotence(g.as_ref(), &u) < 1e-12, "{}", g.name());
        assert!(
            vertical_orthogonality(g.as_ref(), &u, &v) < 1e-12,
            "{}",
            g.name()
        );
    }
}

#[test]
fn riemannian_gradient_represents_the_euclidean_gradient_in_the_metric() {
    for (g, u, v) in every_geometry(12) {
        assert!(
            representer_residual(g.as_ref(), &u, &v) < 1e-12,
            "{}",
            g.name()
        );
    }
}

#[test]
fn whitened_noise_has_unit_covariance_in_the_metric() {
    // E‖whiten(z)‖²_w = dimension for z ~ N(0, I): check the exact identity ⟨whiten(z), whiten(z)⟩_w
    // = ‖z‖² on the GL blocks, where whiten is an isometry from R^n with the Euclidean metric.
    for (g, z, _) in every_geometry(13).into_iter().take(2) {
        let w = g.whiten(&z);
        let lhs = scalar(g.inner(&w, &w));
        let rhs: f64 = z.iter().map(|p| scalar(p.clone().square().sum())).sum();
        assert!(
            (lhs - rhs).abs() < 1e-10 * rhs,
            "{}: {lhs} vs {rhs}",
            g.name()
        );
    }
}

/// A ∈ GL(h) with singular values spread log-uniformly over [1, cond].
fn conditioned(rng: &mut StdRng, h: usize, cond: f64) -> DMatrix<f64> {
    let u = gaussian(rng, h, h).qr().q();
    let v = gaussian(rng, h, h).qr().q();
    let s = DMatrix::from_diagonal(&nalgebra::DVector::from_fn(h, |i, _| {
        cond.powf(if h > 1 {
            i as f64 / (h - 1) as f64
        } else {
            0.0
        })
    }));
    u * s * v.transpose()
}

#[test]
fn norms_projections_and_christoffel_forms_are_invariant_under_gl_with_condition_1e3() {
    let h = 4;
    let (base, xi) = pair::<F64>(21, h);
    let mut rng = StdRng::seed_from_u64(22);
    let a: Vec<_> = (0..3).map(|_| conditioned(&mut rng, h, 1e3)).collect();
    let a_inv: Vec<_> = a.iter().map(|a| a.clone().try_inverse().unwrap()).collect();
    let a_t: Vec<_> = a.iter().map(|a| a.transpose()).collect();
    let (a_inv, a_t) = (
        upload_batch::<F64>(&a_inv, TensorCreationOptions::float()),
        upload_batch::<F64>(&a_t, TensorCreationOptions::float()),
    );
    let act = |p: &[Tensor<F64, 3>]| {
        vec![
            p[0].clone().matmul(a_inv.clone()),
            p[1].clone().matmul(a_t.clone()),
        ]
    };
    let (moved, xi_moved) = (act(&base), act(&xi));
    for metric in [Metric::Inv, Metric::Mix] {
        let (g, g_moved) = (gl(base.clone(), metric), gl(moved.clone(), metric));
        let (n0, n1) = (scalar(g.norm(&xi)), scalar(g_moved.norm(&xi_moved)));
        assert!((n0 - n1).abs() < 1e-8 * n0, "{metric}: norm {n0} vs {n1}");
        let p = relative_difference(&g_moved.horizontal(&xi_moved), &act(&g.horizontal(&xi)));
        assert!(p < 1e-7, "{metric}: projection differs by {p:e}");
        let c = relative_difference(
            &g_moved.christoffel(&xi_moved).unwrap(),
            &act(&g.christoffel(&xi).unwrap()),
        );
        assert!(c < 1e-7, "{metric}: Christoffel form differs by {c:e}");
    }
    // The adaptive metric is not invariant: the same vectors change norm by a large factor.
    let ad = |p: Vec<Tensor<F64, 3>>| Elementwise::adaptive("a", p, ZeroWeights::Error).unwrap();
    let (n0, n1) = (
        scalar(ad(base).norm(&xi)),
        scalar(ad(moved).norm(&xi_moved)),
    );
    assert!(
        (n1 / n0 - 1.0).abs() > 0.1,
        "adaptive norm ratio {}",
        n1 / n0
    );
}

/// Errors ‖v(tξ) − γ(t)‖ of a step against RK4, for t = 0.02, 0.01, 0.005; returns the slope.
fn taylor_slope<G: Geometry<F64>>(
    at: impl Fn(Vec<Tensor<F64, 3>>) -> G,
    base: Vec<Tensor<F64, 3>>,
    xi: Vec<Tensor<F64, 3>>,
    step: GeodesicStep,
) -> f64 {
    let ts = [0.02, 0.01, 0.005];
    let geometry = at(base.clone());
    let errors: Vec<f64> = ts
        .iter()
        .map(|&t| {
            let txi: Vec<_> = xi.iter().map(|x| x.clone().mul_scalar(t)).collect();
            let (exact, _) = integrate_geodesic(&at, base.clone(), xi.clone(), t, 64);
            let stepped = geometry.step(&txi, step).unwrap();
            let diff: Vec<_> = stepped
                .iter()
                .zip(&exact)
                .map(|(a, b)| a.clone() - b.clone())
                .collect();
            geosharp::geometry::checks::euclidean_norm(&diff)
        })
        .collect();
    loglog_slope(&ts, &errors)
}

#[test]
fn second_order_step_error_shrinks_like_t_cubed_and_first_order_like_t_squared() {
    let (base, xi) = pair::<F64>(31, 3);
    let mut rng = StdRng::seed_from_u64(32);
    let w = vec![batch::<F64>(&mut rng, 1, 1, 8).abs().add_scalar(0.5)];
    let dw = vec![batch::<F64>(&mut rng, 1, 1, 8)];
    let r = vec![
        w[0].clone(),
        batch::<F64>(&mut rng, 1, 1, 8).abs().add_scalar(0.5),
    ];
    let dr = vec![dw[0].clone(), batch::<F64>(&mut rng, 1, 1, 8)];
    for (order, lo, hi) in [
        (GeodesicStep::SecondOrder, 2.8, 3.3),
        (GeodesicStep::FirstOrder, 1.85, 2.2),
    ] {
        for metric in [Metric::Inv, Metric::Mix] {
            let s = taylor_slope(|p| gl(p, metric), base.clone(), xi.clone(), order);
            assert!(s > lo && s < hi, "GL {metric} {order:?}: slope {s}");
            let s = taylor_slope(
                |p| Rescaling::new("r", p, metric, ZeroWeights::Error).unwrap(),
                r.clone(),
                dr.clone(),
                order,
            );
            assert!(s > lo && s < hi, "rescaling {metric} {order:?}: slope {s}");
        }
        let s = taylor_slope(
            |p| Elementwise::adaptive("a", p, ZeroWeights::Error).unwrap(),
            w.clone(),
            dw.clone(),
            order,
        );
        assert!(s > lo && s < hi, "adaptive {order:?}: slope {s}");
    }
}

#[test]
fn geodesics_conserve_their_metric_speed() {
    // Γ is the Levi-Civita connection of the metric only if ⟨γ̇, γ̇⟩_γ(t) is constant.
    let (base, xi) = pair::<F64>(41, 3);
    for metric in [Metric::Inv, Metric::Mix] {
        let at = |p| gl(p, metric);
        let e0 = scalar(at(base.clone()).inner(&xi, &xi));
        let (x1, v1) = integrate_geodesic(at, base.clone(), xi.clone(), 0.3, 300);
        let e1 = scalar(at(x1).inner(&v1, &v1));
        assert!((e1 - e0).abs() < 1e-8 * e0, "{metric}: speed² {e0} → {e1}");
    }
}

#[test]
fn exact_rescaling_steps_are_the_integrated_geodesics() {
    let mut rng = StdRng::seed_from_u64(51);
    let u = batch::<F64>(&mut rng, 1, 1, 5).abs().add_scalar(0.5);
    let v = batch::<F64>(&mut rng, 1, 1, 5).add_scalar(0.1);
    for metric in [Metric::Inv, Metric::Mix] {
        let at = |p| Rescaling::new("r", p, metric, ZeroWeights::Error).unwrap();
        let g = at(vec![u.clone(), v.clone()]);
        let noise = vec![
            batch::<F64>(&mut rng, 1, 1, 5),
            batch::<F64>(&mut rng, 1, 1, 5),
        ];
        let xi: Vec<_> = g
            .horizontal(&noise)
            .into_iter()
            .map(|x| x.mul_scalar(0.1))
            .collect();
        let exact = g.exp(&xi).unwrap();
        let (integrated, _) = integrate_geodesic(at, g.base().to_vec(), xi, 1.0, 400);
        let d = relative_difference(&exact, &integrated);
        assert!(d < 1e-9, "{metric}: exp differs from the ODE by {d:e}");
    }
}

#[test]
fn asam_offset_geometry_has_exact_geodesics_and_reduces_to_adaptive_at_zero() {
    // T = |w| + η: the adaptive metric at s = w + η·sgn(w); weights of both signs.
    let mut rng = StdRng::seed_from_u64(61);
    let w = batch::<F64>(&mut rng, 1, 1, 6);
    let w = w.clone().sign() * w.abs().add_scalar(0.2);
    let xi = vec![batch::<F64>(&mut rng, 1, 1, 6).mul_scalar(0.1)];
    let at = |p: Vec<Tensor<F64, 3>>| {
        Elementwise::adaptive_offset("a", p, 0.3, ZeroWeights::Error).unwrap()
    };
    let g = at(vec![w.clone()]);
    let exact = g.exp(&xi).unwrap();
    let (integrated, _) = integrate_geodesic(at, vec![w.clone()], xi.clone(), 1.0, 400);
    let d = relative_difference(&exact, &integrated);
    assert!(d < 1e-9, "exp differs from the ODE by {d:e}");
    // η = 0 is the adaptive geometry, bit for bit.
    let zero = Elementwise::adaptive_offset("a", vec![w.clone()], 0.0, ZeroWeights::Error).unwrap();
    let plain = Elementwise::adaptive("a", vec![w], ZeroWeights::Error).unwrap();
    assert_eq!(scalar(zero.norm(&xi)), scalar(plain.norm(&xi)));
    let (a, b) = (zero.exp(&xi).unwrap(), plain.exp(&xi).unwrap());
    assert_eq!(relative_difference(&a, &b), 0.0);
    // and a negative offset is refused
    let e = Elementwise::adaptive_offset("a", xi, -0.1, ZeroWeights::Error).unwrap_err();
    assert!(e.to_string().contains("offset"), "{e}");
}

#[test]
fn an_exact_step_on_a_gl_block_is_refused_with_the_block_named() {
    let model_layout = {
        use geosharp::params::ParamEntry;
        let entries = ["q.weight", "k.weight"]
            .iter()
            .map(|p| ParamEntry {
                id: burn::module::ParamId::new(),
                path: p.to_string(),
                shape: vec![4, 4],
            })
            .collect();
        let table = ParamTable::from_entries(entries);
        let sym = Symmetry::GlPair {
            name: "qk".into(),
            g: geosharp::symmetry::Factor::new("q.weight", geosharp::symmetry::HeadAxis::Columns),
            h: geosharp::symmetry::Factor::new("k.weight", geosharp::symmetry::HeadAxis::Columns),
            heads: 2,
        };
        BlockLayout::new(&table, &[sym]).unwrap()
    };
    let mut rng = StdRng::seed_from_u64(61);
    let base = vec![
        batch::<B32>(&mut rng, 2, 4, 2),
        batch::<B32>(&mut rng, 2, 4, 2),
    ];
    let config = GeometryConfig::new(Metric::Inv).with_steps(StepPolicy::all(GeodesicStep::Exact));
    let err = Product::new(&model_layout, base, &config).unwrap_err();
    let Error::InBlock { block, source, .. } = &err else {
        panic!("expected an error naming the block, got {err}");
    };
    assert_eq!(block, "qk");
    assert!(source.to_string().contains("provides no 'exp'"), "{source}");
}

#[test]
fn geometry_builds_on_the_f64_autodiff_backend_too() {
    let (base, xi) = pair::<B64>(71, 2);
    let g = gl(base.clone(), Metric::Inv);
    assert!(horizontal_residual(&base, &g.horizontal(&xi), Metric::Inv) < 1e-10);
}

#[test]
fn the_exact_mix_step_has_a_finite_gradient_where_beta_crosses_zero() {
    use burn::backend::Autodiff;
    type A = Autodiff<F32>;
    let mut rng = StdRng::seed_from_u64(81);
    let u = batch::<A>(&mut rng, 1, 1, 4).abs().add_scalar(0.5);
    let v = batch::<A>(&mut rng, 1, 1, 4).abs().add_scalar(0.5);
    let g = Rescaling::new(
        "r",
        vec![u.clone(), v.clone()],
        Metric::Mix,
        ZeroWeights::Error,
    )
    .unwrap();
    // ξ = (b u, b v) with b = −½ in every coordinate: s = 1 + 2b = 0 exactly.
    let xi = vec![
        u.clone().mul_scalar(-0.5).detach().require_grad(),
        v.mul_scalar(-0.5).detach().require_grad(),
    ];
    let point = g.exp(&xi).unwrap();
    let loss = (point[0].clone() * point[1].clone()).sum();
    let grads = loss.backward();
    for x in &xi {
        let grad = geosharp::host::to_f64_vec(x.grad(&grads).unwrap());
        assert!(grad.iter().all(|a| a.is_finite()), "{grad:?}");
    }
    let beta = geosharp::host::to_f64_vec(point[0].clone() * point[1].clone());
    assert!(
        beta.iter().all(|b| b.abs() < 1e-6),
        "β = β₀·s must vanish: {beta:?}"
    );
}

#[test]
fn every_step_vjp_matches_a_central_difference_of_the_step() {
    // ⟨c, (v(ξ + εδ) − v(ξ − εδ)) / 2ε⟩ = ⟨J_v(ξ)ᵀ c, δ⟩ for random ξ, δ, c.
    let sum_dot = |a: &[Tensor<F64, 3>], b: &[Tensor<F64, 3>]| -> f64 {
        a.iter()
            .zip(b)
            .map(|(a, b)| scalar((a.clone() * b.clone()).sum()))
            .sum()
    };
    let mut checked = 0;
    for (g, u, v) in every_geometry(91) {
        let xi: Vec<_> = u.iter().map(|p| p.clone().mul_scalar(0.05)).collect();
        let delta = v.clone();
        let c: Vec<_> = v
            .iter()
            .zip(&u)
            .map(|(a, b)| a.clone() - b.clone().mul_scalar(0.3))
            .collect();
        for step in [
            GeodesicStep::FirstOrder,
            GeodesicStep::SecondOrder,
            GeodesicStep::Exact,
        ] {
            let Ok(vjp) = g.step_vjp(&xi, step, &c) else {
                assert!(g.exp(&xi).is_err(), "{}: exp without exp_vjp", g.name());
                continue;
            };
            let eps = 1e-6;
            let shifted = |s: f64| -> Vec<Tensor<F64, 3>> {
                let x: Vec<_> = xi
                    .iter()
                    .zip(&delta)
                    .map(|(x, d)| x.clone() + d.clone().mul_scalar(s))
                    .collect();
                g.step(&x, step).unwrap()
            };
            let (plus, minus) = (shifted(eps), shifted(-eps));
            let diff: Vec<_> = plus
                .iter()
                .zip(&minus)
                .map(|(p, m)| (p.clone() - m.clone()).div_scalar(2.0 * eps))
                .collect();
            let (fd, analytic) = (sum_dot(&c, &diff), sum_dot(&vjp, &delta));
            assert!(
                (fd - analytic).abs() < 1e-6 * fd.abs().max(1.0),
                "{} {step:?}: finite difference {fd} vs vjp {analytic}",
                g.name()
            );
            checked += 1;
        }
    }
    // 6 geometries × first and second order, plus exact for the four that have it.
    assert_eq!(checked, 16);
}

/// The metric's inner product of f32 parts sums chunks of up to 256 products in f32 and the
/// chunks in f64: on sizes whose largest power-of-two factor is 2⁰, 2¹, 2², 2⁸ or 2²⁰ (chunks
/// of 2, 4 and the full 256 entries, and the plain f64 path below 512 entries), it agrees with the exact f64 sum
/// of the f32 products within 2⁻²⁰·Σ|terms| (about 16 ε_f32), and for positive terms — a
/// squared norm — within 10⁻⁶ relative.
#[test]
fn f32_inner_products_agree_with_the_f64_sum_of_their_products() {
    let mut rng = StdRng::seed_from_u64(17);
    let device = Default::default();
    for n in [
        1,
        300,
        511,
        2 * 100_003,
        12 * 9_999,
        256 * 3_001,
        4096 * 255 + 4096,
    ] {
        let draw = |rng: &mut StdRng| -> Vec<f32> {
            (0..n)
                .map(|_| StandardNormal.sample(rng))
                .map(|x: f64| x as f32)
                .collect()
        };
        let (a, b) = (draw(&mut rng), draw(&mut rng));
        let part = |v: &[f32]| Tensor::<F32, 1>::from_floats(v, &device).reshape([1, 1, n]);
        let geometry = Elementwise::euclidean("dot", vec![part(&a)]).unwrap();
        let products: Vec<f64> = a.iter().zip(&b).map(|(x, y)| f64::from(x * y)).collect();
        let exact: f64 = products.iter().sum();
        let size: f64 = products.iter().map(|p| p.abs()).sum();
        let got = scalar(geometry.inner(&[part(&a)], &[part(&b)]));
        assert!(
            (got - exact).abs() <= size * 2f64.powi(-20),
            "n = {n}: {got} against {exact} (Σ|terms| = {size})"
        );
        let squares: f64 = a.iter().map(|x| f64::from(x * x)).sum();
        let got = scalar(geometry.inner(&[part(&a)], &[part(&a)]));
        assert!(
            (got - squares).abs() <= 1e-6 * squares,
            "n = {n}: ‖a‖² {got} against {squares}"
        );
    }
}
