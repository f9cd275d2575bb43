//! The scoring example served on port 0: routes with parameters, JSON in and out, 400 and 415,
//! the route's deadline, and `/metrics` moving.

mod support;

#[allow(dead_code)] // The Redis store's entry points are tested in tests/scoring_redis.rs.
#[path = "../examples/scoring.rs"]
mod scoring;

use std::time::Duration;

use support::{Client, TestServer, config, get};

fn post_score(body: &str, content_type: &str) -> Vec<u8> {
    format!(
        "POST /v1/score HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The score route's deadline in the tests of everything but the deadline: the service's own
/// (`SCORE_DEADLINE`, 20 ms) is missed now and then on a busy CI machine, and a 503 there says
/// nothing about JSON, caching or routing. A store slower than the deadline is tested apart,
/// under the service's own deadline.
const LENIENT_DEADLINE: Duration = Duration::from_secs(10);

const TX: &str = r#"{"account":"acc-17","amount_cents":125000,"country":"FR","merchant":"electronics","hour":3}"#;

fn json(reply: &support::Reply1) -> serde_json::Value {
    assert_eq!(
        reply.header("content-type"),
        Some("application/json"),
        "{reply:?}"
    );
    serde_json::from_slice(&reply.body).expect("a JSON body")
}

/// The value of `rtserve_requests_total` for a route and status, from `/metrics`.
fn requests_total(client: &mut Client, route: &str, status: u16) -> u64 {
    client.send(&get("/metrics"));
    let text = client.response().text();
    let prefix = format!("rtserve_requests_total{{route=\"{route}\",status=\"{status}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .map_or(0, |n| n.parse().expect("a count"))
}

#[test]
fn scores_inline_when_cached_and_offloaded_when_not() {
    let server = TestServer::start(config(), scoring::router(None, LENIENT_DEADLINE));
    let mut client = Client::new(server.connect());
    let before = requests_total(&mut client, "/v1/score", 200);

    client.send(&post_score(TX, "application/json"));
    let first = client.response();
    assert_eq!(first.status, 200, "{first:?}");
    let first = json(&first);
    assert_eq!(first["account"], "acc-17");
    assert_eq!(first["cached"], false, "the first lookup goes to the store");
    let score = first["score"].as_f64().expect("a score");
    assert!((0.0..=1.0).contains(&score), "{first}");
    assert!(["approve", "review", "decline"].contains(&first["decision"].as_str().unwrap()));

    client.send(&post_score(TX, "application/json"));
    let second = json(&client.response());
    assert_eq!(
        second["cached"], true,
        "then it is answered inline from the cache"
    );
    assert_eq!(
        second["score"], first["score"],
        "the same answer either way"
    );

    // The route with a parameter: the history the store gave.
    client.send(&get("/v1/accounts/acc-17"));
    let account = client.response();
    assert_eq!(account.status, 200, "{account:?}");
    assert!(json(&account)["transactions_30d"].is_u64());
    client.send(&get("/v1/accounts/nobody"));
    assert_eq!(client.response().status, 404);

    // /metrics moved by the two scores, under the route's pattern.
    assert_eq!(requests_total(&mut client, "/v1/score", 200), before + 2);
    client.send(&get("/v1/accounts/acc-17"));
    client.response();
    assert!(requests_total(&mut client, "/v1/accounts/{id}", 200) >= 2);
}

#[test]
fn strings_with_json_escapes_are_scored() {
    let server = TestServer::start(config(), scoring::router(None, LENIENT_DEADLINE));
    let mut client = Client::new(server.connect());
    // As Python's json.dumps writes it by default (ensure_ascii): "acc-é" and "électronique",
    // escaped. A string field that borrows from the body cannot hold the unescaped text.
    let escaped = TX
        .replace("acc-17", r"acc-\u00e9")
        .replace("electronics", r"\u00e9lectronique");
    client.send(&post_score(&escaped, "application/json"));
    let reply = client.response();
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(json(&reply)["account"], "acc-\u{e9}");
    // Then from the cache, under the unescaped name.
    client.send(&post_score(&escaped, "application/json"));
    assert_eq!(json(&client.response())["cached"], true);
    client.send(&get("/v1/accounts/acc-%C3%A9"));
    assert_eq!(client.response().status, 200);
}

#[test]
fn bad_json_is_400_and_a_wrong_content_type_is_415() {
    let server = TestServer::start(config(), scoring::router(None, LENIENT_DEADLINE));
    let mut client = Client::new(server.connect());
    client.send(&post_score(
        r#"{"account":"acc-1","amount_cents":-5}"#,
        "application/json",
    ));
    let bad = client.response();
    assert_eq!(bad.status, 400, "{bad:?}");
    assert!(bad.text().starts_with("invalid JSON body: "), "{bad:?}");
    assert_eq!(bad.text().trim_end().lines().count(), 1);

    client.send(&post_score(TX, "text/plain"));
    assert_eq!(client.response().status, 415);

    let late_hour = TX.replace("\"hour\":3", "\"hour\":24");
    client.send(&post_score(&late_hour, "application/json"));
    assert_eq!(client.response().status, 400);
}

#[test]
fn a_store_slower_than_the_deadline_gets_503() {
    // The store takes 50 ms; the route's deadline is the service's 20 ms. However busy the
    // machine, the store's answer cannot come before the deadline, and one that comes at it
    // or later is dropped for the 503.
    let server = TestServer::start(
        config(),
        scoring::router(Some(Duration::from_millis(50)), scoring::SCORE_DEADLINE),
    );
    let mut client = Client::new(server.connect());
    client.send(&post_score(TX, "application/json"));
    let reply = client.response();
    assert_eq!(reply.status, 503, "{reply:?}");
    assert!(reply.header("rtserve-shed").is_some(), "{reply:?}");
    client.send(&get("/metrics"));
    let metrics = client.response().text();
    assert!(metrics.contains("rtserve_shed_total"), "{metrics}");
}

#[test]
fn without_the_cache_every_score_goes_to_the_store() {
    let server = TestServer::start(
        config(),
        scoring::local_router(None, false, LENIENT_DEADLINE),
    );
    let mut client = Client::new(server.connect());
    for _ in 0..2 {
        client.send(&post_score(TX, "application/json"));
        assert_eq!(json(&client.response())["cached"], false);
    }
    client.send(&get("/v1/accounts/acc-17"));
    assert_eq!(client.response().status, 404, "nothing was cached");
}
