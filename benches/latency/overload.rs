//! The overload scenarios: the pool's capacity C, goodput past it (`overload`, `spin`), a
//! burst, and mixed load; and their tables. Each run's goodput (2xx within the deadline, per
//! second, at the client) is a share of C, which the server itself counts. Under noise
//! (`--noise`), C is measured beside the same neighbour as the runs it is compared with.

use std::{
    fmt::Write as _,
    io::{Read, Write},
    net::TcpStream,
    time::Duration,
};

use rtserve_loadgen::{Burst, Report, Target};

use super::{
    Bench, Row,
    report::{lag, quantile, steal_ms, us},
};
use crate::server::ServerProcess;

/// Measures the pool's capacity C for `path` (its route's 200s per second, counted by the
/// server) while offered `offered` req/s with a 1 s deadline, so that nothing misses: median of
/// three runs (one when quick), first in first out; beside the neighbour, if there is one now.
///
/// Counted by the server, because at the client a request that waited for a busy connection
/// looks late although the pool served it in time; FIFO, because newest-first order would
/// leave old requests waiting most of the lax deadline, holding the generator's connections.
pub(super) fn capacity(
    bench: &mut Bench,
    scenario: &str,
    path: &str,
    workers: &str,
    offered: f64,
) -> Option<f64> {
    let lax = ServerProcess::start(
        &[
            "--threads",
            "1",
            "--workers",
            workers,
            "--deadline-ms",
            "1000",
            "--discipline",
            "fifo",
        ],
        bench.server_cpus.as_deref(),
    );
    let target = Target::new(lax.addr, path);
    let route = path.split('?').next().unwrap_or(path);
    let what = format!("{scenario} capacity run");
    let mut capacities: Vec<f64> = (0..if bench.quick { 1 } else { 3 })
        .filter_map(|_| {
            let mut load = bench.load(target.clone(), offered, 1000);
            load.deadline = Some(Duration::from_secs(1));
            // It overloads the generator's own connections on purpose, and what it measures is
            // counted by the server: its schedule lag is no sign of the host.
            let measured = bench.measure(&what, &load, None, Some((lax.addr, route)), false)?;
            let (report, served) = (measured.report, measured.counts?);
            let elapsed = measured.elapsed.as_secs_f64();
            eprintln!(
                "{scenario:>14} capacity run: the server answered {:.0} with 200, {:.0} refused, \
                 {:.0} late in {elapsed:.1} s ({} errors, {} unsent at the generator)",
                served.ok,
                served.refused,
                served.late,
                report.errors.total(),
                report.unsent,
            );
            Some(served.ok / elapsed)
        })
        .collect();
    capacities.sort_by(f64::total_cmp);
    let capacity = capacities.get(capacities.len() / 2).copied();
    let noise = bench.noise.map(|n| format!(", {n}")).unwrap_or_default();
    match capacity {
        Some(c) => eprintln!("{scenario:>14} C = {c:.0} 200s/s ({capacities:.0?}){noise}"),
        None => eprintln!("{scenario:>14} capacity could not be measured{noise}"),
    }
    capacity
}

/// Runs `path` at each of `factors` × `capacity` against a server with `deadline` and
/// `workers`, one row each, with the server's own counts.
pub(super) fn sweep(
    bench: &mut Bench,
    scenario: &str,
    (path, workers, deadline): (&str, &str, Duration),
    capacity: f64,
    factors: &[f64],
) {
    let deadline_ms = deadline.as_millis().to_string();
    let server = ServerProcess::start(
        &[
            "--threads",
            "1",
            "--workers",
            workers,
            "--deadline-ms",
            &deadline_ms,
        ],
        bench.server_cpus.as_deref(),
    );
    let target = Target::new(server.addr, path);
    let route = path.split('?').next().unwrap_or(path);
    for &factor in factors {
        let mut load = bench.load(target.clone(), (capacity * factor).round(), 200);
        load.deadline = Some(deadline);
        let note = format!("{factor}× C, {deadline_ms} ms deadline");
        let counted = Some((server.addr, route));
        if bench
            .run_counted(
                scenario,
                "rtserve",
                Some(server.pid()),
                &load,
                note,
                counted,
            )
            .is_some()
            && let Some(row) = bench.rows.last_mut()
        {
            row.capacity = Some(capacity);
        }
    }
}

/// Goodput under overload: 4 workers, `/slow?ms=2` jobs (nominal capacity 2000 req/s), a 5 ms
/// deadline, at 0.5, 1, 1.5, 2 and 4 × C; each run's goodput (2xx within the deadline, per
/// second, at the client) as a share of C.
pub(super) fn overload(bench: &mut Bench) {
    let Some(capacity) = bench.slow_capacity() else {
        return;
    };
    let slow = ("/slow?ms=2", "4", Duration::from_millis(5));
    sweep(
        bench,
        "overload",
        slow,
        capacity,
        &[0.5, 1.0, 1.5, 2.0, 4.0],
    );
    if bench.noise.is_some() {
        // The lateness histogram is the server's own, measured quiet.
        return;
    }
    // Deadline lateness needs jobs that are let in and then miss. `/slow?ms=1` at 600 req/s
    // keeps the route's run-time estimate near 1 ms (it is capped at four times the shortest
    // recent run), so the `/slow?ms=8` among them, 100 a second, are let in against a 5 ms
    // deadline and answered 503 at it; the server's histogram says how late those went out.
    let server = bench.pool_server();
    let mut short = bench.load(Target::new(server.addr, "/slow?ms=1"), 600.0, 20);
    // Started first and ended last, so that it covers the measured run.
    short.warmup += Duration::from_millis(500);
    short.duration += Duration::from_secs(1);
    let background = std::thread::spawn(move || rtserve_loadgen::run(&short));
    std::thread::sleep(Duration::from_millis(500));
    let long = bench.load(Target::new(server.addr, "/slow?ms=8"), 100.0, 20);
    bench.run(
        "lateness",
        "rtserve",
        Some(&server),
        &long,
        "/slow?ms=8 among /slow?ms=1, 5 ms deadline".to_owned(),
    );
    let _ = background.join();
    bench.lateness = lateness_buckets(server.addr);
}

/// The server's `rtserve_deadline_lateness_seconds` histogram, per bucket, from `/metrics`.
pub(super) fn lateness_buckets(addr: std::net::SocketAddr) -> Vec<(u64, u64)> {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return Vec::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = s.write_all(b"GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n");
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    let prefix = "rtserve_deadline_lateness_seconds_bucket{le=\"";
    let mut buckets = Vec::new();
    let mut below = 0;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(prefix) else {
            continue;
        };
        let Some((le, count)) = rest.split_once("\"} ") else {
            continue;
        };
        let Ok(count) = count.trim().parse::<u64>() else {
            continue;
        };
        let bound = if le == "+Inf" {
            u64::MAX
        } else {
            le.parse::<f64>()
                .map_or(u64::MAX, |s| (s * 1e6).round() as u64)
        };
        buckets.push((bound, count.saturating_sub(below)));
        below = count;
    }
    buckets
}

/// CPU-bound jobs with more workers than cores: `/spin?us=1000` (1 ms of CPU) on 4 workers
/// sharing the server's one core with its reactor. A job cannot run faster than the core
/// allows, so the question is only whether goodput holds up past capacity. Then jobs that
/// mix the two, as a handler that waits on a store and then computes does:
/// `/spin?sleep_ms=1&us=500` (1 ms asleep, then 0.5 ms of CPU), with a 5 ms deadline.
pub(super) fn spin(bench: &mut Bench) {
    let path = "/spin?us=1000";
    if let Some(capacity) = capacity(bench, "spin", path, "4", 2000.0) {
        let spin = (path, "4", Duration::from_millis(10));
        sweep(bench, "spin", spin, capacity, &[0.5, 1.0, 2.0, 4.0]);
    }
    let path = "/spin?sleep_ms=1&us=500";
    if let Some(capacity) = capacity(bench, MIXED_JOBS, path, "4", 4000.0) {
        let work = (path, "4", Duration::from_millis(5));
        sweep(bench, MIXED_JOBS, work, capacity, &[0.5, 1.0, 2.0, 4.0]);
    }
}

/// The scenario name of the mixed sleep+spin jobs' runs.
pub(super) const MIXED_JOBS: &str = "sleep+spin";

/// A burst: 0.5 × C, then 3 × C for 2 s, then 0.5 × C again, with goodput per 50 ms window.
pub(super) fn burst(bench: &mut Bench) {
    let Some(capacity) = bench.slow_capacity() else {
        return;
    };
    let server = bench.pool_server();
    let target = Target::new(server.addr, "/slow?ms=2");
    let mut load = bench.load(target, (capacity * 0.5).round(), 200);
    let (start, length) = if bench.quick {
        (Duration::from_millis(500), Duration::from_millis(500))
    } else {
        (Duration::from_secs(2), Duration::from_secs(2))
    };
    load.duration = start * 2 + length;
    load.deadline = Some(Duration::from_millis(5));
    load.window = Some(BURST_WINDOW);
    load.burst = Some(Burst {
        start,
        length,
        rate: (capacity * 3.0).round(),
    });
    let note = format!(
        "0.5× → 3× C for {:.1} s → 0.5× C, 5 ms deadline",
        length.as_secs_f64()
    );
    // Beside the neighbour, if there is one now: the burst's C is measured under it too.
    bench.run("burst", "rtserve", Some(&server), &load, note);
    if let Some(row) = bench.rows.last_mut() {
        row.capacity = Some(capacity);
        row.burst = Some((start, length));
    }
}

/// The width of the burst's goodput windows.
pub(super) const BURST_WINDOW: Duration = Duration::from_millis(50);

/// Mixed load: `/hello` at a fixed rate while `/slow` runs at 4 × C, against the same `/hello`
/// rate while the same extra rate goes to an inline route that answers 503 (the reactor's
/// work is then the same, and only the pool's overload differs). Three interleaved runs each.
pub(super) fn mixed(bench: &mut Bench) {
    let Some(capacity) = bench.slow_capacity() else {
        return;
    };
    let server = bench.pool_server();
    let hello_rate = if bench.quick { 5_000.0 } else { 20_000.0 };
    let extra = (capacity * 4.0).round();
    for round in 0..if bench.quick { 1 } else { 3 } {
        for (background, note) in [
            ("/slow?ms=2", "with /slow at 4× C"),
            (
                "/status?code=503",
                "control: the same rate answered 503 inline",
            ),
        ] {
            let mut other = bench.load(Target::new(server.addr, background), extra, 200);
            // Started first and ended last, so that it covers the measured run.
            other.warmup += Duration::from_millis(500);
            other.duration += Duration::from_secs(1);
            other.deadline = Some(Duration::from_millis(5));
            let background = std::thread::spawn(move || rtserve_loadgen::run(&other));
            std::thread::sleep(Duration::from_millis(500));
            let hello = bench.load(Target::new(server.addr, "/hello"), hello_rate, 50);
            let note = format!("/hello {note}, round {}", round + 1);
            bench.run("mixed", "rtserve", Some(&server), &hello, note);
            let _ = background.join();
        }
    }
}

/// What the server counted of one route: its 200s, and 503s by reason (those are counted
/// server-wide, and the scenarios offload one route at a time), from its `/metrics`.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct ServerCounts {
    ok: f64,
    late: f64,
    refused: f64,
}

impl ServerCounts {
    /// Reads the counts from the server at `addr`; `None` if it does not answer.
    pub(super) fn read(addr: std::net::SocketAddr, route: &str) -> Option<Self> {
        let mut s = TcpStream::connect(addr).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
            .ok()?;
        let mut text = String::new();
        s.read_to_string(&mut text).ok()?;
        let value = |prefix: &str| -> f64 {
            text.lines()
                .find_map(|l| l.strip_prefix(prefix)?.trim().parse().ok())
                .unwrap_or(0.0)
        };
        let shed = |reason: &str| value(&format!("rtserve_shed_total{{reason=\"{reason}\"}}"));
        Some(Self {
            ok: value(&format!(
                "rtserve_requests_total{{route=\"{route}\",status=\"200\"}}"
            )),
            // Let in, and still missed (503 at the deadline, or from a worker that reached it
            // too late): the server's own count for the route.
            late: value(&format!(
                "rtserve_admitted_missed_total{{route=\"{route}\"}}"
            )),
            // Refused at the door.
            refused: shed("queue-full") + shed("expected-miss"),
        })
    }

    /// What was counted between `before` and these counts.
    pub(super) fn since(&self, before: &Self) -> Self {
        Self {
            ok: self.ok - before.ok,
            late: self.late - before.late,
            refused: self.refused - before.refused,
        }
    }
}

/// Holds one /slow request open for `hold`.
pub(super) fn slow_request(addr: std::net::SocketAddr, hold: Duration) {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return;
    };
    let _ = s.set_read_timeout(Some(hold + Duration::from_secs(10)));
    let request = format!(
        "GET /slow?ms={} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n",
        hold.as_millis()
    );
    let _ = s.write_all(request.as_bytes());
    let _ = s.read_to_end(&mut Vec::new());
}

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
pub(super) fn goodput_tables(table: &mut String, bench: &Bench) {
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
                r.unsent + r.errors.total()
            );
        }
    }
}

/// Noise against quiet: each swept run's goodput against the C measured beside the same
/// neighbour, with what the host did during it. Only when noise settings ran.
pub(super) fn noise_table(table: &mut String, bench: &Bench) {
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
pub(super) fn burst_table(table: &mut String, bench: &Bench) {
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
pub(super) fn mixed_table(table: &mut String, bench: &Bench) {
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
