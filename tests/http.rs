//! HTTP/1.1 behaviour over real loopback sockets: keep-alive, pipelining, request bodies,
//! `Expect: 100-continue`, HEAD, routing statuses, half-closing clients and handler panics.

mod support;

use std::{
    net::Shutdown,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    thread,
    time::Duration,
};

use rtserve_reactor::{Method, Reply, Request, Response, Router, StatusCode};

use support::{
    Client, TestServer, assert_serves, block_reactor, config, get, post_echo, request,
    wait_until_read,
};

// Keep-alive.

#[test]
fn http11_is_persistent_by_default() {
    let server = TestServer::routes(config());
    let mut client = Client::new(server.connect());
    for i in 0..5 {
        client.send(&get(&format!("/path?n={i}")));
        let r = client.response();
        assert_eq!(r.status, 200);
        assert_eq!(r.text(), format!("/path?n={i}"));
        assert_ne!(
            r.header("connection")
                .map(str::to_ascii_lowercase)
                .as_deref(),
            Some("close"),
            "{r:?}"
        );
        assert!(
            r.header("date").is_some_and(|d| d.ends_with(" GMT")),
            "{r:?}"
        );
    }
}

#[test]
fn connection_close_is_answered_then_closed() {
    let server = TestServer::routes(config());
    let mut client = Client::new(server.connect());
    client.send(b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let r = client.response();
    assert_eq!((r.status, r.text().as_str()), (200, "hello\n"));
    assert_eq!(r.header("connection"), Some("close"));
    client.expect_eof();
}

#[test]
fn a_one_shot_request_read_in_full_frees_its_connection_without_lingering() {
    let mut c = config();
    // Lingering would hold the connection for the whole wait below.
    c.linger_timeout = Duration::from_secs(60);
    let server = TestServer::routes(c);
    let mut client = Client::new(server.connect());
    client.send(b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(client.response().status, 200);
    // The client has not closed its side, and the server's slot is free all the same.
    assert!(support::wait_until(|| server
        .stats()
        .open_connections
        .iter()
        .all(|&n| n == 0)));
    client.expect_eof();
}

#[test]
fn requests_pipelined_after_connection_close_are_not_answered() {
    let server = TestServer::routes(config());
    let mut client = Client::new(server.connect());
    let mut batch = b"GET /path?first HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec();
    batch.extend_from_slice(&get("/path?second"));
    client.send(&batch);
    let r = client.response();
    assert_eq!(r.text(), "/path?first");
    assert_eq!(r.header("connection"), Some("close"));
    client.expect_eof();
}

#[test]
fn http10_closes_by_default() {
    let server = TestServer::routes(config());
    let mut client = Client::new(server.connect());
    client.send(b"GET /hello HTTP/1.0\r\n\r\n");
    let r = client.response();
    assert_eq!((r.status, r.text().as_str()), (200, "hello\n"));
    assert_eq!(r.header("content-length"), Some("6"));
    assert_eq!(
        r.header("connection")
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("close")
    );
    client.expect_eof();
}

#[test]
fn http10_keep_alive_persists() {
    let server = TestServer::routes(config());
    let mut client = Client::new(server.connect());
    for _ in 0..3 {
        client.send(b"GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        let r = client.response();
        assert_eq!((r.status, r.text().as_str()), (200, "hello\n"));
        assert_eq!(
            r.header("connection")
                .map(str::to_ascii_lowercase)
                .as_deref(),
            Some("keep-alive"),
            "{r:?}"
        );
    }
    // A last HTTP/1.0 request without keep-alive ends it.
    client.send(b"GET /hello HTTP/1.0\r\n\r\n");
    assert_eq!(client.response().status, 200);
    client.expect_eof();
}

// Pipelining.

#[test]
fn ten_pipelined_requests_in_one_write() {
    let server = TestServer::routes(config());
    let mut client = Client::new(server.connect());
    let batch: Vec<u8> = (0..10).flat_map(|i| get(&format!("/path?i={i}"))).collect();
    client.send(&batch);
    for i in 0..10 {
        let r = client.response();
        assert_eq!((r.status, r.text()), (200, format!("/path?i={i}")));
    }
    // The connection is still good.
    client.send(&get("/hello"));
    assert_eq!(client.response().text(), "hello\n");
}

#[test]
fn many_pipelined_requests_over_the_per_turn_budget() {
    let server = TestServer::routes(config());
    let mut client = Client::new(server.connect());
    let batch: Vec<u8> = (0..500)
        .flat_map(|i| get(&format!("/path?i={i}")))
        .collect();
    client.send(&batch);
    for i in 0..500 {
        assert_eq!(client.response().text(), format!("/path?i={i}"));
    }
}

#[test]
fn pipelining_with_a_budget_of_one_request_per_turn() {
    let mut c = config();
    c.requests_per_turn = 1;
    let server = TestServer::routes(c);
    let mut client = Client::new(server.connect());
    let batch: Vec<u8> = (0..20).flat_map(|i| get(&format!("/path?i={i}"))).collect();
    client.send(&batch);
    for i in 0..20 {
        assert_eq!(client.response().text(), format!("/path?i={i}"));
    }
}

/// A mix of methods and framings, all in one write, answered in order.
fn mixed_batch() -> (Vec<u8>, Vec<(u16, &'static [u8])>) {
    let mut batch = Vec::new();
    let mut expected: Vec<(u16, &'static [u8])> = Vec::new();
    batch.extend_from_slice(&get("/hello"));
    expected.push((200, b"hello\n"));
    batch.extend_from_slice(&post_echo(b"first body"));
    expected.push((200, b"first body"));
    batch.extend_from_slice(
        b"PUT /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
          3\r\nabc\r\n4;x=y\r\ndefg\r\n0\r\n\r\n",
    );
    expected.push((200, b"abcdefg"));
    batch.extend_from_slice(&get("/nowhere"));
    expected.push((404, b"not found\n"));
    batch.extend_from_slice(&post_echo(b""));
    expected.push((200, b""));
    batch.extend_from_slice(&get("/path?last"));
    expected.push((200, b"/path?last"));
    (batch, expected)
}

#[test]
fn mixed_methods_and_bodies_pipelined() {
    let server = TestServer::routes(config());
    let (batch, expected) = mixed_batch();
    let mut client = Client::new(server.connect());
    client.send(&batch);
    for (status, body) in expected {
        let r = client.response();
        assert_eq!((r.status, r.body.as_slice()), (status, body), "{r:?}");
    }
}

#[test]
fn pipelined_batch_split_at_every_point() {
    let server = TestServer::routes(config());
    let (batch, expected) = mixed_batch();
    // Every split point of the batch, on a fresh connection each, with a pause between the
    // halves so that the server reads them separately (mostly; either way must work).
    for split in 1..batch.len() {
        let mut client = Client::new(server.connect());
        client.send(&batch[..split]);
        thread::sleep(Duration::from_millis(1));
        client.send(&batch[split..]);
        for &(status, body) in &expected {
            let r = client.response();
            assert_eq!(
                (r.status, r.body.as_slice()),
                (status, body),
                "split at {split}: {r:?}"
            );
        }
    }
}

#[test]
fn request_arriving_one_byte_at_a_time() {
    let server = TestServer::routes(config());
    let mut client = Client::new(server.connect());
    let mut bytes = get("/path?slow");
    bytes.extend_from_slice(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
          5;ext\r\nhello\r\n0\r\nT: 1\r\n\r\n",
    );
    for b in &bytes {
        client.send(std::slice::from_ref(b));
        thread::sleep(Duration::from_millis(2));
    }
    let r = client.response();
    assert_eq!((r.status, r.text().as_str()), (200, "/path?slow"));
    let r = client.response();
    assert_eq!((r.status, r.text().as_str()), (200, "hello"));
}

// Request bodies.

#[test]
fn content_length_body_is_echoed() {
    let server = TestServer::routes(config());
    let r = request(&server, &post_echo(b"hello, body"));
    assert_eq!((r.status, r.text().as_str()), (200, "hello, body"));
    assert_eq!(r.header("content-length"), Some("11"));
}

#[test]
fn chunked_body_with_extensions_and_trailers_is_echoed() {
    let server = TestServer::routes(config());
    let r = request(
        &server,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
          5;name=value\r\nhello\r\n\
          1;a;b=\"quoted;str\"\r\n \r\n\
          A\r\n0123456789\r\n\
          0;last\r\nTrailer-One: 1\r\nTrailer-Two: two\r\n\r\n",
    );
    assert_eq!((r.status, r.text().as_str()), (200, "hello 0123456789"));
}

#[test]
fn body_split_over_many_writes() {
    let server = TestServer::routes(config());
    let body: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let mut client = Client::new(server.connect());
    client.send(
        format!(
            "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    for (i, piece) in body.chunks(997).enumerate() {
        client.send(piece);
        if i % 20 == 0 {
            thread::sleep(Duration::from_millis(1));
        }
    }
    let r = client.response();
    assert_eq!(r.status, 200);
    assert!(r.body == body, "echoed body differs");
    // And a chunked one, in many writes, on the same connection.
    client.send(b"PUT /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
    for (i, piece) in body.chunks(4099).enumerate() {
        let mut chunk = format!("{:x}\r\n", piece.len()).into_bytes();
        chunk.extend_from_slice(piece);
        chunk.extend_from_slice(b"\r\n");
        // Split each chunk in three writes: size line, data, CRLF boundaries all move.
        let (a, rest) = chunk.split_at(2);
        let (b, c) = rest.split_at(rest.len() / 2);
        for part in [a, b, c] {
            client.send(part);
        }
        if i % 5 == 0 {
            thread::sleep(Duration::from_millis(1));
        }
    }
    client.send(b"0\r\n\r\n");
    let r = client.response();
    assert_eq!(r.status, 200);
    assert!(r.body == body, "echoed chunked body differs");
}

#[test]
fn body_of_exactly_the_limit_is_accepted() {
    let mut c = config();
    c.limits.max_body = 100_000;
    let server = TestServer::routes(c);
    let body = vec![b'z'; 100_000];
    let r = request(&server, &post_echo(&body));
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), body.len());
}

#[test]
fn expect_100_continue_gets_continue_before_the_body() {
    let server = TestServer::routes(config());
    let mut client = Client::new(server.connect());
    client.send(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
    );
    // Nothing of the body is sent until the interim response arrives.
    let interim = client.response();
    assert_eq!(interim.status_line, "HTTP/1.1 100 Continue");
    assert!(client.buffered().is_empty(), "nothing may follow 100 yet");
    client.send(b"hello");
    let r = client.response();
    assert_eq!((r.status, r.text().as_str()), (200, "hello"));
    // Keep-alive still works after it.
    client.send(&get("/hello"));
    assert_eq!(client.response().text(), "hello\n");
}

#[test]
fn expect_100_continue_with_chunked_body() {
    let server = TestServer::routes(config());
    let mut client = Client::new(server.connect());
    client.send(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\
          Expect: 100-continue\r\n\r\n",
    );
    assert_eq!(client.response().status_line, "HTTP/1.1 100 Continue");
    client.send(b"3\r\nabc\r\n0\r\n\r\n");
    let r = client.response();
    assert_eq!((r.status, r.text().as_str()), (200, "abc"));
}

#[test]
fn expect_100_continue_over_the_body_limit_gets_413_without_continue() {
    let mut c = config();
    c.limits.max_body = 1000;
    let server = TestServer::routes(c);
    let mut client = Client::new(server.connect());
    client.send(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1001\r\n\
          Expect: 100-continue\r\n\r\n",
    );
    // The final status, not 100: the client must not send the body at all.
    client.expect_error(413);
}

// HEAD, 404, 405.

#[test]
fn head_is_served_by_get_routes_without_a_body() {
    let server = TestServer::routes(config());
    let mut client = Client::new(server.connect());
    // HEAD and GET pipelined: any stray body byte after the HEAD response would be read as
    // the start of the next response and break its status line.
    let mut batch = b"HEAD /big?size=1000 HTTP/1.1\r\nHost: x\r\n\r\n".to_vec();
    batch.extend_from_slice(b"HEAD /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    batch.extend_from_slice(&get("/hello"));
    client.send(&batch);
    let r = client.read_response(true);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("1000"));
    let r = client.read_response(true);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("6"));
    assert!(
        r.header("content-type")
            .is_some_and(|t| t.starts_with("text/plain")),
        "{r:?}"
    );
    let r = client.response();
    assert_eq!(r.status_line, "HTTP/1.1 200 OK");
    assert_eq!(r.text(), "hello\n");
    assert!(
        client.buffered().is_empty(),
        "stray bytes: {:?}",
        client.buffered()
    );
}

#[test]
fn absolute_form_target_is_routed_by_its_path() {
    let server = TestServer::routes(config());
    let r = request(
        &server,
        b"GET http://example.com/path?q=1 HTTP/1.1\r\nHost: example.com\r\n\r\n",
    );
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "http://example.com/path?q=1")
    );
}

fn param_routes() -> TestServer {
    let show = |name: &'static str| {
        move |req: &Request<'_>| -> Reply {
            let value = req.param(name).unwrap_or_default();
            Response::text(StatusCode::OK, format!("{name}={value}")).into()
        }
    };
    let router = Router::new()
        .get("/accounts/{id}/score", show("id"))
        .get("/accounts/me/score", |_: &Request<'_>| -> Reply {
            Response::text(StatusCode::OK, "mine").into()
        })
        .get("/static/{*path}", show("path"));
    TestServer::start(config(), router)
}

#[test]
fn routes_with_parameters_and_catch_alls() {
    let server = param_routes();
    let mut client = Client::new(server.connect());
    for (target, body) in [
        ("/accounts/42/score", "id=42"),
        ("/accounts/a%20b/score", "id=a b"),
        ("/accounts/a%2Fb/score", "id=a/b"),
        ("/accounts/me/score", "mine"),
        ("/static/css/site.css", "path=css/site.css"),
    ] {
        client.send(&get(target));
        let reply = client.response();
        assert_eq!(
            (reply.status, reply.text().as_str()),
            (200, body),
            "{target}"
        );
    }
    // A catch-all needs at least one character; a parameter, a whole segment.
    for target in [
        "/static/",
        "/accounts//score",
        "/accounts/42",
        "/accounts/42/score/x",
    ] {
        client.send(&get(target));
        assert_eq!(client.response().status, 404, "{target}");
    }
    // Statistics name the pattern, never the concrete path.
    let stats = server.stats();
    let route = |name: &str| {
        stats
            .routes
            .iter()
            .find(|r| r.name == name)
            .map(|r| r.requests())
    };
    assert_eq!(route("/accounts/{id}/score"), Some(3));
    assert_eq!(route("/static/{*path}"), Some(1));
    assert!(stats.routes.iter().all(|r| !r.name.contains("42")));
}

#[test]
fn parameters_that_are_not_utf8_once_decoded_are_400_and_reach_no_handler() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let router = Router::new().get("/accounts/{id}", move |req: &Request<'_>| -> Reply {
        counted.fetch_add(1, Ordering::Relaxed);
        let id = req.param("id").unwrap_or_default();
        Response::text(StatusCode::OK, format!("id={id}")).into()
    });
    let server = TestServer::start(config(), router);
    let mut client = Client::new(server.connect());
    // Two ids that differ only in bytes that are not UTF-8: both were U+FFFD to the handler,
    // so one account's answer could be had for the other. Now neither reaches it, and the
    // connection goes on.
    for (target, reason) in [
        ("/accounts/a%FF", "path parameter `id`"),
        ("/accounts/a%FE", "path parameter `id`"),
        ("/accounts/a?next=%C3", "query"),
    ] {
        client.send(&get(target));
        let reply = client.response();
        assert_eq!(
            (reply.status, reply.text()),
            (
                400,
                format!("bad request: {reason} is not UTF-8 once percent-decoded\n")
            ),
            "{target}"
        );
        assert!(!reply.closes(), "{target}");
    }
    assert_eq!(calls.load(Ordering::Relaxed), 0, "no handler ran");
    client.send(&get("/accounts/caf%C3%A9"));
    let reply = client.response();
    assert_eq!((reply.status, reply.text().as_str()), (200, "id=caf\u{e9}"));
    assert_eq!(calls.load(Ordering::Relaxed), 1);
}

#[test]
fn conflicting_routes_are_refused_when_the_router_is_built() {
    let ok = |_: &Request<'_>| -> Reply { Response::new(StatusCode::OK).into() };
    let router = Router::new().get("/a/{x}", ok);
    let err = router.try_route(Method::Get, "/a/{y}", ok).unwrap_err();
    assert!(err.to_string().contains("/a/{y}"), "{err}");
    let panicked = std::panic::catch_unwind(|| Router::new().get("/a/{x}", ok).get("/a/{y}", ok));
    assert!(panicked.is_err());
}

#[test]
fn unknown_path_is_404_and_keeps_the_connection() {
    let server = TestServer::routes(config());
    let mut client = Client::new(server.connect());
    client.send(&get("/no/such/path"));
    let r = client.response();
    assert_eq!(r.status, 404);
    client.send(&get("/hello"));
    assert_eq!(client.response().status, 200);
}

#[test]
fn wrong_method_is_405_with_allow() {
    let server = TestServer::routes(config());
    let mut client = Client::new(server.connect());
    let allowed = |r: &support::Reply1| -> Vec<String> {
        let mut v: Vec<String> = r
            .header("allow")
            .unwrap_or_else(|| panic!("405 without Allow: {r:?}"))
            .split(',')
            .map(|m| m.trim().to_owned())
            .collect();
        v.sort();
        v
    };
    client.send(b"DELETE /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    let r = client.response();
    assert_eq!(r.status, 405);
    assert_eq!(allowed(&r), ["GET", "HEAD", "OPTIONS"]);
    client.send(b"POST /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx");
    let r = client.response();
    assert_eq!(r.status, 405);
    assert_eq!(allowed(&r), ["GET", "HEAD", "OPTIONS"]);
    client.send(&get("/echo"));
    let r = client.response();
    assert_eq!(r.status, 405);
    assert_eq!(allowed(&r), ["OPTIONS", "POST", "PUT"]);
    // Still keep-alive.
    client.send(&get("/hello"));
    assert_eq!(client.response().status, 200);
}

// Half-closing clients.

/// Runs `send` on a new connection while the server's only reactor is busy, so that the
/// reactor finds everything it sent (data and FIN alike) already waiting when it first looks
/// at the connection. Returns the client, ready to read.
fn send_while_reactor_busy(server: &TestServer, send: impl FnOnce(&mut Client)) -> Client {
    let mut blocker = Client::new(server.connect());
    block_reactor(&mut blocker, 300);
    // Give the reactor time to enter the handler; if it has not, the test is merely weaker.
    thread::sleep(Duration::from_millis(50));
    let mut client = Client::new(server.connect());
    send(&mut client);
    assert_eq!(blocker.response().text(), "slept\n");
    client
}

fn one_reactor() -> TestServer {
    let mut c = config();
    c.reactors = 1;
    TestServer::routes(c)
}

#[test]
fn half_closed_client_still_gets_its_answers() {
    let server = one_reactor();
    let mut client = Client::new(server.connect());
    let batch: Vec<u8> = (0..10).flat_map(|i| get(&format!("/path?i={i}"))).collect();
    client.send(&batch);
    wait_until_read(&server, &client.stream);
    client.stream.shutdown(Shutdown::Write).unwrap();
    for i in 0..10 {
        assert_eq!(client.response().text(), format!("/path?i={i}"));
    }
    client.expect_eof();
}

#[test]
fn requests_and_fin_arriving_together_are_answered_then_closed() {
    let server = one_reactor();
    let mut client = send_while_reactor_busy(&server, |client| {
        let batch: Vec<u8> = (0..10).flat_map(|i| get(&format!("/path?i={i}"))).collect();
        client.send(&batch);
        client.stream.shutdown(Shutdown::Write).unwrap();
    });
    for i in 0..10 {
        assert_eq!(client.response().text(), format!("/path?i={i}"));
    }
    client.expect_eof();
}

#[test]
fn half_close_in_the_middle_of_a_request_is_400() {
    let server = one_reactor();
    let mut client = Client::new(server.connect());
    client.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc");
    wait_until_read(&server, &client.stream);
    client.stream.shutdown(Shutdown::Write).unwrap();
    client.expect_error(400);
}

#[test]
fn partial_request_and_fin_arriving_together_is_400() {
    let server = one_reactor();
    let mut client = send_while_reactor_busy(&server, |client| {
        client.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc");
        client.stream.shutdown(Shutdown::Write).unwrap();
    });
    client.expect_error(400);
}

#[test]
fn half_close_between_requests_closes_quietly() {
    let server = TestServer::routes(config());
    let mut client = Client::new(server.connect());
    client.send(&get("/hello"));
    assert_eq!(client.response().status, 200);
    client.stream.shutdown(Shutdown::Write).unwrap();
    client.expect_eof();
}

// Handler panics.

#[test]
fn handler_panic_is_500_and_the_connection_goes_on() {
    let server = TestServer::routes(config());
    let mut other = Client::new(server.connect());
    other.send(&get("/hello"));
    assert_eq!(other.response().status, 200);

    let mut client = Client::new(server.connect());
    client.send(&get("/panic"));
    let r = client.response();
    assert_eq!(r.status, 500);
    client.send(&get("/hello"));
    assert_eq!(client.response().text(), "hello\n");
    // Pipelined around a panic: only the panicking request fails.
    let mut batch = get("/path?a");
    batch.extend_from_slice(&get("/panic"));
    batch.extend_from_slice(&get("/path?b"));
    client.send(&batch);
    assert_eq!(client.response().text(), "/path?a");
    assert_eq!(client.response().status, 500);
    assert_eq!(client.response().text(), "/path?b");

    other.send(&get("/hello"));
    assert_eq!(other.response().status, 200);
    assert_serves(&server);
}
