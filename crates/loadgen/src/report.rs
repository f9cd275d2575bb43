//! Results of a run: [`Report`] with its histograms and counters, and its three renderings
//! (Markdown, JSON, `.hgrm`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Highest latency recorded, in microseconds (one hour); larger values saturate here.
const MAX_MICROS: u64 = 3_600_000_000;

/// A latency histogram in microseconds, 3 significant digits (0.1% value precision).
pub(crate) fn new_histogram() -> Histogram<u64> {
    // The bounds are constants that hdrhistogram accepts (low ≥ 1, high ≥ 2·low, sigfig ≤ 5).
    Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("constant histogram bounds are valid")
}

/// What became of the requests scheduled in the measured window: each ends in exactly one
/// place, a response ([`completed`](Self::completed)), an error ([`ErrorCounts`]), or
/// [`unsent`](Self::unsent).
///
/// [`Report::requests`] holds the run's counts, added up over the generator threads, each of
/// which counts its own in one of these. It serialises as the `requests` object of
/// [`Report::to_json`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct RequestCounts {
    /// Requests scheduled in the measured window.
    pub scheduled: u64,
    /// Of those, requests written to a socket.
    pub sent: u64,
    /// Requests that got a complete response (any status).
    pub completed: u64,
    /// Scheduled requests never sent by the end of the run.
    pub unsent: u64,
    /// Requests that found their connection busy at their scheduled time and waited.
    pub queued: u64,
}

impl RequestCounts {
    /// Adds `other`'s counts into these.
    pub(crate) fn add(&mut self, other: &Self) {
        self.scheduled += other.scheduled;
        self.sent += other.sent;
        self.completed += other.completed;
        self.unsent += other.unsent;
        self.queued += other.queued;
    }
}

/// Failed requests by cause. Each scheduled request ends in exactly one place: a response, one
/// of these, or [`RequestCounts::unsent`]. The `errors` object of [`Report::to_json`] is these
/// and their [`total`](Self::total).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ErrorCounts {
    /// The connection this request needed could not be established.
    pub connect: u64,
    /// The connection was reset or closed before the response was complete.
    pub closed: u64,
    /// No complete response within the timeout after sending.
    pub timeout: u64,
    /// The response could not be parsed.
    pub malformed: u64,
}

impl ErrorCounts {
    /// All errors together.
    pub fn total(&self) -> u64 {
        self.connect + self.closed + self.timeout + self.malformed
    }

    pub(crate) fn add(&mut self, other: &Self) {
        self.connect += other.connect;
        self.closed += other.closed;
        self.timeout += other.timeout;
        self.malformed += other.malformed;
    }
}

/// The outcome of a run, merged over all generator threads. Only requests scheduled after the
/// warm-up count.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Report {
    /// The requested rate, requests per second.
    pub target_rate: f64,
    /// The measured duration (excluding warm-up).
    pub duration: Duration,
    /// Connections used.
    pub connections: usize,
    /// Generator threads used.
    pub threads: usize,
    /// Latency from each request's *scheduled* send time to the last byte of its response, µs
    /// (coordinated omission corrected).
    pub corrected: Histogram<u64>,
    /// `corrected`, of the `2xx` responses only.
    pub success: Histogram<u64>,
    /// `corrected`, of the `503` responses only (refusals: how soon did they come?).
    pub refused: Histogram<u64>,
    /// The clients' deadline, if given: goodput counts the `2xx` responses within it.
    pub deadline: Option<Duration>,
    /// Requests offered and goodput per window, if windows were asked for.
    pub windows: crate::Windows,
    /// Latency from each request's *actual* send to the last byte of its response, µs.
    pub uncorrected: Histogram<u64>,
    /// How late the generator issued each request relative to its schedule, µs: a measure of
    /// the generator's own precision. A request issued on a busy connection then waits; that
    /// wait is in `corrected`, not here, and the request is counted in `queued`.
    pub schedule_lag: Histogram<u64>,
    /// What became of the requests scheduled in the measured window: scheduled, sent,
    /// completed, unsent, queued. (In 0.1.0 these five were fields of `Report` itself.)
    pub requests: RequestCounts,
    /// Failed requests by cause.
    pub errors: ErrorCounts,
    /// Responses by status code.
    pub statuses: BTreeMap<u16, u64>,
    /// CPU time (user + system) used by the generator threads.
    pub cpu: Duration,
    /// The busiest generator thread's CPU use as a fraction of the run's wall time. Below
    /// 1 ms between sends a thread spins towards the next send time, so at high rates this is
    /// near 1.0 by design; see [`max_thread_busy`](Self::max_thread_busy) for headroom.
    pub max_thread_utilization: f64,
    /// The busiest generator thread's event loop: the fraction of wall time it spent working
    /// (sending, reading, parsing) rather than waiting or spinning with nothing to do. Near
    /// 1.0 the generator, not the server, is the bottleneck.
    pub max_thread_busy: f64,
}

impl Report {
    /// An empty report for a run of `config`.
    pub(crate) fn new(config: &crate::LoadConfig) -> Self {
        Self {
            target_rate: config.rate,
            duration: config.duration,
            connections: config.connections,
            threads: config.threads,
            corrected: new_histogram(),
            success: new_histogram(),
            refused: new_histogram(),
            deadline: config.deadline,
            windows: crate::Windows::default(),
            uncorrected: new_histogram(),
            schedule_lag: new_histogram(),
            requests: RequestCounts::default(),
            errors: ErrorCounts::default(),
            statuses: BTreeMap::new(),
            cpu: Duration::ZERO,
            max_thread_utilization: 0.0,
            max_thread_busy: 0.0,
        }
    }

    /// Goodput, per second: `2xx` responses within the deadline (all `2xx` without one).
    pub fn goodput(&self) -> f64 {
        let good = match self.deadline {
            Some(deadline) => within(&self.success, deadline),
            None => self.success.len(),
        };
        good as f64 / self.duration.as_secs_f64()
    }

    /// The share of all responses whose corrected latency is within `limit`.
    pub fn share_within(&self, limit: Duration) -> f64 {
        if self.corrected.is_empty() {
            return 0.0;
        }
        within(&self.corrected, limit) as f64 / self.corrected.len() as f64
    }

    /// Responses per second achieved over the measured duration: responses to requests
    /// scheduled in the measured window, divided by its length. Under overload this can be
    /// below the server's momentary throughput, which also serves the warm-up's backlog.
    pub fn achieved_rate(&self) -> f64 {
        self.requests.completed as f64 / self.duration.as_secs_f64()
    }

    /// Responses with a `2xx` status.
    pub fn status_2xx(&self) -> u64 {
        self.statuses.range(200..300).map(|(_, n)| n).sum()
    }

    /// Responses with status `503` (overload shedding), counted apart from other non-`2xx`.
    pub fn status_503(&self) -> u64 {
        self.statuses.get(&503).copied().unwrap_or(0)
    }

    /// Responses with any other non-`2xx` status.
    pub fn status_other(&self) -> u64 {
        self.requests.completed - self.status_2xx() - self.status_503()
    }

    /// A Markdown report: a summary line, the latency table and the counters.
    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "target {:.0} req/s, achieved {:.1} req/s over {:.1} s ({} connections, {} threads)\n",
            self.target_rate,
            self.achieved_rate(),
            self.duration.as_secs_f64(),
            self.connections,
            self.threads,
        );
        out.push_str("| latency (ms) | p50 | p90 | p99 | p99.9 | p99.99 | max |\n");
        out.push_str("|---|---:|---:|---:|---:|---:|---:|\n");
        let mut rows = vec![("corrected (from schedule)", &self.corrected)];
        if !self.refused.is_empty() {
            rows.push(("corrected, 2xx only", &self.success));
            rows.push(("corrected, 503 only", &self.refused));
        }
        rows.push(("uncorrected (from send)", &self.uncorrected));
        rows.push(("schedule lag", &self.schedule_lag));
        for (name, h) in rows {
            let _ = write!(out, "| {name} |");
            for q in QUANTILES {
                let _ = write!(out, " {} |", millis(quantile(h, q)));
            }
            let _ = writeln!(out, " {} |", millis(h.max()));
        }
        let _ = writeln!(
            out,
            "\n| requests | scheduled | sent | completed | unsent | queued | 2xx | 503 | other status |\n\
             |---|---:|---:|---:|---:|---:|---:|---:|---:|\n\
             | count | {} | {} | {} | {} | {} | {} | {} | {} |",
            self.requests.scheduled,
            self.requests.sent,
            self.requests.completed,
            self.requests.unsent,
            self.requests.queued,
            self.status_2xx(),
            self.status_503(),
            self.status_other(),
        );
        if let Some(deadline) = self.deadline {
            let ms = deadline.as_secs_f64() * 1000.0;
            let _ = writeln!(
                out,
                "\ngoodput: {:.1} 2xx/s within the {ms} ms deadline; {:.2}% of all responses \
                 within the deadline + 1 ms",
                self.goodput(),
                self.share_within(deadline + Duration::from_millis(1)) * 100.0
            );
        }
        let e = &self.errors;
        let _ = writeln!(
            out,
            "\n| errors | connect | reset/closed | timeout | malformed |\n\
             |---|---:|---:|---:|---:|\n\
             | count | {} | {} | {} | {} |",
            e.connect, e.closed, e.timeout, e.malformed
        );
        let _ = writeln!(
            out,
            "\ngenerator: {:.2} s CPU; busiest thread {:.0}% of a core (spinning included), \
             its event loop {:.0}% busy{}",
            self.cpu.as_secs_f64(),
            self.max_thread_utilization * 100.0,
            self.max_thread_busy * 100.0,
            if self.max_thread_busy > 0.8 {
                " (the generator may be the bottleneck: add --threads)"
            } else {
                ""
            }
        );
        out
    }

    /// The report as one JSON object: `target_rate`, `achieved_rate`, `duration_s`,
    /// `connections`, `threads`, `latency_us` (one object per histogram: `corrected`, `2xx`,
    /// `503`, `uncorrected`, `schedule_lag`, each with `p50` … `p99_99`, `max`, `mean`,
    /// `count`, in µs), `deadline` and `windows` (`null` when not asked for), `requests`
    /// ([`RequestCounts`]), `status` (`2xx`, `503`, `other`, `by_code`), `errors`
    /// ([`ErrorCounts`] and `total`), `cpu_s`, `max_thread_utilization`, `max_thread_busy`.
    /// Fractional numbers are rounded to three decimals (rates, seconds, utilisations), six
    /// (the share within the deadline + 1 ms) or one (means), and written without trailing
    /// zeros: `100.0`, not `100.000`.
    pub fn to_json(&self) -> String {
        // serde_json fails only on a map key it cannot write as a string; the one map here is
        // keyed by status codes (u16), which it writes as strings. (A non-finite number would
        // be written as null, not fail.)
        serde_json::to_string(&Json::of(self)).expect("a report always serialises")
    }

    /// The corrected histogram's percentile distribution in HdrHistogram's `.hgrm` text format
    /// (values in milliseconds, 5 ticks per half-distance), as `HistogramLogProcessor` and the
    /// online plotter read it.
    pub fn to_hgrm(&self) -> String {
        hgrm(&self.corrected)
    }
}

/// The JSON form of a [`Report`], field by field in the order [`Report::to_json`] writes it.
/// Its keys and nesting are what the scripts that read the generator's output look up.
#[derive(Serialize)]
struct Json<'a> {
    /// [`Report::target_rate`].
    target_rate: f64,
    /// [`Report::achieved_rate`].
    achieved_rate: f64,
    /// [`Report::duration`], in seconds.
    duration_s: f64,
    /// [`Report::connections`].
    connections: usize,
    /// [`Report::threads`].
    threads: usize,
    /// The five histograms, summarised.
    latency_us: Latencies,
    /// The deadline and goodput against it, if a deadline was given (else `null`).
    deadline: Option<DeadlineJson>,
    /// The windows, if windows were asked for (else `null`).
    windows: Option<WindowsJson>,
    /// [`Report::requests`].
    requests: RequestCounts,
    /// Responses by status class and code.
    status: Statuses<'a>,
    /// [`Report::errors`] and their total.
    errors: Errors,
    /// [`Report::cpu`], in seconds.
    cpu_s: f64,
    /// [`Report::max_thread_utilization`].
    max_thread_utilization: f64,
    /// [`Report::max_thread_busy`].
    max_thread_busy: f64,
}

impl<'a> Json<'a> {
    /// The JSON form of `report`.
    fn of(report: &'a Report) -> Self {
        Self {
            target_rate: round(report.target_rate, 3),
            achieved_rate: round(report.achieved_rate(), 3),
            duration_s: round(report.duration.as_secs_f64(), 3),
            connections: report.connections,
            threads: report.threads,
            latency_us: Latencies {
                corrected: Summary::of(&report.corrected),
                success: Summary::of(&report.success),
                refused: Summary::of(&report.refused),
                uncorrected: Summary::of(&report.uncorrected),
                schedule_lag: Summary::of(&report.schedule_lag),
            },
            deadline: report.deadline.map(|d| DeadlineJson {
                us: micros(d),
                goodput_rate: round(report.goodput(), 3),
                share_within_plus_1ms: round(report.share_within(d + Duration::from_millis(1)), 6),
            }),
            windows: (!report.windows.counts.is_empty()).then(|| WindowsJson {
                ms: u64::try_from(report.windows.width.as_millis()).unwrap_or(u64::MAX),
                offered: report.windows.counts.iter().map(|w| w.offered).collect(),
                good: report.windows.counts.iter().map(|w| w.good).collect(),
            }),
            requests: report.requests,
            status: Statuses {
                success: report.status_2xx(),
                refused: report.status_503(),
                other: report.status_other(),
                by_code: &report.statuses,
            },
            errors: Errors {
                counts: report.errors,
                total: report.errors.total(),
            },
            cpu_s: round(report.cpu.as_secs_f64(), 3),
            max_thread_utilization: round(report.max_thread_utilization, 3),
            max_thread_busy: round(report.max_thread_busy, 3),
        }
    }
}

/// The `latency_us` object: each histogram's summary, keyed as the JSON has always keyed them.
#[derive(Serialize)]
struct Latencies {
    /// [`Report::corrected`].
    corrected: Summary,
    /// [`Report::success`].
    #[serde(rename = "2xx")]
    success: Summary,
    /// [`Report::refused`].
    #[serde(rename = "503")]
    refused: Summary,
    /// [`Report::uncorrected`].
    uncorrected: Summary,
    /// [`Report::schedule_lag`].
    schedule_lag: Summary,
}

/// One histogram's summary, in µs: the [`QUANTILES`], the maximum, the mean and the count.
#[derive(Serialize)]
struct Summary {
    /// The median.
    p50: u64,
    /// The 90th percentile.
    p90: u64,
    /// The 99th percentile.
    p99: u64,
    /// The 99.9th percentile.
    p99_9: u64,
    /// The 99.99th percentile.
    p99_99: u64,
    /// The largest value (0 when empty).
    max: u64,
    /// The mean, to 0.1 µs.
    mean: f64,
    /// How many values.
    count: u64,
}

impl Summary {
    /// The summary of `h`.
    fn of(h: &Histogram<u64>) -> Self {
        let [p50, p90, p99, p99_9, p99_99] = QUANTILES.map(|q| quantile(h, q));
        Self {
            p50,
            p90,
            p99,
            p99_9,
            p99_99,
            max: h.max(),
            mean: round(h.mean(), 1),
            count: h.len(),
        }
    }
}

/// The `deadline` object.
#[derive(Serialize)]
struct DeadlineJson {
    /// The deadline, µs.
    us: u64,
    /// [`Report::goodput`].
    goodput_rate: f64,
    /// [`Report::share_within`] the deadline + 1 ms.
    share_within_plus_1ms: f64,
}

/// The `windows` object: the windows' width and their counts, as two lists in order.
#[derive(Serialize)]
struct WindowsJson {
    /// The windows' width, ms.
    ms: u64,
    /// [`Window::offered`](crate::Window::offered), per window.
    offered: Vec<u64>,
    /// [`Window::good`](crate::Window::good), per window.
    good: Vec<u64>,
}

/// The `status` object: responses by class, and by code.
#[derive(Serialize)]
struct Statuses<'a> {
    /// [`Report::status_2xx`].
    #[serde(rename = "2xx")]
    success: u64,
    /// [`Report::status_503`].
    #[serde(rename = "503")]
    refused: u64,
    /// [`Report::status_other`].
    other: u64,
    /// [`Report::statuses`], the codes as string keys.
    by_code: &'a BTreeMap<u16, u64>,
}

/// The `errors` object: the counts by cause, then their total.
#[derive(Serialize)]
struct Errors {
    /// [`Report::errors`].
    #[serde(flatten)]
    counts: ErrorCounts,
    /// [`ErrorCounts::total`].
    total: u64,
}

/// `value` rounded to `places` decimal places, as `{:.places$}` would print it.
fn round(value: f64, places: i32) -> f64 {
    let scale = 10f64.powi(places);
    (value * scale).round() / scale
}

/// How many values of `h` (µs) are at most `limit`.
fn within(h: &Histogram<u64>, limit: Duration) -> u64 {
    let limit = u64::try_from(limit.as_micros()).unwrap_or(u64::MAX);
    if h.is_empty() {
        0
    } else {
        h.count_between(0, limit.min(h.high()))
    }
}

/// The quantiles in every table, in order.
const QUANTILES: [f64; 5] = [0.5, 0.9, 0.99, 0.999, 0.9999];

fn quantile(h: &Histogram<u64>, q: f64) -> u64 {
    if h.is_empty() {
        0
    } else {
        h.value_at_quantile(q)
    }
}

fn millis(micros: u64) -> String {
    format!("{:.3}", micros as f64 / 1000.0)
}

/// Render `h` (µs) the way HdrHistogram's `outputPercentileDistribution(out, 5, 1000.0)` does.
pub(crate) fn hgrm(h: &Histogram<u64>) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:>12} {:>14} {:>10} {:>14}\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    let mut total = 0u64;
    for v in h.iter_quantiles(5) {
        total += v.count_since_last_iteration();
        let value = h.highest_equivalent(v.value_iterated_to()) as f64 / 1000.0;
        let q = v.quantile_iterated_to();
        if q < 1.0 {
            let _ = writeln!(
                out,
                "{value:12.3} {q:2.12} {total:10} {:14.2}",
                1.0 / (1.0 - q)
            );
        } else {
            let _ = writeln!(out, "{value:12.3} {q:2.12} {total:10}");
        }
    }
    let (mean, stdev, max) = if h.is_empty() {
        (0.0, 0.0, 0.0)
    } else {
        (
            h.mean() / 1000.0,
            h.stdev() / 1000.0,
            h.max() as f64 / 1000.0,
        )
    };
    let _ = writeln!(
        out,
        "#[Mean    = {mean:12.3}, StdDeviation   = {stdev:12.3}]"
    );
    let _ = writeln!(
        out,
        "#[Max     = {max:12.3}, Total count    = {:12}]",
        h.len()
    );
    // HdrHistogram's sub-bucket count: 2 × 10^sigfig rounded up to a power of two.
    let sub_buckets = (2 * 10u64.pow(u32::from(h.sigfig()))).next_power_of_two();
    let _ = writeln!(
        out,
        "#[Buckets = {:12}, SubBuckets     = {sub_buckets:12}]",
        h.buckets()
    );
    out
}

/// Whole microseconds, saturating.
pub(crate) fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        let mut corrected = new_histogram();
        let (mut success, mut refused) = (new_histogram(), new_histogram());
        for v in 1..=1000 {
            corrected.record(v * 100).unwrap();
            // 100 µs to 99 ms answered 200, the six slowest but four 503.
            match v {
                ..=990 => success.record(v * 100).unwrap(),
                995.. => refused.record(v * 100).unwrap(),
                _ => {}
            }
        }
        Report {
            target_rate: 100.0,
            duration: Duration::from_secs(10),
            connections: 4,
            threads: 1,
            success,
            refused,
            deadline: Some(Duration::from_millis(50)),
            windows: crate::Windows::default(),
            uncorrected: corrected.clone(),
            schedule_lag: new_histogram(),
            corrected,
            requests: RequestCounts {
                scheduled: 1003,
                sent: 1002,
                completed: 1000,
                unsent: 1,
                queued: 0,
            },
            errors: ErrorCounts {
                timeout: 2,
                ..ErrorCounts::default()
            },
            statuses: BTreeMap::from([(200, 990), (404, 4), (503, 6)]),
            cpu: Duration::from_millis(250),
            max_thread_utilization: 0.025,
            max_thread_busy: 0.01,
        }
    }

    #[test]
    fn goodput_counts_the_2xx_within_the_deadline() {
        let r = report();
        // 500 of the 2xx took at most 50 ms, over 10 s.
        assert!((r.goodput() - 50.0).abs() < 0.5, "{}", r.goodput());
        // 510 of the 1000 responses took at most 51 ms.
        let share = r.share_within(Duration::from_millis(51));
        assert!((share - 0.51).abs() < 0.005, "{share}");
        assert!(
            r.to_markdown()
                .contains("goodput: 50.0 2xx/s within the 50 ms deadline")
        );
        assert!(
            r.to_json()
                .contains("\"deadline\":{\"us\":50000,\"goodput_rate\":50.0,")
        );
    }

    #[test]
    fn counts_and_rates() {
        let r = report();
        assert_eq!(
            (r.status_2xx(), r.status_503(), r.status_other()),
            (990, 6, 4)
        );
        assert!((r.achieved_rate() - 100.0).abs() < 1e-9);
        assert_eq!(
            r.requests.scheduled,
            r.requests.completed + r.errors.total() + r.requests.unsent
        );
    }

    #[test]
    fn renderings() {
        let r = report();
        let md = r.to_markdown();
        assert!(
            md.contains("| corrected (from schedule) | 50.015 |"),
            "{md}"
        );
        let json = r.to_json();
        assert!(json.contains("\"p50\":50015"), "{json}");
        assert!(
            json.contains("\"by_code\":{\"200\":990,\"404\":4,\"503\":6}"),
            "{json}"
        );
        assert_eq!(json.matches('{').count(), json.matches('}').count());
        let hgrm = r.to_hgrm();
        let mut lines = hgrm.lines();
        assert!(lines.next().unwrap().contains("1/(1-Percentile)"));
        let rows: Vec<Vec<&str>> = hgrm
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.contains("Value"))
            .map(|l| l.split_whitespace().collect())
            .collect();
        let last = rows.last().unwrap();
        assert_eq!(last[1], "1.000000000000");
        assert_eq!(last[2], "1000");
        assert!(hgrm.contains("Total count    =         1000"), "{hgrm}");
        assert!(hgrm.contains("SubBuckets     =         2048"), "{hgrm}");
    }

    /// Every key path of a JSON value, `by_code`'s own keys (the status codes) left out.
    fn key_paths(value: &serde_json::Value, prefix: &str, out: &mut Vec<String>) {
        if let serde_json::Value::Object(map) = value {
            for (key, inner) in map {
                let path = format!("{prefix}{key}");
                if key != "by_code" {
                    key_paths(inner, &format!("{path}."), out);
                }
                out.push(path);
            }
        }
    }

    #[test]
    fn json_keys_are_the_ones_the_scripts_read() {
        let mut r = report();
        r.windows = crate::Windows {
            width: Duration::from_millis(500),
            deadline: r.deadline,
            counts: vec![
                crate::Window {
                    offered: 5,
                    good: 4
                };
                2
            ],
        };
        let json: serde_json::Value = serde_json::from_str(&r.to_json()).expect("valid JSON");
        let mut keys = Vec::new();
        key_paths(&json, "", &mut keys);
        keys.sort();
        let histogram = [
            "p50", "p90", "p99", "p99_9", "p99_99", "max", "mean", "count",
        ];
        let mut expected: Vec<String> = [
            "target_rate",
            "achieved_rate",
            "duration_s",
            "connections",
            "threads",
            "latency_us",
            "deadline",
            "deadline.us",
            "deadline.goodput_rate",
            "deadline.share_within_plus_1ms",
            "windows",
            "windows.ms",
            "windows.offered",
            "windows.good",
            "requests",
            "requests.scheduled",
            "requests.sent",
            "requests.completed",
            "requests.unsent",
            "requests.queued",
            "status",
            "status.2xx",
            "status.503",
            "status.other",
            "status.by_code",
            "errors",
            "errors.connect",
            "errors.closed",
            "errors.timeout",
            "errors.malformed",
            "errors.total",
            "cpu_s",
            "max_thread_utilization",
            "max_thread_busy",
        ]
        .map(str::to_owned)
        .into_iter()
        .chain(
            ["corrected", "2xx", "503", "uncorrected", "schedule_lag"]
                .into_iter()
                .flat_map(|h| {
                    std::iter::once(format!("latency_us.{h}"))
                        .chain(histogram.map(|q| format!("latency_us.{h}.{q}")))
                }),
        )
        .collect();
        expected.sort();
        assert_eq!(keys, expected);
        // Fields in the order they have always been written.
        let text = r.to_json();
        let at = |key: &str| text.find(&format!("\"{key}\":")).expect(key);
        assert!(at("target_rate") < at("latency_us") && at("latency_us") < at("deadline"));
        assert!(at("windows") < at("requests") && at("requests") < at("status"));
        assert!(at("errors") < at("cpu_s") && at("cpu_s") < at("max_thread_busy"));
        assert_eq!(json["windows"]["good"], serde_json::json!([4, 4]));
        assert_eq!(json["errors"]["total"], 2);
    }
}
