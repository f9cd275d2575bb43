//! One generator thread: its own `mio::Poll`, its share of the connections, and the open-loop
//! schedule for them.
//!
//! # Theory of operation
//!
//! Request `g` (counting over all connections and threads) is scheduled at `start + g / rate`,
//! and goes to connection `g mod connections`; so every connection sends at `rate /
//! connections` and their sends interleave evenly. A thread keeps a min-heap of each of its
//! connections' next scheduled time. When a time comes the request joins its connection's
//! queue; it is written as soon as the connection is open and has fewer than `pipeline`
//! requests in flight. Latency counts from the scheduled time (corrected) and from the write
//! (uncorrected) to the last byte of the response.
//!
//! `mio` timeouts are whole milliseconds, so the loop polls with the time to the next send
//! rounded *down*, then polls with a zero timeout (spins) until the send time: sends are late
//! by microseconds, not by a millisecond. The lateness is recorded as the schedule lag.
//!
//! Every scheduled request ends in exactly one place: a response, an error count, or `unsent`
//! (still queued when the measured window closes). After the window the thread stops sending
//! and waits up to the timeout for requests in flight.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mio::{Events, Poll};

use crate::config::LoadConfig;
use crate::conn::{Conn, ConnState, Handshake, InFlight, Transfer};
use crate::response::Completed;
use crate::schedule::{Due, Schedule, Timeline};
use crate::{
    outcome::{ErrorKind, Outcome, Windows},
    report::micros,
};

/// How often in-flight requests and connects are checked against the timeout. The timeout is
/// thus enforced to within this much.
const TIMEOUT_CHECK: Duration = Duration::from_millis(5);

/// Counters the main thread reads for the progress line.
#[derive(Debug, Default)]
pub(crate) struct Live {
    pub(crate) completed: AtomicU64,
    pub(crate) errors: AtomicU64,
}

/// What one thread is asked to do.
#[derive(Debug)]
pub(crate) struct Plan {
    pub(crate) config: Arc<LoadConfig>,
    pub(crate) request: Arc<[u8]>,
    /// Global indices of this thread's connections.
    pub(crate) connections: Vec<usize>,
    /// Time zero of the schedule, shared by all threads.
    pub(crate) start: Instant,
    pub(crate) live: Arc<Live>,
}

/// Run one thread's share of the load to completion.
pub(crate) fn run(plan: &Plan) -> io::Result<Outcome> {
    let mut worker = Worker::new(plan)?;
    let cpu_before = thread_cpu_time();
    worker.run()?;
    let cpu = thread_cpu_time().saturating_sub(cpu_before);
    let wall = plan.start.elapsed();
    let stats = worker.stats;
    Ok(Outcome { cpu, wall, ..stats })
}

struct Worker<'p> {
    plan: &'p Plan,
    poll: Poll,
    conns: Vec<Conn>,
    /// When each connection's next request is due.
    timeline: Timeline,
    stats: Outcome,
    scratch: Box<[u8]>,
    warmup_ns: u64,
    end_ns: u64,
    draining: bool,
    head_request: bool,
}

impl<'p> Worker<'p> {
    fn new(plan: &'p Plan) -> io::Result<Self> {
        let config = &plan.config;
        let conns = plan
            .connections
            .iter()
            .map(|&global| Conn::new(global as u64, plan.request.len() * config.pipeline))
            .collect();
        let warmup_ns = duration_ns(config.warmup);
        let end_ns = warmup_ns.saturating_add(duration_ns(config.duration));
        let globals: Vec<u64> = plan.connections.iter().map(|&g| g as u64).collect();
        let mut schedule = Schedule::new(config.rate, config.connections, end_ns);
        if let Some(burst) = config.burst {
            let from = warmup_ns.saturating_add(duration_ns(burst.start));
            let to = from.saturating_add(duration_ns(burst.length));
            schedule = schedule.with_burst(from, to, burst.rate);
        }
        let mut stats = Outcome::new();
        if let Some(width) = config.window {
            stats.windows = Windows::new(width, config.duration, config.deadline);
        }
        Ok(Self {
            plan,
            poll: Poll::new()?,
            conns,
            timeline: Timeline::new(schedule, &globals),
            stats,
            scratch: vec![0; 64 * 1024].into_boxed_slice(),
            warmup_ns,
            end_ns,
            draining: false,
            head_request: config.method == "HEAD",
        })
    }

    /// Scheduled time (ns after start) of connection `conn`'s request number `k`.
    fn schedule(&self, conn: usize, k: u64) -> u64 {
        self.timeline.schedule().due(self.conns[conn].global, k)
    }

    fn run(&mut self) -> io::Result<()> {
        for i in 0..self.conns.len() {
            if !self.plan.config.new_connection_per_request {
                // Keep-alive connections open before the schedule starts.
                self.connect(i, Instant::now());
            }
        }
        let start = self.plan.start;
        let end = start + Duration::from_nanos(self.end_ns);
        let drain_deadline = end + self.plan.config.timeout;
        let mut events = Events::with_capacity(1024);
        let mut next_check = Instant::now();
        // Set when an iteration found nothing to do: its whole length, from the instant held
        // here, was idle (blocked in poll or spinning).
        let mut idle_since: Option<Instant> = None;
        loop {
            let now = Instant::now();
            if let Some(since) = idle_since.take() {
                self.stats.idle += now.saturating_duration_since(since);
            }
            let dispatched = self.dispatch_due(now);
            if now >= next_check {
                self.check_timeouts(now);
                next_check = now + TIMEOUT_CHECK;
            }
            if now >= end && !self.draining {
                self.draining = true;
                self.timeline.stop();
                for i in 0..self.conns.len() {
                    while let Some(scheduled) = self.pop_due(i) {
                        if scheduled >= self.warmup_ns {
                            self.stats.requests.unsent += 1;
                        }
                    }
                }
            }
            if self.draining {
                let busy = self.conns.iter().any(|c| !c.in_flight.is_empty());
                if !busy || now >= drain_deadline {
                    break;
                }
            }

            // Sends need precision: poll for the whole milliseconds to the next one, rounded
            // down, and spin the rest (zero timeouts). The timeout sweep does not: round up.
            let mut send_at = (!self.draining).then_some(end);
            if let Some(scheduled) = self.timeline.next_at() {
                let at = start + Duration::from_nanos(scheduled);
                send_at = Some(send_at.map_or(at, |end| end.min(at)));
            }
            let check_in = next_check.saturating_duration_since(now);
            let mut wait = Duration::from_millis(check_in.as_micros().div_ceil(1000) as u64);
            if let Some(at) = send_at {
                let send_in = at.saturating_duration_since(now);
                wait = wait.min(Duration::from_millis(send_in.as_millis() as u64));
            }
            match self.poll.poll(&mut events, Some(wait)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            for event in &events {
                let index = Conn::index_of(event.token());
                if !self.conns.get(index).is_some_and(|c| c.owns(event.token())) {
                    continue; // An event for a socket already closed.
                }
                self.on_event(
                    index,
                    event.is_readable() || event.is_read_closed() || event.is_error(),
                );
            }
            if events.is_empty() && !dispatched {
                idle_since = Some(now);
            }
        }
        // Anything still in flight has outlived the timeout.
        for i in 0..self.conns.len() {
            self.close(i, ErrorKind::Timeout, ErrorKind::Timeout);
        }
        Ok(())
    }

    /// Move every request whose time has come to its connection's queue and send what can be.
    /// Returns whether there was any.
    fn dispatch_due(&mut self, now: Instant) -> bool {
        let start = self.plan.start;
        let now_ns = duration_ns(now.saturating_duration_since(start));
        let mut any = false;
        while let Some(Due {
            conn: i,
            at: scheduled,
        }) = self.timeline.pop_due(now_ns)
        {
            let at = start + Duration::from_nanos(scheduled);
            any = true;
            let depth = self.pipeline_depth();
            let conn = &mut self.conns[i];
            let measured = scheduled >= self.warmup_ns;
            if measured {
                self.stats
                    .offered(Duration::from_nanos(scheduled - self.warmup_ns));
                self.stats
                    .schedule_lag
                    .saturating_record(micros(now.saturating_duration_since(at)));
                let busy = conn.has_due()
                    || conn.in_flight.len() >= depth
                    || matches!(conn.state, ConnState::Connecting(_));
                if busy {
                    self.stats.requests.queued += 1;
                }
            }
            conn.next += 1;
            self.pump(i, now);
        }
        any
    }

    /// Take the oldest queued request of connection `i`: its scheduled time.
    fn pop_due(&mut self, i: usize) -> Option<u64> {
        let conn = &mut self.conns[i];
        if !conn.has_due() {
            return None;
        }
        let k = conn.unsent;
        conn.unsent += 1;
        Some(self.schedule(i, k))
    }

    fn pipeline_depth(&self) -> usize {
        if self.plan.config.new_connection_per_request {
            1
        } else {
            self.plan.config.pipeline
        }
    }

    /// Open a connection or write due requests, whichever the connection can do now.
    ///
    /// Called only from the event loop's top (never from inside a read or a parse), so the
    /// connection may be closed and replaced here without pulling a buffer out from under a
    /// caller.
    fn pump(&mut self, i: usize, now: Instant) {
        while self.pump_once(i, now) {}
    }

    /// One pass of [`pump`](Self::pump); returns whether a write closed the connection with
    /// requests still due (so another pass reconnects).
    fn pump_once(&mut self, i: usize, now: Instant) -> bool {
        loop {
            match self.conns[i].state {
                ConnState::Connecting(_) => return false,
                ConnState::Idle => {
                    if !self.conns[i].has_due() || self.draining {
                        return false;
                    }
                    if self.connect(i, now) {
                        return false;
                    }
                    // Refused at once: that costs the request at the head of the queue.
                    self.fail_connect(i);
                }
                ConnState::Open => break,
            }
        }
        let depth = self.pipeline_depth();
        let one_per_conn = self.plan.config.new_connection_per_request;
        let mut wrote = false;
        loop {
            let conn = &self.conns[i];
            if conn.in_flight.len() >= depth || (one_per_conn && conn.written > 0) {
                break;
            }
            let Some(scheduled) = self.pop_due(i) else {
                break;
            };
            self.conns[i].push(&self.plan.request, scheduled, now);
            if scheduled >= self.warmup_ns {
                self.stats.requests.sent += 1;
            }
            wrote = true;
        }
        if wrote {
            self.flush(i);
        }
        let conn = &self.conns[i];
        conn.state == ConnState::Idle && conn.has_due() && !self.draining
    }

    /// Start a non-blocking connect; false if it failed at once.
    fn connect(&mut self, i: usize, now: Instant) -> bool {
        let addr = self.plan.config.target.addr;
        self.conns[i].connect(addr, self.poll.registry(), i, now)
    }

    /// A connect failed: charge it to the request waiting for it, if any.
    fn fail_connect(&mut self, i: usize) {
        self.conns[i].close(self.poll.registry());
        if let Some(scheduled) = self.pop_due(i) {
            self.count_error(scheduled, ErrorKind::Connect);
        }
    }

    fn on_event(&mut self, i: usize, readable: bool) {
        let now = Instant::now();
        if let ConnState::Connecting(_) = self.conns[i].state {
            match self.conns[i].handshake() {
                Handshake::Done => {}
                Handshake::Pending => return,
                Handshake::Failed => self.fail_connect(i),
            }
            self.pump(i, now);
        }
        if self.conns[i].state != ConnState::Open {
            return;
        }
        self.flush(i);
        if readable && self.conns[i].state == ConnState::Open {
            self.read(i);
        }
        // Responses free pipeline slots; a close leaves due requests for a new connection.
        self.pump(i, now);
    }

    /// Write buffered request bytes until done or `WouldBlock`.
    fn flush(&mut self, i: usize) {
        if self.conns[i].flush() == Transfer::Ended {
            self.close(i, ErrorKind::Closed, ErrorKind::Closed);
        }
    }

    /// Read until `WouldBlock` and account every complete response.
    fn read(&mut self, i: usize) {
        loop {
            let ended = match self.conns[i].receive(&mut self.scratch) {
                Transfer::Moved => false,
                Transfer::Blocked => return,
                Transfer::Ended => true,
            };
            // Frame after every read: the buffer never holds more than one read's worth.
            let now = Instant::now();
            loop {
                match self.conns[i].next_response(self.head_request) {
                    Ok(Some(done)) => {
                        if !self.complete(i, done, now) {
                            return;
                        }
                    }
                    Ok(None) => break,
                    Err(_) => return self.close(i, ErrorKind::Malformed, ErrorKind::Closed),
                }
            }
            if ended {
                // A truncated response is counted with the rest below, as closed.
                if let Some(done) = self.conns[i].finish()
                    && !self.complete(i, done, now)
                {
                    return;
                }
                // Requests still in flight get no answer on this connection.
                return self.close(i, ErrorKind::Closed, ErrorKind::Closed);
            }
        }
    }

    /// Account one response; false if the connection was closed as a result.
    fn complete(&mut self, i: usize, done: Completed, now: Instant) -> bool {
        let Some(InFlight { scheduled, sent }) = self.conns[i].in_flight.pop_front() else {
            // A response nobody asked for.
            self.close(i, ErrorKind::Malformed, ErrorKind::Closed);
            return false;
        };
        self.plan.live.completed.fetch_add(1, Ordering::Relaxed);
        if scheduled >= self.warmup_ns {
            let scheduled_at = self.plan.start + Duration::from_nanos(scheduled);
            let corrected = now.saturating_duration_since(scheduled_at);
            let uncorrected = now.saturating_duration_since(sent);
            let offset = Duration::from_nanos(scheduled - self.warmup_ns);
            self.stats
                .answered(done.status, corrected, uncorrected, offset);
        }
        let reuse = !done.close && !self.plan.config.new_connection_per_request;
        if !reuse {
            // Requests pipelined behind a closing response are lost.
            self.close(i, ErrorKind::Closed, ErrorKind::Closed);
            return false;
        }
        true
    }

    /// Drop the connection: the oldest request in flight counts as `first`, the rest as
    /// `rest`. Due requests stay queued for a new connection.
    fn close(&mut self, i: usize, first: ErrorKind, rest: ErrorKind) {
        self.conns[i].close(self.poll.registry());
        let mut lost = std::mem::take(&mut self.conns[i].in_flight);
        for (n, request) in lost.drain(..).enumerate() {
            self.count_error(request.scheduled, if n == 0 { first } else { rest });
        }
        // Keep the queue's memory for the next socket.
        self.conns[i].in_flight = lost;
    }

    fn count_error(&mut self, scheduled: u64, kind: ErrorKind) {
        self.plan.live.errors.fetch_add(1, Ordering::Relaxed);
        if scheduled >= self.warmup_ns {
            self.stats.failed(kind);
        }
    }

    fn check_timeouts(&mut self, now: Instant) {
        let timeout = self.plan.config.timeout;
        for i in 0..self.conns.len() {
            let conn = &self.conns[i];
            match conn.state {
                ConnState::Connecting(since) if now >= since + timeout => {
                    self.fail_connect(i);
                    self.pump(i, now);
                }
                ConnState::Open
                    if conn
                        .in_flight
                        .front()
                        .is_some_and(|r| now >= r.sent + timeout) =>
                {
                    self.close(i, ErrorKind::Timeout, ErrorKind::Timeout);
                    self.pump(i, now);
                }
                _ => {}
            }
        }
    }
}

fn duration_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// CPU time (user + system) of the calling thread, from its CPU-time clock.
fn thread_cpu_time() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(
        u64::try_from(t.tv_sec).unwrap_or(0),
        u32::try_from(t.tv_nsec).unwrap_or(0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_counts_this_threads_work() {
        let before = thread_cpu_time();
        let spin = Instant::now();
        let mut x = 0u64;
        while spin.elapsed() < Duration::from_millis(50) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        // Strictly more: a clock that could not be read (zero, or stuck) fails here.
        assert!(thread_cpu_time() > before, "{before:?}");
    }
}
