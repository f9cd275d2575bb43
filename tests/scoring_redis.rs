//! The scoring example with Redis as its store (`--store`), against a real `redis-server` of
//! each test's own (started on a free port, killed by the test): histories served from Redis,
//! a slow Redis met at the route's deadline with no future left in flight, a Redis that is down
//! answered 503 at once, and a Redis that restarts recovered from. Each test says it skipped
//! when `redis-server` is not on the PATH (`apt-get install redis-server`).

mod support;

#[path = "../examples/scoring.rs"]
mod scoring;

use std::{
    io::{BufRead, BufReader, Write},
    net::{TcpListener, TcpStream},
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use scoring::RedisClient;
use support::{Client, Reply1, TIMEOUT, TestServer, config, get, wait_until};

/// The scoring route's deadline in the service (20 ms), for the test of the deadline itself.
const DEADLINE: Duration = scoring::SCORE_DEADLINE;

/// The scoring route's deadline in the tests of everything else: 20 ms is missed now and then on
/// a busy CI machine, and a 503 there says nothing about Redis being read, down or back.
const LENIENT_DEADLINE: Duration = Duration::from_secs(10);

/// Well short of [`LENIENT_DEADLINE`]: an answer this prompt did not wait for its time budget
/// (which the Redis client's own timeouts are).
const PROMPT: Duration = Duration::from_secs(5);

/// A `redis-server` child on a port of its own, killed (by its PID) when dropped.
struct RedisServer {
    child: Child,
    port: u16,
}

impl RedisServer {
    /// A new server on a free port, or `None` (and a line saying so) when `redis-server` is
    /// not installed.
    fn start(test: &str) -> Option<Self> {
        if Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_err()
        {
            eprintln!(
                "{test}: skipped: redis-server is not on the PATH (apt-get install redis-server)"
            );
            return None;
        }
        // Redis takes no port 0: take a free port from the kernel, and give it back.
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        Some(Self::start_on(port))
    }

    /// A new server on `port`, once it answers PING.
    #[track_caller]
    fn start_on(port: u16) -> Self {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--loglevel", "warning"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        let server = Self { child, port };
        assert!(
            wait_until(|| server.try_command(&["PING"]).is_some_and(|r| r == "+PONG")),
            "redis-server on port {port} does not answer"
        );
        server
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Sends one command on a connection of its own (not the service's) and reads the first
    /// line of the answer.
    fn try_command(&self, args: &[&str]) -> Option<String> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        stream.set_read_timeout(Some(TIMEOUT)).ok()?;
        let mut request = format!("*{}\r\n", args.len());
        for arg in args {
            request += &format!("${}\r\n{arg}\r\n", arg.len());
        }
        stream.write_all(request.as_bytes()).ok()?;
        let mut line = String::new();
        BufReader::new(stream).read_line(&mut line).ok()?;
        Some(line.trim_end().to_owned())
    }

    #[track_caller]
    fn command(&self, args: &[&str]) -> String {
        self.try_command(args).expect("redis answers")
    }

    /// Kills the server and waits for it to be gone.
    fn kill(mut self) -> u16 {
        self.stop();
        self.port
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn post_score(account: &str) -> Vec<u8> {
    let body = format!(
        r#"{{"account":"{account}","amount_cents":125000,"country":"FR","merchant":"electronics","hour":3}}"#
    );
    format!(
        "POST /v1/score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// One request on a connection of its own, and how long its answer took.
fn timed(server: &TestServer, request: &[u8]) -> (Reply1, Duration) {
    let mut client = Client::new(server.connect());
    let start = Instant::now();
    client.send(request);
    let reply = client.response();
    (reply, start.elapsed())
}

fn json(reply: &Reply1) -> serde_json::Value {
    assert_eq!(reply.status, 200, "{reply:?}");
    serde_json::from_slice(&reply.body).expect("a JSON body")
}

/// No future is left in flight (within a bounded wait): no request is stuck.
#[track_caller]
fn no_future_in_flight(server: &TestServer) {
    assert!(
        wait_until(|| server.stats().futures_in_flight == 0),
        "futures still in flight: {:?}",
        server.stats()
    );
}

/// A 503 that says the store is unavailable, from the future (not the reactor's deadline).
#[track_caller]
fn assert_unavailable(reply: &Reply1, elapsed: Duration) {
    assert_eq!(reply.status, 503, "{reply:?}");
    assert_eq!(
        reply.header("rtserve-store"),
        Some("unavailable"),
        "{reply:?}"
    );
    assert_eq!(reply.header("rtserve-shed"), None, "{reply:?}");
    assert!(
        reply.text().starts_with("history store unavailable: "),
        "{reply:?}"
    );
    // Not a wait until the time budget runs out (the client's timeouts are the request's
    // time left); the bound is loose for a busy CI machine.
    assert!(elapsed < PROMPT, "{elapsed:?}");
}

#[test]
fn seeded_accounts_are_scored_from_redis() {
    let Some(redis) = RedisServer::start("seeded_accounts_are_scored_from_redis") else {
        return;
    };
    scoring::seed(&redis.url(), 100).expect("seeds");
    assert_eq!(redis.command(&["DBSIZE"]), ":100");
    let server = TestServer::start(
        config(),
        scoring::redis_router(&redis.url(), RedisClient::Async, LENIENT_DEADLINE)
            .expect("a Redis URL"),
    );
    // The in-process store gives the same histories: the scores must agree.
    let local = TestServer::start(
        config(),
        scoring::router(Some(Duration::ZERO), LENIENT_DEADLINE),
    );

    for account in ["acc-0", "acc-17", "acc-99"] {
        let (reply, elapsed) = timed(&server, &post_score(account));
        let score = json(&reply);
        eprintln!("{account}: {score} in {elapsed:?}");
        assert_eq!(score["account"], account);
        assert_eq!(score["cached"], false, "Redis is read every time");
        let expected = json(&timed(&local, &post_score(account)).0);
        assert_eq!(score["score"], expected["score"], "{score} vs {expected}");
        assert_eq!(score["decision"], expected["decision"]);

        let (reply, _) = timed(&server, &get(&format!("/v1/accounts/{account}")));
        let history = json(&reply);
        let (reply, _) = timed(&local, &get(&format!("/v1/accounts/{account}")));
        assert_eq!(
            history,
            json(&reply),
            "the history in Redis is the sample one"
        );
    }
    // Not seeded: 404, from Redis.
    let (reply, _) = timed(&server, &post_score("acc-100"));
    assert_eq!(reply.status, 404, "{reply:?}");
    let (reply, _) = timed(&server, &get("/v1/accounts/acc-100"));
    assert_eq!(reply.status, 404, "{reply:?}");

    let stats = server.stats();
    assert_eq!(stats.futures_cancelled, 0, "{stats:?}");
    no_future_in_flight(&server);

    // The blocking client, on the worker pool (what the latency suite compares with), reads
    // the same.
    let blocking = TestServer::start(
        config(),
        scoring::redis_router(&redis.url(), RedisClient::Blocking, LENIENT_DEADLINE)
            .expect("a Redis URL"),
    );
    for _ in 0..3 {
        let score = json(&timed(&blocking, &post_score("acc-17")).0);
        let expected = json(&timed(&local, &post_score("acc-17")).0);
        assert_eq!(score["score"], expected["score"], "{score} vs {expected}");
    }
    let (reply, _) = timed(&blocking, &get("/v1/accounts/acc-17"));
    assert!(json(&reply)["transactions_30d"].is_u64());
    assert_eq!(timed(&blocking, &post_score("acc-100")).0.status, 404);
}

#[test]
fn a_slow_redis_is_met_at_the_deadline_and_no_future_outlives_it() {
    let Some(redis) = RedisServer::start("a_slow_redis_is_met_at_the_deadline") else {
        return;
    };
    scoring::seed(&redis.url(), 10).expect("seeds");
    let server = TestServer::start(
        config(),
        scoring::redis_router(&redis.url(), RedisClient::Async, DEADLINE).expect("a Redis URL"),
    );
    // Connected and served (within the deadline: on a busy machine, the first tries may miss it).
    assert!(wait_until(
        || timed(&server, &post_score("acc-1")).0.status == 200
    ));

    // Redis holds every client's commands for 2 s: 100 deadlines, a margin a busy machine keeps
    // between an answer at the deadline and one that waited for Redis. (A pause cannot be
    // lifted early: CLIENT UNPAUSE waits behind it too.)
    let pause = Duration::from_secs(2);
    let paused = Instant::now();
    let millis = pause.as_millis().to_string();
    assert_eq!(redis.command(&["CLIENT", "PAUSE", &millis]), "+OK");
    let requests: Vec<_> = (0..8)
        .map(|n| {
            let mut client = Client::new(server.connect());
            client.send(&post_score(&format!("acc-{n}")));
            (client, Instant::now())
        })
        .collect();
    let mut shed = 0;
    for (mut client, sent) in requests {
        let reply = client.response();
        let elapsed = sent.elapsed();
        eprintln!(
            "503 in {elapsed:?}: shed {:?}, store {:?}",
            reply.header("rtserve-shed"),
            reply.header("rtserve-store")
        );
        assert_eq!(reply.status, 503, "{reply:?}");
        // The reactor's 503 at the deadline (or, if the client's own timeout of the same
        // length fired first, the future's).
        match (reply.header("rtserve-shed"), reply.header("rtserve-store")) {
            (Some("deadline"), None) => shed += 1,
            (None, Some("timeout")) => {}
            _ => panic!("{reply:?}"),
        }
        assert!(
            elapsed >= DEADLINE - Duration::from_millis(2),
            "{elapsed:?}"
        );
    }
    assert!(
        paused.elapsed() < pause,
        "every answer came while Redis was still paused ({:?}): none waited for it",
        paused.elapsed()
    );
    assert!(shed > 0, "no 503 came from the reactor's deadline");
    // Each future ended at the deadline: dropped by the reactor, or ended by the Redis
    // client's own timeout (the request's time left: the same instant). Which of the two
    // comes first is a race a busy machine decides either way; a future that would not end is
    // dropped at its deadline in tests/async_handlers.rs. None outlives its request.
    let stats = server.stats();
    assert!(stats.futures_cancelled <= 8, "{stats:?}");
    no_future_in_flight(&server);

    // After the pause, the same connection serves again.
    thread::sleep(pause.saturating_sub(paused.elapsed()));
    assert!(wait_until(
        || timed(&server, &post_score("acc-2")).0.status == 200
    ));
}

#[test]
fn a_redis_that_is_down_is_a_fast_503() {
    let Some(redis) = RedisServer::start("a_redis_that_is_down_is_a_fast_503") else {
        return;
    };
    scoring::seed(&redis.url(), 10).expect("seeds");
    let url = redis.url();
    let server = TestServer::start(
        config(),
        scoring::redis_router(&url, RedisClient::Async, LENIENT_DEADLINE).expect("a Redis URL"),
    );
    assert_eq!(timed(&server, &post_score("acc-3")).0.status, 200);

    // Killed under a connected service: the connection breaks, then nothing listens.
    let port = redis.kill();
    for n in 0..5 {
        let (reply, elapsed) = timed(&server, &post_score("acc-3"));
        eprintln!("after the kill, #{n}: {} in {elapsed:?}", reply.status);
        assert_unavailable(&reply, elapsed);
    }
    let (reply, elapsed) = timed(&server, &get("/v1/accounts/acc-3"));
    assert_unavailable(&reply, elapsed);

    // A service whose Redis was never there.
    let never = TestServer::start(
        config(),
        scoring::redis_router(&url, RedisClient::Async, LENIENT_DEADLINE).expect("a Redis URL"),
    );
    let (reply, elapsed) = timed(&never, &post_score("acc-3"));
    eprintln!("nothing on port {port}: {reply:?} in {elapsed:?}");
    assert_unavailable(&reply, elapsed);

    assert_eq!(server.stats().futures_cancelled, 0);
    no_future_in_flight(&server);
    no_future_in_flight(&never);
}

#[test]
fn a_redis_that_restarts_is_recovered_from() {
    let Some(redis) = RedisServer::start("a_redis_that_restarts_is_recovered_from") else {
        return;
    };
    scoring::seed(&redis.url(), 10).expect("seeds");
    let server = TestServer::start(
        config(),
        scoring::redis_router(&redis.url(), RedisClient::Async, LENIENT_DEADLINE)
            .expect("a Redis URL"),
    );
    assert_eq!(timed(&server, &post_score("acc-5")).0.status, 200);

    // Traffic throughout: a client scoring every 5 ms, on one keep-alive connection, until
    // told to stop; it keeps each answer's status, store header and time, and counts the
    // answers (all, and 503s) as they come, for the test to wait on.
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    let traffic = thread::spawn({
        let (stop, answered, refused) = (stop.clone(), answered.clone(), refused.clone());
        let mut client = Client::new(server.connect());
        move || {
            let mut answers = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let start = Instant::now();
                client.send(&post_score("acc-5"));
                let reply = client.response();
                let store = reply.header("rtserve-store").map(str::to_owned);
                if reply.status == 503 {
                    refused.fetch_add(1, Ordering::Relaxed);
                }
                answers.push((reply.status, store, start.elapsed()));
                answered.fetch_add(1, Ordering::Relaxed);
                thread::sleep(Duration::from_millis(5));
            }
            answers
        }
    });
    assert!(
        wait_until(|| answered.load(Ordering::Relaxed) >= 2),
        "the traffic is served before the kill"
    );

    let port = redis.kill();
    assert!(
        wait_until(|| refused.load(Ordering::Relaxed) > 0),
        "the traffic saw Redis go"
    );
    let (reply, elapsed) = timed(&server, &post_score("acc-5"));
    assert_unavailable(&reply, elapsed);

    // The same port, an empty Redis, seeded again: the service, not restarted, serves again.
    let redis = RedisServer::start_on(port);
    scoring::seed(&redis.url(), 10).expect("seeds");
    let restarted = Instant::now();
    assert!(
        wait_until(|| timed(&server, &post_score("acc-5")).0.status == 200),
        "not recovered within {TIMEOUT:?}"
    );
    eprintln!("recovered {:?} after the seed", restarted.elapsed());
    // Two more answers: the second of them was asked for after the recovery.
    let before = answered.load(Ordering::Relaxed);
    assert!(
        wait_until(|| answered.load(Ordering::Relaxed) >= before + 2),
        "the traffic goes on after the recovery"
    );
    stop.store(true, Ordering::Relaxed);
    let answers = traffic.join().expect("the traffic thread");

    // Every request of the traffic was answered, promptly: 200 before and after, 503
    // unavailable (or, for a key not seeded again yet, 404) while Redis was away.
    let slowest = answers.iter().map(|a| a.2).max().unwrap_or_default();
    let count = |status| answers.iter().filter(|a| a.0 == status).count();
    eprintln!(
        "{} requests: {} ok, {} unavailable, {} not found; slowest {slowest:?}",
        answers.len(),
        count(200),
        count(503),
        count(404)
    );
    for (status, store, elapsed) in &answers {
        match (status, store.as_deref()) {
            (200 | 404, None) | (503, Some("unavailable")) => {}
            _ => panic!("{status} {store:?} in {elapsed:?}"),
        }
    }
    assert!(slowest < PROMPT, "{slowest:?}");
    assert!(count(503) > 0, "the traffic saw Redis go");
    assert_eq!(answers.last().map(|a| a.0), Some(200), "and come back");
    assert!(count(200) > 2);
    no_future_in_flight(&server);
}
