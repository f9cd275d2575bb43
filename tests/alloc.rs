//! The inline keep-alive path, and a one-shot connection's, allocate nothing once warm: counted
//! with a global allocator that counts every allocation in this test process (the client's
//! side included).

use std::{net::TcpStream, time::Duration};

use rtserve_reactor::{Config, Reply, Request, Response, Router, Server, StatusCode};

#[path = "support/counting_alloc.rs"]
mod counting_alloc;
#[path = "support/hello_round_trip.rs"]
mod hello_round_trip;

#[global_allocator]
static GLOBAL: counting_alloc::Counting = counting_alloc::Counting;

/// The count is process-wide: the tests take turns, so that one's start-up is not counted in
/// the other's window.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Routed by a pattern with a parameter, read by the handler; its query, which the router
/// checks to be UTF-8 once decoded, needs decoding.
const REQUEST: &[u8] = b"GET /hello/world?lang=fran%C3%A7ais HTTP/1.1\r\nHost: localhost\r\n\
    User-Agent: test\r\nAccept: */*\r\n\r\n";

/// Sends one request and reads its response into `buf`, without allocating.
fn round_trip(stream: &mut TcpStream, buf: &mut [u8; 4096]) {
    hello_round_trip::send(stream, REQUEST, buf);
}

#[test]
fn inline_keep_alive_requests_allocate_nothing_once_warm() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut config = Config::default();
    config.addr = "127.0.0.1:0".parse().unwrap();
    config.reactors = 1;
    config.workers = 1;
    let router = Router::new()
        .get("/bye", |_: &Request<'_>| -> Reply {
            Response::new(StatusCode::NOT_FOUND).into()
        })
        .get("/hello/{name}", |req: &Request<'_>| -> Reply {
            // A parameter that needs no decoding is borrowed from the request.
            let body = match req.param("name").as_deref() {
                Some("world") => "hello\n",
                _ => "wrong parameter\n",
            };
            Response::new(StatusCode::OK)
                .with_static_headers(&[("Content-Type", b"text/plain")])
                .with_body(body)
                .into()
        });
    let server = Server::start(config, router).unwrap();
    let mut stream = TcpStream::connect(server.local_addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream.set_nodelay(true).unwrap();
    let mut buf = [0u8; 4096];
    for _ in 0..200 {
        round_trip(&mut stream, &mut buf);
    }
    let before = counting_alloc::allocations();
    // Starting the server allocated: the counter is live.
    assert!(before > 0);
    const REQUESTS: u64 = 2000;
    for _ in 0..REQUESTS {
        round_trip(&mut stream, &mut buf);
    }
    let allocations = counting_alloc::allocations() - before;
    eprintln!("{allocations} allocations in {REQUESTS} keep-alive requests");
    assert_eq!(allocations, 0, "allocations on the inline keep-alive path");
    drop(stream);
    server.shutdown();
    server.join().unwrap();
}

/// A one-shot exchange: connect, one request with `Connection: close`, read to the close.
fn one_shot(addr: std::net::SocketAddr, buf: &mut [u8; 4096]) {
    use std::io::{Read, Write};
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .write_all(b"GET /hello/world HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut have = 0;
    loop {
        let n = stream.read(&mut buf[have..]).unwrap();
        if n == 0 {
            break;
        }
        have += n;
    }
    assert!(buf[..have].ends_with(b"hello\n"));
}

#[test]
fn one_shot_connections_allocate_nothing_once_warm() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut config = Config::default();
    config.addr = "127.0.0.1:0".parse().unwrap();
    config.reactors = 1;
    config.workers = 1;
    let router = Router::new().get("/hello/{name}", |_: &Request<'_>| -> Reply {
        Response::new(StatusCode::OK).with_body("hello\n").into()
    });
    let server = Server::start(config, router).unwrap();
    let addr = server.local_addr();
    let mut buf = [0u8; 4096];
    for _ in 0..200 {
        one_shot(addr, &mut buf);
    }
    let before = counting_alloc::allocations();
    const CONNECTIONS: u64 = 1000;
    for _ in 0..CONNECTIONS {
        one_shot(addr, &mut buf);
    }
    let allocations = counting_alloc::allocations() - before;
    eprintln!("{allocations} allocations in {CONNECTIONS} one-shot connections");
    assert_eq!(allocations, 0, "allocations on the one-shot path");
    server.shutdown();
    server.join().unwrap();
}
