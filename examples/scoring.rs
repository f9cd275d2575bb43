//! A fraud-scoring service on rtserve-reactor: the shape of a real one.
//!
//! ```sh
//! cargo run --release --example scoring -- --bind 127.0.0.1:8080
//! curl -H 'Content-Type: application/json' \
//!      -d '{"account":"acc-17","amount_cents":125000,"country":"FR","merchant":"electronics","hour":3}' \
//!      http://127.0.0.1:8080/v1/score
//! curl http://127.0.0.1:8080/v1/accounts/acc-17
//! curl http://127.0.0.1:8080/metrics
//! ```
//!
//! - `POST /v1/score` takes a transaction as JSON and answers its score as JSON. The model (a
//!   logistic regression, its weights below) is six multiply-adds and an exponential, so it
//!   runs inline on the reactor. It needs the account's recent history: when that is in the
//!   in-memory cache, the whole answer is inline; when it is not, the lookup in the history
//!   store blocks (1 to 3 ms here, simulated), so the request is offloaded to the worker pool,
//!   under the route's deadline of 20 ms. Past it the client gets 503 at once and the result
//!   is dropped.
//! - `GET /v1/accounts/{id}` answers the cached history of an account, inline (404 if none).
//! - `GET /metrics` (Prometheus text) and `GET /healthz` (503 while draining).
//!
//! Flags: `scoring [--bind ADDR] [--threads N] [--store-ms N] [-q]`. `--store-ms` fixes the
//! store's latency, to see the deadline at work: with 30, every request for an account not in
//! the cache is answered 503. The latency suite runs it (`--scenario scoring`).

use std::{
    borrow::Cow,
    collections::HashMap,
    error::Error,
    sync::{Arc, RwLock},
    time::Duration,
};

use rtserve_reactor::{
    Config, JobContext, Reply, Request, Response, Router, Server, StatusCode, with_deadline,
};
use serde::{Deserialize, Serialize};
use signal_hook::{
    consts::{SIGINT, SIGTERM},
    iterator::Signals,
};

/// The deadline of a score, from the moment its request was read.
const SCORE_DEADLINE: Duration = Duration::from_millis(20);

/// A card transaction, as the client sends it.
///
/// Its strings borrow from the body when they can: a `Cow` with `serde(borrow)` is borrowed
/// unless the JSON string has an escape to undo (`"acc-\u00e9"`, as Python writes any
/// non-ASCII text by default), and owned then. A `&str` field could not take such a string at
/// all: the request would be refused with 400.
#[derive(Debug, Deserialize)]
struct Transaction<'a> {
    #[serde(borrow)]
    account: Cow<'a, str>,
    amount_cents: u64,
    /// ISO 3166 alpha-2.
    #[serde(borrow)]
    country: Cow<'a, str>,
    #[serde(borrow)]
    merchant: Cow<'a, str>,
    /// Local hour, 0 to 23.
    hour: u8,
}

/// What the store knows of an account's recent past.
#[derive(Clone, Debug, Serialize)]
struct History {
    transactions_30d: u32,
    mean_amount_cents: u64,
    chargebacks_1y: u32,
    home_country: String,
}

/// The answer.
#[derive(Debug, Serialize)]
struct Score<'a> {
    account: &'a str,
    /// Probability of fraud, 0 to 1.
    score: f64,
    decision: &'static str,
    /// Whether the history came from the cache (inline) or the store (offloaded).
    cached: bool,
}

/// The model: a logistic regression over six features. The weights would come from training;
/// here they are fixed so that answers are deterministic.
fn fraud_probability(tx: &Transaction<'_>, history: &History) -> f64 {
    const BIAS: f64 = -4.0;
    const W_AMOUNT_RATIO: f64 = 0.9;
    const W_FOREIGN: f64 = 1.3;
    const W_NIGHT: f64 = 0.7;
    const W_RISKY_MERCHANT: f64 = 0.8;
    const W_CHARGEBACKS: f64 = 0.6;
    const W_NEW_ACCOUNT: f64 = 1.1;
    let ratio = tx.amount_cents as f64 / history.mean_amount_cents.max(1) as f64;
    let features = [
        (W_AMOUNT_RATIO, ratio.ln_1p()),
        (
            W_FOREIGN,
            f64::from(u8::from(tx.country != history.home_country)),
        ),
        (W_NIGHT, f64::from(u8::from(tx.hour < 6))),
        (
            W_RISKY_MERCHANT,
            f64::from(u8::from(matches!(
                &*tx.merchant,
                "electronics" | "gift_cards" | "crypto"
            ))),
        ),
        (W_CHARGEBACKS, f64::from(history.chargebacks_1y)),
        (
            W_NEW_ACCOUNT,
            f64::from(u8::from(history.transactions_30d < 3)),
        ),
    ];
    let z = BIAS + features.iter().map(|(w, x)| w * x).sum::<f64>();
    1.0 / (1.0 + (-z).exp())
}

fn decision(score: f64) -> &'static str {
    match score {
        s if s >= 0.8 => "decline",
        s if s >= 0.3 => "review",
        _ => "approve",
    }
}

/// The history store: a lookup blocks for 1 to 3 ms (or a fixed time), as a remote key-value
/// store would. Deterministic: the same account always has the same history.
#[derive(Debug)]
struct Store {
    latency: Option<Duration>,
}

impl Store {
    fn lookup(&self, account: &str, ctx: &JobContext) -> History {
        let hash = account.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
        let latency = self
            .latency
            .unwrap_or_else(|| Duration::from_millis(1 + hash % 3));
        // A real client would pass the deadline on as its own timeout.
        ctx.sleep(latency);
        History {
            transactions_30d: (hash % 40) as u32,
            mean_amount_cents: 2_000 + hash % 20_000,
            chargebacks_1y: ((hash >> 8) % 4) as u32 / 3,
            home_country: if hash % 5 == 0 { "DE" } else { "FR" }.to_owned(),
        }
    }
}

/// The service's state, shared by every reactor and worker.
#[derive(Debug)]
struct Service {
    store: Store,
    /// Histories looked up, by account. A read lock on the inline path, taken only for the
    /// lookup; a write lock only after a store lookup, on a worker.
    cache: RwLock<HashMap<String, History>>,
}

impl Service {
    fn cached(&self, account: &str) -> Option<History> {
        self.cache.read().ok()?.get(account).cloned()
    }
}

/// `POST /v1/score`.
fn score(service: &Arc<Service>, req: &Request<'_>) -> Reply {
    let tx: Transaction<'_> = match req.json() {
        Ok(tx) => tx,
        Err(rejection) => return rejection.into(),
    };
    if tx.hour > 23 {
        return Response::text(StatusCode::BAD_REQUEST, "hour must be 0 to 23\n").into();
    }
    if let Some(history) = service.cached(&tx.account) {
        // Everything in memory: answered inline.
        return answer(&tx, &history, true).into();
    }
    // The store blocks: offload, with what the job needs copied out of the request.
    let service = Arc::clone(service);
    let body = req.body().to_vec();
    Reply::offload(move |ctx: &JobContext| {
        let tx: Transaction<'_> = serde_json::from_slice(&body).expect("parsed on the reactor");
        let history = service.store.lookup(&tx.account, ctx);
        if let Ok(mut cache) = service.cache.write() {
            cache.insert(tx.account.clone().into_owned(), history.clone());
        }
        answer(&tx, &history, false)
    })
}

fn answer(tx: &Transaction<'_>, history: &History, cached: bool) -> Response {
    let score = fraud_probability(tx, history);
    let body = Score {
        account: &tx.account,
        score: (score * 1e4).round() / 1e4,
        decision: decision(score),
        cached,
    };
    Response::json(StatusCode::OK, &body).no_store()
}

/// `GET /v1/accounts/{id}`.
fn account(service: &Service, req: &Request<'_>) -> Reply {
    let id = req.param("id").unwrap_or_default();
    match service.cached(&id) {
        Some(history) => Response::json(StatusCode::OK, &history).no_store().into(),
        None => Response::text(StatusCode::NOT_FOUND, "no history for this account\n").into(),
    }
}

fn metrics(req: &Request<'_>) -> Reply {
    Response::prometheus(&req.stats()).into()
}

fn healthz(req: &Request<'_>) -> Reply {
    let (status, text) = if req.is_draining() {
        (StatusCode::SERVICE_UNAVAILABLE, "draining\n")
    } else {
        (StatusCode::OK, "ok\n")
    };
    Response::text(status, text).no_store().into()
}

/// The service's routes; `store_latency` fixes the store's latency (else 1 to 3 ms).
pub(crate) fn router(store_latency: Option<Duration>) -> Router {
    let service = Arc::new(Service {
        store: Store {
            latency: store_latency,
        },
        cache: RwLock::new(HashMap::new()),
    });
    let scoring = Arc::clone(&service);
    Router::new()
        .post(
            "/v1/score",
            with_deadline(SCORE_DEADLINE, move |req: &Request<'_>| {
                score(&scoring, req)
            }),
        )
        .get("/v1/accounts/{id}", move |req: &Request<'_>| {
            account(&service, req)
        })
        .get("/metrics", metrics)
        .get("/healthz", healthz)
}

#[allow(dead_code)] // The tests use this file's `router` and not its `main`.
fn main() -> Result<(), Box<dyn Error>> {
    let mut config = Config::default();
    let mut store_latency = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--bind" => config.addr = value()?.parse()?,
            "--threads" => config.reactors = value()?.parse()?,
            "--store-ms" => {
                store_latency = Some(Duration::from_millis(value()?.parse()?));
            }
            "-q" => {}
            other => return Err(format!("unknown argument {other:?}").into()),
        }
    }
    let server = Server::start(config, router(store_latency))?;
    eprintln!("scoring listening on http://{}", server.local_addr());
    let mut signals = Signals::new([SIGINT, SIGTERM])?;
    if let Some(signal) = signals.forever().next() {
        eprintln!("signal {signal}: shutting down");
    }
    server.shutdown();
    server.join()?;
    Ok(())
}
