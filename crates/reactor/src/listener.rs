//! Listening sockets: one per reactor, all on one port with SO_REUSEPORT.

use std::{
    io,
    net::{SocketAddr, TcpListener as StdListener},
    time::Duration,
};

use socket2::{Domain, Protocol, Socket, Type};

use crate::Config;

/// Binds `count` listening sockets to `addr` with SO_REUSEADDR and SO_REUSEPORT, so that the
/// kernel spreads new connections across them. Returns them and the bound address.
///
/// Unless `shared` is set, first makes sure nothing else listens on the address: a socket
/// without SO_REUSEPORT cannot bind where any other socket is bound, so binding one (and
/// closing it) proves the port free, including of another process's SO_REUSEPORT group, which
/// the kernel would otherwise let us join and split traffic with. With port 0 the same probe
/// picks the port. (Another process could still take the port between the probe and our
/// bind; the window is a few system calls wide.)
pub(crate) fn bind(
    addr: SocketAddr,
    count: usize,
    backlog: u32,
    shared: bool,
) -> io::Result<(Vec<StdListener>, SocketAddr)> {
    let mut addr = addr;
    if !shared || addr.port() == 0 {
        let probe = new_socket(addr)?;
        probe.bind(&addr.into()).map_err(|e| describe(e, addr))?;
        addr = local_addr(&probe)?;
    }
    let mut listeners = Vec::with_capacity(count);
    for _ in 0..count {
        let socket = new_socket(addr)?;
        socket.set_reuse_port(true)?;
        socket.bind(&addr.into()).map_err(|e| describe(e, addr))?;
        socket.listen(backlog.min(i32::MAX as u32) as i32)?;
        socket.set_nonblocking(true)?;
        listeners.push(StdListener::from(socket));
    }
    Ok((listeners, addr))
}

/// Checks sockets made elsewhere (each must be a TCP socket that is listening, all on one
/// address) and makes them non-blocking; returns their address.
pub(crate) fn adopt(listeners: &[StdListener]) -> io::Result<SocketAddr> {
    let mut addr = None;
    for listener in listeners {
        let socket = socket2::SockRef::from(listener);
        if socket.r#type()? != Type::STREAM || !socket.is_listener()? {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "an inherited socket is not a listening TCP socket",
            ));
        }
        let this = listener.local_addr()?;
        if addr.is_some_and(|a| a != this) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("inherited sockets listen on different addresses ({this} and {addr:?})"),
            ));
        }
        addr = Some(this);
        listener.set_nonblocking(true)?;
    }
    addr.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no socket to serve on"))
}

/// Sets, once on each listening socket, the options every accepted connection inherits from
/// it on Linux: `TCP_NODELAY` (requests are answered in one write each, and Nagle would hold
/// the next answer back), `SO_TIMESTAMPNS` as `kernel_timestamps` says (on or off: a socket
/// handed over by an earlier process may have it either way) and, if configured, `SO_SNDBUF`
/// and `SO_RCVBUF`. That saves a system call per connection over setting them on each
/// accepted socket. Then the listener's own `TCP_DEFER_ACCEPT`, as `defer_accept` says (also
/// on sockets from systemd or an earlier process: this process's configuration decides).
pub(crate) fn tune(listeners: &[StdListener], config: &Config) -> io::Result<()> {
    use nix::sys::socket::{setsockopt, sockopt::ReceiveTimestampns};

    let defer = defer_accept_secs(config.defer_accept);
    for listener in listeners {
        let socket = socket2::SockRef::from(listener);
        socket.set_tcp_nodelay(true)?;
        setsockopt(listener, ReceiveTimestampns, &config.kernel_timestamps)?;
        setsockopt(listener, TcpDeferAccept, &defer)?;
        if let Some(size) = config.send_buffer {
            socket.set_send_buffer_size(size)?;
        }
        if let Some(size) = config.recv_buffer {
            socket.set_recv_buffer_size(size)?;
        }
    }
    Ok(())
}

// `TCP_DEFER_ACCEPT` (Linux): nix has no name for it, so it is named here with nix's macro
// for naming an option (the system call is nix's).
use nix::{getsockopt_impl, libc, setsockopt_impl, sockopt_impl};
sockopt_impl!(
    TcpDeferAccept,
    Both,
    libc::IPPROTO_TCP,
    libc::TCP_DEFER_ACCEPT,
    i32
);

/// `TCP_DEFER_ACCEPT`'s value for a period: whole seconds, rounded up (0 turns it off).
fn defer_accept_secs(period: Option<Duration>) -> i32 {
    period.map_or(0, |p| {
        i32::try_from(p.as_nanos().div_ceil(1_000_000_000)).unwrap_or(i32::MAX)
    })
}

fn new_socket(addr: SocketAddr) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    // Lets a restarted server bind while old connections sit in TIME_WAIT.
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        // One address family per listener, as asked: [::] does not also take IPv4.
        socket.set_only_v6(true)?;
    }
    Ok(socket)
}

fn local_addr(socket: &Socket) -> io::Result<SocketAddr> {
    socket
        .local_addr()?
        .as_socket()
        .ok_or_else(|| io::Error::other("bound socket has no IP address"))
}

/// Names the address in the error, so that "address in use" says which one.
fn describe(e: io::Error, addr: SocketAddr) -> io::Error {
    io::Error::new(e.kind(), format!("cannot bind {addr}: {e}"))
}

/// Raises the soft limit on open files to the hard limit, so that connections are bounded
/// by configuration rather than by a low default. Returns the new soft limit.
pub(crate) fn raise_fd_limit() -> Option<u64> {
    use rustix::process::{Resource, getrlimit, setrlimit};

    let mut limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        limit.current = limit.maximum;
        setrlimit(Resource::Nofile, limit).ok()?;
    }
    limit.current
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_sockets_inherit_the_listeners_options() {
        let (listeners, addr) = bind("127.0.0.1:0".parse().unwrap(), 1, 16, false).unwrap();
        let config = Config {
            send_buffer: Some(64 * 1024),
            recv_buffer: Some(32 * 1024),
            ..Config::default()
        };
        tune(&listeners, &config).unwrap();
        let mut client = std::net::TcpStream::connect(addr).unwrap();
        // Accept is deferred until the client has sent something.
        io::Write::write_all(&mut client, b"G").unwrap();
        listeners[0].set_nonblocking(false).unwrap();
        let (accepted, _) = listeners[0].accept().unwrap();
        assert!(accepted.nodelay().unwrap(), "TCP_NODELAY is inherited");
        let sndbuf = socket2::SockRef::from(&accepted)
            .send_buffer_size()
            .unwrap();
        // The kernel doubles what it is given, for its bookkeeping.
        assert_eq!(sndbuf, 128 * 1024, "SO_SNDBUF is inherited");
        let rcvbuf = socket2::SockRef::from(&accepted)
            .recv_buffer_size()
            .unwrap();
        assert_eq!(rcvbuf, 64 * 1024, "SO_RCVBUF is inherited");
        let stamps =
            nix::sys::socket::getsockopt(&accepted, nix::sys::socket::sockopt::ReceiveTimestampns)
                .unwrap();
        assert!(stamps, "SO_TIMESTAMPNS is inherited");
    }

    #[test]
    fn defer_accept_is_set_in_whole_seconds_and_turned_off_on_an_inherited_listener() {
        use nix::sys::socket::getsockopt;

        let listener = StdListener::bind("127.0.0.1:0").unwrap();
        let set = |period| {
            let config = Config {
                defer_accept: period,
                ..Config::default()
            };
            tune(std::slice::from_ref(&listener), &config).unwrap();
            getsockopt(&listener, TcpDeferAccept).unwrap()
        };
        assert_eq!(set(Some(Duration::from_secs(1))), 1);
        // 1.5 s asks for 2 s; Linux keeps it as SYN-ACK retransmissions and reports the
        // time they take (1 + 2 s).
        assert_eq!(set(Some(Duration::from_millis(1500))), 3);
        // Turned off on a socket that had it (as one handed over by an earlier process may).
        assert_eq!(set(None), 0);
        assert_eq!(defer_accept_secs(Some(Duration::from_nanos(1))), 1);
        assert_eq!(defer_accept_secs(Some(Duration::MAX)), i32::MAX);
    }

    #[test]
    fn port_zero_binds_every_listener_to_one_port() {
        let (listeners, addr) = bind("127.0.0.1:0".parse().unwrap(), 3, 16, false).unwrap();
        assert_ne!(addr.port(), 0);
        for l in &listeners {
            assert_eq!(l.local_addr().unwrap(), addr);
        }
    }

    #[test]
    fn a_taken_port_is_refused_unless_shared() {
        let (_first, addr) = bind("127.0.0.1:0".parse().unwrap(), 1, 16, false).unwrap();
        let err = bind(addr, 1, 16, false).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
        assert!(err.to_string().contains(&addr.to_string()), "{err}");
        // Joining on purpose works.
        let (joined, same) = bind(addr, 2, 16, true).unwrap();
        assert_eq!((joined.len(), same), (2, addr));
    }

    #[test]
    fn adopted_sockets_must_be_listening_tcp_on_one_address() {
        let a = StdListener::bind("127.0.0.1:0").unwrap();
        let addr = a.local_addr().unwrap();
        assert_eq!(adopt(std::slice::from_ref(&a)).unwrap(), addr);
        let b = StdListener::bind("127.0.0.1:0").unwrap();
        let err = adopt(&[a, b]).unwrap_err();
        assert!(err.to_string().contains("different addresses"), "{err}");
        assert!(adopt(&[]).is_err());
        // Bound but not listening.
        let socket = new_socket(addr).unwrap();
        socket
            .bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
            .unwrap();
        let err = adopt(&[StdListener::from(socket)]).unwrap_err();
        assert!(
            err.to_string().contains("not a listening TCP socket"),
            "{err}"
        );
    }

    #[test]
    fn a_plain_listener_blocks_a_shared_join_too() {
        let plain = StdListener::bind("127.0.0.1:0").unwrap();
        let addr = plain.local_addr().unwrap();
        assert_eq!(
            bind(addr, 1, 16, true).unwrap_err().kind(),
            io::ErrorKind::AddrInUse
        );
    }
}
