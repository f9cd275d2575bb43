//! Starting and stopping a server: the listeners, the reactor threads, and their handle.

use std::{
    fmt, io,
    net::{SocketAddr, TcpListener as StdListener},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread,
};

use mio::Poll;

use crate::{
    Config, ConfigError, Handler, Stats,
    affinity::Placement,
    budget::{Budgets, ByteBudget},
    listener,
    mailbox::{Mailbox, Message},
    pool::WorkerPool,
    reactor::{Reactor, Shared},
    request::ServerView,
    stats::StatsRegistry,
};

/// Starts servers.
///
/// # Examples
///
/// ```
/// use rtserve_reactor::{Config, Reply, Request, Response, Server, StatusCode};
///
/// let mut config = Config::default();
/// config.addr = "127.0.0.1:0".parse().unwrap();
/// config.reactors = 2;
/// let handle = Server::start(config, |_: &Request<'_>| -> Reply {
///     Response::text(StatusCode::OK, "hello\n").into()
/// })?;
/// println!("listening on {}", handle.local_addr());
/// handle.shutdown();
/// handle.join()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Server;

impl Server {
    /// Validates `config`, raises the soft limit on open files to the hard limit, binds one
    /// listening socket per reactor on `config.addr`, and starts the reactor threads.
    ///
    /// # Errors
    ///
    /// [`StartError::Config`] for a bad setting; [`StartError::Io`] when binding fails (the
    /// address is in use, not local, or needs privileges) or a thread cannot start.
    pub fn start(config: Config, handler: impl Handler) -> Result<ServerHandle, StartError> {
        config.validate().map_err(StartError::Config)?;
        listener::raise_fd_limit();
        let (listeners, local_addr) = listener::bind(
            config.addr,
            config.reactors,
            config.backlog,
            config.shared_port,
        )
        .map_err(StartError::Io)?;
        Self::run(config, listeners, local_addr, handler)
    }

    /// Like [`start`](Self::start), but serves on listening sockets made elsewhere (inherited
    /// through systemd socket activation, say) instead of binding its own: one reactor per
    /// socket, so `config.reactors` and `config.addr` are not used. For N reactors, give N
    /// sockets of one SO_REUSEPORT group (systemd: N `ListenStream=` lines with
    /// `ReusePort=yes`), and the kernel spreads connections over them.
    ///
    /// # Errors
    ///
    /// [`StartError::Config`] for a bad setting or no socket; [`StartError::Io`] when a socket
    /// is not a listening TCP socket or a thread cannot start.
    ///
    /// # Examples
    ///
    /// ```
    /// use rtserve_reactor::{Config, Reply, Request, Response, Server, StatusCode};
    ///
    /// let inherited = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// let addr = inherited.local_addr()?;
    /// let handle = Server::start_on(Config::default(), vec![inherited], |_: &Request<'_>| -> Reply {
    ///     Response::text(StatusCode::OK, "hello\n").into()
    /// })?;
    /// assert_eq!(handle.local_addr(), addr);
    /// handle.shutdown();
    /// handle.join()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn start_on(
        mut config: Config,
        listeners: Vec<StdListener>,
        handler: impl Handler,
    ) -> Result<ServerHandle, StartError> {
        config.reactors = listeners.len();
        config.validate().map_err(StartError::Config)?;
        listener::raise_fd_limit();
        let local_addr = listener::adopt(&listeners).map_err(StartError::Io)?;
        config.addr = local_addr;
        Self::run(config, listeners, local_addr, handler)
    }

    /// Binds the listening sockets [`start`](Self::start) would bind for `config` (one per
    /// reactor on `config.addr`, in one SO_REUSEPORT group, refusing a port already in use
    /// unless `config.shared_port`), without starting anything: for a caller that wants to
    /// keep a copy of them, to hand them to a new process on upgrade, and then serve them
    /// with [`start_on`](Self::start_on).
    ///
    /// # Errors
    ///
    /// When binding fails: the address is in use, not local, or needs privileges.
    pub fn bind(config: &Config) -> io::Result<Vec<StdListener>> {
        listener::raise_fd_limit();
        let (listeners, _) = listener::bind(
            config.addr,
            config.reactors,
            config.backlog,
            config.shared_port,
        )?;
        Ok(listeners)
    }

    /// Starts the reactors on `listeners`.
    fn run(
        config: Config,
        listeners: Vec<StdListener>,
        local_addr: SocketAddr,
        handler: impl Handler,
    ) -> Result<ServerHandle, StartError> {
        listener::tune(&listeners, &config).map_err(StartError::Io)?;
        let config = Arc::new(config);
        let handler: Arc<dyn Handler> = Arc::new(handler);
        let draining = Arc::new(AtomicBool::new(false));
        // Worker threads exit once every reactor has dropped its handle to the pool; they are
        // not joined, so that a job blocked past shutdown cannot hold the process.
        let budgets = Budgets {
            bodies: Arc::new(ByteBudget::new(config.body_budget)),
            output: Arc::new(ByteBudget::new(config.output_budget)),
        };
        let stats = Arc::new(StatsRegistry::new(
            config.reactors,
            handler.routes(),
            budgets,
            config.in_flight_limit(),
        ));
        // Async handlers' futures: on the application's runtime, or on one of our own.
        #[cfg(feature = "tokio")]
        let (runtime, own_runtime) = match &config.runtime {
            Some(handle) => (handle.clone(), None),
            None => {
                // Every driver the application's crates compiled in (timers, I/O): its
                // futures' clients rely on them.
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .enable_all()
                    .worker_threads(config.reactors)
                    .thread_name("rtserve-async")
                    .build()
                    .map_err(StartError::Io)?;
                (runtime.handle().clone(), Some(OwnedRuntime(Some(runtime))))
            }
        };
        let routes = stats.names.len() + 1;
        let placement = Placement::new(config.pin_cpus, listeners.len());
        let (pool, _workers) =
            WorkerPool::start(&config, routes, Arc::clone(&stats.pool), placement.clone())
                .map_err(StartError::Io)?;
        let log = match &config.request_log {
            Some(log) => Some(crate::log::start(log, Arc::clone(&stats)).map_err(StartError::Io)?),
            None => None,
        };
        let shared = Shared {
            handler,
            config: Arc::clone(&config),
            pool,
            view: Arc::new(ServerView {
                draining: Arc::clone(&draining),
                stats: Arc::clone(&stats),
            }),
            log,
            #[cfg(feature = "tokio")]
            runtime,
        };
        let mut reactors = Vec::with_capacity(listeners.len());
        for (id, listener) in listeners.into_iter().enumerate() {
            let poll = Poll::new().map_err(StartError::Io)?;
            let (mailbox, receiver) = Mailbox::new(poll.registry()).map_err(StartError::Io)?;
            let reactor = Reactor::new(
                id,
                poll,
                mio::net::TcpListener::from_std(listener),
                shared.clone(),
                receiver,
                Arc::clone(&mailbox),
            )
            .map_err(StartError::Io)?;
            reactors.push((reactor, mailbox));
        }
        drop(shared);
        let mut handle = ServerHandle {
            local_addr,
            mailboxes: Vec::with_capacity(reactors.len()),
            threads: Vec::with_capacity(reactors.len()),
            draining,
            grace: config.drain_grace,
            stats,
            #[cfg(feature = "tokio")]
            runtime: own_runtime,
            #[cfg(feature = "tokio")]
            shutdown_timeout: config.shutdown_timeout,
        };
        for (id, (reactor, mailbox)) in reactors.into_iter().enumerate() {
            let placement = placement.clone();
            let spawned = thread::Builder::new()
                .name(format!("rtserve-reactor-{id}"))
                .spawn(move || {
                    placement.enter_reactor(id);
                    reactor.run()
                });
            match spawned {
                Ok(thread) => handle.threads.push(thread),
                Err(e) => {
                    // Stop the reactors already running before reporting.
                    handle.shutdown();
                    let _ = handle.join();
                    return Err(StartError::Io(e));
                }
            }
            handle.mailboxes.push(mailbox);
        }
        Ok(handle)
    }
}

/// A running server.
#[derive(Debug)]
pub struct ServerHandle {
    local_addr: SocketAddr,
    mailboxes: Vec<Arc<Mailbox>>,
    threads: Vec<thread::JoinHandle<io::Result<()>>>,
    draining: Arc<AtomicBool>,
    grace: std::time::Duration,
    stats: Arc<StatsRegistry>,
    /// The runtime the server started for async handlers, if the application gave none.
    #[cfg(feature = "tokio")]
    runtime: Option<OwnedRuntime>,
    #[cfg(feature = "tokio")]
    shutdown_timeout: std::time::Duration,
}

impl ServerHandle {
    /// The address the server listens on (with the port picked, if port 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Starts a graceful shutdown and returns at once; [`join`](Self::join) waits for it.
    ///
    /// The server first reports "draining" ([`Request::is_draining`](crate::Request::is_draining),
    /// for a health check) while it goes on serving for `Config::drain_grace`, every response
    /// saying `Connection: close` so that keep-alive clients move elsewhere. Then each reactor
    /// takes the connections already waiting in its accept queue (closing the listener would
    /// reset them) and stops accepting. Requests in flight, and every request already read,
    /// are answered, the last on each connection with `Connection: close`. A connection with
    /// no request in hand (new, or idle keep-alive) gets `Config::shutdown_idle_wait` for one
    /// to arrive, which is answered the same way; then it is closed without reading more, so
    /// no request is ever read and dropped. Each reactor exits when its last connection has
    /// closed or `Config::shutdown_timeout` has passed. Calling it again changes nothing.
    pub fn shutdown(&self) {
        if self.draining.swap(true, Ordering::Relaxed) {
            return;
        }
        for mailbox in &self.mailboxes {
            mailbox.send(Message::Shutdown { grace: self.grace });
        }
    }

    /// The server's statistics, merged across reactors.
    pub fn stats(&self) -> Stats {
        self.stats.merged()
    }

    /// Whether [`shutdown`](Self::shutdown) has been called.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Waits for every reactor thread to exit; then, if the server started a runtime for async
    /// handlers, shuts it down, waiting at most `Config::shutdown_timeout` for its threads (the
    /// futures still in it were cancelled when their connections closed).
    ///
    /// # Errors
    ///
    /// The first error a reactor stopped on (its poll failed), or an error saying that a
    /// reactor thread panicked.
    pub fn join(self) -> io::Result<()> {
        let mut result = Ok(());
        for thread in self.threads {
            let outcome = thread
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("a reactor thread panicked")));
            if result.is_ok() {
                result = outcome;
            }
        }
        #[cfg(feature = "tokio")]
        if let Some(mut runtime) = self.runtime {
            runtime.shut_down(self.shutdown_timeout);
        }
        result
    }
}

/// The runtime a server started for async handlers. It is shut down off the reactors, once
/// they have stopped, when the server is joined; never by dropping it inside another
/// runtime's thread, where tokio does not allow blocking (an application that joins from
/// async code).
#[cfg(feature = "tokio")]
#[derive(Debug)]
struct OwnedRuntime(Option<tokio::runtime::Runtime>);

#[cfg(feature = "tokio")]
impl OwnedRuntime {
    /// Shuts the runtime down, waiting at most `timeout` for its threads where this thread
    /// may block; without waiting inside an async context.
    fn shut_down(&mut self, timeout: std::time::Duration) {
        if let Some(runtime) = self.0.take() {
            if tokio::runtime::Handle::try_current().is_ok() {
                runtime.shutdown_background();
            } else {
                runtime.shutdown_timeout(timeout);
            }
        }
    }
}

#[cfg(feature = "tokio")]
impl Drop for OwnedRuntime {
    /// Not joined: the handle was dropped while the reactors go on serving (detached), and
    /// they still need the runtime. It stays, as they do, for the life of the process.
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            std::mem::forget(runtime);
        }
    }
}

/// Why a server did not start.
#[derive(Debug)]
#[non_exhaustive]
pub enum StartError {
    /// A setting is out of range.
    Config(ConfigError),
    /// Binding or starting failed; the message names the address where it applies.
    Io(io::Error),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Config(e) => e.fmt(f),
            Self::Io(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for StartError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Config(e) => Some(e),
            Self::Io(e) => Some(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn handle_types_cross_threads() {
        assert_send_sync::<ServerHandle>();
        assert_send_sync::<StartError>();
        assert_send_sync::<Config>();
    }
}
