//! The demo routes: one for each path through the reactor.

use std::{fmt::Write as _, time::Duration};

use rtserve_reactor::{
    Histogram, JobContext, LATENCY_BUCKETS_US, Reply, Request, Response, Router, Shed, StatusCode,
};

/// `/hello` inline, `/slow?ms=N` and `/spin?us=N` on the worker pool, `/status?code=N`,
/// `/echo`, `/metrics`, `/healthz`.
pub(crate) fn router(max_slow: Duration) -> Router {
    Router::new()
        .get("/hello", hello)
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

/// Sleeps `ms` milliseconds (default 1000, at most `--max-slow-ms`) on the worker pool:
/// blocking work, subject to the request's deadline like any other.
fn slow(req: &Request<'_>, max: Duration) -> Reply {
    let ms = match req.query_param("ms").map(|v| v.parse::<u64>()) {
        None => 1000,
        Some(Ok(ms)) => ms,
        Some(Err(_)) => {
            return Response::text(StatusCode::BAD_REQUEST, "ms must be a whole number\n").into();
        }
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
/// than cores share the CPU. It stops early once the answer is no longer wanted.
fn spin(req: &Request<'_>, max: Duration) -> Reply {
    let us = match req.query_param("us").map(|v| v.parse::<u64>()) {
        None => 1000,
        Some(Ok(us)) => us,
        Some(Err(_)) => {
            return Response::text(StatusCode::BAD_REQUEST, "us must be a whole number\n").into();
        }
    };
    let work = Duration::from_micros(us).min(max);
    Reply::offload(move |ctx: &JobContext| {
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
        Response::text(StatusCode::OK, format!("spun {} µs\n", work.as_micros())).no_store()
    })
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
    Response::new(StatusCode::OK)
        .with_static_headers(&[
            ("Content-Type", b"text/plain; version=0.0.4; charset=utf-8"),
            ("Cache-Control", b"no-store"),
        ])
        .with_body(render(&req.stats()))
        .into()
}

/// Renders statistics as Prometheus text.
pub(crate) fn render(stats: &rtserve_reactor::Stats) -> String {
    let mut out = String::with_capacity(4096);
    let requests = "rtserve_requests_total";
    let _ = writeln!(
        out,
        "# HELP {requests} Responses sent, by route and status, the server's own 4xx and 503s \
         included.\n# TYPE {requests} counter"
    );
    for route in &stats.routes {
        let label = escape(&route.name);
        for (status, n) in &route.by_status {
            let _ = writeln!(
                out,
                "{requests}{{route=\"{label}\",status=\"{status}\"}} {n}"
            );
        }
    }
    let histogram = "rtserve_request_duration_seconds";
    let _ = writeln!(
        out,
        "# HELP {histogram} Time from a request's head to its response being queued.\n\
         # TYPE {histogram} histogram"
    );
    for route in &stats.routes {
        let histogram = Histogram {
            bounds_us: &LATENCY_BUCKETS_US,
            buckets: route.buckets.to_vec(),
            count: route.requests(),
            sum_us: route.latency_sum_us,
        };
        let label = format!("route=\"{}\"", escape(&route.name));
        write_histogram(
            &mut out,
            "rtserve_request_duration_seconds",
            &label,
            &histogram,
        );
    }
    let _ = writeln!(
        out,
        "# HELP rtserve_open_connections Open connections, by reactor.\n\
         # TYPE rtserve_open_connections gauge"
    );
    for (reactor, n) in stats.open_connections.iter().enumerate() {
        let _ = writeln!(out, "rtserve_open_connections{{reactor=\"{reactor}\"}} {n}");
    }
    for (name, help, value) in [
        (
            "rtserve_connections_accepted_total",
            "Connections accepted.",
            stats.accepted,
        ),
        (
            "rtserve_deadline_missed_total",
            "Offloaded requests answered 503 because their deadline passed first.",
            stats.shed.get(Shed::Deadline),
        ),
        (
            "rtserve_accept_backoffs_total",
            "Times accepting paused because the process ran out of file descriptors.",
            stats.accept_backoffs,
        ),
        (
            "rtserve_body_budget_refusals_total",
            "Requests answered 503 because the request-body budget had no room for their bodies.",
            stats.body_refusals,
        ),
        (
            "rtserve_slow_bodies_total",
            "Request bodies cut off with a 408: below the minimum rate, paused too long or past \
             their deadline.",
            stats.slow_bodies,
        ),
        (
            "rtserve_access_log_dropped_total",
            "Access-log lines dropped because the log writer fell behind.",
            stats.log_dropped,
        ),
    ] {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
        );
    }
    let bodies = "rtserve_body_bytes";
    let _ = writeln!(
        out,
        "# HELP {bodies} Bytes of request bodies buffered now, against the body budget.\n\
         # TYPE {bodies} gauge\n{bodies} {}",
        stats.body_bytes
    );
    let shed = "rtserve_shed_total";
    let _ = writeln!(
        out,
        "# HELP {shed} Offloaded requests answered 503 without their job's response, by reason \
         (the reason is also in each response's rtserve-shed header).\n# TYPE {shed} counter"
    );
    for reason in Shed::ALL {
        let (label, n) = (reason.as_str(), stats.shed.get(reason));
        let _ = writeln!(out, "{shed}{{reason=\"{label}\"}} {n}");
    }
    let wait = "rtserve_queue_wait_seconds";
    let _ = writeln!(
        out,
        "# HELP {wait} Time offloaded jobs waited for a worker.\n# TYPE {wait} histogram"
    );
    write_histogram(&mut out, wait, "", &stats.queue_wait);
    let late = "rtserve_deadline_lateness_seconds";
    let _ = writeln!(
        out,
        "# HELP {late} How long after its deadline each 503 for a missed deadline went out.\n\
         # TYPE {late} histogram"
    );
    write_histogram(&mut out, late, "", &stats.deadline_lateness);
    let estimate = "rtserve_run_time_estimate_seconds";
    let _ = writeln!(
        out,
        "# HELP {estimate} The worker pool's estimate of a route's job run time.\n\
         # TYPE {estimate} gauge"
    );
    for route in &stats.routes {
        let (label, us) = (escape(&route.name), route.run_time_estimate_us);
        let _ = writeln!(out, "{estimate}{{route=\"{label}\"}} {}", us as f64 / 1e6);
    }
    out
}

/// Writes one histogram's samples; `labels` go before `le` (empty, or `name="value"`).
fn write_histogram(out: &mut String, name: &str, labels: &str, histogram: &Histogram) {
    let sep = if labels.is_empty() { "" } else { "," };
    let braced = if labels.is_empty() {
        String::new()
    } else {
        format!("{{{labels}}}")
    };
    let mut cumulative = 0;
    for (bound, n) in histogram.bounds_us.iter().zip(&histogram.buckets) {
        cumulative += n;
        let le = *bound as f64 / 1e6;
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {cumulative}"
        );
    }
    let count = histogram.count;
    let _ = writeln!(
        out,
        "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}\n\
         {name}_sum{braced} {}\n\
         {name}_count{braced} {count}",
        histogram.sum_us as f64 / 1e6
    );
}

/// Escapes a label value (backslash, double quote, newline).
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
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
        let text = render(&server.stats());
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
