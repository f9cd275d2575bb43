//! `rtserve-loadgen`: an open-loop HTTP/1.1 latency load generator.
//!
//! The contract: requests are sent on a fixed schedule — `rate` per second, spread evenly over
//! the connections — whether or not earlier ones were answered, and every latency counts from
//! the request's *scheduled* send time to the last byte of its response. A server that stalls
//! therefore shows its stall in the percentiles instead of quietly slowing the generator down
//! ("coordinated omission", corrected as wrk2 does). The uncorrected latency (from the actual
//! send) is kept beside it for comparison. Every scheduled request is accounted for: a
//! response, an error by kind, or "unsent" when the run ended first.
//!
//! ```text
//!   run(&LoadConfig)
//!     ├─ pre-flight connect (refused ⇒ LoadError::Connect)
//!     ├─ thread 0: mio::Poll, connections 0, T, 2T, …  ─┐
//!     ├─ thread 1: mio::Poll, connections 1, T+1, …     ├─ Outcome (HDR histograms, counters)
//!     └─ …                                              ─┘
//!            └──── merged ───► Report ─► Markdown | JSON | .hgrm
//! ```
//!
//! # Examples
//!
//! ```no_run
//! use std::time::Duration;
//! use rtserve_loadgen::{LoadConfig, run};
//!
//! let mut config = LoadConfig::new("http://127.0.0.1:8080/hello".parse()?);
//! config.rate = 20_000.0;
//! config.connections = 50;
//! config.duration = Duration::from_secs(5);
//! let report = run(&config)?;
//! println!("{}", report.to_markdown());
//! # Ok::<(), rtserve_loadgen::LoadError>(())
//! ```
#![forbid(unsafe_code)]
#![doc(test(attr(deny(warnings))))]

mod config;
mod conn;
mod outcome;
mod report;
pub mod response;
mod schedule;
mod worker;

use std::io::Write as _;
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant};

pub use config::{Burst, LoadConfig, LoadError, Target};
pub use hdrhistogram::Histogram;
pub use outcome::{Window, Windows};
pub use report::{ErrorCounts, Report, RequestCounts};

use worker::{Live, Plan};

/// Time between starting the threads and the schedule's time zero, so that every thread has
/// opened its connections before the first send.
const START_DELAY: Duration = Duration::from_millis(50);

/// Run the load described by `config` and report what happened.
///
/// Blocks for the warm-up plus the duration, plus up to the timeout while requests in flight
/// finish.
///
/// # Errors
///
/// [`LoadError::Config`] for invalid parameters, [`LoadError::Connect`] if a connection to the
/// target cannot be opened before the run, [`LoadError::Io`] if a thread, poll or CPU pinning
/// fails. Failures *during* the run are counted in the [`Report`] instead.
pub fn run(config: &LoadConfig) -> Result<Report, LoadError> {
    config.validate()?;
    if config.connections.div_ceil(config.threads) > conn::MAX_CONNECTIONS_PER_THREAD {
        return Err(LoadError::Config(
            "too many connections per thread".to_owned(),
        ));
    }
    // Pre-flight: a target that refuses connections is a configuration error, not a run full
    // of connect errors.
    TcpStream::connect_timeout(&config.target.addr, config.timeout)
        .map_err(|e| LoadError::Connect(config.target.addr, e))?;

    let config = Arc::new(config.clone());
    let request: Arc<[u8]> = config.request_bytes().into();
    let live = Arc::new(Live::default());
    let start = Instant::now() + START_DELAY;
    let mut handles = Vec::with_capacity(config.threads);
    for t in 0..config.threads {
        let plan = Plan {
            config: Arc::clone(&config),
            request: Arc::clone(&request),
            connections: (t..config.connections).step_by(config.threads).collect(),
            start,
            live: Arc::clone(&live),
        };
        let cpu = (!config.cpus.is_empty()).then(|| config.cpus[t % config.cpus.len()]);
        let handle = thread::Builder::new()
            .name(format!("rtserve-load-{t}"))
            .spawn(move || {
                if let Some(cpu) = cpu {
                    pin_to(cpu).map_err(|e| (format!("cannot pin thread {t} to CPU {cpu}"), e))?;
                }
                worker::run(&plan).map_err(|e| (format!("generator thread {t}"), e))
            })
            .map_err(|e| LoadError::Io("cannot spawn a generator thread".to_owned(), e))?;
        handles.push(handle);
    }

    if config.progress {
        report_progress(&config, &live, start, &handles);
    }

    let mut report = Report::new(&config);
    let mut failure = None;
    for handle in handles {
        let outcome = match handle.join() {
            Ok(Ok(outcome)) => outcome,
            Ok(Err((what, e))) => {
                failure.get_or_insert(LoadError::Io(what, e));
                continue;
            }
            Err(_) => {
                failure.get_or_insert_with(|| {
                    LoadError::Io(
                        "a generator thread panicked".to_owned(),
                        std::io::Error::other("panic"),
                    )
                });
                continue;
            }
        };
        outcome.add_to(&mut report);
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(report),
    }
}

/// Pin the calling thread to one CPU.
fn pin_to(cpu: usize) -> std::io::Result<()> {
    if cpu >= rustix::thread::CpuSet::MAX_CPU {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "no such CPU",
        ));
    }
    let mut set = rustix::thread::CpuSet::new();
    set.set(cpu);
    rustix::thread::sched_setaffinity(None, &set)?;
    Ok(())
}

/// Print one line a second on stderr until every thread has finished.
fn report_progress<T>(
    config: &LoadConfig,
    live: &Live,
    start: Instant,
    handles: &[thread::JoinHandle<T>],
) {
    let mut last_print = Instant::now();
    let mut last_completed = 0;
    while !handles.iter().all(thread::JoinHandle::is_finished) {
        thread::sleep(Duration::from_millis(50));
        if last_print.elapsed() < Duration::from_secs(1) {
            continue;
        }
        let completed = live.completed.load(Ordering::Relaxed);
        let elapsed = start.elapsed().as_secs_f64();
        let phase = if elapsed < config.warmup.as_secs_f64() {
            " (warm-up)"
        } else {
            ""
        };
        let rate = (completed - last_completed) as f64 / last_print.elapsed().as_secs_f64();
        let _ = writeln!(
            std::io::stderr(),
            "{elapsed:6.1} s{phase}: {rate:.0} responses/s (target {:.0}), {} errors",
            config.rate,
            live.errors.load(Ordering::Relaxed),
        );
        last_print = Instant::now();
        last_completed = completed;
    }
}

// This crate's README, as published: its Rust snippets are compiled as doc tests here.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct CrateReadmeDoctests;
