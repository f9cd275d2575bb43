//! The overload scenarios' pictures: goodput and misses past capacity, the same beside noisy
//! neighbours, a burst's timeline, and how late the deadline 503s went out.

use super::{Burst, Results};
use crate::chart::{Axis, Chart, Mark, PALETTE, Scale, Series};

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

/// Goodput past capacity: the overload sweep's 2xx within the deadline, as a multiple of C.
pub(super) fn goodput(results: &Results) -> Chart {
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

/// The overload sweep's responses, 200s and 503s alike, later than the deadline + 1 ms.
pub(super) fn misses(results: &Results) -> Chart {
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

/// The overload sweep quiet and beside each noisy neighbour, each against its own C.
pub(super) fn noise(results: &Results) -> Chart {
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

/// Goodput and offered load per window through a burst, with the burst shaded.
pub(super) fn burst_timeline(results: &Results, burst: &Burst) -> Chart {
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

/// The server's own histogram of how late after their deadlines the 503s went out.
pub(super) fn lateness(results: &Results) -> Chart {
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
