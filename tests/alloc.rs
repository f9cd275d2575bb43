//! The inline keep-alive path allocates nothing once warm: counted with a global allocator
//! that counts every allocation in this test process.

use std::{net::TcpStream, time::Duration};

use rtserve_reactor::{Config, Reply, Request, Response, Router, Server, StatusCode};

#[path = "support/counting_alloc.rs"]
mod counting_alloc;
#[path = "support/hello_round_trip.rs"]
mod hello_round_trip;

#[global_allocator]
static GLOBAL: counting_alloc::Counting = counting_alloc::Counting;

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
