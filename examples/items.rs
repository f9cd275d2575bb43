//! A small JSON API on rtserve-reactor: items kept in memory, a price check that blocks and so
//! runs on the worker pool under a deadline, and JSON for every error, the server's own
//! included. It needs no crate but the library (feature `json`) and serde.
//!
//! ```sh
//! cargo run --release --example items -- --bind 127.0.0.1:8080 --deadline-header x-budget-ms
//! curl -X PUT -H 'Content-Type: application/json' -d '{"name":"desk lamp","price_cents":4500}' \
//!      http://127.0.0.1:8080/v1/items/7
//! curl http://127.0.0.1:8080/v1/items/7
//! curl -X POST http://127.0.0.1:8080/v1/items/7/price-check
//! curl -X POST -H 'x-budget-ms: 5' http://127.0.0.1:8080/v1/items/7/price-check   # 503
//! curl http://127.0.0.1:8080/v1/items/8                                            # 404
//! curl -X PUT -H 'Content-Type: application/json' -d '{"name":' \
//!      http://127.0.0.1:8080/v1/items/7                                            # 400
//! curl -X DELETE http://127.0.0.1:8080/v1/items/7                                  # 405
//! curl http://127.0.0.1:8080/nowhere                                               # 404
//! ```
//!
//! - `GET /v1/items/{id}` answers the item, from the in-memory store, inline on the reactor;
//!   404 if there is none.
//! - `PUT /v1/items/{id}` stores the item in its body, `{"name": …, "price_cents": …}`: 201
//!   when it is new, 200 when it replaces one. A body that is not such an item is 400, one
//!   that is not JSON 415.
//! - `POST /v1/items/{id}/price-check` compares the item's price with the market's, from a
//!   catalogue whose lookup blocks (20 ms, simulated; `--lookup-ms N` to change it). So it is
//!   offloaded to the worker pool, under the route's deadline of 100 ms. A job left less time
//!   than the lookup takes answers 503 at once rather than at the deadline; past the deadline
//!   the server answers 503 and drops the job's answer.
//! - Every error is `{"error": REASON, "message": TEXT}` with its status: the handlers' own,
//!   and through `Config::error_answers` the server's (a path no route matches, 405 with its
//!   `Allow`, 408, 413, the 503s of its refusals with their `rtserve-shed` reason, 500).
//!
//! Flags: `items [--bind ADDR] [--lookup-ms N] [--deadline-header NAME]`. With
//! `--deadline-header`, a caller states the time it has left in that header (milliseconds, or
//! `grpc-timeout`'s form such as `100m`), and a request's deadline is the earlier of the
//! caller's and its route's. SIGINT or SIGTERM stops the server once it has answered the
//! requests it has read; a second one exits at once.

use std::{
    borrow::Cow,
    collections::HashMap,
    error::Error,
    sync::{Arc, PoisonError, RwLock},
    time::Duration,
};

use rtserve_reactor::{
    Config, ErrorAnswers, JobContext, Rejection, Reply, Request, Response, Router, Server,
    ServerError, StatusCode, with_deadline,
};
use serde::{Deserialize, Serialize};

/// The price check's deadline, counted from the request's arrival.
pub(crate) const PRICE_CHECK_DEADLINE: Duration = Duration::from_millis(100);

/// How long the catalogue's lookup blocks, unless `--lookup-ms` says otherwise.
pub(crate) const LOOKUP: Duration = Duration::from_millis(20);

/// An item, as a client sends it and as it is stored.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct Item {
    name: String,
    price_cents: u64,
}

/// An item as answered: with its id.
#[derive(Debug, Serialize)]
struct Stored<'a> {
    id: u64,
    #[serde(flatten)]
    item: &'a Item,
}

/// The price check's answer.
#[derive(Debug, Serialize)]
struct PriceCheck {
    id: u64,
    price_cents: u64,
    market_cents: u64,
    /// `below-market`, `at-market` (within 5 %) or `above-market`.
    verdict: &'static str,
}

/// An error, answered as `{"error": …, "message": …}` with its status.
#[derive(Debug, Serialize)]
struct ApiError {
    #[serde(skip)]
    status: StatusCode,
    /// Why, as a stable name for programs: the server's own use [`ServerError::reason`].
    error: &'static str,
    /// Why, as one line for people.
    message: Cow<'static, str>,
}

impl ApiError {
    fn new(status: StatusCode, error: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            status,
            error,
            message: message.into(),
        }
    }

    fn no_such_item(id: u64) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "no-such-item",
            format!("no item {id}"),
        )
    }
}

impl From<ApiError> for Response {
    fn from(error: ApiError) -> Self {
        Self::json(error.status, &error)
    }
}

impl From<ApiError> for Reply {
    fn from(error: ApiError) -> Self {
        Response::from(error).into()
    }
}

/// `req.json()?` answers in this API's shape: 400 for a body that is not an item, 415 for one
/// that is not JSON, with the library's one-line reason.
impl From<Rejection> for ApiError {
    fn from(rejection: Rejection) -> Self {
        let error = match rejection.status() {
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "not-json",
            _ => "bad-json",
        };
        Self::new(rejection.status(), error, rejection.reason().to_owned())
    }
}

/// The server's own error answers (see [`ServerError`]), in the handlers' shape: the hook of
/// `Config::error_answers`.
pub(crate) fn error_answer(error: &ServerError) -> Response {
    ApiError::new(error.status(), error.reason(), error.message()).into()
}

/// The items, by id. The lock is held for one map operation at a time, so the inline routes
/// never wait long for it.
type Store = RwLock<HashMap<u64, Item>>;

/// The `{id}` of the path: a number.
fn item_id(req: &Request<'_>) -> Result<u64, ApiError> {
    let id = req.param("id").unwrap_or_default();
    id.parse().map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad-id",
            format!("an item id is a number, not {id:?}"),
        )
    })
}

/// The item `id`, copied out of the store.
fn find(store: &Store, id: u64) -> Result<Item, ApiError> {
    // Nothing panics while holding the lock, so a poisoned map is still whole.
    let items = store.read().unwrap_or_else(PoisonError::into_inner);
    items
        .get(&id)
        .cloned()
        .ok_or_else(|| ApiError::no_such_item(id))
}

/// `GET /v1/items/{id}`.
fn get_item(store: &Store, req: &Request<'_>) -> Result<Response, ApiError> {
    let id = item_id(req)?;
    let item = find(store, id)?;
    Ok(Response::json(StatusCode::OK, &Stored { id, item: &item }).no_store())
}

/// `PUT /v1/items/{id}`.
fn put_item(store: &Store, req: &Request<'_>) -> Result<Response, ApiError> {
    let id = item_id(req)?;
    let item: Item = req.json()?;
    if item.name.trim().is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid-item",
            "an item's name cannot be empty",
        ));
    }
    let answer = Stored { id, item: &item };
    let replaced = store
        .write()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(id, item.clone());
    let status = replaced.map_or(StatusCode::CREATED, |_| StatusCode::OK);
    Ok(Response::json(status, &answer))
}

/// `POST /v1/items/{id}/price-check`: the item is read inline, so a missing one is a 404 at
/// once; the catalogue's lookup blocks, so it runs on the worker pool.
fn price_check(store: &Store, lookup: Duration, req: &Request<'_>) -> Result<Reply, ApiError> {
    let id = item_id(req)?;
    let item = find(store, id)?;
    Ok(Reply::offload(move |ctx: &JobContext| {
        // Started with too little time left (a long wait in the queue, or a caller's small
        // budget): say so now rather than at the deadline.
        let left = ctx.remaining();
        if left < lookup {
            return ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "too-late",
                format!(
                    "{} ms left, and the price lookup takes {} ms",
                    left.as_millis(),
                    lookup.as_millis()
                ),
            )
            .into();
        }
        let Some(market_cents) = market_price(&item.name, lookup, ctx) else {
            // Cut short: the client left or the deadline passed, and this answer is dropped.
            return Response::new(StatusCode::SERVICE_UNAVAILABLE);
        };
        let verdict = match item.price_cents.saturating_mul(100) {
            p if p < market_cents * 95 => "below-market",
            p if p > market_cents * 105 => "above-market",
            _ => "at-market",
        };
        let answer = PriceCheck {
            id,
            price_cents: item.price_cents,
            market_cents,
            verdict,
        };
        Response::json(StatusCode::OK, &answer)
    }))
}

/// The market price of an item named `name`, from a catalogue whose lookup blocks for
/// `lookup`; `None` if the answer stopped being wanted meanwhile. Simulated: the price is made
/// from the name, 10.00 to 99.99.
fn market_price(name: &str, lookup: Duration, ctx: &JobContext) -> Option<u64> {
    // A real client would take `ctx.remaining()` as its timeout; the sleep ends at the
    // deadline, or when the client leaves.
    if !ctx.sleep(lookup) {
        return None;
    }
    // FNV-1a: the same name always has the same price.
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    Some(1_000 + hash % 9_000)
}

/// The API's routes, over an empty store: the catalogue's lookup takes `lookup` and the price
/// check's deadline is `deadline` ([`LOOKUP`] and [`PRICE_CHECK_DEADLINE`] in the service;
/// tests give others).
pub(crate) fn router(lookup: Duration, deadline: Duration) -> Router {
    let store = Arc::new(Store::default());
    let (reads, writes) = (Arc::clone(&store), Arc::clone(&store));
    Router::new()
        .get("/v1/items/{id}", move |req| get_item(&reads, req))
        .put("/v1/items/{id}", move |req| put_item(&writes, req))
        .post(
            "/v1/items/{id}/price-check",
            with_deadline(deadline, move |req: &Request<'_>| {
                price_check(&store, lookup, req)
            }),
        )
}

fn main() -> Result<(), Box<dyn Error>> {
    let mut config = Config::default();
    config.error_answers = Some(ErrorAnswers::new(error_answer));
    let mut lookup = LOOKUP;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--bind" => config.addr = value()?.parse()?,
            "--lookup-ms" => lookup = Duration::from_millis(value()?.parse()?),
            "--deadline-header" => config.deadline_header = Some(value()?),
            other => return Err(format!("unknown argument {other:?}").into()),
        }
    }
    let server = Server::start(config, router(lookup, PRICE_CHECK_DEADLINE))?;
    eprintln!("items listening on http://{}", server.local_addr());
    // SIGINT or SIGTERM: answer the requests already read, then return; a second one exits at
    // once.
    server.shutdown_on_signals()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use rtserve_reactor::{Harness, Shed, TestRequest};
    use serde_json::{Value, json};

    use super::*;

    /// The price check's deadline in the tests that expect its answer: long enough that a busy
    /// machine cannot turn a 2 ms lookup into a 503.
    const LENIENT: Duration = Duration::from_secs(10);
    const QUICK_LOOKUP: Duration = Duration::from_millis(2);

    /// The status and JSON body of the answer to `request`, its job run.
    #[track_caller]
    fn answer(router: &Router, request: TestRequest) -> (u16, Value) {
        let response = Harness::new().run(router, request).response;
        json_of(&response)
    }

    #[track_caller]
    fn json_of(response: &Response) -> (u16, Value) {
        assert!(
            response
                .headers()
                .any(|h| h == ("Content-Type", &b"application/json"[..])),
            "{response:?}"
        );
        let body = serde_json::from_slice(response.body().as_bytes()).expect("a JSON body");
        (response.status().as_u16(), body)
    }

    fn put(id: &str, body: &Value) -> TestRequest {
        Harness::request("PUT", &format!("/v1/items/{id}")).json(body)
    }

    fn lamp() -> Value {
        json!({ "name": "desk lamp", "price_cents": 4500 })
    }

    #[test]
    fn an_item_put_is_answered_by_get() {
        let router = router(QUICK_LOOKUP, LENIENT);
        let stored = json!({ "id": 7, "name": "desk lamp", "price_cents": 4500 });
        assert_eq!(answer(&router, put("7", &lamp())), (201, stored.clone()));
        assert_eq!(answer(&router, Harness::get("/v1/items/7")), (200, stored));
        let cheaper = json!({ "name": "desk lamp", "price_cents": 3900 });
        assert_eq!(answer(&router, put("7", &cheaper)).0, 200, "replaced");
        assert_eq!(
            answer(&router, Harness::get("/v1/items/7")).1["price_cents"],
            3900
        );
    }

    #[test]
    fn a_missing_item_is_a_json_404() {
        let router = router(QUICK_LOOKUP, LENIENT);
        let missing = json!({ "error": "no-such-item", "message": "no item 8" });
        assert_eq!(
            answer(&router, Harness::get("/v1/items/8")),
            (404, missing.clone())
        );
        // Found missing inline: the price check offloads nothing.
        let check = Harness::post("/v1/items/8/price-check").to_bytes();
        let Reply::Ready(response) = Harness::new().call(&router, &check) else {
            panic!("answered inline");
        };
        assert_eq!(json_of(&response), (404, missing));
        let (status, body) = answer(&router, Harness::get("/v1/items/lamp"));
        assert_eq!((status, &body["error"]), (400, &json!("bad-id")));
    }

    #[test]
    fn a_body_that_is_not_an_item_is_a_json_400() {
        let router = router(QUICK_LOOKUP, LENIENT);
        let json_body = |body: &str| {
            Harness::request("PUT", "/v1/items/7")
                .header("Content-Type", "application/json")
                .body(body.to_owned())
        };
        for body in [
            r#"{"name": "desk lamp""#,
            r#"{"name": "desk lamp", "price_cents": -1}"#,
            r#"{"name": "desk lamp", "price_cents": 4500, "colour": "red"}"#,
        ] {
            let (status, reply) = answer(&router, json_body(body));
            assert_eq!(
                (status, &reply["error"]),
                (400, &json!("bad-json")),
                "{body}"
            );
            let message = reply["message"].as_str().expect("a message");
            assert!(message.starts_with("invalid JSON body: "), "{message}");
        }
        let unnamed = json!({ "name": " ", "price_cents": 1 });
        let (status, reply) = answer(&router, put("7", &unnamed));
        assert_eq!((status, &reply["error"]), (400, &json!("invalid-item")));
        let untyped = Harness::request("PUT", "/v1/items/7").body(lamp().to_string());
        let (status, reply) = answer(&router, untyped);
        assert_eq!((status, &reply["error"]), (415, &json!("not-json")));
        assert_eq!(
            answer(&router, Harness::get("/v1/items/7")).0,
            404,
            "nothing stored"
        );
    }

    #[test]
    fn the_price_check_runs_on_the_pool_under_its_deadline() {
        let router = router(QUICK_LOOKUP, LENIENT);
        answer(&router, put("7", &lamp()));
        let check = || Harness::post("/v1/items/7/price-check");
        let reply = Harness::new().call(&router, &check().to_bytes());
        assert!(matches!(reply, Reply::Offload(_)), "offloaded: {reply:?}");
        let outcome = Harness::new().run(&router, check());
        assert_eq!(outcome.deadline, LENIENT, "the route's deadline");
        assert_eq!(outcome.shed, None);
        let (status, body) = json_of(&outcome.response);
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            (&body["id"], &body["price_cents"]),
            (&json!(7), &json!(4500))
        );
        let market = body["market_cents"].as_u64().expect("a market price");
        assert!((1_000..10_000).contains(&market), "{body}");
        let verdict = if 4500 * 100 < market * 95 {
            "below-market"
        } else if 4500 * 100 > market * 105 {
            "above-market"
        } else {
            "at-market"
        };
        assert_eq!(body["verdict"], verdict);
    }

    #[test]
    fn a_price_check_left_too_little_time_answers_503_at_once() {
        // The lookup would take 40 s; the job starts 30 s into a 60 s deadline (made up: the
        // test does not wait).
        let router = router(Duration::from_secs(40), Duration::from_secs(60));
        answer(&router, put("7", &lamp()));
        let mut harness = Harness::new();
        harness.start_after = Duration::from_secs(30);
        let outcome = harness.run(&router, Harness::post("/v1/items/7/price-check"));
        assert_eq!(outcome.shed, None, "the job's own answer");
        let (status, body) = json_of(&outcome.response);
        assert_eq!(
            (status, &body["error"]),
            (503, &json!("too-late")),
            "{body}"
        );
    }

    #[test]
    fn the_servers_own_errors_are_json() {
        let router = router(QUICK_LOOKUP, LENIENT);
        // What the server sends is the hook's answer to its own (`Config::error_answers`).
        let shaped = |request: TestRequest| {
            let outcome = Harness::new().run(&router, request);
            let error = outcome.response.server_error().expect("the server's own");
            (outcome.shed, json_of(&error_answer(&error)))
        };
        let not_found = json!({ "error": "not-found", "message": "not found" });
        assert_eq!(
            shaped(Harness::get("/v1/nowhere")),
            (None, (404, not_found))
        );
        let (_, (status, body)) = shaped(Harness::request("DELETE", "/v1/items/7"));
        assert_eq!(
            (status, &body["error"]),
            (405, &json!("method-not-allowed"))
        );
        // A job that could not start before its deadline.
        answer(&router, put("7", &lamp()));
        let mut late = Harness::new();
        late.start_after = LENIENT + Duration::from_secs(1);
        let outcome = late.run(&router, Harness::post("/v1/items/7/price-check"));
        assert_eq!(outcome.shed, Some(Shed::Deadline));
        let error = outcome.response.server_error().expect("the server's own");
        let (status, body) = json_of(&error_answer(&error));
        assert_eq!(
            (status, &body["error"]),
            (503, &json!(Shed::Deadline.as_str()))
        );
    }
}
