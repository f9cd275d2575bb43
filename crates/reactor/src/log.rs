//! The request log: a hook that sees every response, fed by the reactors through a bounded
//! queue and called on a logger thread of its own, so that a slow hook never holds a reactor.

use std::{
    fmt,
    sync::{Arc, mpsc},
    thread,
    time::Duration,
};

use rtserve_protocol::StatusCode;

use crate::stats::StatsRegistry;

/// One response, as the request log sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct LogRecord<'a> {
    /// The reactor that answered.
    pub reactor: usize,
    /// The route's name (see [`Handler::routes`](crate::Handler::routes)), or `"other"`.
    pub route: &'a str,
    /// The status sent, the server's own 400s, 408s, 500s and 503s included.
    pub status: StatusCode,
    /// From the start of the reactor turn in which the request's head was parsed to the
    /// moment its response was queued for writing (so time spent waiting behind other work in
    /// that turn counts); zero for an answer to a request whose head never completed.
    pub latency: Duration,
}

/// A request-log hook and the depth of its queue.
///
/// # Examples
///
/// ```
/// use rtserve_reactor::{Config, LogRecord, RequestLog};
///
/// let mut config = Config::default();
/// config.request_log = Some(RequestLog::new(4096, |r: &LogRecord<'_>| {
///     eprintln!("{} {} {}us", r.status.as_u16(), r.route, r.latency.as_micros());
/// }));
/// ```
#[derive(Clone)]
pub struct RequestLog {
    pub(crate) capacity: usize,
    pub(crate) hook: Arc<dyn Fn(&LogRecord<'_>) + Send + Sync>,
}

impl RequestLog {
    /// A log calling `hook` for every response, with room for `capacity` records in its
    /// queue; records that find it full are dropped and counted
    /// ([`Stats::log_dropped`](crate::Stats::log_dropped)).
    pub fn new(capacity: usize, hook: impl Fn(&LogRecord<'_>) + Send + Sync + 'static) -> Self {
        Self {
            capacity: capacity.max(1),
            hook: Arc::new(hook),
        }
    }
}

impl fmt::Debug for RequestLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestLog")
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

/// What a reactor queues for the logger thread.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LogEntry {
    pub(crate) reactor: usize,
    pub(crate) route: usize,
    pub(crate) status: StatusCode,
    pub(crate) latency: Duration,
}

/// Starts the logger thread; it ends when every reactor has dropped its sender.
pub(crate) fn start(
    log: &RequestLog,
    stats: Arc<StatsRegistry>,
) -> std::io::Result<mpsc::SyncSender<LogEntry>> {
    let (sender, receiver) = mpsc::sync_channel::<LogEntry>(log.capacity);
    let hook = Arc::clone(&log.hook);
    thread::Builder::new()
        .name("rtserve-log".to_owned())
        .spawn(move || {
            for entry in receiver {
                hook(&LogRecord {
                    reactor: entry.reactor,
                    route: stats.name(entry.route),
                    status: entry.status,
                    latency: entry.latency,
                });
            }
        })?;
    Ok(sender)
}
