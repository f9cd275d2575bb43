//! Running out of file descriptors: the reactor pauses accepting instead of spinning, keeps
//! serving the connections it has, and resumes by itself once descriptors free up.
//!
//! The server runs in a child process (this test binary, re-run with an environment variable)
//! whose hard limit on open files is lowered, since the server raises its soft limit to it.

mod support;

use std::{
    io::{BufRead, BufReader, Read},
    net::SocketAddr,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use rtserve_reactor::{Config, Reply, Request, Response, Router, Server, StatusCode};
use support::{Client, connect};

const CHILD: &str = "RTSERVE_EMFILE_CHILD";
/// The child's limit on open files: enough for the server's own descriptors and a few dozen
/// connections.
const FD_LIMIT: u64 = 64;

#[test]
fn accept_backs_off_when_out_of_descriptors() {
    if std::env::var_os(CHILD).is_some() {
        return child();
    }
    let child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "accept_backs_off_when_out_of_descriptors",
            "--nocapture",
        ])
        .env(CHILD, "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the child server");
    let mut child = KillOnDrop(child);
    parent(&mut child.0);
}

/// Stops the child however the test ends.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn parent(child: &mut Child) {
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let port: u16 = loop {
        let line = lines.next().expect("child printed its port").unwrap();
        if let Some(port) = line.strip_prefix("PORT ") {
            break port.parse().unwrap();
        }
    };
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let get = |client: &mut Client, path: &str| -> String {
        client.send(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
        client.response().text()
    };

    let mut first = Client::new(connect(addr));
    assert_eq!(get(&mut first, "/hello"), "hello\n");
    // More connections than the child has descriptors: the kernel completes them all, the
    // child accepts until EMFILE and leaves the rest in its backlog. Each sends the start of
    // a request head, since the listener defers a connection until its first bytes arrive.
    let mut conns: Vec<Client> = (0..2 * FD_LIMIT)
        .map(|_| {
            let mut client = Client::new(connect(addr));
            client.send(b"GET /hello HTTP/1.1\r\n");
            client
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        get(&mut first, "/backoffs").parse::<u64>().unwrap() > 0,
        "no back-off seen"
    );

    // While descriptors are exhausted the child must not spin on accept.
    let cpu = |pid: u32| -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .unwrap()
            .1
            .split_whitespace()
            .collect();
        // utime and stime, in clock ticks (fields 14 and 15 of proc(5)).
        fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
    };
    let ticks_per_second = rustix::param::clock_ticks_per_second();
    let before = cpu(child.id());
    let wall = Instant::now();
    std::thread::sleep(Duration::from_secs(2));
    let used = cpu(child.id()) - before;
    let elapsed = wall.elapsed().as_secs_f64();
    assert!(
        (used as f64 / ticks_per_second as f64) < 0.25 * elapsed,
        "the child used {used} ticks of CPU in {elapsed:.1} s while out of descriptors"
    );
    // It still serves the connections it has.
    assert_eq!(get(&mut first, "/hello"), "hello\n");

    // Free descriptors: the waiting connections are accepted and served.
    let mut last = conns.pop().unwrap();
    conns.truncate(FD_LIMIT as usize / 4);
    last.send(b"Host: x\r\n\r\n");
    assert_eq!(last.response().text(), "hello\n");
}

/// The server side, in the child process.
fn child() {
    use rustix::process::{Resource, Rlimit, setrlimit};
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(FD_LIMIT),
            maximum: Some(FD_LIMIT),
        },
    )
    .expect("lower the limit on open files");
    let mut config = Config::default();
    config.addr = "127.0.0.1:0".parse().unwrap();
    config.reactors = 1;
    config.workers = 1;
    let router = Router::new()
        .get("/hello", |_: &Request<'_>| -> Reply {
            Response::text(StatusCode::OK, "hello\n").into()
        })
        .get("/backoffs", |req: &Request<'_>| -> Reply {
            Response::text(StatusCode::OK, req.stats().accept_backoffs.to_string()).into()
        });
    let server = Server::start(config, router).expect("child server starts");
    println!("PORT {}", server.local_addr().port());
    // Serve until the parent closes our stdin (or kills us), and never for long.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
        let _ = tx.send(());
    });
    let _ = rx.recv_timeout(Duration::from_secs(60));
    server.shutdown();
    let _ = server.join();
}
