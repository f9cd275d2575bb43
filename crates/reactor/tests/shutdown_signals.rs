//! `ShutdownSignals` and `ServerHandle::shutdown_on_signals`, in a child process: this test
//! binary run again with `RTSERVE_SIGNALS_CHILD` set, so that the signals it is sent reach
//! no other test.
//!
//! The child is the test [`child`], run alone; as a test of the parent's run it returns at
//! once. It says what it has done on stdout, a line at a time, which the parent waits for
//! before it sends the next signal.

use std::{
    env,
    io::{BufRead, BufReader, Read, Write},
    net::TcpStream,
    process::{Child, Command, ExitStatus, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use rtserve_reactor::{
    Config, JobContext, Reply, Response, Router, Server, ShutdownSignals, StatusCode,
};
use rustix::process::{Pid, Signal, kill_process};

/// The variable that makes this binary the child, and names what it does.
const CHILD: &str = "RTSERVE_SIGNALS_CHILD";

/// How long the parent waits for any line of the child, or for its exit.
const PATIENCE: Duration = Duration::from_secs(20);

/// How long the child's one offloaded job takes once it has said it started: long enough for
/// the signal to reach the server before the answer, however busy the machine.
const JOB: Duration = Duration::from_millis(1500);

/// The child's side: `serve` serves a slow route until `shutdown_on_signals` returns; `wait`
/// installs `ShutdownSignals`, says which signal it got, then sleeps longer than any test
/// waits (a second signal must end it).
#[test]
fn child() {
    let Ok(mode) = env::var(CHILD) else {
        return;
    };
    match mode.as_str() {
        "serve" => {
            let router = Router::new().get("/slow", |_| {
                Reply::offload(|_: &JobContext| {
                    say("working");
                    thread::sleep(JOB);
                    Response::text(StatusCode::OK, "done\n")
                })
            });
            let mut config = Config::default();
            config.addr = "127.0.0.1:0".parse().unwrap();
            config.reactors = 1;
            config.workers = 1;
            config.deadline = Duration::from_secs(30);
            let server = Server::start(config, router).unwrap();
            say(&format!("addr {}", server.local_addr()));
            server.shutdown_on_signals().unwrap();
            say("stopped");
            std::process::exit(0);
        }
        "wait" => {
            let mut signals = ShutdownSignals::install().unwrap();
            say("installed");
            let signal = signals.wait();
            say(&format!("signal {signal}"));
            thread::sleep(2 * PATIENCE);
            std::process::exit(3);
        }
        other => panic!("{CHILD}={other}: no such child"),
    }
}

/// Writes `line` to stdout at once, for the parent.
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").unwrap();
    out.flush().unwrap();
}

/// This binary run as the child `mode`, killed on drop, with its stdout lines read on a thread
/// of their own.
struct ChildProcess {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl ChildProcess {
    fn start(mode: &str) -> Self {
        let mut child = Command::new(env::current_exe().unwrap())
            .args(["child", "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD, mode)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (send, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if send.send(line).is_err() {
                    return;
                }
            }
        });
        Self { child, lines }
    }

    /// Waits for the child's line that says `prefix` and returns the rest of it.
    #[track_caller]
    fn expect(&self, prefix: &str) -> String {
        let until = Instant::now() + PATIENCE;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    // The first line follows the harness's own `test child ... `.
                    if let Some((_, rest)) = line.split_once(prefix) {
                        return rest.trim().to_owned();
                    }
                }
                Err(e) => panic!("no line {prefix:?} from the child: {e}"),
            }
        }
    }

    fn signal(&self, signal: Signal) {
        let pid = Pid::from_child(&self.child);
        kill_process(pid, signal).expect("send a signal");
    }

    /// Waits for the child to exit by itself.
    #[track_caller]
    fn wait_exit(&mut self) -> ExitStatus {
        let until = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < until, "the child did not exit");
            thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn sigterm_finishes_the_request_in_flight_then_shutdown_on_signals_returns() {
    let mut child = ChildProcess::start("serve");
    let addr = child.expect("addr");
    let mut conn = TcpStream::connect(&addr).unwrap();
    conn.set_read_timeout(Some(PATIENCE)).unwrap();
    conn.write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    child.expect("working");
    child.signal(Signal::TERM);

    // The answer, with `Connection: close` as the server is shutting down, then the end.
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    assert!(answer.contains("\r\nConnection: close\r\n"), "{answer}");
    assert!(answer.ends_with("\r\n\r\ndone\n"), "{answer}");
    child.expect("stopped");
    assert_eq!(child.wait_exit().code(), Some(0));
}

#[test]
fn the_first_signal_is_waited_for_and_a_second_exits_at_once_with_status_1() {
    let mut child = ChildProcess::start("wait");
    child.expect("installed");
    child.signal(Signal::INT);
    assert_eq!(child.expect("signal"), "2");
    // The first signal has been handled (its line is written after it): this one is a second.
    let sent = Instant::now();
    child.signal(Signal::TERM);
    let status = child.wait_exit();
    assert_eq!(status.code(), Some(1), "{status:?}");
    assert!(sent.elapsed() < PATIENCE, "it slept rather than exit");
}

#[test]
fn sigterm_alone_is_returned() {
    let child = ChildProcess::start("wait");
    child.expect("installed");
    child.signal(Signal::TERM);
    assert_eq!(child.expect("signal"), "15");
}
