//! The changes geosharp makes to burn-ndarray (vendor/burn-ndarray/GEOSHARP-PATCHES.md) must
//! not change a result beyond what they say: reshapes that now share their buffer must still
//! leave the original alone when the reshaped tensor is written to, transposed operands and
//! attention's strided heads that now reach the matrix product as views must give the product
//! of the same matrices in standard layout bit for bit, the element-wise and broadcast
//! arithmetic that now runs on rayon's threads must give exactly what the same operation gives
//! element by element — whether it overwrote a unique operand or collected into a new buffer —
//! and a product split across threads must be the row-by-row product bit for bit, or, split
//! over a long inner dimension, the exact sum to rounding and the same on every run; and the
//! maximum along an axis, now taken directly, must be the value upstream gathered at the argmax.

mod common;

use burn::backend::NdArray;
use burn::tensor::{Tensor, TensorData};
use common::entries;

type B = NdArray<f32>;

/// Large enough for the parallel path (at least 2¹⁵ elements).
const ROWS: usize = 300;
const COLS: usize = 200;

fn tensor(values: Vec<f32>, shape: [usize; 2]) -> Tensor<B, 2> {
    Tensor::from_data(TensorData::new(values, shape), &Default::default())
}

fn values<const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data().into_vec::<f32>().expect("f32")
}

/// The four binary operations, by name, as element-by-element functions.
type Op = (&'static str, fn(f32, f32) -> f32);
const OPS: [Op; 4] = [
    ("add", |x, y| x + y),
    ("sub", |x, y| x - y),
    ("mul", |x, y| x * y),
    ("div", |x, y| x / y),
];

/// The operation named `name` on two tensors, through Burn's operators.
fn apply(name: &str, x: Tensor<B, 2>, y: Tensor<B, 2>) -> Tensor<B, 2> {
    match name {
        "add" => x + y,
        "sub" => x - y,
        "mul" => x * y,
        _ => x / y,
    }
}

#[test]
fn element_wise_arithmetic_is_the_element_by_element_result_bit_for_bit() {
    let (a, b) = (entries(ROWS * COLS, 1), entries(ROWS * COLS, 2));
    for (name, f) in OPS {
        let expected: Vec<f32> = a.iter().zip(&b).map(|(x, y)| f(*x, *y)).collect();
        // Both operands shared with a live clone: a new buffer is collected.
        let (x, y) = (
            tensor(a.clone(), [ROWS, COLS]),
            tensor(b.clone(), [ROWS, COLS]),
        );
        let got = values(apply(name, x.clone(), y.clone()));
        assert!(got == expected, "{name}, shared operands");
        assert!(
            values(x) == a && values(y) == b,
            "{name} wrote to a shared operand"
        );
        // A unique left operand is overwritten in place; then a unique right one.
        let y = tensor(b.clone(), [ROWS, COLS]);
        let got = values(apply(name, tensor(a.clone(), [ROWS, COLS]), y.clone()));
        assert!(got == expected, "{name}, unique left operand");
        assert!(values(y) == b, "{name} wrote to the shared right operand");
        let x = tensor(a.clone(), [ROWS, COLS]);
        let got = values(apply(name, x.clone(), tensor(b.clone(), [ROWS, COLS])));
        assert!(got == expected, "{name}, unique right operand");
        assert!(values(x) == a, "{name} wrote to the shared left operand");
    }
    let s = 0.37f32;
    let x = tensor(a.clone(), [ROWS, COLS]);
    let scalar: [(&str, Vec<f32>, Tensor<B, 2>); 5] = [
        (
            "add_scalar",
            a.iter().map(|v| v + s).collect(),
            x.clone().add_scalar(s),
        ),
        (
            "sub_scalar",
            a.iter().map(|v| v - s).collect(),
            x.clone().sub_scalar(s),
        ),
        (
            "mul_scalar",
            a.iter().map(|v| v * s).collect(),
            x.clone().mul_scalar(s),
        ),
        (
            "div_scalar",
            a.iter().map(|v| v / s).collect(),
            x.clone().div_scalar(s),
        ),
        (
            "exp",
            a.iter().map(|v| (v / 4.0).exp()).collect(),
            x.clone().div_scalar(4.0).exp(),
        ),
    ];
    for (name, expected, got) in scalar {
        let got = values(got);
        // Burn's `exp` on f32 is `f32::exp` of each element, here of the same f32 quotient.
        assert!(got == expected, "{name}");
    }
    assert!(values(x) == a, "a scalar op wrote to a shared operand");
}

#[test]
fn a_reshaped_tensor_shares_nothing_it_can_write_to() {
    let a = entries(ROWS * COLS, 3);
    let x = tensor(a.clone(), [ROWS, COLS]);
    let reshaped: Tensor<B, 3> = x.clone().reshape([COLS, ROWS / 2, 2]);
    // In place where unique (the reshape's own handle is not: it shares x's buffer).
    let written = reshaped.clone().add_scalar(1.0).mul_scalar(2.0);
    assert!(
        values(x.clone()) == a,
        "writing to a reshape changed the original"
    );
    let expected: Vec<f32> = a.iter().map(|v| (v + 1.0) * 2.0).collect();
    assert!(values(written) == expected);
    assert!(values(reshaped) == a, "the reshape lost its values");
    // And back: a reshape of a reshape is the same buffer in the same order.
    let round_trip: Tensor<B, 2> = x.reshape([COLS, ROWS]).reshape([ROWS, COLS]);
    assert!(values(round_trip) == a);
}

#[test]
fn a_transposed_operand_gives_the_product_of_the_transpose_bit_for_bit() {
    let (m, k, n) = (96, 130, 70);
    let a = entries(k * m, 4); // stored as [k, m]: the product uses its transpose
    let b = entries(n * k, 5); // stored as [n, k]
    let transpose = |v: &[f32], rows: usize, cols: usize| -> Vec<f32> {
        (0..cols)
            .flat_map(|j| (0..rows).map(move |i| (i, j)))
            .map(|(i, j)| v[i * cols + j])
            .collect()
    };
    let (at, bt) = (transpose(&a, k, m), transpose(&b, n, k));
    // Strided views (swap_dims) against the same matrices laid out in standard order.
    let strided = tensor(a.clone(), [k, m])
        .transpose()
        .matmul(tensor(b.clone(), [n, k]).transpose());
    let standard = tensor(at.clone(), [m, k]).matmul(tensor(bt.clone(), [k, n]));
    let (strided, standard) = (values(strided), values(standard));
    assert!(strided == standard, "a strided operand changed the product");
    // And the product itself, against an f64 reference.
    for (i, j) in [(0, 0), (m - 1, n - 1), (17, 53), (95, 0)] {
        let exact: f64 = (0..k)
            .map(|l| at[i * k + l] as f64 * bt[l * n + j] as f64)
            .sum();
        let got = standard[i * n + j] as f64;
        assert!(
            (got - exact).abs() <= 1e-5 * exact.abs().max(1.0) * k as f64,
            "({i}, {j}): {got} against {exact}"
        );
    }
}

#[test]
fn broadcast_arithmetic_is_the_element_by_element_result_bit_for_bit() {
    let a = entries(ROWS * COLS, 6);
    let row = entries(COLS, 7); // [1, COLS]: a bias
    let col = entries(ROWS, 8); // [ROWS, 1]: a per-row statistic
    for (name, f) in OPS {
        for (small, shape) in [(&row, [1, COLS]), (&col, [ROWS, 1])] {
            let at = |i: usize| {
                let (r, c) = (i / COLS, i % COLS);
                small[if shape[0] == 1 { c } else { r }]
            };
            let full_left: Vec<f32> = (0..a.len()).map(|i| f(a[i], at(i))).collect();
            let full_right: Vec<f32> = (0..a.len()).map(|i| f(at(i), a[i])).collect();
            let s = tensor(small.clone(), shape);
            // The full-size operand unique (overwritten in place), then shared (collected).
            let got = values(apply(name, tensor(a.clone(), [ROWS, COLS]), s.clone()));
            assert!(got == full_left, "{name} {shape:?}, unique left operand");
            let x = tensor(a.clone(), [ROWS, COLS]);
            let got = values(apply(name, x.clone(), s.clone()));
            assert!(got == full_left, "{name} {shape:?}, shared left operand");
            assert!(values(x) == a, "{name} wrote to a shared operand");
            let got = values(apply(name, s.clone(), tensor(a.clone(), [ROWS, COLS])));
            assert!(got == full_right, "{name} {shape:?}, unique right operand");
            let x = tensor(a.clone(), [ROWS, COLS]);
            let got = values(apply(name, s.clone(), x.clone()));
            assert!(got == full_right, "{name} {shape:?}, shared right operand");
            assert!(values(x) == a && values(s) == *small);
        }
    }
    // Both operands broadcast ([ROWS, 1] + [1, COLS]): upstream's path, the same sums.
    let outer = values(tensor(col.clone(), [ROWS, 1]) + tensor(row.clone(), [1, COLS]));
    let expected: Vec<f32> = (0..ROWS * COLS)
        .map(|i| col[i / COLS] + row[i % COLS])
        .collect();
    assert!(outer == expected, "outer sum");
}

#[test]
fn heads_split_off_tokens_give_the_batched_product_of_contiguous_heads_bit_for_bit() {
    // Attention's layout: [n, t, heads, h] with axes 1 and 2 swapped, a batch of matrices
    // with strides that no reshape to [n·heads, t, h] can express.
    let (n, t, heads, h) = (3, 17, 4, 8);
    let q = entries(n * t * heads * h, 9);
    let k = entries(n * t * heads * h, 10);
    let split = |v: &[f32]| -> Tensor<B, 4> {
        Tensor::<B, 1>::from_data(TensorData::new(v.to_vec(), [v.len()]), &Default::default())
            .reshape([n, t, heads, h])
            .swap_dims(1, 2)
    };
    // The same heads copied into standard layout, element by element here.
    let contiguous = |v: &[f32]| -> Tensor<B, 4> {
        let mut out = Vec::with_capacity(v.len());
        for b in 0..n {
            for i in 0..heads {
                for s in 0..t {
                    for j in 0..h {
                        out.push(v[((b * t + s) * heads + i) * h + j]);
                    }
                }
            }
        }
        Tensor::from_data(TensorData::new(out, [n, heads, t, h]), &Default::default())
    };
    let strided = values(split(&q).matmul(split(&k).swap_dims(2, 3)));
    let standard = values(contiguous(&q).matmul(contiguous(&k).swap_dims(2, 3)));
    assert!(strided == standard, "strided heads changed the product");
    // One entry against an f64 reference: sentence 2, head 3, tokens 5 and 11.
    let (b, i, s, u) = (2, 3, 5, 11);
    let exact: f64 = (0..h)
        .map(|j| {
            q[((b * t + s) * heads + i) * h + j] as f64
                * k[((b * t + u) * heads + i) * h + j] as f64
        })
        .sum();
    let got = strided[((b * heads + i) * t + s) * t + u] as f64;
    assert!((got - exact).abs() <= 1e-5 * exact.abs().max(1.0) * h as f64);
    // A broadcast batch axis ([1, heads, t, h] against [n, heads, h, t]) indexes 0 on it.
    let one = values(
        contiguous(&q)
            .narrow(0, 0, 1)
            .matmul(split(&k).swap_dims(2, 3)),
    );
    let each = values(
        contiguous(&q)
            .narrow(0, 0, 1)
            .repeat_dim(0, n)
            .matmul(contiguous(&k).swap_dims(2, 3)),
    );
    assert!(one == each, "a broadcast batch axis");
}

#[test]
fn split_matrix_products_match_their_unsplit_sums() {
    let dot = |a: &[f32], b: &[f32], (_, k, n): (usize, usize, usize), i: usize, j: usize| {
        (0..k)
            .map(|l| a[i * k + l] as f64 * b[l * n + j] as f64)
            .sum::<f64>()
    };
    // A long inner dimension (a weight gradient's): cut into slices summed in a fixed order,
    // so equal to the f64 sum to rounding and the same on every run.
    let (m, k, n) = (48, 5000, 40);
    let (a, b) = (entries(m * k, 11), entries(k * n, 12));
    let product = || values(tensor(a.clone(), [m, k]).matmul(tensor(b.clone(), [k, n])));
    let first = product();
    assert!(first == product(), "a split product is not deterministic");
    for (i, j) in [(0, 0), (m - 1, n - 1), (20, 7)] {
        let exact = dot(&a, &b, (m, k, n), i, j);
        let magnitude: f64 = (0..k)
            .map(|l| (a[i * k + l] as f64 * b[l * n + j] as f64).abs())
            .sum();
        let got = first[i * n + j] as f64;
        assert!(
            (got - exact).abs() <= 1e-6 * magnitude,
            "({i}, {j}): {got} against {exact}"
        );
    }
    // Many rows: split by rows, each entry the same sum as a product of that row alone.
    let (m, k, n) = (3000, 64, 48);
    let (a, b) = (entries(m * k, 13), entries(k * n, 14));
    let all = values(tensor(a.clone(), [m, k]).matmul(tensor(b.clone(), [k, n])));
    for i in [0, 1499, 1500, 2999] {
        let row = values(
            tensor(a[i * k..(i + 1) * k].to_vec(), [1, k]).matmul(tensor(b.clone(), [k, n])),
        );
        assert!(all[i * n..(i + 1) * n] == row[..], "row {i}");
    }
}

/// Upstream's maximum along an axis: the argmax, then the value gathered at it.
fn max_by_argmax<const D: usize>(t: Tensor<B, D>, dim: usize) -> Vec<f32> {
    let index = t.clone().argmax(dim);
    values(t.gather(dim, index))
}

#[test]
fn the_maximum_along_an_axis_is_upstream_s_argmax_then_gather_bit_for_bit() {
    // Values repeat (ties: the first one counts) and include NaN, first in some lanes and
    // later in others (upstream keeps a first NaN and skips a later one).
    let mut v: Vec<f32> = entries(ROWS * COLS, 7)
        .into_iter()
        .map(|x| (x * 4.0).round() / 4.0)
        .collect();
    for lane in (0..ROWS).step_by(17) {
        v[lane * COLS] = f32::NAN;
        v[lane * COLS + 3 + lane % 5] = f32::NAN;
    }
    let bits = |xs: Vec<f32>| xs.into_iter().map(f32::to_bits).collect::<Vec<_>>();
    // Along the last axis of a large array: rayon's path; along the first and on a small
    // array: the sequential one.
    let large = tensor(v.clone(), [ROWS, COLS]);
    for dim in [1, 0] {
        let got = large.clone().max_dim(dim);
        assert_eq!(got.dims()[dim], 1);
        assert_eq!(bits(values(got)), bits(max_by_argmax(large.clone(), dim)));
    }
    let small = tensor(v[..6 * COLS].to_vec(), [6, COLS]);
    assert_eq!(
        bits(values(small.clone().max_dim(1))),
        bits(max_by_argmax(small, 1))
    );
    // A 4-D attention-like tensor along its last axis.
    let scores = Tensor::<B, 1>::from_data(TensorData::new(v, [ROWS * COLS]), &Default::default())
        .reshape([10, 6, ROWS * COLS / 60 / 50, 50]);
    assert_eq!(
        bits(values(scores.clone().max_dim(3))),
        bits(max_by_argmax(scores, 3))
    );
}
