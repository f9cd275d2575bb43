//! Caller deadlines (`caller`): a budget stated in a header, measured at the server.
//!
//! The server reads `x-budget` (`--deadline-header x-budget`) and has a 50 ms deadline of its
//! own; the load is `/slow?ms=30` (a 30 ms job) at 200 req/s on 20 connections, once for each
//! of three budgets:
//!
//! - 10 ms: every request is answered 503: at the caller's deadline, or at once when the pool
//!   has learnt that the job cannot make it (`expected-miss`). The server's deadline-lateness
//!   histogram says how long after the deadline each 503 at the deadline went out (goal:
//!   within 0.2 ms; its buckets end at 0.1 and 0.25 ms).
//! - 0.5 ms (`500u`, under `--min-caller-budget-ms`): refused (`caller-budget`) without running
//!   the job. The server's request-duration histogram says how long after the request's
//!   arrival each refusal went out (goal: within 0.1 ms; refused before the router runs, they
//!   are filed under the route "other"), and its queue-wait count that no job ran.
//! - none: the control, every job answered 200 within the 50 ms deadline.
//!
//! Everything but the client's latency is counted by the server, from its `/metrics` before
//! and after each run (the generator's warm-up included).

use std::{fmt::Write as _, time::Duration};

use rtserve_loadgen::Target;

use crate::{cells::us, metrics::CallerCounts, runner::Bench, server::ServerProcess};

/// The header the server reads a caller's budget from.
const HEADER: &str = "x-budget";

/// The budgets measured, in this order: as the table writes them, and the header's value
/// (`None`: no header).
const BUDGETS: [(&str, Option<&str>); 3] = [
    ("10 ms", Some("10")),
    ("0.5 ms", Some("500u")),
    ("none", None),
];

/// The bounds, in µs, at which the table gives a histogram's share: the server's buckets at
/// 0.1 and 0.25 ms, around the goals of 0.1 ms (refusals) and 0.2 ms (lateness).
const BOUNDS_US: [u64; 2] = [100, 250];

/// Runs `/slow?ms=30` with each of [`BUDGETS`] against one server that reads the budget, one
/// row each with what the server counted. Each run is 5 s after a 1 s warm-up, or 1.6 s after
/// 0.4 s with `--quick`.
pub(crate) fn caller(bench: &mut Bench) {
    let server = ServerProcess::start(
        &[
            "--threads",
            "1",
            "--workers",
            "8",
            "--deadline-ms",
            "50",
            "--deadline-header",
            HEADER,
        ],
        bench.server_cpus.as_deref(),
    );
    let target = Target::new(server.addr, "/slow?ms=30");
    for (budget, value) in BUDGETS {
        let mut load = bench.load(target.clone(), 200.0, 20);
        (load.duration, load.warmup) = if bench.quick {
            (Duration::from_millis(1600), Duration::from_millis(400))
        } else {
            (Duration::from_secs(5), Duration::from_secs(1))
        };
        load.headers = value
            .map(|v| vec![(HEADER.to_owned(), v.to_owned())])
            .unwrap_or_default();
        let note = format!("caller budget {budget}");
        let counted = Some((server.addr, "/slow"));
        let Some(mut measured) = bench.measure(&note, &load, Some(server.pid()), counted, true)
        else {
            continue;
        };
        let counts = measured
            .scrapes
            .take()
            .map(|(before, after)| CallerCounts::between(&before, &after));
        bench.record("caller", "rtserve", note, measured).caller = counts;
    }
}

/// The caller-deadline runs: the server's 503s by reason, the jobs it ran, how soon after the
/// deadline (or after arrival) it answered, and the client's latency.
pub(crate) fn caller_table(table: &mut String, bench: &Bench) {
    let rows: Vec<_> = bench
        .rows
        .iter()
        .filter(|r| r.scenario == "caller")
        .collect();
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(
        table,
        "\ncaller: `--deadline-header {HEADER}` on a server with a 50 ms deadline (1 reactor, \
         8 workers), `/slow?ms=30` at 200 req/s on 20 connections; the server's counts (503s \
         summed over routes, the warm-up included). After the deadline: the lateness of the \
         503s at the caller's deadline; after arrival: the refusals' time from the request's \
         arrival (route \"other\").\n\n\
         | caller budget | 200 | 503 deadline | 503 expected-miss | 503 caller-budget | \
         jobs run | server: 503 after the deadline | server: refusal after arrival | \
         client p50 / p99 |\n|---|---|---|---|---|---|---|---|---|"
    );
    for row in rows {
        let budget = row.note.trim_start_matches("caller budget ");
        let h = &row.report.corrected;
        let client = format!(
            "{} / {}",
            us(h.value_at_quantile(0.5)),
            us(h.value_at_quantile(0.99))
        );
        let spoiled = if row.spoiled.is_some() {
            " (spoiled by the host)"
        } else {
            ""
        };
        let Some(c) = &row.caller else {
            let _ = writeln!(
                table,
                "| {budget}{spoiled} | — | — | — | — | — | — | — | {client} |"
            );
            continue;
        };
        let _ = writeln!(
            table,
            "| {budget}{spoiled} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {} | {} | {client} |",
            c.ok,
            c.deadline,
            c.expected_miss,
            c.caller_budget,
            c.jobs,
            shares(&c.lateness),
            shares(&c.refusals)
        );
    }
}

/// The shares of a histogram's observations at or under each of [`BOUNDS_US`], with their
/// number; a dash where there are none.
fn shares(buckets: &[(u64, u64)]) -> String {
    let total: u64 = buckets.iter().map(|&(_, n)| n).sum();
    if total == 0 {
        return "—".to_owned();
    }
    let within: Vec<String> = BOUNDS_US
        .iter()
        .map(|&bound| {
            let n: u64 = buckets
                .iter()
                .filter(|&&(b, _)| b <= bound)
                .map(|&(_, n)| n)
                .sum();
            format!(
                "{:.1} % ≤ {} ms",
                100.0 * n as f64 / total as f64,
                bound as f64 / 1000.0
            )
        })
        .collect();
    format!("{} (of {total})", within.join(", "))
}
