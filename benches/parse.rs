//! Parser and encoder benchmarks: the time per request on the hot path, and the heap
//! allocations per request once the connection has warmed up (which should be zero).
//!
//! Run with `cargo bench --bench parse` (about 15 s after the build), or add `-- --quick` for a
//! rougher, faster run. The cases:
//!
//! - `keep_alive_get`: a curl-like GET parsed on a kept-alive connection and answered with
//!   `send_response` into a reused buffer (one request and its response per iteration);
//! - `browser_get_20_headers`: parsing a browser-like GET with 20 header fields;
//! - `chunked_post_4k`: a POST with a 4 KiB chunked body (four 1 KiB chunks and a trailer),
//!   head and body decoded;
//! - `route_exact`: a curl-like GET parsed and routed by a `Router` of 12 routes to the last
//!   one added, whose handler answers a static text (through `Harness`, the server's parser
//!   and the handler call, without a socket);
//! - `route_param`: the same with `/v1/accounts/12345/score`, routed to
//!   `/v1/accounts/{id}/score`, whose handler reads the parameter.
//!
//! Before the timings, each case prints its allocations per request, counted by a global
//! allocator wrapper over a thousand requests after a warm-up. Numbers are reported, never
//! asserted.

use std::{
    hint::black_box,
    time::{Duration, SystemTime},
};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rtserve_protocol::{Event, HttpDate, Limits, ServerConn, StatusCode, send_response};
use rtserve_reactor::{Harness, Reply, Request, Response, Router};

/// A GET as curl 8 sends it.
const CURL_GET: &[u8] = b"GET /hello HTTP/1.1\r\n\
Host: localhost:8080\r\n\
User-Agent: curl/8.5.0\r\n\
Accept: */*\r\n\
\r\n";

/// A script fetch as Chrome sends it, with 20 header fields.
const BROWSER_GET: &[u8] = b"GET /assets/app.js?v=3 HTTP/1.1\r\n\
Host: www.example.com\r\n\
Connection: keep-alive\r\n\
sec-ch-ua: \"Chromium\";v=\"124\", \"Google Chrome\";v=\"124\", \"Not-A.Brand\";v=\"99\"\r\n\
sec-ch-ua-mobile: ?0\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) \
Chrome/124.0.0.0 Safari/537.36\r\n\
sec-ch-ua-platform: \"Linux\"\r\n\
Accept: */*\r\n\
Sec-Fetch-Site: same-origin\r\n\
Sec-Fetch-Mode: no-cors\r\n\
Sec-Fetch-Dest: script\r\n\
Referer: https://www.example.com/dashboard\r\n\
Accept-Encoding: gzip, deflate, br, zstd\r\n\
Accept-Language: en-US,en;q=0.9,de;q=0.8\r\n\
Cookie: session=6f9c1d0e8a7b4c2d9e3f5a1b7c8d0e2f; theme=dark; _ga=GA1.1.123456789.1715678901\r\n\
If-None-Match: \"5f2b-18c7a3e9d40\"\r\n\
If-Modified-Since: Tue, 14 May 2024 09:12:44 GMT\r\n\
Cache-Control: max-age=0\r\n\
Priority: u=1\r\n\
DNT: 1\r\n\
Sec-GPC: 1\r\n\
\r\n";

/// The head of the chunked upload; [`chunked_post`] appends the body.
const CHUNKED_HEAD: &[u8] = b"POST /upload HTTP/1.1\r\n\
Host: api.example.com\r\n\
User-Agent: rtserve-bench\r\n\
Content-Type: application/octet-stream\r\n\
Transfer-Encoding: chunked\r\n\
\r\n";

/// Data bytes in the chunked upload: four chunks of 1 KiB.
const CHUNKED_DATA: usize = 4 * 1024;

/// The response body of `keep_alive_get`.
const HELLO: &[u8] = b"Hello, World!\n";

/// Requests served before allocations are counted, so that buffers have grown to size.
const WARM_UP: u64 = 100;

/// Requests over which allocations are counted.
const COUNTED: u64 = 1_000;

#[path = "../tests/support/counting_alloc.rs"]
mod counting_alloc;

#[global_allocator]
static GLOBAL: counting_alloc::Counting = counting_alloc::Counting;

/// One kept-alive connection and what its reactor would reuse between requests.
struct Server {
    conn: ServerConn,
    date: HttpDate,
    out: Vec<u8>,
}

impl Server {
    fn new() -> Self {
        Self {
            conn: ServerConn::new(Limits::default()),
            date: HttpDate::new(SystemTime::now()),
            out: Vec::new(),
        }
    }
}

/// Parses one bodiless GET from `input` and answers it; returns the response's length.
///
/// # Panics
///
/// If `input` is not one complete keep-alive GET: the vectors above are.
fn serve_get(server: &mut Server, input: &[u8]) -> usize {
    let (used, event) = server.conn.recv(input).expect("a valid request");
    assert_eq!(event, Event::Head, "the vector is one whole head");
    let request = server.conn.request(input);
    // What a router would look at.
    black_box((request.method(), request.path(), request.authority()));
    let ctx = server.conn.head().response_context();
    let (_, event) = server.conn.recv(&input[used..]).expect("no body");
    assert_eq!(event, Event::End, "a GET has no body");

    server.out.clear();
    let headers = [("Content-Type", &b"text/plain; charset=utf-8"[..])];
    let keep_alive = send_response(
        ctx,
        StatusCode::OK,
        headers,
        HELLO,
        &server.date,
        &mut server.out,
    )
    .expect("a valid response");
    black_box(keep_alive);
    server.out.len()
}

/// Parses one bodiless request from `input`, reading a few fields; returns its header count.
///
/// # Panics
///
/// If `input` is not one complete keep-alive request without a body.
fn parse_get(conn: &mut ServerConn, input: &[u8]) -> usize {
    let (used, event) = conn.recv(input).expect("a valid request");
    assert_eq!(event, Event::Head, "the vector is one whole head");
    let request = conn.request(input);
    black_box((request.path(), request.query(), request.header("cookie")));
    let headers = request.headers().len();
    let (_, event) = conn.recv(&input[used..]).expect("no body");
    assert_eq!(event, Event::End, "a GET has no body");
    headers
}

/// A chunked POST with [`CHUNKED_DATA`] bytes of data in 1 KiB chunks and a trailer field.
fn chunked_post() -> Vec<u8> {
    let mut input = CHUNKED_HEAD.to_vec();
    for i in 0..CHUNKED_DATA / 1024 {
        input.extend_from_slice(b"400\r\n");
        input.extend(std::iter::repeat_n(b'a' + i as u8, 1024));
        input.extend_from_slice(b"\r\n");
    }
    input.extend_from_slice(b"0\r\nX-Checksum: 1234abcd\r\n\r\n");
    input
}

/// Parses one request with a body from `input`, as a reactor with all of it buffered would;
/// returns the body's length.
///
/// # Panics
///
/// If `input` is not one complete keep-alive request.
fn read_post(conn: &mut ServerConn, input: &[u8]) -> usize {
    let mut pos = 0;
    let mut body = 0;
    loop {
        let (used, event) = conn.recv(&input[pos..]).expect("a valid request");
        match event {
            Event::Head => {}
            Event::Body(range) => {
                body += black_box(&input[pos..][range]).len();
            }
            Event::End => return body,
            Event::NeedMore | Event::Closed => panic!("the vector is one whole request"),
        }
        pos += used;
    }
}

/// Prints the heap allocations of the first call of `f` on a new connection, and per call
/// after [`WARM_UP`] more.
fn print_allocations(name: &str, mut f: impl FnMut()) {
    let before = counting_alloc::allocations();
    f();
    let first = counting_alloc::allocations() - before;
    for _ in 0..WARM_UP {
        f();
    }
    let before = counting_alloc::allocations();
    for _ in 0..COUNTED {
        f();
    }
    let count = counting_alloc::allocations() - before;
    println!(
        "{name}: {} allocations/request after warm-up ({count} in {COUNTED} requests; \
         {first} in the first)",
        count as f64 / COUNTED as f64
    );
}

fn keep_alive_get(c: &mut Criterion) {
    let mut server = Server::new();
    print_allocations("keep_alive_get", || {
        black_box(serve_get(&mut server, black_box(CURL_GET)));
    });
    let response_len = serve_get(&mut server, CURL_GET);
    println!(
        "keep_alive_get: {} request bytes, {response_len} response bytes",
        CURL_GET.len()
    );

    let mut group = c.benchmark_group("protocol");
    group.throughput(Throughput::Elements(1));
    group.bench_function("keep_alive_get", |b| {
        b.iter(|| serve_get(&mut server, black_box(CURL_GET)));
    });
    group.finish();
}

fn browser_get(c: &mut Criterion) {
    let mut conn = ServerConn::new(Limits::default());
    print_allocations("browser_get_20_headers", || {
        black_box(parse_get(&mut conn, black_box(BROWSER_GET)));
    });
    let headers = parse_get(&mut conn, BROWSER_GET);
    println!(
        "browser_get_20_headers: {} request bytes, {headers} header fields",
        BROWSER_GET.len()
    );

    let mut group = c.benchmark_group("protocol");
    group.throughput(Throughput::Bytes(BROWSER_GET.len() as u64));
    group.bench_function("browser_get_20_headers", |b| {
        b.iter(|| parse_get(&mut conn, black_box(BROWSER_GET)));
    });
    group.finish();
}

fn chunked_body(c: &mut Criterion) {
    let input = chunked_post();
    let mut conn = ServerConn::new(Limits::default());
    print_allocations("chunked_post_4k", || {
        black_box(read_post(&mut conn, black_box(&input)));
    });
    let body = read_post(&mut conn, &input);
    println!(
        "chunked_post_4k: {} request bytes, {body} body bytes",
        input.len()
    );

    let mut group = c.benchmark_group("protocol");
    // The body is what this case is about; the head is parsed too.
    group.throughput(Throughput::Bytes(body as u64));
    group.bench_function("chunked_post_4k", |b| {
        b.iter(|| read_post(&mut conn, black_box(&input)));
    });
    group.finish();
}

/// A service's routes: twelve, the one asked for added last.
fn service_router() -> Router {
    fn ok(_: &Request<'_>) -> Reply {
        Response::text(StatusCode::OK, "ok\n").into()
    }
    let mut router = Router::new();
    for path in [
        "/",
        "/healthz",
        "/metrics",
        "/v1/score",
        "/v1/accounts",
        "/v1/limits",
        "/v1/rules",
        "/v1/models",
        "/v1/merchants",
        "/v1/devices",
        "/v1/alerts",
    ] {
        router = router.get(path, ok).post(path, ok);
    }
    router
        .get("/v1/accounts/{id}/score", |req: &Request<'_>| -> Reply {
            let id = req.param("id");
            assert_eq!(id.as_deref(), Some("12345"));
            Response::text(StatusCode::OK, "score\n").into()
        })
        .get("/v1/status", ok)
}

/// Routes one request; returns the response's body length.
fn route(harness: &mut Harness, router: &Router, input: &[u8]) -> usize {
    match harness.call(router, input) {
        Reply::Ready(response) => response.body().as_bytes().len(),
        _ => unreachable!("the routes answer inline"),
    }
}

fn routing(c: &mut Criterion) {
    const GET_STATUS: &[u8] = b"GET /v1/status HTTP/1.1\r\nHost: localhost:8080\r\n\
        User-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n";
    let router = service_router();
    let mut harness = Harness::new();
    print_allocations("route_exact", || {
        black_box(route(&mut harness, &router, black_box(GET_STATUS)));
    });
    assert_eq!(route(&mut harness, &router, GET_STATUS), 3);

    const GET_SCORE: &[u8] = b"GET /v1/accounts/12345/score HTTP/1.1\r\n\
        Host: localhost:8080\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n";
    print_allocations("route_param", || {
        black_box(route(&mut harness, &router, black_box(GET_SCORE)));
    });

    let mut group = c.benchmark_group("routing");
    group.throughput(Throughput::Elements(1));
    group.bench_function("route_exact", |b| {
        b.iter(|| route(&mut harness, &router, black_box(GET_STATUS)));
    });
    group.bench_function("route_param", |b| {
        b.iter(|| route(&mut harness, &router, black_box(GET_SCORE)));
    });
    group.finish();
}

criterion_group! {
    name = benches;
    // Short runs: the cases take tens of nanoseconds to a few microseconds, so a second of
    // warm-up and three of measurement give tight intervals and a total well under a minute.
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = keep_alive_get, browser_get, chunked_body, routing
}
criterion_main!(benches);
