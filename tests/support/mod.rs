//! Shared helpers for the black-box tests: start a server on 127.0.0.1:0 in-process, talk to
//! it over raw sockets, and read responses with a small parser of our own.
#![allow(dead_code, unreachable_pub)] // Each test binary uses a different subset.

use std::{
    io::{ErrorKind, Read, Write},
    net::{SocketAddr, TcpStream},
    time::{Duration, Instant},
};

use rtserve_reactor::{
    Config, Handler, Method, Reply, Request, Response, Router, Server, ServerHandle, StatusCode,
};

/// Generous: CI is a busy 2-core machine. A test that waits this long has failed.
pub const TIMEOUT: Duration = Duration::from_secs(20);

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
        let handle = Server::start(config, handler).expect("server starts");
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
        let stream = TcpStream::connect(self.addr).expect("connect");
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(TIMEOUT)).unwrap();
        stream
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
        .route(Method::Put, "/echo", |req: &Request<'_>| -> Reply {
            Response::new(StatusCode::OK)
                .with_body(req.body().to_vec())
                .into()
        })
}

/// A parsed response.
#[derive(Debug)]
pub struct Reply1 {
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
}

/// Reads responses from a stream, keeping bytes that belong to the next one.
pub struct Client {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    pub fn new(stream: TcpStream) -> Self {
        Self {
            stream,
            buf: Vec::new(),
        }
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
        let deadline = Instant::now() + TIMEOUT;
        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i + 4;
            }
            self.fill(deadline);
        };
        let text = String::from_utf8_lossy(&self.buf[..head_end]).into_owned();
        let mut lines = text.split("\r\n");
        let status_line = lines.next().unwrap();
        let status: u16 = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
        let headers: Vec<(String, String)> = lines
            .filter(|l| !l.is_empty())
            .map(|l| {
                let (n, v) = l.split_once(':').expect("header colon");
                (n.to_owned(), v.trim().to_owned())
            })
            .collect();
        self.buf.drain(..head_end);
        let mut reply = Reply1 {
            status,
            headers,
            body: Vec::new(),
        };
        if status == 100 {
            return reply;
        }
        if head || status == 204 || status == 304 {
            return reply;
        }
        if let Some(len) = reply.header("content-length") {
            let len: usize = len.parse().expect("content-length");
            while self.buf.len() < len {
                self.fill(deadline);
            }
            reply.body = self.buf.drain(..len).collect();
        } else if reply
            .header("transfer-encoding")
            .is_some_and(|te| te.eq_ignore_ascii_case("chunked"))
        {
            loop {
                let line_end = loop {
                    if let Some(i) = find(&self.buf, b"\r\n") {
                        break i;
                    }
                    self.fill(deadline);
                };
                let size = usize::from_str_radix(
                    std::str::from_utf8(&self.buf[..line_end]).unwrap().trim(),
                    16,
                )
                .expect("chunk size");
                self.buf.drain(..line_end + 2);
                while self.buf.len() < size + 2 {
                    self.fill(deadline);
                }
                reply.body.extend(self.buf.drain(..size));
                self.buf.drain(..2);
                if size == 0 {
                    break;
                }
            }
        } else {
            // Close-delimited.
            while self.fill_or_eof(deadline) {}
            reply.body = std::mem::take(&mut self.buf);
        }
        reply
    }

    /// Waits until the server closes the connection; returns the bytes that came first.
    /// Panics on a reset, which would mean the server destroyed data it had sent.
    #[track_caller]
    pub fn read_to_close(&mut self) -> Vec<u8> {
        let deadline = Instant::now() + TIMEOUT;
        while self.fill_or_eof(deadline) {}
        std::mem::take(&mut self.buf)
    }

    #[track_caller]
    fn fill(&mut self, deadline: Instant) {
        assert!(
            self.fill_or_eof(deadline),
            "connection closed early; have {:?}",
            String::from_utf8_lossy(&self.buf)
        );
    }

    #[track_caller]
    fn fill_or_eof(&mut self, deadline: Instant) -> bool {
        let mut chunk = [0u8; 64 * 1024];
        loop {
            assert!(Instant::now() < deadline, "timed out reading a response");
            match self.stream.read(&mut chunk) {
                Ok(0) => return false,
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return true;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => panic!(
                    "read failed: {e}; have {:?}",
                    String::from_utf8_lossy(&self.buf)
                ),
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
