//! The scoring example's scenarios: `POST /v1/score` inline, and the store's path (in-process,
//! Redis async, Redis blocking).

use rtserve_loadgen::Target;

use crate::{
    runner::Bench,
    server::{RedisProcess, ServerProcess},
};

/// The scoring example (`examples/scoring.rs`), the library's real use: `POST /v1/score` with
/// a JSON transaction, keep-alive, at 5 k and 20 k req/s (the account's history is cached after
/// the first request, so this is the inline path: JSON in, the model, JSON out), beside
/// `/hello` at 20 k req/s in the keep-alive scenario; then the store's path
/// ([`scoring_store`]).
pub(crate) fn scoring(bench: &mut Bench) {
    // The benchmark runs from target/<profile>/deps; the example is built beside it.
    let bin = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.join("examples/scoring")))
        .filter(|bin| bin.exists());
    let Some(bin) = bin else {
        eprintln!(
            "{:>14} skipped: build the example first (cargo build --release --example scoring)",
            "scoring"
        );
        return;
    };
    let server = ServerProcess::start_binary(
        &bin.to_string_lossy(),
        &["--threads", "1"],
        bench.server_cpus.as_deref(),
    );
    let tx = br#"{"account":"acc-17","amount_cents":125000,"country":"FR","merchant":"electronics","hour":3}"#;
    let rates: &[f64] = if bench.quick {
        &[2_000.0]
    } else {
        &[5_000.0, 20_000.0]
    };
    for &rate in rates {
        let mut load = bench.load(Target::new(server.addr, "/v1/score"), rate, 50);
        load.method = "POST".to_owned();
        load.body = tx.to_vec();
        load.headers = vec![("Content-Type".to_owned(), "application/json".to_owned())];
        let note = "POST /v1/score, JSON, inline".to_owned();
        bench.run("scoring", "rtserve", Some(&server), &load, note);
    }
    drop(server);
    scoring_store(bench, &bin.to_string_lossy());
}

/// The scoring example's store path: every score looks its account's history up, at one rate,
/// (1) in the in-process store (`--no-cache`: a blocking lookup of 1 to 3 ms on the worker
/// pool), (2) in Redis with the async client, in an async handler, and (3) in Redis with the
/// blocking client, as a job on the worker pool: the same `GET` both ways. Redis is a
/// `redis-server` of the benchmark's own, unpinned; without one the Redis runs are skipped,
/// saying why.
pub(crate) fn scoring_store(bench: &mut Bench, bin: &str) {
    let rate = if bench.quick { 1_000.0 } else { 2_000.0 };
    let tx = br#"{"account":"acc-17","amount_cents":125000,"country":"FR","merchant":"electronics","hour":3}"#;
    let measure = |bench: &mut Bench, args: &[&str], note: &str| {
        let server = ServerProcess::start_binary(bin, args, bench.server_cpus.as_deref());
        let mut load = bench.load(Target::new(server.addr, "/v1/score"), rate, 50);
        load.method = "POST".to_owned();
        load.body = tx.to_vec();
        load.headers = vec![("Content-Type".to_owned(), "application/json".to_owned())];
        bench.run("scoring", "rtserve", Some(&server), &load, note.to_owned());
    };
    measure(
        bench,
        &["--threads", "1", "--no-cache"],
        "POST /v1/score, in-process store (1-3 ms, blocking, on the pool)",
    );
    let redis = match RedisProcess::start() {
        Ok(redis) => redis,
        Err(why) => {
            eprintln!("{:>14} Redis store runs skipped: {why}", "scoring");
            return;
        }
    };
    let seeded = std::process::Command::new(bin)
        .args(["--store", &redis.url, "--seed", "1000"])
        .stderr(std::process::Stdio::null())
        .status();
    if !seeded.as_ref().is_ok_and(|status| status.success()) {
        eprintln!(
            "{:>14} Redis store runs skipped: seeding failed ({seeded:?})",
            "scoring"
        );
        return;
    }
    for (client, note) in [
        (
            "async",
            "POST /v1/score, Redis GET, async client (Reply::spawn)",
        ),
        (
            "blocking",
            "POST /v1/score, Redis GET, blocking client on the pool",
        ),
    ] {
        let args = [
            "--threads",
            "1",
            "--store",
            &redis.url,
            "--store-client",
            client,
        ];
        measure(bench, &args, note);
    }
}
