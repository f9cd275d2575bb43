//! One reactor: a thread that owns a `mio::Poll`, a listener and a slab of connections.
//!
//! Theory of operation, one turn of the loop:
//!
//! 1. Poll until an event, or until the alarm (`alarm.rs`, a `timerfd`) rings for the nearest
//!    timer (no wait while connections are on the still-ready list). Tick the clock, once.
//! 2. Handle events: the waker drains the mailbox; the listener accepts until `WouldBlock`
//!    (`accept.rs`); a connection reads, has its requests answered (`dispatch.rs`), then
//!    writes (`io.rs`).
//! 3. Serve the still-ready list: connections cut off by the per-turn request budget, or whose
//!    output drained below the limit after reading had paused. No new edge will come for
//!    bytes already in their buffers, so they are resumed here, before the next sleep.
//! 4. Fire due timers (`timers.rs`), and move shutdown along (`shutdown.rs`).
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
mod dispatch;
mod io;
mod shutdown;
mod timers;

use std::{
    io as stdio, mem,
    sync::{Arc, mpsc},
    time::{Duration, Instant},
};

use mio::{Events, Interest, Poll, net::TcpListener};
use slab::Slab;

pub(crate) use self::dispatch::Shared;
use self::{accept::Accepting, alarm::Alarm, dispatch::Dispatcher, shutdown::Stage};
use crate::{
    Config,
    connection::{Connection, Peer, Reading},
    mailbox::{Mailbox, Message},
    stats::ReactorStats,
    timer::TimerQueue,
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
    listener: Option<TcpListener>,
    accepting: Accepting,
    conns: Slab<Connection>,
    next_generation: u32,
    timers: TimerQueue,
    /// Rings for the nearest timer.
    alarm: Alarm,
    /// Where sockets are read into; requests are parsed where they lie.
    scratch: Box<[u8]>,
    /// Where a read's receive stamp is put (`io::recv_stamped`).
    control: Box<[u8]>,
    still_ready: Vec<ConnId>,
    /// Connections that got completions this turn, flushed once each.
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
            .register(&mut listener, LISTENER, Interest::READABLE)?;
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
            scratch: vec![0; READ_CHUNK].into_boxed_slice(),
            control: io::control_buffer(),
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
            if self.dispatch.clock.tick() {
                self.dispatch.exchanges.trim();
            }
            for event in &events {
                match event.token() {
                    WAKER => self.handle_mailbox(),
                    LISTENER => self.accept(),
                    // Due timers fire below, after the events.
                    ALARM => self.alarm.rang(),
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
                            && conn.peer == Peer::Open
                        {
                            conn.peer = Peer::HungUp;
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
                    conn.reading = Reading::Ready;
                    self.handle_event(id, true, false);
                    self.register(id);
                }
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

    fn conn_mut(&mut self, id: ConnId) -> Option<&mut Connection> {
        live(&mut self.conns, id)
    }

    fn handle_mailbox(&mut self) {
        while let Ok(message) = self.mailbox.try_recv() {
            match message {
                Message::Completion(completion) => {
                    let id = completion.conn;
                    let Some(conn) = live(&mut self.conns, id) else {
                        continue;
                    };
                    if self.dispatch.complete(&mut conn.session, completion) {
                        self.touched.push(id);
                    }
                }
                Message::Shutdown { grace } => self.begin_drain(grace),
            }
        }
        let mut touched = mem::take(&mut self.touched);
        for id in touched.drain(..) {
            self.release(id);
        }
        self.touched = touched;
    }

    /// Handles readiness of one connection.
    fn handle_event(&mut self, id: ConnId, readable: bool, writable: bool) {
        let Some(conn) = self.conn_mut(id) else {
            return;
        };
        if writable && conn.session.pending_output() > 0 && !self.flush(id) {
            return;
        }
        let resume = self.resumable(id);
        if readable || resume {
            self.read(id);
        } else {
            self.recycle(id);
        }
    }

    /// Gives a connection's exchange back to the pool if it has nothing in hand.
    fn recycle(&mut self, id: ConnId) {
        if let Some(conn) = live(&mut self.conns, id) {
            conn.recycle(&mut self.dispatch.exchanges);
        }
    }

    fn mark_still_ready(&mut self, id: ConnId) {
        if let Some(conn) = self.conn_mut(id)
            && conn.reading != Reading::Queued
        {
            conn.reading = Reading::Queued;
            self.still_ready.push(id);
        }
    }
}

/// The connection `id` names, if it is still the one in that slot (a closed connection's slot
/// may hold a new one, with another generation).
fn live(conns: &mut Slab<Connection>, id: ConnId) -> Option<&mut Connection> {
    conns
        .get_mut(id.index as usize)
        .filter(|c| c.id.generation == id.generation)
}
