//! The demo routes: one for each path through the reactor.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use rtserve_reactor::{AsyncContext, JobContext, Reply, Request, Response, Router, StatusCode};

/// `/hello` inline, `/async/hello` as a future on the runtime, `/slow?ms=N` and
/// `/spin?us=N[&sleep_ms=N]` on the worker pool, `/status?code=N`, `/echo`, `/metrics`, `/healthz`.
pub(crate) fn router(max_slow: Duration) -> Router {
    Router::new()
        .get("/hello", hello)
        .get("/async/hello", async_hello)
        .get("/slow", move |req: &Request<'_>| slow(req, max_slow))
        .get("/spin", move |req: &Request<'_>| spin(req, max_slow))
        .get("/status", status)
        .post("/echo", echo)
        .get("/metrics", metrics)
        .get("/healthz", healthz)
}

/// The quick answer, made on the reactor thread without allocating.
fn hello(_: &Request<'_>) -> Reply {
    Response::new(StatusCode::OK)
        .with_static_headers(&[("Content-Type", b"text/plain; charset=utf-8")])
        .with_body("Hello, world!\n")
        .into()
}

/// `/hello`'s answer from a future on the async runtime: at once, or (`?yield=1`) after
/// yielding to the runtime once, as a future that waits on I/O does. What it costs over
/// `/hello` is the async path's own cost.
fn async_hello(req: &Request<'_>) -> Reply {
    let yields = req.query_param("yield").is_some_and(|v| v == "1");
    Reply::spawn(move |_: AsyncContext| async move {
        if yields {
            YieldOnce(false).await;
        }
        Response::new(StatusCode::OK)
            .with_static_headers(&[("Content-Type", b"text/plain; charset=utf-8")])
            .with_body("Hello, world!\n")
    })
}

/// Pending once (asking to be polled again at once), then ready.
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            return Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// Sleeps `ms` milliseconds (default 1000, at most `--max-slow-ms`) on the worker pool:
/// blocking work, subject to the request's deadline like any other.
fn slow(req: &Request<'_>, max: Duration) -> Reply {
    let ms = match whole_number(req, "ms", 1000) {
        Ok(ms) => ms,
        Err(refusal) => return refusal,
    };
    let sleep = Duration::from_millis(ms).min(max);
    Reply::offload(move |ctx: &JobContext| {
        // A request past its deadline, or whose client left, wakes the sleep and frees the
        // worker at once; what is returned then is dropped.
        ctx.sleep(sleep);
        Response::text(StatusCode::OK, format!("slept {} ms\n", sleep.as_millis())).no_store()
    })
}

/// Busy for `us` microseconds of this thread's CPU time (default 1000, at most
/// `--max-slow-ms`) on the worker pool: CPU-bound work, which slows down when more workers
/// than cores share the CPU. With `sleep_ms`, it first sleeps that long, as a handler that
/// waits on a store and then computes does; the sleep and the CPU time together are at most
/// `--max-slow-ms` (the sleep first, the CPU time cut to what is left). It stops early once
/// the answer is no longer wanted.
fn spin(req: &Request<'_>, max: Duration) -> Reply {
    let (us, sleep_ms) = match (
        whole_number(req, "us", 1000),
        whole_number(req, "sleep_ms", 0),
    ) {
        (Ok(us), Ok(ms)) => (us, ms),
        (Err(refusal), _) | (_, Err(refusal)) => return refusal,
    };
    let sleep = Duration::from_millis(sleep_ms).min(max);
    let work = Duration::from_micros(us).min(max - sleep);
    let mixed = req.query_param("sleep_ms").is_some();
    Reply::offload(move |ctx: &JobContext| {
        if !sleep.is_zero() {
            ctx.sleep(sleep);
        }
        let start = thread_cpu_time();
        let mut x = 0u64;
        loop {
            // A few microseconds of arithmetic between checks.
            for i in 0..1000 {
                x = std::hint::black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(i));
            }
            if thread_cpu_time().saturating_sub(start) >= work || ctx.is_cancelled() {
                break;
            }
        }
        let answer = if mixed {
            format!(
                "slept {} ms, spun {} µs\n",
                sleep.as_millis(),
                work.as_micros()
            )
        } else {
            format!("spun {} µs\n", work.as_micros())
        };
        Response::text(StatusCode::OK, answer).no_store()
    })
}

/// Query parameter `name` as a whole number, `default` when absent; a 400 to answer with when
/// it is not one.
fn whole_number(req: &Request<'_>, name: &str, default: u64) -> Result<u64, Reply> {
    match req.query_param(name) {
        None => Ok(default),
        Some(value) => value.parse().map_err(|_| {
            Response::text(
                StatusCode::BAD_REQUEST,
                format!("{name} must be a whole number\n"),
            )
            .into()
        }),
    }
}

/// CPU time of the calling thread.
fn thread_cpu_time() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(
        u64::try_from(t.tv_sec).unwrap_or(0),
        u32::try_from(t.tv_nsec).unwrap_or(0),
    )
}

/// An empty response with the status asked for (`code`, 200 to 599; default 200), answered on
/// the reactor: a cheap answer of any status, for tests and benchmarks.
fn status(req: &Request<'_>) -> Reply {
    let code = req
        .query_param("code")
        .map_or(Ok(200), |v| v.parse::<u16>())
        .ok()
        .filter(|c| (200..=599).contains(c))
        .and_then(StatusCode::from_u16);
    match code {
        Some(code) => Response::new(code).into(),
        None => Response::text(StatusCode::BAD_REQUEST, "code must be 200 to 599\n").into(),
    }
}

/// The request body back, with its Content-Type.
fn echo(req: &Request<'_>) -> Reply {
    let mut response = Response::new(StatusCode::OK).with_body(req.body().to_vec());
    if let Some(content_type) = req.header("content-type") {
        response = response.with_header("Content-Type", content_type.to_vec());
    }
    response.into()
}

/// 200 while serving, 503 once shutting down.
fn healthz(req: &Request<'_>) -> Reply {
    if req.is_draining() {
        Response::text(StatusCode::SERVICE_UNAVAILABLE, "draining\n")
            .no_store()
            .into()
    } else {
        Response::text(StatusCode::OK, "ok\n").no_store().into()
    }
}

/// The server's statistics in the Prometheus text exposition format (version 0.0.4).
fn metrics(req: &Request<'_>) -> Reply {
    Response::prometheus(&req.stats()).into()
}

#[cfg(test)]
mod tests {
    use std::{
        io::{Read, Write},
        net::TcpStream,
    };

    use prometheus_parse::{Sample, Scrape, Value};
    use rtserve_reactor::{Config, Server};

    use super::*;

    /// Sends one request and reads its whole answer (it closes the connection).
    fn get_and_close(addr: std::net::SocketAddr, path: &str) -> String {
        let mut stream = TcpStream::connect(addr).expect("connects");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("sets a timeout");
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .expect("sends");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).expect("reads");
        answer
    }

    /// The route's samples of `metric`, with their values.
    fn samples<'a>(scrape: &'a Scrape, metric: &str, route: &str) -> Vec<&'a Sample> {
        scrape
            .samples
            .iter()
            .filter(|s| s.metric == metric && s.labels.get("route") == Some(route))
            .collect()
    }

    #[test]
    fn a_status_above_599_keeps_metrics_valid() {
        let mut config = Config::default();
        config.addr = "127.0.0.1:0".parse().expect("an address");
        config.reactors = 1;
        let router = Router::new().get("/odd", |_: &Request<'_>| -> Reply {
            Response::new(StatusCode::from_u16(600).expect("600 is a status")).into()
        });
        let server = Server::start(config, router).expect("starts");
        for path in ["/odd", "/odd"] {
            let answer = get_and_close(server.local_addr(), path);
            assert!(answer.starts_with("HTTP/1.1 600 "), "{answer}");
        }
        let text = server.stats().to_prometheus();
        server.shutdown();
        server.join().expect("joins");

        let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("parses");
        let requests = samples(&scrape, "rtserve_requests_total", "/odd");
        let counted: f64 = requests
            .iter()
            .map(|s| match s.value {
                Value::Counter(v) => v,
                ref other => panic!("not a counter: {other:?}"),
            })
            .sum();
        assert_eq!(counted, 2.0, "{text}");
        assert_eq!(requests[0].labels.get("status"), Some("600"), "{text}");

        let histogram = samples(&scrape, "rtserve_request_duration_seconds", "/odd");
        let Value::Histogram(buckets) = &histogram[0].value else {
            panic!("not a histogram: {:?}", histogram[0]);
        };
        // Cumulative, ending in +Inf, which is the count: what Prometheus accepts.
        assert!(
            buckets.windows(2).all(|w| w[0].count <= w[1].count),
            "{buckets:?}"
        );
        let last = buckets.last().expect("buckets");
        assert!(last.less_than.is_infinite(), "{buckets:?}");
        assert_eq!(last.count, 2.0, "{buckets:?}");
        let count = samples(&scrape, "rtserve_request_duration_seconds_count", "/odd");
        assert!(
            matches!(count[..], [s] if matches!(s.value, Value::Untyped(2.0) | Value::Counter(2.0))),
            "{count:?}"
        );
    }
}
