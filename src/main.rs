//! `rtserve`: the command-line server.
//!
//! Parses flags into a reactor configuration, serves the demo routes, and shuts down
//! gracefully on SIGINT or SIGTERM (a second signal, or SIGQUIT, exits at once).
#![forbid(unsafe_code)]

mod cli;
mod handover;
mod routes;

use std::{
    fs::OpenOptions,
    io::{self, LineWriter, Write},
    path::Path,
    process::ExitCode,
    sync::{Arc, Mutex, atomic::AtomicBool, mpsc},
    thread,
    time::{Duration, SystemTime},
};

use clap::Parser;
use rtserve_reactor::{LogRecord, RequestLog, Server, ShutdownSignals};
use signal_hook::{consts::SIGQUIT, flag};

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

/// Why the main thread begins the shutdown.
enum Stop {
    /// SIGINT or SIGTERM (the first one: a second exits at once, from the handler).
    Signal(i32),
    /// A new rtserve serves the sockets now. Not a signal, so a SIGTERM after it is an
    /// ordinary graceful shutdown, not a second signal.
    HandedOver,
}

/// The listening sockets systemd (or `systemd-socket-activate`) passed in `LISTEN_FDS`, if
/// any: then they are served, one reactor each, and `--bind` and `--threads` are not used.
fn inherited_listeners() -> Result<Option<Vec<std::net::TcpListener>>, String> {
    let mut fds = listenfd::ListenFd::from_env();
    if fds.len() == 0 {
        return Ok(None);
    }
    (0..fds.len())
        .map(|i| match fds.take_tcp_listener(i) {
            Ok(Some(listener)) => Ok(listener),
            Ok(None) => Err(format!("LISTEN_FDS: socket {} was already taken", i + 3)),
            Err(e) => Err(format!(
                "LISTEN_FDS: socket {} is not a TCP listener: {e}",
                i + 3
            )),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

fn run(args: &Args) -> Result<ExitCode, String> {
    // Signals first, so that one arriving while the server starts is not lost.
    let signals = install_signals().map_err(|e| format!("cannot install signal handlers: {e}"))?;
    let (stop, stops) = mpsc::channel();
    forward_signals(signals, stop.clone())?;
    let notices = Notices::start();
    // Everything that can be refused is checked before a running rtserve is asked for its
    // sockets: once it has lent them, failing here would leave nothing serving them if it
    // did not wait for our word.
    let mut config = args.config();
    config.validate().map_err(|e| e.to_string())?;
    if let Some(path) = &args.access_log {
        config.request_log = Some(access_log(path)?);
    }
    let router = routes::router(Duration::from_millis(args.max_slow_ms));
    let endpoint = args
        .control
        .as_deref()
        .map(handover::Endpoint::prepare)
        .transpose()?;
    // The sockets: systemd's, the running rtserve's, or our own.
    let mut lease = None;
    let (sockets, from) = match (inherited_listeners()?, &endpoint) {
        (Some(sockets), _) => (sockets, ", sockets from LISTEN_FDS".to_owned()),
        (None, Some(endpoint)) => match endpoint.take_over()? {
            Some((sockets, lent)) => {
                lease = Some(lent);
                let path = endpoint_path(args);
                (sockets, format!(", sockets taken over through {path}"))
            }
            None => (bind(&config)?, String::new()),
        },
        (None, None) => (bind(&config)?, String::new()),
    };
    let (reactors, workers) = (sockets.len(), config.workers);
    // Copies for the next upgrade, made while a failure still leaves the old one serving.
    let copies = match &endpoint {
        Some(_) => Some(
            sockets
                .iter()
                .map(std::net::TcpListener::try_clone)
                .collect::<io::Result<Vec<_>>>()
                .map_err(|e| format!("cannot copy the listening sockets: {e}"))?,
        ),
        None => None,
    };
    let server = Server::start_on(config, sockets, router).map_err(|e| e.to_string())?;
    let control = match (endpoint, copies) {
        (Some(endpoint), Some(copies)) => {
            let shut_down = move || {
                let _ = stop.send(Stop::HandedOver);
            };
            match endpoint.install(copies, shut_down) {
                Ok(control) => Some(control),
                Err(e) => {
                    // Without our word the old rtserve serves on: stop ours and leave.
                    server.shutdown();
                    let _ = server.join();
                    return Err(e);
                }
            }
        }
        _ => None,
    };
    if let Some(lease) = lease
        && let Err(e) = lease.confirm()
    {
        notices.say(
            log::Level::Warn,
            format!(
                "the old rtserve did not hear that this one serves ({e}): both serve until \
                 one is stopped"
            ),
        );
    }
    notices.line(format!(
        "rtserve {} listening on http://{} (reactors {reactors}, workers {workers}{from})",
        env!("CARGO_PKG_VERSION"),
        server.local_addr(),
    ));

    let why = stops.recv().unwrap_or(Stop::Signal(0));
    // Shutdown begins before anything is written: a write can block on a full pipe.
    server.shutdown();
    if let Some(control) = &control {
        control.close();
    }
    let why = match why {
        Stop::Signal(signal) => format!("signal {signal}: shutting down (a second one exits now)"),
        Stop::HandedOver => "sockets handed over: shutting down".to_owned(),
    };
    notices.say(log::Level::Info, why);
    let result = match server.join() {
        Ok(()) => {
            notices.say(log::Level::Info, "stopped".to_owned());
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Err(format!("a reactor failed: {e}")),
    };
    // The control socket goes, if it is still ours, before the last lines are waited for.
    drop(control);
    notices.finish();
    result
}

/// `--control`'s path as the startup line shows it.
fn endpoint_path(args: &Args) -> String {
    args.control
        .as_deref()
        .map(|path| path.display().to_string())
        .unwrap_or_default()
}

/// Binds the listening sockets `config` asks for.
fn bind(config: &rtserve_reactor::Config) -> Result<Vec<std::net::TcpListener>, String> {
    Server::bind(config).map_err(|e| e.to_string())
}

/// Passes each SIGINT or SIGTERM the handlers let through to the main thread, from a thread
/// of its own, so that a hand-over can stop the main thread the same way.
fn forward_signals(mut signals: ShutdownSignals, stop: mpsc::Sender<Stop>) -> Result<(), String> {
    thread::Builder::new()
        .name("rtserve-signals".to_owned())
        .spawn(move || {
            loop {
                if stop.send(Stop::Signal(signals.wait())).is_err() {
                    return;
                }
            }
        })
        .map(drop)
        .map_err(|e| format!("cannot start the signal thread: {e}"))
}

/// Installs the signal handlers. SIGQUIT, and SIGINT or SIGTERM once one of them has been
/// received, exit with status 1 from the handler itself: no lock, no thread and no write stands
/// between the signal and the exit, so a stalled stderr cannot keep the process alive. The
/// first SIGINT or SIGTERM is returned by [`ShutdownSignals::wait`], for a graceful shutdown.
fn install_signals() -> io::Result<ShutdownSignals> {
    let signals = ShutdownSignals::install()?;
    flag::register_conditional_shutdown(SIGQUIT, 1, Arc::new(AtomicBool::new(true)))?;
    Ok(signals)
}

/// What the main thread has to say.
enum Notice {
    /// A line for stderr as it is (the startup line).
    Line(String),
    /// A log record.
    Log(log::Level, String),
}

/// How long the process waits, at exit, for its last notices to reach stderr.
const NOTICE_FLUSH: Duration = Duration::from_millis(500);

/// The main thread's log lines, written by a thread of their own: a stderr pipe whose reader
/// has stalled blocks every writer, and the thread that handles signals and shutdown must not
/// be one of them.
struct Notices {
    sender: mpsc::Sender<Notice>,
    done: mpsc::Receiver<()>,
}

impl Notices {
    fn start() -> Self {
        let (sender, notices) = mpsc::channel::<Notice>();
        let (finished, done) = mpsc::channel();
        // If the thread cannot start, the notices are lost, not the server.
        let _ = thread::Builder::new()
            .name("rtserve-notices".to_owned())
            .spawn(move || {
                for notice in notices {
                    match notice {
                        Notice::Line(line) => eprintln!("{line}"),
                        Notice::Log(level, line) => log::log!(level, "{line}"),
                    }
                }
                let _ = finished.send(());
            });
        Self { sender, done }
    }

    /// Queues a log record; never waits.
    fn say(&self, level: log::Level, line: String) {
        let _ = self.sender.send(Notice::Log(level, line));
    }

    /// Queues a line for stderr as it is, whatever the log level; never waits.
    fn line(&self, line: String) {
        let _ = self.sender.send(Notice::Line(line));
    }

    /// Waits a bounded time for the queued lines to be written.
    fn finish(self) {
        drop(self.sender);
        let _ = self.done.recv_timeout(NOTICE_FLUSH);
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
