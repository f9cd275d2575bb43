//! The overload scenarios' tables: goodput as a share of C for the overload and spin sweeps,
//! the same beside a neighbour, the burst's windows, and the mixed load's rounds.

use std::{fmt::Write as _, time::Duration};

use rtserve_loadgen::Report;

use crate::{
    cells::{lag, quantile, steal_ms, us},
    overload::MIXED_JOBS,
    runner::{Bench, Row},
};

/// The scenarios with a goodput sweep, and what each loads.
const SWEPT: [(&str, &str); 3] = [
    ("overload", "4 workers, `/slow?ms=2`"),
    ("spin", "4 workers on one core, `/spin?us=1000`"),
    (
        MIXED_JOBS,
        "4 workers on one core, mixed sleep+spin `/spin?sleep_ms=1&us=500`",
    ),
];

/// The overload and spin runs: goodput as a share of C, and how soon the refusals came; one
/// table per scenario and noise setting.
pub(crate) fn goodput_tables(table: &mut String, bench: &Bench) {
    for ((scenario, what), noise) in SWEPT
        .into_iter()
        .flat_map(|s| bench.conditions().into_iter().map(move |n| (s, n)))
    {
        let rows: Vec<&Row> = bench
            .rows
            .iter()
            .filter(|r| r.scenario == scenario && r.noise == noise && r.capacity.is_some())
            .collect();
        let Some(capacity) = rows.first().and_then(|r| r.capacity) else {
            continue;
        };
        let deadline = rows[0].report.deadline.unwrap_or_default();
        let beside = noise.map(|n| format!(", {n}")).unwrap_or_default();
        let _ = writeln!(
            table,
            "\n{scenario}{beside}: C = {capacity:.0} 200s/s ({what}, offered with a 1 s \
             deadline, counted by the server{}). Goodput: 2xx within the {} ms deadline per \
             second, at the client.\n\n\
             | offered | goodput (share of C) | all responses within deadline + 1 ms | 503 share | \
             503 p50 | 503 p99 | 2xx p99 | 2xx p99.9 | server: jobs run that missed | server: refused at once | lost |\n\
             |---|---|---|---|---|---|---|---|---|---|---|",
            if noise.is_some() {
                ", beside the same neighbour"
            } else {
                ""
            },
            deadline.as_millis()
        );
        for row in rows {
            let r = &row.report;
            let total = r.corrected.len().max(1) as f64;
            let (missed, refused) = row.server_counts.map_or_else(
                || ("—".to_owned(), "—".to_owned()),
                |c| {
                    let run = (c.ok + c.late).max(1.0);
                    (
                        format!("{:.2} %", 100.0 * c.late / run),
                        format!("{:.0}", c.refused),
                    )
                },
            );
            let _ = writeln!(
                table,
                "| {}{} | **{:.0} %** | {:.2} % | {:.1} % | {} | {} | {} | {} | {missed} | {refused} | {} |",
                row.note,
                if row.spoiled.is_some() {
                    " (spoiled by the host)"
                } else {
                    ""
                },
                100.0 * r.goodput() / capacity,
                100.0 * r.share_within(deadline + Duration::from_millis(1)),
                100.0 * r.status_503() as f64 / total,
                quantile(&r.refused, 0.5),
                quantile(&r.refused, 0.99),
                quantile(&r.success, 0.99),
                quantile(&r.success, 0.999),
                r.requests.unsent + r.errors.total()
            );
        }
    }
}

/// Noise against quiet: each swept run's goodput against the C measured beside the same
/// neighbour, with what the host did during it. Only when noise settings ran.
pub(crate) fn noise_table(table: &mut String, bench: &Bench) {
    if bench.noises.is_empty() {
        return;
    }
    let _ = writeln!(
        table,
        "\nnoise: a neighbour on the server's CPU spinning BUSY of every PERIOD ms (ordinary: \
         SCHED_OTHER nice 0; FIFO: SCHED_FIFO 1, which takes the core as steal would). Goodput \
         is a share of C_noise, the capacity measured beside the same neighbour.\n\n\
         | scenario | setting | C_noise (share of quiet C) | offered | goodput (share of C_noise) | \
         all responses within deadline + 1 ms | server: admitted that missed | 503 p50 | steal | \
         generator lag p99 / max |\n|---|---|---|---|---|---|---|---|---|---|"
    );
    for (scenario, _) in SWEPT {
        let quiet = bench
            .rows
            .iter()
            .find(|r| r.scenario == scenario && r.noise.is_none())
            .and_then(|r| r.capacity);
        for row in bench.rows.iter().filter(|r| r.scenario == scenario) {
            let (Some(capacity), Some(deadline)) = (row.capacity, row.report.deadline) else {
                continue;
            };
            let r = &row.report;
            let setting = row
                .noise
                .map_or_else(|| "quiet".to_owned(), |n| n.to_string());
            let against = quiet.map_or_else(String::new, |q| {
                format!(" ({:.0} %)", 100.0 * capacity / q.max(1.0))
            });
            let missed = row.server_counts.map_or_else(
                || "—".to_owned(),
                |c| format!("{:.2} %", 100.0 * c.late / (c.ok + c.late).max(1.0)),
            );
            let _ = writeln!(
                table,
                "| {scenario} | {setting} | {capacity:.0}{against} | {:.1}× C | **{:.0} %**{} | \
                 {:.2} % | {missed} | {} | {} | {} |",
                r.target_rate / capacity,
                100.0 * r.goodput() / capacity,
                if row.spoiled.is_some() {
                    " (spoiled by the host)"
                } else {
                    ""
                },
                100.0 * r.share_within(deadline + Duration::from_millis(1)),
                quantile(&r.refused, 0.5),
                steal_ms(&row.signs),
                lag(&row.signs)
            );
        }
    }
}

/// The burst: goodput per window as a share of C, before, during and after.
pub(crate) fn burst_table(table: &mut String, bench: &Bench) {
    for row in bench.rows.iter().filter(|r| r.scenario == "burst") {
        let (Some(capacity), Some((start, length))) = (row.capacity, row.burst) else {
            continue;
        };
        let windows = &row.report.windows;
        let width = windows.width.as_secs_f64();
        if width == 0.0 {
            continue;
        }
        let share = |w: &rtserve_loadgen::Window| w.good as f64 / (capacity * width);
        let index = |d: Duration| (d.as_secs_f64() / width).round() as usize;
        let (from, to) = (index(start), index(start + length));
        let during: Vec<f64> = windows.counts[(from + 1).min(to)..to]
            .iter()
            .map(share)
            .collect();
        let mut sorted = during.clone();
        sorted.sort_by(f64::total_cmp);
        let below = during.iter().filter(|&&s| s < 0.9).count();
        let after: Vec<String> = windows.counts[to..(to + 6).min(windows.counts.len())]
            .iter()
            .map(|w| format!("{:.0} %", 100.0 * w.good as f64 / w.offered.max(1) as f64))
            .collect();
        let _ = writeln!(
            table,
            "\nburst: {} (C = {capacity:.0} 200s/s). Goodput per {} ms window as a share of C, \
             from one window after the burst starts to its end:\n\n\
             | windows | min | p10 | median | windows below 90 % | after the burst: good share of offered, first windows |\n\
             |---|---|---|---|---|---|\n\
             | {} | {:.0} % | {:.0} % | {:.0} % | {below} | {} |",
            row.note(),
            windows.width.as_millis(),
            during.len(),
            100.0 * sorted.first().copied().unwrap_or(0.0),
            100.0 * sorted.get(sorted.len() / 10).copied().unwrap_or(0.0),
            100.0 * sorted.get(sorted.len() / 2).copied().unwrap_or(0.0),
            after.join(", ")
        );
        let list: Vec<String> = windows
            .counts
            .iter()
            .map(|w| format!("{:.0}", 100.0 * share(w)))
            .collect();
        let _ = writeln!(table, "\nEvery window, % of C: {}", list.join(" "));
    }
}

/// Mixed load: `/hello`'s tail with the pool overloaded against the control, median of the
/// rounds.
pub(crate) fn mixed_table(table: &mut String, bench: &Bench) {
    let arm = |prefix: &str| -> Vec<&Report> {
        bench
            .rows
            .iter()
            .filter(|r| r.scenario == "mixed" && r.note.starts_with(prefix))
            .map(|r| &r.report)
            .collect()
    };
    let (loaded, control) = (arm("/hello with"), arm("/hello control"));
    if loaded.is_empty() || control.is_empty() {
        return;
    }
    let median = |reports: &[&Report], p: f64| -> u64 {
        let mut v: Vec<u64> = reports
            .iter()
            .map(|r| r.corrected.value_at_quantile(p))
            .collect();
        v.sort_unstable();
        v[v.len() / 2]
    };
    let _ = writeln!(
        table,
        "\nmixed: /hello at {:.0} req/s, median of {} interleaved rounds\n\n\
         | /hello | p50 | p99 | p99.9 |\n|---|---|---|---|",
        loaded[0].target_rate,
        loaded.len()
    );
    for (name, reports) in [
        ("with /slow at 4× C", &loaded),
        ("control (503 inline)", &control),
    ] {
        let _ = writeln!(
            table,
            "| {name} | {} | {} | {} |",
            us(median(reports, 0.5)),
            us(median(reports, 0.99)),
            us(median(reports, 0.999))
        );
    }
    let ratio = median(&loaded, 0.99) as f64 / median(&control, 0.99).max(1) as f64;
    let _ = writeln!(table, "| p99 ratio | | {ratio:.2} × | |");
}
