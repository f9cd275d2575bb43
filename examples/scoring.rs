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
//! With `--store redis://HOST:PORT` the history store is Redis, read through an async client
//! in an async handler (`Reply::spawn`): no thread waits on it, and there is no in-process
//! cache (every score and every `GET /v1/accounts/{id}` reads Redis). The client's own
//! timeouts are the request's time left (`ctx.remaining()`); at the deadline the reactor
//! answers 503 and drops the future, which abandons the Redis call. An account Redis does not
//! know is 404. A Redis that cannot be reached is a 503 at once, with `rtserve-store:
//! unavailable` and the reason in the body; the connection is made again by the next request,
//! so a Redis that restarts is recovered from without restarting this service.
//!
//! Flags: `scoring [--bind ADDR] [--threads N] [--store-ms N] [--no-cache] [--store
//! redis://HOST:PORT [--store-client async|blocking] [--seed N]] [-q]`. `--store-ms` fixes the
//! in-process store's latency, to see the deadline at work: with 30, every request for an
//! account not in the cache is answered 503. `--no-cache` looks every account up in the
//! in-process store. `--store-client blocking` reads Redis with the blocking client, as a job
//! on the worker pool, for comparison. `--seed
//! N` writes the histories of accounts `acc-0` to `acc-{N-1}` to the Redis of `--store` (the
//! histories the in-process store would give them) and exits. The latency suite runs it
//! (`--scenario scoring`).
//!
//! `--max-in-flight N` sets `Config::max_in_flight_per_route` (default 1024). `--axum-serve`
//! (with `--store`) serves only `POST /v1/score` with axum's own server instead, on a runtime
//! of `--threads` workers, reading Redis with the same client and a 20 ms
//! `tokio::time::timeout` (503 past it): the peer of benches/downstream_goodput.sh.

use std::{
    borrow::Cow,
    collections::HashMap,
    error::Error,
    fmt,
    sync::{Arc, Mutex, RwLock},
    time::Duration,
};

use redis::{AsyncConnectionConfig, Client, RedisError, aio::MultiplexedConnection};
use rtserve_reactor::{
    AsyncContext, Config, JobContext, Reply, Request, Response, Router, Server, StatusCode,
    with_deadline,
};
use serde::{Deserialize, Serialize};

/// The deadline of a score, from the moment its request was read: the service's own (`main`
/// passes it to the router builders, which take it as a parameter so that a test can give
/// another).
pub(crate) const SCORE_DEADLINE: Duration = Duration::from_millis(20);

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

/// What the store knows of an account's recent past (in Redis, as this JSON).
#[derive(Clone, Debug, Serialize, Deserialize)]
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

/// FNV-1a of an account's name: the seed of its sample history and of the in-process store's
/// latency for it.
fn account_hash(account: &str) -> u64 {
    account.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// The sample history of an account: the in-process store's, and what `--seed` writes to
/// Redis, so that both stores give the same scores.
fn sample_history(account: &str) -> History {
    let hash = account_hash(account);
    History {
        transactions_30d: (hash % 40) as u32,
        mean_amount_cents: 2_000 + hash % 20_000,
        chargebacks_1y: ((hash >> 8) % 4) as u32 / 3,
        home_country: if hash.is_multiple_of(5) { "DE" } else { "FR" }.to_owned(),
    }
}

/// The in-process history store: a lookup blocks for 1 to 3 ms (or a fixed time), as a remote
/// key-value store's blocking client would. Deterministic: the same account always has the
/// same history.
#[derive(Debug)]
struct Store {
    latency: Option<Duration>,
}

impl Store {
    fn lookup(&self, account: &str, ctx: &JobContext) -> History {
        let latency = self
            .latency
            .unwrap_or_else(|| Duration::from_millis(1 + account_hash(account) % 3));
        // A real client would pass the deadline on as its own timeout.
        ctx.sleep(latency);
        sample_history(account)
    }
}

/// The Redis key of an account's history.
fn history_key(account: &str) -> String {
    format!("scoring:history:{account}")
}

/// The history store in Redis, read with the `redis` crate's async client.
///
/// One multiplexed connection carries every request (each call pipelines on it, none waits
/// for another's answer). It is made by the first request that needs it, on the runtime that
/// runs the handlers (its I/O task lives there), and forgotten when it breaks (Redis closed
/// it, restarted, or is gone), so that the next request makes a new one: there is no retry
/// loop for a request to wait behind. Connecting to a port nothing listens on fails at once,
/// so a Redis that is down costs a request a fast 503, not its deadline.
///
/// `--store-client blocking` reads with the crate's blocking client instead, as a job on the
/// worker pool (the latency suite compares the two): connections are kept in a small pool of
/// idle ones, a connection is taken by one job at a time, and one that failed is dropped.
struct RedisStore {
    client: Client,
    mode: RedisClient,
    connection: Mutex<Option<MultiplexedConnection>>,
    idle: Mutex<Vec<redis::Connection>>,
}

/// How the service calls Redis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RedisClient {
    /// The async client, in an async handler (`Reply::spawn`): the default.
    Async,
    /// The blocking client, in a job on the worker pool (`Reply::offload`).
    Blocking,
}

/// Why the Redis store gave no history.
#[derive(Debug)]
enum StoreError {
    /// Redis could not be reached or answered an error (its text).
    Unavailable(RedisError),
    /// Redis did not answer within the request's time left.
    TimedOut,
    /// The value under the account's key is not a history.
    Corrupt(serde_json::Error),
}

impl RedisStore {
    fn open(url: &str, mode: RedisClient) -> Result<Self, RedisError> {
        Ok(Self {
            client: Client::open(url)?,
            mode,
            connection: Mutex::new(None),
            idle: Mutex::new(Vec::new()),
        })
    }

    /// The history of `account`, `None` if Redis has none, within `budget`.
    async fn history(
        &self,
        account: &str,
        budget: Duration,
    ) -> Result<Option<History>, StoreError> {
        let mut connection = self.connection(budget).await?;
        // The client's own timeout: the time the request has left. The reactor answers 503
        // at the deadline and drops this future whichever comes first.
        connection.set_response_timeout(budget);
        let value: Option<String> = redis::cmd("GET")
            .arg(history_key(account))
            .query_async(&mut connection)
            .await
            .map_err(|err| self.failed(err))?;
        value
            .map(|json| serde_json::from_str(&json).map_err(StoreError::Corrupt))
            .transpose()
    }

    /// The shared connection, made first if there is none, within `budget`.
    async fn connection(&self, budget: Duration) -> Result<MultiplexedConnection, StoreError> {
        if let Some(connection) = self.connection.lock().ok().and_then(|c| c.clone()) {
            return Ok(connection);
        }
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(budget))
            .set_response_timeout(Some(budget));
        let connection = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|err| self.failed(err))?;
        // Two requests may both have connected: the later one's connection stays, the other
        // closes when its last request is done.
        if let Ok(mut slot) = self.connection.lock() {
            *slot = Some(connection.clone());
        }
        Ok(connection)
    }

    /// Forgets the connection when `err` says it is broken (not for a timeout: a slow Redis
    /// is still connected), and sorts the error.
    fn failed(&self, err: RedisError) -> StoreError {
        let broken = !err.is_timeout()
            && (err.is_unrecoverable_error() || err.is_io_error() || err.is_connection_dropped());
        if broken && let Ok(mut slot) = self.connection.lock() {
            *slot = None;
        }
        err.into()
    }

    /// The history of `account` with the blocking client, within `budget` (on a worker).
    fn history_blocking(
        &self,
        account: &str,
        budget: Duration,
    ) -> Result<Option<History>, StoreError> {
        // A zero timeout is refused by the socket calls: there is no time left anyway.
        if budget.is_zero() {
            return Err(StoreError::TimedOut);
        }
        let idle = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let mut connection = match idle {
            Some(connection) => connection,
            None => self
                .client
                .get_connection_with_timeout(budget)
                .map_err(StoreError::from)?,
        };
        // The client's own timeouts: the time the request has left.
        connection
            .set_read_timeout(Some(budget))
            .and_then(|()| connection.set_write_timeout(Some(budget)))
            .map_err(StoreError::from)?;
        let value: Option<String> = redis::cmd("GET")
            .arg(history_key(account))
            .query(&mut connection)
            .map_err(StoreError::from)?;
        // Only a connection that answered goes back: one that timed out may still have the
        // answer on its way.
        if let Ok(mut idle) = self.idle.lock() {
            idle.push(connection);
        }
        value
            .map(|json| serde_json::from_str(&json).map_err(StoreError::Corrupt))
            .transpose()
    }
}

impl From<RedisError> for StoreError {
    fn from(err: RedisError) -> Self {
        if err.is_timeout() {
            Self::TimedOut
        } else {
            Self::Unavailable(err)
        }
    }
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("client", &self.client)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl StoreError {
    /// The answer to a request whose history could not be read: 503, with `rtserve-store`
    /// saying why (`unavailable`, `timeout`) and the reason in the body; a corrupt value is
    /// the service's fault, 500.
    fn response(&self) -> Response {
        let (status, reason, text) = match self {
            Self::Unavailable(err) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                format!("history store unavailable: {err}\n"),
            ),
            Self::TimedOut => (
                StatusCode::SERVICE_UNAVAILABLE,
                "timeout",
                "history store timed out\n".to_owned(),
            ),
            Self::Corrupt(err) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "corrupt",
                format!("history store holds a bad history: {err}\n"),
            ),
        };
        Response::text(status, text)
            .with_header("rtserve-store", reason)
            .no_store()
    }
}

/// Writes the sample histories of `acc-0` to `acc-{count-1}` to the Redis at `url`, in the
/// format [`RedisStore`] reads, in batches of `MSET`.
pub(crate) fn seed(url: &str, count: u32) -> Result<(), Box<dyn Error>> {
    const BATCH: u32 = 1_000;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let client = Client::open(url)?;
        let mut connection = client.get_multiplexed_async_connection().await?;
        let mut start = 0;
        while start < count {
            let mut mset = redis::cmd("MSET");
            for n in start..count.min(start + BATCH) {
                let account = format!("acc-{n}");
                mset.arg(history_key(&account))
                    .arg(serde_json::to_string(&sample_history(&account))?);
            }
            mset.query_async::<()>(&mut connection).await?;
            start += BATCH;
        }
        Ok(())
    })
}

/// The service's state, shared by every reactor and worker.
#[derive(Debug)]
struct Service {
    /// The in-process store, used when there is no Redis.
    store: Store,
    /// Redis, when given: then the only store, and nothing is cached in process.
    redis: Option<Arc<RedisStore>>,
    /// Whether the in-process store's histories are cached (`--no-cache` to look every one
    /// up, as the latency suite does to measure the store's path).
    caching: bool,
    /// Histories looked up, by account. A read lock on the inline path, taken only for the
    /// lookup; a write lock only after a store lookup, on a worker.
    cache: RwLock<HashMap<String, History>>,
}

impl Service {
    fn cached(&self, account: &str) -> Option<History> {
        if !self.caching {
            return None;
        }
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
    if let Some(redis) = &service.redis {
        return score_from_redis(redis, req.body());
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
        if service.caching
            && let Ok(mut cache) = service.cache.write()
        {
            cache.insert(tx.account.clone().into_owned(), history.clone());
        }
        answer(&tx, &history, false)
    })
}

/// `POST /v1/score` with Redis as the store: the lookup awaits Redis in a future, on the
/// runtime (or, with the blocking client, blocks a worker).
fn score_from_redis(redis: &Arc<RedisStore>, body: &[u8]) -> Reply {
    let redis = Arc::clone(redis);
    let body = body.to_vec();
    if redis.mode == RedisClient::Blocking {
        return Reply::offload(move |ctx: &JobContext| {
            let tx: Transaction<'_> = serde_json::from_slice(&body).expect("parsed on the reactor");
            match redis.history_blocking(&tx.account, ctx.remaining()) {
                Ok(Some(history)) => answer(&tx, &history, false),
                Ok(None) => no_history(),
                Err(err) => err.response(),
            }
        });
    }
    Reply::spawn(move |ctx: AsyncContext| async move {
        let tx: Transaction<'_> = serde_json::from_slice(&body).expect("parsed on the reactor");
        match redis.history(&tx.account, ctx.remaining()).await {
            Ok(Some(history)) => answer(&tx, &history, false),
            Ok(None) => no_history(),
            Err(err) => err.response(),
        }
    })
}

fn no_history() -> Response {
    Response::text(StatusCode::NOT_FOUND, "no history for this account\n")
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
    if let Some(redis) = &service.redis {
        let redis = Arc::clone(redis);
        let id = id.into_owned(); // the future outlives `req`
        if redis.mode == RedisClient::Blocking {
            return Reply::offload(move |ctx: &JobContext| {
                match redis.history_blocking(&id, ctx.remaining()) {
                    Ok(Some(history)) => Response::json(StatusCode::OK, &history).no_store(),
                    Ok(None) => no_history(),
                    Err(err) => err.response(),
                }
            });
        }
        return Reply::spawn(move |ctx: AsyncContext| async move {
            match redis.history(&id, ctx.remaining()).await {
                Ok(Some(history)) => Response::json(StatusCode::OK, &history).no_store(),
                Ok(None) => no_history(),
                Err(err) => err.response(),
            }
        });
    }
    match service.cached(&id) {
        Some(history) => Response::json(StatusCode::OK, &history).no_store().into(),
        None => no_history().into(),
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

/// The service's routes with the in-process store; `store_latency` fixes its latency (else 1
/// to 3 ms). `deadline` is the score route's deadline: [`SCORE_DEADLINE`] in the service.
pub(crate) fn router(store_latency: Option<Duration>, deadline: Duration) -> Router {
    local_router(store_latency, true, deadline)
}

/// [`router`], with the in-process cache or without it (`--no-cache`).
pub(crate) fn local_router(
    store_latency: Option<Duration>,
    caching: bool,
    deadline: Duration,
) -> Router {
    service_router(
        Service {
            store: Store {
                latency: store_latency,
            },
            redis: None,
            caching,
            cache: RwLock::new(HashMap::new()),
        },
        deadline,
    )
}

/// The service's routes with the Redis at `url` as the store (`redis://HOST:PORT`), called
/// with `client`, the score route under `deadline` ([`SCORE_DEADLINE`] in the service).
/// Nothing connects yet: the first request does.
///
/// # Errors
///
/// `url` is not a Redis URL.
pub(crate) fn redis_router(
    url: &str,
    client: RedisClient,
    deadline: Duration,
) -> Result<Router, RedisError> {
    Ok(service_router(
        Service {
            store: Store { latency: None },
            redis: Some(Arc::new(RedisStore::open(url, client)?)),
            caching: false,
            cache: RwLock::new(HashMap::new()),
        },
        deadline,
    ))
}

fn service_router(service: Service, deadline: Duration) -> Router {
    let service = Arc::new(service);
    let scoring = Arc::clone(&service);
    Router::new()
        .post(
            "/v1/score",
            with_deadline(deadline, move |req: &Request<'_>| score(&scoring, req)),
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
    let mut redis = None;
    let mut seed_count = None;
    let mut client = RedisClient::Async;
    let mut caching = true;
    let mut axum = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--bind" => config.addr = value()?.parse()?,
            "--threads" => config.reactors = value()?.parse()?,
            "--store-ms" => {
                store_latency = Some(Duration::from_millis(value()?.parse()?));
            }
            "--store" => redis = Some(value()?),
            "--seed" => seed_count = Some(value()?.parse()?),
            "--store-client" => {
                client = match value()?.as_str() {
                    "async" => RedisClient::Async,
                    "blocking" => RedisClient::Blocking,
                    other => {
                        return Err(format!("--store-client {other:?}: async or blocking").into());
                    }
                }
            }
            "--no-cache" => caching = false,
            "--max-in-flight" => config.max_in_flight_per_route = value()?.parse()?,
            "--axum-serve" => axum = true,
            "-q" => {}
            other => return Err(format!("unknown argument {other:?}").into()),
        }
    }
    if let Some(count) = seed_count {
        let url = redis.ok_or("--seed needs --store redis://HOST:PORT")?;
        seed(&url, count)?;
        eprintln!(
            "seeded {count} accounts (acc-0 to acc-{}) into {url}",
            count.saturating_sub(1)
        );
        return Ok(());
    }
    if axum {
        let url = redis.ok_or("--axum-serve needs --store redis://HOST:PORT")?;
        return axum_serve(config.addr, config.reactors, &url);
    }
    let router = match (redis, caching) {
        (Some(url), _) => redis_router(&url, client, SCORE_DEADLINE)?,
        (None, true) => router(store_latency, SCORE_DEADLINE),
        (None, false) => local_router(store_latency, false, SCORE_DEADLINE),
    };
    let server = Server::start(config, router)?;
    eprintln!("scoring listening on http://{}", server.local_addr());
    // Ctrl-C or SIGTERM: answer what was read, then stop; a second one exits at once.
    server.shutdown_on_signals()?;
    Ok(())
}

/// `--axum-serve`: `POST /v1/score` under axum's own server, the same Redis read (one
/// multiplexed connection) under a `tokio::time::timeout` of the route's 20 ms; no in-flight
/// limit. For benches/downstream_goodput.sh.
#[allow(dead_code)]
fn axum_serve(addr: std::net::SocketAddr, threads: usize, url: &str) -> Result<(), Box<dyn Error>> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let client = Client::open(url)?;
        let connection = client.get_multiplexed_async_connection().await?;
        let app = axum::Router::new().route(
            "/v1/score",
            axum::routing::post(move |body: axum::body::Bytes| {
                let connection = connection.clone();
                async move { axum_score(connection, body).await }
            }),
        );
        let listener = tokio::net::TcpListener::bind(addr).await?;
        eprintln!(
            "scoring (axum::serve) listening on http://{}",
            listener.local_addr()?
        );
        axum::serve(listener, app).await?;
        Ok(())
    })
}

#[allow(dead_code)]
async fn axum_score(
    mut connection: MultiplexedConnection,
    body: axum::body::Bytes,
) -> axum::response::Response {
    use axum::{http::StatusCode as S, response::IntoResponse};
    let tx: Transaction<'_> = match serde_json::from_slice(&body) {
        Ok(tx) => tx,
        Err(_) => return (S::BAD_REQUEST, "bad transaction\n").into_response(),
    };
    let mut command = redis::cmd("GET");
    command.arg(history_key(&tx.account));
    let get = command.query_async::<Option<String>>(&mut connection);
    match tokio::time::timeout(SCORE_DEADLINE, get).await {
        Err(_) => (S::SERVICE_UNAVAILABLE, "deadline\n").into_response(),
        Ok(Err(err)) => (S::SERVICE_UNAVAILABLE, format!("history store: {err}\n")).into_response(),
        Ok(Ok(None)) => (S::NOT_FOUND, "no history for this account\n").into_response(),
        Ok(Ok(Some(json))) => match serde_json::from_str::<History>(&json) {
            Ok(history) => {
                let score = fraud_probability(&tx, &history);
                axum::Json(Score {
                    account: &tx.account,
                    score: (score * 1e4).round() / 1e4,
                    decision: decision(score),
                    cached: false,
                })
                .into_response()
            }
            Err(_) => (S::INTERNAL_SERVER_ERROR, "bad history\n").into_response(),
        },
    }
}
