//! Async handlers (feature `tokio`) over real sockets: futures run on a tokio runtime, never on
//! a reactor; their answers go out in request order; they are dropped at the deadline (which
//! is answered 503 whether or not the future cooperates), when the client hangs up, and past a
//! route's limit of futures in flight they are refused at once.

mod support;

use std::{
    future::pending,
    io::Write,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use rtserve_reactor::{
    AsyncContext, Config, Reply, Request, Response, Router, Server, ServerHandle, StatusCode,
    with_deadline,
};
use support::{Client, Dropped, TIMEOUT, connect, stop, wait_until};

fn config() -> Config {
    let mut config = Config::default();
    config.addr = "127.0.0.1:0".parse().unwrap();
    config.reactors = 1;
    config
}

/// A future that never finishes by itself, holding `flag`'s guard.
fn hang(flag: &Arc<AtomicBool>) -> Reply {
    let guard = Dropped(Arc::clone(flag));
    Reply::spawn(move |_: AsyncContext| async move {
        let _guard = guard;
        pending::<()>().await;
        Response::new(StatusCode::OK)
    })
}

/// One request on a new connection: (status, `rtserve-shed` header, body).
fn get(server: &ServerHandle, path: &str) -> (u16, Option<String>, String) {
    let mut client = Client::new(connect(server.local_addr()));
    client.send(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
    let reply = client.response();
    let shed = reply.header("rtserve-shed").map(str::to_owned);
    (reply.status, shed, reply.text())
}

/// Where a future ran, and whether it had time left.
fn whereabouts(_: &Request<'_>) -> Reply {
    Reply::spawn(|ctx: AsyncContext| async move {
        let thread = thread::current().name().unwrap_or("").to_owned();
        let left = !ctx.remaining().is_zero();
        Response::text(StatusCode::OK, format!("{thread} {left}"))
    })
}

#[test]
fn futures_run_on_a_runtime_and_answer_in_request_order() {
    let router = Router::new()
        .get("/where", whereabouts)
        .get("/hello", |_: &Request<'_>| -> Reply {
            Response::text(StatusCode::OK, "hello").into()
        });
    let server = Server::start(config(), router).unwrap();
    let mut client = Client::new(connect(server.local_addr()));
    // Pipelined: an inline answer, a future's, and an inline one again.
    client.send(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\nGET /where HTTP/1.1\r\nHost: x\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(client.response().text(), "hello");
    let reply = client.response();
    // On the runtime the server started, never on a reactor, and with its budget.
    assert_eq!(
        (reply.status, reply.text().as_str()),
        (200, "rtserve-async true")
    );
    assert_eq!(client.response().text(), "hello");
    assert_eq!(server.stats().futures_in_flight, 0);
    stop(server);
}

#[test]
fn futures_run_on_the_runtime_the_application_gives() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("application")
        .build()
        .unwrap();
    let mut config = config();
    config.runtime = Some(runtime.handle().clone());
    let server = Server::start(config, Router::new().get("/where", whereabouts)).unwrap();
    assert_eq!(get(&server, "/where").2, "application true");
    stop(server);
}

#[test]
fn a_future_past_its_deadline_gets_503_at_the_deadline_and_is_dropped() {
    let dropped = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&dropped);
    let router = Router::new().get(
        "/hang",
        with_deadline(Duration::from_millis(200), move |_: &Request<'_>| {
            hang(&flag)
        }),
    );
    let server = Server::start(config(), router).unwrap();
    let started = Instant::now();
    let (status, shed, _) = get(&server, "/hang");
    assert_eq!((status, shed.as_deref()), (503, Some("deadline")));
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert!(
        wait_until(|| dropped.load(Ordering::SeqCst)),
        "the future was not dropped"
    );
    assert!(wait_until(|| server.stats().futures_in_flight == 0));
    assert_eq!(server.stats().futures_cancelled, 1);
    stop(server);
}

#[test]
fn a_client_that_hangs_up_cancels_its_future() {
    let dropped = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&dropped);
    // A deadline past the test's own timeout: only the hang-up can end the future in time.
    let router = Router::new().get(
        "/hang",
        with_deadline(2 * TIMEOUT, move |_: &Request<'_>| hang(&flag)),
    );
    let server = Server::start(config(), router).unwrap();
    let mut stream = connect(server.local_addr());
    stream
        .write_all(b"GET /hang HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert!(wait_until(|| server.stats().futures_in_flight == 1));
    // Gone for good: a reset (a half-close alone still waits for its answer).
    socket2::SockRef::from(&stream)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(stream);
    assert!(
        wait_until(|| dropped.load(Ordering::SeqCst)),
        "the future was not dropped"
    );
    assert!(wait_until(|| server.stats().futures_in_flight == 0));
    assert_eq!(server.stats().futures_cancelled, 1);
    stop(server);
}

#[test]
fn a_route_at_its_limit_of_futures_in_flight_is_refused_at_once() {
    let dropped = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&dropped);
    let router = Router::new()
        .get("/hang", move |_: &Request<'_>| hang(&flag))
        .get("/where", whereabouts);
    let mut config = config();
    config.max_in_flight_per_route = 1;
    let server = Server::start(config, router).unwrap();
    let mut holder = connect(server.local_addr());
    holder
        .write_all(b"GET /hang HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert!(wait_until(|| server.stats().futures_in_flight == 1));
    let (status, shed, _) = get(&server, "/hang");
    assert_eq!((status, shed.as_deref()), (503, Some("in-flight")));
    // Another route has its own limit.
    assert_eq!(get(&server, "/where").0, 200);
    socket2::SockRef::from(&holder)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(holder);
    assert!(wait_until(|| server.stats().futures_in_flight == 0));
    stop(server);
}

#[test]
fn a_future_that_panics_is_answered_500_and_the_server_goes_on() {
    let router = Router::new()
        .get("/panic", |_: &Request<'_>| -> Reply {
            Reply::spawn(|_: AsyncContext| async {
                panic!("a bug in a future");
            })
        })
        .get("/where", whereabouts);
    let server = Server::start(config(), router).unwrap();
    assert_eq!(get(&server, "/panic").0, 500);
    assert_eq!(get(&server, "/where").0, 200);
    assert_eq!(server.stats().futures_in_flight, 0);
    stop(server);
}

#[test]
fn shutdown_drops_futures_still_running_past_the_shutdown_timeout() {
    let dropped = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&dropped);
    let router = Router::new().get(
        "/hang",
        with_deadline(2 * TIMEOUT, move |_: &Request<'_>| hang(&flag)),
    );
    // The application's runtime, which outlives the server: only the reactor can end it.
    let application = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .unwrap();
    let mut config = config();
    config.shutdown_timeout = Duration::from_millis(300);
    config.runtime = Some(application.handle().clone());
    let server = Server::start(config, router).unwrap();
    let mut stream = connect(server.local_addr());
    stream
        .write_all(b"GET /hang HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert!(wait_until(|| server.stats().futures_in_flight == 1));
    server.shutdown();
    // The reactor stops at the shutdown timeout, and drops what the connection was owed:
    // its future is aborted.
    server.join().unwrap();
    assert!(
        wait_until(|| dropped.load(Ordering::SeqCst)),
        "the future was not dropped"
    );
}

#[test]
fn a_closure_that_panics_is_answered_500_off_the_reactor() {
    let router = Router::new()
        .get("/panic", |_: &Request<'_>| -> Reply {
            Reply::spawn(|_: AsyncContext| -> std::future::Ready<Response> {
                panic!("a bug before the future");
            })
        })
        .get("/where", whereabouts);
    let server = Server::start(config(), router).unwrap();
    assert_eq!(get(&server, "/panic").0, 500);
    // The one reactor is still there.
    assert_eq!(get(&server, "/where").0, 200);
    stop(server);
}

#[test]
fn the_runtime_the_server_starts_has_a_timer() {
    let router = Router::new().get("/sleep", |_: &Request<'_>| -> Reply {
        Reply::spawn(|_: AsyncContext| async {
            tokio::time::sleep(Duration::from_millis(5)).await;
            Response::text(StatusCode::OK, "slept")
        })
    });
    let server = Server::start(config(), router).unwrap();
    assert_eq!(get(&server, "/sleep"), (200, None, "slept".to_owned()));
    stop(server);
}

#[test]
fn a_runtime_that_was_shut_down_gives_500_at_once_not_at_the_deadline() {
    let application = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .unwrap();
    let handle = application.handle().clone();
    application.shutdown_timeout(Duration::from_secs(1));
    let mut config = config();
    config.runtime = Some(handle);
    // A deadline past the test's own timeout: only a prompt answer gets here in time.
    let router = Router::new().get("/where", with_deadline(2 * TIMEOUT, whereabouts));
    let server = Server::start(config, router).unwrap();
    assert_eq!(get(&server, "/where").0, 500);
    assert_eq!(server.stats().futures_in_flight, 0);
    stop(server);
}

#[test]
fn a_server_joined_from_async_code_shuts_its_runtime_down_without_panicking() {
    let application = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let server = Server::start(config(), Router::new().get("/where", whereabouts)).unwrap();
    assert_eq!(get(&server, "/where").0, 200);
    // Blocking is not allowed here: the server's own runtime must not be waited for.
    application.block_on(async move {
        server.shutdown();
        server.join().unwrap();
    });
}
