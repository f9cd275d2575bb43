//! Statistics as Prometheus text.

use std::fmt::Write as _;

use crate::{Histogram, Response, RouteStats, Shed, Stats, StatusCode};

impl Stats {
    /// The statistics in the Prometheus text exposition format (version 0.0.4): requests by
    /// route and status, latency histograms per route, open connections per reactor, refusals
    /// by reason, queue waits, run-time estimates, the request-body budget, and more, each
    /// with its `# HELP`. [`Response::prometheus`] answers a `/metrics` request with it.
    pub fn to_prometheus(&self) -> String {
        render(self)
    }
}

impl Response {
    /// The answer to a `/metrics` request: `stats` as Prometheus text
    /// ([`Stats::to_prometheus`]), with its content type and `Cache-Control: no-store`.
    ///
    /// # Examples
    ///
    /// ```
    /// use rtserve_reactor::{Reply, Request, Response, Router};
    ///
    /// let router = Router::new().get("/metrics", |req: &Request<'_>| -> Reply {
    ///     Response::prometheus(&req.stats()).into()
    /// });
    /// # let _ = router;
    /// ```
    pub fn prometheus(stats: &Stats) -> Self {
        Self::new(StatusCode::OK)
            .with_static_headers(&[
                ("Content-Type", b"text/plain; version=0.0.4; charset=utf-8"),
                ("Cache-Control", b"no-store"),
            ])
            .with_body(stats.to_prometheus())
    }
}

/// Renders statistics as Prometheus text.
fn render(stats: &Stats) -> String {
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
        let label = format!("route=\"{}\"", escape(&route.name));
        write_histogram(&mut out, histogram, &label, &route.latency);
    }
    let _ = writeln!(
        out,
        "# HELP rtserve_open_connections Open connections, by reactor.\n\
         # TYPE rtserve_open_connections gauge"
    );
    for (reactor, n) in stats.open_connections.iter().enumerate() {
        let _ = writeln!(out, "rtserve_open_connections{{reactor=\"{reactor}\"}} {n}");
    }
    for (name, help, values) in [
        (
            "rtserve_connections_accepted_total",
            "Connections accepted, by reactor.",
            &stats.accepted_by_reactor,
        ),
        (
            "rtserve_reactor_requests_total",
            "Responses sent, by reactor: how the reactors share the work.",
            &stats.requests_by_reactor,
        ),
    ] {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for (reactor, n) in values.iter().enumerate() {
            let _ = writeln!(out, "{name}{{reactor=\"{reactor}\"}} {n}");
        }
    }
    for (name, help, value) in [
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
            "rtserve_output_budget_refusals_total",
            "Responses replaced by a 503 because the output budget had no room for them.",
            stats.output_refusals,
        ),
        (
            "rtserve_write_timeouts_total",
            "Connections dropped because the client took none of their output for the write \
             timeout.",
            stats.write_timeouts,
        ),
        (
            "rtserve_resets_total",
            "Connections closed with a reset, so that the kernel freed the output they queued.",
            stats.resets,
        ),
        (
            "rtserve_futures_cancelled_total",
            "Async handlers' futures dropped before they finished: at their deadline, when \
             their client left, or at shutdown.",
            stats.futures_cancelled,
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
    let futures = "rtserve_futures_in_flight";
    let _ = writeln!(
        out,
        "# HELP {futures} Async handlers' futures running now.\n# TYPE {futures} gauge\n\
         {futures} {}",
        stats.futures_in_flight
    );
    let output = "rtserve_output_bytes";
    let _ = writeln!(
        out,
        "# HELP {output} Bytes of responses waiting for their clients now, against the output \
         budget.\n# TYPE {output} gauge\n{output} {}",
        stats.output_bytes
    );
    let shed = "rtserve_shed_total";
    let _ = writeln!(
        out,
        "# HELP {shed} Offloaded requests answered 503 without their job's response, by route \
         and reason (the reason is also in each response's rtserve-shed header).\n\
         # TYPE {shed} counter"
    );
    for route in &stats.routes {
        let label = escape(&route.name);
        for reason in Shed::ALL {
            let (reason, n) = (reason.as_str(), route.shed.get(reason));
            let _ = writeln!(out, "{shed}{{route=\"{label}\",reason=\"{reason}\"}} {n}");
        }
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
    let queued = "rtserve_socket_queue_seconds";
    let _ = writeln!(
        out,
        "# HELP {queued} How long received bytes waited in their socket for the reactor, per \
         read (from the kernel's receive stamp).\n# TYPE {queued} histogram"
    );
    write_histogram(&mut out, queued, "", &stats.socket_queue);
    let estimate = "rtserve_run_time_estimate_seconds";
    let _ = writeln!(
        out,
        "# HELP {estimate} The worker pool's estimate of a route's job run time (the longest \
         of its cost classes in use).\n# TYPE {estimate} gauge"
    );
    for route in &stats.routes {
        let (label, us) = (escape(&route.name), route.run_time_estimate_us);
        let _ = writeln!(out, "{estimate}{{route=\"{label}\"}} {}", us as f64 / 1e6);
    }
    write_outcomes(&mut out, stats);
    out
}

/// A per-route counter: its name, its help text, and where its value is.
type RouteCounter = (&'static str, &'static str, fn(&RouteStats) -> u64);

/// The outcomes of admission per route, and what the pool learnt from them.
fn write_outcomes(out: &mut String, stats: &Stats) {
    let counters: [RouteCounter; 5] = [
        (
            "rtserve_goodput_total",
            "2xx responses ready before their request's deadline.",
            |r| r.in_time,
        ),
        (
            "rtserve_answered_late_total",
            "2xx responses ready only after their request's deadline (inline handlers, which \
             nothing stops at the deadline; offloaded work that ends late is answered 503).",
            |r| r.answered_late,
        ),
        (
            "rtserve_admitted_missed_total",
            "Offloaded work let in (a job queued, a future spawned) that still missed its \
             deadline.",
            |r| r.admitted_missed,
        ),
        (
            "rtserve_over_refused_total",
            "Jobs refused at the door although a worker fell idle early enough to run them \
             before their deadline.",
            |r| r.over_refused,
        ),
        (
            "rtserve_client_hangups_total",
            "Requests still owed their answer (work in flight, or the answer waiting in line) \
             when the client closed or reset the connection, or took no output for the write \
             timeout.",
            |r| r.hangups,
        ),
    ];
    for (name, help, value) in counters {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for route in &stats.routes {
            let label = escape(&route.name);
            let _ = writeln!(out, "{name}{{route=\"{label}\"}} {}", value(route));
        }
    }
    let margin = "rtserve_admission_margin_seconds";
    let _ = writeln!(
        out,
        "# HELP {margin} The margin a job must leave before its deadline beyond the end the \
         pool predicts for it, learnt from how late recent jobs ended (negative when the \
         predictions run pessimistic; the widest of its cost classes in use).\n\
         # TYPE {margin} gauge"
    );
    for route in &stats.routes {
        let (label, us) = (escape(&route.name), route.admission_margin_us);
        let _ = writeln!(out, "{margin}{{route=\"{label}\"}} {}", us as f64 / 1e6);
    }
    let limit = "rtserve_concurrency_limit";
    let _ = writeln!(
        out,
        "# HELP {limit} How many of a route's jobs may run at once (lower than the workers \
         when its jobs queue for the CPU; the lowest of its cost classes in use).\n\
         # TYPE {limit} gauge"
    );
    for route in &stats.routes {
        let (label, n) = (escape(&route.name), route.concurrency_limit);
        let _ = writeln!(out, "{limit}{{route=\"{label}\"}} {n}");
    }
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
    use std::time::Duration;

    use crate::{
        Shed,
        budget::Budgets,
        stats::{RouteView, StatsRegistry},
    };

    /// Statistics recorded through every path that feeds a metric, on two reactors and the
    /// pool, rendered: the text must not change unless a metric is meant to.
    #[test]
    fn renders_the_recorded_statistics() {
        let registry = StatsRegistry::new(
            2,
            vec!["/a".to_owned(), "/b \"q\"\\\n".to_owned()],
            Budgets::unbounded(),
            4,
        );
        let (one, two) = (&registry.reactors[0], &registry.reactors[1]);
        one.connection_opened();
        two.connection_opened();
        two.connection_opened();
        two.connection_closed();
        one.accept_backoff();
        one.body_refused();
        two.slow_body();
        one.output_refused();
        two.write_timed_out();
        one.reset();
        one.log_dropped();
        for (i, reason) in Shed::ALL.into_iter().enumerate() {
            for _ in 0..=i {
                one.shed(0, reason);
            }
            two.shed(1, reason);
        }
        for us in [5, 10, 11, 999, 10_000, 20_000] {
            one.late(Duration::from_micros(us));
            two.socket_queued(Duration::from_micros(us * 7));
        }
        two.socket_queued(Duration::from_secs(3));
        for (route, status, us) in [
            (0, 200, 90),
            (0, 200, 100),
            (0, 503, 30_000),
            (1, 204, 2_500_001),
            (1, 999, 11_000_000),
            (9, 404, 1),
        ] {
            one.response(route, status, Duration::from_micros(us));
            two.response(route, status, Duration::from_micros(us * 3));
        }
        one.in_time(0);
        two.in_time(1);
        two.answered_late(0);
        one.admitted_missed(2);
        one.hung_up(1);
        two.hung_up(1);
        two.hung_up(5); // clamped to "other"
        for us in [1, 100, 101, 400_000, 20_000_000] {
            registry.pool.waited(Duration::from_micros(us));
        }
        registry.pool.route_view(
            1,
            RouteView {
                expected: Duration::from_micros(1_500),
                margin_ns: -250_000,
                limit: 3,
                over_refused: 7,
            },
        );
        let text = registry.merged().to_prometheus();
        assert_eq!(text, include_str!("../testdata/metrics.txt"));
    }
}
