//! Black-box tests of the `rtserve` binary: each test starts the built executable as a child
//! process on `127.0.0.1:0`, reads the port from its startup line on stderr, and talks to it
//! over loopback sockets and with signals.
//!
//! Every child is killed when its guard drops, so a failing test leaks no process, and every
//! wait is bounded by [`TIMEOUT`] (CI is a busy 2-core machine: a test that waits that long
//! has failed; no test asserts a tight duration).

mod support;

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    path::PathBuf,
    process::{Child, Command, ExitStatus, Stdio},
    sync::{Arc, Mutex, mpsc},
    thread::{self, JoinHandle},
    time::{Duration, Instant, SystemTime},
};

use prometheus_parse::{HistogramCount, LineInfo, Sample, Scrape, Value};
use rustix::process::{Pid, Signal, kill_process};
use support::{Client, Reply1, TIMEOUT, get, listening_on, wait_until, wait_until_read_at};

/// The binary under test.
const BIN: &str = env!("CARGO_BIN_EXE_rtserve");

/// What the startup line says before the address.
const LISTENING: &str = " listening on http://";

// ---------------------------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------------------------

/// A command for the binary with none of the caller's `RTSERVE_*` variables (so that a
/// developer's environment cannot change what a test sees), stdin and stdout closed, stderr
/// piped.
fn command(args: &[&str]) -> Command {
    command_of(BIN.as_ref(), args)
}

/// [`command`] for another program (one that runs the binary).
fn command_of(program: &std::ffi::OsStr, args: &[&str]) -> Command {
    let mut cmd = Command::new(program);
    for (key, _) in std::env::vars_os() {
        if key.to_str().is_some_and(|k| k.starts_with("RTSERVE_")) {
            cmd.env_remove(key);
        }
    }
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd
}

/// Kills and reaps the child however the test ends.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl KillOnDrop {
    /// Waits at most `timeout` for the child to exit.
    fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.0.try_wait().expect("try_wait") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Reads a pipe to its end on a thread of its own, line by line, into shared text, and
/// passes each line on through `lines` too.
fn drain(
    pipe: impl Read + Send + 'static,
    lines: Option<mpsc::Sender<String>>,
) -> (Arc<Mutex<String>>, JoinHandle<()>) {
    let text = Arc::new(Mutex::new(String::new()));
    let sink = Arc::clone(&text);
    let reader = thread::spawn(move || {
        let mut pipe = BufReader::new(pipe);
        loop {
            let mut bytes = Vec::new();
            match pipe.read_until(b'\n', &mut bytes) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&bytes).into_owned();
                    sink.lock().unwrap().push_str(&line);
                    if let Some(lines) = &lines {
                        let _ = lines.send(line);
                    }
                }
            }
        }
    });
    (text, reader)
}

/// Waits (bounded) for a pipe reader to reach the end of its pipe.
fn join_reader(reader: JoinHandle<()>) {
    let deadline = Instant::now() + TIMEOUT;
    while !reader.is_finished() {
        assert!(
            Instant::now() < deadline,
            "a pipe did not close after its process exited"
        );
        thread::sleep(Duration::from_millis(10));
    }
    reader.join().expect("pipe reader");
}

/// A running `rtserve`, killed on drop.
struct Server {
    child: KillOnDrop,
    addr: SocketAddr,
    /// The startup line, without its newline.
    startup: String,
    /// Everything the server has written to stderr so far.
    stderr: Arc<Mutex<String>>,
    reader: Option<JoinHandle<()>>,
}

impl Server {
    /// Starts `rtserve` with `args`, on `127.0.0.1:0` unless they say `--bind`.
    #[track_caller]
    fn start(args: &[&str]) -> Self {
        let mut all = Vec::new();
        if !args.contains(&"--bind") {
            all.extend(["--bind", "127.0.0.1:0"]);
        }
        all.extend_from_slice(args);
        Self::spawn(command(&all))
    }

    /// Starts `cmd` (made by [`command`]) and waits for its startup line.
    #[track_caller]
    fn spawn(mut cmd: Command) -> Self {
        let mut child = KillOnDrop(cmd.spawn().expect("start rtserve"));
        let (tx, rx) = mpsc::channel();
        let (stderr, reader) = drain(child.0.stderr.take().expect("piped stderr"), Some(tx));
        let deadline = Instant::now() + TIMEOUT;
        let startup = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.contains(LISTENING) => break line.trim_end().to_owned(),
                Ok(_) => {}
                Err(e) => {
                    let status = child.wait_timeout(Duration::from_secs(1));
                    panic!(
                        "rtserve printed no startup line ({e}); status {status:?}, stderr:\n{}",
                        stderr.lock().unwrap()
                    );
                }
            }
        };
        let addr = startup
            .split_once(LISTENING)
            .and_then(|(_, rest)| rest.split(' ').next())
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no address in the startup line {startup:?}"));
        Self {
            child,
            addr,
            startup,
            stderr,
            reader: Some(reader),
        }
    }

    fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The number of reactors the startup line reports.
    fn reactors(&self) -> usize {
        self.startup
            .split_once("(reactors ")
            .and_then(|(_, rest)| rest.split(',').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no reactor count in {:?}", self.startup))
    }

    fn signal(&self, signal: Signal) {
        let raw = i32::try_from(self.child.0.id()).expect("pid fits in i32");
        kill_process(Pid::from_raw(raw).expect("pid"), signal).expect("send a signal");
    }

    /// Waits for the process to exit (bounded), then for the rest of its stderr.
    #[track_caller]
    fn wait_exit(&mut self) -> ExitStatus {
        let Some(status) = self.child.wait_timeout(TIMEOUT) else {
            panic!(
                "rtserve did not exit within {TIMEOUT:?}; stderr:\n{}",
                self.stderr()
            );
        };
        if let Some(reader) = self.reader.take() {
            join_reader(reader);
        }
        status
    }

    /// What the server has written to stderr so far.
    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits (bounded) for `needle` to appear on stderr.
    #[track_caller]
    fn wait_for_stderr(&self, needle: &str) {
        assert!(
            wait_until(|| self.stderr().contains(needle)),
            "{needle:?} never appeared on stderr:\n{}",
            self.stderr()
        );
    }

    #[track_caller]
    fn connect(&self) -> Client {
        Client::new(support::connect(self.addr))
    }

    /// Sends one request on a new connection and reads its response.
    #[track_caller]
    fn request(&self, bytes: &[u8]) -> Reply1 {
        let mut conn = self.connect();
        conn.send(bytes);
        conn.response()
    }

    #[track_caller]
    fn get(&self, target: &str) -> Reply1 {
        self.request(&get(target))
    }
}

/// How a process that was expected to exit by itself ended.
struct Finished {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// Runs `rtserve` with `args` (and `env`) to its exit, bounded.
#[track_caller]
fn run_to_exit(args: &[&str], env: &[(&str, &str)]) -> Finished {
    let mut cmd = command(args);
    cmd.envs(env.iter().copied());
    finish(cmd)
}

/// Runs `cmd` (made by [`command`] or [`command_of`]) to its exit, bounded, with its stdout
/// piped too.
#[track_caller]
fn finish(mut cmd: Command) -> Finished {
    let what = format!("{cmd:?}");
    cmd.stdout(Stdio::piped());
    let mut child = KillOnDrop(cmd.spawn().expect("start the process"));
    let (stdout, out_reader) = drain(child.0.stdout.take().unwrap(), None);
    let (stderr, err_reader) = drain(child.0.stderr.take().unwrap(), None);
    let Some(status) = child.wait_timeout(TIMEOUT) else {
        panic!(
            "{what} did not exit within {TIMEOUT:?}; stderr:\n{}",
            stderr.lock().unwrap()
        );
    };
    join_reader(out_reader);
    join_reader(err_reader);
    let stdout = stdout.lock().unwrap().clone();
    let stderr = stderr.lock().unwrap().clone();
    Finished {
        status,
        stdout,
        stderr,
    }
}

/// Asserts that a process exited by itself (not killed by a signal) with a non-zero code.
#[track_caller]
fn assert_failed(status: ExitStatus, stderr: &str) {
    assert!(
        status.code().is_some_and(|code| code != 0),
        "expected a non-zero exit code, got {status:?}; stderr:\n{stderr}"
    );
}

// ---------------------------------------------------------------------------------------------
// Routes and statuses
// ---------------------------------------------------------------------------------------------

#[test]
fn every_route_and_status() {
    let server = Server::start(&[]);

    let hello = server.get("/hello");
    assert_eq!(hello.status, 200, "{hello:?}");
    assert_eq!(hello.text(), "Hello, world!\n");

    // HEAD: GET's headers, no body. The next response on the connection parses only if no
    // body bytes came first.
    let mut conn = server.connect();
    conn.send(b"HEAD /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    let head = conn.read_response(true);
    assert_eq!(head.status, 200, "{head:?}");
    assert_eq!(head.header("content-length"), Some("14"), "{head:?}");
    conn.send(&get("/hello"));
    let after = conn.response();
    assert_eq!(
        (after.status, after.text().as_str()),
        (200, "Hello, world!\n"),
        "HEAD must not send a body"
    );

    let slow = server.get("/slow?ms=20");
    assert_eq!((slow.status, slow.text().as_str()), (200, "slept 20 ms\n"));

    let bad = server.get("/slow?ms=abc");
    assert_eq!(bad.status, 400, "{bad:?}");

    let spin = server.get("/spin?us=500");
    assert_eq!((spin.status, spin.text().as_str()), (200, "spun 500 µs\n"));
    assert_eq!(server.get("/spin?us=-1").status, 400);
    // Mixed work: a sleep, then CPU time.
    let mixed = server.get("/spin?sleep_ms=5&us=300");
    assert_eq!(
        (mixed.status, mixed.text().as_str()),
        (200, "slept 5 ms, spun 300 µs\n")
    );
    assert_eq!(server.get("/spin?sleep_ms=x&us=300").status, 400);

    assert_eq!(server.get("/status?code=503").status, 503);
    assert_eq!(server.get("/status").status, 200);
    for bad in ["/status?code=99", "/status?code=600", "/status?code=x"] {
        assert_eq!(server.get(bad).status, 400, "{bad}");
    }

    let json = br#"{"id":7,"tags":["a","b"],"ok":true}"#;
    let mut echo = format!(
        "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n",
        json.len()
    )
    .into_bytes();
    echo.extend_from_slice(json);
    let echoed = server.request(&echo);
    assert_eq!(echoed.status, 200, "{echoed:?}");
    assert_eq!(echoed.body, json);
    assert_eq!(echoed.header("content-type"), Some("application/json"));

    let health = server.get("/healthz");
    assert_eq!(health.status, 200, "{health:?}");
    // Dynamic answers to GET say that no cache may keep them; a POST's needs nothing.
    for target in ["/healthz", "/metrics", "/slow?ms=1", "/spin?us=10"] {
        let reply = server.get(target);
        assert_eq!(
            reply.header("cache-control"),
            Some("no-store"),
            "{target}: {reply:?}"
        );
    }
    assert_eq!(echoed.header("cache-control"), None);

    let missing = server.get("/no/such/path");
    assert_eq!(missing.status, 404, "{missing:?}");

    let wrong_method =
        server.request(b"POST /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(wrong_method.status, 405, "{wrong_method:?}");
    assert_eq!(wrong_method.header("allow"), Some("GET, HEAD, OPTIONS"));

    // A malformed request: 400, and the connection ends cleanly.
    let mut conn = server.connect();
    conn.send(b"garbage\r\n\r\n");
    let malformed = conn.response();
    assert_eq!(malformed.status, 400, "{malformed:?}");
    assert!(malformed.closes(), "{malformed:?}");
    conn.expect_eof();
}

#[test]
fn a_missed_deadline_is_answered_503() {
    let server = Server::start(&["--deadline-ms", "200"]);
    let start = Instant::now();
    let reply = server.get("/slow?ms=30000");
    let took = start.elapsed();
    assert_eq!(reply.status, 503, "{reply:?}");
    // The job alone would take 30 s; the deadline is 0.2 s.
    assert!(
        took < Duration::from_secs(15),
        "the 503 took {took:?}: the deadline was not enforced"
    );
}

#[test]
fn deadline_header_takes_the_callers_budget() {
    let server = Server::start(&[
        "--deadline-header",
        "X-Budget",
        "--min-caller-budget-ms",
        "10",
    ]);
    let get = |budget: &str| {
        let head = format!("GET /slow?ms=30000 HTTP/1.1\r\nHost: x\r\nx-budget: {budget}\r\n\r\n");
        server.request(head.as_bytes())
    };
    // Less than the least budget: refused before the handler.
    let reply = get("5");
    assert_eq!(reply.status, 503, "{reply:?}");
    assert_eq!(reply.header("rtserve-shed"), Some("caller-budget"));
    // A job of 30 s whose caller has 200 ms: answered at the caller's deadline, not at the
    // server's (5 s) or when the job ends.
    let start = Instant::now();
    let reply = get("200m");
    assert_eq!(reply.status, 503, "{reply:?}");
    assert_eq!(reply.header("rtserve-shed"), Some("deadline"));
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(get("soon").status, 400);
}

#[test]
fn max_slow_ms_caps_the_sleep() {
    let server = Server::start(&["--max-slow-ms", "50"]);
    let reply = server.get("/slow?ms=5000");
    assert_eq!(
        (reply.status, reply.text().as_str()),
        (200, "slept 50 ms\n")
    );
    // /spin's sleep and CPU time share the cap: the sleep first, the CPU time what is left.
    let reply = server.get("/spin?sleep_ms=30&us=100000");
    assert_eq!(
        (reply.status, reply.text().as_str()),
        (200, "slept 30 ms, spun 20000 µs\n")
    );
    let reply = server.get("/spin?sleep_ms=5000&us=100");
    assert_eq!(
        (reply.status, reply.text().as_str()),
        (200, "slept 50 ms, spun 0 µs\n")
    );
}

// ---------------------------------------------------------------------------------------------
// Reactors and environment variables
// ---------------------------------------------------------------------------------------------

#[test]
fn threads_gives_one_listening_socket_each() {
    let server = Server::start(&["--threads", "3"]);
    assert_eq!(server.reactors(), 3, "{}", server.startup);
    // The listeners are bound before the startup line is printed.
    assert_eq!(listening_on(server.port()), 3, "LISTEN sockets on the port");
    assert_eq!(server.get("/hello").status, 200);
}

#[test]
fn both_reactors_serve_under_threads_2() {
    let server = Server::start(&["--threads", "2"]);
    // The kernel spreads connections over the two listeners by a hash of their addresses: 40
    // connections all on one reactor would come about once in 2^39 runs.
    let mut clients: Vec<Client> = (0..40).map(|_| server.connect()).collect();
    for client in &mut clients {
        client.send(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(client.response().status, 200);
    }
    let scrape = scrape(&server);
    for metric in [
        "rtserve_connections_accepted_total",
        "rtserve_reactor_requests_total",
    ] {
        let per_reactor: Vec<f64> = ["0", "1"]
            .iter()
            .map(|r| count(&scrape, metric, &[("reactor", r)]))
            .collect();
        assert!(
            per_reactor.iter().all(|&n| n > 0.0),
            "{metric}: {per_reactor:?}"
        );
        // The 40 connections, and their requests, and the /metrics one itself.
        assert!(
            per_reactor.iter().sum::<f64>() >= 40.0,
            "{metric}: {per_reactor:?}"
        );
    }
}

/// The CPUs each thread of process `pid` whose name (`comm`, cut to 15 bytes) is `name` may
/// run on (`Cpus_allowed_list`).
fn cpus_of_threads(pid: u32, name: &str) -> Vec<String> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter(|task| {
            std::fs::read_to_string(task.path().join("comm")).is_ok_and(|c| c.trim() == name)
        })
        .filter_map(|task| std::fs::read_to_string(task.path().join("status")).ok())
        .filter_map(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
                .map(|v| v.trim().to_owned())
        })
        .collect()
}

#[test]
fn pin_puts_each_reactor_on_a_cpu_of_its_own() {
    let allowed = cpus_of_threads(std::process::id(), &thread_name()).remove(0);
    let server = Server::start(&["--threads", "2", "--pin"]);
    // Thread names are cut to 15 bytes: "rtserve-reactor-0" reads "rtserve-reactor". Each
    // reactor pins itself as it starts: wait for both to be on one CPU each.
    let mut cpus = Vec::new();
    let pinned = wait_until(|| {
        cpus = cpus_of_threads(server.child.0.id(), "rtserve-reactor");
        cpus.len() == 2 && cpus.iter().all(|c| c.parse::<usize>().is_ok())
    });
    assert!(pinned, "reactors not pinned to one CPU each: {cpus:?}");
    cpus.sort();
    if allowed.contains(['-', ',']) {
        assert_ne!(
            cpus[0], cpus[1],
            "two CPUs allowed ({allowed}), one each: {cpus:?}"
        );
    }
    // Without --pin, a reactor may run anywhere it is allowed.
    let free = Server::start(&["--threads", "2"]);
    for cpu in cpus_of_threads(free.child.0.id(), "rtserve-reactor") {
        assert_eq!(cpu, allowed);
    }
    assert_eq!(server.get("/hello").status, 200);
}

/// This thread's name as the kernel has it (`comm`, at most 15 bytes).
fn thread_name() -> String {
    std::fs::read_to_string("/proc/thread-self/comm")
        .expect("our thread's name")
        .trim()
        .to_owned()
}

#[test]
fn environment_variables_set_flags() {
    let mut cmd = command(&[]);
    cmd.env("RTSERVE_THREADS", "3")
        .env("RTSERVE_BIND", "127.0.0.1:0");
    let server = Server::spawn(cmd);
    assert_eq!(server.reactors(), 3, "{}", server.startup);
    assert_eq!(listening_on(server.port()), 3, "LISTEN sockets on the port");
    assert_eq!(server.get("/hello").status, 200);

    // A flag beats its variable.
    let mut cmd = command(&["--bind", "127.0.0.1:0", "--threads", "1"]);
    cmd.env("RTSERVE_THREADS", "3");
    let server = Server::spawn(cmd);
    assert_eq!(server.reactors(), 1, "{}", server.startup);

    // A bad value in a variable is refused like a bad flag.
    let run = run_to_exit(&["--bind", "127.0.0.1:0"], &[("RTSERVE_THREADS", "0")]);
    assert_eq!(run.status.code(), Some(2), "stderr:\n{}", run.stderr);
    assert!(run.stderr.contains("--threads"), "stderr:\n{}", run.stderr);
}

// ---------------------------------------------------------------------------------------------
// Signals
// ---------------------------------------------------------------------------------------------

#[test]
fn sigterm_finishes_the_request_in_flight_then_exits_0() {
    let mut server = Server::start(&[]);
    let mut conn = server.connect();
    // Long enough that the shutdown reaches the reactor before the answer, however busy the
    // machine (the answer says Connection: close only if it does).
    conn.send(&get("/slow?ms=3000"));
    wait_until_read_at(server.addr, &conn.stream);
    server.signal(Signal::TERM);

    let reply = conn.response();
    assert_eq!(
        (reply.status, reply.text().as_str()),
        (200, "slept 3000 ms\n"),
        "{reply:?}"
    );
    assert!(
        reply.closes(),
        "a response during shutdown says Connection: close: {reply:?}"
    );
    conn.expect_eof();

    let status = server.wait_exit();
    let stderr = server.stderr();
    assert_eq!(status.code(), Some(0), "stderr:\n{stderr}");
    assert!(stderr.contains("shutting down"), "stderr:\n{stderr}");
    assert!(stderr.contains("stopped"), "stderr:\n{stderr}");
}

/// Starts a 5 s job, sends signals with `signal`, and checks that the server exits at once
/// (before the job could finish, without answering it) with status 1: the status of the
/// signal handlers' own exit, where the default action would have ended it by the signal.
fn exits_at_once(signal: impl FnOnce(&mut Server)) {
    let mut server = Server::start(&["--shutdown-timeout-ms", "30000", "--deadline-ms", "30000"]);
    let mut conn = server.connect();
    let sent = Instant::now();
    conn.send(&get("/slow?ms=5000"));
    wait_until_read_at(server.addr, &conn.stream);
    signal(&mut server);

    let status = server.wait_exit();
    let took = sent.elapsed();
    let stderr = server.stderr();
    assert_eq!(status.code(), Some(1), "stderr:\n{stderr}");
    assert!(
        took < Duration::from_secs(5),
        "exited after {took:?}: it waited for the 5 s job"
    );
    let (answer, _) = conn.read_to_close_or_reset();
    assert!(
        answer.is_empty(),
        "the job was not finished, yet got {:?}",
        String::from_utf8_lossy(&answer)
    );
}

#[test]
fn a_second_sigterm_exits_at_once() {
    exits_at_once(|server| {
        server.signal(Signal::TERM);
        // Two signals sent back to back may be delivered as one: wait for the first to be
        // seen.
        server.wait_for_stderr("shutting down");
        server.signal(Signal::TERM);
    });
}

#[test]
fn sigquit_exits_at_once() {
    exits_at_once(|server| server.signal(Signal::QUIT));
}

/// A running `rtserve` with `--access-log -` whose stderr is a pipe that nobody reads after
/// the startup line, under keep-alive load from a few clients until it stops.
struct Stalled {
    child: KillOnDrop,
    addr: SocketAddr,
    /// Kept open and unread: the server's writes to it block once it is full.
    stderr: std::process::ChildStderr,
    stop: Arc<std::sync::atomic::AtomicBool>,
    answered: Arc<std::sync::atomic::AtomicU64>,
    clients: Vec<JoinHandle<()>>,
}

impl Stalled {
    #[track_caller]
    fn start(args: &[&str]) -> Self {
        let mut all = vec![
            "--bind",
            "127.0.0.1:0",
            "--threads",
            "2",
            "--access-log",
            "-",
        ];
        all.extend_from_slice(args);
        let mut child = KillOnDrop(command(&all).spawn().expect("start rtserve"));
        let mut stderr = child.0.stderr.take().expect("piped stderr");
        // Read byte by byte up to the startup line, so that nothing after it is taken.
        let mut line = Vec::new();
        let mut byte = [0];
        while !String::from_utf8_lossy(&line).contains(LISTENING) || line.last() != Some(&b'\n') {
            match stderr.read(&mut byte) {
                Ok(1) => line.push(byte[0]),
                _ => panic!("no startup line: {:?}", String::from_utf8_lossy(&line)),
            }
        }
        let text = String::from_utf8_lossy(&line).into_owned();
        let addr = text
            .split_once(LISTENING)
            .and_then(|(_, rest)| rest.split(' ').next())
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no address in {text:?}"));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let answered = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let clients = (0..4)
            .map(|_| {
                let (stop, answered) = (Arc::clone(&stop), Arc::clone(&answered));
                thread::spawn(move || hammer(addr, &stop, &answered))
            })
            .collect();
        Self {
            child,
            addr,
            stderr,
            stop,
            answered,
            clients,
        }
    }

    /// Waits (bounded) until the stderr pipe is full, the load still running: the server
    /// goes on answering while not one more byte reaches the pipe, so its log writer is
    /// blocked, holding stderr's lock.
    #[track_caller]
    fn wait_until_stalled(&self) {
        use std::sync::atomic::Ordering;
        let size = rustix::pipe::fcntl_getpipe_size(&self.stderr).expect("pipe size");
        let unread = || rustix::io::ioctl_fionread(&self.stderr).expect("FIONREAD") as usize;
        let stalled = wait_until(|| {
            let (bytes, answered) = (unread(), self.answered.load(Ordering::Relaxed));
            let served = wait_until(|| self.answered.load(Ordering::Relaxed) > answered + 200);
            assert!(served, "the server stopped serving when its log filled");
            // Small writes leave a little room in each page of the pipe: "full" is near it.
            bytes > size / 2 && unread() == bytes
        });
        assert!(
            stalled,
            "stderr never stalled ({} of {size} bytes unread, {} responses)",
            unread(),
            self.answered.load(Ordering::Relaxed)
        );
    }

    fn signal(&self, signal: Signal) {
        let raw = i32::try_from(self.child.0.id()).expect("pid fits in i32");
        kill_process(Pid::from_raw(raw).expect("pid"), signal).expect("send a signal");
    }

    /// Waits (bounded) for the exit, then stops the load.
    #[track_caller]
    fn wait_exit(mut self) -> ExitStatus {
        let status = self.child.wait_timeout(TIMEOUT);
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for client in self.clients.drain(..) {
            client.join().expect("load client");
        }
        status.unwrap_or_else(|| panic!("rtserve did not exit within {TIMEOUT:?}"))
    }
}

/// Sends `GET /hello` on keep-alive connections, one at a time, until `stop` is set or the
/// server is gone (bounded: the server exits within the tests' timeout).
fn hammer(
    addr: SocketAddr,
    stop: &std::sync::atomic::AtomicBool,
    answered: &std::sync::atomic::AtomicU64,
) {
    use std::{io::Write as _, sync::atomic::Ordering};
    let started = Instant::now();
    let mut buf = [0; 4096];
    'connections: while !stop.load(Ordering::Relaxed) && started.elapsed() < 3 * TIMEOUT {
        let Ok(mut stream) = TcpStream::connect(addr) else {
            thread::sleep(Duration::from_millis(10));
            continue;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
        while !stop.load(Ordering::Relaxed) {
            if stream.write_all(&get("/hello")).is_err() {
                continue 'connections;
            }
            let mut response = Vec::new();
            while !response.ends_with(b"Hello, world!\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => continue 'connections,
                    Ok(n) => response.extend_from_slice(&buf[..n]),
                }
            }
            answered.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[test]
fn a_stalled_stderr_does_not_stop_sigterm() {
    let server = Stalled::start(&[]);
    server.wait_until_stalled();
    server.signal(Signal::TERM);
    let status = server.wait_exit();
    assert_eq!(
        status.code(),
        Some(0),
        "a graceful stop exits 0: {status:?}"
    );
}

#[test]
fn a_stalled_stderr_does_not_stop_sigquit() {
    let server = Stalled::start(&[]);
    server.wait_until_stalled();
    server.signal(Signal::QUIT);
    let status = server.wait_exit();
    assert_eq!(status.code(), Some(1), "{status:?}");
}

#[test]
fn a_stalled_stderr_does_not_stop_a_second_sigterm() {
    let server = Stalled::start(&["--shutdown-timeout-ms", "60000", "--deadline-ms", "60000"]);
    // A job that keeps the graceful shutdown waiting for longer than the test.
    let mut slow = Client::new(support::connect(server.addr));
    slow.send(&get("/slow?ms=50000"));
    wait_until_read_at(server.addr, &slow.stream);
    server.wait_until_stalled();
    server.signal(Signal::TERM);
    // Shutdown has begun once the port stops taking connections (the log can't say so).
    assert!(
        wait_until(|| TcpStream::connect(server.addr).is_err()),
        "the first SIGTERM did not start a shutdown"
    );
    server.signal(Signal::TERM);
    let status = server.wait_exit();
    assert_eq!(status.code(), Some(1), "{status:?}");
}

#[test]
fn drain_grace_reports_draining_while_serving() {
    // A grace longer than any wait here; a second SIGTERM ends it.
    let mut server = Server::start(&["--drain-grace-ms", "60000"]);
    assert_eq!(server.get("/healthz").status, 200);
    server.signal(Signal::TERM);
    assert!(
        wait_until(|| server.get("/healthz").status == 503),
        "/healthz never said 503 while draining"
    );
    let hello = server.get("/hello");
    assert_eq!(
        hello.status, 200,
        "still serving during the grace: {hello:?}"
    );
    server.wait_for_stderr("shutting down");
    server.signal(Signal::TERM);
    let status = server.wait_exit();
    assert_failed(status, &server.stderr());
}

// ---------------------------------------------------------------------------------------------
// Flags
// ---------------------------------------------------------------------------------------------

#[test]
fn bad_flags_exit_2_naming_the_flag() {
    for (args, flag) in [
        (&["--threads", "0"][..], "--threads"),
        (&["--workers", "0"], "--workers"),
        (&["--bind", "nonsense"], "--bind"),
        (&["--max-body", "1T"], "--max-body"),
        (&["--deadline-header", "two words"], "--deadline-header"),
        (&["--defer-accept-secs", "3601"], "--defer-accept-secs"),
        (&["--no-such-flag"], "--no-such-flag"),
    ] {
        let run = run_to_exit(args, &[]);
        assert_eq!(
            run.status.code(),
            Some(2),
            "{args:?} should exit 2; stderr:\n{}",
            run.stderr
        );
        assert!(
            run.stderr.contains(flag),
            "{args:?}: stderr does not name {flag}:\n{}",
            run.stderr
        );
    }
}

#[test]
fn help_lists_every_flag_with_its_default() {
    let run = run_to_exit(&["--help"], &[]);
    assert_eq!(run.status.code(), Some(0), "stderr:\n{}", run.stderr);
    let help = run.stdout;

    // The help split into one section per option, from its `-x, --name <VALUE>` line to the
    // next: (the names on that line, the whole section).
    let mut sections: Vec<(Vec<String>, String)> = Vec::new();
    for line in help.lines() {
        let trimmed = line.trim_start();
        // `-q, --quiet` or `--bind <BIND>`, not a `- value:` line listing possible values.
        let flag = trimmed.starts_with("--")
            || (trimmed.starts_with('-')
                && trimmed[1..].starts_with(|c: char| c.is_ascii_alphabetic()));
        if flag {
            let names = trimmed
                .split_whitespace()
                .take_while(|word| word.starts_with('-'))
                .map(|word| word.trim_end_matches([',', '.']).to_owned())
                .collect();
            sections.push((names, String::new()));
        }
        if let Some((_, text)) = sections.last_mut() {
            text.push_str(trimmed);
            text.push(' ');
        }
    }
    let section = |flag: &str| -> &str {
        sections
            .iter()
            .find(|(names, _)| names.iter().any(|name| name == flag))
            .map(|(_, text)| text.as_str())
            .unwrap_or_else(|| panic!("--help does not list {flag}:\n{help}"))
    };

    // Every flag that takes a value has a default, shown.
    for (flag, default) in [
        ("--bind", Some("127.0.0.1:8080")),
        ("--threads", None),
        ("--workers", Some("16")),
        ("--queue", Some("1024")),
        ("--max-connections", Some("10000")),
        ("--deadline-ms", Some("5000")),
        ("--header-timeout-ms", Some("10000")),
        ("--body-timeout-ms", Some("30000")),
        ("--idle-timeout-ms", Some("60000")),
        ("--write-timeout-ms", Some("30000")),
        ("--drain-grace-ms", Some("0")),
        ("--shutdown-timeout-ms", Some("30000")),
        ("--max-body", Some("1M")),
        ("--max-slow-ms", Some("60000")),
        ("--discipline", Some("adaptive-lifo")),
        ("--shutdown-idle-ms", Some("250")),
        ("--body-min-rate", Some("4K")),
        ("--body-rate-window-ms", Some("5000")),
        ("--body-deadline-ms", Some("60000")),
        ("--body-budget", None),
        ("--send-buffer", None),
        ("--recv-buffer", None),
    ] {
        let text = section(flag);
        assert!(
            text.contains("[default: "),
            "{flag} shows no default: {text:?}"
        );
        if let Some(default) = default {
            assert!(
                text.contains(&format!("[default: {default}]")),
                "{flag} should show [default: {default}]: {text:?}"
            );
        }
    }
    // Flags without a value (or an optional one) are mentioned too.
    for flag in [
        "--access-log",
        "--shared-port",
        "--control",
        "--retry-after-s",
        "--pin",
        "--no-kernel-timestamps",
        "--verbose",
        "--quiet",
        "--help",
        "--version",
    ] {
        section(flag);
    }
}

#[test]
fn version_prints_the_version() {
    let run = run_to_exit(&["--version"], &[]);
    assert_eq!(run.status.code(), Some(0), "stderr:\n{}", run.stderr);
    assert_eq!(
        run.stdout.trim(),
        format!("rtserve {}", env!("CARGO_PKG_VERSION"))
    );
}

// ---------------------------------------------------------------------------------------------
// Port ownership
// ---------------------------------------------------------------------------------------------

/// Asserts that rtserve on `addr` exits non-zero with one line on stderr naming the address.
#[track_caller]
fn assert_refused(addr: SocketAddr, extra: &[&str]) {
    let bind = addr.to_string();
    let mut args = vec!["--bind", bind.as_str()];
    args.extend_from_slice(extra);
    let run = run_to_exit(&args, &[]);
    assert_failed(run.status, &run.stderr);
    let lines: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert_eq!(lines.len(), 1, "one line on stderr, got:\n{}", run.stderr);
    assert!(
        lines[0].contains(&bind),
        "stderr does not name {bind}: {:?}",
        lines[0]
    );
    assert!(
        lines[0].to_ascii_lowercase().contains("in use"),
        "stderr does not say the address is in use: {:?}",
        lines[0]
    );
}

#[test]
fn a_port_in_use_is_refused() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    assert_refused(addr, &[]);
    // Joining on purpose needs the other listeners to have SO_REUSEPORT: a plain one refuses.
    assert_refused(addr, &["--shared-port"]);
}

#[test]
fn a_port_another_rtserve_holds_is_refused() {
    let first = Server::start(&["--threads", "2"]);
    assert_refused(first.addr, &[]);
    assert_eq!(
        listening_on(first.port()),
        2,
        "the first server lost nothing"
    );
    assert_eq!(first.get("/hello").status, 200);
}

#[test]
fn shared_port_joins_another_rtserve() {
    let mut first = Server::start(&["--threads", "2"]);
    let bind = first.addr.to_string();
    let second = Server::start(&["--bind", &bind, "--shared-port", "--threads", "2"]);
    assert_eq!(second.addr, first.addr);
    assert_eq!(listening_on(first.port()), 4, "both servers listen");
    for _ in 0..8 {
        assert_eq!(second.get("/hello").status, 200);
    }
    // A rolling restart: the first one leaves, the second serves on.
    first.signal(Signal::TERM);
    let status = first.wait_exit();
    assert_eq!(status.code(), Some(0), "stderr:\n{}", first.stderr());
    assert_eq!(listening_on(second.port()), 2);
    for _ in 0..8 {
        assert_eq!(second.get("/hello").status, 200);
    }
}

/// Where `systemd-socket-activate` is, if it is installed (`.ci/run` installs it).
fn socket_activate() -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| PathBuf::from(dir).join("systemd-socket-activate"))
        .find(|path| path.is_file())
}

#[test]
fn a_socket_from_systemd_socket_activation_is_served() {
    let Some(activate) = socket_activate() else {
        eprintln!("skipped: systemd-socket-activate is not installed (Debian package systemd)");
        return;
    };
    // A free port, for systemd-socket-activate to listen on.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let listen = format!("127.0.0.1:{port}");
    // Its own --bind and --threads are not used: the one inherited socket is served.
    let mut cmd = Command::new(activate);
    for (key, _) in std::env::vars_os() {
        if key.to_str().is_some_and(|k| k.starts_with("RTSERVE_")) {
            cmd.env_remove(key);
        }
    }
    cmd.args([
        "-l",
        &listen,
        BIN,
        "--bind",
        "127.0.0.1:1",
        "--threads",
        "3",
    ])
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    let mut child = KillOnDrop(cmd.spawn().expect("start systemd-socket-activate"));
    let (stderr, reader) = drain(child.0.stderr.take().expect("piped stderr"), None);
    let text = || stderr.lock().unwrap().clone();
    assert!(
        wait_until(|| text().contains("Listening on")),
        "systemd-socket-activate did not listen:\n{}",
        text()
    );
    // The first connection makes it start rtserve on the socket; it is answered too.
    let addr: SocketAddr = listen.parse().unwrap();
    let mut client = Client::new(support::connect(addr));
    client.send(&get("/hello"));
    let reply = client.response();
    assert_eq!(
        (reply.status, reply.text().as_str()),
        (200, "Hello, world!\n")
    );
    assert!(
        wait_until(|| text().contains(LISTENING)),
        "no startup line:\n{}",
        text()
    );
    let startup = text();
    assert!(
        startup.contains(&format!(
            "http://{listen} (reactors 1, workers 16, sockets from LISTEN_FDS)"
        )),
        "{startup}"
    );
    client.send(&get("/hello"));
    assert_eq!(client.response().status, 200);
    // It execs rtserve in its own process: the signal goes to rtserve.
    let raw = i32::try_from(child.0.id()).expect("pid fits in i32");
    kill_process(Pid::from_raw(raw).expect("pid"), Signal::TERM).expect("send SIGTERM");
    let status = child.wait_timeout(TIMEOUT).expect("rtserve exits");
    join_reader(reader);
    assert_eq!(status.code(), Some(0), "stderr:\n{}", text());
}

/// Sends requests, each on a connection of its own, until `stop`; returns (answered, failures).
fn new_connections(
    addr: SocketAddr,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> JoinHandle<(u64, Vec<String>)> {
    thread::spawn(move || {
        let (mut answered, mut failures) = (0, Vec::new());
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            match TcpStream::connect(addr) {
                Ok(stream) => {
                    let _ = stream.set_read_timeout(Some(TIMEOUT));
                    let mut client = Client::new(stream);
                    client.send(&get("/hello"));
                    match client.next_response(false) {
                        Some(reply) if reply.status == 200 => answered += 1,
                        Some(reply) => failures.push(format!("status {}", reply.status)),
                        None => failures.push("closed before an answer".to_owned()),
                    }
                }
                Err(e) => failures.push(format!("connect: {e}")),
            }
        }
        (answered, failures)
    })
}

/// Sends requests back to back on keep-alive connections until `stop`, opening a new one when
/// the server says `Connection: close`; a request whose connection closed before any byte of
/// an answer (the race HTTP/1.1 allows for a server closing an idle connection) is retried on
/// a new one, as a client may for an idempotent request. Returns (answered, retried).
fn keep_alive(
    addr: SocketAddr,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> JoinHandle<(u64, u64)> {
    thread::spawn(move || {
        let (mut answered, mut retried) = (0, 0);
        let mut client: Option<Client> = None;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            let conn = client.get_or_insert_with(|| Client::new(support::connect(addr)));
            if conn.stream.write_all(&get("/hello")).is_err() {
                retried += 1;
                client = None;
                continue;
            }
            match conn.next_response(false) {
                Some(reply) => {
                    assert_eq!(reply.status, 200, "{reply:?}");
                    answered += 1;
                    if reply.closes() {
                        client = None;
                    }
                }
                None => {
                    retried += 1;
                    client = None;
                }
            }
        }
        (answered, retried)
    })
}

#[test]
fn a_new_rtserve_takes_the_sockets_over_and_nothing_is_lost() {
    let dir = PrivateDir::new("control");
    let control = dir.join("control.sock");
    let path = control.to_str().unwrap();
    // Fresh connections may wait long for their request: none is closed unread on a busy
    // machine.
    let mut old = Server::start(&[
        "--threads",
        "2",
        "--control",
        path,
        "--shutdown-idle-ms",
        "5000",
    ]);
    // Traffic through the hand-over: new connections all along, and a slow request in flight.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|_| new_connections(old.addr, Arc::clone(&stop)))
        .collect();
    let keep_alive_clients: Vec<_> = (0..2)
        .map(|_| keep_alive(old.addr, Arc::clone(&stop)))
        .collect();
    let mut slow = old.connect();
    slow.send(&get("/slow?ms=500"));
    wait_until_read_at(old.addr, &slow.stream);
    // Its own --bind is not used: it takes the running one's sockets.
    let new = Server::start(&["--bind", "127.0.0.1:1", "--threads", "1", "--control", path]);
    assert_eq!(new.addr, old.addr);
    assert!(
        new.startup.contains(&format!(
            "(reactors 2, workers 16, sockets taken over through {path})"
        )),
        "{}",
        new.startup
    );
    // The old one answers what it read, and exits by itself.
    let reply = slow.response();
    assert_eq!(
        (reply.status, reply.text().as_str()),
        (200, "slept 500 ms\n")
    );
    assert_eq!(old.wait_exit().code(), Some(0), "stderr:\n{}", old.stderr());
    thread::sleep(Duration::from_millis(200));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut answered = 0;
    for client in clients {
        let (n, failures) = client.join().expect("a client");
        assert!(failures.is_empty(), "failed requests: {failures:?}");
        answered += n;
    }
    assert!(answered > 0, "no request was sent");
    // Keep-alive clients are told to close, and reconnect to the new process. What remains of
    // the race is said here.
    let (mut kept, mut retried) = (0, 0);
    for client in keep_alive_clients {
        let (n, r) = client.join().expect("a keep-alive client");
        kept += n;
        retried += r;
    }
    eprintln!(
        "hand-over: {answered} requests on new connections, {kept} on keep-alive ones, \
         {retried} of those retried after a close before their answer"
    );
    assert!(kept > 0, "no keep-alive request was sent");
    // The new one serves on, and takes the control socket for the next upgrade.
    assert_eq!(new.get("/hello").status, 200);
    assert!(control.exists());
}

/// A directory only this user may enter (mode 0700), as `--control` asks for; removed on drop.
struct PrivateDir(PathBuf);

impl PrivateDir {
    #[track_caller]
    fn new(name: &str) -> Self {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        let path = std::env::temp_dir().join(format!("rtserve-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .expect("create a private directory");
        // Whatever the umask said.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700)).unwrap();
        Self(path)
    }

    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// Sets the directory's mode.
    fn chmod(&self, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&self.0, std::fs::Permissions::from_mode(mode)).unwrap();
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The permission bits of the file at `path` (not following a symbolic link).
fn mode_of(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// The user tests switch to: `nobody`.
const NOBODY: u32 = 65534;

/// A command running Python code as [`NOBODY`] (`setpriv` from util-linux), or why there can
/// be none here: switching users needs root, and CI runs as root.
fn python_as_nobody(code: &str, args: &[&str]) -> Result<Command, String> {
    if !rustix::process::getuid().is_root() {
        return Err("not root, and switching to another uid needs root".to_owned());
    }
    let setpriv = ["/usr/bin/setpriv", "/bin/setpriv"]
        .into_iter()
        .find(|p| std::path::Path::new(p).is_file())
        .ok_or("setpriv (util-linux) is not installed")?;
    // Not a shim under root's home, which nobody could not run.
    let python = ["/usr/bin/python3", "/usr/local/bin/python3"]
        .into_iter()
        .find(|p| std::path::Path::new(p).is_file())
        .ok_or("python3 is not installed in /usr/bin or /usr/local/bin")?;
    let uid = format!("--reuid={NOBODY}");
    let gid = format!("--regid={NOBODY}");
    let mut all = vec![
        uid.as_str(),
        gid.as_str(),
        "--clear-groups",
        python,
        "-c",
        code,
    ];
    all.extend_from_slice(args);
    Ok(command_of(setpriv.as_ref(), &all))
}

/// What a new rtserve sends on the control socket to ask for the sockets.
const HAND_OVER_REQUEST: &[u8] = b"rtserve hand-over\n";

/// Asks the rtserve whose control socket is at `path` for its sockets, as a new rtserve
/// does, and returns its answer and the sockets it sent, without saying anything more.
#[track_caller]
fn ask_for_sockets(path: &std::path::Path) -> (String, Vec<std::os::fd::OwnedFd>) {
    use std::{
        io::IoSliceMut,
        mem::MaybeUninit,
        os::{fd::AsFd, unix::net::UnixStream},
    };

    use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, recvmsg};

    let mut stream = UnixStream::connect(path).expect("connect to the control socket");
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream.write_all(HAND_OVER_REQUEST).unwrap();
    let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(16))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut reply = [0u8; 256];
    let received = recvmsg(
        stream.as_fd(),
        &mut [IoSliceMut::new(&mut reply)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC,
    )
    .expect("the answer");
    let mut fds = Vec::new();
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(received) = message {
            fds.extend(received);
        }
    }
    let text = String::from_utf8_lossy(&reply[..received.bytes]).into_owned();
    (text, fds)
}

/// Asserts that `server` still runs and answers.
#[track_caller]
fn assert_still_serving(server: &mut Server) {
    assert!(
        server.child.0.try_wait().expect("try_wait").is_none(),
        "rtserve exited; stderr:\n{}",
        server.stderr()
    );
    assert_eq!(server.get("/hello").status, 200);
}

#[test]
fn the_control_socket_is_0600_whatever_the_umask() {
    let dir = PrivateDir::new("control-umask");
    let control = dir.join("control.sock");
    let path = control.to_str().unwrap();
    let cmd = command_of(
        "sh".as_ref(),
        &[
            "-c",
            "umask 000; exec \"$0\" \"$@\"",
            BIN,
            "--bind",
            "127.0.0.1:0",
            "--control",
            path,
        ],
    );
    let server = Server::spawn(cmd);
    assert_eq!(mode_of(&control), 0o600, "{}", server.stderr());
}

#[test]
fn a_control_directory_others_can_write_is_refused() {
    let dir = PrivateDir::new("control-open-dir");
    for mode in [0o777, 0o770, 0o1777] {
        dir.chmod(mode);
        let control = dir.join("control.sock");
        let path = control.to_str().unwrap();
        let run = run_to_exit(&["--bind", "127.0.0.1:0", "--control", path], &[]);
        assert_eq!(run.status.code(), Some(1), "stderr:\n{}", run.stderr);
        let lines: Vec<&str> = run.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "one line on stderr, got:\n{}", run.stderr);
        assert!(
            lines[0].contains(path) && lines[0].contains("writable"),
            "mode {mode:o}: the error should name {path} and say why: {:?}",
            lines[0]
        );
        assert!(!control.exists(), "mode {mode:o}: a socket was left");
    }
}

#[test]
fn control_at_a_file_that_is_not_a_socket_is_refused_and_kept() {
    let dir = PrivateDir::new("control-file");
    let control = dir.join("precious.txt");
    std::fs::write(&control, "keep me\n").unwrap();
    let path = control.to_str().unwrap();
    let run = run_to_exit(&["--bind", "127.0.0.1:0", "--control", path], &[]);
    assert_eq!(run.status.code(), Some(1), "stderr:\n{}", run.stderr);
    assert!(
        run.stderr
            .contains(&format!("--control {path}: exists and is not a socket")),
        "stderr:\n{}",
        run.stderr
    );
    assert_eq!(std::fs::read_to_string(&control).unwrap(), "keep me\n");
}

#[test]
fn the_control_socket_is_removed_on_a_clean_exit() {
    let dir = PrivateDir::new("control-exit");
    let control = dir.join("control.sock");
    let mut server = Server::start(&["--control", control.to_str().unwrap()]);
    assert!(control.exists());
    server.signal(Signal::TERM);
    assert_eq!(server.wait_exit().code(), Some(0), "{}", server.stderr());
    assert!(!control.exists(), "the control socket was left behind");
}

#[test]
fn a_control_peer_of_another_user_is_refused() {
    // Connects, asks for the sockets, and prints how many came and the answer.
    let client = r#"
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(20)
s.connect(sys.argv[1])
try:
    s.sendall(b"rtserve hand-over\n")
except OSError:
    pass
msg, fds, _, _ = socket.recv_fds(s, 256, 16)
print(len(fds), msg.decode(errors="replace").strip())
"#;
    let dir = PrivateDir::new("control-peer");
    let control = dir.join("control.sock");
    let path = control.to_str().unwrap();
    let cmd = match python_as_nobody(client, &[path]) {
        Ok(cmd) => cmd,
        Err(why) => {
            eprintln!("skipped: {why}");
            return;
        }
    };
    let mut server = Server::start(&["--threads", "2", "--control", path]);
    // The file's mode and the directory keep other users out; this test opens both, so that
    // only the check of the peer's credentials stands in the way.
    dir.chmod(0o755);
    std::fs::set_permissions(
        &control,
        std::os::unix::fs::PermissionsExt::from_mode(0o666),
    )
    .unwrap();
    let run = finish(cmd);
    assert_eq!(run.status.code(), Some(0), "client stderr:\n{}", run.stderr);
    let answer = run.stdout.trim();
    assert!(
        answer.starts_with("0 error: "),
        "nobody was answered {answer:?}"
    );
    server.wait_for_stderr(&format!("uid {NOBODY}"));
    // It neither handed the sockets over nor shut down.
    thread::sleep(Duration::from_millis(500));
    assert_still_serving(&mut server);
    assert!(
        !server.stderr().contains("shutting down"),
        "{}",
        server.stderr()
    );
}

#[test]
fn a_control_socket_planted_by_another_user_is_not_trusted() {
    // Listens on a Unix socket and answers every hand-over request with a TCP listener of
    // its own, as a rogue rtserve would.
    let planter = r#"
import os, socket, sys
tcp = socket.socket()
tcp.bind(("127.0.0.1", 0))
tcp.listen()
ctl = socket.socket(socket.AF_UNIX)
ctl.bind(sys.argv[1])
os.chmod(sys.argv[1], 0o666)
ctl.listen()
print(tcp.getsockname()[1], flush=True)
while True:
    peer, _ = ctl.accept()
    try:
        peer.settimeout(5)
        peer.recv(64)
        socket.send_fds(peer, [b"ok 1\n"], [tcp.fileno()])
    except OSError:
        pass
    peer.close()
"#;
    let theirs = PrivateDir::new("control-planted-nobody");
    std::os::unix::fs::chown(&theirs.0, Some(NOBODY), Some(NOBODY)).unwrap();
    let planted = theirs.join("control.sock");
    let cmd = match python_as_nobody(planter, &[planted.to_str().unwrap()]) {
        Ok(cmd) => cmd,
        Err(why) => {
            eprintln!("skipped: {why}");
            return;
        }
    };
    let mut cmd = cmd;
    cmd.stdout(Stdio::piped());
    let mut rogue = KillOnDrop(cmd.spawn().expect("start the planter"));
    let mut port = String::new();
    BufReader::new(rogue.0.stdout.take().unwrap())
        .read_line(&mut port)
        .unwrap();
    let port = port.trim().to_owned();
    assert!(port.parse::<u16>().is_ok(), "the planter said {port:?}");
    // Planted where our rtserve looks.
    let dir = PrivateDir::new("control-planted");
    let control = dir.join("control.sock");
    std::fs::rename(&planted, &control).unwrap();
    let path = control.to_str().unwrap();
    let try_it = |why: &str| {
        let run = run_to_exit(&["--bind", "127.0.0.1:0", "--control", path], &[]);
        assert!(
            !run.stderr.contains(&format!("127.0.0.1:{port}")),
            "{why}: the planted listener was adopted:\n{}",
            run.stderr
        );
        assert_eq!(run.status.code(), Some(1), "{why}: stderr:\n{}", run.stderr);
        assert!(
            run.stderr.contains(path) && run.stderr.contains(&format!("uid {NOBODY}")),
            "{why}: the error should name {path} and the other uid:\n{}",
            run.stderr
        );
        assert!(control.exists(), "{why}: the planted file was replaced");
    };
    // The file is theirs.
    try_it("planted file");
    // The file looks like root's, but the process behind it is theirs.
    std::os::unix::fs::chown(&control, Some(0), Some(0)).unwrap();
    try_it("planted listener");
}

#[test]
fn an_idle_control_peer_does_not_block_an_upgrade() {
    let dir = PrivateDir::new("control-idle");
    let control = dir.join("control.sock");
    let path = control.to_str().unwrap();
    let mut old = Server::start(&["--threads", "2", "--control", path]);
    // Peers that connect and say nothing.
    let idle: Vec<_> = (0..6)
        .map(|_| std::os::unix::net::UnixStream::connect(&control).expect("connect"))
        .collect();
    let started = Instant::now();
    let new = Server::start(&["--threads", "1", "--control", path]);
    eprintln!(
        "upgrade with {} idle peers took {:?}",
        idle.len(),
        started.elapsed()
    );
    assert!(
        new.startup.contains("sockets taken over"),
        "{}",
        new.startup
    );
    assert_eq!(old.wait_exit().code(), Some(0), "stderr:\n{}", old.stderr());
    assert_eq!(new.get("/hello").status, 200);
    drop(idle);
}

#[test]
fn a_config_the_new_rtserve_rejects_leaves_the_old_one_serving() {
    let dir = PrivateDir::new("control-bad-config");
    let control = dir.join("control.sock");
    let path = control.to_str().unwrap();
    let mut old = Server::start(&["--threads", "2", "--control", path]);
    let bind = old.addr.to_string();
    for (flag, value, setting) in [
        ("--body-budget", "0", "body_budget"),
        ("--recv-buffer", "0", "recv_buffer"),
        ("--send-buffer", "2G", "send_buffer"),
    ] {
        let run = run_to_exit(&["--bind", &bind, "--control", path, flag, value], &[]);
        assert_eq!(run.status.code(), Some(1), "{flag} {value}: {}", run.stderr);
        assert!(
            run.stderr.contains(setting),
            "{flag} {value}: the error should name {setting}:\n{}",
            run.stderr
        );
        assert_still_serving(&mut old);
        assert!(
            control.exists(),
            "{flag} {value}: the control socket is gone"
        );
    }
    // It is still the one to upgrade.
    let new = Server::start(&["--control", path]);
    assert_eq!(new.addr, old.addr);
    assert_eq!(old.wait_exit().code(), Some(0), "stderr:\n{}", old.stderr());
    assert_eq!(new.get("/hello").status, 200);
}

#[test]
fn a_new_rtserve_that_dies_before_it_serves_leaves_the_old_one_serving() {
    let dir = PrivateDir::new("control-dies");
    let control = dir.join("control.sock");
    let path = control.to_str().unwrap();
    let mut old = Server::start(&["--threads", "2", "--control", path]);
    // Takes the sockets, then closes without saying that it serves them.
    let (answer, fds) = ask_for_sockets(&control);
    assert!(answer.starts_with("ok 2"), "{answer:?}");
    assert_eq!(fds.len(), 2);
    drop(fds);
    old.wait_for_stderr("serving on");
    assert_still_serving(&mut old);
    // It kept its copies for the next upgrade.
    let new = Server::start(&["--control", path]);
    assert!(
        new.startup.contains("sockets taken over"),
        "{}",
        new.startup
    );
    assert_eq!(old.wait_exit().code(), Some(0), "stderr:\n{}", old.stderr());
    assert_eq!(new.get("/hello").status, 200);
}

#[test]
fn sigterm_after_a_hand_over_is_a_graceful_shutdown() {
    let dir = PrivateDir::new("control-sigterm");
    let control = dir.join("control.sock");
    let path = control.to_str().unwrap();
    let mut old = Server::start(&["--threads", "2", "--control", path]);
    let mut slow = old.connect();
    slow.send(&get("/slow?ms=3000"));
    wait_until_read_at(old.addr, &slow.stream);
    let new = Server::start(&["--control", path]);
    assert_eq!(new.addr, old.addr);
    // The operator stops the old one as usual: it finishes the request in flight.
    old.signal(Signal::TERM);
    let reply = slow.response();
    assert_eq!(
        (reply.status, reply.text().as_str()),
        (200, "slept 3000 ms\n")
    );
    assert_eq!(old.wait_exit().code(), Some(0), "stderr:\n{}", old.stderr());
    assert_eq!(new.get("/hello").status, 200);
}

// ---------------------------------------------------------------------------------------------
// Metrics
// ---------------------------------------------------------------------------------------------

/// Scrapes `/metrics`, checking that every line is a comment or a well-formed sample.
#[track_caller]
fn scrape(server: &Server) -> Scrape {
    let reply = server.get("/metrics");
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(
        reply.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let text = reply.text();
    for line in text.lines() {
        match LineInfo::parse(line) {
            LineInfo::Doc { .. } | LineInfo::Type { .. } => {}
            LineInfo::Sample { value, .. } => assert!(
                value == "+Inf" || value.parse::<f64>().is_ok(),
                "bad value in {line:?}"
            ),
            other => panic!("unexpected line {line:?} ({other:?}) in:\n{text}"),
        }
    }
    Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("/metrics parses")
}

/// Whether a sample's labels are exactly `labels`.
fn labelled(sample: &Sample, labels: &[(&str, &str)]) -> bool {
    sample.labels.len() == labels.len()
        && labels
            .iter()
            .all(|(name, value)| sample.labels.get(name) == Some(*value))
}

/// The value of a counter or gauge sample.
fn value(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape
        .samples
        .iter()
        .find(|s| s.metric == metric && labelled(s, labels))
        .map(|s| match s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
            ref other => panic!("{metric} is not a single value: {other:?}"),
        })
}

/// A counter that may not be shown yet (counts by status appear at their first response).
fn count(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    value(scrape, metric, labels).unwrap_or(0.0)
}

/// A route's latency histogram buckets.
#[track_caller]
fn histogram<'a>(scrape: &'a Scrape, route: &str) -> &'a [HistogramCount] {
    let sample = scrape
        .samples
        .iter()
        .find(|s| {
            s.metric == "rtserve_request_duration_seconds" && labelled(s, &[("route", route)])
        })
        .unwrap_or_else(|| panic!("no latency histogram for {route}"));
    let Value::Histogram(buckets) = &sample.value else {
        panic!("not a histogram: {sample:?}");
    };
    buckets
}

/// The `+Inf` bucket of a route's latency histogram.
fn histogram_count(scrape: &Scrape, route: &str) -> f64 {
    histogram(scrape, route)
        .iter()
        .find(|b| b.less_than.is_infinite())
        .map(|b| b.count)
        .unwrap_or_else(|| panic!("no +Inf bucket for {route}"))
}

/// How many waits the queue-wait histogram holds.
fn queue_waits(scrape: &Scrape) -> f64 {
    histogram_total(scrape, "rtserve_queue_wait_seconds")
}

/// How many values an unlabelled histogram holds (its +Inf bucket).
fn histogram_total(scrape: &Scrape, metric: &str) -> f64 {
    let sample = scrape
        .samples
        .iter()
        .find(|s| s.metric == metric)
        .unwrap_or_else(|| panic!("no {metric}"));
    let Value::Histogram(buckets) = &sample.value else {
        panic!("not a histogram: {sample:?}");
    };
    buckets
        .iter()
        .find(|b| b.less_than.is_infinite())
        .map_or(0.0, |b| b.count)
}

#[test]
fn metrics_parse_and_move() {
    let server = Server::start(&["--threads", "2", "--deadline-ms", "300"]);
    assert_eq!(server.get("/hello").status, 200);
    let first = scrape(&server);

    // Responses by route and status.
    let requests: Vec<&Sample> = first
        .samples
        .iter()
        .filter(|s| s.metric == "rtserve_requests_total")
        .collect();
    assert!(!requests.is_empty(), "no rtserve_requests_total samples");
    for s in &requests {
        assert!(
            matches!(s.value, Value::Counter(_)),
            "rtserve_requests_total is a counter: {s:?}"
        );
        assert!(
            s.labels.len() == 2
                && s.labels.get("route").is_some()
                && s.labels.get("status").is_some(),
            "rtserve_requests_total is labelled by route and status: {s:?}"
        );
    }
    assert!(
        count(
            &first,
            "rtserve_requests_total",
            &[("route", "/hello"), ("status", "200")]
        ) >= 1.0
    );

    // A latency histogram for every route, and one for requests no route claimed.
    for route in ["/hello", "/slow", "/echo", "/metrics", "/healthz", "other"] {
        let buckets = histogram(&first, route);
        assert!(buckets.len() > 1, "{route}: {buckets:?}");
        assert!(
            buckets
                .windows(2)
                .all(|w| w[0].less_than < w[1].less_than && w[0].count <= w[1].count),
            "{route}: buckets must be cumulative: {buckets:?}"
        );
        assert!(
            buckets.last().unwrap().less_than.is_infinite(),
            "{route}: {buckets:?}"
        );
        let total = value(
            &first,
            "rtserve_request_duration_seconds_count",
            &[("route", route)],
        );
        assert_eq!(
            total,
            Some(histogram_count(&first, route)),
            "{route}: _count is +Inf"
        );
        assert!(
            value(
                &first,
                "rtserve_request_duration_seconds_sum",
                &[("route", route)]
            )
            .is_some(),
            "{route}: no _sum"
        );
    }

    // Open connections, one gauge per reactor.
    let mut reactors: Vec<&str> = first
        .samples
        .iter()
        .filter(|s| s.metric == "rtserve_open_connections")
        .map(|s| {
            assert!(matches!(s.value, Value::Gauge(_)), "a gauge: {s:?}");
            s.labels.get("reactor").expect("labelled by reactor")
        })
        .collect();
    reactors.sort_unstable();
    assert_eq!(reactors, ["0", "1"]);

    // The server-wide counters.
    for name in [
        "rtserve_deadline_missed_total",
        "rtserve_accept_backoffs_total",
        "rtserve_body_budget_refusals_total",
        "rtserve_slow_bodies_total",
    ] {
        let sample = first
            .samples
            .iter()
            .find(|s| s.metric == name)
            .unwrap_or_else(|| panic!("no {name}"));
        assert!(matches!(sample.value, Value::Counter(_)), "{sample:?}");
        assert!(sample.labels.is_empty(), "{sample:?}");
        assert!(first.docs.contains_key(name), "{name} has no HELP");
    }
    // Refusals, by route and reason.
    for reason in ["queue-full", "expected-miss", "not-started", "deadline"] {
        let labels = [("route", "/slow"), ("reason", reason)];
        assert_eq!(value(&first, "rtserve_shed_total", &labels), Some(0.0));
    }
    assert!(first.docs.contains_key("rtserve_shed_total"));
    let bodies = first
        .samples
        .iter()
        .find(|s| s.metric == "rtserve_body_bytes")
        .expect("the body-budget gauge");
    assert!(
        matches!(bodies.value, Value::Gauge(v) if v == 0.0),
        "{bodies:?}"
    );
    assert!(first.docs.contains_key("rtserve_queue_wait_seconds"));
    // The kernel's receive stamps are on by default: the reads that brought these requests
    // were stamped.
    assert!(histogram_total(&first, "rtserve_socket_queue_seconds") > 0.0);
    assert_eq!(
        value(&first, "rtserve_accept_backoffs_total", &[]),
        Some(0.0)
    );

    // N requests to /hello move its counter and histogram by N, no more.
    const N: usize = 7;
    let hello_200 = [("route", "/hello"), ("status", "200")];
    let before = count(&first, "rtserve_requests_total", &hello_200);
    let before_histogram = histogram_count(&first, "/hello");
    let mut conn = server.connect();
    for i in 0..N {
        if i % 2 == 0 {
            conn.send(&get("/hello"));
            assert_eq!(conn.response().status, 200);
        } else {
            assert_eq!(server.get("/hello").status, 200);
        }
    }
    let target = before + N as f64;
    let hello = [("route", "/hello")];
    let goodput_before = count(&first, "rtserve_goodput_total", &hello);
    let mut last = first;
    assert!(
        wait_until(|| {
            last = scrape(&server);
            count(&last, "rtserve_requests_total", &hello_200) >= target
        }),
        "the /hello counter did not reach {target}"
    );
    assert_eq!(count(&last, "rtserve_requests_total", &hello_200), target);
    assert_eq!(
        histogram_count(&last, "/hello"),
        before_histogram + N as f64
    );
    // Each was a 2xx in time: goodput.
    assert_eq!(
        count(&last, "rtserve_goodput_total", &hello),
        goodput_before + N as f64
    );

    // A missed deadline is counted, and its 503 filed under its route.
    let slow_503 = [("route", "/slow"), ("status", "503")];
    let missed_before = count(&last, "rtserve_deadline_missed_total", &[]);
    let slow_before = count(&last, "rtserve_requests_total", &slow_503);
    let slow = [("route", "/slow")];
    let admitted_missed_before = count(&last, "rtserve_admitted_missed_total", &slow);
    assert_eq!(server.get("/slow?ms=10000").status, 503);
    assert!(
        wait_until(|| {
            last = scrape(&server);
            count(&last, "rtserve_deadline_missed_total", &[]) >= missed_before + 1.0
        }),
        "rtserve_deadline_missed_total did not move"
    );
    assert_eq!(
        count(&last, "rtserve_deadline_missed_total", &[]),
        missed_before + 1.0
    );
    assert_eq!(
        count(&last, "rtserve_requests_total", &slow_503),
        slow_before + 1.0
    );
    assert_eq!(
        count(
            &last,
            "rtserve_shed_total",
            &[("route", "/slow"), ("reason", "deadline")]
        ),
        missed_before + 1.0
    );
    // It was let in (the pool was idle), so it is an admitted job that missed, on its route.
    assert_eq!(
        count(&last, "rtserve_admitted_missed_total", &slow),
        admitted_missed_before + 1.0
    );
    // And how late its 503 went out.
    assert_eq!(
        histogram_total(&last, "rtserve_deadline_lateness_seconds"),
        missed_before + 1.0
    );
    // Its job waited for a worker (counted in the queue-wait histogram), and ran until the
    // deadline woke it (a run-time estimate for /slow once the worker reports it).
    assert!(
        wait_until(|| {
            last = scrape(&server);
            let estimate = value(
                &last,
                "rtserve_run_time_estimate_seconds",
                &[("route", "/slow")],
            );
            queue_waits(&last) >= 1.0 && estimate.is_some_and(|s| s > 0.0)
        }),
        "no queue wait or run-time estimate for /slow"
    );
    // What admission learnt of the route: a margin, and a limit of at least one job at once
    // (a job that sleeps never lowers it below the workers).
    assert!(value(&last, "rtserve_admission_margin_seconds", &slow).is_some());
    let limit = value(&last, "rtserve_concurrency_limit", &slow);
    assert!(limit.is_some_and(|n| n >= 1.0), "{limit:?}");
    assert!(last.docs.contains_key("rtserve_over_refused_total"));
}

// ---------------------------------------------------------------------------------------------
// Access log
// ---------------------------------------------------------------------------------------------

/// A file path that is removed when dropped.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str) -> Self {
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        Self(
            std::env::temp_dir().join(format!("rtserve-cli-{}-{nanos}-{name}", std::process::id())),
        )
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The `key=value` fields of an access-log line.
fn log_field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|field| field.strip_prefix(key)?.strip_prefix('='))
}

#[test]
fn access_log_has_one_line_per_response() {
    let log = TempFile::new("access.log");
    let path = log.0.to_str().expect("a UTF-8 temp path").to_owned();
    let server = Server::start(&["--access-log", &path]);

    assert_eq!(server.get("/hello").status, 200);
    assert_eq!(server.get("/nope").status, 404);
    assert_eq!(server.get("/slow?ms=abc").status, 400);
    assert_eq!(server.get("/slow?ms=1").status, 200);
    let wrong_method =
        server.request(b"POST /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(wrong_method.status, 405);
    let mut conn = server.connect();
    conn.send(b"garbage\r\n\r\n");
    assert_eq!(conn.response().status, 400);
    let mut expected = vec![
        ("200", "/hello"),
        ("404", "other"),
        ("400", "/slow"),
        ("200", "/slow"),
        ("405", "/hello"),
        ("400", "other"),
    ];

    let read = || std::fs::read_to_string(&log.0).unwrap_or_default();
    assert!(
        wait_until(|| read().lines().count() >= expected.len()),
        "the access log did not get {} lines:\n{}",
        expected.len(),
        read()
    );
    let text = read();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines.len(),
        expected.len(),
        "one line per response:\n{text}"
    );
    let mut seen = Vec::new();
    for line in &lines {
        let status = log_field(line, "status").unwrap_or_else(|| panic!("no status= in {line:?}"));
        let route = log_field(line, "route").unwrap_or_else(|| panic!("no route= in {line:?}"));
        let latency =
            log_field(line, "latency_us").unwrap_or_else(|| panic!("no latency_us= in {line:?}"));
        assert!(latency.parse::<u64>().is_ok(), "latency_us in {line:?}");
        seen.push((status, route));
    }
    // Reactors log in parallel: compare as multisets.
    seen.sort_unstable();
    expected.sort_unstable();
    assert_eq!(seen, expected, "access log:\n{text}");
}

#[test]
fn access_log_to_stderr() {
    let server = Server::start(&["--access-log", "-"]);
    assert_eq!(server.get("/hello").status, 200);
    server.wait_for_stderr("status=200 route=/hello latency_us=");
}
