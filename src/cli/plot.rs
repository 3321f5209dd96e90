//! Dependency-free SVG plots: a line plot (a spectral density) and panels of scatter plots
//! (sharpness against generalisation gap).

use std::fmt::Write;
use std::path::Path;

use anyhow::Context;

/// A rectangle of the picture with data ranges: maps data to pixels and draws its axes.
struct Frame {
    left: f64,
    top: f64,
    width: f64,
    height: f64,
    x: (f64, f64),
    y: (f64, f64),
}

impl Frame {
    fn px(&self, v: f64) -> f64 {
        self.left + (v - self.x.0) / (self.x.1 - self.x.0) * self.width
    }

    fn py(&self, v: f64) -> f64 {
        self.top + self.height - (v - self.y.0) / (self.y.1 - self.y.0) * self.height
    }

    /// The axes, five ticks on each (labelled by `x_tick`, `y_tick`), axis labels and a title.
    fn draw(
        &self,
        svg: &mut String,
        title: &str,
        (x_label, x_tick): (&str, &dyn Fn(f64) -> String),
        (y_label, y_tick): (&str, &dyn Fn(f64) -> String),
    ) {
        let (l, t, w, h) = (self.left, self.top, self.width, self.height);
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="middle" font-size="14">{}</text>"#,
            l + w / 2.0,
            t - 14.0,
            escape(title)
        );
        let _ = writeln!(
            svg,
            r#"<path d="M{l},{t} V{} H{}" fill="none" stroke="black"/>"#,
            t + h,
            l + w
        );
        for i in 0..=4 {
            let f = i as f64 / 4.0;
            let (tx, ty) = (
                self.x.0 + (self.x.1 - self.x.0) * f,
                self.y.0 + (self.y.1 - self.y.0) * f,
            );
            let _ = writeln!(
                svg,
                r#"<text x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
                self.px(tx),
                t + h + 16.0,
                x_tick(tx)
            );
            let _ = writeln!(
                svg,
                r#"<text x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
                l - 6.0,
                self.py(ty) + 4.0,
                y_tick(ty)
            );
        }
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
            l + w / 2.0,
            t + h + 40.0,
            escape(x_label)
        );
        let (yx, yy) = (l - 46.0, t + h / 2.0);
        let _ = writeln!(
            svg,
            r#"<text x="{yx}" y="{yy}" text-anchor="middle" transform="rotate(-90 {yx} {yy})">{}</text>"#,
            escape(y_label)
        );
    }
}

/// (min, max) of `v`, widened to a unit interval when it is a single value.
fn range(v: &[f64]) -> (f64, f64) {
    let (lo, hi) = v
        .iter()
        .filter(|t| t.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &t| {
            (a.min(t), b.max(t))
        });
    if !lo.is_finite() {
        (0.0, 1.0)
    } else if hi > lo {
        (lo, hi)
    } else {
        (lo - 0.5, lo + 0.5)
    }
}

fn open(w: f64, h: f64) -> String {
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    svg
}

fn save(path: &Path, mut svg: String) -> anyhow::Result<()> {
    svg.push_str("</svg>\n");
    std::fs::write(path, svg).with_context(|| format!("could not write {}", path.display()))
}

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
    let ys: Vec<f64> = y
        .iter()
        .map(|&v| if log_y { v.max(FLOOR).log10() } else { v })
        .collect();
    let frame = Frame {
        left: 60.0,
        top: 60.0,
        width: 520.0,
        height: 280.0,
        x: range(x),
        y: range(&ys),
    };
    let mut svg = open(640.0, 400.0);
    let y_tick = |v: f64| if log_y { format!("1e{v:.1}") } else { tick(v) };
    frame.draw(&mut svg, title, (x_label, &tick), (y_label, &y_tick));
    let points: Vec<String> = x
        .iter()
        .zip(&ys)
        .map(|(&a, &b)| format!("{:.2},{:.2}", frame.px(a), frame.py(b)))
        .collect();
    let _ = writeln!(
        svg,
        r#"<polyline fill="none" stroke="steelblue" stroke-width="1.5" points="{}"/>"#,
        points.join(" ")
    );
    save(path, svg)
}

/// One panel of a scatter plot.
pub struct Panel {
    /// The panel's title.
    pub title: String,
    /// Horizontal axis label.
    pub x_label: String,
    /// Vertical axis label.
    pub y_label: String,
    /// The points.
    pub points: Vec<(f64, f64)>,
}

/// Writes the panels side by side (three per row) as one SVG scatter plot. A panel whose x
/// values are all positive and span more than a factor of 100 gets a log₁₀ x axis (sharpness
/// values of a family often do).
pub fn scatter_svg(path: &Path, panels: &[Panel]) -> anyhow::Result<()> {
    let (pw, ph) = (360.0, 300.0);
    let cols = panels.len().clamp(1, 3);
    let rows = panels.len().div_ceil(cols).max(1);
    let mut svg = open(pw * cols as f64, ph * rows as f64);
    for (k, panel) in panels.iter().enumerate() {
        let xs: Vec<f64> = panel.points.iter().map(|p| p.0).collect();
        let ys: Vec<f64> = panel.points.iter().map(|p| p.1).collect();
        let (lo, hi) = range(&xs);
        let log_x = lo > 0.0 && hi / lo > 100.0;
        let xs: Vec<f64> = if log_x {
            xs.iter().map(|v| v.log10()).collect()
        } else {
            xs
        };
        let frame = Frame {
            left: (k % cols) as f64 * pw + 70.0,
            top: (k / cols) as f64 * ph + 40.0,
            width: pw - 100.0,
            height: ph - 100.0,
            x: range(&xs),
            y: range(&ys),
        };
        let x_tick = |v: f64| if log_x { format!("1e{v:.1}") } else { tick(v) };
        frame.draw(
            &mut svg,
            &panel.title,
            (&panel.x_label, &x_tick),
            (&panel.y_label, &tick),
        );
        for (&a, &b) in xs.iter().zip(&ys) {
            if a.is_finite() && b.is_finite() {
                let _ = writeln!(
                    svg,
                    r#"<circle cx="{:.2}" cy="{:.2}" r="3.5" fill="steelblue" fill-opacity="0.8"/>"#,
                    frame.px(a),
                    frame.py(b)
                );
            }
        }
    }
    save(path, svg)
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
    fn every_scatter_point_lies_in_its_panel() {
        let path =
            std::env::temp_dir().join(format!("geosharp-scatter-{}.svg", std::process::id()));
        let panel = |title: &str, points: Vec<(f64, f64)>| Panel {
            title: title.into(),
            x_label: "sharpness".into(),
            y_label: "gap".into(),
            points,
        };
        let wide: Vec<(f64, f64)> = (0..6).map(|i| (10f64.powi(i), i as f64)).collect();
        let narrow: Vec<(f64, f64)> = (0..6).map(|i| (1.0 + i as f64, -(i as f64))).collect();
        scatter_svg(&path, &[panel("τ = 1", wide), panel("τ = −1", narrow)]).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_file(&path).ok();
        assert!(
            svg.contains("τ = 1") && svg.contains("1e5.0"),
            "log axis for 6 decades"
        );
        let centres: Vec<(f64, f64)> = svg
            .split("<circle cx=\"")
            .skip(1)
            .map(|c| {
                let (x, rest) = c.split_once('"').unwrap();
                let y = rest
                    .split("cy=\"")
                    .nth(1)
                    .unwrap()
                    .split('"')
                    .next()
                    .unwrap();
                (x.parse().unwrap(), y.parse().unwrap())
            })
            .collect();
        assert_eq!(centres.len(), 12);
        for (i, (x, y)) in centres.into_iter().enumerate() {
            let left = if i < 6 { 70.0 } else { 430.0 };
            assert!(
                (left..=left + 260.0).contains(&x) && (40.0..=240.0).contains(&y),
                "{x} {y}"
            );
        }
    }

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
