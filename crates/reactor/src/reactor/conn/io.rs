//! A connection's socket: read (and hand the bytes to the dispatcher), write, end, linger,
//! and the ways of closing. These call nothing of the connection's entry points (`mod.rs`),
//! which call them in turn.

use std::{
    io::{self, IoSliceMut, Read, Write},
    mem,
    net::Shutdown,
    os::fd::AsRawFd,
    time::{Duration, SystemTime},
};

use mio::net::TcpStream;
use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
use socket2::SockRef;

use super::{Connection, Cx, Gone, Peer, Phase, Reading};
use crate::{reactor::dispatch::Flow, session::Output};

/// An unsent remainder larger than this is handed over with the reactor's whole output
/// buffer instead of being copied out of it.
const KEEP_BUFFER: usize = 4 * 1024;
/// The reactor's output buffer is kept up to this size: it serves every connection.
const KEEP_OUT: usize = 1024 * 1024;
/// Most bytes discarded while lingering before the connection is closed anyway.
const MAX_LINGER_BYTES: usize = 1024 * 1024;

impl Connection {
    /// Reads, has the requests answered, until the socket is drained, the budget is spent,
    /// the output backs up, or the connection stops taking requests; returns why it stopped
    /// (the output is not written yet). Reading pauses, or the connection closes, as that says.
    pub(super) fn read(&mut self, cx: &mut Cx<'_>) -> Result<Flow, Gone> {
        match self.phase {
            Phase::Open if self.reading != Reading::Paused => {}
            Phase::Lingering { .. } => return self.linger(cx).map(|()| Flow::Stop),
            _ => return Ok(Flow::Stop),
        }
        let mut budget = cx.turn.config.requests_per_turn;
        let mut read_all = false;
        // Requests left over from an earlier turn come first.
        let mut flow = if self.session.input.unconsumed().is_empty() {
            Flow::Continue
        } else {
            // Whether more input waits in the socket matters only to a connection that
            // closes after its last request (shutting down): look, without reading.
            let drained = cx.turn.draining && is_drained(&self.stream);
            let kept = (&[][..], cx.turn.clock.now);
            let processed = cx.dispatch.process(
                &mut cx.turn,
                self.id,
                &mut self.session,
                kept,
                drained,
                &mut budget,
            );
            read_all = processed.read_all;
            processed.flow
        };
        while flow == Flow::Continue {
            let read = if cx.turn.config.kernel_timestamps {
                recv_stamped(&self.stream, cx.scratch, cx.control)
            } else {
                (&self.stream).read(cx.scratch).map(|n| (n, None))
            };
            match read {
                Ok((0, _)) => {
                    self.peer = Peer::Closed;
                    if self.phase == Phase::Open {
                        cx.dispatch.recv_eof(&mut cx.turn, &mut self.session);
                        self.phase = Phase::Closing { read_all: false };
                    }
                    break;
                }
                Ok((n, stamp)) => {
                    // A short read took all the socket held (see the module docs of the
                    // reactor), unless the peer's FIN came with it: no edge will come for that.
                    let drained = n < cx.scratch.len() && self.peer != Peer::HungUp;
                    let clock = cx.turn.clock;
                    let arrived = match stamp.and_then(|s| clock.arrival(s)) {
                        Some((at, queued)) => {
                            cx.turn.stats.socket_queued(queued);
                            at
                        }
                        None => clock.now,
                    };
                    let new = (&cx.scratch[..n], arrived);
                    let processed = cx.dispatch.process(
                        &mut cx.turn,
                        self.id,
                        &mut self.session,
                        new,
                        drained,
                        &mut budget,
                    );
                    flow = processed.flow;
                    read_all = processed.read_all;
                    if drained && flow == Flow::Continue {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Err(Gone),
            }
        }
        match flow {
            Flow::Paused => self.reading = Reading::Paused,
            Flow::Stop if self.phase == Phase::Open => self.phase = Phase::Closing { read_all },
            _ => {}
        }
        Ok(flow)
    }

    /// Writes what the turn produced and what was left before; ends the connection when it
    /// takes no more requests and owes nothing.
    pub(super) fn flush(&mut self, cx: &mut Cx<'_>) -> Result<(), Gone> {
        let out = &mut *cx.turn.out;
        let charged = mem::take(&mut out.charged);
        let result = match self.session.exchange.as_deref_mut() {
            Some(exchange) => {
                let result = write_out(&self.stream, &mut out.buf, &mut exchange.output);
                exchange.output.settle(charged);
                result
            }
            // Nothing in hand, so nothing was written for it (nor taken from the budget).
            None => {
                debug_assert_eq!(charged, 0, "output charged without an exchange");
                Ok(true)
            }
        };
        out.buf.clear();
        if out.buf.capacity() > KEEP_OUT {
            out.buf = Vec::new();
        }
        let done = result.map_err(|_| Gone)?;
        if done && self.session.owed() == 0 {
            self.end(cx)?;
        }
        Ok(())
    }

    /// The output is written and no more requests will be read: close, or, if the client may
    /// still be sending, half-close and linger (see [`Phase::Closing`]).
    fn end(&mut self, cx: &mut Cx<'_>) -> Result<(), Gone> {
        let Phase::Closing { read_all } = self.phase else {
            return Ok(());
        };
        if self.peer == Peer::Closed || read_all || self.stream.shutdown(Shutdown::Write).is_err() {
            return Err(Gone);
        }
        self.phase = Phase::Lingering { discarded: 0 };
        self.session.input.clear();
        if let Some(exchange) = self.session.exchange.as_deref_mut() {
            exchange.body.clear();
        }
        self.linger(cx)
    }

    /// Reads and discards input after half-closing, until the peer closes.
    fn linger(&mut self, cx: &mut Cx<'_>) -> Result<(), Gone> {
        let Phase::Lingering { discarded } = &mut self.phase else {
            return Ok(());
        };
        loop {
            match (&self.stream).read(cx.scratch) {
                Ok(0) => break,
                Ok(n) => {
                    *discarded += n;
                    if *discarded > MAX_LINGER_BYTES {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        Err(Gone)
    }

    /// Ends an idle connection the ordinary way (a FIN), with a bound on how long the kernel
    /// may keep it afterwards: all our output was handed to the kernel, but a client that never
    /// read it leaves it there, and the FIN queued behind it, for as long as it stays
    /// connected. `TCP_USER_TIMEOUT` (which also bounds zero-window probing) lets the kernel
    /// abort the connection if its data is still unacknowledged after the linger timeout; a
    /// client that read everything sees an ordinary end.
    pub(super) fn close_idle(&mut self, cx: &Cx<'_>) -> Gone {
        let linger = cx.turn.config.linger_timeout.max(Duration::from_millis(1));
        // If it cannot be set, the kernel's own bounds apply.
        let _ = SockRef::from(&self.stream).set_tcp_user_timeout(Some(linger));
        Gone
    }

    /// Ends a connection on a timeout with a reset rather than a FIN (`SO_LINGER` 0), as
    /// nginx's `reset_timedout_connection` does: a FIN would queue behind the output the client
    /// has not read, and the kernel would keep the socket, and that output, for as long as the
    /// client stays connected, outside `max_connections`. A reset frees both at once.
    pub(super) fn reset(&mut self, cx: &Cx<'_>) -> Gone {
        // If it cannot be set, the connection closes the ordinary way.
        if SockRef::from(&self.stream)
            .set_linger(Some(Duration::ZERO))
            .is_ok()
        {
            cx.turn.stats.reset();
        }
        Gone
    }
}

/// Writes `out` (after what `output` still holds) until done or the socket is full; keeps
/// what the socket did not take in `output`. Returns whether everything went.
fn write_out(stream: &TcpStream, out: &mut Vec<u8>, output: &mut Output) -> io::Result<bool> {
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
    Ok(done)
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
pub(in crate::reactor) fn control_buffer() -> Box<[u8]> {
    nix::cmsg_space!(nix::sys::time::TimeSpec).into_boxed_slice()
}

/// Whether a socket has no input waiting (a peek, which reads nothing).
fn is_drained(stream: &TcpStream) -> bool {
    match stream.peek(&mut [0]) {
        Ok(n) => n == 0,
        Err(e) => e.kind() == io::ErrorKind::WouldBlock,
    }
}
