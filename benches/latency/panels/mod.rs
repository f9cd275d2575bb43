//! The suite's pictures: one chart per question, each with a caption that gives the answer,
//! drawn from plain numbers ([`Results`]) so that a test can draw them from a fixed set.

mod overload;

use crate::chart::{Axis, Chart, Mark, PALETTE, Scale, Series};

/// (percentile 50..99.99, latency in µs) points of one run.
pub(crate) type Points = Vec<(f64, f64)>;

/// What the pictures are drawn from.
#[derive(Clone, Debug, Default)]
pub(crate) struct Results {
    /// Date, commit, machine and the peer's version.
    pub(crate) footer: String,
    /// The peer's name, e.g. "nginx 1.22.1".
    pub(crate) peer: String,
    /// Keep-alive `/hello`, per load level: (level, rtserve, the peer at the same rate).
    pub(crate) keep_alive: Vec<(String, Points, Option<Points>)>,
    /// A new connection per request: rtserve, then each peer by name.
    pub(crate) new_connection: Option<(Points, Vec<(String, Points)>)>,
    /// `/hello` alone and beside a loaded pool: (what, points); the first is the baseline.
    pub(crate) isolation: Vec<(String, Points)>,
    /// Why the isolation baseline is known to be spoiled by the host, if the suite found it
    /// so after repeating it (a baseline worse than a loaded curve is taken as spoiled here
    /// too).
    pub(crate) isolation_spoiled: Option<String>,
    /// The overload sweep: (offered, goodput, responses later than the deadline + 1 ms), the
    /// first two as multiples of C, the last as a share of responses.
    pub(crate) goodput: Vec<(f64, f64, f64)>,
    pub(crate) burst: Option<Burst>,
    /// The overload sweep again, quiet and beside each noisy neighbour, goodput against the
    /// C measured under the same noise.
    pub(crate) noise: Vec<NoiseCurve>,
    /// Server-side deadline lateness: (bucket's upper bound in µs, 503s in it); the last
    /// bucket's bound is `u64::MAX` for those past every bound.
    pub(crate) lateness: Vec<(u64, u64)>,
}

/// One noise setting's overload sweep.
#[derive(Clone, Debug)]
pub(crate) struct NoiseCurve {
    /// "quiet", or the setting, e.g. "noise 1/4 ms FIFO".
    pub(crate) label: String,
    /// C measured beside the same neighbour, 200s per second.
    pub(crate) capacity: f64,
    /// (offered, goodput), both as multiples of this curve's C.
    pub(crate) points: Vec<(f64, f64)>,
}

/// A burst run, per window.
#[derive(Clone, Debug)]
pub(crate) struct Burst {
    /// (window start in s, goodput in req/s, offered in req/s).
    pub(crate) windows: Vec<(f64, f64, f64)>,
    /// When the burst ran, in s.
    pub(crate) span: (f64, f64),
    pub(crate) capacity: f64,
    pub(crate) window_ms: u64,
}

/// Percentiles at which runs are sampled: dense toward the tail.
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

fn percentile_axis() -> Axis {
    Axis {
        label: "percentile (each nine gets the same width)".to_owned(),
        scale: Scale::Percentile,
        unit: "",
        ticks: Vec::new(),
    }
}

/// A log latency axis covering `points`.
fn latency_axis<'a>(points: impl Iterator<Item = &'a Points>) -> Axis {
    let (lo, hi) = points
        .flatten()
        .map(|&(_, v)| v.max(1.0))
        .fold((f64::MAX, 1.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let lo = if lo == f64::MAX { 1.0 } else { lo };
    Axis {
        label: "latency, µs (log scale)".to_owned(),
        scale: Scale::Log {
            min: 10f64.powf(lo.log10().floor()),
            max: 10f64.powf(hi.log10().ceil()).max(10.0),
        },
        unit: "",
        ticks: Vec::new(),
    }
}

/// The latency at percentile `p` in `points` (the nearest point at or above it).
fn at(points: &Points, p: f64) -> f64 {
    points
        .iter()
        .find(|&&(q, _)| q >= p)
        .or_else(|| points.last())
        .map_or(0.0, |&(_, v)| v)
}

fn range(values: &[f64]) -> String {
    let lo = values.iter().copied().fold(f64::MAX, f64::min);
    let hi = values.iter().copied().fold(f64::MIN, f64::max);
    if values.is_empty() {
        "—".to_owned()
    } else if (hi - lo).abs() < 0.005 {
        format!("{lo:.2}×")
    } else {
        format!("{lo:.2}–{hi:.2}×")
    }
}

/// Every panel, with its file name.
pub(crate) fn panels(results: &Results) -> Vec<(&'static str, Chart)> {
    let mut out = Vec::new();
    let peer = if results.peer.is_empty() {
        "the peer"
    } else {
        &results.peer
    };
    if !results.keep_alive.is_empty() {
        out.push(("keep-alive", keep_alive(results, peer)));
    }
    if let Some(runs) = &results.new_connection {
        out.push(("new-connection", new_connection(results, runs, peer)));
    }
    if !results.isolation.is_empty() {
        out.push(("isolation", isolation(results)));
    }
    if !results.goodput.is_empty() {
        out.push(("goodput", overload::goodput(results)));
        out.push(("misses", overload::misses(results)));
    }
    if !results.noise.is_empty() {
        out.push(("noise", overload::noise(results)));
    }
    if let Some(burst) = &results.burst {
        out.push(("burst", overload::burst_timeline(results, burst)));
    }
    if !results.lateness.is_empty() {
        out.push(("lateness", overload::lateness(results)));
    }
    out
}

fn keep_alive(results: &Results, peer: &str) -> Chart {
    let mut series = Vec::new();
    let mut ratios = Vec::new();
    for (i, (level, ours, theirs)) in results.keep_alive.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        series.push(Series {
            name: format!("rtserve, {level}"),
            color,
            mark: Mark::Solid,
            points: ours.clone(),
        });
        if let Some(theirs) = theirs {
            series.push(Series {
                name: format!("{peer}, {level}"),
                color,
                mark: Mark::Dashed,
                points: theirs.clone(),
            });
            ratios.push(at(ours, 99.0) / at(theirs, 99.0).max(1.0));
        }
    }
    let caption = if ratios.is_empty() {
        "rtserve alone: one curve per load level.".to_owned()
    } else {
        format!(
            "rtserve's p99 was {} {peer}'s across the load levels (solid: rtserve; dashed: \
             {peer}; one colour per level, the same rate for both).",
            range(&ratios)
        )
    };
    let all = results
        .keep_alive
        .iter()
        .flat_map(|(_, a, b)| std::iter::once(a).chain(b));
    Chart {
        title: format!(
            "Keep-alive /hello: how does rtserve's latency compare with {peer}'s at each load?"
        ),
        caption,
        x: percentile_axis(),
        y: latency_axis(all),
        series,
        spans: Vec::new(),
        footer: results.footer.clone(),
    }
}

fn new_connection(
    results: &Results,
    (ours, theirs): &(Points, Vec<(String, Points)>),
    peer: &str,
) -> Chart {
    let mut series = vec![Series {
        name: "rtserve".to_owned(),
        color: PALETTE[0],
        mark: Mark::Solid,
        points: ours.clone(),
    }];
    let mut ratios = Vec::new();
    for (i, (name, points)) in theirs.iter().enumerate() {
        series.push(Series {
            name: name.clone(),
            // rtserve has the first colour.
            color: PALETTE[(i + 1) % PALETTE.len()],
            mark: Mark::Dashed,
            points: points.clone(),
        });
        ratios.push(format!(
            "{} and {} {name}'s",
            range(&[at(ours, 50.0) / at(points, 50.0).max(1.0)]),
            range(&[at(ours, 99.0) / at(points, 99.0).max(1.0)])
        ));
    }
    let caption = if ratios.is_empty() {
        "rtserve alone.".to_owned()
    } else {
        format!(
            "With a new connection for every request, rtserve's p50 and p99 were {}.",
            ratios.join("; ")
        )
    };
    Chart {
        title: format!(
            "A new connection per request: is rtserve's handshake-to-answer path as fast as {peer}'s?"
        ),
        caption,
        x: percentile_axis(),
        y: latency_axis(std::iter::once(ours).chain(theirs.iter().map(|(_, p)| p))),
        series,
        spans: Vec::new(),
        footer: results.footer.clone(),
    }
}

fn isolation(results: &Results) -> Chart {
    let series: Vec<Series> = results
        .isolation
        .iter()
        .enumerate()
        .map(|(i, (name, points))| Series {
            name: name.clone(),
            color: PALETTE[i % PALETTE.len()],
            mark: if i == 0 { Mark::Solid } else { Mark::Dashed },
            points: points.clone(),
        })
        .collect();
    let base = results
        .isolation
        .first()
        .map(|(_, p)| at(p, 99.0))
        .unwrap_or(1.0);
    let others = results.isolation.get(1..).unwrap_or_default();
    let best_loaded = others
        .iter()
        .map(|(_, p)| at(p, 99.0))
        .fold(f64::MAX, f64::min);
    // The baseline has nothing beside it: worse than a loaded curve, it caught a stall of
    // the host's, and a ratio against it would present that stall as the server's finding.
    let spoiled = results.isolation_spoiled.clone().or_else(|| {
        (base > BASELINE_SLACK * best_loaded.max(1.0)).then(|| {
            format!(
                "its p99 of {} is {:.1}× the best loaded curve's",
                micros(base),
                base / best_loaded.max(1.0)
            )
        })
    });
    let baseline = results
        .isolation
        .first()
        .map_or("", |(name, _)| name.as_str());
    let caption = if let Some(why) = spoiled {
        let p99s: Vec<String> = others
            .iter()
            .map(|(name, p)| format!("{name}, {}", micros(at(p, 99.0))))
            .collect();
        format!(
            "The baseline ({baseline}) was spoiled by the host ({why}), so no ratio against it              is given. /hello's p99 beside the loaded pool: {}.",
            if p99s.is_empty() {
                "—".to_owned()
            } else {
                p99s.join("; ")
            }
        )
    } else {
        let ratios: Vec<String> = others
            .iter()
            .map(|(name, p)| format!("{name}, {:.2}×", at(p, 99.0) / base.max(1.0)))
            .collect();
        format!(
            "/hello's p99 against the first curve's ({baseline}): {}.",
            if ratios.is_empty() {
                "—".to_owned()
            } else {
                ratios.join("; ")
            }
        )
    };
    Chart {
        title: "Isolation: does an overloaded worker pool slow down the inline routes?".to_owned(),
        caption,
        x: percentile_axis(),
        y: latency_axis(results.isolation.iter().map(|(_, p)| p)),
        series,
        spans: Vec::new(),
        footer: results.footer.clone(),
    }
}

/// `/hello` alone should do no worse than beside 16 outstanding `/slow` jobs: a baseline whose
/// p99 is more than this many times a loaded curve's caught a stall of the host's, not the
/// server's. The suite repeats such a baseline, and a picture does not present it as a
/// finding.
pub(crate) const BASELINE_SLACK: f64 = 1.5;

/// A latency in µs, as the tables write it.
fn micros(v: f64) -> String {
    if v >= 10_000.0 {
        format!("{:.1} ms", v / 1000.0)
    } else {
        format!("{v:.0} µs")
    }
}
