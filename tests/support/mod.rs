//! Shared helpers for the black-box tests: start a server on 127.0.0.1:0 in-process, talk to
//! it over raw sockets, and read responses with the load generator's response reader.
#![allow(dead_code, unreachable_pub)] // Each test binary uses a different subset.

use std::{
    io::{ErrorKind, Read, Write},
    net::{SocketAddr, TcpStream},
    time::{Duration, Instant},
};

use rtserve_loadgen::response::{Observer, Progress, ResponseParser};
use rtserve_reactor::{
    Config, Handler, Method, Reply, Request, Response, Router, Server, ServerHandle, StatusCode,
};

/// Generous: CI is a busy 2-core machine. A test that waits this long has failed.
pub const TIMEOUT: Duration = Duration::from_secs(20);

/// A client socket connected to `addr`, with read/write timeouts of [`TIMEOUT`].
#[track_caller]
pub fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(TIMEOUT)).unwrap();
    stream
}

/// A config for tests: loopback, port 0, two reactors.
pub fn config() -> Config {
    let mut config = Config::default();
    config.addr = "127.0.0.1:0".parse().unwrap();
    config.reactors = 2;
    config
}

/// A server that stops (and is joined) when dropped, so a failing test cannot leak it.
pub struct TestServer {
    handle: Option<ServerHandle>,
    pub addr: SocketAddr,
}

impl TestServer {
    #[track_caller]
    pub fn start(config: Config, handler: impl Handler) -> Self {
        Self::from_handle(Server::start(config, handler).expect("server starts"))
    }

    /// Takes charge of a server started otherwise (e.g. with `Server::start_on`).
    pub fn from_handle(handle: ServerHandle) -> Self {
        let addr = handle.local_addr();
        Self {
            handle: Some(handle),
            addr,
        }
    }

    /// Starts with the standard test routes.
    #[track_caller]
    pub fn routes(config: Config) -> Self {
        Self::start(config, routes())
    }

    /// A connected client with read/write timeouts.
    #[track_caller]
    pub fn connect(&self) -> TcpStream {
        connect(self.addr)
    }

    /// The server's statistics.
    pub fn stats(&self) -> rtserve_reactor::Stats {
        self.handle.as_ref().expect("running").stats()
    }

    /// Shuts down and joins, with a bound on the wait.
    pub fn stop(mut self) {
        self.stop_inner();
    }

    fn stop_inner(&mut self) {
        if let Some(handle) = self.handle.take() {
            handle.shutdown();
            join_within_timeout(handle);
        }
    }
}

/// Joins a server that was told to shut down, failing the test if it takes longer than
/// [`TIMEOUT`] or a reactor ended with an error.
#[track_caller]
pub fn join_within_timeout(handle: ServerHandle) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(handle.join());
    });
    let joined = rx.recv_timeout(TIMEOUT);
    assert!(
        matches!(joined, Ok(Ok(()))),
        "server did not stop cleanly: {joined:?}"
    );
}

/// Shuts a server down and joins it, with the bound of [`join_within_timeout`].
#[track_caller]
pub fn stop(handle: ServerHandle) {
    handle.shutdown();
    join_within_timeout(handle);
}

/// Sets its flag when dropped: tells a test that something it handed over (a future, a
/// service's state) was dropped.
pub struct Dropped(pub std::sync::Arc<std::sync::atomic::AtomicBool>);

impl Drop for Dropped {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if std::thread::panicking() {
            if let Some(handle) = self.handle.take() {
                handle.shutdown();
            }
            return;
        }
        self.stop_inner();
    }
}

/// The routes the tests use.
pub fn routes() -> Router {
    Router::new()
        .get("/hello", |_: &Request<'_>| -> Reply {
            Response::text(StatusCode::OK, "hello\n").into()
        })
        .post("/echo", |req: &Request<'_>| -> Reply {
            Response::new(StatusCode::OK)
                .with_body(req.body().to_vec())
                .into()
        })
        .get("/reactor", |req: &Request<'_>| -> Reply {
            Response::text(StatusCode::OK, req.reactor().to_string()).into()
        })
        .get("/path", |req: &Request<'_>| -> Reply {
            Response::text(StatusCode::OK, req.target().to_owned()).into()
        })
        .get("/big", |req: &Request<'_>| -> Reply {
            let size: usize = req
                .query_param("size")
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            let body: Vec<u8> = (0..size).map(|i| b'a' + (i % 26) as u8).collect();
            Response::new(StatusCode::OK).with_body(body).into()
        })
        .get("/panic", |_: &Request<'_>| -> Reply {
            panic!("handler panic on purpose")
        })
        // Blocks its reactor thread for `ms` milliseconds: a test tool for making a reactor
        // find several things (data, a FIN, new connections) waiting at once when it wakes.
        .get("/sleep", |req: &Request<'_>| -> Reply {
            let ms: u64 = req
                .query_param("ms")
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            std::thread::sleep(Duration::from_millis(ms));
            Response::text(StatusCode::OK, "slept\n").into()
        })
        .route(Method::Put, "/echo", |req: &Request<'_>| -> Reply {
            Response::new(StatusCode::OK)
                .with_body(req.body().to_vec())
                .into()
        })
}

/// A parsed response.
#[derive(Debug)]
pub struct Reply1 {
    /// The status line, without its CRLF.
    pub status_line: String,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply1 {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Whether the response says `Connection: close`.
    pub fn closes(&self) -> bool {
        self.header("connection")
            .is_some_and(|c| c.eq_ignore_ascii_case("close"))
    }
}

/// What an [`Observer`] keeps of one response: its head's fields and its decoded body.
#[derive(Default)]
struct Collect {
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Observer for Collect {
    fn head(&mut self, head: &httparse::Response<'_, '_>) {
        self.headers = head
            .headers
            .iter()
            .map(|f| {
                let value = String::from_utf8_lossy(f.value).into_owned();
                (f.name.to_owned(), value)
            })
            .collect();
    }

    fn body(&mut self, bytes: &[u8]) {
        self.body.extend_from_slice(bytes);
    }
}

/// Reads responses from a stream, keeping bytes that belong to the next one.
pub struct Client {
    pub stream: TcpStream,
    buf: Vec<u8>,
    parser: ResponseParser,
}

impl Client {
    pub fn new(stream: TcpStream) -> Self {
        Self {
            stream,
            buf: Vec::new(),
            // Tests of `Expect: 100-continue` read the interim response on its own.
            parser: ResponseParser::reporting_interim(),
        }
    }

    /// Asserts that nothing arrives for 300 ms (a connection the server has not taken yet);
    /// the read timeout is [`TIMEOUT`] again after.
    #[track_caller]
    pub fn expect_nothing_yet(&mut self) {
        self.stream
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let mut byte = [0u8; 1];
        match self.stream.read(&mut byte) {
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            other => panic!("answered while it should wait: {other:?}"),
        }
        self.stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    }

    #[track_caller]
    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write request");
    }

    /// Reads one response to a request that was not HEAD.
    #[track_caller]
    pub fn response(&mut self) -> Reply1 {
        self.read_response(false)
    }

    /// Reads one response; `head` says it answers a HEAD request (no body).
    #[track_caller]
    pub fn read_response(&mut self, head: bool) -> Reply1 {
        self.next_response(head).unwrap_or_else(|| {
            panic!(
                "connection closed before a response; have {:?}",
                String::from_utf8_lossy(&self.buf)
            )
        })
    }

    /// Reads one response, or `None` if the connection closed (or was reset) before any byte
    /// of one: the race HTTP/1.1 allows when a server closes an idle connection as a request
    /// leaves. A close or reset in the middle of a response panics.
    #[track_caller]
    pub fn next_response(&mut self, head: bool) -> Option<Reply1> {
        let deadline = Instant::now() + TIMEOUT;
        let mut collect = Collect::default();
        let mut status_line = None;
        loop {
            if self.parser.is_idle() && status_line.is_none() {
                status_line = find(&self.buf, b"\r\n")
                    .map(|end| String::from_utf8_lossy(&self.buf[..end]).into_owned());
            }
            let (used, progress) = self
                .parser
                .recv(&self.buf, head, &mut collect)
                .unwrap_or_else(|e| panic!("{e}: {:?}", String::from_utf8_lossy(&self.buf)));
            self.buf.drain(..used);
            let done = match progress {
                Progress::Complete(done) => done,
                Progress::NeedMore => match self.read_some(deadline) {
                    Ok(true) => continue,
                    Ok(false) => match self.parser.recv_eof() {
                        Ok(Some(done)) => done,
                        Ok(None) if status_line.is_none() && self.buf.is_empty() => return None,
                        result => panic!("response cut short ({result:?}): {status_line:?}"),
                    },
                    Err(e) if status_line.is_none() && self.buf.is_empty() => {
                        assert_eq!(e.kind(), ErrorKind::ConnectionReset, "read failed: {e}");
                        return None;
                    }
                    Err(e) => panic!("read failed: {e}; have {status_line:?}"),
                },
            };
            return Some(Reply1 {
                status_line: status_line.expect("a status line before a complete response"),
                status: done.status,
                headers: collect.headers,
                body: collect.body,
            });
        }
    }

    /// Waits until the server closes the connection; returns the bytes that came first.
    /// Panics on a reset, which would mean the server destroyed data it had sent.
    #[track_caller]
    pub fn read_to_close(&mut self) -> Vec<u8> {
        let deadline = Instant::now() + TIMEOUT;
        while self.fill_or_eof(deadline) {}
        std::mem::take(&mut self.buf)
    }

    /// Waits until the server closes the connection, cleanly or with a reset; returns the
    /// bytes that came first and whether the close was a reset.
    #[track_caller]
    pub fn read_to_close_or_reset(&mut self) -> (Vec<u8>, bool) {
        let deadline = Instant::now() + TIMEOUT;
        let reset = loop {
            match self.read_some(deadline) {
                Ok(true) => {}
                Ok(false) => break false,
                Err(e) if e.kind() == ErrorKind::ConnectionReset => break true,
                Err(e) => panic!(
                    "read failed: {e}; have {:?}",
                    String::from_utf8_lossy(&self.buf)
                ),
            }
        };
        (std::mem::take(&mut self.buf), reset)
    }

    /// Waits for the server to close the connection without sending anything more.
    #[track_caller]
    pub fn expect_eof(&mut self) {
        let rest = self.read_to_close();
        assert!(
            rest.is_empty(),
            "expected a close with no more bytes, got {:?}",
            String::from_utf8_lossy(&rest)
        );
    }

    /// Reads an error response that ends the connection: `status`, `Connection: close`, a
    /// body as long as its Content-Length, then a clean close (EOF, not a reset).
    #[track_caller]
    pub fn expect_error(&mut self, status: u16) -> Reply1 {
        let reply = self.response();
        assert_eq!(reply.status, status, "unexpected response {reply:?}");
        assert_eq!(
            reply
                .header("connection")
                .map(str::to_ascii_lowercase)
                .as_deref(),
            Some("close"),
            "an error response must say it closes: {reply:?}"
        );
        assert!(
            reply.header("content-length").is_some(),
            "error response without Content-Length: {reply:?}"
        );
        self.expect_eof();
        reply
    }

    /// Bytes read but not yet parsed.
    pub fn buffered(&self) -> &[u8] {
        &self.buf
    }

    #[track_caller]
    fn fill_or_eof(&mut self, deadline: Instant) -> bool {
        match self.read_some(deadline) {
            Ok(more) => more,
            Err(e) => panic!(
                "read failed: {e}; have {:?}",
                String::from_utf8_lossy(&self.buf)
            ),
        }
    }

    /// Reads once into the buffer (retrying interruptions): `Ok(false)` at the end of the
    /// stream. Panics at `deadline`.
    #[track_caller]
    fn read_some(&mut self, deadline: Instant) -> std::io::Result<bool> {
        let mut chunk = [0u8; 64 * 1024];
        loop {
            assert!(Instant::now() < deadline, "timed out reading a response");
            match self.stream.read(&mut chunk) {
                Ok(0) => return Ok(false),
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return Ok(true);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Sends one request on a new connection and reads the response.
#[track_caller]
pub fn request(server: &TestServer, bytes: &[u8]) -> Reply1 {
    let mut client = Client::new(server.connect());
    client.send(bytes);
    client.response()
}

/// Blocks the reactor serving `client` for `ms` milliseconds: sends `GET /sleep` and returns
/// at once; read its response later.
#[track_caller]
pub fn block_reactor(client: &mut Client, ms: u64) {
    client.send(&get(&format!("/sleep?ms={ms}")));
}

/// A GET request for `target` with a Host header.
pub fn get(target: &str) -> Vec<u8> {
    format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n").into_bytes()
}

/// A POST /echo request with a Content-Length body.
pub fn post_echo(body: &[u8]) -> Vec<u8> {
    let mut req = format!(
        "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    req
}

/// Checks that `chunk`, found at `offset` of a `/big` body, follows its pattern: byte `i`
/// is `b'a' + i % 26`.
#[track_caller]
pub fn check_big(chunk: &[u8], offset: usize) {
    for (i, &b) in chunk.iter().enumerate() {
        let expected = b'a' + ((offset + i) % 26) as u8;
        assert_eq!(b, expected, "body byte {} is wrong", offset + i);
    }
}

/// Asserts that a healthy request on a fresh connection is still served.
#[track_caller]
pub fn assert_serves(server: &TestServer) {
    let reply = request(server, &get("/hello"));
    assert_eq!((reply.status, reply.text().as_str()), (200, "hello\n"));
}

/// Polls `check` until it returns true, for at most [`TIMEOUT`]. Returns whether it did.
pub fn wait_until(mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// TCP socket states as `/proc/net/tcp` shows them.
pub mod tcp_state {
    pub const ESTABLISHED: u8 = 0x01;
    pub const FIN_WAIT1: u8 = 0x04;
    pub const LISTEN: u8 = 0x0A;
}

/// One row of `/proc/net/tcp` or `/proc/net/tcp6`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpRow {
    pub local_port: u16,
    pub remote_port: u16,
    pub state: u8,
    /// Bytes received but not yet read by the socket's owner.
    pub rx_queue: u64,
}

/// Every TCP socket of this network namespace, IPv4 and IPv6 (Linux only; empty elsewhere).
pub fn tcp_sockets() -> Vec<TcpRow> {
    let mut rows = Vec::new();
    for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 5 {
                continue;
            }
            let port = |addr: &str| {
                addr.rsplit_once(':')
                    .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())
            };
            let rx_queue = fields[4]
                .split_once(':')
                .and_then(|(_, rx)| u64::from_str_radix(rx, 16).ok());
            let (Some(local_port), Some(remote_port), Ok(state), Some(rx_queue)) = (
                port(fields[1]),
                port(fields[2]),
                u8::from_str_radix(fields[3], 16),
                rx_queue,
            ) else {
                continue;
            };
            rows.push(TcpRow {
                local_port,
                remote_port,
                state,
                rx_queue,
            });
        }
    }
    rows
}

/// Sockets listening on `port`.
pub fn listening_on(port: u16) -> usize {
    tcp_sockets()
        .iter()
        .filter(|r| r.local_port == port && r.state == tcp_state::LISTEN)
        .count()
}

/// The server's end of the connection from `client` (`None` once it is gone).
pub fn server_side(server: &TestServer, client: &TcpStream) -> Option<TcpRow> {
    server_side_at(server.addr, client)
}

/// The end at `server` of the connection from `client` (`None` once it is gone).
pub fn server_side_at(server: SocketAddr, client: &TcpStream) -> Option<TcpRow> {
    let client_port = client.local_addr().ok()?.port();
    tcp_sockets()
        .into_iter()
        .find(|r| r.local_port == server.port() && r.remote_port == client_port)
}

/// Waits until the server has read everything `client` sent so far (its socket's receive
/// queue is empty), so that what the client does next reaches the server as a new event.
#[track_caller]
pub fn wait_until_read(server: &TestServer, client: &TcpStream) {
    wait_until_read_at(server.addr, client);
}

/// [`wait_until_read`] for a server known by its address.
#[track_caller]
pub fn wait_until_read_at(server: SocketAddr, client: &TcpStream) {
    assert!(
        wait_until(|| server_side_at(server, client).is_some_and(|r| r.rx_queue == 0)),
        "the server did not read the request: {:?}",
        server_side_at(server, client)
    );
}
