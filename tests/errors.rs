//! The server's own error answers over real sockets: each has a `Content-Type`, and an
//! `ErrorAnswers` hook gives every one of them a JSON body while keeping the headers that
//! belong to it; a router's fallback takes the paths no route matches.

mod support;

use std::time::Duration;

use rtserve_reactor::{
    Config, ErrorAnswers, Reply, Request, Response, Router, ServerError, StatusCode,
};
use support::{Client, Reply1, TestServer, config, get};

/// A server for the errors below: the standard routes, a caller-budget header, a small body
/// limit, and a short head timeout.
fn error_config() -> Config {
    let mut config = config();
    config.deadline_header = Some("x-budget".to_owned());
    config.limits.max_body = 16;
    config.header_timeout = Duration::from_millis(300);
    config
}

/// Each way of getting one of the server's own error answers: (what it is, the bytes that
/// cause it, the status, its reason).
const CAUSES: &[(&str, &[u8], u16, &str)] = &[
    (
        "unknown path",
        b"GET /no/such HTTP/1.1\r\nHost: x\r\n\r\n",
        404,
        "not-found",
    ),
    (
        "wrong method",
        b"DELETE /hello HTTP/1.1\r\nHost: x\r\n\r\n",
        405,
        "method-not-allowed",
    ),
    (
        "handler panic",
        b"GET /panic HTTP/1.1\r\nHost: x\r\n\r\n",
        500,
        "internal-error",
    ),
    (
        "not UTF-8",
        b"GET /hello?q=%FF HTTP/1.1\r\nHost: x\r\n\r\n",
        200,
        "",
    ),
    (
        "spent budget",
        b"GET /hello HTTP/1.1\r\nHost: x\r\nx-budget: 0\r\n\r\n",
        503,
        "caller-budget",
    ),
    (
        "bad budget",
        b"GET /hello HTTP/1.1\r\nHost: x\r\nx-budget: soon\r\n\r\n",
        400,
        "bad-deadline-header",
    ),
    (
        "no Host",
        b"GET /hello HTTP/1.1\r\n\r\n",
        400,
        "bad-request",
    ),
    (
        "bad request line",
        b"GET  /hello HTTP/1.1\r\nHost: x\r\n\r\n",
        400,
        "bad-request",
    ),
    (
        "body too large",
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 17\r\n\r\n",
        413,
        "bad-request",
    ),
    (
        "head timeout",
        b"GET /hello HTTP/1.1\r\nHost: x\r\n",
        408,
        "request-timeout",
    ),
];

/// The answer to `bytes` on a connection of its own.
#[track_caller]
fn answer(server: &TestServer, bytes: &[u8]) -> Reply1 {
    let mut client = Client::new(server.connect());
    client.send(bytes);
    client.response()
}

#[test]
fn every_builtin_error_answer_has_a_content_type() {
    let server = TestServer::routes(error_config());
    for &(what, bytes, status, _) in CAUSES {
        let reply = answer(&server, bytes);
        if status == 200 {
            // The standard `/hello` route does not look at its query: no 400 to see.
            continue;
        }
        assert_eq!(reply.status, status, "{what}: {reply:?}");
        assert_eq!(
            reply.header("content-type"),
            Some("text/plain; charset=utf-8"),
            "{what}: {reply:?}"
        );
    }
}

#[test]
fn the_shed_503_keeps_its_content_type_and_names_its_reason() {
    let server = TestServer::routes(error_config());
    let reply = answer(&server, CAUSES[4].1);
    assert_eq!(reply.status, 503);
    assert_eq!(reply.header("rtserve-shed"), Some("caller-budget"));
    assert_eq!(
        reply.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(reply.text(), "the caller's budget is spent\n");
}

/// A JSON error body: `{"error": reason, "status": status, "message": message}`.
fn json_errors() -> ErrorAnswers {
    ErrorAnswers::new(|error: &ServerError| {
        Response::json(
            error.status(),
            &serde_json::json!({
                "error": error.reason(),
                "status": error.status().as_u16(),
                "message": error.message(),
            }),
        )
    })
}

#[test]
fn a_hook_answers_json_for_every_builtin_error_and_keeps_their_headers() {
    let mut config = error_config();
    config.error_answers = Some(json_errors());
    let router = support::routes().get("/strict", |req: &Request<'_>| -> Reply {
        match req.check_utf8() {
            Ok(()) => Response::text(StatusCode::OK, "ok\n").into(),
            Err(not_utf8) => not_utf8.into(),
        }
    });
    let server = TestServer::start(config, router);
    let strict: &[u8] = b"GET /strict?q=%FF HTTP/1.1\r\nHost: x\r\n\r\n";
    let causes = CAUSES
        .iter()
        .map(|&(what, bytes, status, reason)| match status {
            200 => (what, strict, 400, "not-utf8"),
            _ => (what, bytes, status, reason),
        });
    for (what, bytes, status, reason) in causes {
        let reply = answer(&server, bytes);
        assert_eq!(reply.status, status, "{what}: {reply:?}");
        assert_eq!(
            reply.header("content-type"),
            Some("application/json"),
            "{what}: {reply:?}"
        );
        let body: serde_json::Value = serde_json::from_slice(&reply.body).expect("JSON");
        assert_eq!(body["error"], reason, "{what}");
        assert_eq!(body["status"], status, "{what}");
        assert!(!body["message"].as_str().unwrap().is_empty(), "{what}");
        match status {
            405 => assert_eq!(reply.header("allow"), Some("GET, HEAD, OPTIONS")),
            503 => assert_eq!(reply.header("rtserve-shed"), Some(reason)),
            _ => {}
        }
    }
    // A success is the handler's own.
    let reply = answer(&server, &get("/hello"));
    assert_eq!((reply.status, reply.text().as_str()), (200, "hello\n"));
}

#[test]
fn a_fallback_takes_unknown_paths_and_the_hook_leaves_it_alone() {
    let mut config = config();
    config.error_answers = Some(json_errors());
    let router = Router::new()
        .get("/hello", |_: &Request<'_>| -> Reply {
            Response::text(StatusCode::OK, "hello\n").into()
        })
        .fallback(|req: &Request<'_>| -> Reply {
            Response::text(
                StatusCode::NOT_FOUND,
                format!("no page at {}\n", req.path()),
            )
            .into()
        });
    let server = TestServer::start(config, router);
    let mut client = Client::new(server.connect());
    client.send(&get("/elsewhere"));
    let reply = client.response();
    assert_eq!(reply.status, 404);
    assert_eq!(reply.text(), "no page at /elsewhere\n");
    // A known path with another method is the router's 405, shaped by the hook.
    client.send(b"POST /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
    let reply = client.response();
    assert_eq!(reply.status, 405);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    // The connection goes on.
    client.send(&get("/hello"));
    assert_eq!(client.response().status, 200);
}
