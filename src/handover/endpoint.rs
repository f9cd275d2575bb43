//! The control path of a starting rtserve: the checks on `PATH` and its directory, its own
//! control socket bound (mode 0600) under a temporary name, and the take-over of a running
//! rtserve's sockets.

use std::{
    fs,
    io::{self, IoSliceMut, Write},
    mem::MaybeUninit,
    net::TcpListener,
    os::{
        fd::AsFd,
        unix::{
            fs::{FileTypeExt, MetadataExt},
            net::{UnixListener, UnixStream},
        },
    },
    path::{Path, PathBuf},
};

use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, recvmsg};

use super::{ANSWER_TIMEOUT, Control, MAX_SOCKETS, REQUEST, SERVING, peer, trusted};

/// The file a process bound: its device and inode, to tell it from one bound later at the
/// same path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Identity {
    dev: u64,
    ino: u64,
}

impl Identity {
    /// The identity of the file at `path` (not following a symbolic link).
    fn of(path: &Path) -> io::Result<Self> {
        let meta = fs::symlink_metadata(path)?;
        Ok(Self {
            dev: meta.dev(),
            ino: meta.ino(),
        })
    }

    /// Removes the file at `path` if it is still this one. (Only this user or root can write
    /// the directory, so nothing else moves in between.)
    pub(super) fn remove(self, path: &Path) {
        if Self::of(path).is_ok_and(|now| now == self) {
            let _ = fs::remove_file(path);
        }
    }
}

/// `--control PATH` of a starting rtserve: checked, with its own control socket bound next to
/// `PATH`, not yet on it.
#[derive(Debug)]
pub(crate) struct Endpoint {
    path: PathBuf,
    /// Where our socket is bound until [`install`](Self::install) renames it onto `path`.
    temporary: PathBuf,
    listener: Option<UnixListener>,
    identity: Identity,
}

impl Endpoint {
    /// Checks `path` and its directory, and binds this process's control socket, mode 0600,
    /// under a temporary name in the same directory. `PATH` itself is not touched.
    ///
    /// # Errors
    ///
    /// A one-line message naming `path` when its directory can be written by group or others
    /// or belongs to another user, when `path` exists and is not a socket or is a socket of
    /// another user, or when binding fails.
    pub(crate) fn prepare(path: &Path) -> Result<Self, String> {
        let fail = |why: String| format!("--control {}: {why}", path.display());
        check_directory(path).map_err(fail)?;
        check_existing(path).map_err(fail)?;
        let name = path
            .file_name()
            .ok_or_else(|| fail("not a file name".to_owned()))?;
        let temporary = path.with_file_name(format!(
            ".{}.{}.new",
            name.to_string_lossy(),
            std::process::id()
        ));
        // Left by an earlier process of this pid, which is gone.
        if check_existing(&temporary).map_err(fail)? {
            fs::remove_file(&temporary).map_err(|e| fail(e.to_string()))?;
        }
        let listener = bind_private(&temporary).map_err(|e| fail(e.to_string()))?;
        let identity = Identity::of(&temporary).map_err(|e| fail(e.to_string()))?;
        Ok(Self {
            path: path.to_owned(),
            temporary,
            listener: Some(listener),
            identity,
        })
    }

    /// Asks the rtserve whose control socket is at `PATH` for its listening sockets.
    /// `Ok(None)` when nothing listens there (no file, or a stale one).
    ///
    /// # Errors
    ///
    /// When the process listening there is not of this user or root (its sockets are not
    /// adopted), when it refuses, or when it sends no sockets.
    pub(crate) fn take_over(&self) -> Result<Option<(Vec<TcpListener>, Lease)>, String> {
        let path = &self.path;
        let fail = |e: io::Error| format!("hand-over through {}: {e}", path.display());
        // Checked again: the file may have changed since `prepare`.
        check_existing(path).map_err(|why| format!("--control {}: {why}", path.display()))?;
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
        let (uid, pid) = peer(&stream).map_err(fail)?;
        if !trusted(uid) {
            return Err(format!(
                "--control {}: the process listening there (pid {pid}) runs as uid {uid}, \
                 not as this user or root: not trusted",
                path.display()
            ));
        }
        stream
            .set_read_timeout(Some(ANSWER_TIMEOUT))
            .map_err(fail)?;
        stream
            .set_write_timeout(Some(ANSWER_TIMEOUT))
            .map_err(fail)?;
        stream.write_all(REQUEST).map_err(fail)?;
        let sockets = receive(&stream)
            .map_err(|why| format!("the rtserve at {} sent no sockets: {why}", path.display()))?;
        Ok(Some((sockets, Lease { stream })))
    }

    /// Moves this process's control socket onto `PATH` (atomically replacing the old
    /// rtserve's) and starts handing `sockets` to the next rtserve that asks; on a hand-over,
    /// `shut_down` runs.
    ///
    /// # Errors
    ///
    /// When the rename or the control thread fails.
    pub(crate) fn install(
        mut self,
        sockets: Vec<TcpListener>,
        shut_down: impl FnOnce() + Send + 'static,
    ) -> Result<Control, String> {
        fs::rename(&self.temporary, &self.path)
            .map_err(|e| format!("--control {}: {e}", self.path.display()))?;
        // `install` takes `self`: the listener is there until now.
        let listener = self.listener.take().expect("an endpoint is installed once");
        Control::start(
            listener,
            self.path.clone(),
            self.identity,
            sockets,
            shut_down,
        )
    }
}

impl Drop for Endpoint {
    /// Not installed (the start failed): our temporary socket goes.
    fn drop(&mut self) {
        if self.listener.is_some() {
            self.identity.remove(&self.temporary);
        }
    }
}

/// The sockets are ours until the old rtserve hears that we serve them.
#[derive(Debug)]
pub(crate) struct Lease {
    stream: UnixStream,
}

impl Lease {
    /// Tells the old rtserve that this one serves the sockets: it begins its shutdown.
    /// (Dropped without this, the old one serves on.)
    ///
    /// # Errors
    ///
    /// When the old rtserve is gone, or has given up waiting and serves on.
    pub(crate) fn confirm(mut self) -> io::Result<()> {
        self.stream.write_all(SERVING)
    }
}

/// Refuses a directory for `path` that someone else could replace the socket in.
fn check_directory(path: &Path) -> Result<(), String> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let meta = fs::metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    if meta.mode() & 0o022 != 0 {
        return Err(format!(
            "its directory {} is writable by group or others (mode {:o}); use one only this \
             user can write, such as /run/rtserve/ created with mode 0700",
            dir.display(),
            meta.mode() & 0o7777
        ));
    }
    if !trusted(meta.uid()) {
        return Err(format!(
            "its directory {} belongs to uid {}, not to this user or root",
            dir.display(),
            meta.uid()
        ));
    }
    Ok(())
}

/// Whether a socket of this user or root is at `path` (`false`: nothing is); refuses
/// anything else there, which must be neither trusted nor replaced.
fn check_existing(path: &Path) -> Result<bool, String> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e.to_string()),
    };
    if !meta.file_type().is_socket() {
        return Err("exists and is not a socket".to_owned());
    }
    if !trusted(meta.uid()) {
        return Err(format!(
            "the socket there belongs to uid {}, not to this user or root: not trusted \
             (remove it if it is stale)",
            meta.uid()
        ));
    }
    Ok(true)
}

/// Binds a Unix socket at `path` that only this user can connect to: mode 0600 from the
/// moment it exists, whatever the umask.
fn bind_private(path: &Path) -> io::Result<UnixListener> {
    use rustix::{fs::Mode, process::umask};
    // bind(2) creates the file with mode 0777 less the umask. The umask is the process's, but
    // no other thread creates files while rtserve starts.
    let previous = umask(Mode::from_raw_mode(0o177));
    let bound = UnixListener::bind(path);
    umask(previous);
    bound
}

/// Receives the old rtserve's answer: `ok N` and N listening sockets.
fn receive(stream: &UnixStream) -> Result<Vec<TcpListener>, String> {
    let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_SOCKETS))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut reply = [0u8; 256];
    let received = recvmsg(
        stream.as_fd(),
        &mut [IoSliceMut::new(&mut reply)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC,
    )
    .map_err(io::Error::from)
    .map_err(|e| e.to_string())?;
    let mut sockets = Vec::new();
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(fds) = message {
            sockets.extend(fds.map(TcpListener::from));
        }
    }
    let text = String::from_utf8_lossy(&reply[..received.bytes]);
    let text = text.trim();
    let announced = text
        .strip_prefix("ok ")
        .and_then(|n| n.parse::<usize>().ok());
    match announced {
        Some(n) if n == sockets.len() && n > 0 => Ok(sockets),
        Some(n) => Err(format!("it announced {n}, {} came", sockets.len())),
        None if text.is_empty() => Err("it closed the connection".to_owned()),
        None => Err(text.to_owned()),
    }
}
