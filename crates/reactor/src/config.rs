//! Server configuration, with defaults and validation.

use std::{
    fmt,
    net::{Ipv4Addr, SocketAddr},
    time::Duration,
};

use rtserve_protocol::Limits;

use crate::{ErrorAnswers, RequestLog};

/// Everything a [`Server`](crate::Server) can be told.
///
/// Start from [`Config::default`] and set what differs; [`Config::validate`] (also run by
/// [`Server::start`](crate::Server::start)) reports a bad combination.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use rtserve_reactor::Config;
///
/// let mut config = Config::default();
/// config.addr = "127.0.0.1:0".parse().unwrap();
/// config.reactors = 2;
/// config.idle_timeout = Duration::from_secs(5);
/// config.limits.max_body = 64 * 1024;
/// assert!(config.validate().is_ok());
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Config {
    /// Address to listen on, IPv4 or IPv6; port 0 picks a free port. Default 127.0.0.1:8080.
    pub addr: SocketAddr,
    /// Reactor threads, each with its own listening socket on the port. Default: the number
    /// of CPUs this process may run on.
    pub reactors: usize,
    /// Open connections per reactor; past it the reactor stops accepting (the kernel's backlog
    /// holds the rest) until a connection closes. Default 10 000.
    pub max_connections: usize,
    /// Listen backlog per listening socket (the kernel caps it at `net.core.somaxconn`).
    /// Default 1024.
    pub backlog: u32,
    /// `TCP_DEFER_ACCEPT` on every listening socket (Linux), including sockets from systemd
    /// or an earlier process: the kernel completes the handshake but hands the connection
    /// over only once its first bytes arrive. A client that connects before it has a request
    /// ready costs no read that finds nothing, no registration, no timer and no wake-up until
    /// it sends, and holds no connection slot while it is silent. (A client that sends its
    /// request at once costs the same either way: a new connection is read before it is
    /// registered.) Silent clients wait in the listener's queue of half-open connections,
    /// which `backlog` bounds; past it, Linux answers with SYN cookies, and those
    /// connections are handed over at once, as without the option.
    ///
    /// The period is in whole seconds (rounded up); Linux keeps it as a count of SYN-ACK
    /// retransmissions, so 1 s stays 1 s, 2 s becomes 3 s and 5 s becomes 7 s. A client that
    /// is still silent at the end of the period is not dropped: the kernel hands it over
    /// then (once it acknowledges the last SYN-ACK), and `header_timeout` runs from there.
    /// At a stop, a client that connected and has sent nothing was never accepted, so the
    /// drain does not see it (README, "Running in production"). Turn it off (`None`) for a
    /// protocol in which the server speaks first. Default 1 s.
    pub defer_accept: Option<Duration>,
    /// Join a SO_REUSEPORT group already listening on `addr` (for a rolling restart) instead
    /// of refusing to start. Default false: another listener on the address is an error,
    /// since the kernel would otherwise silently split the traffic with it.
    pub shared_port: bool,
    /// Pin reactor *i* to CPU *i* of the CPUs this process may use, and the workers to the
    /// CPUs left over (if any), as nginx's `worker_cpu_affinity auto` does. Default off.
    pub pin_cpus: bool,
    /// Protocol limits: head size, header count, request line, body size (request bodies are
    /// buffered up to `limits.max_body` before the handler runs) and chunked framing.
    pub limits: Limits,
    /// Time a client has to send a complete request head, from its first byte (or from
    /// when the connection was accepted, for the first request: with `defer_accept`, that is
    /// when its first bytes arrived or the deferral ended); then 408 and close. Default 10 s.
    pub header_timeout: Duration,
    /// Longest pause while a request body arrives; then 408 and close. Default 30 s.
    pub body_timeout: Duration,
    /// The rate, in bytes per second, a request body must average over each
    /// `body_rate_window` from the end of its head (the first window is its grace period);
    /// below it, 408 and close, as Apache's `mod_reqtimeout` `MinRate` does. Unlike the pause
    /// bound, it also catches a client that sends most of a body at once and then a byte now
    /// and then, to hold its buffer. 0 turns it off. Default 4 KiB/s.
    pub body_min_rate: u64,
    /// The window `body_min_rate` is measured over. Default 5 s.
    pub body_rate_window: Duration,
    /// Longest time a request body may take, from the end of its head to its last byte; then
    /// 408 and close. Default 60 s.
    pub body_deadline: Duration,
    /// Bytes of request bodies the whole server (all reactors) may hold at once. A body that
    /// does not arrive with its head is buffered, taking from the budget as its bytes arrive
    /// (so a client that declares a large body and sends nothing holds nothing). A piece that
    /// does not fit is answered 503 and the connection closes; `100 Continue` is sent only
    /// while the budget has room for the whole declared body. Once half the budget is held, a
    /// body that at its own rate would take more than `body_rate_window` longer is refused
    /// (503) at the end of its window. Default: a sixteenth of the machine's memory, at most
    /// 128 MiB.
    pub body_budget: usize,
    /// Bytes of responses the whole server may hold while they wait for their clients to
    /// take them. A response with a body over 8 KiB is counted as soon as it is ready (before
    /// its head is sent, or while it waits in line behind one that is not); if it does not
    /// fit, a 503 (`rtserve-shed: output-budget`) goes out instead. Smaller answers
    /// are never refused. Default: a thirty-second of the machine's memory, at most 64 MiB.
    pub output_budget: usize,
    /// Time an idle keep-alive connection is kept open. Default 60 s.
    pub idle_timeout: Duration,
    /// Longest time a client may leave our output unread; then the connection is dropped.
    /// Default 30 s.
    pub write_timeout: Duration,
    /// After an answer that ends a connection, how long to read and discard what the client
    /// still sends, so that closing does not reset the connection and destroy the answer
    /// (RFC 9112 §9.6). Default 2 s.
    pub linger_timeout: Duration,
    /// `SO_SNDBUF` for every connection, set once on the listening sockets (accepted sockets
    /// inherit it). It bounds the kernel memory a client that does not read can hold (the
    /// kernel doubles the value for its own bookkeeping), and turns off the kernel's automatic
    /// growth of that buffer (`net.ipv4.tcp_wmem`). Default none: the kernel's sizing.
    pub send_buffer: Option<usize>,
    /// `SO_RCVBUF` for every connection, set the same way. It bounds what a client can leave
    /// in the kernel for us once we stop reading it (its output unread past
    /// `max_buffered_output`, or requests pipelined far ahead), and turns off the automatic
    /// growth of that buffer (`net.ipv4.tcp_rmem`). Default none: the kernel's sizing.
    pub recv_buffer: Option<usize>,
    /// Have the kernel stamp each received segment (`SO_TIMESTAMPNS`, set once on the
    /// listening sockets) and count each request's deadline from when its head reached the
    /// kernel, so that time spent in the socket's queue while the reactor was busy counts
    /// against the deadline, and show that time as `rtserve_socket_queue_seconds`. Off,
    /// deadlines count from the reactor turn that read the head. Default on (Linux).
    pub kernel_timestamps: bool,
    /// Output bytes buffered for one connection past which the reactor stops reading its
    /// requests until the client catches up. Default 256 KiB.
    pub max_buffered_output: usize,
    /// Requests one connection may have processed per reactor turn before the reactor serves
    /// others (they are resumed before it sleeps again). Default 64.
    pub requests_per_turn: usize,
    /// Responses one connection may have waiting (offloaded, or queued behind one that is)
    /// past which the reactor stops reading its requests until some are sent. Default 64.
    pub max_pending_responses: usize,
    /// Threads in the worker pool that runs offloaded jobs, shared by every reactor.
    /// Default 16.
    pub workers: usize,
    /// Jobs that may wait for a worker; past it an offloaded request is answered 503 at once.
    /// Default 1024.
    pub queue: usize,
    /// Default deadline of every request, counted from the moment its head arrived (in the
    /// kernel, with `kernel_timestamps`): an offloaded job not done by then is answered 503.
    /// Default 5 s.
    pub deadline: Duration,
    /// The header in which callers state their remaining budget, if any (the crate's
    /// [caller deadlines](crate#caller-deadlines): whole milliseconds, or gRPC's
    /// `grpc-timeout` form such as `100m`): a request's deadline is then the earlier of the
    /// caller's and its route's. Matched without regard to case. Default none.
    pub deadline_header: Option<String>,
    /// The least budget a caller may leave a request (see `deadline_header`): with less left
    /// when it is read, it is answered 503 (`rtserve-shed: caller-budget`) at once, its
    /// handler not run. Default 1 ms.
    pub min_caller_budget: Duration,
    /// The order the pool serves waiting jobs in (see [`Discipline`]). Default
    /// [`Discipline::AdaptiveLifo`], which is first in, first out until the queue stands.
    pub discipline: Discipline,
    /// How the pool decides which jobs to let in and how many of a route's jobs run at once
    /// (see [`Admission`]). Default [`Admission::Adaptive`].
    pub admission: Admission,
    /// A `Retry-After` value, in seconds, for the 503s of offloaded requests refused or past
    /// their deadline. Default none: in whole seconds it can only say 0 or 1, and 0 invites
    /// every client to retry at the same moment.
    pub retry_after: Option<u32>,
    /// How long `shutdown` keeps serving while reporting "draining" (see
    /// [`Request::is_draining`](crate::Request::is_draining)), so that a load balancer's health
    /// check can take the server out of rotation first. Default 0.
    pub drain_grace: Duration,
    /// How long `shutdown` then lets requests in flight finish before closing what remains.
    /// Default 30 s.
    pub shutdown_timeout: Duration,
    /// When shutdown proper begins, how long a connection with no request in hand (one just
    /// accepted, or an idle keep-alive one) still waits for a request before it is closed.
    /// A request that arrives in that time is answered with `Connection: close`; a connection
    /// closed after it was closed before any byte of a request was read, so the client knows
    /// the request was not seen. Default 250 ms (bounded by `shutdown_timeout`).
    pub shutdown_idle_wait: Duration,
    /// A hook that sees every response (status, route, latency) on a logger thread of its
    /// own. Default: none.
    pub request_log: Option<RequestLog>,
    /// A hook that gives the server's own error answers (404, 405, 408, the 503s, the 400s of
    /// a request it cannot read, 500) the body of the application's choosing (see
    /// [`ErrorAnswers`]). Default none: `text/plain` bodies, with no allocation.
    pub error_answers: Option<ErrorAnswers>,
    /// The tokio runtime async handlers' futures run on (feature `tokio`). A current-thread
    /// runtime runs them only while the application drives it (`block_on`), so give a
    /// multi-thread runtime's handle, or one whose thread the application keeps running: a
    /// current-thread runtime whose only thread waits in `ServerHandle::join` never runs them.
    /// Default none: the server starts a multi-thread runtime of its own (as many worker
    /// threads as reactors, every driver enabled), and `ServerHandle::join` shuts it down
    /// within `shutdown_timeout` once the reactors have stopped (without waiting, when joined
    /// from async code).
    #[cfg(feature = "tokio")]
    pub runtime: Option<tokio::runtime::Handle>,
    /// Futures one route may have in flight at once (feature `tokio`); past it, 503 at once
    /// (`rtserve-shed: in-flight`), so that a slow downstream meets fast refusals, not a pile
    /// of waiting futures. It also bounds the request bodies futures hold, which are outside
    /// `body_budget`: a future owns a copy of what it needs, at most `limits.max_body` each,
    /// so at most routes × this × `max_body` in all; lower it for routes that take large
    /// bodies. Default 1024.
    #[cfg(feature = "tokio")]
    pub max_in_flight_per_route: usize,
}

/// The order in which the worker pool serves the jobs waiting for a worker.
///
/// Whatever the order, a job is refused at once, not at its deadline, when it cannot make its
/// deadline: at the door, when the work queued ahead of it plus its own expected run time
/// would take it past the deadline, and when a worker takes it, if the time left is below its
/// expected run time.
///
/// Measured (BENCHMARKS.md, goodput under overload): with admission at the door, both keep
/// goodput near capacity far past it, and adaptive LIFO keeps it nearer and steadier (median
/// of three runs at 2× capacity: 96 % against 93 %; at 4×: 99 % against 91 %), so it is the
/// default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Discipline {
    /// First in, first out.
    Fifo,
    /// First in, first out while the queue drains; newest first while it stands (its shortest
    /// wait over 100 ms stayed above 1 ms), as Facebook's adaptive LIFO does. The newest jobs
    /// have the most time left; the oldest are refused as soon as they cannot make it.
    #[default]
    AdaptiveLifo,
}

/// How the worker pool decides whether a job can still make its deadline, and how many jobs
/// of one route run at once.
///
/// Both policies refuse a job at the door when the wait predicted for it plus its route's
/// expected run time, plus a margin, would take it past its deadline; they differ in the
/// margin and in the limit.
///
/// Measured (BENCHMARKS.md, "Deadlines on a busy host"): with the fixed margin, up to 14 % of
/// the `/slow` jobs let in past capacity missed their deadline (adaptive LIFO's reordering
/// quiet, a neighbour on the core otherwise), and 10-56 % of CPU-bound `/spin` jobs; the
/// learnt margin keeps that near 1 % (3.3 % at worst, beside a neighbour taking 2 ms of every
/// 8) with as much goodput, and the limit raises `/spin` goodput from 55-88 % of capacity to
/// 83-94 %. So it is the default; the fixed policy is kept to compare with. Its weak case:
/// jobs that sleep, then compute, beside a SCHED_FIFO neighbour (41-65 % of capacity against
/// 71-75 %).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Admission {
    /// The margin is twice the smoothed deviation of the route's run time, and every worker
    /// may run any route's jobs: open loop, blind to how the jobs it let in fared.
    Fixed,
    /// Closed loop. The margin is where 1 % of the route's admitted jobs end after their
    /// deadline: each admitted job that misses raises it, each that makes it lowers it a
    /// little (as do jobs refused although a worker fell idle in time to run them), in steps
    /// sized by how far the pool's predictions have been off. A route whose jobs queue for
    /// the CPU runs fewer of them at once than there are workers, as few as one. Each worker
    /// reads its thread's scheduler statistics before and after a job for that (two `pread`s
    /// a job; without `/proc/thread-self/schedstat` the limit stays at the workers).
    #[default]
    Adaptive,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 8080)),
            reactors: std::thread::available_parallelism().map_or(1, |n| n.get()),
            max_connections: 10_000,
            backlog: 1024,
            defer_accept: Some(Duration::from_secs(1)),
            shared_port: false,
            pin_cpus: false,
            limits: Limits::default(),
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            body_min_rate: 4 * 1024,
            body_rate_window: Duration::from_secs(5),
            body_deadline: Duration::from_secs(60),
            body_budget: share_of_memory(16, 128 * 1024 * 1024),
            output_budget: share_of_memory(32, 64 * 1024 * 1024),
            send_buffer: None,
            recv_buffer: None,
            kernel_timestamps: true,
            idle_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(30),
            linger_timeout: Duration::from_secs(2),
            max_buffered_output: 256 * 1024,
            requests_per_turn: 64,
            max_pending_responses: 64,
            workers: 16,
            queue: 1024,
            deadline: Duration::from_secs(5),
            deadline_header: None,
            min_caller_budget: Duration::from_millis(1),
            discipline: Discipline::AdaptiveLifo,
            admission: Admission::Adaptive,
            retry_after: None,
            drain_grace: Duration::ZERO,
            shutdown_timeout: Duration::from_secs(30),
            shutdown_idle_wait: Duration::from_millis(250),
            request_log: None,
            error_answers: None,
            #[cfg(feature = "tokio")]
            runtime: None,
            #[cfg(feature = "tokio")]
            max_in_flight_per_route: 1024,
        }
    }
}

impl Config {
    /// Checks the configuration.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the first setting out of range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let check = |ok: bool, setting: &'static str, reason: &'static str| {
            if ok {
                Ok(())
            } else {
                Err(ConfigError { setting, reason })
            }
        };
        check(self.reactors >= 1, "reactors", "must be at least 1")?;
        check(self.reactors <= 1024, "reactors", "must be at most 1024")?;
        check(
            self.max_connections >= 1,
            "max_connections",
            "must be at least 1",
        )?;
        check(
            self.max_connections <= u32::MAX as usize / 2,
            "max_connections",
            "must fit in 31 bits",
        )?;
        check(self.backlog >= 1, "backlog", "must be at least 1")?;
        check(
            self.defer_accept
                .is_none_or(|p| !p.is_zero() && p <= Duration::from_secs(3600)),
            "defer_accept",
            "must be greater than zero and at most an hour (None turns it off)",
        )?;
        check(self.body_budget >= 1, "body_budget", "must be at least 1")?;
        check(
            self.output_budget >= 1,
            "output_budget",
            "must be at least 1",
        )?;
        for (size, name) in [
            (self.send_buffer, "send_buffer"),
            (self.recv_buffer, "recv_buffer"),
        ] {
            check(
                size.is_none_or(|n| (1..=i32::MAX as usize / 2).contains(&n)),
                name,
                "must be between 1 and 1 GiB",
            )?;
        }
        check(
            self.max_buffered_output >= 1,
            "max_buffered_output",
            "must be at least 1",
        )?;
        check(
            self.requests_per_turn >= 1,
            "requests_per_turn",
            "must be at least 1",
        )?;
        check(
            self.max_pending_responses >= 1,
            "max_pending_responses",
            "must be at least 1",
        )?;
        check(self.workers >= 1, "workers", "must be at least 1")?;
        check(self.workers <= 4096, "workers", "must be at most 4096")?;
        check(self.queue >= 1, "queue", "must be at least 1")?;
        #[cfg(feature = "tokio")]
        check(
            self.max_in_flight_per_route >= 1,
            "max_in_flight_per_route",
            "must be at least 1",
        )?;
        for (timeout, name) in [
            (self.deadline, "deadline"),
            (self.header_timeout, "header_timeout"),
            (self.body_timeout, "body_timeout"),
            (self.body_rate_window, "body_rate_window"),
            (self.body_deadline, "body_deadline"),
            (self.idle_timeout, "idle_timeout"),
            (self.write_timeout, "write_timeout"),
        ] {
            check(!timeout.is_zero(), name, "must be greater than zero")?;
            check(
                timeout <= Duration::from_secs(365 * 86_400),
                name,
                "must be at most a year",
            )?;
        }
        check(
            self.linger_timeout <= Duration::from_secs(60),
            "linger_timeout",
            "must be at most 60 s",
        )?;
        for (timeout, name) in [
            (self.shutdown_timeout, "shutdown_timeout"),
            (self.drain_grace, "drain_grace"),
            (self.shutdown_idle_wait, "shutdown_idle_wait"),
        ] {
            check(
                timeout <= Duration::from_secs(365 * 86_400),
                name,
                "must be at most a year",
            )?;
        }
        check(
            self.deadline_header.as_deref().is_none_or(is_token),
            "deadline_header",
            "must be a header name (a token)",
        )?;
        check(
            self.min_caller_budget <= Duration::from_secs(365 * 86_400),
            "min_caller_budget",
            "must be at most a year",
        )?;
        self.limits.validate().map_err(|reason| ConfigError {
            setting: "limits",
            reason,
        })
    }
}

impl Config {
    /// Futures one route may have in flight (no limit without the `tokio` feature, where there
    /// are none).
    pub(crate) fn in_flight_limit(&self) -> usize {
        #[cfg(feature = "tokio")]
        return self.max_in_flight_per_route;
        #[cfg(not(feature = "tokio"))]
        usize::MAX
    }
}

/// Whether `name` is a token (RFC 9110 §5.6.2), as a header's name must be.
fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// `1 / part` of the machine's memory, at most `cap` (`cap` where it cannot be read).
fn share_of_memory(part: u64, cap: u64) -> usize {
    let info = rustix::system::sysinfo();
    let ram = u64::from(info.mem_unit).saturating_mul(info.totalram as u64);
    let share = if ram == 0 { cap } else { (ram / part).min(cap) };
    usize::try_from(share).unwrap_or(usize::MAX)
}

/// A setting out of range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The setting.
    pub setting: &'static str,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid {}: {}", self.setting, self.reason)
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid() {
        assert_eq!(Config::default().validate(), Ok(()));
    }

    #[test]
    fn a_deadline_header_must_be_a_header_name() {
        for (name, ok) in [
            ("x-envoy-expected-rq-timeout-ms", true),
            ("grpc-timeout", true),
            ("", false),
            ("two words", false),
            ("colon:", false),
        ] {
            let config = Config {
                deadline_header: Some(name.to_owned()),
                ..Config::default()
            };
            assert_eq!(config.validate().is_ok(), ok, "{name:?}");
        }
    }

    #[test]
    fn bad_settings_are_named() {
        type Change = fn(&mut Config);
        let cases: [(Change, &str); 14] = [
            (|c| c.defer_accept = Some(Duration::ZERO), "defer_accept"),
            (
                |c| c.defer_accept = Some(Duration::from_secs(3601)),
                "defer_accept",
            ),
            (|c| c.output_budget = 0, "output_budget"),
            (|c| c.recv_buffer = Some(usize::MAX), "recv_buffer"),
            (|c| c.body_budget = 0, "body_budget"),
            (|c| c.send_buffer = Some(0), "send_buffer"),
            (|c| c.workers = 0, "workers"),
            (|c| c.queue = 0, "queue"),
            (|c| c.deadline = Duration::ZERO, "deadline"),
            (|c| c.reactors = 0, "reactors"),
            (|c| c.max_connections = 0, "max_connections"),
            (|c| c.idle_timeout = Duration::ZERO, "idle_timeout"),
            (|c| c.limits.max_headers = 0, "limits"),
            (|c| c.requests_per_turn = 0, "requests_per_turn"),
        ];
        for (change, setting) in cases {
            let mut config = Config::default();
            change(&mut config);
            let err = config.validate().unwrap_err();
            assert_eq!(err.setting, setting);
            assert!(err.to_string().starts_with(&format!("invalid {setting}: ")));
        }
    }
}
