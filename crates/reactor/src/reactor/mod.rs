//! One reactor: a thread that owns a `mio::Poll`, a listener and a slab of connections.
//!
//! Theory of operation, one turn of the loop:
//!
//! 1. Poll until an event, or until the alarm (`alarm.rs`, a `timerfd`) rings for the nearest
//!    timer (no wait while connections are on the still-ready list). Tick the clock, once.
//! 2. Handle events: the waker drains the mailbox; the listener accepts until `WouldBlock`
//!    (`accept.rs`); a connection, looked up once, reads, has its requests answered
//!    (`dispatch.rs`), writes, and sets its timers (`conn/`). One that is done says so, and
//!    the loop frees its slot.
//! 3. Serve the still-ready list: connections cut off by the per-turn request budget, or whose
//!    output drained below the limit after reading had paused. No new edge will come for
//!    bytes already in their buffers, so they are resumed here, before the next sleep.
//! 4. Fire due timers, resume accepting if connections closed or a back-off ended, and move
//!    shutdown along (`shutdown.rs`).
//!
//! Readiness is edge-triggered and a connection is registered once for both directions, so
//! answering a request costs no `epoll_ctl`. Two shortcuts to "until `WouldBlock`" are sound
//! for TCP on Linux and save a system call per request: a read that returns less than the
//! buffer had room for has taken everything the socket held, and any byte arriving after it
//! raises a new edge; a write that takes less than it was given leaves the socket full, and
//! space freeing up raises a new edge.

mod accept;
mod alarm;
mod clock;
mod conn;
mod dispatch;
mod shutdown;

use std::{
    io as stdio, mem,
    sync::{Arc, mpsc},
    time::{Duration, Instant},
};

use mio::{Events, Poll, event::Event, net::TcpListener};
use slab::Slab;

pub(crate) use self::dispatch::Shared;
use self::{
    accept::Accepting,
    alarm::Alarm,
    clock::Clock,
    conn::{Connection, Cx, Gone},
    dispatch::{Dispatcher, Turn},
    shutdown::Stage,
};
use crate::{
    Config,
    mailbox::{Mailbox, Message},
    session::Outgoing,
    stats::ReactorStats,
    timer::{Popped, TimerQueue},
    token::{ALARM, ConnId, LISTENER, WAKER},
};

/// Bytes read from a socket per system call.
const READ_CHUNK: usize = 64 * 1024;
/// Events handled per poll.
const EVENTS: usize = 1024;

/// A reactor, built on the starting thread (so that errors reach the caller) and then moved
/// onto its own.
pub(crate) struct Reactor {
    poll: Poll,
    /// Gone once shutdown has begun.
    listener: Option<TcpListener>,
    accepting: Accepting,
    conns: Slab<Connection>,
    next_generation: u32,
    timers: TimerQueue,
    /// Rings for the nearest timer.
    alarm: Alarm,
    clock: Clock,
    /// Where sockets are read into; requests are parsed where they lie.
    scratch: Box<[u8]>,
    /// Where a read's receive stamp is put.
    control: Box<[u8]>,
    /// The turn's output for the connection being served.
    out: Outgoing,
    still_ready: Vec<ConnId>,
    /// Connections that got completions this turn, served once each.
    touched: Vec<ConnId>,
    stage: Stage,
    config: Arc<Config>,
    /// This reactor's statistics (it is their only writer).
    stats: Arc<ReactorStats>,
    mailbox: mpsc::Receiver<Message>,
    dispatch: Dispatcher,
}

impl Reactor {
    pub(crate) fn new(
        id: usize,
        poll: Poll,
        mut listener: TcpListener,
        shared: Shared,
        mailbox: mpsc::Receiver<Message>,
        reply_to: Arc<Mailbox>,
    ) -> stdio::Result<Self> {
        poll.registry()
            .register(&mut listener, LISTENER, mio::Interest::READABLE)?;
        let config = Arc::clone(&shared.config);
        let stats = Arc::clone(&shared.view.stats.reactors[id]);
        let alarm = Alarm::new(poll.registry())?;
        Ok(Self {
            poll,
            listener: Some(listener),
            accepting: Accepting::Open,
            conns: Slab::new(),
            next_generation: 0,
            timers: TimerQueue::default(),
            alarm,
            clock: Clock::new(config.kernel_timestamps),
            scratch: vec![0; READ_CHUNK].into_boxed_slice(),
            control: conn::control_buffer(),
            out: Outgoing::default(),
            // Sized up front, so that serving does not allocate when they first fill (the two
            // still-ready lists trade places every turn).
            still_ready: Vec::with_capacity(EVENTS),
            touched: Vec::with_capacity(EVENTS),
            stage: Stage::Serving,
            config,
            stats,
            mailbox,
            dispatch: Dispatcher::new(id, shared, reply_to),
        })
    }

    /// Runs until shut down.
    pub(crate) fn run(mut self) -> stdio::Result<()> {
        let mut events = Events::with_capacity(EVENTS);
        let mut ready = Vec::with_capacity(EVENTS);
        loop {
            let timeout = self.poll_timeout();
            match self.poll.poll(&mut events, timeout) {
                Ok(()) => {}
                Err(e) if e.kind() == stdio::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
            if self.clock.tick() {
                self.dispatch.trim_spares();
            }
            for event in &events {
                match event.token() {
                    WAKER => self.handle_mailbox(),
                    LISTENER => self.accept(),
                    // Due timers fire below, after the events.
                    ALARM => self.alarm.rang(),
                    token => {
                        if let Some(id) = ConnId::from_token(token) {
                            self.handle_event(id, event);
                        }
                    }
                }
            }
            // Serve the connections that still have work; new ones go to the next turn.
            mem::swap(&mut ready, &mut self.still_ready);
            for id in ready.drain(..) {
                self.serve(id, |conn, cx| conn.resume(cx));
            }
            self.fire_timers();
            self.resume_accepting();
            if self.advance_shutdown() {
                return Ok(());
            }
        }
    }

    /// How long to poll: not at all while work is waiting or a timer is due; else until an
    /// event or the alarm, set for the nearest timer.
    fn poll_timeout(&mut self) -> Option<Duration> {
        if !self.still_ready.is_empty() {
            return Some(Duration::ZERO);
        }
        let next = [
            self.timers.next(),
            self.stage.next_change(),
            self.accepting.resumes_at(),
        ]
        .into_iter()
        .flatten()
        .min()?;
        // The clock is from before this turn's work: read it again.
        let now = Instant::now();
        if next <= now {
            return Some(Duration::ZERO);
        }
        match self.alarm.ring_by(next, now) {
            Ok(()) => None,
            // No alarm: the poll's own timeout, whole milliseconds rounded up.
            Err(_) => Some(next - now),
        }
    }

    /// Readiness of one connection.
    fn handle_event(&mut self, id: ConnId, event: &Event) {
        if event.is_error() {
            // Reset or failed: free the slot now and drop what it was owed.
            if live(&mut self.conns, id).is_some() {
                self.remove(id);
            }
            return;
        }
        let readiness = (
            event.is_readable(),
            event.is_writable(),
            event.is_read_closed(),
        );
        self.serve(id, |conn, cx| conn.ready(cx, readiness));
    }

    fn handle_mailbox(&mut self) {
        while let Ok(message) = self.mailbox.try_recv() {
            match message {
                Message::Completion(completion) => {
                    let id = completion.conn;
                    let (conns, mut cx) = self.split();
                    let Some(conn) = live(conns, id) else {
                        continue;
                    };
                    if cx
                        .dispatch
                        .complete(&mut cx.turn, &mut conn.session, completion)
                    {
                        self.touched.push(id);
                    }
                }
                Message::Shutdown { grace } => self.begin_drain(grace),
            }
        }
        let mut touched = mem::take(&mut self.touched);
        for id in touched.drain(..) {
            self.serve(id, |conn, cx| conn.answers_ready(cx));
        }
        self.touched = touched;
    }

    /// Fires every timer due by the turn's clock.
    fn fire_timers(&mut self) {
        let now = self.clock.now;
        while let Some((at, id, kind)) = self.timers.pop_due(now) {
            let (conns, mut cx) = self.split();
            let Some(conn) = live(conns, id) else {
                continue;
            };
            let done = match conn.timers.on_pop(kind, at, now) {
                Popped::Ignore => Ok(()),
                Popped::Requeue(at, kind) => {
                    cx.timers.push(id, kind, at);
                    Ok(())
                }
                Popped::Fire(kind) => conn.timer(&mut cx, kind),
            };
            if done.is_err() {
                self.remove(id);
            }
        }
    }

    /// Looks connection `id` up, once, and has `work` done on it; frees its slot if it is done.
    fn serve(
        &mut self,
        id: ConnId,
        work: impl FnOnce(&mut Connection, &mut Cx<'_>) -> Result<(), Gone>,
    ) {
        let (conns, mut cx) = self.split();
        let Some(conn) = live(conns, id) else {
            return;
        };
        if work(conn, &mut cx).is_err() {
            self.remove(id);
        }
    }

    /// Frees a connection's slot, which closes its socket (and takes it out of the poll). What
    /// it was owed is dropped, its jobs told, and output of the turn left unsent is given back.
    ///
    /// A connection that still owes answers ends here only when the client is gone: a read or
    /// write failed (it reset or closed the connection), or it took no output for the write
    /// timeout; or, rarely, when the poll would not take its socket. (One that stops taking
    /// requests ends by itself once its answers are out.) So each request still owed counts
    /// as a client hang-up on its route.
    fn remove(&mut self, id: ConnId) {
        let mut conn = self.conns.remove(id.index as usize);
        self.stats.connection_closed();
        if let Some(exchange) = conn.session.exchange.take() {
            for route in exchange.unanswered() {
                self.stats.hung_up(route);
            }
            self.dispatch.give_back(exchange);
        }
        self.out.discard(&self.dispatch.view().stats.budgets.output);
    }

    /// The connections, and what one of them may use of the reactor (see [`Cx`]).
    fn split(&mut self) -> (&mut Slab<Connection>, Cx<'_>) {
        let cx = Cx {
            turn: Turn {
                clock: &self.clock,
                config: &self.config,
                stats: &self.stats,
                draining: self.stage.is_draining(),
                out: &mut self.out,
            },
            dispatch: &mut self.dispatch,
            timers: &mut self.timers,
            still_ready: &mut self.still_ready,
            scratch: &mut self.scratch,
            control: &mut self.control,
            registry: self.poll.registry(),
            stopping: self.stage.is_stopping(),
        };
        (&mut self.conns, cx)
    }
}

/// The connection `id` names, if it is still the one in that slot (a closed connection's slot
/// may hold a new one, with another generation).
fn live(conns: &mut Slab<Connection>, id: ConnId) -> Option<&mut Connection> {
    conns
        .get_mut(id.index as usize)
        .filter(|c| c.id.generation == id.generation)
}
