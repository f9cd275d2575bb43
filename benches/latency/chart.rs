//! One chart as a standalone SVG: a title that asks the question, a caption that gives the
//! answer, axes with units, lines (solid or dashed), bars, shaded spans, a legend under the
//! plot (so nothing is clipped at the right edge), and a footer saying where the numbers come
//! from. Colours are the Okabe–Ito palette, which stays distinct for colour-blind readers.
//!
//! Hand-written rather than drawn with a plotting crate: the six panels need three kinds of
//! mark and two axis mappings, which this does in a few hundred lines with no dependency, and
//! the output is small, diffable text.

use std::fmt::Write as _;

/// The Okabe–Ito palette, black last.
pub(crate) const PALETTE: [&str; 8] = [
    "#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000",
];

/// Width of the view box; text is laid out for it.
pub(crate) const WIDTH: f64 = 800.0;
/// Width of a character of 12 px text, as the layout and the tests reckon it (an upper bound
/// for sans-serif text).
pub(crate) const CHAR_WIDTH: f64 = 7.0;

const LEFT: f64 = 80.0;
const RIGHT: f64 = 30.0;
const PLOT_HEIGHT: f64 = 300.0;
const LINE: f64 = 16.0;

/// How values map onto an axis.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Scale {
    Linear {
        min: f64,
        max: f64,
    },
    /// Base 10; `min` > 0.
    Log {
        min: f64,
        max: f64,
    },
    /// Percentiles (50 to 99.99) on a 1/(1−p) scale, so that each nine gets the same room.
    Percentile,
}

impl Scale {
    /// Where `v` falls, from 0 (start of the axis) to 1 (end), clamped.
    fn fraction(self, v: f64) -> f64 {
        let f = match self {
            Self::Linear { min, max } => (v - min) / (max - min),
            Self::Log { min, max } => {
                (v.max(min).log10() - min.log10()) / (max.log10() - min.log10())
            }
            Self::Percentile => {
                let at = |p: f64| (1.0 / (1.0 - p.clamp(50.0, 99.99) / 100.0)).log10();
                (at(v) - at(50.0)) / (at(99.99) - at(50.0))
            }
        };
        if f.is_finite() {
            f.clamp(0.0, 1.0)
        } else {
            0.0
        }
    }

    /// Ticks for the axis: (value, label).
    fn ticks(self, unit: &str) -> Vec<(f64, String)> {
        match self {
            Self::Percentile => [50.0, 90.0, 99.0, 99.9, 99.99]
                .iter()
                .map(|&p| (p, format!("p{p}")))
                .collect(),
            Self::Log { min, max } => {
                let mut ticks = Vec::new();
                let mut v = 10f64.powf(min.log10().ceil());
                while v <= max * 1.000_001 {
                    ticks.push((v, format!("{}{unit}", human(v))));
                    v *= 10.0;
                }
                ticks
            }
            Self::Linear { min, max } => {
                let step = nice_step((max - min) / 5.0);
                let mut ticks = Vec::new();
                let mut v = (min / step).ceil() * step;
                while v <= max + step * 1e-6 {
                    ticks.push((v, format!("{}{unit}", human(v))));
                    v += step;
                }
                ticks
            }
        }
    }
}

/// 1, 2 or 5 times a power of ten, at least `raw`.
fn nice_step(raw: f64) -> f64 {
    let power = 10f64.powf(raw.max(1e-9).log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * power)
        .find(|&s| s >= raw)
        .unwrap_or(10.0 * power)
}

/// A number as a short label: 1500 → 1.5k, 0.25 → 0.25.
fn human(v: f64) -> String {
    let trim = |s: String| {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_owned()
        } else {
            s
        }
    };
    if v.abs() >= 1e6 {
        format!("{}M", trim(format!("{:.1}", v / 1e6)))
    } else if v.abs() >= 1e3 {
        format!("{}k", trim(format!("{:.1}", v / 1e3)))
    } else {
        trim(format!("{v:.2}"))
    }
}

/// An axis: what it shows (with its unit), its scale, and the unit after tick labels.
#[derive(Clone, Debug)]
pub(crate) struct Axis {
    pub(crate) label: String,
    pub(crate) scale: Scale,
    pub(crate) unit: &'static str,
    /// Tick labels of its own, at these values, instead of the scale's.
    pub(crate) ticks: Vec<(f64, String)>,
}

impl Axis {
    fn ticks(&self) -> Vec<(f64, String)> {
        if self.ticks.is_empty() {
            self.scale.ticks(self.unit)
        } else {
            self.ticks.clone()
        }
    }
}

/// How a series is drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mark {
    Solid,
    Dashed,
    /// A bar from zero at each point (the points' x are bar centres, in axis units; `width`
    /// is each bar's share of the plot width).
    Bars,
}

/// One named series.
#[derive(Clone, Debug)]
pub(crate) struct Series {
    pub(crate) name: String,
    pub(crate) color: &'static str,
    pub(crate) mark: Mark,
    pub(crate) points: Vec<(f64, f64)>,
}

/// A chart: one question, one answer.
#[derive(Clone, Debug)]
pub(crate) struct Chart {
    /// The question, as a title.
    pub(crate) title: String,
    /// The answer, one or two sentences.
    pub(crate) caption: String,
    pub(crate) x: Axis,
    pub(crate) y: Axis,
    pub(crate) series: Vec<Series>,
    /// Shaded spans of x, with a label (a burst, say).
    pub(crate) spans: Vec<(f64, f64, String)>,
    /// Where the numbers come from: date, commit, machine, the peer's version.
    pub(crate) footer: String,
}

/// Splits `text` into lines of at most `width` characters, at spaces.
pub(crate) fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// Characters of 12 px text that fit across the view box, margins aside.
fn chars_across() -> usize {
    ((WIDTH - 2.0 * 16.0) / CHAR_WIDTH) as usize
}

impl Chart {
    /// The chart as an SVG document.
    pub(crate) fn svg(&self) -> String {
        let mut body = String::new();
        let across = chars_across();
        let mut y = 24.0;
        // Title (15 px bold: 15/12 of the width, and a tenth more for bold) and caption.
        for line in wrap(&self.title, (across as f64 * 12.0 / 15.0 / 1.1) as usize) {
            text(
                &mut body,
                16.0,
                y,
                "start",
                &line,
                r#"font-size="15" font-weight="bold""#,
            );
            y += LINE + 2.0;
        }
        for line in wrap(&self.caption, across) {
            text(&mut body, 16.0, y, "start", &line, r##"fill="#333""##);
            y += LINE;
        }
        let top = y + 10.0;
        let (left, right) = (LEFT, WIDTH - RIGHT);
        let bottom = top + PLOT_HEIGHT;
        let xf = |v: f64| left + self.x.scale.fraction(v) * (right - left);
        let yf = |v: f64| bottom - self.y.scale.fraction(v) * (bottom - top);

        for (from, to, label) in &self.spans {
            let (a, b) = (xf(*from), xf(*to));
            let _ = writeln!(
                body,
                r##"<rect x="{a:.1}" y="{top:.1}" width="{:.1}" height="{PLOT_HEIGHT:.1}" fill="#DDDDDD"/>"##,
                (b - a).max(1.0)
            );
            text(
                &mut body,
                (a + b) / 2.0,
                top + 14.0,
                "middle",
                label,
                r##"fill="#555""##,
            );
        }
        // Grid, ticks and axis labels.
        for (v, label) in self.y.ticks() {
            let py = yf(v);
            let _ = writeln!(
                body,
                r##"<line x1="{left}" y1="{py:.1}" x2="{right}" y2="{py:.1}" stroke="#E5E5E5"/>"##
            );
            text(&mut body, left - 6.0, py + 4.0, "end", &label, "");
        }
        for (v, label) in self.x.ticks() {
            let px = xf(v);
            let _ = writeln!(
                body,
                r##"<line x1="{px:.1}" y1="{top}" x2="{px:.1}" y2="{bottom}" stroke="#E5E5E5"/>"##
            );
            text(&mut body, px, bottom + 16.0, "middle", &label, "");
        }
        let _ = writeln!(
            body,
            r##"<rect x="{left}" y="{top}" width="{:.1}" height="{PLOT_HEIGHT}" fill="none" stroke="#888"/>"##,
            right - left
        );
        text(
            &mut body,
            (left + right) / 2.0,
            bottom + 36.0,
            "middle",
            &self.x.label,
            "",
        );
        let _ = writeln!(
            body,
            r#"<text x="18" y="{:.1}" text-anchor="middle" transform="rotate(-90 18 {:.1})">{}</text>"#,
            (top + bottom) / 2.0,
            (top + bottom) / 2.0,
            escape(&self.y.label)
        );

        // The series.
        let bars = self
            .series
            .iter()
            .filter(|s| s.mark == Mark::Bars)
            .count()
            .max(1);
        let mut bar_index = 0;
        for series in &self.series {
            let name = escape(&series.name);
            match series.mark {
                Mark::Solid | Mark::Dashed => {
                    let mut d = String::new();
                    for (i, &(x, v)) in series.points.iter().enumerate() {
                        let _ = write!(
                            d,
                            "{}{:.1},{:.1} ",
                            if i == 0 { "M" } else { "L" },
                            xf(x),
                            yf(v)
                        );
                    }
                    let dash = if series.mark == Mark::Dashed {
                        r#" stroke-dasharray="6 4""#
                    } else {
                        ""
                    };
                    let _ = writeln!(
                        body,
                        r#"<path data-series="{name}" d="{}" fill="none" stroke="{}" stroke-width="2"{dash}/>"#,
                        d.trim_end(),
                        series.color
                    );
                }
                Mark::Bars => {
                    let slots = series.points.len().max(1) as f64;
                    let slot = (right - left) / slots;
                    let width = slot * 0.8 / bars as f64;
                    let mut d = String::new();
                    for (i, &(_, v)) in series.points.iter().enumerate() {
                        let x0 = left + slot * i as f64 + slot * 0.1 + width * bar_index as f64;
                        let (y0, y1) = (yf(v), bottom);
                        let _ = write!(
                            d,
                            "M{x0:.1},{y1:.1} L{x0:.1},{y0:.1} L{:.1},{y0:.1} L{:.1},{y1:.1} Z ",
                            x0 + width,
                            x0 + width
                        );
                    }
                    let _ = writeln!(
                        body,
                        r#"<path data-series="{name}" d="{}" fill="{}"/>"#,
                        d.trim_end(),
                        series.color
                    );
                    bar_index += 1;
                }
            }
        }

        // The legend, under the plot, as many entries a row as fit.
        let mut y = bottom + 60.0;
        let mut x = left;
        for series in &self.series {
            let width = 34.0 + series.name.chars().count() as f64 * CHAR_WIDTH + 18.0;
            if x + width > WIDTH - 16.0 && x > left {
                x = left;
                y += LINE + 4.0;
            }
            let dash = match series.mark {
                Mark::Dashed => r#" stroke-dasharray="6 4""#,
                _ => "",
            };
            let stroke = if series.mark == Mark::Bars { 8 } else { 2 };
            let _ = writeln!(
                body,
                r#"<line x1="{x:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="{}" stroke-width="{stroke}"{dash}/>"#,
                y - 4.0,
                x + 26.0,
                y - 4.0,
                series.color
            );
            text(
                &mut body,
                x + 32.0,
                y,
                "start",
                &series.name,
                r#"class="legend""#,
            );
            x += width;
        }
        y += LINE + 8.0;
        for line in wrap(&self.footer, across + across / 5) {
            text(
                &mut body,
                16.0,
                y,
                "start",
                &line,
                r##"font-size="10" fill="#666""##,
            );
            y += LINE - 2.0;
        }
        let height = (y + 6.0).ceil();
        format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {WIDTH} {height}\" \
             width=\"{WIDTH}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"12\">\n\
             <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n{body}</svg>\n"
        )
    }
}

fn text(out: &mut String, x: f64, y: f64, anchor: &str, content: &str, extra: &str) {
    let _ = writeln!(
        out,
        r#"<text x="{x:.1}" y="{y:.1}" text-anchor="{anchor}" {extra}>{}</text>"#,
        escape(content)
    );
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
