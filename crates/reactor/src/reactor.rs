//! One reactor: a thread that owns a `mio::Poll`, a listener and a slab of connections.
//!
//! Theory of operation, one turn of the loop:
//!
//! 1. Poll with a timeout of the nearest timer (zero while connections are on the still-ready
//!    list). Read the clock once; refresh the `Date` text when the second changes.
//! 2. Handle events: the waker drains the mailbox; the listener accepts until `WouldBlock`;
//!    a connection reads, parses and answers every complete request, then writes.
//! 3. Serve the still-ready list: connections cut off by the per-turn request budget, or whose
//!    output drained below the limit after reading had paused. No new edge will come for
//!    bytes already in their buffers, so they are resumed here, before the next sleep.
//! 4. Fire due timers.
//!
//! Readiness is edge-triggered and a connection is registered once for both directions, so
//! answering a request costs no `epoll_ctl`. Two shortcuts to "until `WouldBlock`" are sound
//! for TCP on Linux and save a system call per request: a read that returns less than the
//! buffer had room for has taken everything the socket held, and any byte arriving after it
//! raises a new edge; a write that takes less than it was given leaves the socket full, and
//! space freeing up raises a new edge.

use std::{
    cell::Cell,
    io::{self, Read, Write},
    mem,
    net::Shutdown,
    ops::Range,
    panic::{AssertUnwindSafe, catch_unwind},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
        mpsc::{self, SyncSender},
    },
    time::{Duration, Instant, SystemTime},
};

use mio::{Events, Interest, Poll, net::TcpListener};
use rtserve_protocol::{
    BodyLength, Event, HttpDate, ResponseContext, ServerConn, StatusCode, send_continue, send_head,
};
use slab::Slab;

use crate::{
    Config, Handler, JobContext, Reply, Request, Response,
    conn::{Connection, Io, IoPool, Phase, Slot, SlotState},
    handler::{Job, ServerView},
    log::LogEntry,
    pool::{Task, WorkerPool},
    server::Mailbox,
    stats::ReactorStats,
    timer::{Popped, TimerKind, TimerQueue},
    token::{ConnId, LISTENER, WAKER},
};

/// Bytes read from a socket per system call.
const READ_CHUNK: usize = 64 * 1024;
/// A connection's buffer larger than this is freed once empty rather than kept for reuse, so
/// that one large or fragmented request or response does not pin memory for the connection's
/// lifetime (most connections never need a buffer of their own at all).
const KEEP_BUFFER: usize = 4 * 1024;
/// The reactor's output buffer is kept up to this size: it serves every connection.
const KEEP_OUT: usize = 1024 * 1024;
/// How long accepting pauses after the process ran out of file descriptors.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// Most bytes discarded while lingering before the connection is closed anyway.
const MAX_LINGER_BYTES: usize = 1024 * 1024;
/// Events handled per poll.
const EVENTS: usize = 1024;

/// What other threads tell a reactor.
#[derive(Debug)]
pub(crate) enum Message {
    /// An offloaded job's response.
    Completion(Completion),
    /// Report draining for `grace`, then stop accepting, finish what is in flight, close, and
    /// exit.
    Shutdown { grace: Duration },
}

/// A worker's answer to response `seq` of connection `conn`.
#[derive(Debug)]
pub(crate) struct Completion {
    pub(crate) conn: ConnId,
    pub(crate) seq: u64,
    pub(crate) response: Response,
}

/// What every reactor of a server shares.
#[derive(Clone)]
pub(crate) struct Shared {
    pub(crate) handler: Arc<dyn Handler>,
    pub(crate) config: Arc<Config>,
    pub(crate) pool: WorkerPool,
    pub(crate) view: Arc<ServerView>,
    pub(crate) log: Option<SyncSender<LogEntry>>,
}

/// Whether the reactor takes new connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Accepting {
    Open,
    /// At the connection limit: resume when one closes.
    AtLimit,
    /// Out of file descriptors: resume at this time.
    Backoff(Instant),
    /// Shutting down: the listener is gone.
    Closed,
}

/// A reactor, built on the starting thread (so that errors reach the caller) and then moved
/// onto its own.
pub(crate) struct Reactor {
    id: usize,
    poll: Poll,
    listener: Option<TcpListener>,
    conns: Slab<Connection>,
    next_generation: u32,
    timers: TimerQueue,
    date: HttpDate,
    next_date: Instant,
    now: Instant,
    scratch: Box<[u8]>,
    out: Vec<u8>,
    still_ready: Vec<ConnId>,
    accepting: Accepting,
    /// When the drain grace ends and shutdown proper begins.
    drain_at: Option<Instant>,
    shutdown_deadline: Option<Instant>,
    handler: Arc<dyn Handler>,
    config: Arc<Config>,
    mailbox: mpsc::Receiver<Message>,
    /// This reactor's own mailbox, for jobs to answer through.
    reply_to: Arc<Mailbox>,
    pool: WorkerPool,
    view: Arc<ServerView>,
    /// This reactor's statistics (it is their only writer).
    stats: Arc<ReactorStats>,
    log: Option<SyncSender<LogEntry>>,
    /// Where the handler files the request it is answering (see `Request::set_route`).
    route: Cell<usize>,
    /// Connections that got completions this turn, flushed once each.
    touched: Vec<ConnId>,
    /// Spare per-connection state, for connections that have work in hand.
    io_pool: IoPool,
}

impl Reactor {
    pub(crate) fn new(
        id: usize,
        poll: Poll,
        mut listener: TcpListener,
        shared: Shared,
        mailbox: mpsc::Receiver<Message>,
        reply_to: Arc<Mailbox>,
    ) -> io::Result<Self> {
        let Shared {
            handler,
            config,
            pool,
            view,
            log,
        } = shared;
        let stats = Arc::clone(&view.stats.reactors[id]);
        let io_pool = IoPool::new(config.limits);
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let now = Instant::now();
        Ok(Self {
            id,
            poll,
            listener: Some(listener),
            conns: Slab::new(),
            next_generation: 0,
            timers: TimerQueue::default(),
            date: HttpDate::new(SystemTime::now()),
            next_date: now,
            now,
            scratch: vec![0; READ_CHUNK].into_boxed_slice(),
            out: Vec::new(),
            still_ready: Vec::new(),
            accepting: Accepting::Open,
            drain_at: None,
            shutdown_deadline: None,
            handler,
            config,
            mailbox,
            reply_to,
            pool,
            route: Cell::new(stats.other_route()),
            view,
            stats,
            log,
            touched: Vec::new(),
            io_pool,
        })
    }

    /// Runs until shut down.
    pub(crate) fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(EVENTS);
        let mut ready = Vec::new();
        loop {
            let timeout = self.poll_timeout();
            match self.poll.poll(&mut events, timeout) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
            self.tick();
            for event in &events {
                match event.token() {
                    WAKER => self.handle_mailbox(),
                    LISTENER => self.accept(),
                    token => {
                        let Some(id) = ConnId::from_token(token) else {
                            continue;
                        };
                        if event.is_error() {
                            // Reset or failed: free the slot now and drop what it was owed.
                            self.close(id);
                            continue;
                        }
                        if event.is_read_closed()
                            && let Some(conn) = self.conn_mut(id)
                        {
                            // The peer's FIN is here: read to it, not just to a short read.
                            conn.peer_hup = true;
                        }
                        let readable = event.is_readable() || event.is_read_closed();
                        self.handle_event(id, readable, event.is_writable());
                    }
                }
            }
            // Serve the connections that still have work; new ones go to the next turn.
            mem::swap(&mut ready, &mut self.still_ready);
            for id in ready.drain(..) {
                if let Some(conn) = self.conn_mut(id) {
                    conn.still_ready = false;
                    self.handle_event(id, true, false);
                }
            }
            self.fire_timers();
            if let Some(at) = self.drain_at
                && self.now >= at
            {
                self.drain_at = None;
                self.begin_shutdown();
            }
            if let Accepting::Backoff(until) = self.accepting
                && self.now >= until
            {
                self.accepting = Accepting::Open;
                self.accept();
            }
            if let Some(deadline) = self.shutdown_deadline
                && (self.conns.is_empty() || self.now >= deadline)
            {
                return Ok(());
            }
        }
    }

    fn poll_timeout(&self) -> Option<Duration> {
        if !self.still_ready.is_empty() {
            return Some(Duration::ZERO);
        }
        let mut next = self.timers.next();
        for at in [
            self.shutdown_deadline,
            self.drain_at,
            match self.accepting {
                Accepting::Backoff(until) => Some(until),
                _ => None,
            },
        ]
        .into_iter()
        .flatten()
        {
            next = Some(next.map_or(at, |n| n.min(at)));
        }
        // `now` is from before this turn's work; a deadline already passed polls with zero.
        next.map(|at| at.saturating_duration_since(Instant::now()))
    }

    /// Reads the clock, once per turn.
    fn tick(&mut self) {
        self.now = Instant::now();
        if self.now >= self.next_date {
            let wall = SystemTime::now();
            self.date.update(wall);
            self.io_pool.trim();
            let into_second = wall
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(Duration::ZERO, |d| {
                    Duration::from_nanos(u64::from(d.subsec_nanos()))
                });
            self.next_date = self.now + (Duration::from_secs(1) - into_second);
        }
    }

    fn conn_mut(&mut self, id: ConnId) -> Option<&mut Connection> {
        self.conns
            .get_mut(id.index as usize)
            .filter(|c| c.id.generation == id.generation)
    }

    fn handle_mailbox(&mut self) {
        while let Ok(message) = self.mailbox.try_recv() {
            match message {
                Message::Completion(completion) => self.complete(completion),
                Message::Shutdown { grace } => self.begin_drain(grace),
            }
        }
        let mut touched = mem::take(&mut self.touched);
        for id in touched.drain(..) {
            self.release(id);
        }
        self.touched = touched;
    }

    /// Puts a job's response in its slot; a late one (its slot answered 503 at the deadline,
    /// or its connection gone) is dropped.
    fn complete(&mut self, completion: Completion) {
        let Some(conn) = self
            .conns
            .get_mut(completion.conn.index as usize)
            .filter(|c| c.id.generation == completion.conn.generation)
        else {
            return;
        };
        let Some(slot) = conn
            .io
            .as_deref_mut()
            .and_then(|io| io.pending.iter_mut().find(|s| s.seq == completion.seq))
        else {
            return;
        };
        if let SlotState::Waiting { deadline, .. } = slot.state {
            // Finished, but after its deadline: the timer has not popped yet (poll timeouts
            // are whole milliseconds), and the late result is dropped all the same.
            let response = if self.now >= deadline {
                self.stats.deadline_missed();
                deadline_missed()
            } else {
                completion.response
            };
            slot.state = SlotState::Ready(response);
            self.touched.push(completion.conn);
        }
    }

    /// Sends the responses at the front of a connection's queue that are ready, in order;
    /// resumes reading if the queue had made it pause.
    fn release(&mut self, id: ConnId) {
        let Some(conn) = self.conns.get_mut(id.index as usize) else {
            return;
        };
        if conn.id.generation != id.generation {
            return;
        }
        let Some(io) = conn.io.as_deref_mut() else {
            return;
        };
        loop {
            let slot = match io.pending.front().map(|slot| &slot.state) {
                Some(SlotState::Continue) => {
                    io.pending.pop_front();
                    send_continue(&mut self.out);
                    continue;
                }
                Some(SlotState::Ready(_)) => io.pending.pop_front(),
                Some(SlotState::Waiting { .. }) | None => None,
            };
            let Some(Slot {
                ctx,
                route,
                received,
                state: SlotState::Ready(response),
                ..
            }) = slot
            else {
                break;
            };
            // Shutting down: the last response owed says the connection closes, unless input
            // is waiting behind it (it is read and answered first).
            let ctx = if conn.close_after
                && io.pending.is_empty()
                && conn.inbuf.is_empty()
                && !conn.paused
            {
                ctx.with_close()
            } else {
                ctx
            };
            let (keep_alive, status) = encode_or_500(ctx, &response, &self.date, &mut self.out);
            let latency = self.now.saturating_duration_since(received);
            record(&self.stats, &self.log, self.id, route, status, latency);
            if !keep_alive {
                io.proto.close();
                conn.phase = Phase::Closing;
                io.cancel_pending();
            }
        }
        if self.flush(id).is_ok() && self.resumable(id) {
            self.mark_still_ready(id);
        }
        self.recycle(id);
    }

    /// Gives a connection's `Io` back to the pool if it has nothing in hand.
    fn recycle(&mut self, id: ConnId) {
        if let Some(conn) = self.conns.get_mut(id.index as usize)
            && conn.id.generation == id.generation
        {
            conn.recycle(&mut self.io_pool);
        }
    }

    fn mark_still_ready(&mut self, id: ConnId) {
        if let Some(conn) = self.conns.get_mut(id.index as usize)
            && conn.id.generation == id.generation
            && !conn.still_ready
        {
            conn.still_ready = true;
            self.still_ready.push(id);
        }
    }

    /// Starts the drain grace: the server goes on serving, but every response from now on says
    /// that its connection closes, so that keep-alive clients move to another server first.
    fn begin_drain(&mut self, grace: Duration) {
        if self.is_draining() {
            return;
        }
        self.drain_at = Some(self.now + grace);
        for (_, conn) in &mut self.conns {
            conn.close_after = true;
        }
    }

    /// Whether a shutdown has begun (the drain grace included).
    fn is_draining(&self) -> bool {
        self.drain_at.is_some() || self.shutdown_deadline.is_some()
    }

    /// Stops accepting (after taking what already waits in the accept queue, which closing the
    /// listener would reset) and lets connections finish what they have in hand.
    ///
    /// A connection with no request in hand (just accepted, or idle between keep-alive
    /// requests) is not closed at once: a request may be on the wire, and closing under it
    /// would lose it once read. It gets `shutdown_idle_wait` for one to arrive, which is
    /// answered with `Connection: close`; then it is closed before reading anything more, so
    /// a request sent after that was never read and the client can tell it was not served.
    fn begin_shutdown(&mut self) {
        if self.shutdown_deadline.is_some() {
            return;
        }
        self.view.draining.store(true, Ordering::Relaxed);
        self.shutdown_deadline = Some(self.now + self.config.shutdown_timeout);
        self.accept_queued();
        self.accepting = Accepting::Closed;
        if let Some(mut listener) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut listener);
        }
        let at = self.now + self.config.shutdown_idle_wait;
        for (_, conn) in &mut self.conns {
            conn.close_after = true;
            if conn.phase == Phase::Open && conn.is_idle() {
                self.timers
                    .set_earliest(&mut conn.timers, conn.id, TimerKind::Idle, at);
            }
        }
    }

    /// Accepts until `WouldBlock`, the connection limit, or running out of descriptors.
    fn accept(&mut self) {
        if self.accepting != Accepting::Open {
            return;
        }
        self.accept_queued();
    }

    fn accept_queued(&mut self) {
        let Some(listener) = &self.listener else {
            return;
        };
        loop {
            // Shutting down, what waits in the queue is taken past the limit: closing the
            // listener would reset it.
            if self.conns.len() >= self.config.max_connections && self.shutdown_deadline.is_none() {
                self.accepting = Accepting::AtLimit;
                return;
            }
            let stream = match listener.accept() {
                Ok((stream, _)) => stream,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if is_transient_accept_error(&e) => continue,
                Err(_) => {
                    // EMFILE, ENFILE, ENOBUFS, ENOMEM: the connection stays in the backlog;
                    // retrying at once would spin, so pause.
                    self.accepting = Accepting::Backoff(self.now + ACCEPT_BACKOFF);
                    self.stats.accept_backoff();
                    return;
                }
            };
            // Requests are answered in one write each; Nagle would hold the next one back.
            let _ = stream.set_nodelay(true);
            let entry = self.conns.vacant_entry();
            let id = ConnId {
                index: entry.key() as u32,
                generation: self.next_generation,
            };
            self.next_generation = self.next_generation.wrapping_add(1) & 0x7fff_ffff;
            let mut stream = stream;
            if self
                .poll
                .registry()
                .register(
                    &mut stream,
                    id.token(),
                    Interest::READABLE | Interest::WRITABLE,
                )
                .is_err()
            {
                continue;
            }
            self.stats.connection_opened();
            let draining = self.drain_at.is_some() || self.shutdown_deadline.is_some();
            let conn = entry.insert(Connection::new(stream, id));
            conn.close_after = draining;
            if self.shutdown_deadline.is_some() {
                // Taken from the queue at shutdown: a short wait for its request (see
                // `begin_shutdown`).
                let at = self.now + self.config.shutdown_idle_wait;
                self.timers.set(&mut conn.timers, id, TimerKind::Idle, at);
            } else {
                let at = self.now + self.config.header_timeout;
                self.timers
                    .set(&mut conn.timers, id, TimerKind::HeadRead, at);
            }
            // Bytes may already be waiting; the registration's first event will report them.
        }
    }

    /// Handles readiness of one connection.
    fn handle_event(&mut self, id: ConnId, readable: bool, writable: bool) {
        let Some(conn) = self.conns.get_mut(id.index as usize) else {
            return;
        };
        if conn.id.generation != id.generation {
            return;
        }
        if writable && conn.pending_output() > 0 && self.flush(id).is_err() {
            return;
        }
        let resume = self.resumable(id);
        if readable || resume {
            self.read(id);
        } else {
            self.recycle(id);
        }
    }

    /// Whether a paused connection has drained enough to read again.
    fn resumable(&mut self, id: ConnId) -> bool {
        let max = self.config.max_buffered_output;
        let max_pending = self.config.max_pending_responses;
        match self.conn_mut(id) {
            Some(conn)
                if conn.paused && conn.pending_output() < max && conn.pending() < max_pending =>
            {
                conn.paused = false;
                true
            }
            _ => false,
        }
    }

    /// Reads, parses and answers until the socket is drained, the budget is spent, the output
    /// backs up, or the connection closes; then writes.
    fn read(&mut self, id: ConnId) {
        match self.conn_mut(id).map(|c| (c.phase, c.paused)) {
            Some((Phase::Open, false)) => {}
            Some((Phase::Lingering, _)) => return self.linger(id),
            _ => return,
        }
        let (flow, progress, failed) = {
            let Self {
                conns,
                scratch,
                out,
                handler,
                config,
                date,
                still_ready,
                id: reactor,
                now,
                timers,
                pool,
                reply_to,
                view,
                stats,
                log,
                route,
                io_pool,
                ..
            } = self;
            let Some(conn) = conns.get_mut(id.index as usize) else {
                return;
            };
            if conn.io.is_none() {
                conn.io = Some(io_pool.take());
            }
            let mut turn = Turn {
                out,
                handler: handler.as_ref(),
                date,
                reactor: *reactor,
                budget: config.requests_per_turn,
                config,
                now: *now,
                timers,
                pool,
                reply_to,
                view,
                stats,
                log,
                route,
            };
            let mut progress = false;
            let mut failed = false;
            // Requests left over from an earlier turn come first.
            let mut flow = if conn.unconsumed().is_empty() {
                Flow::Continue
            } else {
                // Whether more input waits in the socket matters only to a connection that
                // closes after its last request (shutting down): look, without reading.
                let drained = conn.close_after && socket_is_drained(&conn.stream);
                process(conn, &[], drained, &mut turn)
            };
            while flow == Flow::Continue {
                match conn.stream.read(scratch) {
                    Ok(0) => {
                        conn.peer_closed = true;
                        eof(conn, &mut turn);
                        break;
                    }
                    Ok(n) => {
                        progress = true;
                        let drained = n < scratch.len() && !conn.peer_hup;
                        flow = process(conn, &scratch[..n], drained, &mut turn);
                        // A short read took all the socket held (see the module docs),
                        // unless the peer's FIN came with it: no edge will come for that.
                        if n < scratch.len() && flow == Flow::Continue && !conn.peer_hup {
                            break;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => {
                        failed = true;
                        break;
                    }
                }
            }
            match flow {
                Flow::Budget if !conn.still_ready => {
                    conn.still_ready = true;
                    still_ready.push(id);
                }
                Flow::Paused => conn.paused = true,
                _ => {}
            }
            (flow, progress, failed)
        };
        if failed {
            self.out.clear();
            return self.close(id);
        }
        self.arm_read_timers(id, progress);
        if self.flush(id).is_ok() && flow == Flow::Paused && self.resumable(id) {
            // The socket took the output at once: go on reading before the next sleep.
            self.mark_still_ready(id);
        }
        self.recycle(id);
    }

    /// Sets the read-side timers after a read: they time the client, so none runs while the
    /// server itself holds input back (paused, or cut off by the budget).
    fn arm_read_timers(&mut self, id: ConnId, progress: bool) {
        let now = self.now;
        let config = &self.config;
        let shutting_down = self.shutdown_deadline.is_some();
        let Some(conn) = self.conns.get_mut(id.index as usize) else {
            return;
        };
        let timers = &mut self.timers;
        let (head, body, idle) = (TimerKind::HeadRead, TimerKind::BodyRead, TimerKind::Idle);
        if conn.phase != Phase::Open || conn.paused || conn.still_ready {
            for kind in [head, body, idle] {
                conn.timers.clear(kind);
            }
        } else if conn.head_len > 0 {
            // A body is arriving: time each pause in it.
            conn.timers.clear(head);
            conn.timers.clear(idle);
            if progress || !conn.timers.is_set(body) {
                timers.set(&mut conn.timers, id, body, now + config.body_timeout);
            }
        } else if !conn.inbuf.is_empty() {
            // Part of a head: time the whole head from its first byte, per head.
            conn.timers.clear(body);
            conn.timers.clear(idle);
            if !conn.timers.is_set(head) || conn.head_timed != conn.requests {
                conn.head_timed = conn.requests;
                timers.set(&mut conn.timers, id, head, now + config.header_timeout);
            }
        } else if conn.requests > 0 {
            conn.timers.clear(head);
            conn.timers.clear(body);
            if conn.is_idle() {
                arm_idle(timers, conn, now, config, shutting_down);
            }
        }
    }

    /// Writes what the turn produced and what was left before; closes or lingers when the
    /// connection is done.
    fn flush(&mut self, id: ConnId) -> Result<(), ()> {
        let Some(conn) = self.conns.get_mut(id.index as usize) else {
            return Err(());
        };
        let out = &mut self.out;
        let Some(io) = conn.io.as_deref_mut() else {
            // Nothing in hand, so nothing was written for it.
            out.clear();
            return Ok(());
        };
        let result = if io.pending_output() == 0 && !out.is_empty() {
            // The common case: write straight from the reactor's buffer.
            match write_all(&conn.stream, out) {
                Ok(n) if n == out.len() => Ok((true, n)),
                Ok(n) => {
                    keep_output(io, out, n);
                    Ok((false, n))
                }
                Err(e) => Err(e),
            }
        } else {
            // Drop what was sent before appending, or a client that always has a little
            // output waiting would grow the buffer by everything it was ever sent.
            if io.written > 0 && !out.is_empty() {
                io.outbuf.drain(..io.written);
                io.written = 0;
            }
            io.outbuf.extend_from_slice(out);
            match write_all(&conn.stream, &io.outbuf[io.written..]) {
                Ok(n) => {
                    io.written += n;
                    Ok((io.pending_output() == 0, n))
                }
                Err(e) => Err(e),
            }
        };
        out.clear();
        if out.capacity() > KEEP_OUT {
            *out = Vec::new();
        }
        let Ok((done, written)) = result else {
            self.close(id);
            return Err(());
        };
        io.sent += written as u64;
        if done {
            io.written = 0;
            io.outbuf.clear();
            if io.outbuf.capacity() > KEEP_BUFFER {
                io.outbuf = Vec::new();
            }
            conn.timers.clear(TimerKind::WriteStall);
            if conn.phase == Phase::Closing && conn.pending() == 0 {
                return self.end(id);
            }
            if conn.phase == Phase::Open && conn.requests > 0 && conn.is_idle() {
                let shutting_down = self.shutdown_deadline.is_some();
                arm_idle(
                    &mut self.timers,
                    conn,
                    self.now,
                    &self.config,
                    shutting_down,
                );
            }
        } else if written > 0 || !conn.timers.is_set(TimerKind::WriteStall) {
            // Time the stall from the last progress.
            let at = self.now + self.config.write_timeout;
            self.timers
                .set(&mut conn.timers, id, TimerKind::WriteStall, at);
        }
        Ok(())
    }

    /// The output is written and no more requests will be read: close, or half-close and
    /// linger so that unread input does not make the kernel reset the connection and destroy
    /// the answer (RFC 9112 §9.6).
    fn end(&mut self, id: ConnId) -> Result<(), ()> {
        let Some(conn) = self.conns.get_mut(id.index as usize) else {
            return Err(());
        };
        if conn.peer_closed || conn.stream.shutdown(Shutdown::Write).is_err() {
            self.close(id);
            return Err(());
        }
        conn.phase = Phase::Lingering;
        conn.inbuf = Vec::new();
        conn.head_len = 0;
        if let Some(io) = conn.io.as_deref_mut() {
            io.body = Vec::new();
        }
        for kind in [TimerKind::HeadRead, TimerKind::BodyRead, TimerKind::Idle] {
            conn.timers.clear(kind);
        }
        let at = self.now + self.config.linger_timeout;
        self.timers.set(&mut conn.timers, id, TimerKind::Linger, at);
        self.linger(id);
        Ok(())
    }

    /// Reads and discards input after half-closing, until the peer closes.
    fn linger(&mut self, id: ConnId) {
        let Some(conn) = self.conns.get_mut(id.index as usize) else {
            return;
        };
        let io = conn.io.get_or_insert_with(|| self.io_pool.take());
        loop {
            match conn.stream.read(&mut self.scratch) {
                Ok(0) => break,
                Ok(n) => {
                    io.lingered += n;
                    if io.lingered > MAX_LINGER_BYTES {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        self.close(id);
    }

    /// Closes a connection now and frees its slot.
    fn close(&mut self, id: ConnId) {
        if self.conn_mut(id).is_none() {
            return;
        }
        // Dropping the stream closes it, which also removes it from the poll.
        let mut conn = self.conns.remove(id.index as usize);
        self.stats.connection_closed();
        if let Some(mut io) = conn.io.take() {
            io.cancel_pending();
            // A connection closed between requests leaves a reusable `Io`; one closed in the
            // middle of one does not.
            if !io.proto.is_between_requests() {
                io.proto = ServerConn::new(self.config.limits);
            }
            io.body.clear();
            io.outbuf.clear();
            self.io_pool.give(io);
        }
        drop(conn);
        if self.accepting == Accepting::AtLimit {
            self.accepting = Accepting::Open;
            self.accept();
        }
    }

    fn fire_timers(&mut self) {
        let now = self.now;
        while let Some((at, id, kind)) = self.timers.pop_due(now) {
            let Some(conn) = self
                .conns
                .get_mut(id.index as usize)
                .filter(|c| c.id.generation == id.generation)
            else {
                continue;
            };
            let kind = match conn.timers.on_pop(kind, at, now) {
                Popped::Ignore => continue,
                Popped::Requeue(at, kind) => {
                    self.timers.push(id, kind, at);
                    continue;
                }
                Popped::Fire(kind) => kind,
            };
            match kind {
                TimerKind::Deadline => {
                    // RFC 9110 §15.6.4: 503 in place of each response not ready by its
                    // deadline; its job is told, and its late result will be dropped.
                    let Some(io) = conn.io.as_deref_mut() else {
                        continue;
                    };
                    let mut next: Option<Instant> = None;
                    for slot in &mut io.pending {
                        if let SlotState::Waiting {
                            cancelled,
                            deadline,
                        } = &slot.state
                        {
                            if *deadline <= now {
                                cancelled.store(true, Ordering::Relaxed);
                                slot.state = SlotState::Ready(deadline_missed());
                                self.stats.deadline_missed();
                            } else {
                                next = Some(next.map_or(*deadline, |n| n.min(*deadline)));
                            }
                        }
                    }
                    if let Some(at) = next {
                        self.timers
                            .set(&mut conn.timers, id, TimerKind::Deadline, at);
                    }
                    self.release(id);
                }
                TimerKind::HeadRead | TimerKind::BodyRead if conn.phase == Phase::Open => {
                    // RFC 9110 §15.5.9: say so before closing, if a request had begun.
                    if conn.head_len > 0 || !conn.inbuf.is_empty() {
                        conn.phase = Phase::Closing;
                        if let Some(io) = conn.io.as_deref_mut() {
                            io.proto.close();
                            let response = refusal(StatusCode::REQUEST_TIMEOUT, "request timeout");
                            if let Some(status) =
                                refuse(io, response, now, &self.date, &mut self.out)
                            {
                                let route = self.stats.other_route();
                                record(
                                    &self.stats,
                                    &self.log,
                                    self.id,
                                    route,
                                    status,
                                    Duration::ZERO,
                                );
                            }
                        }
                        let _ = self.flush(id);
                        self.release(id);
                    } else {
                        self.close(id);
                    }
                }
                TimerKind::Idle if conn.phase == Phase::Open && conn.is_idle() => self.close(id),
                TimerKind::WriteStall => {
                    // No writable edge may have come even though the client reads (the
                    // kernel raises one only once a third of the buffer is free): try, and
                    // drop the client only if it took nothing since the timer was set.
                    let sent = |conn: &Connection| conn.io.as_ref().map_or(0, |io| io.sent);
                    let before = sent(conn);
                    if self.flush(id).is_ok()
                        && let Some(conn) = self.conn_mut(id)
                    {
                        if sent(conn) == before && conn.pending_output() > 0 {
                            self.close(id);
                        } else if self.resumable(id) {
                            // Drained below the limit with no edge to say so: read on.
                            self.mark_still_ready(id);
                        }
                    }
                }
                TimerKind::Linger => self.close(id),
                TimerKind::HeadRead | TimerKind::BodyRead | TimerKind::Idle => {}
            }
        }
    }
}

/// Why processing stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flow {
    /// Everything given was consumed: read more.
    Continue,
    /// The per-turn request budget is spent: resume before sleeping.
    Budget,
    /// Output is over the limit: resume when it drains.
    Paused,
    /// No more requests on this connection.
    Stop,
}

/// What processing a connection's input needs from its reactor.
struct Turn<'a> {
    out: &'a mut Vec<u8>,
    handler: &'a dyn Handler,
    date: &'a HttpDate,
    reactor: usize,
    budget: usize,
    config: &'a Config,
    now: Instant,
    timers: &'a mut TimerQueue,
    pool: &'a WorkerPool,
    reply_to: &'a Arc<Mailbox>,
    view: &'a ServerView,
    stats: &'a ReactorStats,
    log: &'a Option<SyncSender<LogEntry>>,
    route: &'a Cell<usize>,
}

impl Turn<'_> {
    /// Counts a response and logs it.
    fn record(&self, route: usize, status: StatusCode, latency: Duration) {
        record(self.stats, self.log, self.reactor, route, status, latency);
    }
}

/// Counts a response and hands it to the request log, if there is one (never waiting: a
/// full log queue drops the entry and counts it).
fn record(
    stats: &ReactorStats,
    log: &Option<SyncSender<LogEntry>>,
    reactor: usize,
    route: usize,
    status: StatusCode,
    latency: Duration,
) {
    stats.response(route, status.as_u16(), latency);
    if let Some(log) = log {
        let entry = LogEntry {
            reactor,
            route,
            status,
            latency,
        };
        if log.try_send(entry).is_err() {
            stats.log_dropped();
        }
    }
}

/// Where the head of the request in progress lies.
#[derive(Clone, Copy, Debug)]
enum HeadAt {
    None,
    /// In `inbuf[..head_len]`, kept from an earlier read.
    Kept,
    /// At this offset of the input being parsed.
    Data(usize),
}

/// Parses `new` (after any unconsumed input kept from earlier) and answers every complete
/// request, until the input runs out, the budget is spent, output backs up, or the connection
/// stops taking requests. Keeps what must outlive this read in `conn.inbuf`.
///
/// `drained`: the socket had nothing more when `new` was read (a short read).
fn process(conn: &mut Connection, new: &[u8], drained: bool, turn: &mut Turn<'_>) -> Flow {
    // The `Io` is taken out while it is worked on, so that it and the rest of the connection
    // can be borrowed apart.
    let Some(mut io) = conn.io.take() else {
        return Flow::Stop;
    };
    let flow = process_in(conn, &mut io, new, drained, turn);
    conn.io = Some(io);
    flow
}

fn process_in(
    conn: &mut Connection,
    io: &mut Io,
    new: &[u8],
    drained: bool,
    turn: &mut Turn<'_>,
) -> Flow {
    let mut buf = mem::take(&mut conn.inbuf);
    // With nothing unconsumed, parse the new bytes where they lie: no copy.
    let direct = buf.len() == conn.head_len;
    if !direct {
        buf.extend_from_slice(new);
    }
    let base = conn.head_len;
    let data: &[u8] = if direct { new } else { &buf[base..] };
    let mut head = if base > 0 { HeadAt::Kept } else { HeadAt::None };
    // A body that arrives in one piece is handed to the handler where it lies; pieces are
    // gathered in `io.body` only when there is more than one.
    let mut body_at: Option<Range<usize>> = None;
    let mut pos = 0;
    let flow = loop {
        if turn.budget == 0 {
            break Flow::Budget;
        }
        if turn.out.len() + io.pending_output() > turn.config.max_buffered_output
            || io.pending.len() >= turn.config.max_pending_responses
        {
            break Flow::Paused;
        }
        match io.proto.recv(&data[pos..]) {
            Ok((n, Event::Head)) => {
                head = HeadAt::Data(pos);
                io.received = turn.now;
                pos += n;
                if io.proto.head().expects_continue() {
                    if io.pending.is_empty() {
                        send_continue(turn.out);
                    } else {
                        // In line behind the responses still owed.
                        let seq = io.next_seq;
                        io.next_seq += 1;
                        io.pending.push_back(Slot {
                            seq,
                            ctx: ResponseContext::for_error(),
                            route: turn.stats.other_route(),
                            received: turn.now,
                            state: SlotState::Continue,
                        });
                    }
                }
            }
            Ok((n, Event::Body(range))) => {
                let range = pos + range.start..pos + range.end;
                if io.body.is_empty() && body_at.is_none() {
                    body_at = Some(range);
                } else {
                    if let Some(first) = body_at.take() {
                        io.body.extend_from_slice(&data[first]);
                    }
                    io.body.extend_from_slice(&data[range]);
                }
                pos += n;
            }
            Ok((n, Event::End)) => {
                let head_bytes = match head {
                    HeadAt::Kept => &buf[..base],
                    HeadAt::Data(at) => &data[at..],
                    HeadAt::None => &[][..],
                };
                let body = match body_at.take() {
                    Some(range) => &data[range],
                    None => &io.body[..],
                };
                pos += n;
                let received = io.received;
                // Input may follow this request: in this read, or in the socket when the
                // read filled the buffer.
                let last = pos == data.len() && drained;
                let reply = run_handler(&io.proto, head_bytes, body, received, turn);
                head = HeadAt::None;
                turn.budget -= 1;
                conn.requests += 1;
                if io.body.capacity() > KEEP_BUFFER {
                    io.body = Vec::new();
                } else {
                    io.body.clear();
                }
                if !answer(conn, io, reply, last, turn) {
                    io.proto.close();
                    conn.phase = Phase::Closing;
                    io.cancel_pending();
                    break Flow::Stop;
                }
            }
            Ok((n, Event::NeedMore)) => {
                pos += n;
                break Flow::Continue;
            }
            Ok((_, Event::Closed)) => {
                conn.phase = Phase::Closing;
                break Flow::Stop;
            }
            Err(e) => {
                let response = refusal(e.status(), &e.to_string());
                if let Some(status) = refuse(io, response, turn.now, turn.date, turn.out) {
                    turn.record(turn.stats.other_route(), status, Duration::ZERO);
                }
                conn.phase = Phase::Closing;
                break Flow::Stop;
            }
        }
    };
    if let Some(first) = body_at {
        // The body goes on in a later read: gather it.
        io.body.extend_from_slice(&data[first]);
    }
    if flow == Flow::Stop {
        conn.inbuf = Vec::new();
        conn.head_len = 0;
        return flow;
    }
    // Keep the head of a request whose body is still arriving, and the unconsumed rest.
    let head_len = io.proto.head().len();
    match (direct, head) {
        (true, HeadAt::None) => {
            buf.clear();
            buf.extend_from_slice(&new[pos..]);
            conn.head_len = 0;
        }
        (true, HeadAt::Kept) => buf.extend_from_slice(&new[pos..]),
        (true, HeadAt::Data(at)) => {
            buf.clear();
            buf.extend_from_slice(&new[at..at + head_len]);
            buf.extend_from_slice(&new[pos..]);
            conn.head_len = head_len;
        }
        (false, HeadAt::None) => {
            buf.drain(..base + pos);
            conn.head_len = 0;
        }
        (false, HeadAt::Kept) => {
            buf.drain(base..base + pos);
        }
        (false, HeadAt::Data(at)) => {
            buf.copy_within(base + at..base + at + head_len, 0);
            let rest = base + pos;
            let len = buf.len();
            buf.copy_within(rest..len, head_len);
            buf.truncate(head_len + len - rest);
            conn.head_len = head_len;
        }
    }
    if buf.is_empty() && buf.capacity() > KEEP_BUFFER {
        buf = Vec::new();
    }
    conn.inbuf = buf;
    flow
}

/// Runs the handler on a complete request; a panic becomes a 500.
fn run_handler(
    proto: &ServerConn,
    head_bytes: &[u8],
    body: &[u8],
    received: Instant,
    turn: &Turn<'_>,
) -> Reply {
    let deadline = deadline_after(received, turn.config.deadline);
    turn.route.set(turn.stats.other_route());
    let req = Request::new(
        proto.request(head_bytes),
        body,
        turn.reactor,
        (received, deadline),
        turn.view,
        turn.route,
    );
    let handler = turn.handler;
    // The panic was reported by the panic hook; this request alone fails.
    catch_unwind(AssertUnwindSafe(|| handler.handle(&req)))
        .unwrap_or_else(|_| Reply::Ready(internal_error()))
}

/// Sends a reply's response, or hands its job to the pool; returns whether the connection
/// stays open. `last`: no more input was read or is known to be waiting, so that a server
/// shutting down can close after this response without dropping a request already read.
fn answer(
    conn: &mut Connection,
    io: &mut Io,
    reply: Reply,
    last: bool,
    turn: &mut Turn<'_>,
) -> bool {
    let ctx = io.proto.head().response_context();
    let route = turn.route.get();
    let response = match reply {
        Reply::Ready(response) => response,
        Reply::Offload(job) => match offload(conn, io, ctx, job, route, turn) {
            Some(response) => response,
            None => return true,
        },
    };
    if io.pending.is_empty() {
        let ctx = if conn.close_after && last {
            ctx.with_close()
        } else {
            ctx
        };
        let (keep_alive, status) = encode_or_500(ctx, &response, turn.date, turn.out);
        // The turn's clock is from when the poll returned, so this counts the time the
        // request waited behind others in this turn as well as its handler (one vDSO clock
        // read per inline response, no system call).
        turn.record(route, status, io.received.elapsed());
        keep_alive
    } else {
        // Behind a response that is not ready: wait in line.
        let seq = io.next_seq;
        io.next_seq += 1;
        io.pending.push_back(Slot {
            seq,
            ctx,
            route,
            received: io.received,
            state: SlotState::Ready(response),
        });
        true
    }
}

/// Queues a job for the pool; returns the response to send instead when it cannot run.
fn offload(
    conn: &mut Connection,
    io: &mut Io,
    ctx: ResponseContext,
    job: Job,
    route: usize,
    turn: &mut Turn<'_>,
) -> Option<Response> {
    let deadline = deadline_after(io.received, job.deadline.unwrap_or(turn.config.deadline));
    if deadline <= turn.now {
        turn.stats.deadline_missed();
        return Some(deadline_missed());
    }
    let seq = io.next_seq;
    let cancelled = Arc::new(AtomicBool::new(false));
    let task = Task {
        job,
        ctx: JobContext {
            deadline,
            cancelled: Arc::clone(&cancelled),
        },
        reply_to: Arc::clone(turn.reply_to),
        conn: conn.id,
        seq,
    };
    if turn.pool.try_submit(task).is_err() {
        // The queue is full: shed now rather than queue past the deadline.
        turn.stats.shed();
        return Some(overloaded());
    }
    io.next_seq += 1;
    io.pending.push_back(Slot {
        seq,
        ctx,
        route,
        received: io.received,
        state: SlotState::Waiting {
            cancelled,
            deadline,
        },
    });
    turn.timers
        .set_earliest(&mut conn.timers, conn.id, TimerKind::Deadline, deadline);
    None
}

/// Arms the idle timer of a connection between requests: the idle timeout, or, once shutdown
/// has begun, the short wait for a request (never moved later by a spurious wake-up).
fn arm_idle(
    timers: &mut TimerQueue,
    conn: &mut Connection,
    now: Instant,
    config: &Config,
    shutting_down: bool,
) {
    if shutting_down {
        let at = now + config.shutdown_idle_wait;
        timers.set_earliest(&mut conn.timers, conn.id, TimerKind::Idle, at);
    } else {
        let at = now + config.idle_timeout;
        timers.set(&mut conn.timers, conn.id, TimerKind::Idle, at);
    }
}

/// `received + after`, at most a year on (a deadline of `Duration::MAX` means "none").
fn deadline_after(received: Instant, after: Duration) -> Instant {
    const FAR: Duration = Duration::from_secs(365 * 86_400);
    received.checked_add(after.min(FAR)).unwrap_or(received)
}

fn internal_error() -> Response {
    Response::text(StatusCode::INTERNAL_SERVER_ERROR, "internal server error\n")
}

fn deadline_missed() -> Response {
    Response::text(StatusCode::SERVICE_UNAVAILABLE, "deadline exceeded\n")
}

fn overloaded() -> Response {
    Response::text(StatusCode::SERVICE_UNAVAILABLE, "overloaded\n")
}

/// The answer to a request the server refuses: its status and a line saying why.
fn refusal(status: StatusCode, why: &str) -> Response {
    Response::text(status, format!("{why}\n"))
}

/// Answers with a refusal that closes the connection, in its place in line: now if nothing
/// is owed before it (returning the status sent, to be counted), else after what is owed.
fn refuse(
    io: &mut Io,
    response: Response,
    now: Instant,
    date: &HttpDate,
    out: &mut Vec<u8>,
) -> Option<StatusCode> {
    let ctx = ResponseContext::for_error();
    if io.pending.is_empty() {
        let (_, status) = encode_or_500(ctx, &response, date, out);
        return Some(status);
    }
    let seq = io.next_seq;
    io.next_seq += 1;
    io.pending.push_back(Slot {
        seq,
        ctx,
        // Counted as "other" when it is sent.
        route: usize::MAX,
        received: now,
        state: SlotState::Ready(response),
    });
    None
}

/// Encodes a response, or a 500 if HTTP cannot carry it (a bad header from the handler);
/// returns whether the connection stays open, and the status sent.
fn encode_or_500(
    ctx: ResponseContext,
    response: &Response,
    date: &HttpDate,
    out: &mut Vec<u8>,
) -> (bool, StatusCode) {
    match encode(ctx, response, date, out) {
        Ok(keep_alive) => (keep_alive, response.status()),
        Err(()) => (
            encode(ctx, &internal_error(), date, out).unwrap_or(false),
            StatusCode::INTERNAL_SERVER_ERROR,
        ),
    }
}

/// Encodes a response; returns whether the connection stays open.
fn encode(
    ctx: ResponseContext,
    response: &Response,
    date: &HttpDate,
    out: &mut Vec<u8>,
) -> Result<bool, ()> {
    let body = response.body().as_bytes();
    let length = BodyLength::Known(body.len() as u64);
    let start = out.len();
    let mut encoder = send_head(
        ctx,
        response.status(),
        response.headers(),
        length,
        date,
        out,
    )
    .map_err(drop)?;
    let keep_alive = encoder.keep_alive();
    let sent = encoder
        .send_body(body, out)
        .and_then(|()| encoder.send_end(out));
    if sent.is_err() {
        out.truncate(start);
        return Err(());
    }
    Ok(keep_alive)
}

/// The peer closed its side: answer what is complete, then close.
fn eof(conn: &mut Connection, turn: &mut Turn<'_>) {
    if conn.phase != Phase::Open {
        return;
    }
    let pending = &conn.inbuf[conn.head_len..];
    let Some(io) = conn.io.as_deref_mut() else {
        conn.phase = Phase::Closing;
        return;
    };
    if let Err(e) = io.proto.recv_eof(pending) {
        // A request cut short; the client may still be reading (it half-closed).
        let response = refusal(e.status(), &e.to_string());
        if let Some(status) = refuse(io, response, turn.now, turn.date, turn.out) {
            turn.record(turn.stats.other_route(), status, Duration::ZERO);
        }
    }
    conn.phase = Phase::Closing;
}

/// Keeps the part of `out` the socket did not take, from `written` on.
fn keep_output(io: &mut Io, out: &mut Vec<u8>, written: usize) {
    if out.len() - written > KEEP_BUFFER {
        // A large response: hand the whole buffer over instead of copying it.
        io.outbuf = mem::take(out);
        io.written = written;
    } else {
        io.outbuf.clear();
        io.outbuf.extend_from_slice(&out[written..]);
        io.written = 0;
    }
}

/// Writes until done or `WouldBlock`; returns the bytes written.
fn write_all(mut stream: &mio::net::TcpStream, mut data: &[u8]) -> io::Result<usize> {
    let mut written = 0;
    while !data.is_empty() {
        match stream.write(data) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                written += n;
                // A short write left the socket full (see the module docs).
                if n < data.len() {
                    break;
                }
                data = &data[n..];
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(written)
}

/// Whether a socket has no input waiting (a peek, which reads nothing).
fn socket_is_drained(stream: &mio::net::TcpStream) -> bool {
    match stream.peek(&mut [0]) {
        Ok(n) => n == 0,
        Err(e) => e.kind() == io::ErrorKind::WouldBlock,
    }
}

/// Accept errors about one connection (it went away first), not about the process.
fn is_transient_accept_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
    )
}
