//! One connection's state on its reactor.

use std::{
    collections::VecDeque,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Instant,
};

use mio::net::TcpStream;
use rtserve_protocol::{Limits, ResponseContext, ServerConn};

use crate::{Response, timer::TimerTable, token::ConnId};

/// A response owed to the client, in request order.
#[derive(Debug)]
pub(crate) struct Slot {
    pub(crate) seq: u64,
    pub(crate) ctx: ResponseContext,
    /// For statistics: the route, and when the request's head was received.
    pub(crate) route: usize,
    pub(crate) received: Instant,
    pub(crate) state: SlotState,
}

#[derive(Debug)]
pub(crate) enum SlotState {
    /// On the worker pool; the flag tells the job its answer is no longer wanted.
    Waiting {
        cancelled: Arc<AtomicBool>,
        deadline: Instant,
    },
    /// Ready, but behind one that is not.
    Ready(Response),
    /// A `100 Continue` for a request whose body is awaited, behind responses still owed.
    Continue,
}

/// Where a connection is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Reading and answering requests.
    Open,
    /// No more requests: once the output is written, half-close and linger.
    Closing,
    /// Half-closed: reading and discarding the peer's input until it closes or time is up.
    Lingering,
}

/// A connection: its socket, timers and flags, and, while it has work in hand, its [`Io`].
///
/// Memory per idle connection is kept small. Input is read into the reactor's scratch buffer
/// and parsed there; only bytes that must outlive the read (a partial request, or the head of a
/// request whose body is still arriving) are copied into `inbuf`. Output likewise goes through
/// the reactor's buffer. Everything else a request needs (protocol state, body, unsent output,
/// responses owed) is in an [`Io`] that the connection takes from its reactor's pool when bytes
/// arrive and gives back once it is idle again.
#[derive(Debug)]
pub(crate) struct Connection {
    pub(crate) stream: TcpStream,
    pub(crate) id: ConnId,
    /// Present while the connection has work in hand.
    pub(crate) io: Option<Box<Io>>,
    /// The current request's head (its first `head_len` bytes, while its body arrives), then
    /// input not yet consumed.
    pub(crate) inbuf: Vec<u8>,
    pub(crate) head_len: usize,
    pub(crate) timers: TimerTable,
    /// Requests answered.
    pub(crate) requests: u32,
    /// `requests` when the head timer was set: a new head gets a new timer.
    pub(crate) head_timed: u32,
    pub(crate) phase: Phase,
    /// On the reactor's still-ready list.
    pub(crate) still_ready: bool,
    /// Reading stopped until the output drains below the limit.
    pub(crate) paused: bool,
    /// The peer closed its side (read returned 0).
    pub(crate) peer_closed: bool,
    /// The poll reported the peer's FIN (it may not have been read yet).
    pub(crate) peer_hup: bool,
    /// Close after the request in progress (the server is shutting down).
    pub(crate) close_after: bool,
}

/// What a connection needs while it reads, answers or writes; pooled per reactor.
#[derive(Debug)]
pub(crate) struct Io {
    pub(crate) proto: ServerConn,
    /// The current request's body.
    pub(crate) body: Vec<u8>,
    /// Output the socket has not taken yet, from `written` on.
    pub(crate) outbuf: Vec<u8>,
    pub(crate) written: usize,
    /// Bytes written in all, to tell a stalled client from a slow one.
    pub(crate) sent: u64,
    /// Bytes discarded while lingering.
    pub(crate) lingered: usize,
    /// Responses owed while one of them waits for the worker pool, in request order.
    pub(crate) pending: VecDeque<Slot>,
    /// Sequence number of the next offloaded or queued response.
    pub(crate) next_seq: u64,
    /// When the current request's head was fully received.
    pub(crate) received: Instant,
}

impl Io {
    pub(crate) fn new(limits: Limits) -> Self {
        Self {
            proto: ServerConn::new(limits),
            body: Vec::new(),
            outbuf: Vec::new(),
            written: 0,
            sent: 0,
            lingered: 0,
            pending: VecDeque::new(),
            next_seq: 0,
            received: Instant::now(),
        }
    }

    /// Tells every job still waiting for this connection that its answer is not wanted, and
    /// drops what was owed.
    pub(crate) fn cancel_pending(&mut self) {
        for slot in self.pending.drain(..) {
            if let SlotState::Waiting { cancelled, .. } = slot.state {
                cancelled.store(true, Ordering::Relaxed);
            }
        }
    }

    /// Output bytes waiting for the socket.
    pub(crate) fn pending_output(&self) -> usize {
        self.outbuf.len() - self.written
    }

    /// Nothing in hand: it can serve another connection.
    fn is_idle(&self) -> bool {
        self.pending_output() == 0
            && self.pending.is_empty()
            && self.body.is_empty()
            && self.proto.is_between_requests()
    }
}

/// A reactor's spare [`Io`]s. It keeps what was given back for reuse, and trims itself: once
/// a second it frees half of those that were not needed during that second.
#[derive(Debug)]
pub(crate) struct IoPool {
    limits: Limits,
    // Boxed on purpose: an `Io` moves between the pool and its connections as a pointer.
    #[allow(clippy::vec_box)]
    free: Vec<Box<Io>>,
    /// The fewest spares held since the last trim.
    low: usize,
}

/// Most spare `Io`s a reactor keeps.
const MAX_SPARE: usize = 4096;
/// A buffer of a pooled `Io` larger than this is freed rather than kept.
const KEEP_IN_POOL: usize = 4 * 1024;

impl IoPool {
    pub(crate) fn new(limits: Limits) -> Self {
        Self {
            limits,
            free: Vec::new(),
            low: 0,
        }
    }

    pub(crate) fn take(&mut self) -> Box<Io> {
        let io = self
            .free
            .pop()
            .unwrap_or_else(|| Box::new(Io::new(self.limits)));
        self.low = self.low.min(self.free.len());
        io
    }

    pub(crate) fn give(&mut self, mut io: Box<Io>) {
        if self.free.len() >= MAX_SPARE {
            return;
        }
        if io.body.capacity() > KEEP_IN_POOL {
            io.body = Vec::new();
        }
        if io.outbuf.capacity() > KEEP_IN_POOL {
            io.outbuf = Vec::new();
        }
        io.written = 0;
        io.lingered = 0;
        self.free.push(io);
    }

    /// Frees half of the spares unused since the last call.
    pub(crate) fn trim(&mut self) {
        let unused = self.low / 2;
        self.free.truncate(self.free.len() - unused);
        self.low = self.free.len();
    }
}

impl Connection {
    pub(crate) fn new(stream: TcpStream, id: ConnId) -> Self {
        Self {
            stream,
            id,
            io: None,
            inbuf: Vec::new(),
            head_len: 0,
            timers: TimerTable::default(),
            requests: 0,
            head_timed: 0,
            phase: Phase::Open,
            still_ready: false,
            paused: false,
            peer_closed: false,
            peer_hup: false,
            close_after: false,
        }
    }

    /// Output bytes waiting for the socket.
    pub(crate) fn pending_output(&self) -> usize {
        self.io.as_ref().map_or(0, |io| io.pending_output())
    }

    /// Responses owed.
    pub(crate) fn pending(&self) -> usize {
        self.io.as_ref().map_or(0, |io| io.pending.len())
    }

    /// Input bytes received but not yet consumed.
    pub(crate) fn unconsumed(&self) -> &[u8] {
        &self.inbuf[self.head_len..]
    }

    /// Between requests with nothing buffered or owed.
    pub(crate) fn is_idle(&self) -> bool {
        self.inbuf.is_empty() && self.pending_output() == 0 && self.pending() == 0
    }

    /// Gives the connection's `Io` back to the pool if it is open and has nothing in hand.
    pub(crate) fn recycle(&mut self, pool: &mut IoPool) {
        if self.phase == Phase::Open
            && !self.paused
            && self.inbuf.is_empty()
            && self.head_len == 0
            && self.io.as_ref().is_some_and(|io| io.is_idle())
            && let Some(io) = self.io.take()
        {
            pool.give(io);
        }
    }
}
