//! The items example served on port 0: one request of each route, and the server's own errors
//! answered as JSON.
//!
//! The example is included whole, so its unit tests (`mod tests`: the offloaded route run by
//! `Harness`, with no socket) run here too, under a plain `cargo test`, which builds examples
//! but runs their tests only when asked (`--example items`).

mod support;

#[allow(dead_code)] // Its `main` and the service's own timings: these tests serve `router`.
#[path = "../examples/items.rs"]
mod items;

use std::time::Duration;

use rtserve_reactor::{ErrorAnswers, Harness, TestRequest};
use serde_json::{Value, json};

use support::{Client, Reply1, TestServer, config};

/// The caller's budget header these tests name.
const BUDGET: &str = "x-budget-ms";

/// The example on port 0 as its `main` configures it, with a caller's budget read from
/// [`BUDGET`]: the catalogue's lookup takes `lookup`, and the price check's deadline is 10 s,
/// so that a busy machine cannot turn a short lookup into a 503.
fn serve(lookup: Duration) -> TestServer {
    let mut config = config();
    config.error_answers = Some(ErrorAnswers::new(items::error_answer));
    config.deadline_header = Some(BUDGET.to_owned());
    TestServer::start(config, items::router(lookup, Duration::from_secs(10)))
}

/// The status and JSON body of the answer to `request`.
#[track_caller]
fn exchange(client: &mut Client, request: TestRequest) -> (u16, Value, Reply1) {
    client.send(&request.to_bytes());
    let reply = client.response();
    assert_eq!(
        reply.header("content-type"),
        Some("application/json"),
        "{reply:?}"
    );
    let body = serde_json::from_slice(&reply.body).expect("a JSON body");
    (reply.status, body, reply)
}

fn put_lamp(client: &mut Client) -> (u16, Value) {
    let lamp = json!({ "name": "desk lamp", "price_cents": 4500 });
    let (status, body, _) = exchange(client, Harness::request("PUT", "/v1/items/7").json(&lamp));
    (status, body)
}

#[test]
fn each_route_answers_json() {
    let server = serve(Duration::from_millis(2));
    let mut client = Client::new(server.connect());
    let stored = json!({ "id": 7, "name": "desk lamp", "price_cents": 4500 });
    assert_eq!(put_lamp(&mut client), (201, stored.clone()));

    let (status, body, reply) = exchange(&mut client, Harness::get("/v1/items/7"));
    assert_eq!((status, body), (200, stored));
    assert_eq!(reply.header("cache-control"), Some("no-store"));

    let check = Harness::post("/v1/items/7/price-check");
    let (status, body, _) = exchange(&mut client, check);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["id"], 7);
    assert!(body["market_cents"].is_u64(), "{body}");
    assert!(body["verdict"].is_string(), "{body}");

    let (status, body, _) = exchange(&mut client, Harness::get("/v1/items/8"));
    assert_eq!((status, &body["error"]), (404, &json!("no-such-item")));
    let bad = Harness::request("PUT", "/v1/items/7")
        .header("Content-Type", "application/json")
        .body(r#"{"name":"#);
    let (status, body, _) = exchange(&mut client, bad);
    assert_eq!((status, &body["error"]), (400, &json!("bad-json")));
}

#[test]
fn the_servers_own_errors_are_json() {
    let server = serve(Duration::from_millis(2));
    let mut client = Client::new(server.connect());

    let (status, body, _) = exchange(&mut client, Harness::get("/nowhere"));
    assert_eq!(
        (status, body),
        (404, json!({ "error": "not-found", "message": "not found" }))
    );

    // The 405 keeps its `Allow`.
    let (status, body, reply) = exchange(&mut client, Harness::request("DELETE", "/v1/items/7"));
    assert_eq!(
        (status, &body["error"]),
        (405, &json!("method-not-allowed"))
    );
    assert_eq!(reply.header("allow"), Some("GET, HEAD, PUT, OPTIONS"));

    // A caller with no time left is refused before the handler runs, and the 503 keeps its
    // `rtserve-shed` reason.
    put_lamp(&mut client);
    let spent = Harness::post("/v1/items/7/price-check").header(BUDGET, "0");
    let (status, body, reply) = exchange(&mut client, spent);
    assert_eq!((status, &body["error"]), (503, &json!("caller-budget")));
    assert_eq!(reply.header("rtserve-shed"), Some("caller-budget"));
}

#[test]
fn a_caller_budget_shorter_than_the_lookup_is_answered_503_at_once() {
    // A lookup of 10 s against a caller's 50 ms: the job answers as soon as it starts, or the
    // server refuses it (a busy machine may start it late); either way in JSON.
    let server = serve(Duration::from_secs(10));
    let mut client = Client::new(server.connect());
    put_lamp(&mut client);
    let hurried = Harness::post("/v1/items/7/price-check").header(BUDGET, "50");
    let (status, body, _) = exchange(&mut client, hurried);
    assert_eq!(status, 503, "{body}");
    let reasons = ["too-late", "expected-miss", "not-started", "deadline"];
    assert!(
        reasons.contains(&body["error"].as_str().unwrap_or_default()),
        "{body}"
    );
}
