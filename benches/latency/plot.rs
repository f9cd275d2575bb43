//! A latency-by-percentile plot in plain SVG: x is the percentile on a 1/(1−p) scale (50 % to
//! 99.99 %), y the latency on a log scale; one curve per run, optional horizontal lines (a
//! deadline).

use std::fmt::Write as _;

/// One curve: a name and (percentile in 0..100, latency in µs) points.
pub(crate) struct Curve {
    pub(crate) name: String,
    pub(crate) points: Vec<(f64, f64)>,
}

const W: f64 = 1200.0;
const H: f64 = 520.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 420.0;
const TOP: f64 = 30.0;
const BOTTOM: f64 = 60.0;
const COLORS: [&str; 10] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf",
];

/// x position of percentile `p` (50..=99.99).
fn x_of(p: f64) -> f64 {
    let v = (1.0 / (1.0 - p.min(99.99) / 100.0)).log10();
    let (lo, hi) = (2f64.log10(), 10_000f64.log10());
    LEFT + (v - lo) / (hi - lo) * (W - LEFT - RIGHT)
}

/// Renders the plot; `lines` are (label, latency in µs) drawn across.
pub(crate) fn svg(title: &str, curves: &[Curve], lines: &[(String, f64)]) -> String {
    let values = curves
        .iter()
        .flat_map(|c| c.points.iter().map(|&(_, v)| v))
        .chain(lines.iter().map(|&(_, v)| v))
        .filter(|v| *v > 0.0);
    let (mut lo, mut hi) = values.fold((f64::MAX, 1.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if lo == f64::MAX {
        lo = 1.0;
    }
    lo = 10f64.powf(lo.max(1.0).log10().floor());
    hi = 10f64.powf(hi.log10().ceil()).max(lo * 10.0);
    let y_of = |v: f64| {
        let v = v.max(lo);
        TOP + (1.0 - (v.log10() - lo.log10()) / (hi.log10() - lo.log10())) * (H - TOP - BOTTOM)
    };
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="18" font-size="14" text-anchor="middle">{}</text>"#,
        (W - RIGHT + LEFT) / 2.0,
        escape(title)
    );
    // Grid and axes.
    for p in [50.0, 90.0, 99.0, 99.9, 99.99] {
        let x = x_of(p);
        let _ = writeln!(
            s,
            r##"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{:.1}" stroke="#ddd"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{p}%</text>"##,
            H - BOTTOM,
            H - BOTTOM + 18.0
        );
    }
    let mut decade = lo;
    while decade <= hi * 1.0001 {
        let y = y_of(decade);
        let label = if decade >= 1_000_000.0 {
            format!("{} s", decade / 1e6)
        } else if decade >= 1000.0 {
            format!("{} ms", decade / 1e3)
        } else {
            format!("{decade} µs")
        };
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{label}</text>"##,
            W - RIGHT,
            LEFT - 6.0,
            y + 4.0
        );
        decade *= 10.0;
    }
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">percentile</text><text x="16" y="{:.1}" transform="rotate(-90 16 {:.1})" text-anchor="middle">latency</text>"#,
        (W - RIGHT + LEFT) / 2.0,
        H - 12.0,
        (H - BOTTOM + TOP) / 2.0,
        (H - BOTTOM + TOP) / 2.0
    );
    for (label, v) in lines {
        let y = y_of(*v);
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#000" stroke-dasharray="6 4"/><text x="{:.1}" y="{:.1}">{}</text>"##,
            W - RIGHT,
            LEFT + 4.0,
            y - 4.0,
            escape(label)
        );
    }
    let mut pair = 0;
    for (i, curve) in curves.iter().enumerate() {
        // A peer's curve takes the colour of the rtserve curve before it.
        if !curve.name.contains("peer") {
            pair += 1;
        }
        let color = COLORS[(pair + COLORS.len() - 1) % COLORS.len()];
        // The peer's curves are dashed, so that each pair reads as one colour, two styles.
        let dash = if curve.name.contains("peer") {
            r#" stroke-dasharray="7 4""#
        } else {
            ""
        };
        let points: Vec<String> = curve
            .points
            .iter()
            .filter(|&&(p, _)| (50.0..=99.99).contains(&p))
            .map(|&(p, v)| format!("{:.1},{:.1}", x_of(p), y_of(v)))
            .collect();
        let _ = writeln!(
            s,
            r#"<polyline fill="none" stroke="{color}" stroke-width="2"{dash} points="{}"/>"#,
            points.join(" ")
        );
        let ly = TOP + 16.0 * i as f64 + 8.0;
        let lx = W - RIGHT + 12.0;
        let _ = writeln!(
            s,
            r#"<line x1="{lx}" y1="{ly}" x2="{}" y2="{ly}" stroke="{color}" stroke-width="3"{dash}/><text x="{}" y="{}">{}</text>"#,
            lx + 18.0,
            lx + 24.0,
            ly + 4.0,
            escape(&curve.name)
        );
    }
    s.push_str("</svg>\n");
    s
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Percentiles at which curves are sampled: dense toward the tail.
pub(crate) fn percentiles() -> Vec<f64> {
    let mut ps = Vec::new();
    let mut v: f64 = 2.0;
    while v <= 10_000.0 {
        ps.push(100.0 * (1.0 - 1.0 / v));
        v *= 1.25;
    }
    ps.push(99.99);
    ps
}
