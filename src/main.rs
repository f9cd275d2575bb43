//! `rtserve`: the command-line server.
//!
//! Parses flags into a reactor configuration, serves the demo routes, and shuts down
//! gracefully on SIGINT or SIGTERM (a second signal, or SIGQUIT, exits at once).
#![forbid(unsafe_code)]

mod cli;
mod routes;

use std::{
    fs::OpenOptions,
    io::{self, LineWriter, Write},
    path::Path,
    process::ExitCode,
    sync::{Mutex, mpsc},
    thread,
    time::{Duration, SystemTime},
};

use clap::Parser;
use rtserve_reactor::{LogRecord, RequestLog, Server};
use signal_hook::{
    consts::{SIGINT, SIGQUIT, SIGTERM},
    iterator::Signals,
};

use crate::cli::Args;

/// Lines the access log may queue before it drops (and counts) them.
const ACCESS_LOG_QUEUE: usize = 64 * 1024;

fn main() -> ExitCode {
    let args = Args::parse();
    env_logger::Builder::new()
        .filter_level(args.log_level())
        .parse_env("RTSERVE_LOG")
        .init();
    match run(&args) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("rtserve: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<ExitCode, String> {
    // Signals first, so that one arriving while the server starts is not lost.
    let mut signals = Signals::new([SIGINT, SIGTERM, SIGQUIT])
        .map_err(|e| format!("cannot install signal handlers: {e}"))?;
    let mut config = args.config();
    if let Some(path) = &args.access_log {
        config.request_log = Some(access_log(path)?);
    }
    let (reactors, workers) = (config.reactors, config.workers);
    let server = Server::start(
        config,
        routes::router(Duration::from_millis(args.max_slow_ms)),
    )
    .map_err(|e| e.to_string())?;
    eprintln!(
        "rtserve {} listening on http://{} (reactors {reactors}, workers {workers})",
        env!("CARGO_PKG_VERSION"),
        server.local_addr(),
    );

    match signals.forever().next() {
        Some(SIGQUIT) | None => {
            log::warn!("SIGQUIT: exiting now");
            return Ok(ExitCode::FAILURE);
        }
        Some(signal) => log::info!("signal {signal}: shutting down (a second one exits now)"),
    }
    server.shutdown();
    let (done, joined) = mpsc::channel();
    thread::spawn(move || {
        let _ = done.send(server.join());
    });
    loop {
        match joined.recv_timeout(Duration::from_millis(20)) {
            Ok(Ok(())) => {
                log::info!("stopped");
                return Ok(ExitCode::SUCCESS);
            }
            Ok(Err(e)) => return Err(format!("a reactor failed: {e}")),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err("the shutdown thread died".to_owned());
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if let Some(signal) = signals.pending().next() {
            log::warn!("signal {signal} during shutdown: exiting now");
            return Ok(ExitCode::FAILURE);
        }
    }
}

/// An access log writing one line per response to `path`, or to stderr for `-`.
fn access_log(path: &Path) -> Result<RequestLog, String> {
    let sink: Box<dyn Write + Send> = if path == Path::new("-") {
        Box::new(io::stderr())
    } else {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| format!("cannot open access log {}: {e}", path.display()))?;
        Box::new(file)
    };
    // Only the log's own thread writes, so the lock is never contended.
    let sink = Mutex::new(LineWriter::new(sink));
    Ok(RequestLog::new(
        ACCESS_LOG_QUEUE,
        move |r: &LogRecord<'_>| {
            let at = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default();
            let mut sink = sink.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let _ = writeln!(
                sink,
                "{}.{:03} status={} route={} latency_us={} reactor={}",
                at.as_secs(),
                at.subsec_millis(),
                r.status.as_u16(),
                r.route,
                r.latency.as_micros(),
                r.reactor,
            );
        },
    ))
}
