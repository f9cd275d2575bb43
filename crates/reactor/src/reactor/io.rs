//! A connection's socket: read (and hand the bytes to the dispatcher), write, backpressure,
//! half-close and linger, close.

use std::{
    io::{self, IoSliceMut, Read, Write},
    mem,
    net::Shutdown,
    os::fd::AsRawFd,
    time::{Duration, Instant, SystemTime},
};

use mio::net::TcpStream;
use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
use socket2::SockRef;

use super::{Reactor, dispatch::Flow, live};
use crate::{
    body::BodyRules,
    connection::{Connection, Output, Peer, Phase, Reading},
    timer::{TimerKind, TimerQueue},
    token::ConnId,
};

/// An unsent remainder larger than this is handed over with the reactor's whole output
/// buffer instead of being copied out of it.
const KEEP_BUFFER: usize = 4 * 1024;
/// The reactor's output buffer is kept up to this size: it serves every connection.
const KEEP_OUT: usize = 1024 * 1024;
/// Most bytes discarded while lingering before the connection is closed anyway.
const MAX_LINGER_BYTES: usize = 1024 * 1024;

impl Reactor {
    /// Reads, has the requests answered, until the socket is drained, the budget is spent,
    /// the output backs up, or the connection closes; then writes.
    pub(super) fn read(&mut self, id: ConnId) {
        let Self {
            conns,
            scratch,
            control,
            dispatch,
            still_ready,
            timers,
            config,
            stats,
            ..
        } = self;
        let Some(conn) = live(conns, id) else {
            return;
        };
        match conn.phase {
            Phase::Open if conn.reading != Reading::Paused => {}
            Phase::Lingering { .. } => return self.linger(id),
            _ => return,
        }
        let mut budget = config.requests_per_turn;
        let mut failed = false;
        let mut deadline = None;
        // Requests left over from an earlier turn come first.
        let mut flow = if conn.session.input.unconsumed().is_empty() {
            Flow::Continue
        } else {
            // Whether more input waits in the socket matters only to a connection that
            // closes after its last request (shutting down): look, without reading.
            let drained = conn.session.close_after && is_drained(&conn.stream);
            let kept = (&[][..], dispatch.clock.now);
            let processed = dispatch.process(id, &mut conn.session, kept, drained, &mut budget);
            deadline = processed.deadline;
            processed.flow
        };
        while flow == Flow::Continue {
            let read = if config.kernel_timestamps {
                recv_stamped(&conn.stream, scratch, control)
            } else {
                conn.stream.read(scratch).map(|n| (n, None))
            };
            match read {
                Ok((0, _)) => {
                    conn.peer = Peer::Closed;
                    if conn.phase == Phase::Open {
                        dispatch.recv_eof(&mut conn.session);
                        conn.phase = Phase::Closing;
                    }
                    break;
                }
                Ok((n, stamp)) => {
                    // A short read took all the socket held (see the module docs of the
                    // reactor), unless the peer's FIN came with it: no edge will come for that.
                    let drained = n < scratch.len() && conn.peer != Peer::HungUp;
                    let arrived = match stamp.and_then(|s| dispatch.clock.arrival(s)) {
                        Some((at, queued)) => {
                            stats.socket_queued(queued);
                            at
                        }
                        None => dispatch.clock.now,
                    };
                    let new = (&scratch[..n], arrived);
                    let processed =
                        dispatch.process(id, &mut conn.session, new, drained, &mut budget);
                    flow = processed.flow;
                    if let Some(at) = processed.deadline {
                        deadline = Some(deadline.map_or(at, |d: Instant| d.min(at)));
                    }
                    if drained && flow == Flow::Continue {
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
        if let Some(at) = deadline {
            timers.set_earliest(&mut conn.timers, id, TimerKind::Deadline, at);
        }
        match flow {
            Flow::Budget if conn.reading != Reading::Queued => {
                conn.reading = Reading::Queued;
                still_ready.push(id);
            }
            Flow::Paused => conn.reading = Reading::Paused,
            Flow::Stop => conn.phase = Phase::Closing,
            _ => {}
        }
        if failed {
            dispatch.discard_out();
            return self.close(id);
        }
        self.arm_read_timers(id);
        if self.flush(id) && flow == Flow::Paused && self.resumable(id) {
            // The socket took the output at once: go on reading before the next sleep.
            self.mark_still_ready(id);
        }
        self.recycle(id);
    }

    /// Whether a paused connection has drained enough to read again (and if so, it reads).
    pub(super) fn resumable(&mut self, id: ConnId) -> bool {
        let max = self.config.max_buffered_output;
        let max_owed = self.config.max_pending_responses;
        match self.conn_mut(id) {
            Some(conn)
                if conn.reading == Reading::Paused
                    && conn.session.pending_output() < max
                    && conn.session.owed() < max_owed =>
            {
                conn.reading = Reading::Ready;
                true
            }
            _ => false,
        }
    }

    /// Sets the read-side timers after a read: they time the client, so none runs while the
    /// server itself holds input back (paused, or cut off by the budget).
    fn arm_read_timers(&mut self, id: ConnId) {
        let now = self.dispatch.clock.now;
        let config = &self.config;
        let Some(conn) = live(&mut self.conns, id) else {
            return;
        };
        let timers = &mut self.timers;
        let (head, body, idle) = (TimerKind::HeadRead, TimerKind::BodyRead, TimerKind::Idle);
        let session = &mut conn.session;
        if conn.phase != Phase::Open || conn.reading != Reading::Ready {
            for kind in [head, body, idle] {
                conn.timers.clear(kind);
            }
        } else if session.input.has_head() {
            // A body is arriving: its pace is looked at when due (`Pace::check`). Armed anew
            // (after the server held reading back), it starts a new rate window.
            conn.timers.clear(head);
            conn.timers.clear(idle);
            if !conn.timers.is_set(body)
                && let Some(exchange) = session.exchange.as_deref_mut()
            {
                exchange.pace.resume(now);
                let due = exchange.pace.due(&BodyRules::from(config));
                timers.set(&mut conn.timers, id, body, due);
            }
        } else if !session.input.is_empty() {
            // Part of a head: time the whole head from its first byte, per head.
            conn.timers.clear(body);
            conn.timers.clear(idle);
            if !conn.timers.is_set(head) || session.head_timed != session.requests {
                session.head_timed = session.requests;
                timers.set(&mut conn.timers, id, head, now + config.header_timeout);
            }
        } else if session.requests > 0 {
            conn.timers.clear(head);
            conn.timers.clear(body);
            if session.is_idle() {
                self.arm_idle(id);
            }
        }
    }

    /// Arms the idle timer of a connection between requests: the idle timeout, or, once
    /// shutdown has begun, the short wait for a request (never moved later by a wake-up).
    pub(super) fn arm_idle(&mut self, id: ConnId) {
        let now = self.dispatch.clock.now;
        let stopping = self.stage.is_stopping();
        let (idle_timeout, idle_wait) = (self.config.idle_timeout, self.config.shutdown_idle_wait);
        let Some(conn) = live(&mut self.conns, id) else {
            return;
        };
        arm_idle(
            &mut self.timers,
            conn,
            now,
            stopping,
            (idle_timeout, idle_wait),
        );
    }

    /// Writes what the turn produced and what was left before; closes or lingers when the
    /// connection is done. Returns whether the connection is still there.
    pub(super) fn flush(&mut self, id: ConnId) -> bool {
        let Some(conn) = live(&mut self.conns, id) else {
            self.dispatch.discard_out();
            return false;
        };
        let out = &mut self.dispatch.out;
        let charged = mem::take(&mut self.dispatch.charged);
        let result = match conn.session.exchange.as_deref_mut() {
            Some(exchange) => {
                let result = write_out(&conn.stream, out, &mut exchange.output);
                exchange.output.settle(charged);
                result
            }
            // Nothing in hand, so nothing was written for it (nor taken from the budget).
            None => {
                debug_assert_eq!(charged, 0, "output charged without an exchange");
                Ok((true, 0))
            }
        };
        out.clear();
        if out.capacity() > KEEP_OUT {
            *out = Vec::new();
        }
        let Ok((done, written)) = result else {
            self.close(id);
            return false;
        };
        if done {
            conn.timers.clear(TimerKind::WriteStall);
            if conn.phase == Phase::Closing && conn.session.owed() == 0 {
                return self.end(id);
            }
            if conn.phase == Phase::Open && conn.session.requests > 0 && conn.session.is_idle() {
                self.arm_idle(id);
            }
        } else if written > 0 || !conn.timers.is_set(TimerKind::WriteStall) {
            // Time the stall from the last progress.
            let at = self.dispatch.clock.now + self.config.write_timeout;
            self.timers
                .set(&mut conn.timers, id, TimerKind::WriteStall, at);
        }
        true
    }

    /// The output is written and no more requests will be read: close, or, if the client may
    /// still be sending, half-close and linger so that unread input does not make the kernel
    /// reset the connection and destroy the answer (RFC 9112 §9.6). Returns whether the
    /// connection is still there.
    fn end(&mut self, id: ConnId) -> bool {
        let Some(conn) = live(&mut self.conns, id) else {
            return false;
        };
        if conn.peer == Peer::Closed
            || conn.session.read_all
            || conn.stream.shutdown(Shutdown::Write).is_err()
        {
            self.close(id);
            return false;
        }
        conn.phase = Phase::Lingering { discarded: 0 };
        conn.session.input.clear();
        if let Some(exchange) = conn.session.exchange.as_deref_mut() {
            exchange.body.clear();
        }
        for kind in [TimerKind::HeadRead, TimerKind::BodyRead, TimerKind::Idle] {
            conn.timers.clear(kind);
        }
        let at = self.dispatch.clock.now + self.config.linger_timeout;
        self.timers.set(&mut conn.timers, id, TimerKind::Linger, at);
        self.linger(id);
        self.conn_mut(id).is_some()
    }

    /// Reads and discards input after half-closing, until the peer closes.
    fn linger(&mut self, id: ConnId) {
        let Some(conn) = live(&mut self.conns, id) else {
            return;
        };
        let Phase::Lingering { discarded } = &mut conn.phase else {
            return;
        };
        loop {
            match conn.stream.read(&mut self.scratch) {
                Ok(0) => break,
                Ok(n) => {
                    *discarded += n;
                    if *discarded > MAX_LINGER_BYTES {
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

    /// Closes an idle connection the ordinary way (a FIN), with a bound on how long the kernel
    /// may keep it afterwards: all our output was handed to the kernel, but a client that never
    /// read it leaves it there, and the FIN queued behind it, for as long as it stays
    /// connected. `TCP_USER_TIMEOUT` (which also bounds zero-window probing) lets the kernel
    /// abort the connection if its data is still unacknowledged after the linger timeout; a
    /// client that read everything sees an ordinary end.
    pub(super) fn close_idle(&mut self, id: ConnId) {
        let linger = self.config.linger_timeout.max(Duration::from_millis(1));
        if let Some(conn) = self.conn_mut(id) {
            // If it cannot be set, the kernel's own bounds apply.
            let _ = SockRef::from(&conn.stream).set_tcp_user_timeout(Some(linger));
        }
        self.close(id);
    }

    /// Closes a connection now and frees its slot.
    pub(super) fn close(&mut self, id: ConnId) {
        if self.conn_mut(id).is_none() {
            return;
        }
        // Dropping the stream closes it, which also removes it from the poll.
        let mut conn = self.conns.remove(id.index as usize);
        self.stats.connection_closed();
        if let Some(exchange) = conn.session.exchange.take() {
            // Jobs still owed are told their answer is not wanted.
            self.dispatch.exchanges.give(exchange);
        }
        drop(conn);
        self.resume_accepting();
    }

    /// Closes a connection on a timeout with a reset rather than a FIN (`SO_LINGER` 0), as
    /// nginx's `reset_timedout_connection` does: a FIN would queue behind the output the client
    /// has not read, and the kernel would keep the socket, and that output, for as long as the
    /// client stays connected, outside `max_connections`. A reset frees both at once.
    pub(super) fn reset(&mut self, id: ConnId) {
        let Some(conn) = self.conn_mut(id) else {
            return;
        };
        // If it cannot be set, the connection closes the ordinary way.
        if SockRef::from(&conn.stream)
            .set_linger(Some(Duration::ZERO))
            .is_ok()
        {
            self.stats.reset();
        }
        self.close(id);
    }

    /// Sends the ready responses at the front of a connection's line, then writes; resumes
    /// reading if the line had made it pause.
    pub(super) fn release(&mut self, id: ConnId) {
        let Some(conn) = live(&mut self.conns, id) else {
            return;
        };
        let paused = conn.reading == Reading::Paused;
        if self.dispatch.release(&mut conn.session, paused) {
            conn.phase = Phase::Closing;
        }
        if self.flush(id) && self.resumable(id) {
            self.mark_still_ready(id);
        }
        self.recycle(id);
    }
}

/// Arms `conn`'s idle timer (see [`Reactor::arm_idle`]); `(idle timeout, shutdown wait)`.
fn arm_idle(
    timers: &mut TimerQueue,
    conn: &mut Connection,
    now: Instant,
    stopping: bool,
    (idle_timeout, idle_wait): (Duration, Duration),
) {
    if stopping {
        timers.set_earliest(&mut conn.timers, conn.id, TimerKind::Idle, now + idle_wait);
    } else {
        timers.set(
            &mut conn.timers,
            conn.id,
            TimerKind::Idle,
            now + idle_timeout,
        );
    }
}

/// Writes `out` (after what `output` still holds) until done or the socket is full; keeps
/// what the socket did not take in `output`. Returns whether everything went, and the
/// bytes written.
fn write_out(
    stream: &TcpStream,
    out: &mut Vec<u8>,
    output: &mut Output,
) -> io::Result<(bool, usize)> {
    let written = if output.pending() == 0 {
        // The common case: write straight from the reactor's buffer.
        let n = write_until_full(stream, out)?;
        if n < out.len() {
            if out.len() - n > KEEP_BUFFER {
                // A large response: hand the whole buffer over instead of copying it.
                output.buf = mem::take(out);
                output.written = n;
            } else {
                output.buf.clear();
                output.buf.extend_from_slice(&out[n..]);
                output.written = 0;
            }
        }
        n
    } else {
        // Drop what was sent before appending, or a client that always has a little output
        // waiting would grow the buffer by everything it was ever sent.
        if output.written > 0 && !out.is_empty() {
            output.buf.drain(..output.written);
            output.written = 0;
        }
        output.buf.extend_from_slice(out);
        let n = write_until_full(stream, &output.buf[output.written..])?;
        output.written += n;
        n
    };
    output.sent += written as u64;
    let done = output.pending() == 0;
    if done {
        output.written = 0;
        output.buf.clear();
        if output.buf.capacity() > KEEP_BUFFER {
            output.buf = Vec::new();
        }
    }
    Ok((done, written))
}

/// Writes until everything went or the socket is full (a short write, or `WouldBlock`);
/// returns the bytes written.
fn write_until_full(mut stream: &TcpStream, mut data: &[u8]) -> io::Result<usize> {
    let mut written = 0;
    while !data.is_empty() {
        match stream.write(data) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                written += n;
                // A short write left the socket full (see the reactor's module docs).
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

/// Reads into `buf` with one `recvmsg`, which also returns the kernel's receive stamp
/// (`SO_TIMESTAMPNS`, inherited from the listener) into `control`, a buffer reused for every
/// read (so reading allocates nothing).
///
/// # Implementation notes
///
/// TCP hands back the stamp of the *last* segment the read took from the socket. A read that
/// takes several requests, or a request and the start of the next, dates them all by the
/// latest: the earlier ones look fresher than they are, by as long as the client took to
/// send the rest. That errs toward giving a request more time, never less. The opposite trap
/// is avoided in `Dispatcher::process`: a request whose head began in an earlier read keeps
/// that read's time, not this one's.
fn recv_stamped(
    stream: &TcpStream,
    buf: &mut [u8],
    control: &mut [u8],
) -> io::Result<(usize, Option<SystemTime>)> {
    let mut iov = [IoSliceMut::new(buf)];
    let msg = recvmsg::<()>(
        stream.as_raw_fd(),
        &mut iov,
        Some(control),
        MsgFlags::empty(),
    )?;
    let mut stamp = None;
    // A truncated control buffer (it cannot be: it is sized for the stamp) reads as none.
    if let Ok(messages) = msg.cmsgs() {
        for message in messages {
            if let ControlMessageOwned::ScmTimestampns(at) = message {
                let since_epoch = u64::try_from(at.tv_sec())
                    .ok()
                    .zip(u32::try_from(at.tv_nsec()).ok())
                    .map(|(secs, nanos)| Duration::new(secs, nanos));
                stamp = since_epoch.and_then(|d| SystemTime::UNIX_EPOCH.checked_add(d));
            }
        }
    }
    Ok((msg.bytes, stamp))
}

/// Room for the control message a stamped read returns.
pub(super) fn control_buffer() -> Box<[u8]> {
    nix::cmsg_space!(nix::sys::time::TimeSpec).into_boxed_slice()
}

/// Whether a socket has no input waiting (a peek, which reads nothing).
fn is_drained(stream: &TcpStream) -> bool {
    match stream.peek(&mut [0]) {
        Ok(n) => n == 0,
        Err(e) => e.kind() == io::ErrorKind::WouldBlock,
    }
}
