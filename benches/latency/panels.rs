//! The suite's pictures: one chart per question, each with a caption that gives the answer,
//! drawn from plain numbers ([`Results`]) so that a test can draw them from a fixed set.

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
    /// A new connection per request: rtserve, the peer.
    pub(crate) new_connection: Option<(Points, Option<Points>)>,
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
        out.push(("goodput", goodput(results)));
        out.push(("misses", misses(results)));
    }
    if !results.noise.is_empty() {
        out.push(("noise", noise(results)));
    }
    if let Some(burst) = &results.burst {
        out.push(("burst", burst_timeline(results, burst)));
    }
    if !results.lateness.is_empty() {
        out.push(("lateness", lateness(results)));
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
    (ours, theirs): &(Points, Option<Points>),
    peer: &str,
) -> Chart {
    let mut series = vec![Series {
        name: "rtserve".to_owned(),
        color: PALETTE[0],
        mark: Mark::Solid,
        points: ours.clone(),
    }];
    let caption = match theirs {
        Some(theirs) => {
            series.push(Series {
                name: peer.to_owned(),
                color: PALETTE[0],
                mark: Mark::Dashed,
                points: theirs.clone(),
            });
            format!(
                "With a new connection for every request, rtserve's p50 was {} and its p99 {} {peer}'s.",
                range(&[at(ours, 50.0) / at(theirs, 50.0).max(1.0)]),
                range(&[at(ours, 99.0) / at(theirs, 99.0).max(1.0)])
            )
        }
        None => "rtserve alone.".to_owned(),
    };
    Chart {
        title: format!(
            "A new connection per request: is rtserve's handshake-to-answer path as fast as {peer}'s?"
        ),
        caption,
        x: percentile_axis(),
        y: latency_axis(std::iter::once(ours).chain(theirs)),
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

/// Offered load in multiples of C, to whole multiples so that the last run has its tick.
fn offered_axis(max_offered: f64) -> Axis {
    Axis {
        label: "offered load, multiple of capacity C".to_owned(),
        scale: Scale::Linear {
            min: 0.0,
            max: max_offered.max(1.0).ceil(),
        },
        unit: "×",
        ticks: Vec::new(),
    }
}

fn goodput(results: &Results) -> Chart {
    let max_offered = results.goodput.iter().map(|g| g.0).fold(1.0, f64::max);
    let ideal: Vec<(f64, f64)> = [0.0, 1.0, max_offered]
        .iter()
        .map(|&x| (x, x.min(1.0)))
        .collect();
    let past: Vec<f64> = results
        .goodput
        .iter()
        .filter(|g| g.0 > 1.01)
        .map(|g| g.1)
        .collect();
    let caption = if past.is_empty() {
        "No run past capacity.".to_owned()
    } else {
        let lo = past.iter().copied().fold(f64::MAX, f64::min);
        let hi = past.iter().copied().fold(f64::MIN, f64::max);
        format!(
            "Past capacity, goodput stayed at {:.0}–{:.0} % of C up to {max_offered:.1}× C, \
             against the ideal of 100 %. (How many responses missed the deadline: the next \
             picture.)",
            100.0 * lo,
            100.0 * hi
        )
    };
    Chart {
        title: "Overload: how much of capacity is still served within the deadline as offered load grows?"
            .to_owned(),
        caption,
        x: offered_axis(max_offered),
        y: Axis {
            label: "goodput, multiple of C".to_owned(),
            scale: Scale::Linear { min: 0.0, max: 1.2 },
            unit: "",
            ticks: Vec::new(),
        },
        series: vec![
            Series {
                name: "ideal: min(offered, C)".to_owned(),
                color: PALETTE[7],
                mark: Mark::Dashed,
                points: ideal,
            },
            Series {
                name: "goodput (2xx within the deadline)".to_owned(),
                color: PALETTE[0],
                mark: Mark::Solid,
                points: results.goodput.iter().map(|g| (g.0, g.1)).collect(),
            },
        ],
        spans: Vec::new(),
        footer: results.footer.clone(),
    }
}

fn misses(results: &Results) -> Chart {
    let max_offered = results.goodput.iter().map(|g| g.0).fold(1.0, f64::max);
    let worst = results
        .goodput
        .iter()
        .map(|g| 100.0 * g.2)
        .fold(0.0, f64::max);
    Chart {
        title: "Overload: how many responses, 200s and 503s alike, come later than the deadline?"
            .to_owned(),
        caption: format!(
            "At most {worst:.1} % of all responses came later than the deadline + 1 ms, at any \
             offered load up to {max_offered:.1}× C{}",
            if worst <= 2.5 {
                ": what cannot be served in time is refused in time."
            } else {
                "."
            }
        ),
        x: offered_axis(max_offered),
        y: Axis {
            label: "responses later than deadline + 1 ms, %".to_owned(),
            scale: Scale::Linear {
                min: 0.0,
                max: (worst * 1.3).max(1.0),
            },
            unit: "",
            ticks: Vec::new(),
        },
        series: vec![Series {
            name: "later than the deadline + 1 ms, % of responses".to_owned(),
            color: PALETTE[3],
            mark: Mark::Solid,
            points: results.goodput.iter().map(|g| (g.0, 100.0 * g.2)).collect(),
        }],
        spans: Vec::new(),
        footer: results.footer.clone(),
    }
}

fn noise(results: &Results) -> Chart {
    let max_offered = results
        .noise
        .iter()
        .flat_map(|c| &c.points)
        .map(|p| p.0)
        .fold(1.0, f64::max);
    let quiet = results
        .noise
        .iter()
        .find(|c| c.label == "quiet")
        .map(|c| c.capacity);
    let mut series = vec![Series {
        name: "ideal: min(offered, C)".to_owned(),
        color: PALETTE[7],
        mark: Mark::Dashed,
        points: [0.0, 1.0, max_offered]
            .iter()
            .map(|&x| (x, x.min(1.0)))
            .collect(),
    }];
    let mut findings = Vec::new();
    for (i, curve) in results.noise.iter().enumerate() {
        series.push(Series {
            name: curve.label.clone(),
            color: PALETTE[i % 7],
            mark: if curve.label == "quiet" {
                Mark::Solid
            } else {
                Mark::Dashed
            },
            points: curve.points.clone(),
        });
        let past: Vec<f64> = curve
            .points
            .iter()
            .filter(|p| p.0 > 1.01)
            .map(|p| p.1)
            .collect();
        if past.is_empty() {
            continue;
        }
        let lowest = past.iter().copied().fold(f64::MAX, f64::min);
        let c = match quiet {
            Some(q) if curve.label != "quiet" => {
                format!(
                    " (its C {:.0} % of quiet C)",
                    100.0 * curve.capacity / q.max(1.0)
                )
            }
            _ => String::new(),
        };
        findings.push(format!("{}, {:.0} %{c}", curve.label, 100.0 * lowest));
    }
    Chart {
        title: "A noisy neighbour on the server's core: does goodput past capacity still hold?"
            .to_owned(),
        caption: if findings.is_empty() {
            "No run past capacity.".to_owned()
        } else {
            format!(
                "The lowest goodput past capacity, as a share of the C measured beside the \
                 same neighbour: {}.",
                findings.join("; ")
            )
        },
        x: offered_axis(max_offered),
        y: Axis {
            label: "goodput, multiple of the same noise's C".to_owned(),
            scale: Scale::Linear { min: 0.0, max: 1.2 },
            unit: "",
            ticks: Vec::new(),
        },
        series,
        spans: Vec::new(),
        footer: results.footer.clone(),
    }
}

fn burst_timeline(results: &Results, burst: &Burst) -> Chart {
    let end = burst
        .windows
        .last()
        .map_or(1.0, |w| w.0 + burst.window_ms as f64 / 1000.0);
    let top = burst
        .windows
        .iter()
        .map(|w| w.2.max(w.1))
        .fold(burst.capacity, f64::max);
    let during: Vec<f64> = burst
        .windows
        .iter()
        .filter(|w| w.0 > burst.span.0 && w.0 < burst.span.1)
        .map(|w| w.1 / burst.capacity)
        .collect();
    let held = during.iter().filter(|&&s| s >= 0.9).count();
    let min = during.iter().copied().fold(f64::MAX, f64::min);
    Chart {
        title: "A burst past capacity: does goodput hold through it and recover after it?"
            .to_owned(),
        caption: if during.is_empty() {
            "No window inside the burst.".to_owned()
        } else {
            format!(
                "During the burst (shaded), {held} of {} windows of {} ms kept goodput at 90 % \
                 of C or more; the lowest was {:.0} %.",
                during.len(),
                burst.window_ms,
                100.0 * min
            )
        },
        x: Axis {
            label: "time since the measured run began, s".to_owned(),
            scale: Scale::Linear { min: 0.0, max: end },
            unit: "",
            ticks: Vec::new(),
        },
        y: Axis {
            label: "requests per second".to_owned(),
            scale: Scale::Linear {
                min: 0.0,
                max: top * 1.1,
            },
            unit: "",
            ticks: Vec::new(),
        },
        series: vec![
            Series {
                name: "offered".to_owned(),
                color: PALETTE[7],
                mark: Mark::Dashed,
                points: burst.windows.iter().map(|w| (w.0, w.2)).collect(),
            },
            Series {
                name: "goodput (2xx within the deadline)".to_owned(),
                color: PALETTE[0],
                mark: Mark::Solid,
                points: burst.windows.iter().map(|w| (w.0, w.1)).collect(),
            },
            Series {
                name: "capacity C".to_owned(),
                color: PALETTE[2],
                mark: Mark::Dashed,
                points: vec![(0.0, burst.capacity), (end, burst.capacity)],
            },
        ],
        spans: vec![(burst.span.0, burst.span.1, "burst".to_owned())],
        footer: results.footer.clone(),
    }
}

fn lateness(results: &Results) -> Chart {
    let total: u64 = results.lateness.iter().map(|b| b.1).sum();
    let within = |bound: u64| -> u64 {
        results
            .lateness
            .iter()
            .filter(|b| b.0 <= bound)
            .map(|b| b.1)
            .sum()
    };
    let share = within(100) as f64 / total.max(1) as f64;
    let labels: Vec<String> = results
        .lateness
        .iter()
        .map(|b| match b.0 {
            u64::MAX => "more".to_owned(),
            us if us >= 1000 => format!("{}k", us as f64 / 1000.0),
            us => us.to_string(),
        })
        .collect();
    Chart {
        title: "Deadline 503s: how late after its deadline does each one go out?".to_owned(),
        caption: format!(
            "{:.1} % of the {total} 503s for a missed deadline went out within 100 µs of it \
             (the server's own histogram, rtserve_deadline_lateness_seconds).",
            100.0 * share
        ),
        x: Axis {
            label: "how long after the deadline the 503 went out, µs (at most, per bucket)"
                .to_owned(),
            scale: Scale::Linear {
                min: 0.0,
                max: results.lateness.len() as f64,
            },
            unit: "",
            ticks: labels
                .into_iter()
                .enumerate()
                .map(|(i, label)| (i as f64 + 0.5, label))
                .collect(),
        },
        y: Axis {
            label: "503s".to_owned(),
            scale: Scale::Linear {
                min: 0.0,
                max: results
                    .lateness
                    .iter()
                    .map(|b| b.1)
                    .max()
                    .unwrap_or(1)
                    .max(1) as f64
                    * 1.1,
            },
            unit: "",
            ticks: Vec::new(),
        },
        series: vec![Series {
            name: "503s per lateness bucket".to_owned(),
            color: PALETTE[0],
            mark: Mark::Bars,
            points: results
                .lateness
                .iter()
                .enumerate()
                .map(|(i, b)| (i as f64, b.1 as f64))
                .collect(),
        }],
        spans: Vec::new(),
        footer: results.footer.clone(),
    }
}
