//! The rtserve reactors: N `mio` event loops sharing one SO_REUSEPORT port, serving HTTP/1.1
//! through [`rtserve_protocol`] with low tail latency.
//!
//! ```text
//!                       one port, N listening sockets (SO_REUSEPORT)
//!                      ┌──────────────┬──────────────┬──────────────┐
//!   kernel spreads ──▶ │  reactor 0   │  reactor 1   │  reactor N-1 │   one thread each:
//!   new connections    │ Poll, slab,  │ Poll, slab,  │ Poll, slab,  │   no locks, no hand-off
//!                      │ timers, Waker│ timers, Waker│ timers, Waker│
//!                      └──────┬───────┴──────┬───────┴──────┬───────┘
//!                             └───── Handler (shared, Send + Sync) ──┘
//! ```
//!
//! Each reactor owns everything it touches: its `mio::Poll`, its own listening socket on the
//! shared port, a `slab` of connections, its timers and a `mio::Waker` through which other
//! threads reach it. The kernel spreads new connections across the listeners, so there is no
//! accept thread and no hand-off. A connection's requests are parsed and answered on its
//! reactor: the handler's [`Reply::Ready`] response is encoded straight into the reactor's
//! output buffer, and a pipelined batch goes out in one write.
//!
//! Blocking work goes to one bounded worker pool shared by all reactors
//! ([`Reply::Offload`]): a full queue is answered 503 at once, and every request has a
//! deadline (see [`Config::deadline`], [`with_deadline`], [`Job::with_deadline`]) past which
//! it is answered 503 and its job's result dropped. A job's response comes back to its reactor
//! through that reactor's `Waker` and goes out in request order, even when pipelined.
//!
//! With the `tokio` feature, a handler that waits on async I/O answers with a future
//! (`Reply::spawn`), which runs on the application's tokio runtime (or one the server starts),
//! never on a reactor. Its answer comes back the same way; it is dropped at the deadline or
//! when its client leaves, and each route has a limit of futures in flight.
//!
//! Readiness is edge-triggered (see the `mio` rules: drain to `WouldBlock`, expect spurious
//! events). A per-turn request budget keeps one busy client from starving the others; output
//! over [`Config::max_buffered_output`] pauses reading that connection until the client
//! catches up. Timers (head, body, idle, write stall, deadlines) live in a per-reactor heap
//! that never scans all connections. Statistics are kept per reactor without locks and merged
//! when read ([`ServerHandle::stats`]); an optional request log ([`RequestLog`]) runs on a
//! thread of its own.
//!
//! At start the server raises the process's soft limit on open files to its hard limit, so
//! that the connection limit is the one configured.
//!
//! # Caller deadlines
//!
//! A caller that has only so much time left for an answer can say so in a header the operator
//! names ([`Config::deadline_header`]). Its value is whole milliseconds (`150`, as Envoy's
//! `x-envoy-expected-rq-timeout-ms`) or gRPC's `grpc-timeout` form: at most eight digits and
//! a unit, `H`, `M`, `S`, `m`, `u` or `n` (`100m`, `2S`). The budget counts from when the
//! request arrived ([`Request::received`]), and the request's deadline becomes the earlier of
//! the caller's and its route's: [`Request::deadline`] in the handler, and the job's or the
//! future's context after it, so it can be passed on. A request left less than
//! [`Config::min_caller_budget`] is answered 503 (`rtserve-shed: caller-budget`) without
//! running its handler; a value in neither form, or the header sent twice, is answered 400. On
//! an inline route the budget decides only whether the request is refused at once.
//!
//! # Examples
//!
//! ```no_run
//! use rtserve_reactor::{Config, Reply, Request, Response, Router, Server, StatusCode};
//!
//! let router = Router::new()
//!     .get("/hello", |_: &Request<'_>| -> Reply {
//!         Response::text(StatusCode::OK, "hello\n").into()
//!     })
//!     .post("/echo", |req: &Request<'_>| -> Reply {
//!         Response::new(StatusCode::OK).with_body(req.body().to_vec()).into()
//!     });
//! let mut config = Config::default();
//! config.reactors = 4;
//! let server = Server::start(config, router)?;
//! eprintln!("listening on {}", server.local_addr());
//! server.join()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![doc(test(attr(deny(warnings))))]

mod affinity;
mod answers;
mod body;
mod budget;
mod config;
mod cors;
mod deadline;
mod handler;
mod harness;
#[cfg(feature = "http")]
mod http_interop;
#[cfg(feature = "json")]
mod json;
mod listener;
mod log;
mod mailbox;
mod path;
mod pool;
mod prometheus;
mod reactor;
mod reply;
mod request;
mod response;
mod router;
mod server;
mod session;
mod signals;
mod stats;
mod task;
mod timer;
mod token;
#[cfg(feature = "tower")]
pub mod tower;

pub use answers::{ErrorAnswers, ServerError};
pub use config::{Admission, Config, ConfigError, Discipline};
pub use cors::{Cors, WithCors};
pub use handler::{Handler, with_deadline};
pub use harness::{Harness, Outcome, TestRequest};
#[cfg(feature = "json")]
pub use json::Rejection;
pub use log::{LogRecord, RequestLog};
pub use path::{PathRejection, safe_relative_path};
pub use pool::{Job, JobContext};
pub use reply::{IntoReply, Reply};
pub use request::{NotUtf8, Request};
pub use response::{Body, HeaderValue, Response, StaticHeaders};
pub use router::{RouteError, Router};
pub use rtserve_protocol::{Limits, Method, StatusCode, Version};
pub use server::{Server, ServerHandle, StartError};
pub use signals::ShutdownSignals;
pub use stats::{
    Histogram, LATENCY_BUCKETS_US, LATENESS_BUCKETS_US, RouteStats, SOCKET_QUEUE_BUCKETS_US, Shed,
    Sheds, Stats,
};
#[cfg(feature = "tokio")]
pub use task::{AsyncContext, AsyncJob};

/// The HTTP/1.1 protocol crate this reactor is built on.
pub use rtserve_protocol as protocol;

// The README's Rust snippets are compiled as doc tests here.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;

// This crate's README, as published: its Rust snippets are compiled as doc tests here.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct CrateReadmeDoctests;
