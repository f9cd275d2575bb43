//! The load generator measured against a scripted loopback server (`support`): known delays
//! must show up in the percentiles, a stall must show up only in the corrected histogram, and
//! failures must be counted. Margins are wide: CI is a busy 2-core machine.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use rtserve_loadgen::{LoadConfig, LoadError, Report, run};
use support::{Behavior, Server};

fn config(url: &str, rate: f64, connections: usize, duration_ms: u64) -> LoadConfig {
    let mut config = LoadConfig::new(url.parse().expect("test URL"));
    config.rate = rate;
    config.connections = connections;
    config.duration = Duration::from_millis(duration_ms);
    config.warmup = Duration::from_millis(200);
    config.timeout = Duration::from_secs(2);
    config
}

/// Every scheduled request is a response, an error or unsent: none vanish.
#[track_caller]
fn assert_accounted(report: &Report) {
    assert_eq!(
        report.requests.scheduled,
        report.requests.completed + report.errors.total() + report.requests.unsent,
        "requests unaccounted for:\n{}",
        report.to_markdown()
    );
}

/// Every request sent was answered, without an error; the rest of those scheduled are unsent.
/// A busy machine may hold the generator up so that it sends fewer than it scheduled (they are
/// then unsent, and counted so), but what it sends must be answered and counted right.
#[track_caller]
fn assert_all_sent_answered(report: &Report) {
    assert_eq!(report.errors.total(), 0, "{}", report.to_markdown());
    assert_eq!(
        report.requests.sent,
        report.requests.completed,
        "{}",
        report.to_markdown()
    );
    assert_eq!(
        report.requests.scheduled,
        report.requests.sent + report.requests.unsent,
        "{}",
        report.to_markdown()
    );
    // A generator that sends nothing fails here.
    assert!(report.requests.completed > 0, "{}", report.to_markdown());
}

/// The measured window scheduled `rate × duration` requests (±2 for its edges): that is the
/// schedule, which does not depend on how busy the machine is. A generator that sends too much
/// fails here, as `sent` ≤ `scheduled`.
#[track_caller]
fn assert_scheduled(report: &Report, config: &LoadConfig) {
    let expected = (config.rate * config.duration.as_secs_f64()).round() as u64;
    assert!(
        (expected.saturating_sub(2)..=expected + 2).contains(&report.requests.scheduled),
        "scheduled {}, expected {expected}\n{}",
        report.requests.scheduled,
        report.to_markdown()
    );
    assert!(
        report.requests.sent <= report.requests.scheduled,
        "{}",
        report.to_markdown()
    );
}

fn ms(micros: u64) -> f64 {
    micros as f64 / 1000.0
}

#[test]
fn fixed_delay_shows_in_the_median() {
    let server = Server::start(Behavior {
        delay: Duration::from_millis(50),
        ..Behavior::default()
    });
    // 8 connections × (1 / 50 ms) = 160 req/s capacity; 40 req/s is well under it.
    let report = run(&config(&server.url("/hello"), 40.0, 8, 2000)).expect("run");
    let p50 = ms(report.corrected.value_at_quantile(0.5));
    assert!(
        (50.0..80.0).contains(&p50),
        "p50 {p50} ms\n{}",
        report.to_markdown()
    );
    assert_eq!(report.errors.total(), 0, "{}", report.to_markdown());
    assert_eq!(report.requests.unsent, 0);
    // 2 s at 40 req/s: 80 scheduled in the measured window.
    assert!(
        (78..=82).contains(&report.requests.scheduled),
        "{}",
        report.requests.scheduled
    );
    assert_eq!(report.status_2xx(), report.requests.completed);
    // The server saw warm-up and measured requests alike.
    let served = server.requests.load(std::sync::atomic::Ordering::SeqCst);
    assert!(served >= report.requests.completed, "{served}");
    assert_accounted(&report);
}

#[test]
fn a_stall_shows_in_corrected_latency_only() {
    // The run starts (first connection) at ≈0; warm-up ends at 0.2 s; the stall is 1.2–1.5 s.
    let server = Server::start(Behavior {
        stall: Some((Duration::from_millis(1200), Duration::from_millis(300))),
        ..Behavior::default()
    });
    let mut config = config(&server.url("/"), 200.0, 4, 3000);
    config.timeout = Duration::from_secs(3);
    let report = run(&config).expect("run");
    let corrected = ms(report.corrected.value_at_quantile(0.99));
    let uncorrected = ms(report.uncorrected.value_at_quantile(0.99));
    assert!(
        corrected >= 150.0,
        "corrected p99 {corrected} ms\n{}",
        report.to_markdown()
    );
    assert!(
        uncorrected < 100.0,
        "uncorrected p99 {uncorrected} ms\n{}",
        report.to_markdown()
    );
    // Requests scheduled during the stall waited on their busy connections.
    assert!(report.requests.queued > 0, "{}", report.to_markdown());
    assert_eq!(report.errors.total(), 0, "{}", report.to_markdown());
    assert_accounted(&report);
}

#[test]
fn a_server_gone_mid_run_is_counted_not_hidden() {
    let server = Server::start(Behavior {
        gone_after: Some(Duration::from_millis(1000)),
        ..Behavior::default()
    });
    let mut config = config(&server.url("/"), 100.0, 4, 2000);
    config.timeout = Duration::from_millis(500);
    let started = Instant::now();
    let report = run(&config).expect("run");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(report.requests.completed > 20, "{}", report.to_markdown());
    // About half the run was against a dead port: many failures, each counted.
    assert!(report.errors.total() >= 40, "{}", report.to_markdown());
    assert!(report.errors.connect > 0, "{}", report.to_markdown());
    assert_accounted(&report);
}

#[test]
fn refused_connection_is_an_error_before_the_run() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    }; // Dropped: nothing listens there now.
    let config = config(&format!("http://127.0.0.1:{port}/"), 10.0, 1, 100);
    let err = run(&config).expect_err("nothing listens");
    assert!(matches!(err, LoadError::Connect(..)), "{err}");
}

#[test]
fn statuses_framings_and_modes() {
    let server = Server::start(Behavior::default());
    for (path, pipeline, new_conn) in [
        ("/503", 1, false),
        ("/404", 1, false),
        ("/chunked", 4, false),
        ("/", 8, false),
        ("/", 1, true),
        ("/close", 1, false),
    ] {
        let mut config = config(&server.url(path), 400.0, 4, 500);
        config.pipeline = pipeline;
        config.new_connection_per_request = new_conn;
        let report = run(&config).expect("run");
        let what = format!(
            "{path} pipeline {pipeline} new_conn {new_conn}\n{}",
            report.to_markdown()
        );
        // Every request sent answered. Those still waiting for a connection when the run
        // ended (a new connection per request, or after a closing response, can be mid-connect
        // then), and those a busy machine kept the generator or the server from reaching in
        // time, are unsent: how many is the machine's business, not this test's.
        assert_scheduled(&report, &config);
        assert_all_sent_answered(&report);
        // Each response counted under its status, whatever its framing.
        match path {
            "/503" => assert_eq!(report.status_503(), report.requests.completed, "{what}"),
            "/404" => assert_eq!(report.status_other(), report.requests.completed, "{what}"),
            _ => assert_eq!(report.status_2xx(), report.requests.completed, "{what}"),
        }
        assert_accounted(&report);
    }
}

#[test]
fn large_bodies() {
    let server = Server::start(Behavior::default());
    let config = config(&server.url("/big"), 50.0, 2, 500);
    let report = run(&config).expect("run");
    assert_scheduled(&report, &config);
    assert_all_sent_answered(&report);
    // Every 1 MiB body read whole, as a 2xx response.
    assert_eq!(
        report.status_2xx(),
        report.requests.completed,
        "{}",
        report.to_markdown()
    );
    assert_accounted(&report);
}

#[test]
fn slow_responses_are_timeouts() {
    let server = Server::start(Behavior {
        delay: Duration::from_millis(400),
        ..Behavior::default()
    });
    let mut config = config(&server.url("/"), 20.0, 4, 1000);
    config.timeout = Duration::from_millis(100);
    let report = run(&config).expect("run");
    assert_eq!(report.requests.completed, 0, "{}", report.to_markdown());
    assert!(report.errors.timeout >= 15, "{}", report.to_markdown());
    assert_accounted(&report);
}

#[test]
fn post_with_a_body_and_malformed_responses() {
    let server = Server::start(Behavior::default());
    let mut post = config(&server.url("/"), 200.0, 2, 500);
    post.method = "POST".to_owned();
    post.body = vec![b'x'; 3000];
    let report = run(&post).expect("run");
    assert_scheduled(&report, &post);
    assert_all_sent_answered(&report);
    assert_eq!(
        report.status_2xx(),
        report.requests.completed,
        "{}",
        report.to_markdown()
    );
    assert_accounted(&report);

    let garbage = config(&server.url("/garbage"), 100.0, 2, 500);
    let report = run(&garbage).expect("run");
    assert_scheduled(&report, &garbage);
    // Every request sent got a response that is not HTTP/1.1 (one at a time on each
    // connection, which the server then closes), each counted as malformed.
    assert_eq!(report.requests.completed, 0, "{}", report.to_markdown());
    assert!(report.requests.sent > 0, "{}", report.to_markdown());
    assert_eq!(
        report.errors.malformed,
        report.requests.sent,
        "{}",
        report.to_markdown()
    );
    assert_eq!(
        report.errors.total(),
        report.errors.malformed,
        "{}",
        report.to_markdown()
    );
    assert_accounted(&report);
}

#[test]
fn threads_and_pinning() {
    let server = Server::start(Behavior::default());
    let mut config = config(&server.url("/"), 1000.0, 8, 1000);
    config.threads = 2;
    // Pin to CPUs this process may use (CI may restrict them): two if there are two.
    let allowed = rustix::thread::sched_getaffinity(None).expect("affinity");
    config.cpus = (0..rustix::thread::CpuSet::MAX_CPU)
        .filter(|&cpu| allowed.is_set(cpu))
        .take(2)
        .collect();
    let report = run(&config).expect("run");
    assert_scheduled(&report, &config);
    assert_all_sent_answered(&report);
    assert_eq!(
        report.status_2xx(),
        report.requests.completed,
        "{}",
        report.to_markdown()
    );
    assert_accounted(&report);
    // Both threads sent: every scheduled request has its lag recorded (precision itself is
    // a benchmark figure, not a test: it depends on how busy the machine is).
    assert_eq!(report.schedule_lag.len(), report.requests.scheduled);
    assert!(report.cpu > Duration::ZERO);
}

#[test]
fn reports_render() {
    let server = Server::start(Behavior::default());
    let report = run(&config(&server.url("/"), 100.0, 2, 300)).expect("run");
    assert!(
        report
            .to_markdown()
            .contains("| corrected (from schedule) |")
    );
    assert!(report.to_json().starts_with("{\"target_rate\":100.0,"));
    assert!(report.to_hgrm().contains("#[Max     ="));
}

/// The binary: one clear line and a non-zero exit on bad input; a report on success.
#[test]
fn command_line() {
    let bin = env!("CARGO_BIN_EXE_rtserve-load");
    let out = Command::new(bin)
        .args(["ftp://x/", "--quiet"])
        .output()
        .expect("spawn");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("rtserve-load: bad URL"), "{stderr}");

    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let out = Command::new(bin)
        .args([&format!("http://127.0.0.1:{port}/"), "--quiet"])
        .output()
        .expect("spawn");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("cannot connect"), "{stderr}");

    let help = Command::new(bin).arg("--help").output().expect("spawn");
    let help = String::from_utf8_lossy(&help.stdout);
    for flag in [
        "--rate",
        "--connections",
        "--duration",
        "--warmup",
        "--threads",
        "--cpus",
        "--new-conn",
        "--pipeline",
        "--method",
        "--body-file",
        "--timeout-ms",
        "--json",
        "--hgrm",
        "--quiet",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }

    let server = Server::start(Behavior::default());
    let hgrm = std::env::temp_dir().join(format!("rtserve-load-test-{}.hgrm", std::process::id()));
    let out = Command::new(bin)
        .args([
            &server.url("/"),
            "--rate",
            "200",
            "--duration",
            "500ms",
            "--warmup",
            "100ms",
        ])
        .args(["--quiet", "--json", "--hgrm"])
        .arg(&hgrm)
        .output()
        .expect("spawn");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("\"errors\":{\"connect\":0"), "{stdout}");
    let written = std::fs::read_to_string(&hgrm).expect("hgrm written");
    let _ = std::fs::remove_file(&hgrm);
    assert!(written.contains("Total count"), "{written}");
}

/// A server that answers one request on each connection and then resets it (SO_LINGER 0),
/// for at most `limit` connections or until the listener errs; it stops by itself.
fn answer_then_reset(limit: usize) -> (String, std::thread::JoinHandle<()>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/hello", listener.local_addr().expect("address"));
    let server = std::thread::spawn(move || {
        for stream in listener.incoming().take(limit) {
            let Ok(mut stream) = stream else {
                return;
            };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let mut request = Vec::new();
            let mut buf = [0; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
            let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
            drop(stream);
        }
    });
    (url, server)
}

#[test]
fn a_server_that_answers_then_resets_is_counted_not_crashed() {
    // More connections than the run can open (one request each at 2,000 req/s for 1.2 s);
    // the server thread ends with the count, or with the test process.
    let (url, _server) = answer_then_reset(10_000);
    let mut config = config(&url, 2000.0, 1, 1000);
    config.timeout = Duration::from_secs(1);
    let report = run(&config).expect("the run ends with a report");
    assert_accounted(&report);
    assert!(report.requests.completed > 0, "{}", report.to_markdown());
    assert_eq!(report.status_2xx(), report.requests.completed);
    // A request sent before the reset was seen is lost, and counted as such; how many that
    // is depends on timing (none, when every reset arrives before the next send).
    assert_eq!(
        report.errors.total(),
        report.errors.closed,
        "{}",
        report.to_markdown()
    );
}
