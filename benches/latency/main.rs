//! Latency benchmarks: `cargo bench --bench latency [-- --quick] [--scenario NAME]… [--peer URL]…`.
//!
//! Runs `rtserve` as a process of its own (pinned to the first CPU this process may use, with
//! the load generator on the others, where there are two or more) and drives it with the
//! open-loop generator of `rtserve-loadgen`: latency counts from each request's scheduled send
//! time, so a stall shows in the tail instead of slowing the generator down. Prints a
//! Markdown table and writes it, the `.hgrm` percentile distributions and an SVG plot under
//! `target/bench/`. It reports; it asserts nothing about the numbers.
//!
//! With `--noise BUSY_MS/PERIOD_MS[:fifo]` the overload, spin and burst scenarios run again
//! beside a neighbour that burns the server's CPU on that duty cycle ([`noise`]), each against
//! its capacity measured under the same noise. A run that the host spoiled (steal time, or a
//! generator that could not keep its schedule) is repeated before anything is drawn.

mod caller;
mod cells;
mod chart;
mod hello;
mod metrics;
mod noise;
mod overload;
mod panels;
mod report;
mod runner;
mod scoring;
mod server;
mod tables;

use std::collections::BTreeMap;

use rtserve_loadgen::Target;

use crate::{
    hello::Peer,
    noise::{Noise, NoiseKind},
    overload::{burst, mixed},
    report::report,
    runner::{Bench, lag_floor_limit},
    scoring::scoring,
    server::allowed_cpus,
};

/// The scenarios, as `--scenario` names them.
const SCENARIOS: [&str; 9] = [
    "keep-alive",
    "new-connection",
    "isolation",
    "overload",
    "spin",
    "burst",
    "mixed",
    "caller",
    "scoring",
];

/// Latency benchmarks of the `rtserve` binary, with optional peers side by side.
#[derive(clap::Parser)]
struct Options {
    /// Short runs (what CI does): the numbers are rough, but every scenario runs.
    #[arg(long)]
    quick: bool,
    /// Run only this scenario (repeat the flag for several).
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(SCENARIOS))]
    scenario: Vec<String>,
    /// A peer server's URL (e.g. nginx) to measure side by side. Repeat the flag for several
    /// (nginx with and without `deferred`, say): each runs the new-connection scenario after
    /// rtserve, the first also every keep-alive level (how a connection is accepted matters
    /// only to new ones).
    #[arg(long)]
    peer: Vec<String>,
    /// The worker process of the peer in the same place, to measure its CPU time too.
    #[arg(long)]
    peer_pid: Vec<u32>,
    /// The name of the peer in the same place, for the table and the pictures (e.g. "nginx
    /// 1.22.1"); "peer N" if not given.
    #[arg(long)]
    peer_name: Vec<String>,
    /// Run the overload, spin and burst scenarios again beside a neighbour on the server's CPU
    /// that spins BUSY_MS of every PERIOD_MS: `BUSY_MS/PERIOD_MS` (SCHED_OTHER, nice 0) or
    /// `BUSY_MS/PERIOD_MS:fifo` (SCHED_FIFO priority 1, needs root). Repeat the flag or give a
    /// list; `off` for none. Default: none with --quick, else 1/4 and 1/4:fifo.
    #[arg(long, value_delimiter = ',', value_name = "BUSY_MS/PERIOD_MS[:fifo]")]
    noise: Vec<String>,
    /// A run whose generator schedule lag p99 is above this many µs is taken as spoiled by
    /// the host and repeated. Default: twice the generator's own p99 in a quiet run at the
    /// start, at least 1000.
    #[arg(long, value_name = "US")]
    max_lag_us: Option<u64>,
    /// The neighbour itself: spin on this duty cycle until killed (started by the suite).
    #[arg(long, hide = true)]
    noise_child: Option<String>,
    /// The CPU the neighbour pins itself to.
    #[arg(long, hide = true, default_value_t = 0)]
    noise_cpu: usize,
    /// Passed by `cargo bench`; accepted and ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

/// The command line, parsed (clap exits on an error).
fn options() -> Options {
    <Options as clap::Parser>::parse()
}

/// The noise settings a full run measures when `--noise` is not given.
const DEFAULT_NOISE: [&str; 2] = ["1/4", "1/4:fifo"];

/// The noise settings asked for (or the defaults of a full run), less those this machine
/// cannot run, each said on stderr with its reason and kept in `skipped`.
fn noise_settings(options: &Options, one_cpu: bool, skipped: &mut Vec<String>) -> Vec<Noise> {
    let asked: Vec<&str> = if options.noise.is_empty() && !options.quick {
        DEFAULT_NOISE.to_vec()
    } else {
        options.noise.iter().map(String::as_str).collect()
    };
    let mut noises = Vec::new();
    for spec in asked.into_iter().filter(|s| *s != "off") {
        let noise: Noise = spec.parse().unwrap_or_else(|e| {
            eprintln!("--noise {e}");
            std::process::exit(2);
        });
        let why = if one_cpu {
            Some(
                "one CPU only: the neighbour needs the server's core apart from the generator's"
                    .to_owned(),
            )
        } else if noise.kind == NoiseKind::Fifo {
            noise::fifo_unavailable()
        } else {
            None
        };
        match why {
            Some(why) => {
                eprintln!("{noise} skipped: {why}");
                skipped.push(format!("{noise}: {why}"));
            }
            None if !noises.contains(&noise) => noises.push(noise),
            None => {}
        }
    }
    noises
}

/// Runs the scenarios asked for, then writes the table and the pictures.
fn main() {
    let options = options();
    if let Some(duty) = &options.noise_child {
        noise::neighbour_main(duty, options.noise_cpu);
    }
    let wanted =
        |name: &str| options.scenario.is_empty() || options.scenario.iter().any(|s| s == name);
    let cpus = allowed_cpus();
    let (server_cpus, load_cpus) = match cpus.split_first() {
        Some((first, rest)) if !rest.is_empty() => (Some(first.to_string()), rest.to_vec()),
        _ => (None, Vec::new()),
    };
    let mut skipped = Vec::new();
    let noises = noise_settings(&options, server_cpus.is_none(), &mut skipped);
    let mut bench = Bench {
        quick: options.quick,
        server_cpus,
        load_cpus,
        rows: Vec::new(),
        lateness: Vec::new(),
        capacity: BTreeMap::new(),
        noise: None,
        noises,
        skipped,
        max_repeats: if options.quick { 1 } else { 2 },
        repeats: Vec::new(),
        lag_limit_us: noise::LAG_LIMIT_US,
    };
    bench.lag_limit_us = options
        .max_lag_us
        .unwrap_or_else(|| lag_floor_limit(&bench));
    eprintln!(
        "rtserve latency benchmarks ({}): server on CPU {}, load generator on {:?}; noise: {}",
        if bench.quick { "quick" } else { "full" },
        bench.server_cpus.as_deref().unwrap_or("any"),
        bench.load_cpus,
        if bench.noises.is_empty() {
            "none".to_owned()
        } else {
            bench
                .noises
                .iter()
                .map(Noise::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        }
    );
    if options.peer_pid.len() > options.peer.len() || options.peer_name.len() > options.peer.len() {
        eprintln!("more --peer-pid or --peer-name than --peer");
        std::process::exit(2);
    }
    let peers: Vec<Peer> = options
        .peer
        .iter()
        .enumerate()
        .map(|(i, url)| Peer {
            target: Target::parse(url).unwrap_or_else(|e| {
                eprintln!("--peer {url}: {e}");
                std::process::exit(2);
            }),
            pid: options.peer_pid.get(i).copied(),
            name: options
                .peer_name
                .get(i)
                .cloned()
                .unwrap_or_else(|| format!("peer {}", i + 1)),
        })
        .collect();
    // Rows are told apart by server name.
    for (i, peer) in peers.iter().enumerate() {
        if peer.name == "rtserve" || peers[..i].iter().any(|p| p.name == peer.name) {
            eprintln!(
                "--peer-name {:?}: taken (by rtserve or another peer)",
                peer.name
            );
            std::process::exit(2);
        }
    }

    if wanted("keep-alive") || wanted("new-connection") || wanted("isolation") {
        hello::hello(&mut bench, &wanted, &peers);
    }
    for noise in bench.conditions() {
        bench.noise = noise;
        if wanted("overload") {
            overload::overload(&mut bench);
        }
        if wanted("spin") {
            overload::spin(&mut bench);
        }
        if wanted("burst") {
            burst(&mut bench);
        }
    }
    bench.noise = None;
    if wanted("mixed") {
        mixed(&mut bench);
    }
    if wanted("caller") {
        caller::caller(&mut bench);
    }
    if wanted("scoring") {
        scoring(&mut bench);
    }

    let names: Vec<&str> = peers.iter().map(|p| p.name.as_str()).collect();
    report(&bench, &names);
}
