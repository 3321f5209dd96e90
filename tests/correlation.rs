//! The correlation study: Kendall's τ and its permutation p-value against brute force, and a
//! CI-sized end-to-end run of `geosharp family` + `geosharp correlate` whose JSON, plot,
//! cache and shards are checked by hand.

mod common;

use common::B32;
use common::assets::cache_with;
use geosharp::assets::Asset;
use geosharp::stats::{EXACT_MAX, kendall_test};
use geosharp::train::{load_vit, save_vit};

/// τ-b by its definition: concordant minus discordant pairs over the tie-corrected count.
fn brute_tau_b(x: &[f64], y: &[f64]) -> f64 {
    let (mut c, mut d, mut tx, mut ty, mut n0) = (0.0f64, 0.0f64, 0.0f64, 0.0f64, 0.0f64);
    for i in 0..x.len() {
        for j in 0..i {
            n0 += 1.0;
            let (dx, dy) = (x[i] - x[j], y[i] - y[j]);
            if dx == 0.0 {
                tx += 1.0;
            }
            if dy == 0.0 {
                ty += 1.0;
            }
            if dx * dy > 0.0 {
                c += 1.0;
            } else if dx * dy < 0.0 {
                d += 1.0;
            }
        }
    }
    (c - d) / ((n0 - tx) * (n0 - ty)).sqrt()
}

/// τ-a by its definition.
fn brute_tau_a(x: &[f64], y: &[f64]) -> f64 {
    let mut s = 0.0;
    let mut n0 = 0.0;
    for i in 0..x.len() {
        for j in 0..i {
            n0 += 1.0;
            s += ((x[i] - x[j]) * (y[i] - y[j])).signum()
                * f64::from((x[i] - x[j]) * (y[i] - y[j]) != 0.0);
        }
    }
    s / n0
}

/// The two-sided p-value by enumerating every permutation recursively (not Heap's algorithm).
fn brute_p(x: &[f64], y: &[f64]) -> f64 {
    fn walk(
        x: &[f64],
        rest: &mut Vec<f64>,
        taken: &mut Vec<f64>,
        obs: f64,
        hits: &mut u64,
        total: &mut u64,
    ) {
        if rest.is_empty() {
            *total += 1;
            if brute_tau_b(x, taken).abs() >= obs - 1e-12 {
                *hits += 1;
            }
            return;
        }
        for k in 0..rest.len() {
            let v = rest.remove(k);
            taken.push(v);
            walk(x, rest, taken, obs, hits, total);
            taken.pop();
            rest.insert(k, v);
        }
    }
    let obs = brute_tau_b(x, y).abs();
    let (mut hits, mut total) = (0, 0);
    walk(
        x,
        &mut y.to_vec(),
        &mut Vec::new(),
        obs,
        &mut hits,
        &mut total,
    );
    hits as f64 / total as f64
}

#[test]
fn kendall_tau_and_exact_p_value_with_ties_match_brute_force() {
    // Ties in both variables.
    let x = [0.3, 1.2, 1.2, 0.7, 2.5, 0.3, 1.9];
    let y = [0.10, 0.40, 0.20, 0.20, 0.90, 0.05, 0.40];
    assert!(x.len() <= EXACT_MAX);
    let t = kendall_test(&x, &y, 0, 0);
    assert!(t.exact);
    assert!((t.tau_a - brute_tau_a(&x, &y)).abs() < 1e-14, "{t:?}");
    assert!((t.tau_b - brute_tau_b(&x, &y)).abs() < 1e-14, "{t:?}");
    let p = brute_p(&x, &y);
    assert!(
        (t.p_value - p).abs() < 1e-14,
        "p {} vs brute force {p}",
        t.p_value
    );
    assert!(p > 0.0 && p < 0.1, "a strong association: p = {p}");
    // Independent-looking data: a large p-value, identical to brute force too.
    let y2 = [0.5, 0.1, 0.9, 0.3, 0.3, 0.7, 0.2];
    let t2 = kendall_test(&x, &y2, 0, 0);
    assert!((t2.p_value - brute_p(&x, &y2)).abs() < 1e-14);
    assert!(t2.p_value > 0.3);
}

#[test]
fn the_sampled_p_value_of_a_larger_family_agrees_with_enumeration() {
    let x = [1.0, 2.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
    let y = [2.0, 1.0, 3.0, 3.0, 6.0, 4.0, 5.0, 9.0, 7.0];
    let exact = brute_p(&x, &y);
    let permutations = 20_000;
    let t = kendall_test(&x, &y, permutations, 1);
    assert!(!t.exact);
    // Binomial standard error of the sampled proportion.
    let se = (exact * (1.0 - exact) / permutations as f64).sqrt();
    assert!(
        (t.p_value - exact).abs() < 4.0 * se + 1.0 / permutations as f64,
        "sampled {} vs exact {exact} (s.e. {se})",
        t.p_value
    );
    assert!((t.tau_b - brute_tau_b(&x, &y)).abs() < 1e-14);
}

fn geosharp(args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_geosharp"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "geosharp {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn read_json(path: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Runs `geosharp family` with `args` into `dir/runs` and checks its table has one row per
/// model; returns the runs directory.
fn train_family(dir: &std::path::Path, args: &[&str], count: usize) -> std::path::PathBuf {
    let runs = dir.join("runs");
    let count_s = count.to_string();
    let mut all = vec![
        "family",
        "--count",
        &count_s,
        "--out",
        runs.to_str().unwrap(),
    ];
    all.extend_from_slice(args);
    let table = geosharp(&all);
    assert_eq!(
        table
            .lines()
            .filter(|l| l.contains("adam") || l.contains("sgd"))
            .count(),
        count,
        "{table}"
    );
    runs
}

/// The label of a correlation row of the JSON: the measure, with ρ when it has one (the key of
/// the checkpoints' `sharpness` maps).
fn label(correlation: &serde_json::Value) -> String {
    let measure = correlation["measure"].as_str().unwrap();
    match correlation["rho"].as_f64() {
        Some(rho) => format!("{measure} ρ={rho}"),
        None => measure.to_string(),
    }
}

#[test]
fn a_ci_sized_study_writes_json_and_plot_consistent_with_its_own_columns() {
    let _ = cache_with(&[Asset::FashionMnist]);
    let dir = std::env::temp_dir().join(format!("geosharp-study-{}", std::process::id()));
    let runs = train_family(&dir, &["--scale", "ci", "--seed", "5"], 4);
    let runs_s = runs.to_str().unwrap();
    // Every checkpoint records its final train and test evaluation; the gap is their difference.
    for i in 0..4 {
        let report = read_json(&runs.join(format!("run-{i:03}/train.json")));
        let train = report["final_train"]["error"].as_f64().unwrap();
        let test = report["final_test"]["error"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&train) && (0.0..=1.0).contains(&test));
    }
    // Training the family again finds every model trained.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_geosharp"))
        .args([
            "family", "--scale", "ci", "--count", "4", "--seed", "5", "--out", runs_s,
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stderr)
            .matches("already trained")
            .count(),
        4
    );

    // Collapse the query projection of run-003: its QK factor is rank-deficient, so the inv and
    // mix metrics are undefined there; the study must record that and go on.
    {
        use burn::module::Param;
        let ck = runs.join("run-003");
        let (report, mut model) = load_vit::<B32>(&ck, &Default::default()).unwrap();
        let q = &mut model.blocks[0].attention.query;
        q.weight = Param::from_tensor(q.weight.val().zeros_like());
        q.bias = q
            .bias
            .take()
            .map(|b| Param::from_tensor(b.val().zeros_like()));
        save_vit(&ck, &model, &report).unwrap();
    }

    let json = dir.join("study.json");
    let plot = dir.join("study.svg");
    let common = [
        "correlate",
        "--runs",
        runs_s,
        "--rho",
        "0.05",
        "--iters",
        "2",
        "--points",
        "64",
        "--batch",
        "32",
        "--hessian",
        "--steps",
        "4",
        "--probes",
        "2",
    ];
    fn with<'a>(common: &[&'a str], extra: &[&'a str]) -> Vec<&'a str> {
        let mut args = common.to_vec();
        args.extend_from_slice(extra);
        args
    }
    // Shard 1 of 2 measures runs 0 and 2 only.
    geosharp(&with(
        &common,
        &["--shard", "1/2", "--json", json.to_str().unwrap()],
    ));
    let first = read_json(&json);
    assert_eq!(first["measured"], 2 * 6, "2 checkpoints × 6 measures");
    for (i, row) in first["checkpoints"].as_array().unwrap().iter().enumerate() {
        let measures = row["sharpness"].as_object().unwrap().len();
        assert_eq!(measures, if i % 2 == 0 { 6 } else { 0 }, "{row}");
    }
    // The full run measures only what shard 1 left, then reports all four.
    let printed = geosharp(&with(
        &common,
        &[
            "--json",
            json.to_str().unwrap(),
            "--plot",
            plot.to_str().unwrap(),
        ],
    ));
    let out = read_json(&json);
    assert_eq!(out["measured"], 2 * 6);
    assert_eq!(out["cached"], 2 * 6);
    let rows = out["checkpoints"].as_array().unwrap();
    assert_eq!(rows.len(), 4);
    let undefined = rows[3]["undefined"].as_object().unwrap();
    assert_eq!(undefined.len(), 2, "{undefined:?}");
    for label in ["geodesic_inv ρ=0.05", "geodesic_mix ρ=0.05"] {
        assert!(
            undefined[label]
                .as_str()
                .unwrap()
                .contains("rank-deficient")
        );
    }
    assert!(printed.contains("2 values are undefined"), "{printed}");
    // Values cached by shard 1 are reported unchanged.
    for i in [0, 2] {
        assert_eq!(rows[i]["sharpness"], first["checkpoints"][i]["sharpness"]);
    }
    let gaps: Vec<f64> = rows
        .iter()
        .map(|r| {
            let gap = r["gap"].as_f64().unwrap();
            let by_hand = r["test_error"].as_f64().unwrap() - r["train_error"].as_f64().unwrap();
            assert!((gap - by_hand).abs() < 1e-12);
            gap
        })
        .collect();
    let correlations = out["correlations"].as_array().unwrap();
    assert_eq!(correlations.len(), 6);
    for c in correlations {
        let label = label(c);
        let (values, gaps): (Vec<f64>, Vec<f64>) = rows
            .iter()
            .zip(&gaps)
            .filter_map(|(r, &g)| Some((r["sharpness"][&label].as_f64()?, g)))
            .unzip();
        assert!(values.iter().all(|v| v.is_finite()), "{label}: {values:?}");
        let geodesic = label.starts_with("geodesic");
        assert_eq!(c["n"], if geodesic { 3 } else { 4 }, "{label}");
        assert_eq!(values.len(), if geodesic { 3 } else { 4 });
        let (a, b) = (c["tau_a"].as_f64().unwrap(), c["tau_b"].as_f64().unwrap());
        assert!((a - brute_tau_a(&values, &gaps)).abs() < 1e-12, "{label}");
        let hand_b = brute_tau_b(&values, &gaps);
        assert!(
            (b - hand_b).abs() < 1e-12 || (b.is_nan() && hand_b.is_nan()),
            "{label}"
        );
        let p = c["p_value"].as_f64().unwrap();
        assert!(
            (p - brute_p(&values, &gaps)).abs() < 1e-12,
            "{label}: p {p}"
        );
        assert!(printed.contains(c["measure"].as_str().unwrap()));
    }
    let svg = std::fs::read_to_string(&plot).unwrap();
    assert_eq!(
        svg.matches("<circle").count(),
        6 * 4 - 2,
        "one point per defined measure and checkpoint"
    );
    assert_eq!(svg.matches("τ-b =").count(), 6);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_ci_sized_study_of_minilm_tails_correlates_its_own_columns() {
    let _ = cache_with(&[Asset::MiniLm, Asset::MovieReviews]);
    let dir = std::env::temp_dir().join(format!("geosharp-mr-study-{}", std::process::id()));
    let runs = train_family(&dir, &["--task", "mr", "--scale", "ci"], 3);
    let runs_s = runs.to_str().unwrap();
    let json = dir.join("mr.json");
    geosharp(&[
        "correlate",
        "--runs",
        runs_s,
        "--rho",
        "0.05",
        "--iters",
        "2",
        "--points",
        "16",
        "--batch",
        "16",
        "--hessian",
        "--steps",
        "3",
        "--probes",
        "1",
        "--json",
        json.to_str().unwrap(),
    ]);
    let out = read_json(&json);
    assert_eq!(out["measured"], 3 * 6, "3 tails × 6 measures");
    let rows = out["checkpoints"].as_array().unwrap();
    let gaps: Vec<f64> = rows
        .iter()
        .map(|r| r["test_error"].as_f64().unwrap() - r["train_error"].as_f64().unwrap())
        .collect();
    for c in out["correlations"].as_array().unwrap() {
        let label = label(c);
        let values: Vec<f64> = rows
            .iter()
            .map(|r| r["sharpness"][&label].as_f64().unwrap())
            .collect();
        assert!(values.iter().all(|v| v.is_finite()), "{label}: {values:?}");
        assert_eq!(c["n"], 3);
        let a = c["tau_a"].as_f64().unwrap();
        assert!((a - brute_tau_a(&values, &gaps)).abs() < 1e-12, "{label}");
        let p = c["p_value"].as_f64().unwrap();
        assert!((p - brute_p(&values, &gaps)).abs() < 1e-12, "{label}");
    }
    // The worst-case measures are positive maxima of a loss increase.
    for r in rows {
        for m in [
            "adaptive ρ=0.05",
            "geodesic_inv ρ=0.05",
            "geodesic_mix ρ=0.05",
        ] {
            assert!(r["sharpness"][m].as_f64().unwrap() >= 0.0, "{r}");
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn correlate_explains_bad_input() {
    let dir = std::env::temp_dir().join(format!("geosharp-empty-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_geosharp"))
            .args(args)
            .output()
            .unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let d = dir.to_str().unwrap();
    let e = run(&["correlate", "--runs", d]);
    assert!(
        e.contains("holds no checkpoints") && e.contains("geosharp family"),
        "{e}"
    );
    let e = run(&["correlate", "--runs", d, "--rho", "0"]);
    assert!(e.contains("--rho must be positive"), "{e}");
    let e = run(&["correlate", "--runs", d, "--shard", "3/2"]);
    assert!(e.contains("i/n"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}
