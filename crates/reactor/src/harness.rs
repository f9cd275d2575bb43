//! Handlers called without a server: for unit tests of handlers, and for benchmarks.

use std::{
    cell::Cell,
    sync::{Arc, atomic::AtomicBool},
    time::{Duration, Instant},
};

use rtserve_protocol::{Event, Limits, ServerConn};

use crate::{
    Handler, Reply, Request, body::Pieces, budget::Budgets, request::ServerView,
    stats::StatsRegistry,
};

/// Calls a [`Handler`] on a request given as bytes, with no socket and no thread: for unit
/// tests of handlers, and for benchmarks of routing and handlers.
///
/// The request is parsed by the server's own parser, and the handler sees it as it would on a
/// reactor, with a deadline of `deadline` from now. A reply that offloads, or that spawns a
/// future (feature `tokio`: see `AsyncJob::into_future` to drive it in a test), is returned
/// as it is, not run. The harness keeps its parser between calls, so a call for a request whose body
/// (if any) is in one piece allocates nothing of its own.
///
/// # Examples
///
/// ```
/// use rtserve_reactor::{Harness, Reply, Request, Response, Router, StatusCode};
///
/// let router = Router::new().get("/hello", |_: &Request<'_>| -> Reply {
///     Response::text(StatusCode::OK, "hi\n").into()
/// });
/// let mut harness = Harness::new();
/// let Reply::Ready(response) = harness.call(&router, b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
/// else {
///     panic!("answered inline");
/// };
/// assert_eq!(response.status(), StatusCode::OK);
/// assert_eq!(response.body().as_bytes(), b"hi\n");
/// ```
#[derive(Debug)]
pub struct Harness {
    conn: ServerConn,
    limits: Limits,
    view: ServerView,
    route: Cell<usize>,
    body: Vec<u8>,
    /// The deadline each request gets, from the moment it is called.
    pub deadline: Duration,
}

impl Harness {
    /// A harness with the default [`Limits`] and a deadline of 5 s.
    pub fn new() -> Self {
        let limits = Limits::default();
        Self {
            conn: ServerConn::new(limits),
            limits,
            view: ServerView {
                draining: Arc::new(AtomicBool::new(false)),
                stats: Arc::new(StatsRegistry::new(
                    1,
                    Vec::new(),
                    Budgets::unbounded(),
                    usize::MAX,
                )),
            },
            route: Cell::new(0),
            body: Vec::new(),
            deadline: Duration::from_secs(5),
        }
    }

    /// Parses the one request in `raw` and returns what `handler` replies to it.
    ///
    /// # Panics
    ///
    /// If `raw` is not one complete, valid request: a test states its request whole.
    #[track_caller]
    pub fn call<H: Handler + ?Sized>(&mut self, handler: &H, raw: &[u8]) -> Reply {
        if !self.conn.is_between_requests() {
            self.conn = ServerConn::new(self.limits);
        }
        self.body.clear();
        let mut pos = 0;
        let mut head_at = None;
        let mut pieces = Pieces::default();
        loop {
            let (used, event) = match self.conn.recv(&raw[pos..]) {
                Ok(step) => step,
                Err(e) => panic!("not a valid request: {e}"),
            };
            match event {
                Event::Head => head_at = Some(pos),
                Event::Body(range) => {
                    let range = pos + range.start..pos + range.end;
                    let body = &mut self.body;
                    let _ = pieces.add(raw, range, !body.is_empty(), |piece| {
                        body.extend_from_slice(piece);
                        true
                    });
                }
                Event::End => break,
                Event::NeedMore | Event::Closed => panic!("not one complete request"),
            }
            pos += used;
        }
        let head = &raw[head_at.expect("a head comes before the end")..];
        let body = pieces.body(raw, &self.body);
        let now = Instant::now();
        let req = Request::new(
            self.conn.request(head),
            body,
            0,
            (now, now + self.deadline),
            &self.view,
            &self.route,
        );
        handler.handle(&req)
    }
}

#[cfg(test)]
impl Harness {
    /// The route the last request was filed under with [`Request::set_route`].
    pub(crate) fn route(&self) -> usize {
        self.route.get()
    }
}

/// What the crate's unit tests of handlers share: a request's bytes, and the response of a
/// reply answered inline.
#[cfg(test)]
pub(crate) mod testing {
    use crate::{Reply, Response};

    /// A `GET` of `target`, as a client sends it.
    pub(crate) fn get(target: &str) -> Vec<u8> {
        format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n").into_bytes()
    }

    /// The response of a reply answered inline.
    ///
    /// # Panics
    ///
    /// If the reply is not: the test expected it to be.
    #[track_caller]
    pub(crate) fn ready(reply: Reply) -> Response {
        match reply {
            Reply::Ready(response) => response,
            other => panic!("not inline: {other:?}"),
        }
    }
}

impl Default for Harness {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Response, StatusCode};

    fn echo(req: &Request<'_>) -> Reply {
        Response::new(StatusCode::OK)
            .with_body(req.body().to_vec())
            .into()
    }

    fn body_of(reply: Reply) -> Vec<u8> {
        match reply {
            Reply::Ready(response) => response.body().as_bytes().to_vec(),
            other => panic!("not inline: {other:?}"),
        }
    }

    #[test]
    fn bodies_in_one_piece_or_chunks_reach_the_handler_whole() {
        let mut harness = Harness::new();
        let one = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello";
        assert_eq!(body_of(harness.call(&echo, one)), b"hello");
        let chunked = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
                        2\r\nhe\r\n3\r\nllo\r\n0\r\n\r\n";
        assert_eq!(body_of(harness.call(&echo, chunked)), b"hello");
        // After a request that closed its connection, the next one starts afresh.
        let close = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
        assert_eq!(body_of(harness.call(&echo, close)), b"");
        assert_eq!(body_of(harness.call(&echo, one)), b"hello");
    }

    #[test]
    #[should_panic(expected = "not one complete request")]
    fn an_incomplete_request_is_a_mistake_in_the_test() {
        Harness::new().call(&echo, b"GET / HTTP/1.1\r\nHost: x\r\n");
    }
}
