//! One client connection's socket and buffers: connecting, writing queued requests, reading and
//! framing responses. It decides nothing about the schedule or the accounting: every method
//! returns what happened, and the worker acts on it.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::Instant;

use mio::net::TcpStream;
use mio::{Interest, Registry, Token};

use crate::response::{Completed, ParseError, Progress, ResponseParser};

/// Bits of a `Token` holding the connection index; the rest hold its generation, so an event
/// for a closed socket is not mistaken for one on its replacement.
const INDEX_BITS: u32 = 24;

/// Largest number of connections one thread may own (fits in [`INDEX_BITS`]).
pub(crate) const MAX_CONNECTIONS_PER_THREAD: usize = 1 << INDEX_BITS;

/// Where a connection's socket is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConnState {
    /// No socket; one is opened when a request is due.
    Idle,
    /// Non-blocking connect in progress since the instant given.
    Connecting(Instant),
    /// Connected.
    Open,
}

/// A request written and not yet answered.
#[derive(Debug, Clone, Copy)]
pub(crate) struct InFlight {
    /// Scheduled time, ns after the schedule's start.
    pub(crate) scheduled: u64,
    pub(crate) sent: Instant,
}

/// How a non-blocking connect stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Handshake {
    /// Connected: the connection is open.
    Done,
    /// Not yet (a spurious event).
    Pending,
    /// Refused, unreachable or otherwise failed.
    Failed,
}

/// What a write or a read achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transfer {
    /// Bytes moved (a read) or everything was written (a write).
    Moved,
    /// The socket would block.
    Blocked,
    /// The peer closed the connection (a read), or the socket failed.
    Ended,
}

#[derive(Debug)]
pub(crate) struct Conn {
    /// Global connection index (its schedule slot).
    pub(crate) global: u64,
    /// Index of this connection's next request not yet due.
    pub(crate) next: u64,
    /// Index of its oldest request due but not yet written: requests `unsent..next` are
    /// queued. Two counters instead of a queue, so an overloaded target costs no memory.
    pub(crate) unsent: u64,
    pub(crate) in_flight: VecDeque<InFlight>,
    pub(crate) state: ConnState,
    /// Requests written on the current socket.
    pub(crate) written: u64,
    socket: Option<TcpStream>,
    generation: usize,
    read_buf: Vec<u8>,
    /// Bytes at the front of `read_buf` already framed.
    parsed: usize,
    write_buf: Vec<u8>,
    write_pos: usize,
    parser: ResponseParser,
}

impl Conn {
    /// A connection with no socket yet, whose writes hold up to `write_capacity` bytes
    /// without growing.
    pub(crate) fn new(global: u64, write_capacity: usize) -> Self {
        Self {
            global,
            next: 0,
            unsent: 0,
            in_flight: VecDeque::new(),
            state: ConnState::Idle,
            written: 0,
            socket: None,
            generation: 0,
            read_buf: Vec::with_capacity(16 * 1024),
            parsed: 0,
            write_buf: Vec::with_capacity(write_capacity),
            write_pos: 0,
            parser: ResponseParser::new(),
        }
    }

    /// The connection index an event's token names.
    pub(crate) fn index_of(token: Token) -> usize {
        token.0 & (MAX_CONNECTIONS_PER_THREAD - 1)
    }

    /// Whether an event's token is for this connection's current socket, not a closed one.
    pub(crate) fn owns(&self, token: Token) -> bool {
        self.generation == token.0 >> INDEX_BITS
    }

    /// Whether requests are queued, due but not yet written.
    pub(crate) fn has_due(&self) -> bool {
        self.unsent < self.next
    }

    /// Start a non-blocking connect to `addr`, registered as connection `index`; false if it
    /// failed at once.
    pub(crate) fn connect(
        &mut self,
        addr: SocketAddr,
        registry: &Registry,
        index: usize,
        now: Instant,
    ) -> bool {
        let Ok(mut socket) = TcpStream::connect(addr) else {
            return false;
        };
        self.generation = self.generation.wrapping_add(1) & (usize::MAX >> INDEX_BITS);
        let token = Token(self.generation << INDEX_BITS | index);
        let interest = Interest::READABLE | Interest::WRITABLE;
        if registry.register(&mut socket, token, interest).is_err() {
            return false;
        }
        self.socket = Some(socket);
        self.state = ConnState::Connecting(now);
        self.written = 0;
        true
    }

    /// After an event on a connecting socket: whether the connect is done.
    pub(crate) fn handshake(&mut self) -> Handshake {
        let Some(socket) = self.socket.as_ref() else {
            return Handshake::Failed;
        };
        if !matches!(socket.take_error(), Ok(None)) {
            return Handshake::Failed;
        }
        match socket.peer_addr() {
            Ok(_) => {
                let _ = socket.set_nodelay(true);
                self.state = ConnState::Open;
                Handshake::Done
            }
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Handshake::Pending,
            Err(_) => Handshake::Failed,
        }
    }

    /// Queue `request` (scheduled at `scheduled`) for writing.
    pub(crate) fn push(&mut self, request: &[u8], scheduled: u64, now: Instant) {
        self.write_buf.extend_from_slice(request);
        self.in_flight.push_back(InFlight {
            scheduled,
            sent: now,
        });
        self.written += 1;
    }

    /// Write buffered request bytes until done or `WouldBlock`.
    pub(crate) fn flush(&mut self) -> Transfer {
        let Some(socket) = self.socket.as_mut() else {
            return Transfer::Ended;
        };
        while self.write_pos < self.write_buf.len() {
            match socket.write(&self.write_buf[self.write_pos..]) {
                Ok(0) => return Transfer::Ended,
                Ok(n) => self.write_pos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Transfer::Blocked,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Transfer::Ended,
            }
        }
        self.write_buf.clear();
        self.write_pos = 0;
        Transfer::Moved
    }

    /// Read once through `scratch` into the read buffer. A reset counts as the end: what
    /// did arrive is still framed.
    pub(crate) fn receive(&mut self, scratch: &mut [u8]) -> Transfer {
        let Some(socket) = self.socket.as_mut() else {
            return Transfer::Ended;
        };
        loop {
            return match socket.read(scratch) {
                Ok(0) => Transfer::Ended,
                Ok(n) => {
                    self.read_buf.extend_from_slice(&scratch[..n]);
                    Transfer::Moved
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Transfer::Blocked,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => Transfer::Ended,
            };
        }
    }

    /// The next complete response in the read buffer, if any. When none is left, the framed
    /// bytes are dropped, so the buffer holds at most one partial response's head plus one
    /// read's worth of bytes, however large the bodies.
    pub(crate) fn next_response(
        &mut self,
        head_request: bool,
    ) -> Result<Option<Completed>, ParseError> {
        let rest = &self.read_buf[self.parsed..];
        if rest.is_empty() && self.parser.is_idle() {
            self.read_buf.clear();
            self.parsed = 0;
            return Ok(None);
        }
        let (used, progress) = self.parser.recv(rest, head_request, &mut ())?;
        self.parsed += used;
        match progress {
            Progress::Complete(done) => Ok(Some(done)),
            Progress::NeedMore => {
                self.read_buf.drain(..self.parsed);
                self.parsed = 0;
                Ok(None)
            }
        }
    }

    /// The peer closed: a response delimited by the close, if one was in progress.
    pub(crate) fn finish(&mut self) -> Option<Completed> {
        self.parser.recv_eof().ok().flatten()
    }

    /// Drop the socket and everything buffered for it. Requests in flight stay in
    /// `in_flight` for the caller to account; queued ones wait for a new connection.
    pub(crate) fn close(&mut self, registry: &Registry) {
        if let Some(socket) = self.socket.as_mut() {
            let _ = registry.deregister(socket);
        }
        self.socket = None;
        self.state = ConnState::Idle;
        self.parser.reset();
        self.read_buf.clear();
        self.parsed = 0;
        self.write_buf.clear();
        self.write_pos = 0;
    }
}
