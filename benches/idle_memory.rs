//! Memory held per idle keep-alive connection.
//!
//! Starts a server with one reactor in this process, under a global allocator that tracks
//! live heap bytes, then re-runs this binary as a client process that opens N connections,
//! sends one request on each and keeps them all open. Reports the server's heap bytes and RSS
//! growth per idle connection. Numbers, not assertions: run with
//! `cargo bench --bench idle_memory` (optionally `-- N`, default 10000).

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::TcpStream,
    process::{Command, Stdio},
    time::Duration,
};

use rtserve_reactor::{Config, Reply, Request, Response, Router, Server, StatusCode};

#[path = "../tests/support/counting_alloc.rs"]
mod counting_alloc;

#[global_allocator]
static GLOBAL: counting_alloc::Counting = counting_alloc::Counting;

const CLIENT: &str = "RTSERVE_IDLE_CLIENT";

fn main() {
    if let Ok(addr) = std::env::var(CLIENT) {
        return client(&addr);
    }
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(10_000);
    let mut config = Config::default();
    config.addr = "127.0.0.1:0".parse().unwrap();
    config.reactors = 1;
    config.workers = 1;
    config.max_connections = n + 100;
    config.idle_timeout = Duration::from_secs(600);
    let router = Router::new().get("/hello", |_: &Request<'_>| -> Reply {
        Response::new(StatusCode::OK)
            .with_static_headers(&[("Content-Type", b"text/plain")])
            .with_body("hello\n")
            .into()
    });
    let server = Server::start(config, router).unwrap();
    let addr = server.local_addr().to_string();

    // Warm up the reactor's own buffers with a few connections first.
    for _ in 0..10 {
        let mut s = TcpStream::connect(&addr).unwrap();
        request(&mut s);
    }
    std::thread::sleep(Duration::from_millis(200));
    let heap_before = counting_alloc::live_bytes();
    let rss_before = rss();

    let mut child = Command::new(std::env::current_exe().unwrap())
        .env(CLIENT, &addr)
        .env("RTSERVE_IDLE_N", n.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let ready = lines.next().unwrap().unwrap();
    assert_eq!(ready, "READY", "client: {ready}");
    std::thread::sleep(Duration::from_millis(500));
    let open = server.stats().open_connections[0];
    let heap = counting_alloc::live_bytes() - heap_before;
    let rss_growth = rss() - rss_before;
    println!("idle keep-alive connections: {open} (asked for {n})");
    println!(
        "server heap: {} bytes per idle connection ({} bytes in all)",
        heap / open as isize,
        heap
    );
    println!(
        "process RSS growth: {} bytes per idle connection (includes allocator slack)",
        rss_growth / open as i64
    );
    drop(child.stdin.take());
    let _ = child.wait();
    server.shutdown();
    let _ = server.join();
}

/// Sends GET /hello and reads the whole response.
fn request(s: &mut TcpStream) {
    s.write_all(
        b"GET /hello HTTP/1.1\r\nHost: localhost\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n",
    )
    .unwrap();
    let mut buf = [0u8; 1024];
    let mut have = 0;
    while !buf[..have].ends_with(b"hello\n") {
        let n = s.read(&mut buf[have..]).unwrap();
        assert!(n > 0);
        have += n;
    }
}

/// The client process: N connections, one request each, then hold them until stdin closes.
fn client(addr: &str) {
    let n: usize = std::env::var("RTSERVE_IDLE_N").unwrap().parse().unwrap();
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        let mut s = TcpStream::connect(addr).unwrap();
        request(&mut s);
        conns.push(s);
    }
    println!("READY");
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
}

/// Resident set size of this process, in bytes.
fn rss() -> i64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: i64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}
