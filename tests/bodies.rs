//! Request bodies cannot pin the server: in bytes, every buffered body takes from one budget
//! for the whole server as its bytes arrive (503 for a piece that does not fit, and for the
//! slowest bodies once the budget is crowded); in time, a body must keep a minimum rate and end
//! by a deadline (408), however it is paced.

mod support;

use std::{
    io::Write,
    thread,
    time::{Duration, Instant},
};

use support::{Client, TIMEOUT, TestServer, assert_serves, config, wait_until};

/// A head declaring a body of `len` bytes, with `Expect: 100-continue` if `expect`.
fn post_head(len: usize, expect: bool) -> Vec<u8> {
    let expect = if expect {
        "Expect: 100-continue\r\n"
    } else {
        ""
    };
    format!("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {len}\r\n{expect}\r\n").into_bytes()
}

/// A server with a 100,000-byte body budget, and a client holding 80,000 of it with a body it
/// has begun (70,000 of 80,000 bytes sent: taken in steps of 16 KiB, up to the declared
/// length) and not finished.
fn budget_mostly_held() -> (TestServer, Client) {
    let mut c = config();
    c.body_budget = 100_000;
    let server = TestServer::routes(c);
    let mut holder = Client::new(server.connect());
    holder.send(&post_head(80_000, false));
    holder.send(&[b'a'; 70_000]);
    assert!(wait_until(|| server.stats().body_bytes == 80_000));
    (server, holder)
}

#[test]
fn a_body_that_does_not_fit_the_budget_gets_503_and_no_100_continue() {
    // One client holds most of the budget with a body it has not finished.
    let (server, mut holder) = budget_mostly_held();

    // Another asks to send 50,000 bytes: refused at once, without a 100 Continue.
    let mut refused = Client::new(server.connect());
    refused.send(&post_head(50_000, true));
    let reply = refused.response();
    assert_eq!(reply.status, 503, "{reply:?}");
    assert_eq!(reply.header("rtserve-shed"), Some("body-budget"));
    assert!(reply.closes(), "{reply:?}");
    refused.expect_eof();
    // A third sends its 50,000 bytes without asking, in pieces that must be gathered:
    // refused when they come.
    let mut unasked = Client::new(server.connect());
    unasked.send(&[post_head(50_000, false), vec![b'u'; 30_000]].concat());
    thread::sleep(Duration::from_millis(50));
    let _ = unasked.stream.write_all(&[b'u'; 20_000]);
    let reply = unasked.response();
    assert_eq!(reply.status, 503, "{reply:?}");
    assert_eq!(reply.header("rtserve-shed"), Some("body-budget"));
    assert_eq!(server.stats().body_refusals, 2);
    // Bodies that arrive with their heads take nothing from the budget.
    assert_serves(&server);
    let mut small = Client::new(server.connect());
    small.send(&[post_head(5, false), b"hello".to_vec()].concat());
    assert_eq!(small.response().body, b"hello");

    // The holder finishes: served, and the budget is free again.
    holder.send(&[b'a'; 10_000]);
    let reply = holder.response();
    assert_eq!((reply.status, reply.body.len()), (200, 80_000));
    assert_eq!(server.stats().body_bytes, 0);
    let mut again = Client::new(server.connect());
    again.send(&post_head(50_000, true));
    assert_eq!(again.response().status, 100);
    again.send(&[b'b'; 50_000]);
    let reply = again.response();
    assert_eq!((reply.status, reply.body.len()), (200, 50_000));
}

#[test]
fn clients_that_declare_bodies_and_send_nothing_hold_nothing() {
    let mut c = config();
    c.body_budget = 100_000;
    let server = TestServer::routes(c);
    // Each declares most of the budget, some asking for 100 Continue; none sends a byte.
    let mut idle = Vec::new();
    for i in 0..20 {
        let mut client = Client::new(server.connect());
        client.send(&post_head(80_000, i % 2 == 0));
        if i % 2 == 0 {
            assert_eq!(client.response().status, 100);
        }
        idle.push(client);
    }
    assert_serves(&server);
    assert_eq!(server.stats().body_bytes, 0);
    // An upload at an ordinary speed still finds room.
    let body: Vec<u8> = (0..80_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let mut upload = Client::new(server.connect());
    upload.send(&post_head(body.len(), true));
    assert_eq!(upload.response().status, 100);
    upload.send(&body);
    let reply = upload.response();
    assert_eq!((reply.status, reply.body), (200, body));
    assert_eq!(server.stats().body_refusals, 0);
    drop(idle);
}

#[test]
fn once_the_budget_is_crowded_the_slowest_body_is_refused_first() {
    let mut c = config();
    c.body_budget = 100_000;
    // A rate the trickle below keeps with a wide margin, even on a busy machine: what cuts it
    // off must be the crowding.
    c.body_min_rate = 100;
    c.body_rate_window = Duration::from_millis(300);
    let server = TestServer::routes(c);
    // Most of a body at once, then 100 bytes every 50 ms: above the minimum rate, but at that
    // rate the rest would hold its share of a crowded budget for seconds.
    let mut slow = Client::new(server.connect());
    slow.send(&post_head(90_000, false));
    slow.send(&[b's'; 60_000]);
    let mut writer = slow.stream.try_clone().unwrap();
    let trickle = thread::spawn(move || {
        let until = Instant::now() + TIMEOUT;
        while Instant::now() < until && writer.write_all(&[b's'; 100]).is_ok() {
            thread::sleep(Duration::from_millis(50));
        }
    });
    let reply = slow.response();
    assert_eq!(reply.status, 503, "{reply:?}");
    assert_eq!(reply.header("rtserve-shed"), Some("body-budget"));
    assert!(reply.closes(), "{reply:?}");
    drop(slow);
    trickle.join().unwrap();
    assert!(wait_until(|| server.stats().body_bytes == 0));
    // The room it held serves an ordinary upload.
    let mut upload = Client::new(server.connect());
    upload.send(&post_head(50_000, false));
    upload.send(&[b'f'; 50_000]);
    assert_eq!(upload.response().status, 200);
    assert_eq!(
        server.stats().slow_bodies,
        0,
        "refused for room, not as too slow"
    );
}

#[test]
fn a_chunked_body_that_outgrows_the_budget_gets_503() {
    let mut c = config();
    c.body_budget = 10_000;
    let server = TestServer::routes(c);
    let mut client = Client::new(server.connect());
    client.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
    let chunk = [b"1000\r\n".as_slice(), &[b'c'; 0x1000], b"\r\n"].concat();
    // Pieces of 4 KiB in separate writes, so that the body is gathered: past 10,000 bytes by
    // the third. Writes after the refusal go to a connection that no longer reads them.
    for _ in 0..4 {
        let _ = client.stream.write_all(&chunk);
        thread::sleep(Duration::from_millis(50));
    }
    let reply = client.response();
    assert_eq!(reply.status, 503, "{reply:?}");
    assert_eq!(reply.header("rtserve-shed"), Some("body-budget"));
    assert!(wait_until(|| server.stats().body_bytes == 0));
    assert_serves(&server);
}

#[test]
fn a_connection_dropped_midway_gives_its_reservation_back() {
    let (server, holder) = budget_mostly_held();
    drop(holder);
    assert!(wait_until(|| server.stats().body_bytes == 0));
    let mut next = Client::new(server.connect());
    next.send(&post_head(80_000, false));
    next.send(&[b'z'; 80_000]);
    assert_eq!(next.response().status, 200);
}

#[test]
fn a_body_sent_at_once_then_a_byte_at_a_time_gets_408_at_the_minimum_rate() {
    let mut c = config();
    c.body_min_rate = 1000;
    c.body_rate_window = Duration::from_millis(300);
    // Pauses alone would not catch it.
    c.body_timeout = TIMEOUT;
    let server = TestServer::routes(c);
    let mut client = Client::new(server.connect());
    client.send(&post_head(100_000, false));
    client.send(&[b'a'; 90_000]);
    let mut writer = client.stream.try_clone().unwrap();
    let trickle = thread::spawn(move || {
        let until = Instant::now() + TIMEOUT;
        // A byte every 50 ms (20 bytes per second) until the server closes.
        while Instant::now() < until && writer.write_all(b"a").is_ok() {
            thread::sleep(Duration::from_millis(50));
        }
    });
    let reply = client.response();
    assert_eq!(reply.status, 408, "{reply:?}");
    assert!(reply.text().contains("minimum rate"), "{reply:?}");
    assert!(reply.closes());
    assert_eq!(server.stats().slow_bodies, 1);
    drop(client);
    trickle.join().unwrap();
    assert!(wait_until(|| server.stats().body_bytes == 0));
    assert_serves(&server);
}

#[test]
fn a_body_over_its_deadline_gets_408_however_steady() {
    let mut c = config();
    c.body_min_rate = 0;
    c.body_deadline = Duration::from_millis(500);
    let server = TestServer::routes(c);
    let mut client = Client::new(server.connect());
    client.send(&post_head(100, false));
    let mut writer = client.stream.try_clone().unwrap();
    let trickle = thread::spawn(move || {
        for _ in 0..100 {
            if writer.write_all(b"a").is_err() {
                break;
            }
            thread::sleep(Duration::from_millis(50));
        }
    });
    let reply = client.response();
    assert_eq!(reply.status, 408, "{reply:?}");
    assert!(reply.text().contains("longer than allowed"), "{reply:?}");
    drop(client);
    trickle.join().unwrap();
}

#[test]
fn a_body_above_the_minimum_rate_is_served_however_long_it_takes() {
    let mut c = config();
    c.body_min_rate = 100;
    c.body_rate_window = Duration::from_millis(500);
    let server = TestServer::routes(c);
    let mut client = Client::new(server.connect());
    // 400 bytes every 50 ms for about 1.5 s: several windows, each needing 50 bytes, so one
    // piece in 500 ms passes (a margin for a busy machine's late sleeps).
    let body: Vec<u8> = (0..12_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    client.send(&post_head(body.len(), false));
    for piece in body.chunks(400) {
        client.send(piece);
        thread::sleep(Duration::from_millis(50));
    }
    let reply = client.response();
    assert_eq!((reply.status, reply.body), (200, body));
    assert_eq!(server.stats().slow_bodies, 0);
}
