//! A graceful shutdown on SIGINT or SIGTERM, with no crate beyond this one: the first signal
//! is waited for, and a second one exits the process at once.

use std::{
    fmt, io,
    sync::{Arc, atomic::AtomicBool},
};

use signal_hook::{
    consts::{SIGINT, SIGTERM},
    flag,
    iterator::Signals,
};

use crate::ServerHandle;

/// The exit status of the process when a second SIGINT or SIGTERM ends it: a failure, as the
/// shutdown did not finish, and what the default action's status would be told apart from
/// (that one reports the signal).
const EXIT_ON_SECOND_SIGNAL: i32 = 1;

/// SIGINT and SIGTERM caught for a graceful shutdown: the first is returned by
/// [`wait`](Self::wait), and any one after it exits the process at once with status 1.
///
/// The exit on a later signal happens in the signal handler itself (`_exit`): no lock, thread
/// or write stands between the signal and the exit, so an operator's second Ctrl-C (or a
/// supervisor's second SIGTERM) ends a shutdown that hangs, whatever hangs it. No destructor
/// runs and no buffer is flushed then.
///
/// [`ServerHandle::shutdown_on_signals`] does all of this for a server. Use this type where
/// something else has to happen between the signal and the shutdown, or where the handlers
/// must be in place before the server starts, so that a signal that comes while it starts is
/// not lost (before [`install`](Self::install), a signal has its default effect: the process
/// ends at once).
///
/// # Implementation notes
///
/// The handlers are `signal-hook`'s: for each signal, one that exits once a flag is set, then
/// one that sets it (so the first signal only arms the exit), and the self-pipe of its
/// iterator, which [`wait`](Self::wait) reads. They stay installed for the rest of the
/// process, dropped value or not. Installing them twice adds a second set: install once.
///
/// # Examples
///
/// ```no_run
/// use rtserve_reactor::{Config, Response, Router, Server, ShutdownSignals, StatusCode};
///
/// let mut signals = ShutdownSignals::install()?; // before the server starts
/// let router = Router::new().get("/hello", |_| Response::text(StatusCode::OK, "hello\n"));
/// let server = Server::start(Config::default(), router)?;
/// let signal = signals.wait();
/// eprintln!("signal {signal}: shutting down (a second one exits now)");
/// server.shutdown();
/// server.join()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ShutdownSignals {
    signals: Signals,
}

impl ShutdownSignals {
    /// Installs the handlers of SIGINT and SIGTERM: from now on the first one is kept for
    /// [`wait`](Self::wait), and any later one exits the process with status 1.
    ///
    /// # Errors
    ///
    /// The error of the system call that failed to install a handler (none is expected on
    /// Linux for these two signals).
    pub fn install() -> io::Result<Self> {
        let received = Arc::new(AtomicBool::new(false));
        for signal in [SIGINT, SIGTERM] {
            // Order matters: the exit is checked before the flag is set, so the first signal
            // only arms it.
            flag::register_conditional_shutdown(
                signal,
                EXIT_ON_SECOND_SIGNAL,
                Arc::clone(&received),
            )?;
            flag::register(signal, Arc::clone(&received))?;
        }
        let signals = Signals::new([SIGINT, SIGTERM])?;
        Ok(Self { signals })
    }

    /// Waits for SIGINT or SIGTERM and returns its number (2 or 15). It returns at once for a
    /// signal that came after [`install`](Self::install) and has not been returned yet.
    ///
    /// Once a signal has come, a later one exits the process instead of being returned, so a
    /// second call waits for good; the exception is a SIGINT and a SIGTERM whose handlers ran
    /// at the same moment, both of which are returned.
    pub fn wait(&mut self) -> i32 {
        // The iterator ends only when its handle is closed, which this type never does.
        self.signals.forever().next().unwrap_or(SIGTERM)
    }
}

impl fmt::Debug for ShutdownSignals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShutdownSignals").finish_non_exhaustive()
    }
}

impl ServerHandle {
    /// Serves until SIGINT or SIGTERM, then shuts down gracefully: the requests already read
    /// are answered (see [`shutdown`](Self::shutdown)), and this returns once every reactor
    /// has stopped (see [`join`](Self::join)). A second SIGINT or SIGTERM, while the shutdown
    /// runs, exits the process at once with status 1 (see [`ShutdownSignals`]).
    ///
    /// The handlers are installed by this call: a signal that comes before it has its default
    /// effect (the process ends at once). Install [`ShutdownSignals`] before the server starts
    /// where that matters.
    ///
    /// # Errors
    ///
    /// If the signal handlers cannot be installed (the server is shut down first), or if a
    /// reactor thread failed, as [`join`](Self::join).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use rtserve_reactor::{Config, Response, Router, Server, StatusCode};
    ///
    /// let router = Router::new().get("/hello", |_| Response::text(StatusCode::OK, "hello\n"));
    /// let server = Server::start(Config::default(), router)?;
    /// eprintln!("listening on {}", server.local_addr());
    /// server.shutdown_on_signals()?; // Ctrl-C: finish what was read, then return
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn shutdown_on_signals(self) -> io::Result<()> {
        let mut signals = match ShutdownSignals::install() {
            Ok(signals) => signals,
            Err(e) => {
                self.shutdown();
                let _ = self.join();
                return Err(e);
            }
        };
        signals.wait();
        self.shutdown();
        self.join()
    }
}
