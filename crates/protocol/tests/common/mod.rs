//! Shared by the integration tests: a reactor-like driver for [`ServerConn`], the normalized
//! event type it produces, and a builder for expected request heads.
//!
//! The driver keeps one input buffer, appends each piece of the stream to it, then calls
//! [`ServerConn::recv`] on the unconsumed bytes until `NeedMore`, `Closed` or an error, as a
//! real event loop does after each read. Events are normalized so that streams split
//! differently compare equal: heads are read out in full, adjacent `Body` pieces are merged,
//! and only the final `NeedMore` / `Closed` / error is kept.
//!
//! Every call is checked against the invariants of the `recv` contract (consumed never exceeds
//! the input, a body range lies inside the consumed bytes, a head's length is what it
//! consumed, an error is final) so every test that uses the driver checks them too.

// Each test crate compiles this module and uses part of it; the rest would warn.
#![allow(dead_code)]

use std::{fmt, time::UNIX_EPOCH};

use rtserve_protocol::{
    BodyKind, Event, HttpDate, Limits, Method, RecvError, Request, ServerConn, StatusCode, Version,
    send_error,
};

/// One normalized event.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Ev {
    /// A request head, read in full.
    Head(Box<HeadView>),
    /// Body bytes; adjacent pieces are merged.
    Body(Vec<u8>),
    /// The request is complete.
    End,
    /// The input ran out (only ever the last event).
    NeedMore,
    /// No more requests (only ever the last event).
    Closed,
    /// The connection failed (only ever the last event).
    Error(RecvError),
}

impl fmt::Debug for Ev {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Head(h) => h.fmt(f),
            Self::Body(b) => write!(f, "Body(b\"{}\")", b.escape_ascii()),
            Self::End => f.write_str("End"),
            Self::NeedMore => f.write_str("NeedMore"),
            Self::Closed => f.write_str("Closed"),
            Self::Error(e) => write!(f, "Error({e:?} = {})", e.status().as_u16()),
        }
    }
}

/// Bytes, shown as an escaped byte string.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Bytes(pub(crate) Vec<u8>);

impl fmt::Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "b\"{}\"", self.0.escape_ascii())
    }
}

/// Everything a request head exposes, copied out of the input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct HeadView {
    pub(crate) method: Method,
    pub(crate) method_str: String,
    pub(crate) target: String,
    pub(crate) path: String,
    pub(crate) query: Option<String>,
    pub(crate) authority: Option<String>,
    pub(crate) version: Version,
    pub(crate) headers: Vec<(String, Bytes)>,
    pub(crate) body: BodyKind,
    pub(crate) keep_alive: bool,
    pub(crate) expects_continue: bool,
}

impl HeadView {
    /// Reads every accessor of `request`.
    pub(crate) fn read(request: &Request<'_>) -> Self {
        let head = request.head();
        let view = Self {
            method: request.method(),
            method_str: request.method_str().to_owned(),
            target: request.target().to_owned(),
            path: request.path().to_owned(),
            query: request.query().map(str::to_owned),
            authority: request.authority().map(str::to_owned),
            version: request.version(),
            headers: request
                .headers()
                .map(|(n, v)| (n.to_owned(), Bytes(v.to_vec())))
                .collect(),
            body: head.body(),
            keep_alive: head.keep_alive(),
            expects_continue: head.expects_continue(),
        };
        // Accessors that must agree with each other.
        assert_eq!(
            head.version(),
            view.version,
            "head().version() vs version()"
        );
        assert_eq!(head.method(), view.method, "head().method() vs method()");
        assert_eq!(head.is_head(), view.method == Method::Head, "is_head()");
        assert_eq!(
            request.headers().len(),
            view.headers.len(),
            "headers().len()"
        );
        for (name, value) in &view.headers {
            // `header` finds the first field of that name, in any case.
            let first = view
                .headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.0.as_slice());
            assert_eq!(request.header(&name.to_ascii_uppercase()), first, "{name}");
            assert_eq!(request.header(&name.to_ascii_lowercase()), first, "{name}");
            assert!(
                request.headers_named(name).any(|v| v == value.0.as_slice()),
                "headers_named({name})"
            );
        }
        view
    }
}

// ---------------------------------------------------------------------------------------------
// Expected heads.

/// An expected head for `method target HTTP/1.1`, with no headers, no body, persistent, and
/// its path equal to its target (an origin-form target without a query); change what differs.
pub(crate) fn req(method: Method, method_str: &str, target: &str) -> HeadView {
    HeadView {
        method,
        method_str: method_str.to_owned(),
        target: target.to_owned(),
        path: target.to_owned(),
        query: None,
        authority: None,
        version: Version::Http11,
        headers: Vec::new(),
        body: BodyKind::None,
        keep_alive: true,
        expects_continue: false,
    }
}

/// `GET target HTTP/1.1`.
pub(crate) fn get(target: &str) -> HeadView {
    req(Method::Get, "GET", target)
}

/// `POST target HTTP/1.1`.
pub(crate) fn post(target: &str) -> HeadView {
    req(Method::Post, "POST", target)
}

/// `HEAD target HTTP/1.1`.
pub(crate) fn head(target: &str) -> HeadView {
    req(Method::Head, "HEAD", target)
}

impl HeadView {
    /// The path, when it is not the whole target.
    pub(crate) fn path(mut self, path: &str) -> Self {
        self.path = path.to_owned();
        self
    }

    /// The query (without `?`).
    pub(crate) fn query(mut self, query: &str) -> Self {
        self.query = Some(query.to_owned());
        self
    }

    /// The authority, when not taken from Host.
    pub(crate) fn authority(mut self, authority: &str) -> Self {
        self.authority = Some(authority.to_owned());
        self
    }

    /// No authority at all.
    pub(crate) fn no_authority(mut self) -> Self {
        self.authority = None;
        self
    }

    /// A header field, in the order sent.
    pub(crate) fn header(mut self, name: &str, value: &[u8]) -> Self {
        self.headers.push((name.to_owned(), Bytes(value.to_vec())));
        self
    }

    /// A `Host` field, which is then also the authority.
    pub(crate) fn host(self, host: &str) -> Self {
        self.header("Host", host.as_bytes()).authority(host)
    }

    /// HTTP/1.0, with its default: not persistent.
    pub(crate) fn v10(mut self) -> Self {
        self.version = Version::Http10;
        self.keep_alive = false;
        self
    }

    /// Whether the connection stays open.
    pub(crate) fn keep_alive(mut self, keep_alive: bool) -> Self {
        self.keep_alive = keep_alive;
        self
    }

    /// Not persistent.
    pub(crate) fn close(self) -> Self {
        self.keep_alive(false)
    }

    /// A Content-Length body.
    pub(crate) fn length(mut self, n: u64) -> Self {
        self.body = BodyKind::Length(n);
        self
    }

    /// A chunked body.
    pub(crate) fn chunked(mut self) -> Self {
        self.body = BodyKind::Chunked;
        self
    }

    /// The client waits for `100 Continue`.
    pub(crate) fn expects_continue(mut self) -> Self {
        self.expects_continue = true;
        self
    }
}

impl From<HeadView> for Ev {
    fn from(head: HeadView) -> Self {
        Self::Head(Box::new(head))
    }
}

/// Expected body bytes.
pub(crate) fn body(bytes: &[u8]) -> Ev {
    Ev::Body(bytes.to_vec())
}

/// An expected error, checking on the way that it maps to `status`.
#[track_caller]
pub(crate) fn err(error: RecvError, status: u16) -> Ev {
    assert_eq!(
        error.status(),
        StatusCode::from_u16(status).expect("a valid status code"),
        "{error:?} should be answered with {status}"
    );
    Ev::Error(error)
}

// ---------------------------------------------------------------------------------------------
// The driver.

/// What a whole run produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Outcome {
    /// The normalized events, ending with `NeedMore`, `Closed` or `Error`.
    pub(crate) events: Vec<Ev>,
    /// The input left unconsumed at the end (empty after an error, whose detection point is
    /// not part of the contract).
    pub(crate) pending: Vec<u8>,
    /// What `recv_eof(pending)` says at the end.
    pub(crate) eof: Result<(), RecvError>,
}

/// Feeds `input` split at `splits` (ascending offsets, which may repeat, 0 or `input.len()`),
/// as a reactor would: append each piece, then call `recv` until it needs more.
#[track_caller]
pub(crate) fn run(limits: Limits, input: &[u8], splits: &[usize]) -> Outcome {
    let mut conn = ServerConn::new(limits);
    let mut buf: Vec<u8> = Vec::new();
    let mut events: Vec<Ev> = Vec::new();
    let mut last = Ev::NeedMore;
    let mut start = 0;
    let ends = splits.iter().copied().chain([input.len()]);
    'feed: for end in ends {
        assert!(start <= end && end <= input.len(), "bad splits {splits:?}");
        buf.extend_from_slice(&input[start..end]);
        start = end;
        // Each call either consumes a byte or moves the state on; this bounds a livelock.
        let mut budget = 3 * buf.len() + 8;
        loop {
            budget = budget
                .checked_sub(1)
                .expect("recv loops without consuming input");
            let result = conn.recv(&buf);
            let (used, event) = match result {
                Ok(ok) => ok,
                Err(e) => {
                    check_final(&conn, e, &buf);
                    last = Ev::Error(e);
                    break 'feed;
                }
            };
            assert!(used <= buf.len(), "consumed {used} of {} bytes", buf.len());
            match event {
                Event::Head => {
                    assert!(used > 0, "a head consumes its bytes");
                    assert_eq!(conn.head().len(), used, "head().len() vs consumed");
                    let request = conn.request(&buf);
                    let view = HeadView::read(&request);
                    // The owned copy must read the same, with the input gone.
                    let owned = request.to_owned_head();
                    assert_eq!(HeadView::read(&owned.request()), view, "to_owned_head");
                    events.push(Ev::Head(Box::new(view)));
                }
                Event::Body(range) => {
                    assert!(
                        range.start <= range.end && range.end <= used,
                        "body range {range:?} outside the {used} consumed bytes"
                    );
                    let data = &buf[range];
                    match events.last_mut() {
                        Some(Ev::Body(prev)) => prev.extend_from_slice(data),
                        _ if data.is_empty() => {}
                        _ => events.push(Ev::Body(data.to_vec())),
                    }
                }
                Event::End => events.push(Ev::End),
                Event::NeedMore => {
                    buf.drain(..used);
                    last = Ev::NeedMore;
                    break;
                }
                Event::Closed => {
                    assert_eq!(used, 0, "Closed consumes nothing");
                    // Closed is final too.
                    assert_eq!(
                        conn.recv(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"),
                        Ok((0, Event::Closed))
                    );
                    last = Ev::Closed;
                    break;
                }
            }
            buf.drain(..used);
        }
    }
    let eof = conn.clone().recv_eof(&buf);
    match &last {
        Ev::Error(e) => {
            assert_eq!(eof, Err(*e), "recv_eof after an error");
            buf.clear();
        }
        Ev::Closed => assert_eq!(eof, Ok(()), "recv_eof after Closed"),
        _ => {}
    }
    events.push(last);
    Outcome {
        events,
        pending: buf,
        eof,
    }
}

/// After an error, every later call returns it again.
#[track_caller]
fn check_final(conn: &ServerConn, error: RecvError, buf: &[u8]) {
    let mut conn = conn.clone();
    assert_eq!(conn.recv(buf), Err(error), "the same input again");
    assert_eq!(conn.recv(b""), Err(error), "no input");
    assert_eq!(
        conn.recv(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"),
        Err(error),
        "a fresh request"
    );
    conn.close();
    assert_eq!(conn.recv(b""), Err(error), "after close()");
    // The answer carries the error's status and closes the connection.
    let mut out = Vec::new();
    send_error(error, &HttpDate::new(UNIX_EPOCH), &mut out);
    let status_line = format!("HTTP/1.1 {} ", error.status().as_u16());
    assert!(
        out.starts_with(status_line.as_bytes()),
        "send_error({error:?})"
    );
    assert!(
        out.windows(19).any(|w| w == b"Connection: close\r\n"),
        "send_error({error:?}) closes"
    );
}

/// Runs `input` whole, byte by byte and split in two at every point; all must agree, and the
/// whole run must produce `expected`. Returns the whole run's outcome.
#[track_caller]
pub(crate) fn check(limits: Limits, input: &[u8], expected: &[Ev]) -> Outcome {
    let shown = input.escape_ascii().to_string();
    let whole = run(limits, input, &[]);
    assert_eq!(whole.events, expected, "fed whole: b\"{shown}\"");
    let bytes: Vec<usize> = (1..input.len()).collect();
    assert_eq!(
        run(limits, input, &bytes),
        whole,
        "fed byte by byte: b\"{shown}\""
    );
    for k in 0..=input.len() {
        assert_eq!(
            run(limits, input, &[k]),
            whole,
            "split at {k}: b\"{}\" | b\"{}\"",
            input[..k].escape_ascii(),
            input[k..].escape_ascii()
        );
    }
    whole
}
