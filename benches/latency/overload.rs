//! The overload scenarios: the pool's capacity C, goodput past it (`overload`, `spin`), a
//! burst, and mixed load (their tables are in `tables.rs`). Each run's goodput (2xx within the
//! deadline, per second, at the client) is a share of C, which the server itself counts. Under
//! noise (`--noise`), C is measured beside the same neighbour as the runs it is compared with.

use std::{
    io::{Read, Write},
    net::TcpStream,
    time::Duration,
};

use rtserve_loadgen::{Burst, Target};

use crate::{metrics, runner::Bench, server::ServerProcess};

impl Bench {
    /// C for `/slow?ms=2` on 4 workers (nominal 2000 req/s), measured the first time for
    /// each noise setting, under that noise.
    pub(crate) fn slow_capacity(&mut self) -> Option<f64> {
        let key = self.noise.map(|n| n.to_string());
        if let Some(&c) = self.capacity.get(&key) {
            return c;
        }
        let c = capacity(self, "overload", "/slow?ms=2", "4", 4000.0);
        self.capacity.insert(key, c);
        c
    }
}

/// Measures the pool's capacity C for `path` (its route's 200s per second, counted by the
/// server) while offered `offered` req/s with a 1 s deadline, so that nothing misses: median of
/// three runs (one when quick), first in first out; beside the neighbour, if there is one now.
///
/// Counted by the server, because at the client a request that waited for a busy connection
/// looks late although the pool served it in time; FIFO, because newest-first order would
/// leave old requests waiting most of the lax deadline, holding the generator's connections.
pub(crate) fn capacity(
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
                report.requests.unsent,
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
pub(crate) fn sweep(
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
pub(crate) fn overload(bench: &mut Bench) {
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
    bench.lateness = metrics::lateness(server.addr);
}

/// CPU-bound jobs with more workers than cores: `/spin?us=1000` (1 ms of CPU) on 4 workers
/// sharing the server's one core with its reactor. A job cannot run faster than the core
/// allows, so the question is only whether goodput holds up past capacity. Then jobs that
/// mix the two, as a handler that waits on a store and then computes does:
/// `/spin?sleep_ms=1&us=500` (1 ms asleep, then 0.5 ms of CPU), with a 5 ms deadline.
pub(crate) fn spin(bench: &mut Bench) {
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
pub(crate) const MIXED_JOBS: &str = "sleep+spin";

/// A burst: 0.5 × C, then 3 × C for 2 s, then 0.5 × C again, with goodput per 50 ms window.
pub(crate) fn burst(bench: &mut Bench) {
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
pub(crate) const BURST_WINDOW: Duration = Duration::from_millis(50);

/// Mixed load: `/hello` at a fixed rate while `/slow` runs at 4 × C, against the same `/hello`
/// rate while the same extra rate goes to an inline route that answers 503 (the reactor's
/// work is then the same, and only the pool's overload differs). Three interleaved runs each.
pub(crate) fn mixed(bench: &mut Bench) {
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

/// Holds one /slow request open for `hold`.
pub(crate) fn slow_request(addr: std::net::SocketAddr, hold: Duration) {
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
