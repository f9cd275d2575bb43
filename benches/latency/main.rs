//! Latency benchmarks: `cargo bench --bench latency [-- --quick] [--scenario NAME]… [--peer URL]`.
//!
//! Runs `rtserve` as a process of its own (pinned to the first CPU this process may use, with
//! the load generator on the others, where there are two or more) and drives it with the
//! open-loop generator of `rtserve-loadgen`: latency counts from each request's scheduled send
//! time, so a stall shows in the tail instead of slowing the generator down. Prints a
//! Markdown table and writes it, the `.hgrm` percentile distributions and an SVG plot under
//! `target/bench/`. It reports; it asserts nothing about the numbers.

mod chart;
mod panels;
mod server;

use std::{
    fmt::Write as _,
    io::{Read, Write},
    net::TcpStream,
    path::PathBuf,
    time::Duration,
};

use rtserve_loadgen::{Burst, LoadConfig, Report, Target};

use crate::{
    panels::{Points, Results},
    server::{RedisProcess, ServerProcess, allowed_cpus, cpu_of},
};

const SCENARIOS: [&str; 9] = [
    "keep-alive",
    "new-connection",
    "isolation",
    "overload",
    "spin",
    "burst",
    "mixed",
    "scaling",
    "scoring",
];

/// Latency benchmarks of the `rtserve` binary, with an optional peer side by side.
#[derive(clap::Parser)]
struct Options {
    /// Short runs (what CI does): the numbers are rough, but every scenario runs.
    #[arg(long)]
    quick: bool,
    /// Run only this scenario (repeat the flag for several).
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(SCENARIOS))]
    scenario: Vec<String>,
    /// A peer server's URL (e.g. nginx) to measure side by side.
    #[arg(long)]
    peer: Option<String>,
    /// The peer's worker process, to measure its CPU time too.
    #[arg(long)]
    peer_pid: Option<u32>,
    /// The peer's name and version, for the pictures (e.g. "nginx 1.22.1").
    #[arg(long, default_value = "the peer")]
    peer_name: String,
    /// Passed by `cargo bench`; accepted and ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

fn options() -> Options {
    <Options as clap::Parser>::parse()
}

/// One measured run, for the table and the plot.
struct Row {
    scenario: String,
    server: String,
    report: Report,
    server_cpu: Option<Duration>,
    note: String,
    /// Overload runs: what the server counted, and the capacity the rate was a multiple of.
    server_counts: Option<ServerCounts>,
    capacity: Option<f64>,
    /// A burst run: when the burst started after the warm-up, and for how long.
    burst: Option<(Duration, Duration)>,
}

/// Where the runs go, and how long each is.
struct Bench {
    quick: bool,
    server_cpus: Option<String>,
    load_cpus: Vec<usize>,
    rows: Vec<Row>,
    /// The server's deadline-lateness histogram from the lateness run: (upper bound in µs,
    /// 503s in the bucket), `u64::MAX` for past the last bound.
    lateness: Vec<(u64, u64)>,
    /// The measured capacity C of `/slow?ms=2` on 4 workers, 200s per second, once measured.
    capacity: Option<Option<f64>>,
}

impl Bench {
    /// C for `/slow?ms=2` on 4 workers (nominal 2000 req/s), measured the first time.
    fn slow_capacity(&mut self) -> Option<f64> {
        if self.capacity.is_none() {
            self.capacity = Some(capacity(self, "overload", "/slow?ms=2", "4", 4000.0));
        }
        self.capacity.flatten()
    }

    fn duration(&self) -> Duration {
        if self.quick {
            Duration::from_secs(1)
        } else {
            Duration::from_secs(10)
        }
    }

    fn load(&self, target: Target, rate: f64, connections: usize) -> LoadConfig {
        let mut config = LoadConfig::new(target);
        config.rate = rate;
        config.connections = connections;
        config.duration = self.duration();
        config.warmup = self.duration() / 5;
        config.threads = self.load_cpus.len().clamp(1, 4);
        config.cpus = self.load_cpus.clone();
        config.progress = false;
        config
    }

    /// The server the `/slow` scenarios load: one reactor, 4 workers, a 5 ms deadline.
    fn pool_server(&self) -> ServerProcess {
        ServerProcess::start(
            &["--threads", "1", "--workers", "4", "--deadline-ms", "5"],
            self.server_cpus.as_deref(),
        )
    }

    /// Runs one load against `server` (measuring its CPU) and records it.
    fn run(
        &mut self,
        scenario: &str,
        label: &str,
        server: Option<&ServerProcess>,
        config: &LoadConfig,
        note: String,
    ) -> Option<f64> {
        self.run_measuring(
            scenario,
            label,
            server.map(ServerProcess::pid),
            config,
            note,
        )
    }

    /// Like `run`, measuring the CPU time of process `pid` if given.
    fn run_measuring(
        &mut self,
        scenario: &str,
        label: &str,
        pid: Option<u32>,
        config: &LoadConfig,
        note: String,
    ) -> Option<f64> {
        let before = pid.map(cpu_of);
        let report = match rtserve_loadgen::run(config) {
            Ok(report) => report,
            Err(e) => {
                eprintln!("{scenario} {label}: {e}");
                return None;
            }
        };
        let server_cpu = pid.zip(before).map(|(p, b)| cpu_of(p).saturating_sub(b));
        let achieved = report.achieved_rate();
        eprintln!(
            "{scenario:>14} {label:<28} {:>9.0} req/s  p99 {:>8} µs",
            achieved,
            report.corrected.value_at_quantile(0.99)
        );
        self.rows.push(Row {
            scenario: scenario.to_owned(),
            server: label.to_owned(),
            report,
            server_cpu,
            note,
            server_counts: None,
            capacity: None,
            burst: None,
        });
        Some(achieved)
    }
}

fn main() {
    let options = options();
    let wanted =
        |name: &str| options.scenario.is_empty() || options.scenario.iter().any(|s| s == name);
    let cpus = allowed_cpus();
    let (server_cpus, load_cpus) = match cpus.split_first() {
        Some((first, rest)) if !rest.is_empty() => (Some(first.to_string()), rest.to_vec()),
        _ => (None, Vec::new()),
    };
    let mut bench = Bench {
        quick: options.quick,
        server_cpus,
        load_cpus,
        rows: Vec::new(),
        lateness: Vec::new(),
        capacity: None,
    };
    eprintln!(
        "rtserve latency benchmarks ({}): server on CPU {}, load generator on {:?}",
        if bench.quick { "quick" } else { "full" },
        bench.server_cpus.as_deref().unwrap_or("any"),
        bench.load_cpus
    );
    let peer = options.peer.as_deref().map(|url| {
        Target::parse(url).unwrap_or_else(|e| {
            eprintln!("--peer {url}: {e}");
            std::process::exit(2);
        })
    });

    if wanted("keep-alive") || wanted("new-connection") || wanted("isolation") {
        let server = ServerProcess::start(&["--threads", "1"], bench.server_cpus.as_deref());
        let hello = Target::new(server.addr, "/hello");
        // Saturation first: the highest rate, stepping up by half, that is still served
        // (open-loop) without falling behind: an overloaded open-loop run would only measure
        // the generator's backlog.
        let mut saturation = 0.0;
        let mut rate = 5_000.0;
        while rate <= 400_000.0 {
            let mut load = bench.load(hello.clone(), rate, 64);
            load.duration = bench.duration() / 4;
            load.warmup = Duration::from_millis(100);
            let Ok(report) = rtserve_loadgen::run(&load) else {
                break;
            };
            eprintln!(
                "{:>14} {rate:>9.0} req/s offered, {:>9.0} served, p99 {} µs",
                "saturation?",
                report.achieved_rate(),
                report.corrected.value_at_quantile(0.99)
            );
            if report.achieved_rate() < 0.95 * rate || report.unsent * 50 > report.scheduled {
                break;
            }
            saturation = report.achieved_rate();
            rate *= 1.5;
        }
        if saturation == 0.0 {
            saturation = 5_000.0;
        }
        eprintln!("saturation: {saturation:.0} req/s");
        if wanted("keep-alive") {
            let shares = [0.10, 0.25, 0.50, 0.75, 0.90].map(|share| {
                (
                    (saturation * share).round(),
                    format!("{:.0} % of saturation", share * 100.0),
                )
            });
            // Fixed rates too, for comparing servers at the same load.
            let fixed = [20_000.0, 50_000.0].map(|rate| (rate, "fixed rate".to_owned()));
            for (rate, note) in shares.into_iter().chain(fixed) {
                let load = bench.load(hello.clone(), rate, 50);
                bench.run("keep-alive", "rtserve", Some(&server), &load, note.clone());
                if let Some(peer) = &peer {
                    let load = bench.load(peer.clone(), rate, 50);
                    bench.run_measuring("keep-alive", "peer", options.peer_pid, &load, note);
                }
            }
        }
        if wanted("new-connection") {
            let rate = if bench.quick { 1_000.0 } else { 5_000.0 };
            let mut load = bench.load(hello.clone(), rate, 50);
            load.new_connection_per_request = true;
            bench.run(
                "new-connection",
                "rtserve",
                Some(&server),
                &load,
                String::new(),
            );
            if let Some(peer) = &peer {
                load.target = peer.clone();
                let pid = options.peer_pid;
                bench.run_measuring("new-connection", "peer", pid, &load, String::new());
            }
        }
        if wanted("isolation") {
            let rate = (saturation * 0.25).round();
            let load = bench.load(hello, rate, 50);
            bench.run(
                "isolation",
                "rtserve",
                Some(&server),
                &load,
                "baseline".to_owned(),
            );
            // Every worker busy for longer than the run.
            let hold = bench.duration() * 2;
            let busy: Vec<_> = (0..16)
                .map(|_| {
                    let addr = server.addr;
                    std::thread::spawn(move || slow_request(addr, hold))
                })
                .collect();
            std::thread::sleep(Duration::from_millis(200));
            bench.run(
                "isolation",
                "rtserve",
                Some(&server),
                &load,
                "16 /slow jobs outstanding".to_owned(),
            );
            for b in busy {
                let _ = b.join();
            }
        }
    }

    if wanted("overload") {
        overload(&mut bench);
    }
    if wanted("spin") {
        spin(&mut bench);
    }
    if wanted("burst") {
        burst(&mut bench);
    }
    if wanted("mixed") {
        mixed(&mut bench);
    }
    if wanted("scoring") {
        scoring(&mut bench);
    }

    if wanted("scaling") {
        let most = cpus.len().max(1);
        for reactors in 1..=most {
            // Unpinned: on a small machine the generator and the server share the cores, so
            // this is indicative only.
            let server = ServerProcess::start(&["--threads", &reactors.to_string()], None);
            let hello = Target::new(server.addr, "/hello");
            let mut load = bench.load(hello, if bench.quick { 10_000.0 } else { 40_000.0 }, 64);
            load.cpus = Vec::new();
            bench.run(
                "scaling",
                &format!("rtserve, {reactors} reactor(s)"),
                Some(&server),
                &load,
                "generator unpinned: indicative only".to_owned(),
            );
        }
    }

    report(&bench, peer.is_some(), &options.peer_name);
}

/// Measures the pool's capacity C for `path` (its route's 200s per second, counted by the
/// server) while offered `offered` req/s with a 1 s deadline, so that nothing misses: median of
/// three runs (one when quick), first in first out.
///
/// Counted by the server, because at the client a request that waited for a busy connection
/// looks late although the pool served it in time; FIFO, because newest-first order would
/// leave old requests waiting most of the lax deadline, holding the generator's connections.
fn capacity(bench: &Bench, scenario: &str, path: &str, workers: &str, offered: f64) -> Option<f64> {
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
    let mut capacities: Vec<f64> = (0..if bench.quick { 1 } else { 3 })
        .filter_map(|_| {
            let mut load = bench.load(target.clone(), offered, 1000);
            load.deadline = Some(Duration::from_secs(1));
            let before = ServerCounts::read(lax.addr, route)?;
            let started = std::time::Instant::now();
            let report = rtserve_loadgen::run(&load).ok()?;
            let elapsed = started.elapsed().as_secs_f64();
            let served = ServerCounts::read(lax.addr, route)?.since(&before);
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
    match capacity {
        Some(c) => eprintln!("{scenario:>14} C = {c:.0} 200s/s ({capacities:.0?})"),
        None => eprintln!("{scenario:>14} capacity could not be measured"),
    }
    capacity
}

/// Runs `path` at each of `factors` × `capacity` against a server with `deadline` and
/// `workers`, one row each, with the server's own counts.
fn sweep(
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
        let before = ServerCounts::read(server.addr, route);
        let note = format!("{factor}× C, {deadline_ms} ms deadline");
        bench.run(scenario, "rtserve", Some(&server), &load, note);
        let after = ServerCounts::read(server.addr, route);
        if let (Some(before), Some(after), Some(row)) = (before, after, bench.rows.last_mut()) {
            row.server_counts = Some(after.since(&before));
            row.capacity = Some(capacity);
        }
    }
}

/// Goodput under overload: 4 workers, `/slow?ms=2` jobs (nominal capacity 2000 req/s), a 5 ms
/// deadline, at 0.5, 1, 1.5, 2 and 4 × C; each run's goodput (2xx within the deadline, per
/// second, at the client) as a share of C.
fn overload(bench: &mut Bench) {
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
fn lateness_buckets(addr: std::net::SocketAddr) -> Vec<(u64, u64)> {
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
/// allows, so the question is only whether goodput holds up past capacity.
fn spin(bench: &mut Bench) {
    let path = "/spin?us=1000";
    let Some(capacity) = capacity(bench, "spin", path, "4", 2000.0) else {
        return;
    };
    let spin = (path, "4", Duration::from_millis(10));
    sweep(bench, "spin", spin, capacity, &[0.5, 1.0, 2.0, 4.0]);
}

/// A burst: 0.5 × C, then 3 × C for 2 s, then 0.5 × C again, with goodput per 50 ms window.
fn burst(bench: &mut Bench) {
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
    bench.run("burst", "rtserve", Some(&server), &load, note);
    if let Some(row) = bench.rows.last_mut() {
        row.capacity = Some(capacity);
        row.burst = Some((start, length));
    }
}

/// The width of the burst's goodput windows.
const BURST_WINDOW: Duration = Duration::from_millis(50);

/// Mixed load: `/hello` at a fixed rate while `/slow` runs at 4 × C, against the same `/hello`
/// rate while the same extra rate goes to an inline route that answers 503 (the reactor's
/// work is then the same, and only the pool's overload differs). Three interleaved runs each.
fn mixed(bench: &mut Bench) {
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

/// The scoring example (`examples/scoring.rs`), the library's real use: `POST /v1/score` with
/// a JSON transaction, keep-alive, at 5 k and 20 k req/s (the account's history is cached after
/// the first request, so this is the inline path: JSON in, the model, JSON out), beside
/// `/hello` at 20 k req/s in the keep-alive scenario; then the store's path
/// ([`scoring_store`]).
fn scoring(bench: &mut Bench) {
    // The benchmark runs from target/<profile>/deps; the example is built beside it.
    let bin = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.join("examples/scoring")))
        .filter(|bin| bin.exists());
    let Some(bin) = bin else {
        eprintln!(
            "{:>14} skipped: build the example first (cargo build --release --example scoring)",
            "scoring"
        );
        return;
    };
    let server = ServerProcess::start_binary(
        &bin.to_string_lossy(),
        &["--threads", "1"],
        bench.server_cpus.as_deref(),
    );
    let tx = br#"{"account":"acc-17","amount_cents":125000,"country":"FR","merchant":"electronics","hour":3}"#;
    let rates: &[f64] = if bench.quick {
        &[2_000.0]
    } else {
        &[5_000.0, 20_000.0]
    };
    for &rate in rates {
        let mut load = bench.load(Target::new(server.addr, "/v1/score"), rate, 50);
        load.method = "POST".to_owned();
        load.body = tx.to_vec();
        load.headers = vec![("Content-Type".to_owned(), "application/json".to_owned())];
        let note = "POST /v1/score, JSON, inline".to_owned();
        bench.run("scoring", "rtserve", Some(&server), &load, note);
    }
    drop(server);
    scoring_store(bench, &bin.to_string_lossy());
}

/// The scoring example's store path: every score looks its account's history up, at one rate,
/// (1) in the in-process store (`--no-cache`: a blocking lookup of 1 to 3 ms on the worker
/// pool), (2) in Redis with the async client, in an async handler, and (3) in Redis with the
/// blocking client, as a job on the worker pool: the same `GET` both ways. Redis is a
/// `redis-server` of the benchmark's own, unpinned; without one the Redis runs are skipped,
/// saying why.
fn scoring_store(bench: &mut Bench, bin: &str) {
    let rate = if bench.quick { 1_000.0 } else { 2_000.0 };
    let tx = br#"{"account":"acc-17","amount_cents":125000,"country":"FR","merchant":"electronics","hour":3}"#;
    let measure = |bench: &mut Bench, args: &[&str], note: &str| {
        let server = ServerProcess::start_binary(bin, args, bench.server_cpus.as_deref());
        let mut load = bench.load(Target::new(server.addr, "/v1/score"), rate, 50);
        load.method = "POST".to_owned();
        load.body = tx.to_vec();
        load.headers = vec![("Content-Type".to_owned(), "application/json".to_owned())];
        bench.run("scoring", "rtserve", Some(&server), &load, note.to_owned());
    };
    measure(
        bench,
        &["--threads", "1", "--no-cache"],
        "POST /v1/score, in-process store (1-3 ms, blocking, on the pool)",
    );
    let redis = match RedisProcess::start() {
        Ok(redis) => redis,
        Err(why) => {
            eprintln!("{:>14} Redis store runs skipped: {why}", "scoring");
            return;
        }
    };
    let seeded = std::process::Command::new(bin)
        .args(["--store", &redis.url, "--seed", "1000"])
        .stderr(std::process::Stdio::null())
        .status();
    if !seeded.as_ref().is_ok_and(|status| status.success()) {
        eprintln!(
            "{:>14} Redis store runs skipped: seeding failed ({seeded:?})",
            "scoring"
        );
        return;
    }
    for (client, note) in [
        (
            "async",
            "POST /v1/score, Redis GET, async client (Reply::spawn)",
        ),
        (
            "blocking",
            "POST /v1/score, Redis GET, blocking client on the pool",
        ),
    ] {
        let args = [
            "--threads",
            "1",
            "--store",
            &redis.url,
            "--store-client",
            client,
        ];
        measure(bench, &args, note);
    }
}

/// What the server counted of one route: its 200s, and 503s by reason (those are counted
/// server-wide, and the scenarios offload one route at a time), from its `/metrics`.
#[derive(Clone, Copy, Debug, Default)]
struct ServerCounts {
    ok: f64,
    late: f64,
    refused: f64,
}

impl ServerCounts {
    fn read(addr: std::net::SocketAddr, route: &str) -> Option<Self> {
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
            late: shed("deadline"),
            refused: shed("queue-full") + shed("expected-miss") + shed("not-started"),
        })
    }

    fn since(&self, before: &Self) -> Self {
        Self {
            ok: self.ok - before.ok,
            late: self.late - before.late,
            refused: self.refused - before.refused,
        }
    }
}

/// Holds one /slow request open for `hold`.
fn slow_request(addr: std::net::SocketAddr, hold: Duration) {
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

fn us(v: u64) -> String {
    if v >= 10_000 {
        format!("{:.1} ms", v as f64 / 1000.0)
    } else {
        format!("{v} µs")
    }
}

/// A quantile of `h` (µs), or a dash for an empty histogram.
fn quantile(h: &rtserve_loadgen::Histogram<u64>, p: f64) -> String {
    if h.is_empty() {
        "—".to_owned()
    } else {
        us(h.value_at_quantile(p))
    }
}

/// The overload and spin runs: goodput as a share of C, and how soon the refusals came.
fn goodput_tables(table: &mut String, bench: &Bench) {
    for (scenario, what) in [
        ("overload", "4 workers, `/slow?ms=2`"),
        ("spin", "4 workers on one core, `/spin?us=1000`"),
    ] {
        let rows: Vec<&Row> = bench
            .rows
            .iter()
            .filter(|r| r.scenario == scenario)
            .collect();
        let Some(capacity) = rows.first().and_then(|r| r.capacity) else {
            continue;
        };
        let deadline = rows[0].report.deadline.unwrap_or_default();
        let _ = writeln!(
            table,
            "\n{scenario}: C = {capacity:.0} 200s/s ({what}, 2× nominal offered with a 1 s \
             deadline, counted by the server). Goodput: 2xx within the {} ms deadline per \
             second, at the client.\n\n\
             | offered | goodput (share of C) | all responses within deadline + 1 ms | 503 share | \
             503 p50 | 503 p99 | 2xx p99 | 2xx p99.9 | server: jobs run that missed | server: refused at once | lost |\n\
             |---|---|---|---|---|---|---|---|---|---|---|",
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
                "| {} | **{:.0} %** | {:.2} % | {:.1} % | {} | {} | {} | {} | {missed} | {refused} | {} |",
                row.note,
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

/// The burst: goodput per window as a share of C, before, during and after.
fn burst_table(table: &mut String, bench: &Bench) {
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
            row.note,
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
fn mixed_table(table: &mut String, bench: &Bench) {
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

/// Prints the table and writes the table, `.hgrm` files and the plot under `target/bench/`.
fn report(bench: &Bench, with_peer: bool, peer_name: &str) {
    let mut table = String::new();
    let _ = writeln!(
        table,
        "| scenario | server | note | target req/s | achieved req/s | p50 | p90 | p99 | p99.9 | p99.99 | max | 503 | errors | unsent | server CPU per request |"
    );
    let _ = writeln!(
        table,
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for row in &bench.rows {
        let r = &row.report;
        let h = &r.corrected;
        let cpu = row
            .server_cpu
            .filter(|_| r.completed > 0)
            .map(|c| format!("{:.1} µs", c.as_secs_f64() * 1e6 / r.completed as f64))
            .unwrap_or_else(|| "—".to_owned());
        let _ = writeln!(
            table,
            "| {} | {} | {} | {:.0} | {:.0} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            row.scenario,
            row.server,
            row.note,
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
            r.unsent,
            cpu
        );
    }
    goodput_tables(&mut table, bench);
    burst_table(&mut table, bench);
    mixed_table(&mut table, bench);
    if with_peer {
        let _ = writeln!(
            table,
            "\n| scenario | note | p50 ratio | p99 ratio | p99.9 ratio | max ratio | throughput ratio |\n|---|---|---|---|---|---|---|"
        );
        for pair in bench.rows.windows(2) {
            let (a, b) = (&pair[0], &pair[1]);
            if a.server == "rtserve" && b.server == "peer" && a.scenario == b.scenario {
                let q = |r: &Report, p: f64| r.corrected.value_at_quantile(p).max(1) as f64;
                let _ = writeln!(
                    table,
                    "| {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |",
                    a.scenario,
                    a.note,
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
    for (name, chart) in panels::panels(&results(bench, with_peer.then_some(peer_name))) {
        let _ = std::fs::write(dir.join(format!("{name}.svg")), chart.svg());
    }
    eprintln!(
        "wrote {}/latency.md, a picture per question (.svg) and .hgrm files",
        dir.display()
    );
}

/// A run's latency by percentile, for the pictures.
fn points(report: &Report) -> Points {
    panels::percentiles()
        .into_iter()
        .map(|p| (p, report.corrected.value_at_quantile(p / 100.0) as f64))
        .collect()
}

/// What the pictures are drawn from, out of the rows; `peer_name` if a peer ran.
fn results(bench: &Bench, peer_name: Option<&str>) -> Results {
    let rows = |scenario: &'static str| bench.rows.iter().filter(move |r| r.scenario == scenario);
    let mut results = Results {
        footer: footer(peer_name.unwrap_or("none in this run")),
        peer: peer_name.unwrap_or_default().to_owned(),
        lateness: bench.lateness.clone(),
        ..Results::default()
    };
    for row in rows("keep-alive").filter(|r| r.server == "rtserve") {
        let peer = rows("keep-alive")
            .find(|p| {
                p.server == "peer"
                    && p.note == row.note
                    && p.report.target_rate == row.report.target_rate
            })
            .map(|p| points(&p.report));
        let level = format!("{:.0} req/s", row.report.target_rate);
        results.keep_alive.push((level, points(&row.report), peer));
    }
    if let Some(ours) = rows("new-connection").find(|r| r.server == "rtserve") {
        let theirs = rows("new-connection")
            .find(|r| r.server == "peer")
            .map(|r| points(&r.report));
        results.new_connection = Some((points(&ours.report), theirs));
    }
    for row in rows("isolation") {
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
        results.goodput.push((
            r.target_rate / capacity,
            r.goodput() / capacity,
            1.0 - r.share_within(deadline + Duration::from_millis(1)),
        ));
    }
    if let Some(row) = rows("burst").next()
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

/// The run's date, commit, machine and peer, for the pictures' footers.
fn footer(peer_name: &str) -> String {
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
        "Run {} at commit {}; {} CPUs ({cpu}), Linux {}; peer: {peer_name}. \
         Open loop, latency from each request's scheduled send time.",
        run("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
        run("git", &["rev-parse", "--short", "HEAD"]),
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        kernel.trim()
    )
}
