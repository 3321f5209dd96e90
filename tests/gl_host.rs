//! GL(h) blocks on the host (`geometry::fused::heads`, `attention_gl`'s fused products) must
//! compute what Burn's operations compute for the same block off the host (the autodiff
//! backend, the path CUDA takes): every operation of `Geometry`, for inv and mix, on shapes
//! whose h and row counts exercise every tile of the kernels, with sides of different row
//! counts; and the same bits on any number of threads.

use burn::backend::{Autodiff, NdArray};
use burn::prelude::{Backend, Tensor, TensorData};
use burn::tensor::DType;
use geosharp::geometry::fused::on_host;
use geosharp::geometry::{AttentionGl, GeodesicStep, Geometry, Metric};
use geosharp::host::{scalar, to_f64_vec};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, StandardNormal};

type F32 = NdArray<f32>;
type Ad = Autodiff<F32>;

fn tensor<B: Backend>(values: Vec<f32>, shape: [usize; 3]) -> Tensor<B, 3> {
    Tensor::from_data(
        TensorData::new(values, shape),
        (&Default::default(), DType::F32),
    )
}

/// (G's shape, H's shape): h = 20 (two tiles of eight columns, then single columns), h = 40
/// (32, then eight) and h = 3 (single columns only); row counts that are and are not
/// multiples of four.
const SHAPES: [([usize; 3], [usize; 3]); 3] = [
    ([2, 21, 20], [2, 26, 20]),
    ([3, 48, 40], [3, 41, 40]),
    ([2, 9, 3], [2, 7, 3]),
];

/// `n` seeded standard normal values (full rank as matrices, unlike `common::entries`,
/// whose rows are arithmetic progressions).
fn normal(n: usize, seed: u32) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(u64::from(seed));
    (0..n).map(|_| StandardNormal.sample(&mut rng)).collect()
}

/// A pair of parts with the given seeds, scaled by `s`, on backend B.
fn parts<B: Backend>(
    (g, h): ([usize; 3], [usize; 3]),
    seeds: (u32, u32),
    s: f32,
) -> Vec<Tensor<B, 3>> {
    let make = |shape: [usize; 3], seed| {
        let n = shape.iter().product();
        tensor::<B>(normal(n, seed).iter().map(|v| v * s).collect(), shape)
    };
    vec![make(g, seeds.0), make(h, seeds.1)]
}

fn flat<B: Backend>(parts: Vec<Tensor<B, 3>>) -> Vec<f64> {
    parts.into_iter().flat_map(to_f64_vec).collect()
}

/// max |a − b| over max(|b|, `scale`): differences of f32 roundings of the same f64 values.
fn relative_difference(a: &[f64], b: &[f64], scale: f64) -> f64 {
    assert_eq!(a.len(), b.len());
    let worst = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max);
    let size = b.iter().fold(scale, |m, y| m.max(y.abs()));
    worst / size
}

#[test]
fn every_operation_on_the_host_is_burn_s_off_the_host() {
    for metric in [Metric::Inv, Metric::Mix] {
        for shape in SHAPES {
            let host =
                AttentionGl::<F32>::new("qk", parts(shape, (1, 2), 1.0), metric).expect("rank");
            let off =
                AttentionGl::<Ad>::new("qk", parts(shape, (1, 2), 1.0), metric).expect("rank");
            assert!(host.runs_on_host() && !off.runs_on_host());
            // Tangents a tenth of the base's size, as Auto-PGD's are; Γ is then a fiftieth.
            let (xi, xi_ad) = (
                parts::<F32>(shape, (3, 4), 0.1),
                parts::<Ad>(shape, (3, 4), 0.1),
            );
            let (c, c_ad) = (
                parts::<F32>(shape, (5, 6), 1.0),
                parts::<Ad>(shape, (5, 6), 1.0),
            );
            assert!(on_host(&xi[0]) && on_host(&c[1]));
            let label = format!("{metric} {shape:?}");

            let (a, b) = (
                scalar(host.inner(&xi, &c)),
                scalar(off.inner(&xi_ad, &c_ad)),
            );
            assert!(
                (a - b).abs() <= 1e-12 * b.abs(),
                "{label} inner: {a} against {b}"
            );

            let second = GeodesicStep::SecondOrder;
            let cases: [(&str, Vec<f64>, Vec<f64>, f64); 7] = [
                (
                    "riemannian_gradient",
                    flat(host.riemannian_gradient(&c)),
                    flat(off.riemannian_gradient(&c_ad)),
                    1e-6,
                ),
                (
                    "horizontal",
                    flat(host.horizontal(&xi)),
                    flat(off.horizontal(&xi_ad)),
                    1e-6,
                ),
                (
                    "christoffel",
                    flat(host.christoffel(&xi).expect("supported")),
                    flat(off.christoffel(&xi_ad).expect("supported")),
                    1e-6,
                ),
                (
                    "christoffel_vjp",
                    flat(host.christoffel_vjp(&xi, &c).expect("supported")),
                    flat(off.christoffel_vjp(&xi_ad, &c_ad).expect("supported")),
                    1e-6,
                ),
                // Off the host w + ξ − ½Γ and c − ½a are f32 operations on the f32 Γ and a:
                // a few roundings of the largest term, against one here.
                (
                    "step",
                    flat(host.step(&xi, second).expect("supported")),
                    flat(off.step(&xi_ad, second).expect("supported")),
                    4e-7,
                ),
                (
                    "step_vjp",
                    flat(host.step_vjp(&xi, second, &c).expect("supported")),
                    flat(off.step_vjp(&xi_ad, second, &c_ad).expect("supported")),
                    4e-7,
                ),
                (
                    "whiten",
                    flat(host.whiten(&c)),
                    flat(off.whiten(&c_ad)),
                    1e-6,
                ),
            ];
            for (name, got, want, tol) in cases {
                let d = relative_difference(&got, &want, 0.0);
                assert!(d <= tol, "{label} {name}: relative difference {d:e}");
            }

            // The first-order step and its VJP are the base + ξ and c themselves.
            let first = GeodesicStep::FirstOrder;
            let w_plus_xi: Vec<f64> = flat(host.base().to_vec())
                .iter()
                .zip(flat(xi.clone()))
                .map(|(w, x)| f64::from((*w as f32) + (x as f32)))
                .collect();
            assert_eq!(flat(host.step(&xi, first).expect("supported")), w_plus_xi);
            assert_eq!(
                flat(host.step_vjp(&xi, first, &c).expect("supported")),
                flat(c.clone())
            );
        }
    }
}

/// The projection is idempotent and its image horizontal to f32 precision: the vertical
/// part of a projected vector is the rounding of its entries, not a fraction of them.
#[test]
fn the_host_projection_is_a_projection() {
    for metric in [Metric::Inv, Metric::Mix] {
        for shape in SHAPES {
            let gl =
                AttentionGl::<F32>::new("qk", parts(shape, (7, 8), 1.0), metric).expect("rank");
            let xi = parts::<F32>(shape, (9, 10), 1.0);
            let once = gl.horizontal(&xi);
            let twice = gl.horizontal(&once);
            let d = relative_difference(&flat(twice), &flat(once.clone()), 0.0);
            assert!(
                d <= 1e-6,
                "{metric} {shape:?}: P(P(ξ)) − P(ξ) is {d:e} of P(ξ)"
            );
            // ⟨P(ξ), ξ − P(ξ)⟩ = 0: the projection is metric-orthogonal.
            let rest: Vec<Tensor<F32, 3>> = xi
                .iter()
                .zip(&once)
                .map(|(x, p)| x.clone() - p.clone())
                .collect();
            let cross = scalar(gl.inner(&once, &rest));
            let scale = scalar(gl.inner(&xi, &xi));
            assert!(
                cross.abs() <= 1e-6 * scale,
                "{metric} {shape:?}: ⟨P(ξ), ξ − P(ξ)⟩ = {cross:e} against ‖ξ‖² = {scale:e}"
            );
        }
    }
}

/// The per-head products run on rayon's threads; every element is one sum in a fixed order,
/// so one thread and three give the same bits.
#[test]
fn the_host_operations_give_the_same_bits_on_any_number_of_threads() {
    let shape = SHAPES[1];
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("a pool");
        pool.install(|| {
            let mut out = Vec::new();
            for metric in [Metric::Inv, Metric::Mix] {
                let gl = AttentionGl::<F32>::new("vo", parts(shape, (11, 12), 1.0), metric)
                    .expect("rank");
                let xi = parts::<F32>(shape, (13, 14), 0.1);
                let c = parts::<F32>(shape, (15, 16), 1.0);
                let second = GeodesicStep::SecondOrder;
                out.extend(flat(gl.step(&xi, second).expect("supported")));
                out.extend(flat(gl.step_vjp(&xi, second, &c).expect("supported")));
                out.extend(flat(gl.horizontal(&xi)));
                out.extend(to_f64_vec(gl.gram(&[&xi, &c])));
            }
            out.iter().map(|v| v.to_bits()).collect::<Vec<u64>>()
        })
    };
    assert_eq!(run(1), run(3));
}

/// A block's parts are often strided views of the model's weights; the host frame keeps the
/// base point in standard layout, so such a block still runs on the host, with the bits of
/// the same block built from contiguous parts.
#[test]
fn a_strided_base_point_runs_on_the_host_with_the_same_bits() {
    let (g, h) = SHAPES[0];
    let contiguous = parts::<F32>((g, h), (17, 18), 1.0);
    // The same values, stored transposed ([heads, h, rows]) and viewed back as [heads, rows, h].
    let strided: Vec<Tensor<F32, 3>> = contiguous
        .iter()
        .map(|x| {
            let stored =
                Tensor::<F32, 3>::from_data(x.clone().swap_dims(1, 2).to_data(), &x.device());
            stored.swap_dims(1, 2)
        })
        .collect();
    assert!(!on_host(&strided[0]), "the view is strided");
    let xi = parts::<F32>((g, h), (19, 20), 0.1);
    for metric in [Metric::Inv, Metric::Mix] {
        let a = AttentionGl::new("qk", contiguous.clone(), metric).expect("rank");
        let b = AttentionGl::new("qk", strided.clone(), metric).expect("rank");
        assert!(b.runs_on_host());
        let second = GeodesicStep::SecondOrder;
        let bits = |gl: &AttentionGl<F32>| -> Vec<u64> {
            flat(gl.step(&xi, second).expect("supported"))
                .into_iter()
                .chain(flat(gl.horizontal(&xi)))
                .map(f64::to_bits)
                .collect()
        };
        assert_eq!(bits(&a), bits(&b), "{metric}");
    }
}
