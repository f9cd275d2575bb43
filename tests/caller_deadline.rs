//! Caller deadlines over real sockets: a budget in the configured header shortens the
//! request's deadline for its handler and its job, a spent one is refused without running the
//! handler, and one that cannot be read is a 400.

mod support;

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use rtserve_reactor::{JobContext, Reply, Request, Response, Router, StatusCode, with_deadline};
use support::{Client, TestServer, config};

/// `/wait?ms=`: a job that sleeps `ms` (cut short when the answer is no longer wanted) under
/// a route deadline of 60 s, and answers the deadline it was given in ms from the request's
/// arrival; `/inline`: the same figure, from the handler. Counts the handlers run.
fn server(runs: &Arc<AtomicUsize>) -> TestServer {
    let waits = Arc::clone(runs);
    let inlines = Arc::clone(runs);
    let router = Router::new()
        .get(
            "/wait",
            with_deadline(Duration::from_secs(60), move |req: &Request<'_>| -> Reply {
                waits.fetch_add(1, Ordering::SeqCst);
                let ms: u64 = req
                    .query_param("ms")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                let received = req.received();
                Reply::offload(move |ctx: &JobContext| {
                    if !ctx.sleep(Duration::from_millis(ms)) {
                        return Response::new(StatusCode::SERVICE_UNAVAILABLE);
                    }
                    let given = ctx.deadline() - received;
                    Response::text(StatusCode::OK, given.as_millis().to_string())
                })
            }),
        )
        .get("/inline", move |req: &Request<'_>| -> Reply {
            inlines.fetch_add(1, Ordering::SeqCst);
            let given = req.deadline() - req.received();
            Response::text(StatusCode::OK, given.as_millis().to_string()).into()
        });
    let mut config = config();
    config.deadline_header = Some("x-budget".to_owned());
    TestServer::start(config, router)
}

fn get(path: &str, budget: Option<&str>) -> Vec<u8> {
    let budget = budget.map_or(String::new(), |b| format!("X-Budget: {b}\r\n"));
    format!("GET {path} HTTP/1.1\r\nHost: x\r\n{budget}\r\n").into_bytes()
}

#[test]
fn a_callers_budget_becomes_the_deadline_of_the_handler_and_its_job() {
    let runs = Arc::new(AtomicUsize::new(0));
    let server = server(&runs);
    let mut client = Client::new(server.connect());
    for (path, budget, given) in [
        ("/wait?ms=0", Some("20000"), "20000"),
        ("/wait?ms=0", Some("15S"), "15000"),
        ("/wait?ms=0", None, "60000"),
        ("/wait?ms=0", Some("2H"), "60000"),
        ("/inline", Some("3000"), "3000"),
        ("/inline", Some("4000m"), "4000"),
        // The server's default deadline, 5 s, comes first.
        ("/inline", Some("30000"), "5000"),
    ] {
        client.send(&get(path, budget));
        let reply = client.response();
        assert_eq!(reply.status, 200, "{path} {budget:?}: {reply:?}");
        assert_eq!(reply.text(), given, "{path} {budget:?}");
    }
}

#[test]
fn a_job_is_answered_503_at_its_callers_deadline() {
    let runs = Arc::new(AtomicUsize::new(0));
    let server = server(&runs);
    let mut client = Client::new(server.connect());
    // A job of 30 s under a route deadline of 60 s, whose caller has 50 ms: the reactor
    // answers at the caller's deadline, and the job's sleep is cut short.
    client.send(&get("/wait?ms=30000", Some("50")));
    let reply = client.response();
    assert_eq!(reply.status, 503, "{reply:?}");
    assert_eq!(reply.header("rtserve-shed"), Some("deadline"), "{reply:?}");
    // The connection goes on.
    client.send(&get("/inline", None));
    assert_eq!(client.response().status, 200);
}

#[test]
fn a_spent_budget_is_refused_without_running_the_handler() {
    let runs = Arc::new(AtomicUsize::new(0));
    let server = server(&runs);
    let mut client = Client::new(server.connect());
    for budget in ["0", "500u", "0m"] {
        client.send(&get("/wait?ms=0", Some(budget)));
        let reply = client.response();
        assert_eq!(reply.status, 503, "{budget}: {reply:?}");
        assert_eq!(
            reply.header("rtserve-shed"),
            Some("caller-budget"),
            "{reply:?}"
        );
    }
    assert_eq!(runs.load(Ordering::SeqCst), 0, "no handler ran");
    assert_eq!(
        server.stats().shed.get(rtserve_reactor::Shed::CallerBudget),
        3
    );
}

#[test]
fn a_budget_that_cannot_be_read_is_a_400() {
    let runs = Arc::new(AtomicUsize::new(0));
    let server = server(&runs);
    let mut client = Client::new(server.connect());
    for budget in ["soon", "-1", "1.5", "100ms"] {
        client.send(&get("/inline", Some(budget)));
        let reply = client.response();
        assert_eq!(reply.status, 400, "{budget}: {reply:?}");
    }
    assert_eq!(runs.load(Ordering::SeqCst), 0, "no handler ran");
}
