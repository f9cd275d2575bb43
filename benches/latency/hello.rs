//! The `/hello` scenarios: keep-alive at shares of the saturation rate (and at fixed rates,
//! beside the peer if one is given), a new connection per request, and isolation from a busy
//! worker pool.

use std::time::Duration;

use rtserve_loadgen::{LoadConfig, Target};

use crate::{
    cells::us,
    noise::{Cause, Spoil},
    overload::slow_request,
    panels::BASELINE_SLACK,
    runner::{Bench, Row},
    server::ServerProcess,
};

/// A peer server measured side by side (`--peer`).
pub(crate) struct Peer {
    /// Where its `/hello` (or whatever the URL names) is.
    pub(crate) target: Target,
    /// Its worker process, to measure its CPU time too.
    pub(crate) pid: Option<u32>,
    /// Its name: the label of its rows.
    pub(crate) name: String,
}

/// Runs the keep-alive, new-connection and isolation scenarios that `wanted` names, against
/// one rtserve with one reactor, after finding its saturation rate; keep-alive beside the
/// first of `peers`, new connections beside each.
pub(crate) fn hello(bench: &mut Bench, wanted: &dyn Fn(&str) -> bool, peers: &[Peer]) {
    let server = ServerProcess::start(&["--threads", "1"], bench.server_cpus.as_deref());
    let hello = Target::new(server.addr, "/hello");
    let saturation = saturation(bench, &hello);
    if wanted("keep-alive") {
        keep_alive(bench, &server, &hello, saturation, peers.first());
    }
    if wanted("new-connection") {
        new_connection(bench, &server, &hello, peers);
    }
    if wanted("isolation") {
        isolation(bench, &server, hello, saturation);
    }
}

/// The highest rate, stepping up by half from 5,000 req/s, that `hello` still serves (open
/// loop) without falling behind: an overloaded open-loop run would only measure the
/// generator's backlog. 5,000 req/s if not even that is served.
fn saturation(bench: &Bench, hello: &Target) -> f64 {
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
        if report.achieved_rate() < 0.95 * rate
            || report.requests.unsent * 50 > report.requests.scheduled
        {
            break;
        }
        saturation = report.achieved_rate();
        rate *= 1.5;
    }
    if saturation == 0.0 {
        saturation = 5_000.0;
    }
    eprintln!("saturation: {saturation:.0} req/s");
    saturation
}

/// Keep-alive `/hello` at 10 to 90 % of `saturation` and at two fixed rates, each beside the
/// peer at the same rate.
fn keep_alive(
    bench: &mut Bench,
    server: &ServerProcess,
    hello: &Target,
    saturation: f64,
    peer: Option<&Peer>,
) {
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
        bench.run("keep-alive", "rtserve", Some(server), &load, note.clone());
        if let Some(peer) = peer {
            let load = bench.load(peer.target.clone(), rate, 50);
            bench.run_counted("keep-alive", &peer.name, peer.pid, &load, note, None);
        }
    }
}

/// A new connection for every request, then the same against each peer in turn.
fn new_connection(bench: &mut Bench, server: &ServerProcess, hello: &Target, peers: &[Peer]) {
    let rate = if bench.quick { 1_000.0 } else { 5_000.0 };
    let mut load = bench.load(hello.clone(), rate, 50);
    load.new_connection_per_request = true;
    bench.run(
        "new-connection",
        "rtserve",
        Some(server),
        &load,
        String::new(),
    );
    for peer in peers {
        load.target = peer.target.clone();
        bench.run_counted(
            "new-connection",
            &peer.name,
            peer.pid,
            &load,
            String::new(),
            None,
        );
    }
}

/// `/hello` at a quarter of `saturation` alone, then while 16 `/slow` jobs hold every worker
/// for longer than the run; the baseline is repeated while the host spoils it.
fn isolation(bench: &mut Bench, server: &ServerProcess, hello: Target, saturation: f64) {
    let rate = (saturation * 0.25).round();
    let load = bench.load(hello, rate, 50);
    bench.run(
        "isolation",
        "rtserve",
        Some(server),
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
        Some(server),
        &load,
        "16 /slow jobs outstanding".to_owned(),
    );
    for b in busy {
        let _ = b.join();
    }
    recheck_baseline(bench, server, &load);
}

/// Repeats the isolation baseline (the row before the last) while its p99 is worse than the
/// loaded run's (the last row) by more than [`BASELINE_SLACK`], at most `max_repeats` times;
/// marks it spoiled if it stays worse, so that no ratio against it is drawn as a finding.
fn recheck_baseline(bench: &mut Bench, server: &ServerProcess, load: &LoadConfig) {
    let n = bench.rows.len();
    if n < 2
        || bench.rows[n - 2].scenario != "isolation"
        || bench.rows[n - 1].scenario != "isolation"
    {
        return;
    }
    let p99 = |r: &Row| r.report.corrected.value_at_quantile(0.99);
    let loaded = p99(&bench.rows[n - 1]);
    let worse = |base: u64| -> Option<Spoil> {
        (base as f64 > BASELINE_SLACK * loaded.max(1) as f64).then(|| Spoil {
            cause: Cause::Baseline,
            detail: format!(
                "/hello alone p99 {} against {} beside 16 /slow jobs",
                us(base),
                us(loaded)
            ),
        })
    };
    let mut attempt = 0;
    while let Some(spoil) = worse(p99(&bench.rows[n - 2])) {
        if attempt == bench.max_repeats {
            eprintln!("isolation baseline: still spoiled ({spoil}), kept and marked");
            bench.rows[n - 2].spoiled = Some(spoil);
            return;
        }
        attempt += 1;
        eprintln!("isolation baseline: spoiled by the host ({spoil}), repeating it");
        bench
            .repeats
            .push(("isolation rtserve baseline".to_owned(), spoil));
        let Some(m) = bench.measure(
            "isolation rtserve baseline",
            load,
            Some(server.pid()),
            None,
            true,
        ) else {
            return;
        };
        let row = &mut bench.rows[n - 2];
        row.report = m.report;
        row.server_cpu = m.server_cpu;
        row.signs = m.signs;
        row.spoiled = m.spoiled;
    }
}
