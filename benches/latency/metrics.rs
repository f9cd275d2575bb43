//! The server's `/metrics`, scraped and parsed as Prometheus would parse it (`prometheus-parse`):
//! the suite's one reader of the server's own counts. The overload scenarios read a route's
//! counts ([`ServerCounts`]) and the deadline-lateness histogram ([`lateness`]) from it, the
//! caller-deadline scenario its 503s by reason and its histograms ([`crate::caller`]).

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    time::Duration,
};

use prometheus_parse::{Sample, Scrape, Value};

/// How long a scrape may take before the server is taken as not answering.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);

/// One scrape of a server's `/metrics`.
pub(crate) struct Metrics(Scrape);

impl Metrics {
    /// Scrapes the server at `addr`: `None` if it does not answer `/metrics` with a 200 within
    /// [`SCRAPE_TIMEOUT`], or if the text does not parse.
    pub(crate) fn scrape(addr: SocketAddr) -> Option<Self> {
        let mut stream = TcpStream::connect(addr).ok()?;
        stream.set_read_timeout(Some(SCRAPE_TIMEOUT)).ok()?;
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
            .ok()?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer).ok()?;
        // The server sends `/metrics` with a Content-Length and closes the connection after it
        // (`Connection: close`), so the body is all that follows the head.
        let (head, body) = answer.split_once("\r\n\r\n")?;
        if !head.starts_with("HTTP/1.1 200 ") {
            return None;
        }
        Scrape::parse(body.lines().map(|line| Ok(line.to_owned())))
            .ok()
            .map(Self)
    }

    /// The sample of `metric` whose labels are exactly `labels`, if the server shows it.
    fn sample(&self, metric: &str, labels: &[(&str, &str)]) -> Option<&Sample> {
        self.0.samples.iter().find(|s| {
            s.metric == metric
                && s.labels.len() == labels.len()
                && labels
                    .iter()
                    .all(|&(name, value)| s.labels.get(name) == Some(value))
        })
    }

    /// The value of the counter or gauge `metric` with exactly `labels`; 0 where the server
    /// does not show it (a count by status appears at its first response) or it is neither.
    pub(crate) fn value(&self, metric: &str, labels: &[(&str, &str)]) -> f64 {
        match self.sample(metric, labels).map(|s| &s.value) {
            Some(Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v)) => *v,
            _ => 0.0,
        }
    }

    /// The sum of the counter `metric` over every sample whose labels include `labels`
    /// (e.g. a shed reason, summed over the routes).
    pub(crate) fn sum(&self, metric: &str, labels: &[(&str, &str)]) -> f64 {
        self.0
            .samples
            .iter()
            .filter(|s| {
                s.metric == metric
                    && labels
                        .iter()
                        .all(|&(name, value)| s.labels.get(name) == Some(value))
            })
            .map(|s| match s.value {
                Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
                _ => 0.0,
            })
            .sum()
    }

    /// The histogram `metric` with exactly `labels`, per bucket in ascending order: (upper
    /// bound in µs, values in that bucket alone), `u64::MAX` for the `+Inf` bucket. Empty
    /// where the server does not show it.
    pub(crate) fn histogram_micros(
        &self,
        metric: &str,
        labels: &[(&str, &str)],
    ) -> Vec<(u64, u64)> {
        let Some(Value::Histogram(buckets)) = self.sample(metric, labels).map(|s| &s.value) else {
            return Vec::new();
        };
        let mut cumulative: Vec<(f64, f64)> =
            buckets.iter().map(|b| (b.less_than, b.count)).collect();
        cumulative.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut below = 0.0;
        cumulative
            .into_iter()
            .map(|(le, count)| {
                let bound = if le.is_finite() {
                    (le * 1e6).round() as u64
                } else {
                    u64::MAX
                };
                let alone = (count - below).max(0.0) as u64;
                below = count;
                (bound, alone)
            })
            .collect()
    }
}

/// What the server counted of one route: its 200s, and 503s by reason, from its `/metrics`.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ServerCounts {
    /// The route's 200s.
    pub(crate) ok: f64,
    /// Let in, and still missed (503 at the deadline, or from a worker that reached it too
    /// late): the server's own count for the route.
    pub(crate) late: f64,
    /// Refused at the door: the queue was full, or the job was expected to miss.
    pub(crate) refused: f64,
}

impl ServerCounts {
    /// The counts of `route` in one scrape.
    pub(crate) fn of(metrics: &Metrics, route: &str) -> Self {
        let shed = |reason: &str| {
            metrics.value(
                "rtserve_shed_total",
                &[("route", route), ("reason", reason)],
            )
        };
        Self {
            ok: metrics.value(
                "rtserve_requests_total",
                &[("route", route), ("status", "200")],
            ),
            late: metrics.value("rtserve_admitted_missed_total", &[("route", route)]),
            refused: shed("queue-full") + shed("expected-miss"),
        }
    }

    /// What was counted between `before` and these counts.
    pub(crate) fn since(&self, before: &Self) -> Self {
        Self {
            ok: self.ok - before.ok,
            late: self.late - before.late,
            refused: self.refused - before.refused,
        }
    }
}

/// The server's `rtserve_deadline_lateness_seconds` histogram, per bucket (as
/// [`Metrics::histogram_micros`] gives it); empty if the server does not answer.
pub(crate) fn lateness(addr: SocketAddr) -> Vec<(u64, u64)> {
    Metrics::scrape(addr)
        .map(|m| m.histogram_micros("rtserve_deadline_lateness_seconds", &[]))
        .unwrap_or_default()
}

/// What the server counted over one caller-deadline run.
#[derive(Clone, Debug, Default)]
pub(crate) struct CallerCounts {
    /// `/slow`'s 200s.
    pub(crate) ok: f64,
    /// 503s at the deadline (`deadline`), on every route.
    pub(crate) deadline: f64,
    /// 503s at once, the job expected to miss (`expected-miss`), on every route.
    pub(crate) expected_miss: f64,
    /// 503s for a budget under the minimum (`caller-budget`), on every route.
    pub(crate) caller_budget: f64,
    /// Jobs that a worker took: the count of the pool's queue-wait histogram.
    pub(crate) jobs: f64,
    /// The deadline-lateness histogram's new observations: (upper bound in µs, count).
    pub(crate) lateness: Vec<(u64, u64)>,
    /// The request-duration histogram of the route "other", where the refusals are filed.
    pub(crate) refusals: Vec<(u64, u64)>,
}

impl CallerCounts {
    /// What the server counted between the scrapes `before` and `after`.
    pub(crate) fn between(before: &Metrics, after: &Metrics) -> Self {
        let shed = |reason: &str| {
            after.sum("rtserve_shed_total", &[("reason", reason)])
                - before.sum("rtserve_shed_total", &[("reason", reason)])
        };
        let delta = |metric: &str, labels: &[(&str, &str)]| {
            after.value(metric, labels) - before.value(metric, labels)
        };
        let histogram = |metric: &str, labels: &[(&str, &str)]| {
            let earlier = before.histogram_micros(metric, labels);
            after
                .histogram_micros(metric, labels)
                .into_iter()
                .map(|(bound, n)| {
                    let was = earlier
                        .iter()
                        .find(|&&(b, _)| b == bound)
                        .map_or(0, |e| e.1);
                    (bound, n.saturating_sub(was))
                })
                .collect()
        };
        Self {
            ok: delta(
                "rtserve_requests_total",
                &[("route", "/slow"), ("status", "200")],
            ),
            deadline: shed("deadline"),
            expected_miss: shed("expected-miss"),
            caller_budget: shed("caller-budget"),
            jobs: delta("rtserve_queue_wait_seconds_count", &[]),
            lateness: histogram("rtserve_deadline_lateness_seconds", &[]),
            refusals: histogram("rtserve_request_duration_seconds", &[("route", "other")]),
        }
    }
}
