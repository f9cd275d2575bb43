//! Fuzz target for [`ServerConn::recv`]: feeds a byte stream the way a reactor would and checks
//! the parser's contract, not just the absence of panics.
//!
//! # Input
//!
//! The first [`CONFIG_LEN`] bytes configure the run (see [`Config::parse`]): small or default
//! [`Limits`], how the stream is cut into reads, when the harness drains consumed bytes, and
//! whether the stream is spelled in raw bytes or partly in HTTP tokens (a byte `0xE0..` stands
//! for one of [`TOKENS`], so that a short run reaches bodies, trailers and pipelining). The rest
//! is the stream.
//!
//! # Invariants checked
//!
//! The stream is fed three times: whole, in pseudo-random reads (which may be empty, like a
//! spurious wakeup), and byte by byte, each with its own drain policy. Every run checks:
//!
//! - `consumed <= input.len()`; a body range is non-empty, within the input and within what the
//!   call consumed; a head is consumed whole (`consumed == head.len() <= max_head`); a
//!   `NeedMore` consumes nothing while reading a head (which is then within `max_head`, so the
//!   buffer stays bounded) and everything while reading a body;
//! - progress: the number of `recv` calls is bounded by the bytes and reads fed, so no call
//!   sequence can spin;
//! - an error is final: every later `recv`, `recv_eof` and `close` gives the same error, and
//!   `send_error` answers it with its status and `Connection: close`;
//! - `Closed` is final and comes only after a request that does not keep the connection alive;
//! - each head: every `Request` accessor works and points into the head's bytes, the method,
//!   Host, framing and limit rules hold, the owned copy reads the same, the head still reads
//!   the same at `End` when its bytes were kept, and reading it against the wrong buffer does
//!   not panic; `send_response` for it succeeds and the response parses back (status,
//!   framing, body, `Connection: close` exactly when not kept alive);
//! - body sizes match the framing and limits;
//! - the events (adjacent bodies merged, `NeedMore` dropped), the bytes left pending and the
//!   `recv_eof` result are the same for all three ways of splitting the stream.
#![no_main]

use std::time::UNIX_EPOCH;

use libfuzzer_sys::fuzz_target;
use rtserve_protocol::{
    BodyKind, Event, HttpDate, Limits, Method, RecvError, Request, ServerConn, StatusCode, Version,
    send_error, send_response,
};

/// Bytes at the front of the input that configure the run.
const CONFIG_LEN: usize = 6;

/// What a byte `0xE0 + i` stands for in token mode.
const TOKENS: [&[u8]; 32] = [
    b"GET ",
    b"POST ",
    b"HEAD ",
    b"CONNECT ",
    b"OPTIONS ",
    b" HTTP/1.1\r\n",
    b" HTTP/1.0\r\n",
    b" HTTP/1.7\r\n",
    b" HTTP/2.0\r\n",
    b"/",
    b"\r\n",
    b"Host: a\r\n",
    b"Host: ",
    b"Content-Length: ",
    b"Transfer-Encoding: chunked\r\n",
    b"Transfer-Encoding: ",
    b"Connection: close\r\n",
    b"Connection: keep-alive\r\n",
    b"Expect: 100-continue\r\n",
    b"Expect: ",
    b"chunked",
    b"gzip, chunked",
    b"0\r\n\r\n",
    b"5\r\nhello\r\n",
    b";ext=\"1\"",
    b"X-Trailer: v\r\n",
    b"http://a.example:80/p?q=1",
    b"*",
    b"a.example:443",
    b"1234567890",
    b"ffffffffffffffff",
    b"\r\n\r\n",
];

/// Statuses the harness answers with; the bodiless ones get an empty body.
const STATUSES: [StatusCode; 6] = [
    StatusCode::OK,
    StatusCode::NO_CONTENT,
    StatusCode::NOT_MODIFIED,
    StatusCode::NOT_FOUND,
    StatusCode::SERVICE_UNAVAILABLE,
    StatusCode::CREATED,
];

fuzz_target!(|data: &[u8]| {
    let Some((config, stream)) = Config::parse(data) else {
        return;
    };
    let whole = run(&config, &stream, &[stream.len()], Drain::AtEnd);
    let pieces = config.pieces(stream.len());
    let split = run(&config, &stream, &pieces, config.drain);
    assert_eq!(
        whole, split,
        "whole vs split differ: {config:?}, pieces {pieces:?}"
    );
    let bytes = vec![1; stream.len()];
    let bytewise = run(&config, &stream, &bytes, config.drain.next());
    assert_eq!(whole, bytewise, "whole vs byte by byte differ: {config:?}");
});

/// When the harness removes consumed bytes from its buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Drain {
    /// After every call, so each input starts at buffer offset 0 (a head is read before it is
    /// drained).
    Immediate,
    /// When a request ends, so its head stays readable until then.
    AtEnd,
    /// Never: the buffer only grows.
    Never,
}

impl Drain {
    fn next(self) -> Self {
        match self {
            Self::Immediate => Self::AtEnd,
            Self::AtEnd => Self::Never,
            Self::Never => Self::Immediate,
        }
    }
}

/// How one fuzz input is run.
#[derive(Debug)]
struct Config {
    limits: Limits,
    drain: Drain,
    /// Seed of the read sizes.
    seed: u64,
    /// Shape of the read sizes, see [`Config::pieces`].
    piece_shape: u8,
    /// Picks the response status and body.
    answer: u8,
}

impl Config {
    /// Splits `data` into the configuration and the stream.
    ///
    /// - byte 0: bits 0-1 drain policy (3 wraps to 0), bit 2 small limits, bit 3 token mode;
    /// - byte 1: seed of the read sizes; byte 2: their shape;
    /// - bytes 3-5: the small limits, and the response to answer with.
    fn parse(data: &[u8]) -> Option<(Self, Vec<u8>)> {
        let (config, rest) = data.split_first_chunk::<CONFIG_LEN>()?;
        let [flags, seed, piece_shape, a, b, c] = *config;
        let drain = match flags & 3 {
            1 => Drain::AtEnd,
            2 => Drain::Never,
            _ => Drain::Immediate,
        };
        let mut limits = Limits::default();
        if flags & 4 != 0 {
            limits.max_head = 8 + 2 * usize::from(a);
            limits.max_request_line = 1 + usize::from(b) % limits.max_head;
            limits.max_headers = 1 + usize::from(c % 16);
            limits.max_body = u64::from(b) * 4;
            limits.max_chunk_line = 3 + usize::from(c % 32);
            limits.max_trailer = 2 + usize::from(a % 64);
            limits.max_trailers = usize::from(c % 4);
        }
        assert_eq!(limits.validate(), Ok(()), "the harness makes valid limits");
        let stream = if flags & 8 != 0 {
            let mut stream = Vec::with_capacity(rest.len() * 4);
            for &byte in rest {
                match byte.checked_sub(0xE0) {
                    Some(i) => stream.extend_from_slice(TOKENS[usize::from(i)]),
                    None => stream.push(byte),
                }
            }
            stream
        } else {
            rest.to_vec()
        };
        let config = Self {
            limits,
            drain,
            seed: u64::from(seed) | 0x9E37_79B9_7F4A_7C00,
            piece_shape,
            answer: a ^ c,
        };
        Some((config, stream))
    }

    /// Read sizes adding up to `len`: by `piece_shape >> 6`, all of `1..=m`, all of `1..=16m`,
    /// or `0..=m` (empty reads included), with `m = 1 + (piece_shape & 63)`; 0 means one byte at
    /// a time.
    fn pieces(&self, len: usize) -> Vec<usize> {
        let m = 1 + usize::from(self.piece_shape & 63);
        let mut state = self.seed;
        let mut pieces = Vec::new();
        let mut left = len;
        // Empty reads are bounded so that the list ends.
        let mut empty_reads = 0;
        while left > 0 {
            // xorshift64
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let r = state as usize;
            let size = match self.piece_shape >> 6 {
                0 => 1,
                1 => 1 + r % m,
                2 => 1 + r % (16 * m),
                _ if empty_reads < 64 => r % (m + 1),
                _ => 1 + r % m,
            };
            if size == 0 {
                empty_reads += 1;
            }
            let size = size.min(left);
            pieces.push(size);
            left -= size;
        }
        pieces
    }
}

/// An event as seen by the handler, independent of how the stream was split.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Head(Box<HeadSummary>),
    /// Body data, with adjacent pieces merged.
    Body(Vec<u8>),
    End,
    Closed,
    Error(RecvError),
}

/// Everything a handler can read from a head.
#[derive(Clone, Debug, PartialEq, Eq)]
struct HeadSummary {
    method: Method,
    method_str: String,
    target: String,
    path: String,
    query: Option<String>,
    authority: Option<String>,
    version: Version,
    headers: Vec<(String, Vec<u8>)>,
    body: BodyKind,
    keep_alive: bool,
    expects_continue: bool,
    is_head: bool,
    len: usize,
}

impl HeadSummary {
    fn of(req: &Request<'_>) -> Self {
        let head = req.head();
        Self {
            method: req.method(),
            method_str: req.method_str().to_owned(),
            target: req.target().to_owned(),
            path: req.path().to_owned(),
            query: req.query().map(str::to_owned),
            authority: req.authority().map(str::to_owned),
            version: req.version(),
            headers: req
                .headers()
                .map(|(name, value)| (name.to_owned(), value.to_vec()))
                .collect(),
            body: head.body(),
            keep_alive: head.keep_alive(),
            expects_continue: head.expects_continue(),
            is_head: head.is_head(),
            len: head.len(),
        }
    }
}

/// What a whole run saw.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    events: Vec<Seen>,
    /// For a connection still open when the stream ran out: the bytes not consumed and what
    /// `recv_eof` made of them.
    open: Option<(usize, Result<(), RecvError>)>,
}


/// Where the harness believes the connection is; checked against every event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Head,
    Body,
    /// The last request did not keep the connection alive: the next call must say `Closed`.
    Closing,
    Closed,
    Failed(RecvError),
}

/// A reactor's view of one connection: its buffer, the parser, and the checks.
struct Harness<'a> {
    config: &'a Config,
    conn: ServerConn,
    drain: Drain,
    buf: Vec<u8>,
    /// Start of the unconsumed input in `buf`.
    pos: usize,
    /// Where, in `buf`, the input of the call that returned the current head started.
    head_at: usize,
    phase: Phase,
    head: Option<HeadSummary>,
    body_len: u64,
    events: Vec<Seen>,
    calls: usize,
    max_calls: usize,
    date: HttpDate,
    out: Vec<u8>,
}

/// Feeds `stream` in reads of the given sizes and returns what was seen.
fn run(config: &Config, stream: &[u8], pieces: &[usize], drain: Drain) -> Outcome {
    let mut h = Harness {
        config,
        conn: ServerConn::new(config.limits),
        drain,
        buf: Vec::new(),
        pos: 0,
        head_at: 0,
        phase: Phase::Head,
        head: None,
        body_len: 0,
        events: Vec::new(),
        calls: 0,
        // Each call consumes a byte, or ends a request (at most one per byte: a head takes
        // at least one), or ends the read (once per read).
        max_calls: 2 * stream.len() + pieces.len() + 2,
        date: HttpDate::new(UNIX_EPOCH),
        out: Vec::new(),
    };
    let mut at = 0;
    for &size in pieces {
        h.buf.extend_from_slice(&stream[at..at + size]);
        at += size;
        h.pump();
    }
    assert_eq!(at, stream.len(), "the pieces cover the stream");
    let open = h.finish();
    Outcome {
        events: h.events,
        open,
    }
}

impl Harness<'_> {
    /// Calls `recv` until it needs more input or the connection is over.
    fn pump(&mut self) {
        match self.phase {
            Phase::Closed => {
                let got = self.conn.recv(&self.buf[self.pos..]);
                assert_eq!(got, Ok((0, Event::Closed)), "Closed is final");
                return;
            }
            Phase::Failed(e) => {
                let got = self.conn.recv(&self.buf[self.pos..]);
                assert_eq!(got, Err(e), "an error is final");
                return;
            }
            Phase::Head | Phase::Body | Phase::Closing => {}
        }
        loop {
            self.calls += 1;
            assert!(
                self.calls <= self.max_calls,
                "no progress: {} calls (bound {}), phase {:?}",
                self.calls,
                self.max_calls,
                self.phase
            );
            let input = &self.buf[self.pos..];
            let (used, event) = match self.conn.recv(input) {
                Ok(ok) => ok,
                Err(e) => {
                    assert!(
                        matches!(self.phase, Phase::Head | Phase::Body),
                        "error {e:?} in phase {:?}",
                        self.phase
                    );
                    self.fail(e);
                    return;
                }
            };
            assert!(
                used <= input.len(),
                "consumed {used} of {} bytes: {event:?}",
                input.len()
            );
            match event {
                Event::Head => {
                    self.on_head(used);
                    self.advance(used);
                }
                Event::Body(range) => {
                    assert_eq!(self.phase, Phase::Body, "body outside a request");
                    assert!(
                        range.start < range.end && range.end <= used,
                        "body {range:?} with {used} consumed of {}",
                        input.len()
                    );
                    let data = &input[range];
                    self.body_len += data.len() as u64;
                    assert!(
                        self.body_len <= self.config.limits.max_body,
                        "body of {} bytes past the limit",
                        self.body_len
                    );
                    match self.events.last_mut() {
                        Some(Seen::Body(prev)) => prev.extend_from_slice(data),
                        _ => self.events.push(Seen::Body(data.to_vec())),
                    }
                    self.advance(used);
                }
                Event::End => self.on_end(used),
                Event::NeedMore => {
                    match self.phase {
                        Phase::Head => {
                            assert_eq!(used, 0, "a head is consumed whole or not at all");
                            assert!(
                                input.len() <= self.config.limits.max_head,
                                "NeedMore while holding {} bytes of head",
                                input.len()
                            );
                        }
                        Phase::Body => assert_eq!(used, input.len(), "a body step holds nothing"),
                        _ => panic!("NeedMore in phase {:?}", self.phase),
                    }
                    self.advance(used);
                    return;
                }
                Event::Closed => {
                    assert_eq!(
                        self.phase,
                        Phase::Closing,
                        "Closed without a closing request"
                    );
                    assert_eq!(used, 0, "Closed consumes nothing");
                    self.events.push(Seen::Closed);
                    self.phase = Phase::Closed;
                    let again = self.conn.recv(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
                    assert_eq!(again, Ok((0, Event::Closed)), "Closed is final");
                    return;
                }
            }
        }
    }

    fn advance(&mut self, used: usize) {
        self.pos += used;
        if self.drain == Drain::Immediate {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
    }

    fn on_head(&mut self, used: usize) {
        assert_eq!(self.phase, Phase::Head, "a head in the middle of a request");
        let limits = &self.config.limits;
        let input = &self.buf[self.pos..];
        let head = self.conn.head();
        assert!(used > 0, "a head takes bytes");
        assert_eq!(used, head.len(), "a head is consumed whole");
        assert!(used <= limits.max_head, "head of {used} bytes");
        let req = self.conn.request(input);
        let summary = check_request(&req, &input[..used], limits);

        let ctx = head.response_context();
        assert_eq!(ctx.keep_alive(), head.keep_alive());
        let status = STATUSES[usize::from(self.config.answer) % STATUSES.len()];
        let body = if status.is_bodiless() {
            &[][..]
        } else {
            &input[..used.min(usize::from(self.config.answer >> 2))]
        };
        let headers = [
            ("Content-Type", &b"text/plain"[..]),
            // A target the parser accepted is a valid header value.
            ("X-Target", req.target().as_bytes()),
        ];
        self.out.clear();
        self.out.extend_from_slice(b"earlier");
        let keep_alive = send_response(ctx, status, headers, body, &self.date, &mut self.out)
            .unwrap_or_else(|e| panic!("send_response for {summary:?}: {e:?}"));
        assert_eq!(
            keep_alive,
            ctx.keep_alive(),
            "a known length keeps the context's choice"
        );
        assert_eq!(&self.out[..7], b"earlier", "send_response appends");
        let sent_body = if summary.is_head { &[][..] } else { body };
        check_response(&self.out[7..], status, sent_body, body.len(), keep_alive);

        self.head_at = self.pos;
        self.body_len = 0;
        self.phase = Phase::Body;
        self.head = Some(summary.clone());
        self.events.push(Seen::Head(Box::new(summary)));
    }

    fn on_end(&mut self, used: usize) {
        assert_eq!(self.phase, Phase::Body, "End outside a request");
        let summary = self.head.take().expect("a head came before the body");
        match summary.body {
            BodyKind::None => assert_eq!((self.body_len, used), (0, 0), "no body"),
            BodyKind::Length(n) => assert_eq!((self.body_len, used), (n, 0), "length body"),
            BodyKind::Chunked => assert!(used > 0, "the last chunk is consumed at End"),
        }
        // The head reads the same while its bytes are kept, and reading it against another
        // buffer (here, after they were drained) must not panic.
        if self.drain == Drain::Immediate {
            let _ = HeadSummary::of(&self.conn.request(&self.buf));
        } else {
            let again = HeadSummary::of(&self.conn.request(&self.buf[self.head_at..]));
            assert_eq!(again, summary, "the head reads the same at End");
        }
        let _ = HeadSummary::of(&self.conn.request(b""));
        self.events.push(Seen::End);
        self.phase = if summary.keep_alive {
            Phase::Head
        } else {
            Phase::Closing
        };
        self.advance(used);
        if self.drain == Drain::AtEnd {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
    }

    fn fail(&mut self, e: RecvError) {
        let status = e.status().as_u16();
        assert!((400..=599).contains(&status), "{e:?} answers {status}");
        self.out.clear();
        send_error(e, &self.date, &mut self.out);
        let (head_len, length) = check_response_head(&self.out, e.status(), false);
        assert_eq!(
            length,
            Some(self.out.len() - head_len),
            "error response length"
        );

        let input = &self.buf[self.pos..];
        assert_eq!(self.conn.recv(input), Err(e), "an error is final");
        assert_eq!(self.conn.recv(b""), Err(e), "an error is final");
        let valid = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        assert_eq!(self.conn.recv(valid), Err(e), "an error is final");
        self.conn.close();
        assert_eq!(self.conn.recv(valid), Err(e), "close keeps the error");
        assert_eq!(self.conn.recv_eof(b""), Err(e), "recv_eof keeps the error");
        self.events.push(Seen::Error(e));
        self.phase = Phase::Failed(e);
    }

    /// The peer closes: returns the pending bytes and `recv_eof`'s answer if still open.
    fn finish(&mut self) -> Option<(usize, Result<(), RecvError>)> {
        let pending = &self.buf[self.pos..];
        match self.phase {
            Phase::Head | Phase::Body => {
                let got = self.conn.recv_eof(pending);
                let clean =
                    self.phase == Phase::Head && pending.iter().all(|&b| b == b'\r' || b == b'\n');
                let want = if clean {
                    Ok(())
                } else {
                    Err(RecvError::IncompleteMessage)
                };
                assert_eq!(got, want, "recv_eof in {:?}", self.phase);
                let after = self.conn.recv(pending);
                match got {
                    Ok(()) => assert_eq!(after, Ok((0, Event::Closed)), "closed after eof"),
                    Err(e) => assert_eq!(after, Err(e), "failed after eof"),
                }
                Some((pending.len(), got))
            }
            Phase::Closed => {
                assert_eq!(self.conn.recv_eof(pending), Ok(()), "eof after Closed");
                None
            }
            Phase::Failed(_) => None,
            Phase::Closing => panic!("pump stops only once Closed is seen"),
        }
    }
}

/// Checks a head read from its own bytes (`head`, exactly the bytes it took) and returns it.
fn check_request(req: &Request<'_>, head: &[u8], limits: &Limits) -> HeadSummary {
    let summary = HeadSummary::of(req);
    let within = |part: &[u8], what: &str| {
        let start = part.as_ptr() as usize;
        let base = head.as_ptr() as usize;
        assert!(
            part.is_empty() || (start >= base && start + part.len() <= base + head.len()),
            "{what} is not in the head's bytes"
        );
    };
    within(req.method_str().as_bytes(), "method");
    within(req.target().as_bytes(), "target");
    if req.path() != "/" {
        within(req.path().as_bytes(), "path");
    }
    within(req.query().unwrap_or_default().as_bytes(), "query");
    within(req.authority().unwrap_or_default().as_bytes(), "authority");
    for (name, value) in req.headers() {
        within(name.as_bytes(), "header name");
        within(value, "header value");
        assert!(!name.is_empty(), "empty header name");
        assert_eq!(req.header(name), req.headers_named(name).next());
        assert!(
            req.header(name).is_some(),
            "header {name} not found by name"
        );
    }

    assert!(!summary.method_str.is_empty(), "empty method");
    assert!(!summary.target.is_empty(), "empty target");
    assert!(
        summary.target.len() <= limits.max_request_line,
        "target longer than the request line limit"
    );
    let known = match summary.method {
        Method::Get => Some("GET"),
        Method::Head => Some("HEAD"),
        Method::Post => Some("POST"),
        Method::Put => Some("PUT"),
        Method::Delete => Some("DELETE"),
        Method::Connect => Some("CONNECT"),
        Method::Options => Some("OPTIONS"),
        Method::Trace => Some("TRACE"),
        Method::Patch => Some("PATCH"),
        _ => None,
    };
    match known {
        Some(name) => assert_eq!(summary.method_str, name),
        None => assert!(
            ![
                "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"
            ]
            .contains(&summary.method_str.as_str()),
            "{} parsed as Other",
            summary.method_str
        ),
    }
    assert_eq!(summary.is_head, summary.method == Method::Head);
    assert!(
        summary.headers.len() <= limits.max_headers,
        "too many headers"
    );

    // RFC 9112 §3.2: exactly one Host on HTTP/1.1.
    let hosts = req.headers_named("host").count();
    match summary.version {
        Version::Http11 => {
            assert_eq!(hosts, 1, "HTTP/1.1 with {hosts} Host fields");
            assert!(summary.authority.is_some(), "HTTP/1.1 without authority");
        }
        Version::Http10 => assert!(hosts <= 1, "HTTP/1.0 with {hosts} Host fields"),
    }
    // RFC 9112 §6.1: Content-Length with Transfer-Encoding is refused.
    let lengths = req.headers_named("content-length").count();
    let codings = req.headers_named("transfer-encoding").count();
    assert!(lengths == 0 || codings == 0, "both framings accepted");
    match summary.body {
        BodyKind::None => assert_eq!((lengths, codings), (0, 0), "framing header ignored"),
        BodyKind::Length(n) => {
            assert!(n <= limits.max_body, "declared body over the limit");
            assert!(lengths > 0, "a length from nowhere");
        }
        BodyKind::Chunked => {
            assert_eq!(summary.version, Version::Http11, "chunked on HTTP/1.0");
            assert!(codings > 0, "chunked from nowhere");
        }
    }
    if summary.expects_continue {
        assert_eq!(summary.version, Version::Http11);
        assert!(!matches!(
            summary.body,
            BodyKind::None | BodyKind::Length(0)
        ));
    }
    let owned = req.to_owned_head();
    assert_eq!(HeadSummary::of(&owned.request()), summary, "owned head");
    summary
}

/// Checks a response to a request: parses it back and compares framing and body.
fn check_response(out: &[u8], status: StatusCode, body: &[u8], length: usize, keep_alive: bool) {
    let (head_len, content_length) = check_response_head(out, status, keep_alive);
    if status.is_bodiless() {
        assert_eq!(content_length, None, "framing on a bodiless status");
        assert_eq!(head_len, out.len(), "bytes after a bodiless response");
    } else {
        assert_eq!(content_length, Some(length), "Content-Length");
        assert_eq!(&out[head_len..], body, "response body");
    }
}

/// Parses a response head; checks its status and `Connection: close`. Returns the head's
/// length and its Content-Length, if it has one.
fn check_response_head(out: &[u8], status: StatusCode, keep_alive: bool) -> (usize, Option<usize>) {
    let mut headers = [httparse::EMPTY_HEADER; 16];
    let mut response = httparse::Response::new(&mut headers);
    let head_len = match response.parse(out) {
        Ok(httparse::Status::Complete(n)) => n,
        other => panic!(
            "unparsable response {other:?}: {:?}",
            String::from_utf8_lossy(out)
        ),
    };
    assert_eq!(response.version, Some(1));
    assert_eq!(response.code, Some(status.as_u16()));
    let find = |name: &str| {
        let mut values = response
            .headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name));
        let first = values.next().map(|h| h.value);
        assert!(values.next().is_none(), "{name} twice");
        first
    };
    let close = find("connection") == Some(&b"close"[..]);
    assert_eq!(
        close, !keep_alive,
        "Connection: close iff the connection closes"
    );
    assert!(find("date").is_some(), "no Date");
    let content_length = find("content-length").map(|v| {
        std::str::from_utf8(v)
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .expect("a decimal Content-Length")
    });
    (head_len, content_length)
}
