//! A tiny scriptable HTTP/1.1 server on loopback (std threads, port 0) for the load generator's
//! tests: fixed delays, one global stall, disappearing mid-run, and a few response shapes by
//! path.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How the server behaves.
#[derive(Debug, Clone, Default)]
pub(crate) struct Behavior {
    /// Every response waits this long after its request arrived.
    pub(crate) delay: Duration,
    /// (start, length) after the first accepted connection: requests arriving in that window
    /// are not answered before it ends.
    pub(crate) stall: Option<(Duration, Duration)>,
    /// After this long from the first accepted connection, close the listener and every
    /// connection.
    pub(crate) gone_after: Option<Duration>,
}

/// A running test server; stops when dropped.
#[derive(Debug)]
pub(crate) struct Server {
    pub(crate) addr: SocketAddr,
    pub(crate) requests: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    accept: Option<thread::JoinHandle<()>>,
}

impl Server {
    #[track_caller]
    pub(crate) fn start(behavior: Behavior) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let addr = listener.local_addr().expect("local addr");
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(AtomicU64::new(0));
        let accept = {
            let stop = Arc::clone(&stop);
            let requests = Arc::clone(&requests);
            thread::spawn(move || accept_loop(&listener, &behavior, &stop, &requests))
        };
        Self {
            addr,
            requests,
            stop,
            accept: Some(accept),
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

fn accept_loop(
    listener: &TcpListener,
    behavior: &Behavior,
    stop: &Arc<AtomicBool>,
    requests: &Arc<AtomicU64>,
) {
    let first: Arc<Mutex<Option<Instant>>> = Arc::default();
    let gone = Arc::new(AtomicBool::new(false));
    let mut conns = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        let since_first = first.lock().unwrap().map(|t| t.elapsed());
        if let (Some(after), Some(elapsed)) = (behavior.gone_after, since_first)
            && elapsed >= after
        {
            gone.store(true, Ordering::SeqCst);
            break; // Dropping the listener refuses new connections.
        }
        match listener.accept() {
            Ok((stream, _)) => {
                first.lock().unwrap().get_or_insert_with(Instant::now);
                let behavior = behavior.clone();
                let (stop, gone, first, requests) = (
                    Arc::clone(stop),
                    Arc::clone(&gone),
                    Arc::clone(&first),
                    Arc::clone(requests),
                );
                conns.push(thread::spawn(move || {
                    serve(stream, &behavior, &stop, &gone, &first, &requests);
                }));
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => thread::sleep(Duration::from_millis(1)),
            Err(_) => thread::sleep(Duration::from_millis(1)),
        }
    }
    // Stopped or gone: every connection thread closes its socket and exits.
    gone.store(true, Ordering::SeqCst);
    for conn in conns {
        let _ = conn.join();
    }
}

fn serve(
    mut stream: TcpStream,
    behavior: &Behavior,
    stop: &AtomicBool,
    gone: &AtomicBool,
    first: &Mutex<Option<Instant>>,
    requests: &AtomicU64,
) {
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(Duration::from_millis(10)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if stop.load(Ordering::SeqCst) || gone.load(Ordering::SeqCst) {
            let _ = stream.shutdown(Shutdown::Both);
            return;
        }
        // Answer every complete request in the buffer, in order.
        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4) {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let body_len = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().ok())?
                })
                .unwrap_or(0usize);
            if buf.len() < end + body_len {
                break;
            }
            buf.drain(..end + body_len);
            let arrived = Instant::now();
            requests.fetch_add(1, Ordering::SeqCst);
            let mut answer_at = arrived + behavior.delay;
            if let (Some((start, length)), Some(first)) = (behavior.stall, *first.lock().unwrap()) {
                let (from, to) = (first + start, first + start + length);
                if arrived >= from && arrived < to {
                    answer_at = answer_at.max(to);
                }
            }
            while Instant::now() < answer_at {
                if stop.load(Ordering::SeqCst) || gone.load(Ordering::SeqCst) {
                    let _ = stream.shutdown(Shutdown::Both);
                    return;
                }
                thread::sleep(
                    answer_at
                        .saturating_duration_since(Instant::now())
                        .min(Duration::from_millis(5)),
                );
            }
            let path = head.split_whitespace().nth(1).unwrap_or("/");
            let (response, close): (&[u8], bool) = match path {
                "/503" => (
                    b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy",
                    false,
                ),
                "/404" => (
                    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
                    false,
                ),
                "/chunked" => (
                    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
                    false,
                ),
                "/close" => (
                    b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
                    true,
                ),
                "/garbage" => (b"HTTP/9 what\r\n\r\n", true),
                _ => (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", false),
            };
            if path == "/big" {
                // 1 MiB body: the client must skip it without holding it all.
                let mut big = b"HTTP/1.1 200 OK\r\nContent-Length: 1048576\r\n\r\n".to_vec();
                big.resize(big.len() + 1024 * 1024, b'x');
                if stream.write_all(&big).is_err() {
                    return;
                }
                continue;
            }
            let close = close || head.to_ascii_lowercase().contains("connection: close");
            if stream.write_all(response).is_err() || close {
                let _ = stream.shutdown(Shutdown::Both);
                return;
            }
        }
        match stream.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) => {}
            Err(_) => return,
        }
    }
}
