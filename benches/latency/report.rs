//! What a run of the suite writes: the Markdown table and its notes on the host (runs repeated,
//! runs still spoiled), and the data of the pictures.

use std::{collections::BTreeMap, fmt::Write as _, path::PathBuf, time::Duration};

use rtserve_loadgen::Report;

use crate::{
    caller::caller_table,
    cells::{lag, steal_ms, us},
    noise::Cause,
    panels::{self, Points, Results},
    runner::{Bench, Row},
    tables::{burst_table, goodput_tables, mixed_table, noise_table},
};

/// How many runs were repeated and why, the runs still spoiled, and the noise settings that
/// could not run: one sentence for the pictures' footers.
pub(crate) fn repeats_summary(bench: &Bench) -> String {
    let mut causes: BTreeMap<Cause, usize> = BTreeMap::new();
    for (_, spoil) in &bench.repeats {
        *causes.entry(spoil.cause).or_default() += 1;
    }
    let spoiled = bench.rows.iter().filter(|r| r.spoiled.is_some()).count();
    let mut summary = if causes.is_empty() {
        "No run was repeated for the host".to_owned()
    } else {
        let why: Vec<String> = causes
            .iter()
            .map(|(cause, n)| format!("{n} for {cause}"))
            .collect();
        format!(
            "{} run(s) repeated for the host ({})",
            bench.repeats.len(),
            why.join(", ")
        )
    };
    if spoiled > 0 {
        let _ = write!(summary, "; {spoiled} still spoiled after repeating, marked");
    }
    summary.push('.');
    summary
}

/// The host's part in the runs: repeats, runs still spoiled, noise settings skipped.
pub(crate) fn host_notes(table: &mut String, bench: &Bench) {
    let _ = writeln!(
        table,
        "\nHost: {} A run is taken as spoiled by the host when the steal time during it is above \
         1 % of its wall time, or (except capacity runs, counted by the server) the generator's \
         schedule lag p99 above {} µs; it is repeated at most {} time(s).",
        repeats_summary(bench),
        bench.lag_limit_us,
        bench.max_repeats
    );
    for (what, spoil) in &bench.repeats {
        let _ = writeln!(table, "- repeated: {what}: {spoil}");
    }
    for row in &bench.rows {
        if let Some(spoil) = &row.spoiled {
            let _ = writeln!(
                table,
                "- still spoiled: {} {} {}: {spoil}",
                row.scenario,
                row.server,
                row.note()
            );
        }
    }
    for skipped in &bench.skipped {
        let _ = writeln!(table, "- skipped: {skipped}");
    }
}

/// Prints the table and writes the table, `.hgrm` files and the plot under `target/bench/`;
/// `peers` are the peers' names, which label their rows.
pub(crate) fn report(bench: &Bench, peers: &[&str]) {
    let mut table = String::new();
    let _ = writeln!(
        table,
        "| scenario | server | note | target req/s | achieved req/s | p50 | p90 | p99 | p99.9 | p99.99 | max | 503 | errors | unsent | server CPU per request | steal | generator lag p99 / max |"
    );
    let _ = writeln!(
        table,
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for row in &bench.rows {
        let r = &row.report;
        let h = &r.corrected;
        let cpu = row
            .server_cpu
            .filter(|_| r.requests.completed > 0)
            .map(|c| {
                format!(
                    "{:.1} µs",
                    c.as_secs_f64() * 1e6 / r.requests.completed as f64
                )
            })
            .unwrap_or_else(|| "—".to_owned());
        let _ = writeln!(
            table,
            "| {} | {} | {}{} | {:.0} | {:.0} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            row.scenario,
            row.server,
            row.note(),
            if row.spoiled.is_some() {
                " (spoiled by the host)"
            } else {
                ""
            },
            r.target_rate,
            r.achieved_rate(),
            us(h.value_at_quantile(0.5)),
            us(h.value_at_quantile(0.9)),
            us(h.value_at_quantile(0.99)),
            us(h.value_at_quantile(0.999)),
            us(h.value_at_quantile(0.9999)),
            us(h.max()),
            r.status_503(),
            r.errors.total(),
            r.requests.unsent,
            cpu,
            steal_ms(&row.signs),
            lag(&row.signs)
        );
    }
    goodput_tables(&mut table, bench);
    noise_table(&mut table, bench);
    burst_table(&mut table, bench);
    mixed_table(&mut table, bench);
    caller_table(&mut table, bench);
    host_notes(&mut table, bench);
    if !peers.is_empty() {
        let _ = writeln!(
            table,
            "\n| scenario | note | rtserve against | p50 ratio | p99 ratio | p99.9 ratio | max ratio | throughput ratio |\n|---|---|---|---|---|---|---|---|"
        );
        // Each peer's row against the rtserve row it follows, in the same scenario and note.
        let mut ours: Option<&Row> = None;
        for b in &bench.rows {
            if b.server == "rtserve" {
                ours = Some(b);
            } else if let Some(a) = ours
                && peers.contains(&b.server.as_str())
                && a.scenario == b.scenario
                && a.note == b.note
            {
                let q = |r: &Report, p: f64| r.corrected.value_at_quantile(p).max(1) as f64;
                let _ = writeln!(
                    table,
                    "| {} | {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |",
                    a.scenario,
                    a.note,
                    b.server,
                    q(&a.report, 0.5) / q(&b.report, 0.5),
                    q(&a.report, 0.99) / q(&b.report, 0.99),
                    q(&a.report, 0.999) / q(&b.report, 0.999),
                    a.report.corrected.max().max(1) as f64 / b.report.corrected.max().max(1) as f64,
                    a.report.achieved_rate() / b.report.achieved_rate().max(1.0),
                );
            }
        }
    }
    println!("{table}");

    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    if std::fs::create_dir_all(&dir).is_err() {
        eprintln!("cannot create {}", dir.display());
        return;
    }
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let _ = std::fs::write(
        dir.join("latency.md"),
        format!("Produced by `{command}`.\n\n{table}"),
    );
    for (i, row) in bench.rows.iter().enumerate() {
        let name = format!(
            "{:02}-{}-{}",
            i,
            row.scenario,
            row.server.replace([' ', ','], "")
        );
        let _ = std::fs::write(dir.join(format!("{name}.hgrm")), row.report.to_hgrm());
    }
    for (name, chart) in panels::panels(&results(bench, peers)) {
        let _ = std::fs::write(dir.join(format!("{name}.svg")), chart.svg());
    }
    eprintln!(
        "wrote {}/latency.md, a picture per question (.svg) and .hgrm files",
        dir.display()
    );
}

/// A run's latency by percentile, for the pictures.
pub(crate) fn points(report: &Report) -> Points {
    panels::percentiles()
        .into_iter()
        .map(|p| (p, report.corrected.value_at_quantile(p / 100.0) as f64))
        .collect()
}

/// What the pictures are drawn from, out of the rows; `peers` are the names of the peers
/// that ran.
pub(crate) fn results(bench: &Bench, peers: &[&str]) -> Results {
    let rows = |scenario: &'static str| bench.rows.iter().filter(move |r| r.scenario == scenario);
    let first = peers.first().copied().unwrap_or_default();
    let mut results = Results {
        footer: format!(
            "{} {}",
            footer(&if peers.is_empty() {
                "none in this run".to_owned()
            } else {
                peers.join(", ")
            }),
            repeats_summary(bench)
        ),
        peer: first.to_owned(),
        lateness: bench.lateness.clone(),
        ..Results::default()
    };
    for row in rows("keep-alive").filter(|r| r.server == "rtserve") {
        let peer = rows("keep-alive")
            .find(|p| {
                p.server == first
                    && p.note == row.note
                    && p.report.target_rate == row.report.target_rate
            })
            .map(|p| points(&p.report));
        let level = format!("{:.0} req/s", row.report.target_rate);
        results.keep_alive.push((level, points(&row.report), peer));
    }
    if let Some(ours) = rows("new-connection").find(|r| r.server == "rtserve") {
        let theirs = rows("new-connection")
            .filter(|r| peers.contains(&r.server.as_str()))
            .map(|r| (r.server.clone(), points(&r.report)))
            .collect();
        results.new_connection = Some((points(&ours.report), theirs));
    }
    for row in rows("isolation") {
        if row.note == "baseline"
            && let Some(spoil) = &row.spoiled
        {
            results.isolation_spoiled = Some(spoil.detail.clone());
        }
        results
            .isolation
            .push((format!("/hello, {}", row.note), points(&row.report)));
    }
    for row in rows("mixed").filter(|r| r.note.ends_with("round 1")) {
        let note = row.note.trim_end_matches(", round 1");
        results
            .isolation
            .push((note.to_owned(), points(&row.report)));
    }
    for row in rows("overload") {
        let (Some(capacity), Some(deadline)) = (row.capacity, row.report.deadline) else {
            continue;
        };
        let r = &row.report;
        let (offered, goodput) = (r.target_rate / capacity, r.goodput() / capacity);
        if row.noise.is_none() {
            results.goodput.push((
                offered,
                goodput,
                1.0 - r.share_within(deadline + Duration::from_millis(1)),
            ));
        }
        if bench.noises.is_empty() {
            continue;
        }
        let label = row
            .noise
            .map_or_else(|| "quiet".to_owned(), |n| n.to_string());
        match results.noise.iter_mut().find(|c| c.label == label) {
            Some(curve) => curve.points.push((offered, goodput)),
            None => results.noise.push(panels::NoiseCurve {
                label,
                capacity,
                points: vec![(offered, goodput)],
            }),
        }
    }
    if let Some(row) = rows("burst").find(|r| r.noise.is_none())
        && let (Some(capacity), Some((start, length))) = (row.capacity, row.burst)
    {
        let windows = &row.report.windows;
        let width = windows.width.as_secs_f64();
        if width > 0.0 {
            results.burst = Some(panels::Burst {
                windows: windows
                    .counts
                    .iter()
                    .enumerate()
                    .map(|(i, w)| {
                        (
                            i as f64 * width,
                            w.good as f64 / width,
                            w.offered as f64 / width,
                        )
                    })
                    .collect(),
                span: (start.as_secs_f64(), (start + length).as_secs_f64()),
                capacity,
                window_ms: windows.width.as_millis() as u64,
            });
        }
    }
    results
}

/// The run's date, commit, machine and peers, for the pictures' footers.
pub(crate) fn footer(peers: &str) -> String {
    let run = |program: &str, args: &[&str]| {
        std::process::Command::new(program)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_else(|| "unknown".to_owned())
    };
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines().find_map(|l| {
                l.strip_prefix("model name")?
                    .split_once(':')
                    .map(|(_, m)| m.trim().to_owned())
            })
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "Run {} at commit {}; {} CPUs ({cpu}), Linux {}; peer: {peers}. \
         Open loop, latency from each request's scheduled send time.",
        run("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
        run("git", &["rev-parse", "--short", "HEAD"]),
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        kernel.trim()
    )
}
