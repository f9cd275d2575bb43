//! One connection on its reactor: its socket, its states and timers, and its [`Session`].
//!
//! Theory of operation. The reactor looks a connection up once per event and calls one of its
//! entry points with a [`Cx`], what the connection may use of its reactor for that call:
//! [`Connection::ready`] for readiness, [`Connection::resume`] for the still-ready list,
//! [`Connection::answers_ready`] after job completions, [`Connection::timer`] for a timer that
//! fired. Each reads, has requests answered, writes, ends and lingers as its state says
//! (`io.rs`), and returns `Err(Gone)` when the connection is done: the reactor then frees its
//! slot (and resumes accepting once per turn). A connection that stays sets its timers to what
//! its state needs now, in one place (`timing.rs`), and gives back its exchange if it has
//! nothing in hand. Nothing here reaches back into the reactor's loop or into accepting.

mod io;
mod timing;

use mio::{Interest, Registry, net::TcpStream};

pub(super) use self::io::control_buffer;
use super::dispatch::{Dispatcher, Flow, Turn};
use crate::{
    Response, answers,
    body::{BodyRules, TooSlow},
    session::Session,
    timer::{TimerKind, TimerQueue, TimerTable},
    token::ConnId,
};

/// A connection: its socket, timers and states, and its [`Session`].
#[derive(Debug)]
pub(super) struct Connection {
    stream: TcpStream,
    pub(super) id: ConnId,
    pub(super) timers: TimerTable,
    phase: Phase,
    reading: Reading,
    peer: Peer,
    /// Registered with the poll (after its first read: see `reactor/accept.rs`).
    registered: bool,
    pub(super) session: Session,
}

/// Where a connection is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Reading and answering requests.
    Open,
    /// No more requests: once the output is written, close (`read_all`: the last answer went
    /// to a request read in full, with nothing after it in the socket), or half-close and
    /// linger, since the client may still be sending and closing would reset the connection
    /// and destroy the answer (RFC 9112 §9.6), as nginx's `lingering_close` does.
    Closing { read_all: bool },
    /// Half-closed: reading and discarding the peer's input until it closes, time is up, or
    /// too much was discarded.
    Lingering { discarded: usize },
}

/// Whether the connection reads its input when it can.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reading {
    /// When its socket says so.
    Ready,
    /// On the reactor's still-ready list: cut off by the per-turn budget, or drained below
    /// the output limit after a pause. No new edge will come for input already buffered, so
    /// it is served before the reactor sleeps.
    Queued,
    /// Not until its output drains below the limit (backpressure).
    Paused,
}

/// What the client has done with its side of the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Peer {
    /// Still sending.
    Open,
    /// The poll reported its FIN, which may not have been read yet: read up to it, not just
    /// to a short read.
    HungUp,
    /// Its FIN was read: it will send nothing more.
    Closed,
}

/// The connection is done: the reactor frees its slot, which closes the socket (with a reset,
/// or a bound on the kernel's lingering, where the connection set one before saying so).
#[derive(Debug)]
pub(super) struct Gone;

/// What a connection may use of its reactor for one call.
pub(super) struct Cx<'a> {
    /// The turn's clock and output, and what answers are made by (lent on to the dispatcher).
    pub(super) turn: Turn<'a>,
    pub(super) dispatch: &'a mut Dispatcher,
    pub(super) timers: &'a mut TimerQueue,
    /// Connections to serve again before the reactor sleeps.
    pub(super) still_ready: &'a mut Vec<ConnId>,
    /// Where sockets are read into; requests are parsed where they lie.
    pub(super) scratch: &'a mut [u8],
    /// Where a read's receive stamp is put (`io::recv_stamped`).
    pub(super) control: &'a mut [u8],
    pub(super) registry: &'a Registry,
    /// The reactor has stopped accepting, and waits only briefly for requests.
    pub(super) stopping: bool,
}

impl Connection {
    /// A connection just accepted, to be read before it is registered (see
    /// `reactor/accept.rs`).
    pub(super) fn new(stream: TcpStream, id: ConnId) -> Self {
        Self {
            stream,
            id,
            timers: TimerTable::default(),
            phase: Phase::Open,
            reading: Reading::Ready,
            peer: Peer::Open,
            registered: false,
            session: Session::default(),
        }
    }

    /// Puts the connection on the still-ready list, once.
    pub(super) fn queue(&mut self, still_ready: &mut Vec<ConnId>) {
        if self.reading != Reading::Queued {
            self.reading = Reading::Queued;
            still_ready.push(self.id);
        }
    }

    /// Handles readiness: writes what waits, then reads (and answers, and writes) if the
    /// socket has input or the connection may read again after a pause.
    pub(super) fn ready(
        &mut self,
        cx: &mut Cx<'_>,
        (readable, writable, read_closed): (bool, bool, bool),
    ) -> Result<(), Gone> {
        if read_closed && self.peer == Peer::Open {
            self.peer = Peer::HungUp;
        }
        if writable && self.session.pending_output() > 0 {
            self.flush(cx)?;
        }
        if self.resumable(cx) || readable || read_closed {
            let flow = self.read(cx)?;
            self.flush(cx)?;
            match flow {
                Flow::Budget => self.queue(cx.still_ready),
                // The socket took the output at once: go on reading before the next sleep.
                Flow::Paused if self.resumable(cx) => self.queue(cx.still_ready),
                _ => {}
            }
        }
        self.settle(cx);
        Ok(())
    }

    /// Serves a connection from the still-ready list, and registers it with the poll after
    /// its first read.
    pub(super) fn resume(&mut self, cx: &mut Cx<'_>) -> Result<(), Gone> {
        self.read_again(cx);
        self.ready(cx, (true, false, false))?;
        if !self.registered {
            // Registering reports readiness that arose before it, so no byte that came after
            // the read is missed.
            let interest = Interest::READABLE | Interest::WRITABLE;
            let token = self.id.token();
            cx.registry
                .register(&mut self.stream, token, interest)
                .map_err(|_| Gone)?;
            self.registered = true;
            self.settle(cx);
        }
        Ok(())
    }

    /// Sends the ready responses at the front of the connection's line (after completions
    /// came, or deadlines passed), then writes; resumes reading if the line had made it pause.
    pub(super) fn answers_ready(&mut self, cx: &mut Cx<'_>) -> Result<(), Gone> {
        let paused = self.reading == Reading::Paused;
        if cx.dispatch.release(&mut cx.turn, &mut self.session, paused) {
            self.stop_reading();
        }
        self.flush(cx)?;
        if self.resumable(cx) {
            self.queue(cx.still_ready);
        }
        self.settle(cx);
        Ok(())
    }

    /// Does what a timer that fired asks (the timers themselves are in `crate::timer`).
    pub(super) fn timer(&mut self, cx: &mut Cx<'_>, kind: TimerKind) -> Result<(), Gone> {
        let open = self.phase == Phase::Open;
        match kind {
            TimerKind::Deadline => {
                cx.dispatch.expire(&cx.turn, &mut self.session);
                return self.answers_ready(cx);
            }
            TimerKind::HeadRead if open => self.time_out(cx, answers::request_timeout())?,
            TimerKind::BodyRead if open => self.check_pace(cx)?,
            TimerKind::Idle | TimerKind::ShutdownWait if open && self.session.is_idle() => {
                // Closed before reading anything more: a request sent after this was never
                // read, and the client can tell it was not served.
                return Err(self.close_idle(cx));
            }
            TimerKind::WriteStall => {
                // No writable edge may have come even though the client reads (the kernel
                // raises one only once a third of the buffer is free): try, and drop the
                // client only if it took nothing since the timer was set.
                let before = self.sent();
                self.flush(cx)?;
                if self.sent() == before && self.session.pending_output() > 0 {
                    cx.turn.stats.write_timed_out();
                    return Err(self.reset(cx));
                }
                if self.resumable(cx) {
                    // Drained below the limit with no edge to say so: read on.
                    self.queue(cx.still_ready);
                }
            }
            TimerKind::Linger => return Err(Gone),
            TimerKind::HeadRead
            | TimerKind::BodyRead
            | TimerKind::Idle
            | TimerKind::ShutdownWait => {}
        }
        self.settle(cx);
        Ok(())
    }

    /// Sets the timers the connection's state needs now (see `timing.rs`).
    pub(super) fn retime(&mut self, cx: &mut Cx<'_>) {
        timing::retime(self, cx);
    }

    /// Sets the timers the connection's state needs now, and gives back its exchange if it
    /// has nothing in hand: the end of every entry point that leaves the connection open.
    fn settle(&mut self, cx: &mut Cx<'_>) {
        timing::retime(self, cx);
        if self.phase == Phase::Open
            && self.reading != Reading::Paused
            && self.session.input.is_empty()
            && self.session.exchange.as_ref().is_some_and(|e| e.is_idle())
            && let Some(exchange) = self.session.exchange.take()
        {
            cx.dispatch.give_back(exchange);
        }
    }

    /// Whether a paused connection has drained enough to read again (and if so, it may).
    fn resumable(&mut self, cx: &Cx<'_>) -> bool {
        let config = cx.turn.config;
        if self.reading == Reading::Paused
            && self.session.pending_output() < config.max_buffered_output
            && self.session.owed() < config.max_pending_responses
        {
            self.read_again(cx);
            return true;
        }
        false
    }

    /// Reads again after the server held input back: a body arriving meanwhile is timed anew,
    /// from a new rate window, since the time it was not read is not its client's.
    fn read_again(&mut self, cx: &Cx<'_>) {
        self.reading = Reading::Ready;
        if self.session.input.has_head()
            && let Some(exchange) = self.session.exchange.as_deref_mut()
        {
            exchange.pace.resume(cx.turn.clock.now);
        }
    }

    /// Takes no more requests; the connection ends once its answers are out.
    fn stop_reading(&mut self) {
        if self.phase == Phase::Open {
            self.phase = Phase::Closing { read_all: false };
        }
    }

    /// Output bytes written in all, to tell a stalled client from a slow one.
    fn sent(&self) -> u64 {
        self.session.exchange.as_ref().map_or(0, |e| e.output.sent)
    }

    /// A body's pace is looked at when its timer is due: go on, or cut the request short.
    fn check_pace(&mut self, cx: &mut Cx<'_>) -> Result<(), Gone> {
        let rules = BodyRules::from(cx.turn.config);
        let crowded = cx.dispatch.view().stats.budgets.bodies.is_crowded();
        let now = cx.turn.clock.now;
        let checked = self.session.exchange.as_deref_mut().map(|e| {
            let held = crowded.then(|| e.body.held());
            e.pace.check(now, &rules, held)
        });
        match checked {
            // Looked at again when its timer, set anew from the pace, is due.
            Some(Ok(())) => Ok(()),
            Some(Err(cut)) => {
                if cut == TooSlow::Crowded {
                    cx.turn.stats.body_refused();
                } else {
                    cx.turn.stats.slow_body();
                }
                self.time_out(cx, answers::body_timeout(cut))
            }
            None => self.time_out(cx, answers::request_timeout()),
        }
    }

    /// The request cannot go on (its client took too long, or its body would hold the body
    /// budget too long): `response`, then close (or close at once, if no byte of a request had
    /// come).
    fn time_out(&mut self, cx: &mut Cx<'_>, response: Response) -> Result<(), Gone> {
        if self.session.input.is_empty() {
            // No request begun: nothing to say.
            return Err(Gone);
        }
        // A request had begun: say so before closing.
        self.stop_reading();
        cx.dispatch
            .cut_short(&mut cx.turn, &mut self.session, response);
        self.flush(cx)?;
        self.answers_ready(cx)
    }
}
