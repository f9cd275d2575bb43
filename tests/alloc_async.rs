//! The async keep-alive path allocates twice per request once warm: counted with a global
//! allocator that counts every allocation in this test process (alone in it: the counter
//! sees every thread).

use std::{net::TcpStream, time::Duration};

use rtserve_reactor::{AsyncContext, Config, Reply, Request, Response, Router, Server, StatusCode};

#[path = "support/counting_alloc.rs"]
mod counting_alloc;
#[path = "support/hello_round_trip.rs"]
mod hello_round_trip;

use hello_round_trip::send;

#[global_allocator]
static GLOBAL: counting_alloc::Counting = counting_alloc::Counting;

#[test]
fn async_keep_alive_requests_allocate_twice_once_warm() {
    let mut config = Config::default();
    config.addr = "127.0.0.1:0".parse().unwrap();
    config.reactors = 1;
    config.workers = 1;
    let router = Router::new().get("/async", |_: &Request<'_>| -> Reply {
        Reply::spawn(|_: AsyncContext| async {
            Response::new(StatusCode::OK)
                .with_static_headers(&[("Content-Type", b"text/plain")])
                .with_body("hello\n")
        })
    });
    let server = Server::start(config, router).unwrap();
    let mut stream = TcpStream::connect(server.local_addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream.set_nodelay(true).unwrap();
    let request = b"GET /async HTTP/1.1\r\nHost: localhost\r\n\r\n";
    let mut buf = [0u8; 4096];
    for _ in 0..200 {
        send(&mut stream, request, &mut buf);
    }
    let before = counting_alloc::allocations();
    const REQUESTS: u64 = 2000;
    for _ in 0..REQUESTS {
        send(&mut stream, request, &mut buf);
    }
    let allocations = counting_alloc::allocations() - before;
    eprintln!("{allocations} allocations in {REQUESTS} async keep-alive requests");
    // The future, boxed (a reply is one type whatever the handler's future), and the
    // runtime's task; the mailbox's queue allocates a block now and then. (A closure that
    // captures something is boxed too: one more.)
    assert!(
        allocations <= 2 * REQUESTS + REQUESTS / 10,
        "{allocations} allocations on the async keep-alive path"
    );
    drop(stream);
    server.shutdown();
    server.join().unwrap();
}
