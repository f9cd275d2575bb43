//! In-place upgrade without systemd: a new rtserve takes over the running one's listening
//! sockets through a control Unix socket (`--control PATH`), as HAProxy's seamless reload
//! does, so no listening socket ever closes and no connection is refused or reset.
//!
//! # Theory of operation
//!
//! 1. The running ("old") rtserve listens on `PATH`, a socket of mode 0600 in a directory
//!    that only its user (or root) can write ([`Endpoint::prepare`] refuses any other).
//! 2. A new rtserve is started with the same `--control PATH`. Before it asks for anything it
//!    checks its whole configuration and binds its own control socket under a temporary name
//!    next to `PATH`: a new rtserve that cannot start fails while the old one still serves.
//! 3. It connects to `PATH`, checks that the file and the process at the other end belong to
//!    its own user or root ([`Endpoint::take_over`]), and sends [`REQUEST`]. The old one
//!    checks the new one's credentials the same way and sends `ok N` with copies of its N
//!    listening sockets (`SCM_RIGHTS`).
//! 4. The new one serves them, one reactor each, renames its control socket onto `PATH`, and
//!    only then says [`SERVING`] on the same connection
//!    ([`Lease::confirm`](endpoint::Lease::confirm)).
//! 5. The old one, on hearing it, shuts down as on SIGTERM: it reports draining for
//!    `--drain-grace-ms`, stops accepting, answers every request it read, and exits. Its
//!    sockets stay open in the new process, so connections queued on them are served there.
//!    If the new one closes the connection without saying it, or stays silent for
//!    [`SERVING_TIMEOUT`], the old one serves on and keeps its copies for a later upgrade.
//!
//! A process removes `PATH` when it exits only if the file there is still the socket it
//! bound: after a hand-over it belongs to the new process.
//!
//! No unsafe code: `rustix` passes the descriptors and reads the peer's credentials, and a
//! received `OwnedFd` becomes a `TcpListener` through `From`.

mod control;
mod endpoint;

use std::{
    io::{self, Read},
    os::unix::net::UnixStream,
    time::{Duration, Instant},
};

pub(crate) use control::Control;
pub(crate) use endpoint::Endpoint;

/// What a new rtserve sends to ask for the sockets.
const REQUEST: &[u8] = b"rtserve hand-over\n";

/// What the new rtserve sends once it serves the sockets (and holds `PATH`).
const SERVING: &[u8] = b"serving\n";

/// The most sockets a hand-over carries (the most reactors there can be).
const MAX_SOCKETS: usize = 1024;

/// How long the new rtserve waits for the old one's answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

/// How long the old rtserve waits for a peer's request: a new rtserve sends it as soon as it
/// connects, so a peer silent for this long is stray, and goes.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(1);

/// How long the old rtserve waits, after sending the sockets, for the new one to say that it
/// serves them: time for it to start its reactors and workers on a busy machine.
const SERVING_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether a process or file of user `uid` may take part in a hand-over: only this process's
/// own user and root, who could take the port anyway.
fn trusted(uid: u32) -> bool {
    uid == 0 || uid == rustix::process::getuid().as_raw()
}

/// The uid of the process at the other end of `stream`, as the kernel recorded it when the
/// connection was made (`SO_PEERCRED`), with its pid for the log.
fn peer(stream: &UnixStream) -> io::Result<(u32, i32)> {
    let credentials = rustix::net::sockopt::socket_peercred(stream)?;
    Ok((
        credentials.uid.as_raw(),
        credentials.pid.as_raw_nonzero().get(),
    ))
}

/// Reads from `stream` until `expected` has come whole, for at most `timeout` in all (not per
/// read, so a peer trickling bytes cannot hold on longer).
fn expect(stream: &mut UnixStream, expected: &[u8], timeout: Duration) -> io::Result<()> {
    let deadline = Instant::now() + timeout;
    let mut got = vec![0; expected.len()];
    let mut filled = 0;
    while filled < got.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        stream.set_read_timeout(Some(left))?;
        match stream.read(&mut got[filled..]) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                return Err(io::ErrorKind::TimedOut.into());
            }
            Err(e) => return Err(e),
        }
        if got[..filled] != expected[..filled] {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("unexpected {:?}", String::from_utf8_lossy(&got[..filled])),
            ));
        }
    }
    Ok(())
}
