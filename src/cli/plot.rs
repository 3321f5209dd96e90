//! A dependency-free SVG line plot, enough for a spectral density.

use std::fmt::Write;
use std::path::Path;

use anyhow::Context;

/// Writes `y` against `x` as an SVG line plot with labelled axes and a title. A `log_y` plot
/// shows log₁₀(max(y, floor)).
pub fn line_svg(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    x: &[f64],
    y: &[f64],
    log_y: bool,
) -> anyhow::Result<()> {
    /// Values below this are drawn at it on a log axis (densities reach exact zeros).
    const FLOOR: f64 = 1e-8;
    let (w, h, m) = (640.0, 400.0, 60.0);
    let ys: Vec<f64> = y
        .iter()
        .map(|&v| if log_y { v.max(FLOOR).log10() } else { v })
        .collect();
    let range = |v: &[f64]| {
        let (lo, hi) = v
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &t| {
                (a.min(t), b.max(t))
            });
        if hi > lo {
            (lo, hi)
        } else {
            (lo - 0.5, lo + 0.5)
        }
    };
    let ((x0, x1), (y0, y1)) = (range(x), range(&ys));
    let px = |v: f64| m + (v - x0) / (x1 - x0) * (w - 2.0 * m);
    let py = |v: f64| h - m - (v - y0) / (y1 - y0) * (h - 2.0 * m);
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="24" text-anchor="middle" font-size="14">{}</text>"#,
        w / 2.0,
        escape(title)
    );
    let _ = writeln!(
        svg,
        r#"<path d="M{m},{m} V{} H{}" fill="none" stroke="black"/>"#,
        h - m,
        w - m
    );
    for i in 0..=4 {
        let (tx, ty) = (
            x0 + (x1 - x0) * i as f64 / 4.0,
            y0 + (y1 - y0) * i as f64 / 4.0,
        );
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
            px(tx),
            h - m + 16.0,
            tick(tx)
        );
        let label = if log_y {
            format!("1e{ty:.1}")
        } else {
            tick(ty)
        };
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{:.1}" text-anchor="end">{label}</text>"#,
            m - 6.0,
            py(ty) + 4.0
        );
    }
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
        w / 2.0,
        h - 16.0,
        escape(x_label)
    );
    let _ = writeln!(
        svg,
        r#"<text x="16" y="{}" text-anchor="middle" transform="rotate(-90 16 {})">{}</text>"#,
        h / 2.0,
        h / 2.0,
        escape(y_label)
    );
    let points: Vec<String> = x
        .iter()
        .zip(&ys)
        .map(|(&a, &b)| format!("{:.2},{:.2}", px(a), py(b)))
        .collect();
    let _ = writeln!(
        svg,
        r#"<polyline fill="none" stroke="steelblue" stroke-width="1.5" points="{}"/>"#,
        points.join(" ")
    );
    svg.push_str("</svg>\n");
    std::fs::write(path, svg).with_context(|| format!("could not write {}", path.display()))
}

fn tick(v: f64) -> String {
    if v != 0.0 && (v.abs() >= 1e4 || v.abs() < 1e-2) {
        format!("{v:.1e}")
    } else {
        format!("{v:.2}")
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_point_is_drawn_inside_the_frame() {
        let path = std::env::temp_dir().join(format!("geosharp-plot-{}.svg", std::process::id()));
        let x: Vec<f64> = (0..50).map(|i| i as f64 / 10.0).collect();
        let y: Vec<f64> = x.iter().map(|t| (-t * t).exp()).collect();
        line_svg(&path, "a < b & c", "x", "y", &x, &y, true).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_file(&path).ok();
        assert!(svg.contains("a &lt; b &amp; c"));
        let points = svg
            .split("points=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        let coords: Vec<(f64, f64)> = points
            .split(' ')
            .map(|p| {
                let (a, b) = p.split_once(',').unwrap();
                (a.parse().unwrap(), b.parse().unwrap())
            })
            .collect();
        assert_eq!(coords.len(), 50);
        for (px, py) in coords {
            assert!((60.0..=580.0).contains(&px) && (60.0..=340.0).contains(&py));
        }
    }
}
