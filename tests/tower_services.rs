//! Tower services mounted as handlers (feature `tower`) over real sockets: an axum router with
//! path extractors, JSON in and out and a middleware layer, under the reactor's deadline and
//! in-flight limit; a response body over the limit and a service's error are 500s; the query,
//! the headers and the body reach the service whole.

mod support;

use std::{
    future::{Ready, ready},
    io::Write,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};

use axum::{
    Json,
    extract::{Path, Request as AxumRequest},
    http::{HeaderMap, HeaderValue, StatusCode as AxumStatus, Uri},
    middleware::{self, Next},
    response::Response as AxumResponse,
    routing,
};
use rtserve_reactor::{
    AsyncContext, Config, Router, Server, ServerHandle, tower::service, with_deadline,
};
use serde_json::{Value, json};
use support::{Client, Dropped, Reply1, TIMEOUT, connect, stop, wait_until};

/// The longest response body the mounted router may give in these tests.
const MAX_RESPONSE_BODY: usize = 1024;

fn config() -> Config {
    let mut config = Config::default();
    config.addr = "127.0.0.1:0".parse().unwrap();
    config.reactors = 1;
    config
}

/// The middleware layer: marks every response it passes.
async fn mark(request: AxumRequest, next: Next) -> AxumResponse {
    let mut response = next.run(request).await;
    response
        .headers_mut()
        .insert("x-layer", HeaderValue::from_static("seen"));
    response
}

/// What became of `/api/slow`'s future: `entered` once it was first polled (its handler
/// ran), `dropped` when it was dropped.
#[derive(Debug, Default, Clone)]
struct Slow {
    entered: Arc<AtomicBool>,
    dropped: Arc<AtomicBool>,
}

/// The axum application, its routes under `/api` (it sees the path as sent); `/api/slow`
/// sleeps for the test's whole timeout, telling `slow` it started and holding its guard.
fn app(slow: &Slow) -> axum::Router {
    let slow = slow.clone();
    axum::Router::new()
        .route(
            "/api/users/{id}",
            routing::get(|Path(id): Path<u32>| async move {
                Json(json!({ "id": id, "name": format!("user-{id}") }))
            }),
        )
        .route(
            "/api/users",
            routing::post(|Json(user): Json<Value>| async move {
                (AxumStatus::CREATED, Json(json!({ "created": user })))
            }),
        )
        .route(
            "/api/inspect",
            routing::get(
                |uri: Uri, headers: HeaderMap, ctx: axum::Extension<AsyncContext>| async move {
                    let id = headers.get("x-id").map(|v| v.to_str().unwrap().to_owned());
                    let has_time = !ctx.remaining().is_zero();
                    format!("{} {:?} {id:?} {has_time}", uri.path(), uri.query())
                },
            ),
        )
        .route(
            "/api/echo",
            routing::post(|body: axum::body::Bytes| async move { format!("{}", body.len()) }),
        )
        .route(
            "/api/big",
            routing::get(|| async { "x".repeat(MAX_RESPONSE_BODY + 1) }),
        )
        .route(
            "/api/slow",
            routing::get(move || {
                slow.entered.store(true, Ordering::SeqCst);
                let guard = Dropped(Arc::clone(&slow.dropped));
                async move {
                    let _guard = guard;
                    tokio::time::sleep(TIMEOUT).await;
                    "too late"
                }
            }),
        )
        .layer(middleware::from_fn(mark))
}

/// A service that always fails.
#[derive(Clone)]
struct Failing;

impl<B> tower_service::Service<axum::http::Request<B>> for Failing {
    type Response = axum::http::Response<String>;
    type Error = std::io::Error;
    type Future = Ready<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: axum::http::Request<B>) -> Self::Future {
        ready(Err(std::io::Error::other("the database is down")))
    }
}

/// Serves the application under `/api/{*rest}` with `deadline`, and `Failing` at `/failing`.
fn serve(deadline: Duration, slow: &Slow) -> ServerHandle {
    serve_with(config(), deadline, slow)
}

fn serve_with(config: Config, deadline: Duration, slow: &Slow) -> ServerHandle {
    let mounted = service(app(slow)).max_response_body(MAX_RESPONSE_BODY);
    let router = Router::new()
        .any("/api/{*rest}", with_deadline(deadline, mounted))
        .any("/failing", service(Failing));
    Server::start(config, router).unwrap()
}

/// Sends `raw` on a new connection and reads one response.
fn exchange(server: &ServerHandle, raw: &[u8]) -> Reply1 {
    let mut client = Client::new(connect(server.local_addr()));
    client.send(raw);
    client.response()
}

fn get(server: &ServerHandle, target: &str) -> Reply1 {
    exchange(
        server,
        format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
    )
}

fn post(server: &ServerHandle, target: &str, content_type: &str, body: &[u8]) -> Reply1 {
    let mut raw = format!(
        "POST {target} HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    raw.extend_from_slice(body);
    exchange(server, &raw)
}

#[test]
fn an_axum_router_answers_with_its_extractors_json_and_layers() {
    // A deadline no busy machine can miss: this test is about what the service sees.
    let server = serve(TIMEOUT, &Slow::default());

    let user = get(&server, "/api/users/42");
    assert_eq!(user.status, 200);
    assert_eq!(user.header("content-type"), Some("application/json"));
    assert_eq!(user.header("x-layer"), Some("seen"));
    let body: Value = serde_json::from_str(&user.text()).unwrap();
    assert_eq!(body, json!({ "id": 42, "name": "user-42" }));

    let created = post(
        &server,
        "/api/users",
        "application/json",
        br#"{"name":"ada"}"#,
    );
    assert_eq!(created.status, 201);
    assert_eq!(created.header("x-layer"), Some("seen"));
    let body: Value = serde_json::from_str(&created.text()).unwrap();
    assert_eq!(body, json!({ "created": { "name": "ada" } }));

    // axum's own answers: a path parameter that is not a number, an unknown route, JSON
    // without its content type.
    assert_eq!(get(&server, "/api/users/ada").status, 400);
    let unknown = get(&server, "/api/nothing");
    assert_eq!(
        (unknown.status, unknown.header("x-layer")),
        (404, Some("seen"))
    );
    assert_eq!(post(&server, "/api/users", "text/plain", b"{}").status, 415);
    // Outside the mount, rtserve's router answers.
    assert_eq!(get(&server, "/elsewhere").header("x-layer"), None);
    stop(server);
}

#[test]
fn the_query_headers_deadline_and_body_reach_the_service_whole() {
    let server = serve(TIMEOUT, &Slow::default());
    let seen = exchange(
        &server,
        b"GET /api/inspect?a=1&b=two%20words HTTP/1.1\r\nHost: x\r\nX-Id: 7\r\n\r\n",
    );
    assert_eq!(seen.status, 200);
    assert_eq!(
        seen.text(),
        r#"/api/inspect Some("a=1&b=two%20words") Some("7") true"#
    );

    // Larger than any one read, and sent chunked: the service gets it whole.
    let body = vec![b'z'; 300 * 1024];
    assert_eq!(
        post(&server, "/api/echo", "application/octet-stream", &body).text(),
        body.len().to_string()
    );
    let mut chunked =
        b"POST /api/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    chunked.extend_from_slice(b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
    assert_eq!(exchange(&server, &chunked).text(), "11");
    stop(server);
}

#[test]
fn a_service_past_its_deadline_gets_503_at_the_deadline_and_is_cancelled() {
    let slow = Slow::default();
    // Long enough for the runtime to poll the service's future before the deadline on a busy
    // machine (a future shed before it ran has nothing to show), and far short of the 20 s
    // the service sleeps.
    let deadline = Duration::from_secs(1);
    let server = serve(deadline, &slow);
    let started = Instant::now();
    let late = get(&server, "/api/slow");
    assert_eq!(
        (late.status, late.header("rtserve-shed")),
        (503, Some("deadline"))
    );
    let waited = started.elapsed();
    assert!(waited >= deadline);
    assert!(
        waited < TIMEOUT,
        "answered at the deadline, not by the service"
    );
    assert!(
        slow.entered.load(Ordering::SeqCst),
        "the service never ran before its deadline"
    );
    assert!(
        wait_until(|| slow.dropped.load(Ordering::SeqCst)),
        "the service's future was not dropped"
    );
    assert!(wait_until(|| server.stats().futures_in_flight == 0));
    assert_eq!(server.stats().futures_cancelled, 1);
    stop(server);
}

#[test]
fn a_response_body_over_the_limit_and_a_service_error_are_500() {
    let server = serve(TIMEOUT, &Slow::default());
    let big = get(&server, "/api/big");
    assert_eq!(
        (big.status, big.text().as_str()),
        (500, "internal server error\n")
    );
    let failed = exchange(
        &server,
        b"DELETE /failing HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(failed.status, 500);
    // Neither took the server down, nor was counted as cancelled.
    assert_eq!(get(&server, "/api/users/1").status, 200);
    assert_eq!(server.stats().futures_cancelled, 0);
    stop(server);
}

#[test]
fn a_mount_at_its_limit_of_futures_in_flight_is_refused_at_once() {
    let slow = Slow::default();
    let mut config = config();
    config.max_in_flight_per_route = 1;
    let server = serve_with(config, TIMEOUT, &slow);
    let mut holder = connect(server.local_addr());
    holder
        .write_all(b"GET /api/slow HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    // In flight, and running (so that dropping it has a guard to show).
    assert!(wait_until(|| slow.entered.load(Ordering::SeqCst)));
    assert!(wait_until(|| server.stats().futures_in_flight == 1));
    let refused = get(&server, "/api/users/1");
    assert_eq!(
        (refused.status, refused.header("rtserve-shed")),
        (503, Some("in-flight"))
    );
    // Another mount is another route, with its own limit.
    assert_eq!(get(&server, "/failing").status, 500);
    // The holder resets: its future is dropped, and the mount takes requests again.
    socket2::SockRef::from(&holder)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(holder);
    assert!(wait_until(|| slow.dropped.load(Ordering::SeqCst)));
    assert!(wait_until(|| server.stats().futures_in_flight == 0));
    assert_eq!(get(&server, "/api/users/1").status, 200);
    stop(server);
}
