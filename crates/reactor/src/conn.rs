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
use rtserve_protocol::{ResponseContext, ServerConn};

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

/// A connection: its socket, buffers, protocol state and timers.
///
/// Memory per idle connection is kept small: input is read into the reactor's scratch buffer
/// and parsed there, and only bytes that must outlive the read (a partial request, or the head
/// of a request whose body is still arriving) are copied into `inbuf`. Output likewise goes
/// through the reactor's buffer and only what the socket would not take stays in `outbuf`.
#[derive(Debug)]
pub(crate) struct Connection {
    pub(crate) stream: TcpStream,
    pub(crate) id: ConnId,
    pub(crate) proto: ServerConn,
    /// The current request's head (its first `head_len` bytes, while its body arrives), then
    /// input not yet consumed.
    pub(crate) inbuf: Vec<u8>,
    pub(crate) head_len: usize,
    /// The current request's body.
    pub(crate) body: Vec<u8>,
    /// Output the socket has not taken yet, from `written` on.
    pub(crate) outbuf: Vec<u8>,
    pub(crate) written: usize,
    /// Bytes written in all, to tell a stalled client from a slow one.
    pub(crate) sent: u64,
    pub(crate) timers: TimerTable,
    pub(crate) phase: Phase,
    /// Requests answered.
    pub(crate) requests: u64,
    /// `requests` when the head timer was set: a new head gets a new timer.
    pub(crate) head_timed: u64,
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
    /// Bytes discarded while lingering.
    pub(crate) lingered: usize,
    /// Responses owed while one of them waits for the worker pool, in request order.
    pub(crate) pending: VecDeque<Slot>,
    /// Sequence number of the next offloaded or queued response.
    pub(crate) next_seq: u64,
    /// When the current request's head was fully received.
    pub(crate) received: Instant,
}

impl Connection {
    pub(crate) fn new(stream: TcpStream, id: ConnId, proto: ServerConn) -> Self {
        Self {
            stream,
            id,
            proto,
            inbuf: Vec::new(),
            head_len: 0,
            body: Vec::new(),
            outbuf: Vec::new(),
            written: 0,
            sent: 0,
            timers: TimerTable::default(),
            phase: Phase::Open,
            requests: 0,
            head_timed: 0,
            still_ready: false,
            paused: false,
            peer_closed: false,
            peer_hup: false,
            close_after: false,
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

    /// Input bytes received but not yet consumed.
    pub(crate) fn unconsumed(&self) -> &[u8] {
        &self.inbuf[self.head_len..]
    }

    /// Between requests with nothing buffered or owed.
    pub(crate) fn is_idle(&self) -> bool {
        self.inbuf.is_empty() && self.pending_output() == 0 && self.pending.is_empty()
    }
}
