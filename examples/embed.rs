//! Embedding rtserve-reactor: a service with an inline route, an offloaded route with its own
//! deadline, and an echo, on N reactors, stopped by Ctrl-C.
//!
//! ```sh
//! cargo run --release --example embed -- 127.0.0.1:8080 4
//! curl http://127.0.0.1:8080/score?amount=120
//! curl http://127.0.0.1:8080/report?ms=20     # 200: done within its 50 ms deadline
//! curl http://127.0.0.1:8080/report?ms=200    # 503: past its deadline
//! curl -d 'some bytes' http://127.0.0.1:8080/echo
//! ```

use std::{error::Error, thread, time::Duration};

use rtserve_reactor::{
    Config, Job, JobContext, Reply, Request, Response, Router, Server, StatusCode,
};

/// A stand-in for real scoring work: quick, so it runs inline on the reactor.
fn score(req: &Request<'_>) -> Reply {
    let amount: u64 = req
        .query_param("amount")
        .and_then(|a| a.parse().ok())
        .unwrap_or(0);
    let risk = if amount > 1000 { "high" } else { "low" };
    Response::new(StatusCode::OK)
        .with_static_headers(&[("Content-Type", b"application/json")])
        .with_body(format!("{{\"amount\":{amount},\"risk\":\"{risk}\"}}\n"))
        .into()
}

/// A stand-in for slow work (a database query, say): blocking, so it runs on the worker pool,
/// with a 50 ms deadline of its own. Past it the client gets 503 and the result is dropped.
fn report(req: &Request<'_>) -> Reply {
    let ms: u64 = req
        .query_param("ms")
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let job = Job::new(move |ctx: &JobContext| {
        // Cooperative: stop early once nobody waits for the answer.
        for _ in 0..ms {
            if ctx.is_cancelled() {
                break;
            }
            thread::sleep(Duration::from_millis(1));
        }
        Response::text(StatusCode::OK, format!("report after {ms} ms\n"))
    });
    Reply::Offload(job.with_deadline(Duration::from_millis(50)))
}

fn echo(req: &Request<'_>) -> Reply {
    Response::new(StatusCode::OK)
        .with_body(req.body().to_vec())
        .into()
}

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let mut config = Config::default();
    if let Some(addr) = args.next() {
        config.addr = addr.parse()?;
    }
    if let Some(reactors) = args.next() {
        config.reactors = reactors.parse()?;
    }
    let router = Router::new()
        .get("/score", score)
        .get("/report", report)
        .post("/echo", echo);
    let server = Server::start(config, router)?;
    eprintln!("listening on http://{}", server.local_addr());

    // Ctrl-C or SIGTERM: answer what was read, then stop; a second one exits at once.
    server.shutdown_on_signals()?;
    Ok(())
}
