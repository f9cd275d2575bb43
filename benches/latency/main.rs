//! Latency benchmarks: `cargo bench --bench latency [-- --quick] [--scenario NAME]… [--peer URL]`.
//!
//! Runs `rtserve` as a process of its own (pinned to the first CPU this process may use, with
//! the load generator on the others, where there are two or more) and drives it with the
//! open-loop generator of `rtserve-loadgen`: latency counts from each request's scheduled send
//! time, so a stall shows in the tail instead of slowing the generator down. Prints a
//! Markdown table and writes it, the `.hgrm` percentile distributions and an SVG plot under
//! `target/bench/`. It reports; it asserts nothing about the numbers.

mod chart;
mod overload;
mod panels;
mod server;

use std::{fmt::Write as _, path::PathBuf, time::Duration};

use rtserve_loadgen::{LoadConfig, Report, Target};

use crate::{
    overload::{
        ServerCounts, burst, burst_table, capacity, goodput_tables, mixed, mixed_table,
        slow_request,
    },
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
        overload::overload(&mut bench);
    }
    if wanted("spin") {
        overload::spin(&mut bench);
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
