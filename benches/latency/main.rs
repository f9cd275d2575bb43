//! Latency benchmarks: `cargo bench --bench latency [-- --quick] [--scenario NAME] [--peer URL]`.
//!
//! Runs `rtserve` as a process of its own (pinned to the first CPU this process may use, with
//! the load generator on the others, where there are two or more) and drives it with the
//! open-loop generator of `rtserve-loadgen`: latency counts from each request's scheduled send
//! time, so a stall shows in the tail instead of slowing the generator down. Prints a
//! Markdown table and writes it, the `.hgrm` percentile distributions and an SVG plot under
//! `target/bench/`. It reports; it asserts nothing about the numbers.

mod plot;
mod server;

use std::{
    fmt::Write as _,
    io::{Read, Write},
    net::TcpStream,
    path::PathBuf,
    time::Duration,
};

use rtserve_loadgen::{LoadConfig, Report, Target};

use crate::{
    plot::Curve,
    server::{ServerProcess, allowed_cpus, cpu_of},
};

const SCENARIOS: [&str; 5] = [
    "keep-alive",
    "new-connection",
    "isolation",
    "overload",
    "scaling",
];

/// Latency benchmarks of the `rtserve` binary, with an optional peer side by side.
#[derive(clap::Parser)]
struct Options {
    /// Short runs (what CI does): the numbers are rough, but every scenario runs.
    #[arg(long)]
    quick: bool,
    /// Run one scenario only.
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(SCENARIOS))]
    scenario: Option<String>,
    /// A peer server's URL (e.g. nginx) to measure side by side.
    #[arg(long)]
    peer: Option<String>,
    /// The peer's worker process, to measure its CPU time too.
    #[arg(long)]
    peer_pid: Option<u32>,
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
    /// Overload runs: what the server counted.
    server_counts: Option<ServerCounts>,
}

/// Where the runs go, and how long each is.
struct Bench {
    quick: bool,
    server_cpus: Option<String>,
    load_cpus: Vec<usize>,
    rows: Vec<Row>,
    lines: Vec<(String, f64)>,
    /// The overload scenario's measured capacity C, 2xx per second.
    capacity: Option<f64>,
}

impl Bench {
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
        });
        Some(achieved)
    }
}

fn main() {
    let options = options();
    let wanted = |name: &str| options.scenario.as_deref().is_none_or(|s| s == name);
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
        lines: Vec::new(),
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

    report(&bench, peer.is_some());
}

/// Goodput under overload: 4 workers, `/slow?ms=2` jobs (nominal capacity 2000 req/s).
///
/// Capacity C is measured first, as the 2xx per second at 2× nominal with a 1 s deadline (so
/// that nothing misses), median of three runs, first in first out: newest-first order would
/// leave old requests waiting most of the lax deadline, holding the generator's connections,
/// and measure the generator rather than the pool. Then the server runs with a 5 ms deadline
/// and its default discipline at 0.5, 1, 1.5, 2 and 4 × C, and each run's goodput (2xx within
/// the deadline, per second) is reported as a share of C.
fn overload(bench: &mut Bench) {
    const WORKERS: &str = "4";
    let lax = ServerProcess::start(
        &[
            "--threads",
            "1",
            "--workers",
            WORKERS,
            "--deadline-ms",
            "1000",
        ],
        bench.server_cpus.as_deref(),
    );
    let slow = Target::new(lax.addr, "/slow?ms=2");
    let mut capacities: Vec<f64> = (0..if bench.quick { 1 } else { 3 })
        .filter_map(|_| {
            // Enough connections that the generator never waits for one (a request in
            // flight per connection, up to a second each).
            let mut load = bench.load(slow.clone(), 4000.0, 3000);
            load.deadline = Some(Duration::from_secs(1));
            rtserve_loadgen::run(&load).ok().map(|r| r.goodput())
        })
        .collect();
    drop(lax);
    capacities.sort_by(f64::total_cmp);
    let Some(&capacity) = capacities.get(capacities.len() / 2) else {
        eprintln!("overload: capacity could not be measured");
        return;
    };
    eprintln!(
        "{:>14} C = {capacity:.0} 2xx/s ({capacities:.0?})",
        "overload"
    );
    bench.capacity = Some(capacity);
    let deadline = Duration::from_millis(5);
    let server = ServerProcess::start(
        &["--threads", "1", "--workers", WORKERS, "--deadline-ms", "5"],
        bench.server_cpus.as_deref(),
    );
    let slow = Target::new(server.addr, "/slow?ms=2");
    for factor in [0.5, 1.0, 1.5, 2.0, 4.0] {
        let mut load = bench.load(slow.clone(), (capacity * factor).round(), 200);
        load.deadline = Some(deadline);
        let before = ServerCounts::read(server.addr);
        let note = format!("{factor}× C, 5 ms deadline");
        bench.run("overload", "rtserve", Some(&server), &load, note);
        let after = ServerCounts::read(server.addr);
        if let (Some(before), Some(after), Some(row)) = (before, after, bench.rows.last_mut()) {
            row.server_counts = Some(after.since(&before));
        }
    }
    bench.lines.push(("deadline + 1 ms".to_owned(), 6_000.0));
}

/// What the server counted of `/slow`: answers and 503s by reason, from its `/metrics`.
#[derive(Clone, Copy, Debug, Default)]
struct ServerCounts {
    ok: f64,
    late: f64,
    refused: f64,
}

impl ServerCounts {
    fn read(addr: std::net::SocketAddr) -> Option<Self> {
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
            ok: value("rtserve_requests_total{route=\"/slow\",status=\"200\"}"),
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

/// Prints the table and writes the table, `.hgrm` files and the plot under `target/bench/`.
fn report(bench: &Bench, with_peer: bool) {
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
    let overload: Vec<&Row> = bench
        .rows
        .iter()
        .filter(|r| r.scenario == "overload")
        .collect();
    if let (false, Some(capacity)) = (overload.is_empty(), bench.capacity) {
        let _ = writeln!(
            table,
            "\nOverload: C = {capacity:.0} 2xx/s (4 workers, `/slow?ms=2`, 2× nominal offered \
             with a 1 s deadline). Goodput: 2xx within the 5 ms deadline per second, at the \
             client.\n\n\
             | offered | goodput (share of C) | all responses within deadline + 1 ms | 503 share | \
             503 p50 | 503 p99 | 2xx p99 | 2xx p99.9 | server: jobs run that missed | server: refused at once | lost |\n\
             |---|---|---|---|---|---|---|---|---|---|---|"
        );
        for row in overload {
            let r = &row.report;
            let total = r.corrected.len().max(1) as f64;
            let q = |h: &rtserve_loadgen::Histogram<u64>, p: f64| {
                if h.is_empty() {
                    "—".to_owned()
                } else {
                    us(h.value_at_quantile(p))
                }
            };
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
                100.0 * r.share_within(Duration::from_millis(6)),
                100.0 * r.status_503() as f64 / total,
                q(&r.refused, 0.5),
                q(&r.refused, 0.99),
                q(&r.success, 0.99),
                q(&r.success, 0.999),
                r.unsent + r.errors.total()
            );
        }
    }
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
    let mut curves = Vec::new();
    for (i, row) in bench.rows.iter().enumerate() {
        let name = format!(
            "{:02}-{}-{}",
            i,
            row.scenario,
            row.server.replace([' ', ','], "")
        );
        let _ = std::fs::write(dir.join(format!("{name}.hgrm")), row.report.to_hgrm());
        if row.scenario == "saturation" {
            continue;
        }
        let points = plot::percentiles()
            .into_iter()
            .map(|p| (p, row.report.corrected.value_at_quantile(p / 100.0) as f64))
            .collect();
        curves.push(Curve {
            name: format!(
                "{} {} {:.0}/s {}",
                row.scenario, row.server, row.report.target_rate, row.note
            ),
            points,
        });
    }
    let svg = plot::svg(
        "rtserve latency by percentile (open loop)",
        &curves,
        &bench.lines,
    );
    let _ = std::fs::write(dir.join("latency.svg"), svg);
    eprintln!(
        "wrote {}/latency.md, latency.svg and .hgrm files",
        dir.display()
    );
}
