//! Responses waiting for their clients cannot pin the server: large ones are taken from one
//! output budget for the whole server before their heads are sent (503 when it has no room),
//! and a client that takes nothing is dropped with a reset, so that the kernel frees what it
//! queued too.

mod support;

use std::{
    io::{ErrorKind, Read, Write},
    net::TcpStream,
    time::{Duration, Instant},
};

use socket2::{Domain, Socket, Type};
use support::{
    Client, TIMEOUT, TestServer, assert_serves, config, post_echo, server_side, wait_until,
};

/// A client whose receive buffer is as small as the kernel allows, so that a response it does
/// not read stays in the server rather than in the kernel.
fn tight_client(server: &TestServer) -> TcpStream {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&server.addr.into()).unwrap();
    let stream = TcpStream::from(socket);
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(TIMEOUT)).unwrap();
    stream
}

/// A server whose connections have small send buffers, so that what a client leaves unread
/// waits in the process, where the output budget counts it.
fn server(output_budget: usize, write_timeout: Duration) -> TestServer {
    let mut c = config();
    c.output_budget = output_budget;
    c.send_buffer = Some(4096);
    c.write_timeout = write_timeout;
    TestServer::routes(c)
}

#[test]
fn a_response_that_does_not_fit_the_output_budget_gets_503_and_small_ones_still_go() {
    let server = server(300_000, TIMEOUT);
    let body = vec![b'x'; 250_000];
    // One client leaves a large answer unread: most of it waits in the server.
    let mut holder = tight_client(&server);
    holder.write_all(&post_echo(&body)).unwrap();
    assert!(
        wait_until(|| server.stats().output_bytes > 200_000),
        "{:?}",
        server.stats().output_bytes
    );

    // Another large answer does not fit what is left: a 503 goes out in its place.
    let mut refused = Client::new(server.connect());
    refused.send(&post_echo(&body));
    let reply = refused.response();
    assert_eq!(reply.status, 503, "{}", reply.status_line);
    assert_eq!(reply.header("rtserve-shed"), Some("output-budget"));
    assert_eq!(server.stats().output_refusals, 1);
    // Small answers are never refused.
    assert_serves(&server);

    // The holder reads its answer: all of it, and the budget is free again.
    let mut holder = Client::new(holder);
    let reply = holder.response();
    assert_eq!((reply.status, reply.body.len()), (200, body.len()));
    assert!(wait_until(|| server.stats().output_bytes == 0));
    refused.send(&post_echo(&body));
    let reply = refused.response();
    assert_eq!((reply.status, reply.body.len()), (200, body.len()));
}

#[test]
fn a_client_that_takes_nothing_is_reset_at_the_write_timeout_and_frees_the_kernel() {
    let server = server(usize::MAX / 2, Duration::from_millis(300));
    let mut client = tight_client(&server);
    client.write_all(&post_echo(&vec![b'y'; 250_000])).unwrap();
    // The server gives up on it, with a reset: its socket is gone at once, not left in
    // FIN-WAIT-1 holding the output the client never read.
    assert!(wait_until(|| server.stats().write_timeouts == 1));
    assert_eq!(server.stats().resets, 1);
    assert!(
        wait_until(|| server_side(&server, &client).is_none()),
        "the server's socket is still there: {:?}",
        server_side(&server, &client)
    );
    assert_eq!(server.stats().output_bytes, 0);
    // The client sees the reset, not an ordinary end.
    let mut buf = vec![0u8; 64 * 1024];
    let deadline = Instant::now() + TIMEOUT;
    let reset = loop {
        assert!(Instant::now() < deadline, "no end");
        match client.read(&mut buf) {
            Ok(0) => break false,
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break true,
            Err(e) => panic!("read failed: {e}"),
        }
    };
    assert!(reset, "the connection ended with a FIN");
    assert_serves(&server);
}
