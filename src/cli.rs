//! Command-line flags, each also read from an `RTSERVE_*` environment variable.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::Parser;
use rtserve_reactor::{Admission, Config, Discipline};

/// `--discipline`: the worker queue's order (see [`Discipline`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum DisciplineArg {
    /// First in, first out.
    Fifo,
    /// First in, first out, but newest first while the queue stands.
    AdaptiveLifo,
}

/// `--admission`: how the pool decides which jobs can make their deadline (see
/// [`Admission`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum AdmissionArg {
    /// A margin of twice the run time's deviation; every worker runs any route's jobs.
    Fixed,
    /// A margin learnt from how late recent jobs ended, and fewer CPU-bound jobs at once when
    /// they queue for the CPU.
    Adaptive,
}

/// rtserve: an HTTP/1.1 server for real-time services, built for tail latency. Every request
/// has a deadline; past capacity it answers 503 at once rather than queue.
#[derive(Debug, Parser)]
#[command(version, about, max_term_width = 100)]
pub(crate) struct Args {
    /// Address to listen on (IPv4 or IPv6; port 0 picks a free port).
    #[arg(long, env = "RTSERVE_BIND", default_value = "127.0.0.1:8080")]
    pub(crate) bind: SocketAddr,

    /// Reactor threads, each with its own listening socket on the port.
    #[arg(long, env = "RTSERVE_THREADS", default_value_t = default_threads(),
          value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub(crate) threads: u16,

    /// Worker threads running blocking jobs (/slow), shared by all reactors.
    #[arg(long, env = "RTSERVE_WORKERS", default_value_t = 16,
          value_parser = clap::value_parser!(u16).range(1..=4096))]
    pub(crate) workers: u16,

    /// Jobs that may wait for a worker; past it a request is answered 503 at once.
    #[arg(long, env = "RTSERVE_QUEUE", default_value_t = 1024,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) queue: u32,

    /// Open connections per reactor; past it the reactor stops accepting until one closes.
    #[arg(long, env = "RTSERVE_MAX_CONNECTIONS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000_000))]
    pub(crate) max_connections: u32,

    /// Default deadline of every request, from its head's arrival in the kernel: a job not
    /// done by then is answered 503.
    #[arg(long, env = "RTSERVE_DEADLINE_MS", default_value_t = 5_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) deadline_ms: u64,

    /// The header in which callers state their remaining budget, in whole milliseconds or
    /// gRPC's grpc-timeout form (100m, 2S): a request's deadline is then the earlier of the
    /// caller's and its own. Off by default.
    #[arg(long, env = "RTSERVE_DEADLINE_HEADER", value_name = "NAME", value_parser = header_name)]
    pub(crate) deadline_header: Option<String>,

    /// A request whose caller left it less than this is answered 503 (rtserve-shed:
    /// caller-budget) without running its handler.
    #[arg(long, env = "RTSERVE_MIN_CALLER_BUDGET_MS", default_value_t = 1,
          value_parser = clap::value_parser!(u64).range(0..=86_400_000))]
    pub(crate) min_caller_budget_ms: u64,

    /// The order waiting jobs are served in. Either way a job that cannot make its deadline
    /// is refused (503) at once, before it is queued or when a worker reaches it.
    #[arg(long, env = "RTSERVE_DISCIPLINE", value_enum, default_value_t = DisciplineArg::AdaptiveLifo)]
    pub(crate) discipline: DisciplineArg,

    /// How jobs are let in: "adaptive" learns the margin a job must leave before its deadline
    /// from how late recent jobs ended, and runs fewer CPU-bound jobs at once when they queue
    /// for the CPU; "fixed" keeps a margin of twice the run time's deviation (to compare).
    #[arg(long, env = "RTSERVE_ADMISSION", value_enum, default_value_t = AdmissionArg::Adaptive)]
    pub(crate) admission: AdmissionArg,

    /// Pin reactor i to CPU i of the CPUs allowed, and the workers to the CPUs left over, as
    /// nginx's worker_cpu_affinity auto does.
    #[arg(long, env = "RTSERVE_PIN")]
    pub(crate) pin: bool,

    /// A control Unix socket for in-place upgrades: a new rtserve of the same user (or root)
    /// started with the same path takes this one's listening sockets over (so none ever
    /// closes), and this one drains and exits once the new one serves. Nothing listening
    /// there: the sockets are bound as usual. The socket is made mode 0600; its directory must
    /// be writable by this user only, such as /run/rtserve/ created with mode 0700.
    #[arg(long, env = "RTSERVE_CONTROL", value_name = "PATH")]
    pub(crate) control: Option<PathBuf>,

    /// Seconds for a Retry-After header on the 503s of refused or late jobs (none by default:
    /// 0 would invite every client to retry at once).
    #[arg(long, env = "RTSERVE_RETRY_AFTER_S")]
    pub(crate) retry_after_s: Option<u32>,

    /// TCP_DEFER_ACCEPT on the listening sockets (also on inherited ones): a connection is
    /// handed over once its first bytes arrive, or once this many seconds pass (Linux rounds
    /// up to its SYN-ACK retransmissions: 1, 3, 7, 15 s...). 0 turns it off: for clients that
    /// wait for the server to speak, or health checks that only connect.
    #[arg(long, env = "RTSERVE_DEFER_ACCEPT_SECS", default_value_t = 1,
          value_parser = clap::value_parser!(u64).range(0..=3600))]
    pub(crate) defer_accept_secs: u64,

    /// Time to send a whole request head (slowloris protection: 408).
    #[arg(long, env = "RTSERVE_HEADER_TIMEOUT_MS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) header_timeout_ms: u64,

    /// Longest pause while a request body arrives (408).
    #[arg(long, env = "RTSERVE_BODY_TIMEOUT_MS", default_value_t = 30_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) body_timeout_ms: u64,

    /// Rate, in bytes per second, a request body must average over each rate window after
    /// its head (408 below it; 0: no minimum; suffixes K, M, G).
    #[arg(long, env = "RTSERVE_BODY_MIN_RATE", default_value = "4K", value_parser = parse_size)]
    pub(crate) body_min_rate: u64,

    /// The window the body rate is measured over (the first one is the grace period).
    #[arg(long, env = "RTSERVE_BODY_RATE_WINDOW_MS", default_value_t = 5_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) body_rate_window_ms: u64,

    /// Longest time a request body may take after its head (408).
    #[arg(long, env = "RTSERVE_BODY_DEADLINE_MS", default_value_t = 60_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) body_deadline_ms: u64,

    /// Bytes of request bodies all threads may buffer at once, taken as the bytes arrive; a
    /// body that does not fit gets 503, and once half is held the slowest bodies are refused
    /// first [default: a sixteenth of RAM, at most 128M].
    #[arg(long, env = "RTSERVE_BODY_BUDGET", value_parser = parse_size)]
    pub(crate) body_budget: Option<u64>,

    /// Bytes of responses all threads may hold for clients that have not taken them; a
    /// response over 8K that does not fit is answered 503 instead [default: a thirty-second of
    /// RAM, at most 64M].
    #[arg(long, env = "RTSERVE_OUTPUT_BUDGET", value_parser = parse_size)]
    pub(crate) output_budget: Option<u64>,

    /// SO_SNDBUF for every connection (bounds the kernel memory a client that does not read
    /// can hold; the kernel doubles it) [default: the kernel's own sizing, net.ipv4.tcp_wmem].
    #[arg(long, env = "RTSERVE_SEND_BUFFER", value_parser = parse_size)]
    pub(crate) send_buffer: Option<u64>,

    /// SO_RCVBUF for every connection (bounds what a client can leave in the kernel once we
    /// stop reading it; the kernel doubles it) [default: the kernel's own sizing,
    /// net.ipv4.tcp_rmem].
    #[arg(long, env = "RTSERVE_RECV_BUFFER", value_parser = parse_size)]
    pub(crate) recv_buffer: Option<u64>,

    /// Count deadlines from when the reactor read a request's head, not from when its bytes
    /// reached the kernel (SO_TIMESTAMPNS receive stamps, on by default): time a request
    /// waited in its socket for a busy reactor then no longer counts against its deadline,
    /// and /metrics has no rtserve_socket_queue_seconds samples.
    #[arg(long, env = "RTSERVE_NO_KERNEL_TIMESTAMPS")]
    pub(crate) no_kernel_timestamps: bool,

    /// Time an idle keep-alive connection is kept open.
    #[arg(long, env = "RTSERVE_IDLE_TIMEOUT_MS", default_value_t = 60_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) idle_timeout_ms: u64,

    /// Time a client may leave our output unread before it is dropped.
    #[arg(long, env = "RTSERVE_WRITE_TIMEOUT_MS", default_value_t = 30_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) write_timeout_ms: u64,

    /// On shutdown, time to keep serving while /healthz says 503 (for a load balancer).
    #[arg(long, env = "RTSERVE_DRAIN_GRACE_MS", default_value_t = 0)]
    pub(crate) drain_grace_ms: u64,

    /// On shutdown, time requests in flight get to finish.
    #[arg(long, env = "RTSERVE_SHUTDOWN_TIMEOUT_MS", default_value_t = 30_000)]
    pub(crate) shutdown_timeout_ms: u64,

    /// On shutdown, time a connection with no request in hand (new, or idle keep-alive) still
    /// waits for one, to answer it with Connection: close, before it is closed.
    #[arg(long, env = "RTSERVE_SHUTDOWN_IDLE_MS", default_value_t = 250)]
    pub(crate) shutdown_idle_ms: u64,

    /// Largest request body, in bytes (suffixes K, M, G for KiB, MiB, GiB).
    #[arg(long, env = "RTSERVE_MAX_BODY", default_value = "1M", value_parser = parse_size)]
    pub(crate) max_body: u64,

    /// Longest sleep /slow?ms=N will do.
    #[arg(long, env = "RTSERVE_MAX_SLOW_MS", default_value_t = 60_000)]
    pub(crate) max_slow_ms: u64,

    /// Write one line per response (status, route, latency) to this file, or `-` for stderr.
    #[arg(long, env = "RTSERVE_ACCESS_LOG", value_name = "PATH|-")]
    pub(crate) access_log: Option<PathBuf>,

    /// Join an existing SO_REUSEPORT group on the address (rolling restarts) instead of
    /// refusing to start when the port is taken.
    #[arg(long, env = "RTSERVE_SHARED_PORT")]
    pub(crate) shared_port: bool,

    /// More log output (-v: debug, -vv: trace).
    #[arg(short, long, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub(crate) verbose: u8,

    /// Less log output (-q: errors only, -qq: nothing).
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub(crate) quiet: u8,
}

impl Args {
    /// The reactor configuration these flags describe.
    pub(crate) fn config(&self) -> Config {
        let ms = Duration::from_millis;
        let mut config = Config::default();
        config.addr = self.bind;
        config.reactors = usize::from(self.threads);
        config.workers = usize::from(self.workers);
        config.queue = self.queue as usize;
        config.max_connections = self.max_connections as usize;
        config.deadline = ms(self.deadline_ms);
        config.deadline_header.clone_from(&self.deadline_header);
        config.min_caller_budget = ms(self.min_caller_budget_ms);
        config.discipline = match self.discipline {
            DisciplineArg::Fifo => Discipline::Fifo,
            DisciplineArg::AdaptiveLifo => Discipline::AdaptiveLifo,
        };
        config.admission = match self.admission {
            AdmissionArg::Fixed => Admission::Fixed,
            AdmissionArg::Adaptive => Admission::Adaptive,
        };
        config.retry_after = self.retry_after_s;
        config.defer_accept =
            (self.defer_accept_secs > 0).then(|| Duration::from_secs(self.defer_accept_secs));
        config.header_timeout = ms(self.header_timeout_ms);
        config.body_timeout = ms(self.body_timeout_ms);
        config.body_min_rate = self.body_min_rate;
        config.body_rate_window = ms(self.body_rate_window_ms);
        config.body_deadline = ms(self.body_deadline_ms);
        if let Some(budget) = self.body_budget {
            config.body_budget = usize::try_from(budget).unwrap_or(usize::MAX);
        }
        if let Some(budget) = self.output_budget {
            config.output_budget = usize::try_from(budget).unwrap_or(usize::MAX);
        }
        config.send_buffer = self
            .send_buffer
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX));
        config.recv_buffer = self
            .recv_buffer
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX));
        config.kernel_timestamps = !self.no_kernel_timestamps;
        config.idle_timeout = ms(self.idle_timeout_ms);
        config.write_timeout = ms(self.write_timeout_ms);
        config.drain_grace = ms(self.drain_grace_ms);
        config.shutdown_timeout = ms(self.shutdown_timeout_ms);
        config.shutdown_idle_wait = ms(self.shutdown_idle_ms);
        config.limits.max_body = self.max_body;
        config.shared_port = self.shared_port;
        config.pin_cpus = self.pin;
        config
    }

    /// The log level asked for.
    pub(crate) fn log_level(&self) -> log::LevelFilter {
        match (self.verbose, self.quiet) {
            (0, 0) => log::LevelFilter::Info,
            (1, _) => log::LevelFilter::Debug,
            (v, _) if v >= 2 => log::LevelFilter::Trace,
            (_, 1) => log::LevelFilter::Error,
            _ => log::LevelFilter::Off,
        }
    }
}

/// One reactor per CPU this process may run on.
fn default_threads() -> u16 {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(1024) as u16)
}

/// `123`, `64K`, `1M`, `2G` (binary units).
fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (digits, unit) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => text.split_at(i),
        None => (text, ""),
    };
    let shift = match unit.to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        _ => return Err(format!("unknown unit {unit:?} (use K, M or G)")),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a size"))?;
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// A header's name, as `--deadline-header` takes it: the reactor's own check, so that the flag
/// is named when it fails.
fn header_name(name: &str) -> Result<String, String> {
    let mut config = Config::default();
    config.deadline_header = Some(name.to_owned());
    config
        .validate()
        .map(|()| name.to_owned())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn flags_are_consistent() {
        Args::command().debug_assert();
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("123"), Ok(123));
        assert_eq!(parse_size("64K"), Ok(64 << 10));
        assert_eq!(parse_size("1M"), Ok(1 << 20));
        assert_eq!(parse_size("2gib"), Ok(2 << 30));
        assert!(parse_size("1T").is_err());
        assert!(parse_size("").is_err());
        assert!(parse_size("99999999999G").is_err());
    }
}
