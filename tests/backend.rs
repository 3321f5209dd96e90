//! The three changes geosharp makes to burn-ndarray (vendor/burn-ndarray/GEOSHARP-PATCHES.md)
//! must not change a single result: reshapes that now share their buffer must still leave the
//! original alone when the reshaped tensor is written to, transposed operands that now reach
//! the matrix product as strided views must give the product of the transposed matrix bit for
//! bit, and the element-wise arithmetic that now runs on rayon's threads must give exactly
//! what the same operation gives element by element — whether it overwrote a unique operand or
//! collected into a new buffer.

use burn::backend::NdArray;
use burn::tensor::{Tensor, TensorData};

type B = NdArray<f32>;

/// Large enough for the parallel path (at least 2¹⁵ elements).
const ROWS: usize = 300;
const COLS: usize = 200;

/// Deterministic values of both signs, none zero (they are also divisors).
fn entries(n: usize, seed: u32) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let k = (i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) % 20_011;
            (k as f32 - 10_005.5) / 1_000.0
        })
        .collect()
}

fn tensor(values: Vec<f32>, shape: [usize; 2]) -> Tensor<B, 2> {
    Tensor::from_data(TensorData::new(values, shape), &Default::default())
}

fn values<const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data().into_vec::<f32>().expect("f32")
}

#[test]
fn element_wise_arithmetic_is_the_element_by_element_result_bit_for_bit() {
    let (a, b) = (entries(ROWS * COLS, 1), entries(ROWS * COLS, 2));
    type Op = (&'static str, fn(f32, f32) -> f32);
    let ops: [Op; 4] = [
        ("add", |x, y| x + y),
        ("sub", |x, y| x - y),
        ("mul", |x, y| x * y),
        ("div", |x, y| x / y),
    ];
    let apply = |name: &str, x: Tensor<B, 2>, y: Tensor<B, 2>| match name {
        "add" => x + y,
        "sub" => x - y,
        "mul" => x * y,
        _ => x / y,
    };
    for (name, f) in ops {
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
