//! geometry::fused: its one-pass tangent arithmetic must be Burn's own arithmetic (bit for bit
//! where the module says so), its weighted dot product the f64 sum of the same f32 terms,
//! independent of the number of threads; it must take the host path exactly where it can and
//! fall back to the same values elsewhere; and Auto-PGD's update written with it must be the
//! textbook update.

mod common;

use burn::backend::{Autodiff, NdArray};
use burn::module::ParamId;
use burn::prelude::{Backend, Tensor, TensorData};
use burn::tensor::DType;
use common::entries;
use geosharp::geometry::fused::{
    CHUNK, combination, count_on_host, gram_pairs, on_host, weighted_dot, weighted_gram,
};
use geosharp::geometry::{AttentionGl, Geometry, GeometryConfig, Metric, Probes, Product, Tangent};
use geosharp::host::{scalar, to_f64_vec};
use geosharp::measures::{next_iterate, project_to_ball};
use geosharp::params::{ParamEntry, ParamTable};
use geosharp::symmetry::{BlockLayout, Factor, HeadAxis, Symmetry};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, StandardNormal};

type F32 = NdArray<f32>;
type F64 = NdArray<f64>;

fn tensor<B: Backend>(values: Vec<f32>, shape: [usize; 3]) -> Tensor<B, 3> {
    Tensor::from_data(
        TensorData::new(values, shape),
        (&Default::default(), DType::F32),
    )
}

fn bits<B: Backend>(t: Tensor<B, 3>) -> Vec<u32> {
    t.into_data()
        .into_vec::<f32>()
        .expect("f32")
        .iter()
        .map(|x| x.to_bits())
        .collect()
}

/// A small shape (one task) and one over several chunks that is not a multiple of a chunk.
const SHAPES: [[usize; 3]; 2] = [[2, 3, 7], [3, CHUNK / 64 + 1, 65]];

#[test]
fn combinations_are_burn_s_arithmetic_bit_for_bit() {
    for shape in SHAPES {
        let n = shape.iter().product();
        let [x, y, z] = [1, 2, 3].map(|s| tensor::<F32>(entries(n, s), shape));
        assert!(on_host(&x), "an f32 ndarray tensor takes the host path");
        let cases: [(Tensor<F32, 3>, Tensor<F32, 3>); 5] = [
            (combination(&[(0.3, &x)]), x.clone().mul_scalar(0.3)),
            (
                combination(&[(1.0, &x), (0.7, &y)]),
                x.clone() + y.clone().mul_scalar(0.7),
            ),
            (combination(&[(1.0, &x), (-1.0, &y)]), x.clone() - y.clone()),
            (combination(&[(1.0, &x), (1.0, &y)]), x.clone() + y.clone()),
            (
                combination(&[(0.45, &x), (0.5, &y), (-0.25, &z)]),
                x.clone().mul_scalar(0.45)
                    + y.clone().mul_scalar(0.5)
                    + z.clone().mul_scalar(-0.25),
            ),
        ];
        for (i, (fused, ops)) in cases.into_iter().enumerate() {
            assert_eq!(bits(fused), bits(ops), "case {i}, shape {shape:?}");
        }
    }
}

#[test]
fn the_host_path_is_taken_only_for_f32_buffers_in_standard_layout() {
    let shape = [3, 40, 30];
    let n = shape.iter().product();
    let x = tensor::<F32>(entries(n, 1), shape);
    let y = tensor::<F32>(entries(n, 2), shape);
    // A transposed view is strided: its buffer is not in row-major order.
    let (xt, yt) = (x.clone().swap_dims(1, 2), y.clone().swap_dims(1, 2));
    assert!(!on_host(&xt));
    let x64 = Tensor::<F64, 3>::from_data(x.to_data(), (&Default::default(), DType::F64));
    assert!(!on_host(&x64), "f64 falls back");
    let xad = tensor::<Autodiff<F32>>(entries(n, 1), shape);
    assert!(!on_host(&xad), "the autodiff backend falls back");
    // The fallbacks give the same values as the host path.
    let strided = combination(&[(0.45, &xt), (0.5, &yt)]);
    let direct = combination(&[(0.45, &x), (0.5, &y)]).swap_dims(1, 2);
    assert_eq!(bits(strided), bits(direct));
    let yad = tensor::<Autodiff<F32>>(entries(n, 2), shape);
    let ad = combination(&[(0.45, &xad), (0.5, &yad)]);
    assert_eq!(bits(ad), bits(combination(&[(0.45, &x), (0.5, &y)])));
    let (d_strided, d_direct) = (
        scalar(weighted_dot(&xt, &yt, None)),
        scalar(weighted_dot(&x, &y, None)),
    );
    assert!(
        ((d_strided - d_direct) / d_direct).abs() < 1e-6,
        "{d_strided} against {d_direct}"
    );
}

/// Σ f32(f32(u·w)·v) in f64, one term after another.
fn reference(u: &[f32], v: &[f32], w: Option<&[f32]>) -> f64 {
    (0..u.len())
        .map(|i| f64::from(w.map_or(u[i] * v[i], |w| (u[i] * w[i]) * v[i])))
        .sum()
}

#[test]
fn weighted_dots_are_the_f64_sum_of_the_f32_terms_on_any_number_of_threads() {
    for shape in SHAPES {
        let n = shape.iter().product();
        let (u, v, w) = (entries(n, 4), entries(n, 5), entries(n, 6));
        let [tu, tv, tw] = [&u, &v, &w].map(|x| tensor::<F32>(x.clone(), shape));
        for weighted in [false, true] {
            let tw = weighted.then_some(&tw);
            let exact = reference(&u, &v, weighted.then_some(w.as_slice()));
            let on = |threads| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .expect("pool")
                    .install(|| scalar(weighted_dot(&tu, &tv, tw)))
            };
            let (one, three) = (on(1), on(3));
            assert_eq!(
                one.to_bits(),
                three.to_bits(),
                "{shape:?} weighted {weighted}"
            );
            let magnitude: f64 = reference(
                &u.iter().map(|x| x.abs()).collect::<Vec<_>>(),
                &v.iter().map(|x| x.abs()).collect::<Vec<_>>(),
                weighted.then_some(&w.iter().map(|x| x.abs()).collect::<Vec<_>>()[..]),
            );
            assert!(
                (one - exact).abs() <= 1e-13 * magnitude,
                "{shape:?} weighted {weighted}: {one} against {exact}"
            );
        }
    }
}

#[test]
fn gram_entries_are_the_weighted_dots_bit_for_bit_on_any_number_of_threads() {
    for shape in SHAPES {
        let n = shape.iter().product();
        let xs: Vec<Tensor<F32, 3>> = (4..7).map(|s| tensor(entries(n, s), shape)).collect();
        let w = tensor::<F32>(entries(n, 7), shape);
        for weighted in [false, true] {
            let w = weighted.then_some(&w);
            for k in 1..=3 {
                let refs: Vec<&Tensor<F32, 3>> = xs[..k].iter().collect();
                let on = |threads| {
                    rayon::ThreadPoolBuilder::new()
                        .num_threads(threads)
                        .build()
                        .expect("pool")
                        .install(|| to_f64_vec(weighted_gram(&refs, w)))
                };
                let (one, three) = (on(1), on(3));
                assert_eq!(one.len(), k * (k + 1) / 2);
                for (e, (a, b)) in gram_pairs(k).into_iter().enumerate() {
                    let dot = scalar(weighted_dot(&xs[a], &xs[b], w));
                    assert_eq!(
                        (one[e].to_bits(), three[e].to_bits()),
                        (dot.to_bits(), dot.to_bits()),
                        "{shape:?} weighted {weighted}, k = {k}, entry ({a}, {b}): {} / {} against {dot}",
                        one[e],
                        three[e]
                    );
                }
            }
            // Strided views fall back to Burn's operations: the same values up to the order
            // of the sums.
            let t: Vec<Tensor<F32, 3>> = xs.iter().map(|x| x.clone().swap_dims(1, 2)).collect();
            let wt = w.map(|w| w.clone().swap_dims(1, 2));
            let strided = to_f64_vec(weighted_gram(&[&t[0], &t[1], &t[2]], wt.as_ref()));
            let direct = to_f64_vec(weighted_gram(&[&xs[0], &xs[1], &xs[2]], w));
            for (s, d) in strided.iter().zip(&direct) {
                assert!(
                    (s - d).abs() <= 1e-6 * d.abs().max(1.0),
                    "{shape:?} weighted {weighted}: strided {s} against {d}"
                );
            }
        }
    }
}

/// One GL(h) pair (2 heads of 4) and an elementwise block larger than a chunk: the layout of
/// a model with both kinds, and its geometry at a random base point.
fn geometry(metric: Metric) -> (Product<F32>, Tangent<F32>) {
    let entries_of = [
        ("q.weight", vec![6, 8]),
        ("k.weight", vec![6, 8]),
        ("e.weight", vec![2 * CHUNK + 17]),
    ];
    let table = ParamTable::from_entries(
        entries_of
            .iter()
            .map(|(path, shape)| ParamEntry {
                id: ParamId::new(),
                path: path.to_string(),
                shape: shape.clone(),
            })
            .collect(),
    );
    let pair = Symmetry::GlPair {
        name: "qk".into(),
        g: Factor::new("q.weight", HeadAxis::Columns),
        h: Factor::new("k.weight", HeadAxis::Columns),
        heads: 2,
    };
    let layout = BlockLayout::new(&table, &[pair]).expect("layout");
    // Gaussian weights: the heads' factors have full rank.
    let mut rng = StdRng::seed_from_u64(7);
    let values: Vec<Tensor<F32, 1>> = table
        .entries()
        .iter()
        .map(|e| {
            let n: usize = e.shape.iter().product();
            let w: Vec<f32> = (0..n).map(|_| StandardNormal.sample(&mut rng)).collect();
            Tensor::from_data(TensorData::new(w, [n]), (&Default::default(), DType::F32))
        })
        .collect();
    let base = layout.gather(&values);
    let zero = Tangent::zeros_like(&base);
    let product = Product::new(&layout, base, &GeometryConfig::new(metric)).expect("geometry");
    (product, zero)
}

/// max |aᵢ − bᵢ|.
fn worst_difference(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

/// max |aᵢ|.
fn max_abs(a: &[f64]) -> f64 {
    a.iter().map(|x| x.abs()).fold(0.0, f64::max)
}

/// The same parts in f64, for comparisons.
fn flat(t: &Tangent<F32>) -> Vec<f64> {
    t.parts.iter().flat_map(|p| to_f64_vec(p.clone())).collect()
}

#[test]
fn the_update_is_the_textbook_auto_pgd_step() {
    let (rho, eta, alpha) = (0.3, 0.2, 0.75);
    for metric in [Metric::Adaptive, Metric::Inv, Metric::Mix] {
        let (g, zero) = geometry(metric);
        let point = |seed, radius: f64| {
            let z = Probes::new(seed).gaussian(&zero);
            let h = g.horizontal(&g.whiten(&z));
            let norm = scalar(g.norm(&h));
            h.map(|p| p.mul_scalar(radius / norm))
        };
        // ξ_k inside the ball, ξ_{k−1} on the sphere, ĝ of unit norm: y = ξ + ηĝ leaves the
        // ball for this ρ, so the rescaling is exercised.
        let (xi, xi_prev, dir) = (point(1, 0.9 * rho), point(2, rho), point(3, 1.0));
        // The textbook form, one Burn operation at a time.
        let ops = |f: &dyn Fn(Tensor<F32, 3>, Tensor<F32, 3>) -> Tensor<F32, 3>,
                   a: &Tangent<F32>,
                   b: &Tangent<F32>| {
            Tangent::new(
                a.parts
                    .iter()
                    .zip(&b.parts)
                    .map(|(a, b)| f(a.clone(), b.clone()))
                    .collect(),
            )
        };
        let y = ops(&|a, b| a + b.mul_scalar(eta), &xi, &dir);
        let s1 = (rho / scalar(g.norm(&y))).min(1.0);
        assert!(s1 < 0.99, "the first point must be rescaled, s1 = {s1}");
        let z = y.map(|p| p.mul_scalar(s1));
        let step = ops(&|z, x| (z - x).mul_scalar(alpha), &z, &xi);
        let momentum = ops(&|x, s| x + s, &xi, &step);
        let back = ops(&|x, p| (x - p).mul_scalar(1.0 - alpha), &xi, &xi_prev);
        let expected = project_to_ball(&g, &ops(&|m, b| m + b, &momentum, &back), rho);
        for (got, want, what) in [
            (
                next_iterate(&g, &xi, Some(&xi_prev), &dir, eta, alpha, rho),
                expected,
                "momentum step",
            ),
            (
                next_iterate(&g, &xi, None, &dir, eta, alpha, rho),
                z,
                "first step",
            ),
        ] {
            let (got, want) = (flat(&got), flat(&want));
            let (worst, scale) = (worst_difference(&got, &want), max_abs(&want));
            assert!(
                worst <= 1e-5 * scale,
                "{metric} {what}: worst difference {worst:e} of {scale:e}"
            );
        }
    }
}

#[test]
fn a_product_s_gram_entries_are_its_inner_products() {
    for metric in [Metric::Adaptive, Metric::Inv, Metric::Mix] {
        let (g, zero) = geometry(metric);
        let u: Vec<Tangent<F32>> = (11..14)
            .map(|seed| g.whiten(&Probes::new(seed).gaussian(&zero)))
            .collect();
        for k in 1..=3 {
            let refs: Vec<&Tangent<F32>> = u[..k].iter().collect();
            let gram = to_f64_vec(g.gram(&refs));
            for (e, (a, b)) in gram_pairs(k).into_iter().enumerate() {
                let inner = scalar(g.inner(&u[a], &u[b]));
                // Adaptive: elementwise blocks only, the same sums. Inv, mix: the GL(h)
                // block sums Σ (uₐS⁻¹) ⊙ u_b where `inner` sums Σ S⁻¹ ⊙ (uₐᵀu_b), in f64.
                let (got, scale) = (gram[e], (gram[e].abs()).max(inner.abs()));
                if metric == Metric::Adaptive {
                    assert_eq!(got.to_bits(), inner.to_bits(), "k = {k}, ({a}, {b})");
                } else {
                    assert!(
                        (got - inner).abs() <= 1e-12 * scale,
                        "{metric}, k = {k}, entry ({a}, {b}): {got} against {inner}"
                    );
                }
            }
            // The GL(h) block's own entries against the ones from `inner`, so that the
            // elementwise block's larger terms cannot hide an error in them.
            for b in 0..g.len() {
                let block = g.block(b);
                let parts: Vec<Vec<Tensor<F32, 3>>> = u[..k]
                    .iter()
                    .map(|v| g.block_parts(b, v).to_vec())
                    .collect();
                let refs: Vec<&[Tensor<F32, 3>]> = parts.iter().map(Vec::as_slice).collect();
                let gram = to_f64_vec(block.gram(&refs));
                for (e, (x, y)) in gram_pairs(k).into_iter().enumerate() {
                    let inner = scalar(block.inner(refs[x], refs[y]));
                    assert!(
                        (gram[e] - inner).abs() <= 1e-12 * inner.abs().max(1e-300),
                        "{metric}, block {b}, k = {k}, entry ({x}, {y}): {} against {inner}",
                        gram[e]
                    );
                }
            }
        }
    }
}

/// Off the host's f32 and f64 buffers (here the autodiff backend, as on CUDA) a GL(h) block's
/// Gram matrix takes Burn's operations: the same entries as on the host and as `inner`.
#[test]
fn a_gl_block_s_gram_matrix_off_the_host_is_the_same() {
    type Ad = Autodiff<F32>;
    let shape = [2, 9, 3];
    let n: usize = shape.iter().product();
    let part = |seed| tensor::<F32>(entries(n, seed), shape);
    let on_ad = |x: &Tensor<F32, 3>| {
        tensor::<Ad>(
            to_f64_vec(x.clone()).iter().map(|v| *v as f32).collect(),
            shape,
        )
    };
    for metric in [Metric::Inv, Metric::Mix] {
        let base = [part(21), part(22)];
        let host = AttentionGl::new("qk", base.to_vec(), metric).expect("full rank");
        let ad =
            AttentionGl::new("qk", base.iter().map(on_ad).collect(), metric).expect("full rank");
        let u: Vec<[Tensor<F32, 3>; 2]> = (0..3).map(|i| [part(30 + i), part(40 + i)]).collect();
        let u_ad: Vec<Vec<Tensor<Ad, 3>>> =
            u.iter().map(|v| v.iter().map(on_ad).collect()).collect();
        let refs: Vec<&[Tensor<F32, 3>]> = u.iter().map(|v| v.as_slice()).collect();
        let refs_ad: Vec<&[Tensor<Ad, 3>]> = u_ad.iter().map(Vec::as_slice).collect();
        let (on_host, off_host) = (to_f64_vec(host.gram(&refs)), to_f64_vec(ad.gram(&refs_ad)));
        for (e, (a, b)) in gram_pairs(3).into_iter().enumerate() {
            let inner = scalar(ad.inner(refs_ad[a], refs_ad[b]));
            for got in [on_host[e], off_host[e]] {
                assert!(
                    (got - inner).abs() <= 1e-12 * inner.abs(),
                    "{metric} ({a}, {b}): {got} against {inner}"
                );
            }
        }
    }
}

#[test]
fn the_update_takes_any_length_of_direction_and_stays_in_the_ball() {
    let (rho, eta, alpha) = (0.3, 0.2, 0.75);
    for metric in [Metric::Adaptive, Metric::Inv, Metric::Mix] {
        let (g, zero) = geometry(metric);
        let point = |seed, radius: f64| {
            let h = g.horizontal(&g.whiten(&Probes::new(seed).gaussian(&zero)));
            let norm = scalar(g.norm(&h));
            h.scale(radius / norm)
        };
        let (xi, xi_prev, dir) = (point(1, 0.9 * rho), point(2, rho), point(3, 1.0));
        let unit = next_iterate(&g, &xi, Some(&xi_prev), &dir, eta, alpha, rho);
        let long = next_iterate(&g, &xi, Some(&xi_prev), &dir.scale(7.5), eta, alpha, rho);
        let (a, b) = (flat(&unit), flat(&long));
        let (worst, scale) = (worst_difference(&a, &b), max_abs(&a));
        assert!(
            worst <= 1e-6 * scale,
            "{metric}: ĝ = d/‖d‖ for any ‖d‖, worst difference {worst:e} of {scale:e}"
        );
        // The momentum point lies outside the ball here, so the iterate is on the sphere,
        // and horizontal.
        let norm = scalar(g.norm(&unit));
        assert!(
            (norm - rho).abs() <= 1e-6 * rho,
            "{metric}: ‖ξ_(k+1)‖ = {norm}, ρ = {rho}"
        );
        let vertical = scalar(g.norm(&g.vertical(&unit)));
        assert!(
            vertical <= 1e-6 * rho,
            "{metric}: vertical part {vertical:e}"
        );
        // A zero direction takes no step along it: the momentum point of η = 0.
        let still = next_iterate(&g, &xi, Some(&xi_prev), &zero, eta, alpha, rho);
        let no_step = next_iterate(&g, &xi, Some(&xi_prev), &dir, 0.0, alpha, rho);
        let (a, b) = (flat(&still), flat(&no_step));
        assert!(
            a.iter().all(|x| x.is_finite()),
            "{metric}: a zero direction gives a finite iterate"
        );
        let worst = worst_difference(&a, &b);
        assert!(
            worst <= 1e-7 * rho,
            "{metric}: zero direction, worst difference {worst:e}"
        );
    }
}

/// Bits of every part of a tangent vector.
fn tangent_bits(t: Tangent<F32>) -> Vec<Vec<u32>> {
    t.parts.into_iter().map(bits).collect()
}

/// A product runs its blocks side by side on the host: every operation gives the bits it
/// gives with the blocks run one after another, on one thread or several.
#[test]
fn blocks_side_by_side_give_the_bits_of_blocks_one_after_another() {
    for metric in [Metric::Adaptive, Metric::Inv, Metric::Mix] {
        let (g, zero) = geometry(metric);
        let u = g.horizontal(&g.whiten(&Probes::new(11).gaussian(&zero)));
        let u = u.map(|p| p.mul_scalar(0.1));
        let c = Probes::new(12).gaussian(&zero);
        let all = |g: &Product<F32>| {
            (
                scalar(g.norm(&u)).to_bits(),
                tangent_bits(Tangent::new(g.step(&u))),
                tangent_bits(g.step_vjp(&u, &c)),
                tangent_bits(g.horizontal(&c)),
                tangent_bits(g.riemannian_gradient(&c)),
                g.block_sq_norms(&u)
                    .into_iter()
                    .map(|x| scalar(x).to_bits())
                    .collect::<Vec<_>>(),
            )
        };
        let parallel = |threads| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .expect("pool")
                .install(|| all(&g))
        };
        let (one, three) = (parallel(1), parallel(3));
        let (g, _) = geometry(metric);
        let sequential = all(&g.sequential());
        assert!(
            one == sequential,
            "{metric}: 1 thread against one after another"
        );
        assert!(
            three == sequential,
            "{metric}: 3 threads against one after another"
        );
    }
}

/// The frame's weight checks count on the host: non-finite entries, and entries below the
/// zero floor, across chunks, as Burn's operations count them; and refuse the block with
/// those counts.
#[test]
fn weight_checks_count_what_burn_counts() {
    use geosharp::geometry::{Elementwise, Error, ZERO_FLOOR, ZeroWeights};
    let shape = [3, CHUNK / 64 + 1, 65];
    let n: usize = shape.iter().product();
    let mut values = entries(n, 9);
    let specials = [
        (5, f32::NAN),
        (CHUNK + 3, f32::INFINITY),
        (n - 1, f32::NEG_INFINITY),
        (7, 0.0),
        (2 * CHUNK, -0.0),
        (11, 1e-20),
        (12, 1e-12),
    ];
    for (i, v) in specials {
        values[i] = v;
    }
    let x = tensor::<F32>(values.clone(), shape);
    let by_ops = |t: Tensor<F32, 3, burn::tensor::Bool>| scalar(t.int().sum().float()) as usize;
    let non_finite = by_ops(x.clone().is_finite().bool_not());
    let below = by_ops(x.clone().abs().lower_elem(ZERO_FLOOR));
    assert_eq!((non_finite, below), (3, 3));
    assert_eq!(count_on_host(&x, |v| !v.is_finite()), Some(non_finite));
    assert_eq!(
        count_on_host(&x, |v| v.abs() < ZERO_FLOOR as f32),
        Some(below)
    );
    assert_eq!(count_on_host(&x.clone().swap_dims(1, 2), |_| true), None);
    let err = Elementwise::adaptive("e", vec![x], ZeroWeights::Error).unwrap_err();
    assert!(matches!(err, Error::NonFinite { count: 3, .. }), "{err}");
    let finite: Vec<f32> = values
        .iter()
        .map(|v| if v.is_finite() { *v } else { 1.0 })
        .collect();
    let err = Elementwise::adaptive("e", vec![tensor::<F32>(finite, shape)], ZeroWeights::Error)
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::ZeroWeight {
                count: 3,
                first: 7,
                ..
            }
        ),
        "{err}"
    );
}

/// The adaptive frame built in one pass on the host (f32 ndarray) is the frame Burn's
/// operations build (the same weights on the autodiff backend, which falls back): the inner
/// product, Riemannian gradient, whitening, Christoffel form and exact step agree, with and
/// without ASAM's offset, with frozen zero weights (+0 and −0) among them.
#[test]
fn the_adaptive_frame_on_the_host_is_the_frame_of_burn_s_operations() {
    use geosharp::geometry::{Elementwise, Geometry, ZeroWeights};
    type A = Autodiff<F32>;
    let shape = [2, CHUNK / 64 + 1, 65];
    let n: usize = shape.iter().product();
    let mut w = entries(n, 21);
    w[3] = 0.0;
    w[CHUNK + 1] = -0.0;
    let (u, v) = (entries(n, 22), entries(n, 23));
    fn frame<B: Backend>(w: &[f32], shape: [usize; 3], eta: f64) -> Elementwise<B> {
        let base = vec![tensor::<B>(w.to_vec(), shape)];
        Elementwise::adaptive_offset("e", base, eta, ZeroWeights::Freeze).expect("frame")
    }
    let values = |t: Vec<Tensor<F32, 3>>| to_f64_vec(t[0].clone());
    let values_a = |t: Vec<Tensor<A, 3>>| to_f64_vec(t[0].clone());
    let close = |a: &[f64], b: &[f64], what: &str| {
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(
                (x - y).abs() <= 1e-6 * y.abs().max(1e-30),
                "{what}[{i}]: {x} against {y}"
            );
        }
    };
    for eta in [0.0, 0.01] {
        let (host, ops) = (frame::<F32>(&w, shape, eta), frame::<A>(&w, shape, eta));
        let (hu, hv) = (
            vec![tensor::<F32>(u.clone(), shape)],
            vec![tensor::<F32>(v.clone(), shape)],
        );
        let (au, av) = (
            vec![tensor::<A>(u.clone(), shape)],
            vec![tensor::<A>(v.clone(), shape)],
        );
        assert!(on_host(&hu[0]) && !on_host(&au[0]));
        let (ih, ia) = (scalar(host.inner(&hu, &hv)), scalar(ops.inner(&au, &av)));
        assert!(
            (ih - ia).abs() <= 1e-6 * ia.abs(),
            "inner {ih} against {ia}"
        );
        let small: Vec<f32> = u.iter().map(|x| x * 1e-3).collect();
        let (hs, as_) = (
            vec![tensor::<F32>(small.clone(), shape)],
            vec![tensor::<A>(small, shape)],
        );
        close(
            &values(host.riemannian_gradient(&hu)),
            &values_a(ops.riemannian_gradient(&au)),
            "riemannian gradient",
        );
        close(
            &values(host.whiten(&hu)),
            &values_a(ops.whiten(&au)),
            "whiten",
        );
        close(
            &values(host.christoffel(&hs).unwrap()),
            &values_a(ops.christoffel(&as_).unwrap()),
            "christoffel",
        );
        close(
            &values(host.exp(&hs).unwrap()),
            &values_a(ops.exp(&as_).unwrap()),
            "exp",
        );
    }
}
