//! Server statistics: counters and latency histograms per reactor, merged when read.
//!
//! Each reactor writes only its own [`ReactorStats`], with plain load-and-store of relaxed
//! atomics (no read-modify-write, no lock): on x86-64 and AArch64 that compiles to the same
//! instructions as ordinary integers, and with one writer per cache line nothing contends.
//! Readers on any thread, a handler serving `/metrics` on a reactor included, load the values
//! and merge them, with no round trip to the reactors and so no way to deadlock one.

use std::{
    sync::{
        Arc,
        atomic::{AtomicI64, AtomicU64, Ordering},
    },
    time::Duration,
};

use crate::{budget::Budgets, task::Tasks};

/// Upper bounds of the latency histogram's buckets, in microseconds (the Prometheus
/// defaults, from 100 µs to 10 s, with finer steps below 1 ms where an SLA lives).
pub const LATENCY_BUCKETS_US: [u64; 16] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000, 10_000_000,
];

/// Status codes are counted per code, over the whole range a [`StatusCode`] may take (100 to
/// 999): a response whose status had no counter would be missing from the request counts while
/// the latency histogram has it, and Prometheus rejects a histogram whose `_count` is below its
/// buckets.
///
/// [`StatusCode`]: rtserve_protocol::StatusCode
const STATUSES: usize = 900;

/// A counter: added to by its only writer ([`add`](Self::add)), or by several
/// ([`add_shared`](Self::add_shared)).
#[derive(Debug, Default)]
struct Counter(AtomicU64);

impl Counter {
    /// Adds `n` for the only writer.
    fn add(&self, n: u64) {
        // Single writer: a load and a store, not an atomic read-modify-write.
        self.0.store(
            self.0.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    }

    /// Adds `n` for one of several writers: an atomic read-modify-write.
    fn add_shared(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    fn sub(&self, n: u64) {
        self.0.store(
            self.0.load(Ordering::Relaxed).wrapping_sub(n),
            Ordering::Relaxed,
        );
    }

    fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// One route's counters on one reactor.
#[derive(Debug)]
struct RouteCells {
    by_status: Box<[Counter]>,
    latency: HistogramCells,
    in_time: Counter,
    answered_late: Counter,
    admitted_missed: Counter,
    /// By [`Shed`] reason.
    shed: [Counter; Shed::ALL.len()],
    hangups: Counter,
}

impl RouteCells {
    fn new() -> Self {
        Self {
            by_status: (0..STATUSES).map(|_| Counter::default()).collect(),
            latency: HistogramCells::new(&LATENCY_BUCKETS_US),
            in_time: Counter::default(),
            answered_late: Counter::default(),
            admitted_missed: Counter::default(),
            shed: Default::default(),
            hangups: Counter::default(),
        }
    }
}

/// The statistics one reactor writes.
#[derive(Debug)]
pub(crate) struct ReactorStats {
    open_connections: Counter,
    accepted: Counter,
    /// Responses sent, on every route: how the reactors share the work.
    requests: Counter,
    accept_backoffs: Counter,
    body_refusals: Counter,
    slow_bodies: Counter,
    output_refusals: Counter,
    write_timeouts: Counter,
    resets: Counter,
    lateness: HistogramCells,
    socket_queue: HistogramCells,
    log_dropped: Counter,
    routes: Box<[RouteCells]>,
}

impl ReactorStats {
    /// Statistics for `routes` named routes plus the unrouted.
    pub(crate) fn new(routes: usize) -> Self {
        Self {
            open_connections: Counter::default(),
            accepted: Counter::default(),
            requests: Counter::default(),
            accept_backoffs: Counter::default(),
            body_refusals: Counter::default(),
            slow_bodies: Counter::default(),
            output_refusals: Counter::default(),
            write_timeouts: Counter::default(),
            resets: Counter::default(),
            lateness: HistogramCells::new(&LATENESS_BUCKETS_US),
            socket_queue: HistogramCells::new(&SOCKET_QUEUE_BUCKETS_US),
            log_dropped: Counter::default(),
            routes: (0..=routes).map(|_| RouteCells::new()).collect(),
        }
    }

    pub(crate) fn connection_opened(&self) {
        self.open_connections.add(1);
        self.accepted.add(1);
    }

    pub(crate) fn connection_closed(&self) {
        self.open_connections.sub(1);
    }

    pub(crate) fn accept_backoff(&self) {
        self.accept_backoffs.add(1);
    }

    /// A request refused 503 because the body budget had no room for its body.
    pub(crate) fn body_refused(&self) {
        self.body_refusals.add(1);
    }

    /// A request body cut off with a 408 for arriving too slowly.
    pub(crate) fn slow_body(&self) {
        self.slow_bodies.add(1);
    }

    /// A response answered 503 instead, because the output budget had no room for it.
    pub(crate) fn output_refused(&self) {
        self.output_refusals.add(1);
    }

    /// A connection dropped because its client took none of its output for the write
    /// timeout.
    pub(crate) fn write_timed_out(&self) {
        self.write_timeouts.add(1);
    }

    /// A connection closed with a reset, so that the kernel frees what it still queued.
    pub(crate) fn reset(&self) {
        self.resets.add(1);
    }

    /// Work on `route` answered 503 without its response, for `reason`.
    pub(crate) fn shed(&self, route: usize, reason: Shed) {
        self.route(route).shed[reason as usize].add(1);
    }

    /// A 503 for a missed deadline went out `late` after the deadline.
    pub(crate) fn late(&self, late: Duration) {
        self.lateness.record(late);
    }

    /// A read took bytes that had waited `queued` in the socket (from the kernel's receive
    /// stamp to the reactor's turn).
    pub(crate) fn socket_queued(&self, queued: Duration) {
        self.socket_queue.record(queued);
    }

    pub(crate) fn log_dropped(&self) {
        self.log_dropped.add(1);
    }

    /// Records a response: its route (clamped to "unrouted"), status and latency.
    pub(crate) fn response(&self, route: usize, status: u16, latency: Duration) {
        self.requests.add(1);
        let cells = self.route(route);
        // A `StatusCode` is 100..=999, so every status has its counter; anything else (not
        // reachable through the public API) is filed with the last one rather than lost.
        let index = usize::from(status).saturating_sub(100).min(STATUSES - 1);
        cells.by_status[index].add(1);
        cells.latency.record(latency);
    }

    /// A 2xx response on `route` was ready before its request's deadline.
    pub(crate) fn in_time(&self, route: usize) {
        self.route(route).in_time.add(1);
    }

    /// A 2xx response on `route` was ready only after its request's deadline (an inline
    /// handler's: nothing stops one at the deadline).
    pub(crate) fn answered_late(&self, route: usize) {
        self.route(route).answered_late.add(1);
    }

    /// A request on `route` was still owed its answer (its work in flight, or the answer
    /// waiting in line) when its connection ended.
    pub(crate) fn hung_up(&self, route: usize) {
        self.route(route).hangups.add(1);
    }

    /// Work on `route` that was let in (a job queued, a future spawned) missed its deadline:
    /// answered 503 at the deadline, refused by a worker that reached it too late, or done
    /// after the deadline.
    pub(crate) fn admitted_missed(&self, route: usize) {
        self.route(route).admitted_missed.add(1);
    }

    /// The index that files a response under "other".
    pub(crate) fn other_route(&self) -> usize {
        self.routes.len() - 1
    }

    /// Route `route`'s cells, or those of "other" past the named routes.
    fn route(&self, route: usize) -> &RouteCells {
        &self.routes[route.min(self.routes.len() - 1)]
    }
}

/// A merged snapshot of a server's statistics.
///
/// # Examples
///
/// ```
/// use rtserve_reactor::{Config, Reply, Request, Response, Server, StatusCode};
///
/// let mut config = Config::default();
/// config.addr = "127.0.0.1:0".parse().unwrap();
/// config.reactors = 1;
/// let server = Server::start(config, |_: &Request<'_>| -> Reply {
///     Response::new(StatusCode::OK).into()
/// })?;
/// let stats = server.stats();
/// assert_eq!(stats.open_connections, [0]);
/// assert_eq!(stats.routes[0].requests(), 0);
/// server.shutdown();
/// server.join()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Open connections, per reactor.
    pub open_connections: Vec<u64>,
    /// Connections accepted.
    pub accepted: u64,
    /// Connections accepted, per reactor (the kernel spreads them over the reactors'
    /// listening sockets).
    pub accepted_by_reactor: Vec<u64>,
    /// Responses sent, per reactor.
    pub requests_by_reactor: Vec<u64>,
    /// Times accepting paused because the process ran out of file descriptors.
    pub accept_backoffs: u64,
    /// Bytes of request bodies buffered now, against [`Config::body_budget`](crate::Config::body_budget).
    pub body_bytes: u64,
    /// Requests answered 503 because the body budget had no room for their bodies.
    pub body_refusals: u64,
    /// Request bodies cut off with a 408: too slow, paused too long or over their deadline.
    pub slow_bodies: u64,
    /// Bytes of responses waiting for their clients now, against
    /// [`Config::output_budget`](crate::Config::output_budget).
    pub output_bytes: u64,
    /// Responses replaced by a 503 because the output budget had no room for them.
    pub output_refusals: u64,
    /// Connections dropped because the client took none of their output for the write timeout.
    pub write_timeouts: u64,
    /// Connections closed with a reset (`SO_LINGER` 0) rather than a FIN, so that the kernel
    /// freed the output they still queued (on a write timeout).
    pub resets: u64,
    /// Async handlers' futures running now (feature `tokio`).
    pub futures_in_flight: u64,
    /// Async handlers' futures dropped before they finished: at their deadline, when their
    /// client left, or at shutdown.
    pub futures_cancelled: u64,
    /// Offloaded requests answered 503 without their job's response, by reason: the sum of
    /// every route's [`RouteStats::shed`].
    pub shed: Sheds,
    /// How long jobs waited for a worker (run or refused when a worker reached them).
    pub queue_wait: Histogram,
    /// How long after their deadline the 503s for missed deadlines went out.
    pub deadline_lateness: Histogram,
    /// How long received bytes waited in their socket before the reactor's turn that read
    /// them, per read (from the kernel's receive stamp of the read's last segment; with
    /// [`Config::kernel_timestamps`](crate::Config::kernel_timestamps) only). A reactor
    /// starved by a handler that blocks it shows here first.
    pub socket_queue: Histogram,
    /// Request-log records dropped because the logger fell behind.
    pub log_dropped: u64,
    /// Per route, in the order of [`Handler::routes`](crate::Handler::routes), then one for
    /// requests no route claimed (and the server's own 400s and 408s).
    pub routes: Vec<RouteStats>,
}

/// One route's merged statistics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RouteStats {
    /// The route's name, or `"other"`.
    pub name: String,
    /// (status, responses) for every status sent at least once, by status.
    pub by_status: Vec<(u16, u64)>,
    /// The responses' latencies, bounds in [`LATENCY_BUCKETS_US`]; its count is
    /// [`requests`](Self::requests).
    pub latency: Histogram,
    /// The worker pool's current estimate of this route's job run time, in microseconds
    /// (zero for a route that has offloaded nothing). For a route whose jobs name
    /// [cost classes](crate::Job::with_cost_class), the longest among the classes it uses;
    /// likewise the margin is the widest and the limit the lowest of them.
    pub run_time_estimate_us: u64,
    /// Goodput: 2xx responses ready before their request's deadline (inline ones, and the
    /// offloaded ones whose job or future finished in time).
    pub in_time: u64,
    /// 2xx responses ready only after their request's deadline. Only an inline handler can
    /// answer late (nothing stops it at the deadline); offloaded work that ends late is
    /// answered 503 instead, and counted in [`admitted_missed`](Self::admitted_missed).
    pub answered_late: u64,
    /// The route's offloaded requests answered 503 without their job's response, by reason:
    /// refused at the door, or admitted and then missed.
    pub shed: Sheds,
    /// Requests still owed their answer (their work in flight, or the answer waiting in line
    /// behind another) when their connection ended: the client closed or reset it under
    /// them, or took none of its output for the write timeout. Their answers were never sent.
    pub hangups: u64,
    /// Offloaded work that was let in (a job queued, a future spawned) and still missed its
    /// deadline: answered 503 at the deadline or by a worker that reached it too late.
    pub admitted_missed: u64,
    /// Jobs refused at the door although a worker fell idle early enough to run them before
    /// their deadline: refusals that were not needed (of every cost class of the route).
    pub over_refused: u64,
    /// The margin, in microseconds, a job must leave before its deadline beyond the end the
    /// pool predicts for it ([`Admission::Adaptive`](crate::Admission)); negative when the
    /// predictions have run pessimistic.
    pub admission_margin_us: i64,
    /// How many of the route's jobs may run at once (the workers, unless its jobs queue for
    /// the CPU); zero for a route that has offloaded nothing.
    pub concurrency_limit: u64,
}

/// Why an offloaded request was answered 503 without its job's response. The response says
/// which, in its body and in its `rtserve-shed` header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Shed {
    /// The worker queue was full.
    QueueFull,
    /// The work queued ahead of it plus its expected run time would have taken it past its
    /// deadline: refused before it was queued.
    ExpectedMiss,
    /// A worker reached it with less time left than it was expected to take: not started.
    NotStarted,
    /// Its deadline passed before its job finished.
    Deadline,
    /// Its route had as many async handlers' futures in flight as it may
    /// ([`Config::max_in_flight_per_route`](crate::Config)).
    InFlight,
    /// Its caller left it less time than [`Config::min_caller_budget`](crate::Config): refused
    /// before its handler ran (see [`Config::deadline_header`](crate::Config)).
    CallerBudget,
}

impl Shed {
    /// Every reason, in the order of their counters.
    pub const ALL: [Self; 6] = [
        Self::QueueFull,
        Self::ExpectedMiss,
        Self::NotStarted,
        Self::Deadline,
        Self::InFlight,
        Self::CallerBudget,
    ];

    /// The reason's name, as in the `rtserve-shed` header and the metrics' `reason` label:
    /// the one place the names are written.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::QueueFull => "queue-full",
            Self::ExpectedMiss => "expected-miss",
            Self::NotStarted => "not-started",
            Self::Deadline => "deadline",
            Self::InFlight => "in-flight",
            Self::CallerBudget => "caller-budget",
        }
    }
}

/// Offloaded requests answered 503 without their job's response, by [`Shed`] reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sheds {
    /// Counts, in the order of [`Shed::ALL`].
    pub by_reason: [u64; Shed::ALL.len()],
}

impl Sheds {
    /// Those shed for `reason`.
    pub fn get(&self, reason: Shed) -> u64 {
        self.by_reason[reason as usize]
    }

    /// Those refused at once (every reason but [`Shed::Deadline`]).
    pub fn at_once(&self) -> u64 {
        self.total() - self.get(Shed::Deadline)
    }

    /// All of them.
    pub fn total(&self) -> u64 {
        self.by_reason.iter().sum()
    }
}

/// Upper bounds of the deadline-lateness histogram's buckets, in microseconds: how long after
/// its deadline a 503 for a missed deadline went out.
pub const LATENESS_BUCKETS_US: [u64; 10] = [10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000];

/// Upper bounds of the socket-queue histogram's buckets, in microseconds: from a reactor that
/// keeps up (tens of microseconds) to one stalled past any deadline.
pub const SOCKET_QUEUE_BUCKETS_US: [u64; 14] = [
    10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 100_000, 250_000, 1_000_000,
];

/// A histogram of durations.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Histogram {
    /// Upper bounds of the buckets, in microseconds.
    pub bounds_us: &'static [u64],
    /// Per bucket (not cumulative); those longer than the last bound are in `count` only.
    pub buckets: Vec<u64>,
    /// How many were recorded.
    pub count: u64,
    /// Their sum, in microseconds.
    pub sum_us: u64,
}

/// A histogram's cells: buckets of durations, their count and their sum, each an atomic that
/// readers load and add into a [`Histogram`]. One type serves the reactors' histograms, each
/// with a single writer ([`record`](Self::record)), and the pool's, which every worker writes
/// ([`record_shared`](Self::record_shared)); neither allocates nor locks.
#[derive(Debug)]
struct HistogramCells {
    bounds_us: &'static [u64],
    buckets: Box<[Counter]>,
    count: Counter,
    sum_us: Counter,
}

impl HistogramCells {
    fn new(bounds_us: &'static [u64]) -> Self {
        Self {
            bounds_us,
            buckets: bounds_us.iter().map(|_| Counter::default()).collect(),
            count: Counter::default(),
            sum_us: Counter::default(),
        }
    }

    /// Records `d`, for the cells' only writer.
    fn record(&self, d: Duration) {
        self.record_with(d, Counter::add);
    }

    /// Records `d`, for one of the cells' several writers.
    fn record_shared(&self, d: Duration) {
        self.record_with(d, Counter::add_shared);
    }

    /// Records `d` with `add`. The count is written before the bucket and read after it
    /// ([`add_to`](Self::add_to)): where stores and loads keep their order (x86-64), a
    /// reader racing a writer then never sees buckets that sum past the count, which
    /// Prometheus rejects; relaxed atomics promise that order nowhere else.
    fn record_with(&self, d: Duration, add: impl Fn(&Counter, u64)) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        add(&self.count, 1);
        if let Some(i) = self.bounds_us.iter().position(|&b| us <= b) {
            add(&self.buckets[i], 1);
        }
        add(&self.sum_us, us);
    }

    /// Adds the cells into `merged`, which takes their bounds when it has no buckets yet.
    fn add_to(&self, merged: &mut Histogram) {
        if merged.buckets.is_empty() {
            merged.bounds_us = self.bounds_us;
            merged.buckets = vec![0; self.bounds_us.len()];
        }
        for (m, c) in merged.buckets.iter_mut().zip(self.buckets.iter()) {
            *m += c.get();
        }
        merged.count += self.count.get();
        merged.sum_us += self.sum_us.get();
    }
}

/// What the worker pool records: written by every worker, so with atomic additions.
#[derive(Debug)]
pub(crate) struct PoolStats {
    /// How long jobs waited for a worker.
    wait: HistogramCells,
    /// Per route: what the queue shows of it.
    routes: Box<[PoolRoute]>,
}

/// What the pool's statistics show of a route: the queue makes one whenever the route's
/// state changes, and [`PoolStats::route_view`] publishes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RouteView {
    /// The expected run time of its jobs.
    pub(crate) expected: Duration,
    /// The margin beyond the predicted end a job must leave before its deadline, ns.
    pub(crate) margin_ns: i64,
    /// How many of its jobs may run at once.
    pub(crate) limit: usize,
    /// Its jobs refused at the door although a worker fell idle in time to run them.
    pub(crate) over_refused: u64,
}

/// What the pool shows of one route, as last updated.
#[derive(Debug, Default)]
struct PoolRoute {
    run_time_us: AtomicU64,
    margin_us: AtomicI64,
    limit: AtomicU64,
    over_refused: AtomicU64,
}

impl PoolStats {
    pub(crate) fn new(routes: usize) -> Self {
        Self {
            wait: HistogramCells::new(&LATENCY_BUCKETS_US),
            routes: (0..=routes).map(|_| PoolRoute::default()).collect(),
        }
    }

    /// A job waited `waited` for a worker.
    pub(crate) fn waited(&self, waited: Duration) {
        self.wait.record_shared(waited);
    }

    /// Route `route`'s state in the queue is now `view`.
    pub(crate) fn route_view(&self, route: usize, view: RouteView) {
        let Some(cell) = self.routes.get(route) else {
            return;
        };
        let us = u64::try_from(view.expected.as_micros()).unwrap_or(u64::MAX);
        cell.run_time_us.store(us, Ordering::Relaxed);
        cell.margin_us
            .store(view.margin_ns / 1000, Ordering::Relaxed);
        cell.limit.store(view.limit as u64, Ordering::Relaxed);
        cell.over_refused
            .store(view.over_refused, Ordering::Relaxed);
    }

    fn queue_wait(&self) -> Histogram {
        let mut merged = Histogram::default();
        self.wait.add_to(&mut merged);
        merged
    }
}

impl RouteStats {
    /// Responses sent on this route.
    pub fn requests(&self) -> u64 {
        self.by_status.iter().map(|&(_, n)| n).sum()
    }
}

/// Every reactor's statistics, and the route names.
#[derive(Debug)]
pub(crate) struct StatsRegistry {
    pub(crate) reactors: Vec<Arc<ReactorStats>>,
    pub(crate) pool: Arc<PoolStats>,
    /// The body and output budgets, for their gauges.
    pub(crate) budgets: Budgets,
    /// Async handlers' futures in flight per route, and those cancelled.
    pub(crate) tasks: Arc<Tasks>,
    pub(crate) names: Vec<String>,
}

impl StatsRegistry {
    /// Statistics for `reactors` reactors and the routes `names`; `in_flight` futures at most
    /// per route.
    pub(crate) fn new(
        reactors: usize,
        names: Vec<String>,
        budgets: Budgets,
        in_flight: usize,
    ) -> Self {
        Self {
            budgets,
            tasks: Arc::new(Tasks::new(names.len() + 1, in_flight)),
            reactors: (0..reactors)
                .map(|_| Arc::new(ReactorStats::new(names.len())))
                .collect(),
            pool: Arc::new(PoolStats::new(names.len())),
            names,
        }
    }

    pub(crate) fn merged(&self) -> Stats {
        let mut stats = merge(&self.reactors, &self.names);
        stats.queue_wait = self.pool.queue_wait();
        stats.body_bytes = self.budgets.bodies.used() as u64;
        stats.output_bytes = self.budgets.output.used() as u64;
        stats.futures_in_flight = self.tasks.in_flight();
        stats.futures_cancelled = self.tasks.cancelled();
        for (route, pool) in stats.routes.iter_mut().zip(self.pool.routes.iter()) {
            route.run_time_estimate_us = pool.run_time_us.load(Ordering::Relaxed);
            route.admission_margin_us = pool.margin_us.load(Ordering::Relaxed);
            route.concurrency_limit = pool.limit.load(Ordering::Relaxed);
            route.over_refused = pool.over_refused.load(Ordering::Relaxed);
        }
        stats
    }

    /// The name of route `index` ("other" past the named ones).
    pub(crate) fn name(&self, index: usize) -> &str {
        self.names.get(index).map_or("other", String::as_str)
    }
}

/// Merges the reactors' statistics.
fn merge(reactors: &[Arc<ReactorStats>], names: &[String]) -> Stats {
    let mut stats = Stats::default();
    let routes = reactors.first().map_or(0, |r| r.routes.len());
    stats.routes = (0..routes)
        .map(|i| RouteStats {
            name: names.get(i).cloned().unwrap_or_else(|| "other".to_owned()),
            ..RouteStats::default()
        })
        .collect();
    for r in reactors {
        stats.open_connections.push(r.open_connections.get());
        stats.accepted += r.accepted.get();
        stats.accepted_by_reactor.push(r.accepted.get());
        stats.requests_by_reactor.push(r.requests.get());
        stats.accept_backoffs += r.accept_backoffs.get();
        stats.body_refusals += r.body_refusals.get();
        stats.slow_bodies += r.slow_bodies.get();
        stats.output_refusals += r.output_refusals.get();
        stats.write_timeouts += r.write_timeouts.get();
        stats.resets += r.resets.get();
        r.lateness.add_to(&mut stats.deadline_lateness);
        r.socket_queue.add_to(&mut stats.socket_queue);
        stats.log_dropped += r.log_dropped.get();
        for (merged, cells) in stats.routes.iter_mut().zip(r.routes.iter()) {
            cells.latency.add_to(&mut merged.latency);
            merged.in_time += cells.in_time.get();
            merged.answered_late += cells.answered_late.get();
            merged.admitted_missed += cells.admitted_missed.get();
            merged.hangups += cells.hangups.get();
            for (sum, counter) in merged.shed.by_reason.iter_mut().zip(&cells.shed) {
                *sum += counter.get();
            }
            for (i, c) in cells.by_status.iter().enumerate() {
                let n = c.get();
                if n == 0 {
                    continue;
                }
                let status = 100 + i as u16;
                match merged.by_status.binary_search_by_key(&status, |&(s, _)| s) {
                    Ok(at) => merged.by_status[at].1 += n,
                    Err(at) => merged.by_status.insert(at, (status, n)),
                }
            }
        }
    }
    for route in &stats.routes {
        for (total, n) in stats.shed.by_reason.iter_mut().zip(route.shed.by_reason) {
            *total += n;
        }
    }
    stats
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_reactors_and_routes() {
        let a = Arc::new(ReactorStats::new(1));
        let b = Arc::new(ReactorStats::new(1));
        a.connection_opened();
        b.connection_opened();
        b.connection_closed();
        a.response(0, 200, Duration::from_micros(90));
        b.response(0, 200, Duration::from_micros(300));
        b.response(0, 503, Duration::from_millis(20));
        a.response(7, 404, Duration::from_micros(1)); // clamped to "other"
        a.shed(0, Shed::ExpectedMiss);
        b.shed(0, Shed::Deadline);
        b.shed(1, Shed::Deadline);
        let stats = merge(&[a, b], &["/hello".to_owned()]);
        assert_eq!(stats.open_connections, [1, 0]);
        assert_eq!(stats.accepted, 2);
        assert_eq!(stats.shed.get(Shed::ExpectedMiss), 1);
        assert_eq!((stats.shed.at_once(), stats.shed.total()), (1, 3));
        assert_eq!(stats.routes.len(), 2);
        let hello = &stats.routes[0];
        assert_eq!(hello.name, "/hello");
        assert_eq!(hello.by_status, [(200, 2), (503, 1)]);
        assert_eq!(hello.requests(), 3);
        assert_eq!((hello.shed.at_once(), hello.shed.total()), (1, 2));
        assert_eq!(hello.latency.buckets[0], 1); // 90 µs ≤ 100 µs
        assert_eq!(hello.latency.buckets[2], 1); // 300 µs ≤ 500 µs
        assert_eq!(hello.latency.buckets[7], 1); // 20 ms ≤ 25 ms
        assert_eq!(hello.latency.sum_us, 90 + 300 + 20_000);
        assert_eq!(hello.latency.count, hello.requests());
        assert_eq!(stats.routes[1].name, "other");
        assert_eq!(stats.routes[1].by_status, [(404, 1)]);
        assert_eq!(stats.routes[1].shed.get(Shed::Deadline), 1);
    }

    #[test]
    fn every_status_a_handler_may_send_is_counted_with_its_latency() {
        let a = ReactorStats::new(1);
        for status in [100, 599, 600, 799, 999] {
            a.response(0, status, Duration::from_micros(50));
        }
        let stats = merge(&[Arc::new(a)], &["/x".to_owned()]);
        let x = &stats.routes[0];
        assert_eq!(
            x.by_status,
            [(100, 1), (599, 1), (600, 1), (799, 1), (999, 1)]
        );
        // The histogram's count is the request count: every response is in a bucket.
        assert_eq!(x.requests(), x.latency.buckets.iter().sum::<u64>());
        assert_eq!(x.requests(), x.latency.count);
    }
}
