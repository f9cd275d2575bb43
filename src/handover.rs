//! In-place upgrade without systemd: a new rtserve takes over the running one's listening
//! sockets through a control Unix socket (`--control PATH`), as HAProxy's seamless reload
//! does, so no listening socket ever closes and no connection is refused or reset.
//!
//! The sequence:
//! 1. The running rtserve (started with `--control PATH`) listens on `PATH`.
//! 2. A new rtserve is started with the same `--control PATH`. It connects, asks, and is sent
//!    copies of the listening sockets (`SCM_RIGHTS`). It serves them at once, one reactor each,
//!    then takes `PATH` over for the next upgrade.
//! 3. The old one, once the copies are sent, shuts down as on SIGTERM: it reports draining for
//!    `--drain-grace-ms`, stops accepting, answers every request it read, and exits. Its
//!    sockets stay open in the new process, so connections queued on them are served there.
//!
//! No unsafe code: `rustix` passes the descriptors, and a received `OwnedFd` becomes a
//! `TcpListener` through `From`.

use std::{
    io::{self, IoSlice, IoSliceMut, Read, Write},
    mem::MaybeUninit,
    net::TcpListener,
    os::{fd::AsFd, unix::net::UnixListener, unix::net::UnixStream},
    path::Path,
    sync::{Arc, Mutex, PoisonError},
    thread,
    time::Duration,
};

use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags, recvmsg, sendmsg,
};

/// What a new rtserve sends to ask for the sockets.
const REQUEST: &[u8] = b"rtserve hand-over\n";

/// The most sockets a hand-over carries (the most reactors there can be).
const MAX_SOCKETS: usize = 1024;

/// How long either side waits for the other.
const TIMEOUT: Duration = Duration::from_secs(5);

/// Asks the rtserve whose control socket is at `path` for its listening sockets. `Ok(None)`
/// when nothing listens there (no file, or a stale one).
pub(crate) fn take_over(path: &Path) -> Result<Option<Vec<TcpListener>>, String> {
    let mut stream = match UnixStream::connect(path) {
        Ok(stream) => stream,
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Ok(None);
        }
        Err(e) => return Err(format!("--control {}: {e}", path.display())),
    };
    let fail = |e: io::Error| format!("hand-over through {}: {e}", path.display());
    stream.set_read_timeout(Some(TIMEOUT)).map_err(fail)?;
    stream.set_write_timeout(Some(TIMEOUT)).map_err(fail)?;
    stream.write_all(REQUEST).map_err(fail)?;
    let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_SOCKETS))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut reply = [0u8; 64];
    let received = recvmsg(
        stream.as_fd(),
        &mut [IoSliceMut::new(&mut reply)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC,
    )
    .map_err(|e| fail(e.into()))?;
    let text = String::from_utf8_lossy(&reply[..received.bytes]).into_owned();
    let mut sockets = Vec::new();
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(fds) = message {
            sockets.extend(fds.map(TcpListener::from));
        }
    }
    if sockets.is_empty() {
        return Err(format!(
            "the rtserve at {} sent no sockets: {}",
            path.display(),
            text.trim()
        ));
    }
    Ok(Some(sockets))
}

/// The control socket of a running rtserve: hands copies of its listening sockets to the
/// first new rtserve that asks, then has this process shut down.
#[derive(Debug)]
pub(crate) struct Control {
    /// The copies to hand over; `None` once handed over or once shutdown began.
    sockets: Arc<Mutex<Option<Vec<TcpListener>>>>,
}

impl Control {
    /// Listens on `path` (replacing what is there: the previous rtserve's socket after a
    /// take-over, or a stale file) with copies of `sockets`. On a hand-over, `shut_down` runs.
    pub(crate) fn start(
        path: &Path,
        sockets: &[TcpListener],
        shut_down: impl FnOnce() + Send + 'static,
    ) -> Result<Self, String> {
        let copies = sockets
            .iter()
            .map(TcpListener::try_clone)
            .collect::<io::Result<Vec<_>>>()
            .map_err(|e| format!("cannot copy the listening sockets: {e}"))?;
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("--control {}: {e}", path.display())),
        }
        let listener =
            UnixListener::bind(path).map_err(|e| format!("--control {}: {e}", path.display()))?;
        let sockets = Arc::new(Mutex::new(Some(copies)));
        let theirs = Arc::clone(&sockets);
        thread::Builder::new()
            .name("rtserve-control".to_owned())
            .spawn(move || serve(&listener, &theirs, shut_down))
            .map_err(|e| format!("cannot start the control thread: {e}"))?;
        Ok(Self { sockets })
    }

    /// Shutdown began: nothing is handed over any more, and the copies close (the reactors'
    /// own sockets close as they stop accepting, as without a control socket).
    pub(crate) fn close(&self) {
        self.sockets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
    }
}

/// Answers requests on the control socket until one hand-over is done.
fn serve(
    listener: &UnixListener,
    sockets: &Mutex<Option<Vec<TcpListener>>>,
    shut_down: impl FnOnce(),
) {
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else {
            continue;
        };
        let _ = stream.set_read_timeout(Some(TIMEOUT));
        let _ = stream.set_write_timeout(Some(TIMEOUT));
        let mut request = [0u8; REQUEST.len()];
        if stream.read_exact(&mut request).is_err() || request != REQUEST {
            let _ = stream.write_all(b"error: not a hand-over request\n");
            continue;
        }
        let mut guard = sockets.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(copies) = guard.as_ref() else {
            let _ = stream.write_all(b"error: this rtserve is shutting down\n");
            continue;
        };
        let sent = {
            let fds: Vec<_> = copies.iter().map(AsFd::as_fd).collect();
            let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(fds.len()))];
            let mut control = SendAncillaryBuffer::new(&mut space);
            control.push(SendAncillaryMessage::ScmRights(&fds));
            let reply = format!("ok {}\n", fds.len());
            sendmsg(
                stream.as_fd(),
                &[IoSlice::new(reply.as_bytes())],
                &mut control,
                SendFlags::empty(),
            )
        };
        if sent.is_ok() {
            // Handed over: ours close, theirs serve on.
            guard.take();
            drop(guard);
            shut_down();
            return;
        }
    }
}
