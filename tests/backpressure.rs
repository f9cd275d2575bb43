//! Large responses and backpressure: a slow reader gets every byte, and a client that
//! pipelines more than it reads makes the server pause reading and resume, with every
//! response complete and in order.

mod support;

use std::{
    io::{ErrorKind, Read, Write},
    net::Shutdown,
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use support::{Client, TIMEOUT, TestServer, assert_serves, check_big, config, find, get};

#[test]
fn large_response_to_a_slow_reader_is_delivered_whole() {
    let server = TestServer::routes(config());
    let size = 16 * 1024 * 1024;
    let mut stream = server.connect();
    stream
        .write_all(&get(&format!("/big?size={size}")))
        .unwrap();

    let deadline = Instant::now() + TIMEOUT * 3;
    let mut received: Vec<u8> = Vec::with_capacity(size + 1024);
    let mut buf = vec![0u8; 256 * 1024];
    let mut read_some = |stream: &mut std::net::TcpStream, n: usize, received: &mut Vec<u8>| {
        assert!(
            Instant::now() < deadline,
            "too slow: {} bytes",
            received.len()
        );
        match stream.read(&mut buf[..n]) {
            Ok(0) => panic!("closed after {} bytes", received.len()),
            Ok(got) => received.extend_from_slice(&buf[..got]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => panic!("read failed after {} bytes: {e}", received.len()),
        }
    };
    // Slowly first: small reads with pauses, for about two seconds.
    let slow_until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < slow_until {
        read_some(&mut stream, 4096, &mut received);
        thread::sleep(Duration::from_millis(5));
    }
    // The server keeps serving others meanwhile.
    assert_serves(&server);
    // Then as fast as possible.
    let head_end = loop {
        if let Some(i) = find(&received, b"\r\n\r\n") {
            break i + 4;
        }
        read_some(&mut stream, 256 * 1024, &mut received);
    };
    let head = String::from_utf8_lossy(&received[..head_end]).into_owned();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains(&format!("\r\ncontent-length: {size}\r\n")),
        "{head}"
    );
    while received.len() < head_end + size {
        read_some(&mut stream, 256 * 1024, &mut received);
    }
    assert_eq!(received.len(), head_end + size, "bytes past the body");
    check_big(&received[head_end..], 0);
    // The connection is still usable.
    let mut client = Client::new(stream);
    client.send(&get("/hello"));
    assert_eq!(client.response().text(), "hello\n");
}

#[test]
fn pipelined_large_responses_without_reading_arrive_complete_and_in_order() {
    let server = TestServer::routes(config());
    let mut client = Client::new(server.connect());
    let count = 200;
    let batch: Vec<u8> = (0..count)
        .flat_map(|i| get(&format!("/big?size={}", 100_000 + i)))
        .collect();
    client.send(&batch);
    // Far more output than the server buffers (20 MB): it must pause reading, not drop
    // anything and not grow without bound.
    thread::sleep(Duration::from_millis(500));
    assert_serves(&server);
    for i in 0..count {
        let r = client.response();
        assert_eq!(r.status, 200, "response {i}");
        assert_eq!(
            r.body.len(),
            100_000 + i,
            "response {i} out of order or cut"
        );
        check_big(&r.body, 0);
    }
    client.send(&get("/hello"));
    assert_eq!(client.response().text(), "hello\n");
}

#[test]
fn pipelined_large_responses_then_half_close_are_all_delivered() {
    let server = TestServer::routes(config());
    let mut client = Client::new(server.connect());
    // 10 MB of answers: more than the kernel buffers, so the server pauses with output
    // pending while the FIN sits in its socket.
    let count = 200;
    let batch: Vec<u8> = (0..count)
        .flat_map(|i| get(&format!("/big?size={}", 50_000 + i)))
        .collect();
    client.send(&batch);
    client.stream.shutdown(Shutdown::Write).unwrap();
    thread::sleep(Duration::from_millis(300));
    for i in 0..count {
        let r = client.response();
        assert_eq!(
            r.body.len(),
            50_000 + i,
            "response {i}: {:?} {:?}",
            r.status_line,
            r.headers
        );
        check_big(&r.body, 0);
    }
    client.expect_eof();
}

#[test]
fn more_requests_than_one_read_while_output_is_paused() {
    let server = TestServer::routes(config());
    let client = server.connect();
    // 200 KB of requests (more than the server reads at once) for 20 MB of answers: the
    // server pauses with request bytes still waiting in its socket.
    let count = 200;
    let pad = "p".repeat(1000);
    let batch: Vec<u8> = (0..count)
        .flat_map(|i| {
            format!(
                "GET /big?size={} HTTP/1.1\r\nHost: x\r\nX-Pad: {pad}\r\n\r\n",
                100_000 + i
            )
            .into_bytes()
        })
        .collect();
    let mut writer = client.try_clone().unwrap();
    let send = thread::spawn(move || writer.write_all(&batch));
    thread::sleep(Duration::from_millis(500));
    let mut client = Client::new(client);
    for i in 0..count {
        let r = client.response();
        assert_eq!((r.status, r.body.len()), (200, 100_000 + i), "response {i}");
        check_big(&r.body, 0);
    }
    send.join().unwrap().expect("every request was written");
}

#[test]
fn a_flood_of_requests_is_throttled_and_fully_answered() {
    let server = TestServer::routes(config());
    let client = server.connect();
    // Some 6 MB of requests: more than the socket buffers hold while the server is paused,
    // so the writer blocks until the reader catches up.
    let count = 5000;
    let pad = "p".repeat(1000);
    let mut writer = client.try_clone().unwrap();
    let (done_tx, done_rx) = mpsc::channel();
    let flood = thread::spawn(move || {
        let mut result = Ok(());
        for i in 0..count {
            let target = if i % 2 == 0 {
                format!("/path?i={i}")
            } else {
                format!("/big?size={}", 1000 + i)
            };
            let req = format!("GET {target} HTTP/1.1\r\nHost: x\r\nX-Pad: {pad}\r\n\r\n");
            if let Err(e) = writer.write_all(req.as_bytes()) {
                result = Err(e);
                break;
            }
        }
        let _ = done_tx.send(result);
    });
    // Let the flood back up before reading anything.
    thread::sleep(Duration::from_secs(1));
    let mut client = Client::new(client);
    for i in 0..count {
        let r = client.response();
        assert_eq!(r.status, 200, "response {i}");
        if i % 2 == 0 {
            assert_eq!(r.text(), format!("/path?i={i}"));
        } else {
            assert_eq!(r.body.len(), 1000 + i, "response {i}");
            check_big(&r.body, 0);
        }
    }
    let written = done_rx.recv_timeout(TIMEOUT).expect("the writer finished");
    written.expect("every request was written");
    flood.join().unwrap();
}

#[test]
fn paused_pipelined_requests_are_not_timed_out_as_slow_heads() {
    let mut c = config();
    c.header_timeout = Duration::from_millis(500);
    let server = TestServer::routes(c);
    let mut client = Client::new(server.connect());
    // Complete requests, all sent at once: only the server's own pause keeps them waiting.
    let count = 100;
    let batch: Vec<u8> = (0..count)
        .flat_map(|i| get(&format!("/big?size={}", 100_000 + i)))
        .collect();
    client.send(&batch);
    thread::sleep(Duration::from_millis(1500));
    for i in 0..count {
        let r = client.response();
        assert_eq!((r.status, r.body.len()), (200, 100_000 + i), "response {i}");
    }
}

#[test]
fn a_steady_slow_reader_outlasts_the_write_timeout() {
    let mut c = config();
    c.write_timeout = Duration::from_millis(500);
    let server = TestServer::routes(c);
    let size = 6_000_000;
    let mut stream = server.connect();
    stream
        .write_all(&get(&format!("/big?size={size}")))
        .unwrap();
    // Never more than a few milliseconds without reading, yet slow: 16 KB every 10 ms.
    let deadline = Instant::now() + TIMEOUT * 2;
    let mut received = Vec::with_capacity(size + 1024);
    let mut buf = vec![0u8; 16 * 1024];
    let body_start = loop {
        assert!(Instant::now() < deadline, "too slow");
        match stream.read(&mut buf) {
            Ok(0) => panic!("closed after {} bytes", received.len()),
            Ok(n) => received.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => panic!("read failed after {} bytes: {e}", received.len()),
        }
        if let Some(head_end) = find(&received, b"\r\n\r\n")
            && received.len() >= head_end + 4 + size
        {
            break head_end + 4;
        }
        thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(received.len(), body_start + size);
    check_big(&received[body_start..], 0);
}
