//! A bare mio server for one-shot connections: the floor that `benches/new_conn.sh` measures
//! rtserve's new-connection path against.
//!
//! `bare_accept PORT [--defer]` listens on 127.0.0.1:PORT (with `TCP_DEFER_ACCEPT` of 1 s
//! under `--defer`, so that the kernel hands over a connection only once its request is
//! there), accepts until the queue is empty, reads each new connection at once (before any
//! registration: it is registered for readable only if that read found nothing), answers any
//! request with the bytes rtserve sends for `/hello` and closes. It parses nothing and keeps no
//! timers: whatever rtserve spends beyond it per connection is rtserve's own.
//!
//! The load generator writes each request in one piece, so the first read that returns data
//! is taken as the whole request. That is enough for a floor, not for a server.
#![forbid(unsafe_code)]

use std::io::{self, ErrorKind, Read, Write};

use mio::{
    Events, Interest, Poll, Token,
    net::{TcpListener, TcpStream},
};
use nix::{getsockopt_impl, libc, setsockopt_impl, sockopt_impl};
use slab::Slab;

sockopt_impl!(
    /// `TCP_DEFER_ACCEPT`: seconds the kernel waits for a connection's first data before it
    /// lets the listener accept it (neither nix nor socket2 wraps it).
    TcpDeferAccept,
    Both,
    libc::IPPROTO_TCP,
    libc::TCP_DEFER_ACCEPT,
    i32
);

/// What rtserve answers to `GET /hello` with `Connection: close`, byte for byte in size (its
/// Date changes each second; this one stays put).
const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nDate: Mon, 07 Dec 2026 23:38:55 GMT\r\n\
    Content-Type: text/plain; charset=utf-8\r\nContent-Length: 14\r\nConnection: close\r\n\r\n\
    Hello, world!\n";

/// The listener's token; connections waiting for their request take their slab index.
const LISTENER: Token = Token(usize::MAX);

fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (port, defer) = match args.as_slice() {
        [port] => (port, false),
        [port, flag] if flag == "--defer" => (port, true),
        _ => usage(),
    };
    let port: u16 = port.parse().unwrap_or_else(|_| usage());
    let mut listener = TcpListener::bind(([127, 0, 0, 1], port).into())?;
    if defer {
        nix::sys::socket::setsockopt(&listener, TcpDeferAccept, &1)?;
    }
    let mut poll = Poll::new()?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let mut events = Events::with_capacity(256);
    let mut waiting = Slab::new();
    loop {
        match poll.poll(&mut events, None) {
            // A tracer attaching (strace -p) interrupts the wait.
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            result => result?,
        }
        for event in &events {
            if event.token() == LISTENER {
                // Edge-triggered: accept until the queue is empty.
                loop {
                    let mut stream = match listener.accept() {
                        Ok((stream, _)) => stream,
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) => return Err(e),
                    };
                    if !serve(&mut stream) {
                        let entry = waiting.vacant_entry();
                        poll.registry().register(
                            &mut stream,
                            Token(entry.key()),
                            Interest::READABLE,
                        )?;
                        entry.insert(stream);
                    }
                }
            } else if let Some(stream) = waiting.get_mut(event.token().0)
                && serve(stream)
            {
                // Closing the descriptor takes it out of the epoll set.
                waiting.remove(event.token().0);
            }
        }
    }
}

/// Reads `stream` once; answers and returns true (the caller closes it) if that found a
/// request or an end, false if there was nothing to read yet.
fn serve(stream: &mut TcpStream) -> bool {
    let mut buf = [0; 4096];
    match stream.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => {
            // A fresh socket's send buffer takes the whole answer; a client gone is no matter.
            let _ = stream.write(RESPONSE);
            true
        }
        Err(e) => e.kind() != ErrorKind::WouldBlock,
    }
}

fn usage() -> ! {
    eprintln!("usage: bare_accept PORT [--defer]");
    std::process::exit(2)
}
