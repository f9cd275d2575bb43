//! Bad and oversized requests: each is answered with its status and `Connection: close`, the
//! whole answer arrives and then a clean close (EOF, never a reset), even when the client
//! keeps sending after its bad request; other clients are not affected.

mod support;

use std::{thread, time::Duration};

use support::{Client, TestServer, assert_serves, config, get, post_echo};

/// 200 KB of bytes a client sends after its bad request, which the server must drain (not
/// reset) after answering.
const JUNK: usize = 200 * 1024;

/// Requests the server must refuse, with the status it must answer.
fn bad_requests() -> Vec<(&'static str, Vec<u8>, u16)> {
    let mut cases: Vec<(&'static str, Vec<u8>, u16)> = vec![
        // 400: malformed.
        (
            "no space after method",
            b"GET/hello HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            400,
        ),
        (
            "garbage request line",
            b"\x01\x02\x03 nonsense\r\n\r\n".to_vec(),
            400,
        ),
        (
            "header without colon",
            b"GET /hello HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n".to_vec(),
            400,
        ),
        (
            "space before colon",
            b"GET /hello HTTP/1.1\r\nHost : x\r\n\r\n".to_vec(),
            400,
        ),
        (
            "obs-fold",
            b"GET /hello HTTP/1.1\r\nHost: x\r\nA: b\r\n  c\r\n\r\n".to_vec(),
            400,
        ),
        ("missing Host", b"GET /hello HTTP/1.1\r\n\r\n".to_vec(), 400),
        (
            "two Hosts",
            b"GET /hello HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n".to_vec(),
            400,
        ),
        // 400: smuggling shapes.
        (
            "Content-Length with Transfer-Encoding",
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\
              Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
                .to_vec(),
            400,
        ),
        (
            "differing Content-Lengths",
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n\
              hello!"
                .to_vec(),
            400,
        ),
        (
            "signed Content-Length",
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\nhello".to_vec(),
            400,
        ),
        (
            "chunked twice",
            b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n\
              0\r\n\r\n"
                .to_vec(),
            400,
        ),
        (
            "chunked not last",
            b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n".to_vec(),
            400,
        ),
        (
            "bad chunk size",
            b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhi\r\n"
                .to_vec(),
            400,
        ),
        (
            "overflowing chunk size",
            b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
              fffffffffffffffffff\r\n"
                .to_vec(),
            400,
        ),
        (
            "chunk data without CRLF",
            b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
              3\r\nabcXY0\r\n\r\n"
                .to_vec(),
            400,
        ),
        // 417, 501, 505.
        (
            "unknown expectation",
            b"POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 200-ok\r\nContent-Length: 1\r\n\r\nx"
                .to_vec(),
            417,
        ),
        (
            "gzip, chunked",
            b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n\
              0\r\n\r\n"
                .to_vec(),
            501,
        ),
        (
            "HTTP/2.0",
            b"GET /hello HTTP/2.0\r\nHost: x\r\n\r\n".to_vec(),
            505,
        ),
        (
            "HTTP/3.0",
            b"GET /hello HTTP/3.0\r\nHost: x\r\n\r\n".to_vec(),
            505,
        ),
        (
            "chunked in HTTP/1.0",
            b"POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_vec(),
            400,
        ),
    ];
    // 413: a declared length over the limit (the default 1 MiB), decided before the body.
    cases.push((
        "Content-Length over max_body",
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1048577\r\n\r\n".to_vec(),
        413,
    ));
    // 413: a chunked body that grows over the limit.
    let mut chunked =
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..17 {
        chunked.extend_from_slice(b"10000\r\n");
        chunked.extend_from_slice(&[b'c'; 0x10000]);
        chunked.extend_from_slice(b"\r\n");
    }
    cases.push(("chunked body over max_body", chunked, 413));
    // 414: a request line over 8 KiB.
    let long_target = format!("/path?{}", "q".repeat(9 * 1024));
    cases.push(("request line over the limit", get(&long_target), 414));
    // 431: a head over 16 KiB.
    let big_header = format!(
        "GET /hello HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "v".repeat(17 * 1024)
    );
    cases.push(("head over the limit", big_header.into_bytes(), 431));
    // 431: more than 100 header fields.
    let mut many = String::from("GET /hello HTTP/1.1\r\nHost: x\r\n");
    for i in 0..101 {
        many.push_str(&format!("X-H{i}: v\r\n"));
    }
    many.push_str("\r\n");
    cases.push(("too many header fields", many.into_bytes(), 431));
    cases
}

fn junk() -> Vec<u8> {
    // Looks like more requests, so that a server that kept parsing would answer them.
    get("/hello").into_iter().cycle().take(JUNK).collect()
}

/// Sends each bad request on a connection of its own, followed by `extra` in the same write,
/// and checks the whole answer, `Connection: close` and a clean close (a reset fails
/// `read_to_close`: extra bytes must be drained, not refused), while a bystander is served.
fn each_bad_request_answered_then_closed(extra: &[u8]) {
    let server = TestServer::routes(config());
    let mut bystander = Client::new(server.connect());
    for (what, bytes, status) in bad_requests() {
        let mut client = Client::new(server.connect());
        client.send(&[bytes.as_slice(), extra].concat());
        let reply = client.response();
        assert_eq!(reply.status, status, "{what}: {reply:?}");
        assert_eq!(
            reply.header("connection"),
            Some("close"),
            "{what}: {reply:?}"
        );
        let rest = client.read_to_close();
        assert!(rest.is_empty(), "{what}: bytes after the error: {rest:?}");
        // Others are unaffected.
        bystander.send(&get("/hello"));
        assert_eq!(bystander.response().status, 200, "{what}");
    }
    assert_serves(&server);
}

#[test]
fn each_bad_request_is_answered_then_closed() {
    each_bad_request_answered_then_closed(b"");
}

#[test]
fn bad_request_followed_by_junk_in_the_same_write() {
    each_bad_request_answered_then_closed(&junk());
}

#[test]
fn client_keeps_sending_after_its_bad_request_was_answered() {
    let server = TestServer::routes(config());
    for (bytes, status) in [
        // Missing Host.
        (b"GET /hello HTTP/1.1\r\n\r\n".to_vec(), 400),
        // Content-Length over max_body: the junk is the body the client goes on sending.
        (
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999\r\n\r\n".to_vec(),
            413,
        ),
    ] {
        let mut client = Client::new(server.connect());
        client.send(&bytes);
        // The answer is out (and the server has half-closed) before the junk starts.
        thread::sleep(Duration::from_millis(100));
        for piece in junk().chunks(10_000) {
            client.send(piece);
        }
        client.expect_error(status);
    }
    assert_serves(&server);
}

#[test]
fn smaller_configured_limits_are_enforced() {
    let mut c = config();
    c.limits.max_body = 1000;
    c.limits.max_head = 2048;
    c.limits.max_request_line = 512;
    c.limits.max_headers = 10;
    let server = TestServer::routes(c);
    let mut ok = Client::new(server.connect());
    // At the limits: served.
    ok.send(&post_echo(&[b'b'; 1000]));
    assert_eq!(ok.response().body.len(), 1000);
    let mut nine = String::from("GET /hello HTTP/1.1\r\nHost: x\r\n");
    for i in 0..9 {
        nine.push_str(&format!("X-{i}: v\r\n"));
    }
    nine.push_str("\r\n");
    ok.send(nine.as_bytes());
    assert_eq!(ok.response().status, 200);
    // Over them: refused.
    for (bytes, status) in [
        (post_echo(&[b'b'; 1001]), 413),
        (get(&format!("/path?{}", "q".repeat(600))), 414),
        (
            format!(
                "GET /hello HTTP/1.1\r\nHost: x\r\nX: {}\r\n\r\n",
                "v".repeat(2100)
            )
            .into_bytes(),
            431,
        ),
        (
            format!(
                "GET /hello HTTP/1.1\r\nHost: x\r\n{}\r\n",
                "X: v\r\n".repeat(10)
            )
            .into_bytes(),
            431,
        ),
    ] {
        let mut client = Client::new(server.connect());
        client.send(&bytes);
        client.expect_error(status);
    }
    let mut chunked =
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    chunked.extend_from_slice(b"258\r\n");
    chunked.extend_from_slice(&[b'c'; 600]);
    chunked.extend_from_slice(b"\r\n258\r\n");
    chunked.extend_from_slice(&[b'c'; 600]);
    chunked.extend_from_slice(b"\r\n0\r\n\r\n");
    let mut client = Client::new(server.connect());
    client.send(&chunked);
    client.expect_error(413);
    ok.send(&get("/hello"));
    assert_eq!(ok.response().status, 200);
}

#[test]
fn error_after_good_pipelined_requests_answers_those_first() {
    let server = TestServer::routes(config());
    let mut client = Client::new(server.connect());
    let mut batch = get("/path?one");
    batch.extend_from_slice(&post_echo(b"two"));
    batch.extend_from_slice(b"GET /hello HTTP/1.1\r\n\r\n");
    batch.extend_from_slice(&get("/path?never"));
    client.send(&batch);
    assert_eq!(client.response().text(), "/path?one");
    assert_eq!(client.response().text(), "two");
    client.expect_error(400);
}
