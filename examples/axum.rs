//! An axum application under rtserve: its router (a path extractor, JSON in and out, a
//! middleware layer) mounted at `/api/{*rest}` with a 20 ms deadline, beside rtserve's own
//! `/metrics` and `/healthz`; stopped by Ctrl-C. With `--axum-serve`, the same router is
//! served by axum's own server instead (for benches/axum_vs_rtserve.sh).
//!
//! ```sh
//! cargo run --release --example axum -- --bind 127.0.0.1:8080
//! curl -i http://127.0.0.1:8080/api/users/42               # JSON, with x-served-by: axum
//! curl -i -H 'Content-Type: application/json' -d '{"name":"ada"}' \
//!     http://127.0.0.1:8080/api/users                      # 201, JSON
//! curl -i http://127.0.0.1:8080/api/slow                   # 503 at 20 ms: rtserve-shed: deadline
//! curl -s http://127.0.0.1:8080/metrics | grep rtserve_futures
//! ```

use std::{error::Error, net::SocketAddr, time::Duration};

use axum::{
    Json,
    extract::{Path, Request},
    http::HeaderValue,
    middleware::{self, Next},
    response::Response,
    routing::{get, post},
};
use clap::Parser;
use rtserve_reactor::{Config, Reply, Router, Server, StatusCode, tower::service, with_deadline};
use serde::{Deserialize, Serialize};

/// Serves an axum router under rtserve (or, with --axum-serve, under axum's own server).
#[derive(Parser, Debug)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    bind: SocketAddr,
    /// Reactor threads (rtserve), and as many runtime worker threads (both servers).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Serve the router with `axum::serve` on a tokio listener instead of rtserve.
    #[arg(long)]
    axum_serve: bool,
}

#[derive(Serialize)]
struct User {
    id: u64,
    name: String,
}

#[derive(Deserialize)]
struct NewUser {
    name: String,
}

async fn user(Path(id): Path<u64>) -> Json<User> {
    Json(User {
        id,
        name: format!("user-{id}"),
    })
}

async fn create(Json(new): Json<NewUser>) -> (axum::http::StatusCode, Json<User>) {
    let user = User {
        id: 1,
        name: new.name,
    };
    (axum::http::StatusCode::CREATED, Json(user))
}

/// Slower than the route's deadline: rtserve answers 503 at 20 ms and drops this future.
async fn slow() -> &'static str {
    tokio::time::sleep(Duration::from_millis(100)).await;
    "too late\n"
}

/// A middleware layer, as an application would have for logging or authentication.
async fn served_by(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    response
        .headers_mut()
        .insert("x-served-by", HeaderValue::from_static("axum"));
    response
}

fn app() -> axum::Router {
    axum::Router::new()
        .route("/api/users/{id}", get(user))
        .route("/api/users", post(create))
        .route("/api/slow", get(slow))
        .layer(middleware::from_fn(served_by))
}

fn main() -> Result<(), Box<dyn Error>> {
    let args = Args::parse();
    if args.axum_serve {
        return axum_serve(&args);
    }
    let mut config = Config::default();
    config.addr = args.bind;
    config.reactors = args.threads;
    let router = Router::new()
        .any(
            "/api/{*rest}",
            with_deadline(Duration::from_millis(20), service(app())),
        )
        .get("/metrics", |req: &rtserve_reactor::Request<'_>| -> Reply {
            rtserve_reactor::Response::prometheus(&req.stats()).into()
        })
        .get("/healthz", |_: &rtserve_reactor::Request<'_>| -> Reply {
            rtserve_reactor::Response::text(StatusCode::OK, "ok\n").into()
        });
    let server = Server::start(config, router)?;
    eprintln!("rtserve: listening on http://{}", server.local_addr());
    // Ctrl-C or SIGTERM: answer what was read, then stop; a second one exits at once.
    server.shutdown_on_signals()?;
    Ok(())
}

/// The same router under axum's own server, on a runtime of `--threads` workers; stopped by
/// the signal's default action.
fn axum_serve(args: &Args) -> Result<(), Box<dyn Error>> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.bind).await?;
        eprintln!("axum: listening on http://{}", listener.local_addr()?);
        axum::serve(listener, app()).await
    })?;
    Ok(())
}
