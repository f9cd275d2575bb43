//! The SLO rules (`deploy/prometheus/rtserve-rules.yml`) and the dashboard
//! (`deploy/grafana/rtserve-dashboard.json`) name only what exists: every `rtserve_*` metric
//! they read is in a live `/metrics` of the `rtserve` binary, and every recorded series the
//! dashboard draws is one the rules file records. promtool checks their syntax (`.ci/run`);
//! this checks that they measure something.
//!
//! The server is driven through each outcome the SLO view counts first (an answer in time, a
//! job refused at the door, a job admitted that then missed, a client that hung up), so the
//! per-route counters are checked to move as well as to exist.

mod support;

use std::{
    collections::BTreeSet,
    io::{BufRead, BufReader},
    net::SocketAddr,
    process::{Child, Command, Stdio},
    sync::mpsc,
    thread,
    time::Duration,
};

use prometheus_parse::{Scrape, Value};
use socket2::SockRef;
use support::{Client, TIMEOUT, connect, get, wait_until};

/// The binary under test.
const BIN: &str = env!("CARGO_BIN_EXE_rtserve");

/// The rules file and the dashboard, as shipped.
const RULES: &str = include_str!("../deploy/prometheus/rtserve-rules.yml");
const DASHBOARD: &str = include_str!("../deploy/grafana/rtserve-dashboard.json");

/// The server's deadline: long enough that a busy CI machine answers `/hello` and a 1 ms job
/// within it, short enough that a missed one does not hold the test up.
const DEADLINE_MS: &str = "1000";

/// A running `rtserve`, killed and reaped on drop.
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Server {
    /// Starts `rtserve` on `127.0.0.1:0` with one reactor, one worker and a queue of one (so
    /// that a second job waiting is refused), and reads its address from the startup line.
    #[track_caller]
    fn start() -> Self {
        let mut child = Command::new(BIN)
            .args(["--bind", "127.0.0.1:0", "--threads", "1", "--workers", "1"])
            .args(["--queue", "1", "--deadline-ms", DEADLINE_MS])
            .env_remove("RTSERVE_ACCESS_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start rtserve");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = mpsc::channel();
        // Drains stderr to its end, so the server never blocks on a full pipe.
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let addr = loop {
            let line = rx.recv_timeout(TIMEOUT).expect("a startup line");
            if let Some((_, rest)) = line.split_once(" listening on http://") {
                let addr = rest.split(' ').next().unwrap_or_default();
                break addr.parse().expect("an address in the startup line");
            }
        };
        Self { child, addr }
    }

    /// A client on a new connection.
    fn client(&self) -> Client {
        Client::new(connect(self.addr))
    }

    /// Sends `GET target` on a new connection and returns the status and the `rtserve-shed`
    /// header.
    #[track_caller]
    fn get(&self, target: &str) -> (u16, Option<String>) {
        let mut client = self.client();
        client.send(&get(target));
        let reply = client.response();
        (
            reply.status,
            reply.header("rtserve-shed").map(str::to_owned),
        )
    }

    /// The live metrics, parsed.
    #[track_caller]
    fn scrape(&self) -> Scrape {
        let mut client = self.client();
        client.send(&get("/metrics"));
        let reply = client.response();
        assert_eq!(reply.status, 200, "{reply:?}");
        let text = reply.text();
        Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("Prometheus text")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of the counter `metric` with exactly `labels` (0 where it is not shown).
fn count(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .samples
        .iter()
        .find(|s| {
            s.metric == metric
                && s.labels.len() == labels.len()
                && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v))
        })
        .map_or(0.0, |s| match s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
            ref other => panic!("{metric} is not a single value: {other:?}"),
        })
}

/// Every metric name a scrape shows, a histogram's `_bucket`, `_sum` and `_count` series
/// included (the parser files those under the histogram's own name).
fn live_names(scrape: &Scrape) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for sample in &scrape.samples {
        if matches!(sample.value, Value::Histogram(_) | Value::Summary(_)) {
            for suffix in ["_bucket", "_sum", "_count"] {
                names.insert(format!("{}{suffix}", sample.metric));
            }
        }
        names.insert(sample.metric.clone());
    }
    names
}

/// The identifiers in `text` that name an rtserve series: metric names (`rtserve_…`) and
/// recorded series (`level:rtserve_…:operations` or `rtserve:…:…`, which have colons).
fn series_named(text: &str) -> BTreeSet<&str> {
    let names = |token: &str, prefix: &str| {
        token
            .split_once(prefix)
            .is_some_and(|(_, rest)| rest.starts_with(|c: char| c.is_ascii_lowercase()))
    };
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .map(|token| token.trim_matches(':'))
        .filter(|token| names(token, "rtserve_") || names(token, "rtserve:"))
        .collect()
}

/// The series the rules file records.
fn recorded(rules: &str) -> BTreeSet<&str> {
    rules
        .lines()
        .filter_map(|line| line.trim().strip_prefix("- record:"))
        .map(str::trim)
        .collect()
}

#[test]
fn the_rules_and_the_dashboard_name_only_live_metrics() {
    let server = Server::start();

    // Answers in time: one inline, one job.
    assert_eq!(server.get("/hello"), (200, None));
    assert_eq!(server.get("/slow?ms=1"), (200, None));

    // The only worker busy and the queue of one full: of two more jobs, one at least is
    // refused at the door (the other may wait in the queue, and miss its deadline).
    let mut jobs: Vec<Client> = (0..3)
        .map(|_| {
            let mut client = server.client();
            client.send(&get("/slow?ms=30000"));
            // The server's turn to take it in before the next comes.
            thread::sleep(Duration::from_millis(50));
            client
        })
        .collect();
    let replies: Vec<_> = jobs.iter_mut().map(Client::response).collect();
    // The first was let in, and missed its deadline.
    assert_eq!(
        (replies[0].status, replies[0].header("rtserve-shed")),
        (503, Some("deadline")),
        "{:?}",
        replies[0]
    );
    let reason = replies[1..]
        .iter()
        .filter_map(|r| r.header("rtserve-shed"))
        .find(|&reason| !["deadline", "not-started"].contains(&reason))
        .unwrap_or_else(|| panic!("no job was refused at the door: {replies:?}"))
        .to_owned();
    drop(jobs);

    // A client that leaves with its job in flight: a reset, which the server reads at once.
    let before = count(&server.scrape(), "rtserve_client_hangups_total", &slow());
    let mut leaving = server.client();
    leaving.send(&get("/slow?ms=30000"));
    thread::sleep(Duration::from_millis(100));
    SockRef::from(&leaving.stream)
        .set_linger(Some(Duration::ZERO))
        .expect("SO_LINGER 0");
    drop(leaving);

    let mut scrape = server.scrape();
    assert!(
        wait_until(|| {
            scrape = server.scrape();
            count(&scrape, "rtserve_client_hangups_total", &slow()) > before
        }),
        "the hang-up on /slow was not counted"
    );

    // The per-route outcomes moved.
    let hello = [("route", "/hello")];
    assert!(count(&scrape, "rtserve_goodput_total", &hello) >= 1.0);
    assert!(count(&scrape, "rtserve_goodput_total", &slow()) >= 1.0);
    assert!(count(&scrape, "rtserve_admitted_missed_total", &slow()) >= 1.0);
    let door = [("route", "/slow"), ("reason", reason.as_str())];
    assert!(
        count(&scrape, "rtserve_shed_total", &door) >= 1.0,
        "{reason}"
    );
    assert_eq!(count(&scrape, "rtserve_answered_late_total", &hello), 0.0);

    // Every metric the files read is live; every recorded series the dashboard draws is one
    // the rules record.
    let live = live_names(&scrape);
    let records = recorded(RULES);
    assert!(records.len() > 10, "no recording rules found: {records:?}");
    let mut checked = 0;
    for (file, text) in [("rules", RULES), ("dashboard", DASHBOARD)] {
        for name in series_named(text) {
            if name.contains(':') {
                assert!(
                    records.contains(name),
                    "the {file} reads {name}, which no rule records"
                );
            } else {
                assert!(
                    live.contains(name),
                    "the {file} names {name}, which /metrics does not have"
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 8, "too few metric names found: {checked}");
}

/// The `/slow` route's label.
fn slow() -> [(&'static str, &'static str); 1] {
    [("route", "/slow")]
}
