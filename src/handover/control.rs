//! The control socket of a running rtserve: hands copies of its listening sockets to a new
//! rtserve of the same user (or root) that asks, and has this process shut down once the new
//! one serves them.

use std::{
    io::{IoSlice, Write},
    mem::MaybeUninit,
    net::TcpListener,
    os::{
        fd::AsFd,
        unix::net::{UnixListener, UnixStream},
    },
    path::PathBuf,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicUsize, Ordering},
    },
    thread,
    time::Duration,
};

use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags, sendmsg};

use super::{REQUEST, REQUEST_TIMEOUT, SERVING, SERVING_TIMEOUT, endpoint::Identity, expect};
use super::{peer, trusted};

/// Peers served at once. A hand-over needs one; others are stray connections of this user
/// (other users are turned away at once), each gone within [`REQUEST_TIMEOUT`]. Past it a
/// peer is told to come back later.
const MAX_PEERS: usize = 8;

/// Where the copies of the listening sockets are.
#[derive(Debug)]
enum Copies {
    /// Here, for the next rtserve that asks.
    Ready(Vec<TcpListener>),
    /// Lent to a new rtserve, until it says it serves them (by the peer's thread).
    Lent,
    /// Gone: handed over, or shutdown began.
    Closed,
}

/// What the control threads share.
struct Shared {
    copies: Mutex<Copies>,
    /// The shutdown to begin once a new rtserve serves the sockets.
    shut_down: Mutex<Option<Box<dyn FnOnce() + Send>>>,
    /// Peer threads running.
    peers: AtomicUsize,
}

/// The control socket of a running rtserve: hands copies of its listening sockets to the
/// first new rtserve that asks and then serves them, and has this process shut down.
///
/// Dropped, it removes its socket file if that is still the one it bound.
#[derive(Debug)]
pub(crate) struct Control {
    shared: Arc<Shared>,
    path: PathBuf,
    identity: Identity,
}

impl Control {
    /// Answers peers on `listener` (bound at `path`, the file `identity`) with copies of
    /// `sockets`; on a hand-over, `shut_down` runs.
    pub(super) fn start(
        listener: UnixListener,
        path: PathBuf,
        identity: Identity,
        sockets: Vec<TcpListener>,
        shut_down: impl FnOnce() + Send + 'static,
    ) -> Result<Self, String> {
        let shared = Arc::new(Shared {
            copies: Mutex::new(Copies::Ready(sockets)),
            shut_down: Mutex::new(Some(Box::new(shut_down))),
            peers: AtomicUsize::new(0),
        });
        let control = Self {
            shared: Arc::clone(&shared),
            path,
            identity,
        };
        // On failure `control` drops, and its file with it.
        thread::Builder::new()
            .name("rtserve-control".to_owned())
            .spawn(move || accept(&listener, &shared))
            .map_err(|e| format!("cannot start the control thread: {e}"))?;
        Ok(control)
    }

    /// Shutdown began: nothing is handed over any more, and the copies close (the reactors'
    /// own sockets close as they stop accepting, as without a control socket).
    pub(crate) fn close(&self) {
        *self.shared.lock() = Copies::Closed;
    }
}

impl Drop for Control {
    fn drop(&mut self) {
        self.identity.remove(&self.path);
    }
}

impl Shared {
    /// The copies, whatever a panicking peer thread left (the state is whole at every step).
    fn lock(&self) -> std::sync::MutexGuard<'_, Copies> {
        self.copies.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("copies", &self.copies)
            .field("peers", &self.peers)
            .finish_non_exhaustive()
    }
}

/// Accepts peers, each served by a thread of its own, so that one that says nothing delays
/// no other.
fn accept(listener: &UnixListener, shared: &Arc<Shared>) {
    for stream in listener.incoming() {
        let mut stream = match stream {
            Ok(stream) => stream,
            Err(e) => {
                // Out of descriptors, say: try again later rather than spin.
                log::warn!("control socket: {e}");
                thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        // A fresh socket's buffer is empty: the one-line answers below never block.
        match peer(&stream) {
            Ok((uid, _)) if trusted(uid) => {}
            Ok((uid, pid)) => {
                log::warn!("control socket: refused a peer running as uid {uid} (pid {pid})");
                let _ = writeln!(stream, "error: uid {uid} may not take these sockets");
                continue;
            }
            Err(e) => {
                log::warn!("control socket: refused a peer of unknown credentials: {e}");
                continue;
            }
        }
        if shared.peers.fetch_add(1, Ordering::AcqRel) >= MAX_PEERS {
            shared.peers.fetch_sub(1, Ordering::AcqRel);
            let _ = stream.write_all(b"error: busy, try again\n");
            continue;
        }
        let theirs = Arc::clone(shared);
        let spawned = thread::Builder::new()
            .name("rtserve-control-peer".to_owned())
            .spawn(move || {
                serve(stream, &theirs);
                theirs.peers.fetch_sub(1, Ordering::AcqRel);
            });
        if spawned.is_err() {
            shared.peers.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// Serves one peer: hands the sockets over if it asks, and begins the shutdown once it says
/// that it serves them; otherwise takes them back.
fn serve(mut stream: UnixStream, shared: &Shared) {
    let _ = stream.set_write_timeout(Some(REQUEST_TIMEOUT));
    if let Err(e) = expect(&mut stream, REQUEST, REQUEST_TIMEOUT) {
        let _ = writeln!(stream, "error: not a hand-over request ({e})");
        return;
    }
    let pid = peer(&stream).map_or(0, |(_, pid)| pid);
    let copies = {
        let mut copies = shared.lock();
        match std::mem::replace(&mut *copies, Copies::Lent) {
            Copies::Ready(sockets) => sockets,
            other => {
                let why = match other {
                    Copies::Lent => "another hand-over is under way",
                    _ => "this rtserve is shutting down",
                };
                *copies = other;
                let _ = writeln!(stream, "error: {why}");
                return;
            }
        }
    };
    let handed = send(&stream, &copies)
        .map_err(|e| format!("cannot send the sockets: {e}"))
        .and_then(|()| {
            expect(&mut stream, SERVING, SERVING_TIMEOUT)
                .map_err(|e| format!("it did not say that it serves them ({e})"))
        });
    let mut state = shared.lock();
    match handed {
        Ok(()) => {
            // Ours close; theirs serve on.
            *state = Copies::Closed;
            drop(state);
            log::info!("hand-over: the new rtserve (pid {pid}) serves the sockets");
            let shut_down = shared
                .shut_down
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            if let Some(shut_down) = shut_down {
                shut_down();
            }
        }
        Err(why) => {
            // Kept for a later upgrade, unless shutdown began meanwhile.
            if matches!(*state, Copies::Lent) {
                *state = Copies::Ready(copies);
            }
            drop(state);
            log::warn!("hand-over to pid {pid} failed: {why}; serving on");
        }
    }
}

/// Sends `ok N` and copies of the N sockets.
fn send(stream: &UnixStream, sockets: &[TcpListener]) -> std::io::Result<()> {
    let fds: Vec<_> = sockets.iter().map(AsFd::as_fd).collect();
    let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(fds.len()))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    control.push(SendAncillaryMessage::ScmRights(&fds));
    let reply = format!("ok {}\n", fds.len());
    let sent = sendmsg(
        stream.as_fd(),
        &[IoSlice::new(reply.as_bytes())],
        &mut control,
        SendFlags::empty(),
    )?;
    if sent == reply.len() {
        Ok(())
    } else {
        Err(std::io::ErrorKind::WriteZero.into())
    }
}
