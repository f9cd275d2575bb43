//! A request's deadline counts from when its bytes reached the kernel: time it waited in its
//! socket while the reactor was busy counts against it, and `/metrics` shows that wait.

mod support;

use std::{
    sync::{Arc, Mutex, mpsc},
    time::Duration,
};

use rtserve_reactor::{
    Config, JobContext, Reply, Request, Response, Router, StatusCode, with_deadline,
};
use support::{Client, TIMEOUT, TestServer, config, get};

/// How long `/block` holds the only reactor.
const BLOCK: Duration = Duration::from_millis(1000);
/// The deadline of `/job`: far below the block, far above what a job takes.
const DEADLINE: Duration = Duration::from_millis(300);

/// `/block` blocks the reactor thread inline for [`BLOCK`], after saying so on `started`;
/// `/job` is an offloaded job with a deadline of [`DEADLINE`] that answers at once.
fn routes(started: mpsc::Sender<()>) -> Router {
    let started = Arc::new(Mutex::new(started));
    Router::new()
        .get("/block", move |_: &Request<'_>| -> Reply {
            let _ = started.lock().expect("not poisoned").send(());
            std::thread::sleep(BLOCK);
            Response::text(StatusCode::OK, "blocked\n").into()
        })
        .get(
            "/job",
            with_deadline(DEADLINE, |_: &Request<'_>| -> Reply {
                Reply::offload(|_: &JobContext| Response::text(StatusCode::OK, "done\n"))
            }),
        )
}

/// One reactor; `/job` is sent on a second connection while `/block` holds the reactor.
/// Returns the answer to that `/job`, and the server (for its statistics).
fn job_behind_a_blocked_reactor(kernel_timestamps: bool) -> (support::Reply1, TestServer) {
    let mut config: Config = config();
    config.reactors = 1;
    config.workers = 2;
    config.kernel_timestamps = kernel_timestamps;
    let (started, blocked) = mpsc::channel();
    let server = TestServer::start(config, routes(started));
    // The second connection is accepted and served before the reactor is blocked.
    let mut waiting = Client::new(server.connect());
    waiting.send(&get("/job"));
    assert_eq!(waiting.response().status, 200);
    let mut blocker = Client::new(server.connect());
    blocker.send(&get("/block"));
    blocked
        .recv_timeout(TIMEOUT)
        .expect("the reactor runs /block");
    // Into the socket of a reactor that is busy for another second.
    waiting.send(&get("/job"));
    let reply = waiting.response();
    assert_eq!(blocker.response().status, 200);
    (reply, server)
}

#[test]
fn time_in_the_socket_queue_counts_against_the_deadline() {
    let (reply, server) = job_behind_a_blocked_reactor(true);
    assert_eq!(reply.status, 503, "{}", reply.text());
    assert_eq!(reply.header("rtserve-shed"), Some("deadline"));
    // The wait is in the socket-queue histogram: a read that waited at least half the block.
    let queue = server.stats().socket_queue;
    let half = BLOCK.as_micros() as u64 / 2;
    let quicker: u64 = queue
        .bounds_us
        .iter()
        .zip(&queue.buckets)
        .filter(|&(&bound, _)| bound < half)
        .map(|(_, n)| n)
        .sum();
    assert!(queue.count > quicker, "no long wait recorded: {queue:?}");
    assert!(queue.sum_us >= half, "{queue:?}");
}

#[test]
fn without_kernel_timestamps_the_deadline_counts_from_the_read() {
    let (reply, server) = job_behind_a_blocked_reactor(false);
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(server.stats().socket_queue.count, 0);
}
