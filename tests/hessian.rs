//! Hessian tools against closed forms: finite-difference HVPs on models whose Hessian is known,
//! Lanczos / power iteration / Hutch++ / SLQ on explicit matrices with known spectra, Rényi
//! sharpness of known spectra, and Wen et al.'s notions against their small-ρ limits.

mod common;

use burn::module::{Module, Param};
use burn::prelude::{Backend, Int, Tensor};
use burn::tensor::DType;
use burn::tensor::activation::log_softmax;
use common::{B32, B64, Quadratic};
use geosharp::geometry::{GeometryConfig, Metric, Probes, Tangent};
use geosharp::hessian::{
    self, DenseOperator, HessianOperator, LinearOperator, Order, PowerIteration, Slq,
};
use geosharp::host::to_f64_vec;
use geosharp::measures::{Landscape, Objective, Silent, WorstCase, worst_case};
use geosharp::symmetry::{Symmetric, Symmetry};
use nalgebra::{DMatrix, DVector, SymmetricEigen};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, StandardNormal};

// This binary runs f32 and f64 backends side by side; Burn 0.21 keeps one default float dtype
// per device type, so every tensor is created with an explicit dtype.
fn tensor1<B: Backend>(values: &[f64], dtype: DType) -> Tensor<B, 1> {
    geosharp::host::upload(values, [values.len()], (&Default::default(), dtype))
}

fn tensor2<B: Backend>(values: &[f64], rows: usize, dtype: DType) -> Tensor<B, 2> {
    let shape = [rows, values.len() / rows];
    geosharp::host::upload(values, shape, (&Default::default(), dtype))
}

fn gaussian(rng: &mut StdRng, r: usize, c: usize) -> DMatrix<f64> {
    DMatrix::from_fn(r, c, |_, _| StandardNormal.sample(rng))
}

fn row_major(m: &DMatrix<f64>) -> Vec<f64> {
    (0..m.nrows())
        .flat_map(|i| m.row(i).iter().copied().collect::<Vec<_>>())
        .collect()
}

fn relative(a: &[f64], b: &[f64]) -> f64 {
    let diff: f64 = a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum();
    let scale: f64 = b.iter().map(|y| y * y).sum();
    (diff / scale).sqrt()
}

/// Linear regression with mean squared error: L = mean((Xw − y)²), H = (2/N) XᵀX.
#[derive(Module, Debug)]
struct LinearRegression<B: Backend> {
    w: Param<Tensor<B, 1>>,
}

#[derive(Debug, Clone)]
struct Points<B: Backend> {
    x: Tensor<B, 2>,
    y: Tensor<B, 1>,
}

impl<B: Backend> Objective<B> for LinearRegression<B> {
    type Batch = Points<B>;
    fn loss(&self, batch: &Points<B>) -> Tensor<B, 1> {
        let [n, d] = batch.x.dims();
        let r = batch
            .x
            .clone()
            .matmul(self.w.val().reshape([d, 1]))
            .reshape([n])
            - batch.y.clone();
        r.square().mean()
    }
}

impl<B: Backend> Symmetric for LinearRegression<B> {
    fn symmetries(&self) -> Vec<Symmetry> {
        Vec::new()
    }
}

/// Softmax regression: logits = W x, mean cross-entropy.
#[derive(Module, Debug)]
struct Softmax<B: Backend> {
    w: Param<Tensor<B, 2>>,
}

#[derive(Debug, Clone)]
struct Labelled<B: Backend> {
    x: Tensor<B, 2>,
    labels: Tensor<B, 1, Int>,
}

impl<B: Backend> Objective<B> for Softmax<B> {
    type Batch = Labelled<B>;
    fn loss(&self, batch: &Labelled<B>) -> Tensor<B, 1> {
        let n = batch.x.dims()[0];
        let logp = log_softmax(batch.x.clone().matmul(self.w.val().transpose()), 1);
        logp.gather(1, batch.labels.clone().reshape([n, 1]))
            .mean()
            .neg()
    }
}

impl<B: Backend> Symmetric for Softmax<B> {
    fn symmetries(&self) -> Vec<Symmetry> {
        Vec::new()
    }
}

struct Regression {
    x: DMatrix<f64>,
    y: DVector<f64>,
    w: DVector<f64>,
}

fn regression(n: usize, d: usize) -> Regression {
    let mut rng = StdRng::seed_from_u64(3);
    Regression {
        x: gaussian(&mut rng, n, d),
        y: DVector::from_fn(n, |_, _| StandardNormal.sample(&mut rng)),
        w: DVector::from_fn(d, |_, _| StandardNormal.sample(&mut rng)),
    }
}

fn points<B: Backend>(r: &Regression, rows: std::ops::Range<usize>, dtype: DType) -> Points<B> {
    let x = r.x.rows(rows.start, rows.len()).into_owned();
    Points {
        x: tensor2(&row_major(&x), rows.len(), dtype),
        y: tensor1(&r.y.as_slice()[rows], dtype),
    }
}

#[test]
fn hvp_of_least_squares_matches_two_over_n_xtx_in_f32_with_unequal_batches() {
    let r = regression(40, 6);
    let h = r.x.transpose() * &r.x * (2.0 / 40.0);
    let model = LinearRegression::<B32> {
        w: Param::from_tensor(tensor1(r.w.as_slice(), DType::F32)),
    };
    let landscape = Landscape::new(model, &[]).unwrap();
    // Batches of 25 and 15 points: the operator must weight them by size.
    let batches = vec![
        points::<B32>(&r, 0..25, DType::F32),
        points::<B32>(&r, 25..40, DType::F32),
    ];
    let op = HessianOperator::new(&landscape, &batches)
        .unwrap()
        .with_batch_sizes(&[25, 15])
        .unwrap();
    assert_eq!(op.dim(), 6);
    let mut rng = StdRng::seed_from_u64(5);
    for _ in 0..3 {
        let v = DVector::<f64>::from_fn(6, |_, _| StandardNormal.sample(&mut rng));
        let hv = op
            .apply(&geosharp::geometry::Tangent::new(vec![
                geosharp::host::upload(v.as_slice(), [1, 1, 6], (&Default::default(), DType::F32)),
            ]))
            .unwrap();
        let got = to_f64_vec(hv.parts[0].clone());
        let want = &h * &v;
        let err = relative(&got, want.as_slice());
        assert!(err < 1e-4, "relative HVP error {err:e}");
    }
    // λ_max and the trace against the dense eigendecomposition.
    let eig = SymmetricEigen::new(h.clone());
    let lmax = eig.eigenvalues.max();
    let top = hessian::top_eigenvalues(&op, 2, 6, Order::LargestAlgebraic, 0).unwrap();
    assert!((top[0].0 - lmax).abs() < 1e-4 * lmax, "{:?} vs {lmax}", top);
    let power = hessian::power_iteration(
        &op,
        &PowerIteration {
            tolerance: 1e-7,
            max_iterations: 500,
            ..PowerIteration::default()
        },
        Order::LargestAlgebraic,
    )
    .unwrap();
    assert!(
        (power.value - lmax).abs() < 1e-3 * lmax,
        "{power:?} vs {lmax}"
    );
    let trace = h.trace();
    // Hutch++ with a sketch of rank D is exact up to the HVP error.
    let exact = hessian::hutch_plus_plus(&op, 18, 1).unwrap();
    assert!(
        (exact.value - trace).abs() < 1e-4 * trace,
        "{exact:?} vs {trace}"
    );
    let hutch = hessian::hutchinson(&op, 200, 2).unwrap();
    assert!(
        (hutch.value - trace).abs() < 4.0 * hutch.std_error,
        "{hutch:?} vs {trace}"
    );
}

#[test]
fn hvp_of_softmax_cross_entropy_matches_the_closed_form() {
    let (n, d, c) = (20, 4, 3);
    let mut rng = StdRng::seed_from_u64(11);
    let x = gaussian(&mut rng, n, d);
    let w = gaussian(&mut rng, c, d) * 0.5;
    let labels: Vec<i64> = (0..n).map(|i| (i % c) as i64).collect();
    let model = Softmax::<B64> {
        w: Param::from_tensor(tensor2(&row_major(&w), c, DType::F64)),
    };
    let landscape = Landscape::new(model, &[]).unwrap();
    let batch = Labelled::<B64> {
        x: tensor2(&row_major(&x), n, DType::F64),
        labels: Tensor::from_data(labels.as_slice(), &Default::default()),
    };
    let batches = [batch];
    let op = HessianOperator::new(&landscape, &batches).unwrap();
    let v = gaussian(&mut rng, c, d);
    // H v = mean over examples of (diag p − p pᵀ)(V x) xᵀ.
    let mut want = DMatrix::<f64>::zeros(c, d);
    for i in 0..n {
        let xi = x.row(i).transpose();
        let logits = &w * &xi;
        let m = logits.max();
        let e = logits.map(|l| (l - m).exp());
        let p = &e / e.sum();
        let cov = DMatrix::from_diagonal(&p) - &p * p.transpose();
        want += cov * (&v * &xi) * xi.transpose() / n as f64;
    }
    let hv = op
        .apply(&geosharp::geometry::Tangent::new(vec![
            geosharp::host::upload(
                &row_major(&v),
                [1, 1, c * d],
                (&Default::default(), DType::F64),
            ),
        ]))
        .unwrap();
    let err = relative(&to_f64_vec(hv.parts[0].clone()), &row_major(&want));
    assert!(err < 1e-6, "relative HVP error {err:e}");
}

fn dense(m: &DMatrix<f64>) -> DenseOperator<B64> {
    DenseOperator::new(tensor2(&row_major(m), m.nrows(), DType::F64))
}

#[test]
fn lanczos_with_n_steps_reproduces_every_eigenvalue_and_slq_weights_sum_to_one() {
    let mut rng = StdRng::seed_from_u64(2);
    let g = gaussian(&mut rng, 30, 30);
    let a = (&g + g.transpose()) * 0.5;
    let op = dense(&a);
    let start = op.vector(&vec![1.0; 30]);
    let ritz = hessian::lanczos(&op, &start, 30).unwrap().ritz();
    let mut want: Vec<f64> = SymmetricEigen::new(a).eigenvalues.iter().copied().collect();
    want.sort_by(f64::total_cmp);
    assert_eq!(ritz.values.len(), 30);
    for (got, want) in ritz.values.iter().zip(&want) {
        assert!((got - want).abs() < 1e-8, "{got} vs {want}");
    }
    let density = hessian::slq(
        &op,
        &Slq {
            steps: 10,
            probes: 5,
            seed: 0,
        },
    )
    .unwrap();
    for w in &density.weights {
        assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-10);
        assert!(w.iter().all(|w| *w >= 0.0));
    }
    // The smoothed density integrates to 1.
    let (lo, hi) = density.range();
    let grid: Vec<f64> = (0..2001)
        .map(|i| lo - 2.0 + (hi - lo + 4.0) * i as f64 / 2000.0)
        .collect();
    let step = grid[1] - grid[0];
    let mass: f64 = density.smoothed(&grid, 0.2).iter().sum::<f64>() * step;
    assert!((mass - 1.0).abs() < 1e-3, "mass {mass}");
}

#[test]
fn lanczos_finds_the_outliers_of_a_spiked_wishart_matrix() {
    let n = 400;
    let mut rng = StdRng::seed_from_u64(0);
    let z = gaussian(&mut rng, n, n);
    let mut y = &z * z.transpose() / n as f64;
    for (i, s) in [5.0, 4.0, 3.0].iter().enumerate() {
        y[(i, i)] += s;
    }
    let op = dense(&y);
    let top = hessian::top_eigenvalues(&op, 4, 80, Order::LargestAlgebraic, 1).unwrap();
    // θ + θ/(θ − 1) for a spike θ above the Marchenko–Pastur edge 4 (ratio 1).
    for ((got, _), want) in top.iter().zip([6.25, 16.0 / 3.0, 4.5]) {
        assert!((got - want).abs() < 0.15, "{top:?}");
    }
    let ritz = {
        let start = op.vector(&vec![1.0; n]);
        hessian::lanczos(&op, &start, 80).unwrap().ritz()
    };
    let bulk = &ritz.values[..ritz.values.len() - 3];
    assert!(bulk.iter().all(|&t| (-1e-9..=4.2).contains(&t)), "{bulk:?}");
    // Power iteration agrees on the top one (largest magnitude = largest algebraic here).
    let power =
        hessian::power_iteration(&op, &PowerIteration::default(), Order::LargestMagnitude).unwrap();
    assert!((power.value - top[0].0).abs() < 0.05, "{power:?}");
}

#[test]
fn probes_are_reproducible_whatever_the_backend_generator_does_and_have_their_moments() {
    /// The identity on ℝⁿ: only its space matters here.
    struct Identity(usize);
    impl LinearOperator<B64> for Identity {
        fn zeros(&self) -> Tangent<B64> {
            Tangent::new(vec![Tensor::zeros(
                [1, 1, self.0],
                (&Default::default(), DType::F64),
            )])
        }
        fn dim(&self) -> usize {
            self.0
        }
        fn apply(&self, v: &Tangent<B64>) -> Result<Tangent<B64>, hessian::Error> {
            Ok(v.clone())
        }
    }
    let n = 20_000;
    let op = Identity(n);
    let draw = |seed| {
        let mut probes = Probes::new(seed);
        let z = to_f64_vec(op.rademacher(&mut probes).parts[0].clone());
        // Another user of the backend's shared generator, between two draws of the stream.
        B64::seed(&Default::default(), seed);
        let _ = Tensor::<B64, 1>::random(
            [7],
            burn::tensor::Distribution::Default,
            &Default::default(),
        );
        (z, to_f64_vec(op.gaussian(&mut probes).parts[0].clone()))
    };
    let (z, g) = draw(5);
    assert_eq!((z.clone(), g.clone()), draw(5));
    assert_ne!(z, draw(6).0);
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let se = 1.0 / (n as f64).sqrt();
    assert!(z.iter().all(|&x| x == 1.0 || x == -1.0));
    assert!(mean(&z).abs() < 4.0 * se, "{}", mean(&z));
    assert!(mean(&g).abs() < 4.0 * se, "{}", mean(&g));
    let var = g.iter().map(|x| x * x).sum::<f64>() / n as f64;
    // Var of the sample second moment of N(0, 1) is 2/n.
    assert!((var - 1.0).abs() < 4.0 * (2.0f64).sqrt() * se, "{var}");
}

#[test]
fn hutch_plus_plus_with_a_full_rank_sketch_is_exact_for_every_seed() {
    // With k = D sketch columns Q spans the space and the estimate is tr(QᵀHQ) = tr(H). A ±1
    // sketch is singular for most seeds at D = 6 (the CI failure this test pins down).
    let mut rng = StdRng::seed_from_u64(11);
    let a = gaussian(&mut rng, 6, 6);
    let h = &a * a.transpose();
    let op = dense(&h);
    for seed in 0..24 {
        let estimate = hessian::hutch_plus_plus(&op, 18, seed).unwrap();
        assert!(
            (estimate.value - h.trace()).abs() < 1e-9 * h.trace(),
            "seed {seed}: {estimate:?} vs {}",
            h.trace()
        );
    }
}

#[test]
fn power_iteration_finds_the_largest_algebraic_eigenvalue_under_a_larger_negative_one() {
    let a = DMatrix::from_diagonal(&DVector::from_vec(vec![-5.0, 2.0, 1.0, 0.5]));
    let op = dense(&a);
    let config = PowerIteration {
        tolerance: 1e-10,
        max_iterations: 2000,
        ..PowerIteration::default()
    };
    let magnitude = hessian::power_iteration(&op, &config, Order::LargestMagnitude).unwrap();
    let algebraic = hessian::power_iteration(&op, &config, Order::LargestAlgebraic).unwrap();
    assert!((magnitude.value + 5.0).abs() < 1e-6, "{magnitude:?}");
    assert!((algebraic.value - 2.0).abs() < 1e-6, "{algebraic:?}");
    let top = hessian::top_eigenvalues(&op, 1, 4, Order::LargestMagnitude, 0).unwrap();
    assert!((top[0].0 + 5.0).abs() < 1e-9);
}

#[test]
fn renyi_sharpness_matches_its_closed_forms_and_ignores_scale() {
    for alpha in [0.5, 1.0, 2.0, 3.0] {
        let s = hessian::renyi_sharpness(&[1.0; 4], alpha).unwrap();
        assert!((s + 1.386294).abs() < 1e-6, "α = {alpha}: {s}");
        let scaled = hessian::renyi_sharpness(&[21.0, 7.0], alpha).unwrap();
        let plain = hessian::renyi_sharpness(&[3.0, 1.0], alpha).unwrap();
        assert!((scaled - plain).abs() < 1e-12);
    }
    for (alpha, want) in [(2.0, -0.470004), (1.0, -0.562335), (0.5, -0.623811)] {
        let got = hessian::renyi_sharpness(&[3.0, 1.0], alpha).unwrap();
        assert!((got - want).abs() < 1e-6, "α = {alpha}: {got} vs {want}");
    }
    // From SLQ on diag(3, 1): a Rademacher probe's quadrature is exact for a diagonal matrix.
    let op = dense(&DMatrix::from_diagonal(&DVector::from_vec(vec![3.0, 1.0])));
    let density = hessian::slq(
        &op,
        &Slq {
            steps: 2,
            probes: 4,
            seed: 0,
        },
    )
    .unwrap();
    let renyi = hessian::renyi_from_density(&density, &[2.0, 1.0, 0.5]).unwrap();
    for (r, want) in renyi.iter().zip([-0.470004, -0.562335, -0.623811]) {
        assert!((r.sharpness - want).abs() < 1e-6, "{r:?}");
        assert!(r.std_error < 1e-9, "{r:?}");
    }
    assert!(matches!(
        hessian::renyi_sharpness(&[1.0], 0.0),
        Err(hessian::Error::InvalidAlpha(_))
    ));
}

fn quadratic(curvature: &[f64], at: &[f64]) -> Landscape<B64, Quadratic<B64>> {
    let model = Quadratic::<B64> {
        delta: Param::from_tensor(tensor1(at, DType::F64)),
        curvature: tensor1(curvature, DType::F64),
    };
    Landscape::new(model, &[]).unwrap()
}

#[test]
fn wen_notions_approach_their_small_rho_limits_on_a_quadratic() {
    let curvature = [4.0, 2.0, 1.0, 0.5, 0.25, 0.1];
    let d = curvature.len();
    let trace: f64 = curvature.iter().sum();
    let rho = 1e-2;
    // At the minimum: worst-direction = ρ²λ₁/2 (worst-case Euclidean sharpness, Lanczos λ₁),
    // average-direction → ρ² tr(H) / (2D) (Hutch++ trace).
    let at_min = quadratic(&curvature, &[0.0; 6]);
    let batches = [()];
    let op = HessianOperator::new(&at_min, &batches).unwrap();
    let lambda = hessian::top_eigenvalues(&op, 1, d, Order::LargestAlgebraic, 0).unwrap()[0].0;
    assert!((lambda - 4.0).abs() < 1e-6);
    let config = WorstCase::new(rho, GeometryConfig::new(Metric::Euclidean)).with_iterations(40);
    let worst = worst_case(&at_min, &batches, &config, &mut Silent).unwrap();
    let limit = rho * rho * lambda / 2.0;
    assert!(
        (worst.sharpness - limit).abs() < 1e-3 * limit,
        "{} vs {limit}",
        worst.sharpness
    );
    let tr = hessian::hutch_plus_plus(&op, 3 * d, 0).unwrap().value;
    assert!((tr - trace).abs() < 1e-6 * trace);
    let average = hessian::average_direction(&op, rho, 4000, 0).unwrap();
    let limit = hessian::average_direction_limit(rho, tr, d);
    assert!(
        (average.value - limit).abs() < 4.0 * average.std_error,
        "{average:?} vs {limit}"
    );
    // Away from the minimum the ascent direction's expansion is exact on a quadratic.
    let off = quadratic(&curvature, &[0.3, -0.2, 0.1, 0.5, -0.4, 0.2]);
    let op = HessianOperator::new(&off, &batches).unwrap();
    let ascent = hessian::ascent_direction(&op, rho).unwrap();
    assert!(
        (ascent.value - ascent.small_rho_limit).abs() < 1e-8 * ascent.value,
        "{ascent:?}"
    );
    // Bad input.
    assert!(matches!(
        hessian::ascent_direction(&op, 0.0),
        Err(hessian::Error::InvalidRadius(_))
    ));
    let empty: [(); 0] = [];
    assert!(matches!(
        HessianOperator::new(&off, &empty),
        Err(hessian::Error::EmptyData)
    ));
}

/// Two parameter vectors with a coupling: L = ½ aᵀ diag(ca) a + ½ bᵀ diag(cb) b + k (a · b).
#[derive(Module, Debug)]
struct Coupled<B: Backend> {
    a: Param<Tensor<B, 1>>,
    b: Param<Tensor<B, 1>>,
    ca: Tensor<B, 1>,
    cb: Tensor<B, 1>,
}

impl<B: Backend> Objective<B> for Coupled<B> {
    type Batch = ();
    fn loss(&self, _: &()) -> Tensor<B, 1> {
        let (a, b) = (self.a.val(), self.b.val());
        (a.clone().square() * self.ca.clone()).sum().mul_scalar(0.5)
            + (b.clone().square() * self.cb.clone()).sum().mul_scalar(0.5)
            + (a * b).sum().mul_scalar(3.0)
    }
}

impl<B: Backend> Symmetric for Coupled<B> {
    fn symmetries(&self) -> Vec<Symmetry> {
        Vec::new()
    }
}

#[test]
fn a_restricted_hessian_is_the_diagonal_block_of_the_full_one() {
    let model = Coupled::<B64> {
        a: Param::from_tensor(tensor1(&[0.1, 0.2, 0.3], DType::F64)),
        b: Param::from_tensor(tensor1(&[0.0, -0.1, 0.4], DType::F64)),
        ca: tensor1(&[5.0, 2.0, 1.0], DType::F64),
        cb: tensor1(&[40.0, 30.0, 20.0], DType::F64),
    };
    let landscape = Landscape::new(model, &[]).unwrap();
    let batches = [()];
    let full = HessianOperator::new(&landscape, &batches).unwrap();
    let only_a = HessianOperator::new(&landscape, &batches)
        .unwrap()
        .restrict_to("a")
        .unwrap();
    assert_eq!((full.dim(), only_a.dim()), (6, 3));
    // The a-block alone is diag(5, 2, 1); the coupling lifts the full spectrum's top above 40.
    let top_a = hessian::top_eigenvalues(&only_a, 1, 3, Order::LargestAlgebraic, 0).unwrap();
    let top = hessian::top_eigenvalues(&full, 1, 6, Order::LargestAlgebraic, 0).unwrap();
    assert!((top_a[0].0 - 5.0).abs() < 1e-6, "{top_a:?}");
    assert!(top[0].0 > 40.0, "{top:?}");
    let tr = hessian::hutch_plus_plus(&only_a, 9, 0).unwrap().value;
    assert!((tr - 8.0).abs() < 1e-6, "{tr}");
    assert!(matches!(
        HessianOperator::new(&landscape, &batches)
            .unwrap()
            .restrict_to("no such block"),
        Err(hessian::Error::NoBlocks { .. })
    ));
}
