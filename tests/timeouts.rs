//! Timeouts, with short configured values and generous waits for their effect: slowloris
//! heads and stalled bodies get 408, idle keep-alive connections close quietly, and a client
//! that stops reading is dropped.

mod support;

use std::{
    io::{ErrorKind, Read, Write},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use support::{
    Client, TIMEOUT, TestServer, assert_serves, config, get, server_side, tcp_state, wait_until,
};

const SHORT: Duration = Duration::from_millis(300);

#[test]
fn partial_head_then_silence_gets_408() {
    let mut c = config();
    c.header_timeout = SHORT;
    let server = TestServer::routes(c);
    let mut client = Client::new(server.connect());
    client.send(b"GET /hello HTTP/1.1\r\nHost: x\r\n");
    assert_serves(&server);
    let reply = client.expect_error(408);
    assert!(reply.text().contains("timeout"), "{reply:?}");
    assert_serves(&server);
}

#[test]
fn partial_head_on_a_kept_alive_connection_gets_408() {
    let mut c = config();
    c.header_timeout = SHORT;
    let server = TestServer::routes(c);
    let mut client = Client::new(server.connect());
    client.send(&get("/hello"));
    assert_eq!(client.response().status, 200);
    client.send(b"GET /hel");
    client.expect_error(408);
}

#[test]
fn head_trickling_in_byte_by_byte_still_gets_408() {
    let mut c = config();
    c.header_timeout = Duration::from_millis(500);
    let server = TestServer::routes(c);
    let mut client = Client::new(server.connect());
    client.send(b"GET /hello HTTP/1.1\r\nHost: x\r\nX-Slow: ");
    // A byte every 50 ms: always progress, never a complete head.
    let stop = Arc::new(AtomicBool::new(false));
    let mut writer = client.stream.try_clone().unwrap();
    let trickle = thread::spawn({
        let stop = Arc::clone(&stop);
        move || {
            let until = Instant::now() + TIMEOUT;
            while !stop.load(Ordering::Relaxed) && Instant::now() < until {
                if writer.write_all(b"a").is_err() {
                    break;
                }
                thread::sleep(Duration::from_millis(50));
            }
        }
    });
    let reply = client.response();
    stop.store(true, Ordering::Relaxed);
    assert_eq!(reply.status, 408, "{reply:?}");
    assert_eq!(reply.header("connection"), Some("close"));
    client.expect_eof();
    trickle.join().unwrap();
}

#[test]
fn silent_new_connection_is_closed_without_a_response() {
    let mut c = config();
    c.header_timeout = SHORT;
    let server = TestServer::routes(c);
    let mut client = Client::new(server.connect());
    // Nothing was asked, so nothing is answered: the connection just closes.
    client.expect_eof();
}

#[test]
fn body_stalling_midway_gets_408() {
    let mut c = config();
    c.body_timeout = SHORT;
    let server = TestServer::routes(c);
    let mut client = Client::new(server.connect());
    client.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789");
    assert_serves(&server);
    client.expect_error(408);
}

#[test]
fn chunked_body_stalling_midway_gets_408() {
    let mut c = config();
    c.body_timeout = SHORT;
    let server = TestServer::routes(c);
    let mut client = Client::new(server.connect());
    client.send(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
          5\r\nhello\r\n10\r\nonly part",
    );
    client.expect_error(408);
}

#[test]
fn body_timeout_limits_pauses_not_the_whole_body() {
    let mut c = config();
    c.body_timeout = Duration::from_millis(1500);
    let server = TestServer::routes(c);
    let mut client = Client::new(server.connect());
    let body: Vec<u8> = (0..25u8).map(|i| b'a' + i).collect();
    client.send(
        format!(
            "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    // 25 pauses of 100 ms: 2.5 s in all, longer than the timeout, but each pause is short.
    for b in &body {
        thread::sleep(Duration::from_millis(100));
        client.send(std::slice::from_ref(b));
    }
    let reply = client.response();
    assert_eq!((reply.status, reply.body), (200, body));
}

#[test]
fn idle_keep_alive_connection_is_closed_quietly() {
    let mut c = config();
    c.idle_timeout = SHORT;
    let server = TestServer::routes(c);
    let mut client = Client::new(server.connect());
    client.send(&get("/hello"));
    assert_eq!(client.response().status, 200);
    // EOF with no bytes: no 408 for a connection that was between requests.
    client.expect_eof();
    assert_serves(&server);
}

#[test]
fn active_keep_alive_connection_outlives_the_idle_timeout() {
    let mut c = config();
    c.idle_timeout = Duration::from_millis(800);
    let server = TestServer::routes(c);
    let mut client = Client::new(server.connect());
    let start = Instant::now();
    let mut n = 0;
    while start.elapsed() < Duration::from_millis(2400) {
        client.send(&get(&format!("/path?n={n}")));
        assert_eq!(client.response().text(), format!("/path?n={n}"));
        n += 1;
        thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn header_timeout_is_counted_per_head() {
    let mut c = config();
    c.header_timeout = Duration::from_millis(800);
    let server = TestServer::routes(c);
    let mut client = Client::new(server.connect());
    // Every write completes the previous head and starts the next one, so the server never
    // sees a read end between requests; yet each head takes only ~100 ms to arrive.
    client.send(b"GET /path?n=0 HTTP/1.1\r\nHo");
    let start = Instant::now();
    let mut n = 0;
    while start.elapsed() < Duration::from_millis(2400) {
        thread::sleep(Duration::from_millis(100));
        client.send(format!("st: x\r\n\r\nGET /path?n={} HTTP/1.1\r\nHo", n + 1).as_bytes());
        let reply = client.response();
        assert_eq!(
            (reply.status, reply.text()),
            (200, format!("/path?n={n}")),
            "request {n}, {:?} after the first byte",
            start.elapsed()
        );
        n += 1;
    }
    client.send(b"st: x\r\n\r\n");
    assert_eq!(client.response().status, 200);
}

#[test]
fn client_that_stops_reading_is_dropped_after_the_write_timeout() {
    let mut c = config();
    c.write_timeout = Duration::from_millis(500);
    let server = TestServer::routes(c);
    let size = 16_000_000;
    let mut client = server.connect();
    client
        .write_all(&get(&format!("/big?size={size}")))
        .unwrap();
    // Read nothing. The kernel buffers hold a few MB at most, so the server is left with
    // unsent output, and after the write timeout it closes its end: its socket leaves
    // ESTABLISHED (FIN_WAIT1 with data queued, or gone).
    let dropped = wait_until(|| {
        server_side(&server, &client).is_none_or(|r| r.state != tcp_state::ESTABLISHED)
    });
    assert!(
        dropped,
        "the server kept a client that reads nothing: {:?}",
        server_side(&server, &client)
    );
    assert_serves(&server);
    // Reading now gets what the kernel held, then an end (EOF, or a reset since the server
    // gave up on the data): never the whole response, and never a hang.
    let mut total = 0usize;
    let mut buf = vec![0u8; 256 * 1024];
    let deadline = Instant::now() + TIMEOUT;
    loop {
        assert!(Instant::now() < deadline, "no end after {total} bytes");
        match client.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => total += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
            Err(e) => panic!("read failed after {total} bytes: {e}"),
        }
    }
    assert!(total < size, "the whole response arrived: {total} bytes");
}

#[test]
fn idle_timeout_applies_after_a_slowly_read_response() {
    let mut c = config();
    c.idle_timeout = SHORT;
    let server = TestServer::routes(c);
    let mut client = Client::new(server.connect());
    let size = 8_000_000;
    client.send(&get(&format!("/big?size={size}")));
    // The response takes longer than the idle timeout to be read.
    thread::sleep(Duration::from_millis(1000));
    let reply = client.response();
    assert_eq!(reply.body.len(), size);
    // Then the connection is idle, and the idle timeout closes it.
    client.expect_eof();
}
