//! [`ServerConn`]: the read side of one HTTP/1.1 server connection, as a state machine.
//!
//! Theory of operation: the connection is always in one of four read states.
//!
//! ```text
//!            Head ──(complete head)──▶ Body ──(body complete: Event::End)──┐
//!             ▲                                                            │
//!             └──────────────────── keep-alive ◀───────────────────────────┤
//!                                                                          ▼
//!   Failed(error)  ◀── any peer error, from any state            Closed (no more requests)
//! ```
//!
//! `Failed` and `Closed` are final. The write side is not tracked here: responses are encoded
//! by [`send_head`](crate::send_head) and friends from a [`ResponseContext`](crate::ResponseContext)
//! the caller keeps per pending request, because with pipelining a request may be parsed long
//! before the response to the one ahead of it is written.

use std::ops::Range;

use crate::{
    BodyKind, Limits, RecvError, Request, RequestHead,
    decode::{BodyDecoder, Chunked, Decoded},
    framing::is_tchar,
    head::later_minor_version,
};

/// What one call to [`ServerConn::recv`] found at the front of its input.
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub enum Event {
    /// A complete request head; read it with [`ServerConn::request`], passing the same input.
    Head,
    /// Body data at this range of the input. A body may come in any number of pieces.
    Body(Range<usize>),
    /// The request is complete: its body (if any) has been delivered.
    End,
    /// The input holds no complete event: call again with the unconsumed bytes plus more.
    NeedMore,
    /// The connection will carry no more requests: the last one asked to close, or
    /// [`ServerConn::close`] was called. Answer what is pending, then close.
    Closed,
}

#[derive(Clone, Debug)]
enum ReadState {
    Head,
    Body(BodyDecoder),
    Closed,
    Failed(RecvError),
}

/// Progress through an incomplete head, so that each byte is scanned once.
#[derive(Clone, Copy, Debug, Default)]
struct HeadScan {
    /// Where scanning resumes.
    pos: usize,
    /// Start of the line being scanned.
    line_start: usize,
    /// Start of the request line, after any empty lines before it.
    head_start: usize,
    /// Where the request line ends (its LF), once it has.
    request_line_end: Option<usize>,
    /// Whether the request line has been checked on its own, ahead of the whole head.
    request_line_checked: bool,
}

/// The server side of one HTTP/1.1 connection, without I/O: bytes in, request events out.
///
/// # Use
///
/// Keep the bytes read from the socket in a buffer and call [`recv`](Self::recv) with
/// everything not yet consumed. Each call looks at the front of that input, reports how many
/// bytes it consumed, and returns at most one [`Event`]:
///
/// - [`Event::Head`]: the head is parsed; read it with [`request`](Self::request) with the same
///   input (keep those bytes in place until the request is done).
/// - [`Event::Body`]: a piece of body, at a range of the input.
/// - [`Event::End`]: the request is complete. Call again for the next, pipelined one.
/// - [`Event::NeedMore`]: read more bytes, then call again with what was not consumed.
/// - [`Event::Closed`]: no more requests on this connection.
///
/// The events never depend on how the stream was split across reads. When the peer closes
/// its side, call [`recv_eof`](Self::recv_eof). Encode responses with
/// [`send_response`](crate::send_response) or [`send_head`](crate::send_head), using the
/// context from [`RequestHead::response_context`].
///
/// After an `Err`, every later call returns the same error: answer it with
/// [`send_error`](crate::send_error) and close the connection.
///
/// # Examples
///
/// ```
/// use rtserve_protocol::{Event, Limits, ServerConn};
///
/// let input = b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello\
///               GET /next HTTP/1.1\r\nHost: a\r\n\r\n";
/// let mut conn = ServerConn::new(Limits::default());
/// let mut pos = 0;
/// let mut events = Vec::new();
/// loop {
///     let (used, event) = conn.recv(&input[pos..])?;
///     match &event {
///         Event::Head => events.push(conn.request(&input[pos..]).path().to_owned()),
///         Event::Body(range) => {
///             let body = &input[pos..][range.clone()];
///             events.push(String::from_utf8_lossy(body).into_owned());
///         }
///         Event::End => events.push("end".to_owned()),
///         Event::NeedMore | Event::Closed => break,
///     }
///     pos += used;
/// }
/// assert_eq!(events, ["/echo", "hello", "end", "/next", "end"]);
/// # Ok::<(), rtserve_protocol::RecvError>(())
/// ```
#[derive(Clone, Debug)]
pub struct ServerConn {
    limits: Limits,
    state: ReadState,
    scan: HeadScan,
    head: RequestHead,
}

impl ServerConn {
    /// A connection awaiting its first request.
    ///
    /// # Panics
    ///
    /// If `limits` fails [`Limits::validate`]; validate limits from configuration first.
    pub fn new(limits: Limits) -> Self {
        if let Err(reason) = limits.validate() {
            panic!("invalid limits: {reason}");
        }
        Self {
            limits,
            state: ReadState::Head,
            scan: HeadScan::default(),
            head: RequestHead::default(),
        }
    }

    /// Parses at most one event from the front of `input`; returns the bytes consumed and it.
    ///
    /// `input` must start with the bytes not consumed by the previous call. A head is consumed
    /// whole in the call that returns [`Event::Head`] (until then calls consume nothing); body
    /// framing and data are consumed as they are decoded.
    ///
    /// # Errors
    ///
    /// A [`RecvError`] when the peer broke HTTP or a limit; [`RecvError::status`] is the
    /// answer to send before closing. The error is final.
    pub fn recv(&mut self, input: &[u8]) -> Result<(usize, Event), RecvError> {
        let result = match &mut self.state {
            ReadState::Head => self.recv_head(input),
            ReadState::Body(decoder) => match decoder.decode(input, &self.limits) {
                Ok((n, Decoded::Data(range))) => Ok((n, Event::Body(range))),
                Ok((n, Decoded::NeedMore)) => Ok((n, Event::NeedMore)),
                Ok((n, Decoded::End)) => {
                    self.state = if self.head.keep_alive() {
                        ReadState::Head
                    } else {
                        ReadState::Closed
                    };
                    Ok((n, Event::End))
                }
                Err(e) => Err(e),
            },
            ReadState::Closed => Ok((0, Event::Closed)),
            ReadState::Failed(e) => Err(*e),
        };
        if let Err(e) = result {
            self.state = ReadState::Failed(e);
        }
        result
    }

    fn recv_head(&mut self, input: &[u8]) -> Result<(usize, Event), RecvError> {
        let limits = &self.limits;
        let scan = &mut self.scan;
        // Nothing past `max_head` can belong to an acceptable head, and every decision below
        // looks only at this window (and whether input goes past it), so that the outcome
        // does not depend on how much input has arrived.
        let window = &input[..input.len().min(limits.max_head)];
        if scan.pos > window.len() {
            // The caller broke the contract and passed less than before: scan afresh rather
            // than index past the end.
            *scan = HeadScan::default();
        }
        loop {
            // Reject a first byte that cannot start a method at once, so that a client
            // speaking another protocol (a TLS hello, say) is answered now, not at a timeout.
            if let (None, Some(&b)) = (scan.request_line_end, window.get(scan.head_start))
                && !is_tchar(b)
                && b != b'\r'
                && b != b'\n'
            {
                return Err(RecvError::BadRequestLine);
            }
            let Some(k) = window[scan.pos..].iter().position(|&b| b == b'\n') else {
                scan.pos = window.len();
                break;
            };
            let newline = scan.pos + k;
            let line = &window[scan.line_start..newline];
            let empty = matches!(line, [] | [b'\r']);
            scan.pos = newline + 1;
            scan.line_start = newline + 1;
            match (scan.request_line_end, empty) {
                // RFC 9112 §2.2: a server SHOULD ignore empty lines before the request line.
                (None, true) => scan.head_start = newline + 1,
                (None, false) => {
                    // The limit is on the request line itself, without its CRLF.
                    if line.len() - usize::from(line.ends_with(b"\r")) > limits.max_request_line {
                        return Err(RecvError::RequestLineTooLong);
                    }
                    scan.request_line_end = Some(newline);
                }
                (Some(_), false) => {}
                (Some(line_end), true) => {
                    let (start, end) = (scan.head_start, newline + 1);
                    if let Err(e) = self.head.parse(input, start, end, limits) {
                        // Report a bad request line as the early check below would have, so
                        // that the error does not depend on how the head was split.
                        check_request_line(&input[start..=line_end])?;
                        return Err(e);
                    }
                    self.scan = HeadScan::default();
                    self.state = ReadState::Body(match self.head.body() {
                        BodyKind::None => BodyDecoder::Length(0),
                        BodyKind::Length(n) => BodyDecoder::Length(n),
                        BodyKind::Chunked => BodyDecoder::Chunked(Chunked::new()),
                    });
                    return Ok((end, Event::Head));
                }
            }
        }
        match scan.request_line_end {
            // A CR at the end may be the start of the line's CRLF: it does not count yet.
            None if window.len() - scan.head_start - usize::from(window.ends_with(b"\r"))
                > limits.max_request_line =>
            {
                return Err(RecvError::RequestLineTooLong);
            }
            // The head is incomplete but its request line is here: check that line now, so
            // that a malformed one is answered before the rest comes (or never does). A head
            // that arrives whole skips this and is parsed once.
            Some(line_end) if !scan.request_line_checked => {
                scan.request_line_checked = true;
                check_request_line(&window[scan.head_start..=line_end])?;
            }
            _ => {}
        }
        if input.len() > limits.max_head {
            return Err(RecvError::HeadTooLarge);
        }
        Ok((0, Event::NeedMore))
    }

    /// Tells the connection that the peer closed its side; `pending` is the input not yet
    /// consumed.
    ///
    /// # Errors
    ///
    /// [`RecvError::IncompleteMessage`] if the peer closed in the middle of a request; closing
    /// between requests (or after empty lines) is clean. The state becomes final either way.
    pub fn recv_eof(&mut self, pending: &[u8]) -> Result<(), RecvError> {
        let result = match &self.state {
            ReadState::Head if pending.iter().all(|&b| b == b'\r' || b == b'\n') => Ok(()),
            ReadState::Head | ReadState::Body(_) => Err(RecvError::IncompleteMessage),
            ReadState::Closed => Ok(()),
            ReadState::Failed(e) => Err(*e),
        };
        self.state = match result {
            Ok(()) => ReadState::Closed,
            Err(e) => ReadState::Failed(e),
        };
        result
    }

    /// Stops reading requests: every later [`recv`](Self::recv) returns [`Event::Closed`]
    /// (or the error that already ended the connection). For a server that decides to close,
    /// e.g. while shutting down.
    pub fn close(&mut self) {
        if !matches!(self.state, ReadState::Failed(_)) {
            self.state = ReadState::Closed;
        }
    }

    /// The head of the current (or last) request.
    pub fn head(&self) -> &RequestHead {
        &self.head
    }

    /// The current (or last) request, read from `input`: the input given to the
    /// [`recv`](Self::recv) call that returned [`Event::Head`], or a buffer that starts with
    /// the same bytes.
    pub fn request<'a>(&'a self, input: &'a [u8]) -> Request<'a> {
        Request::new(&self.head, input)
    }

    /// The limits this connection enforces.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Makes the connection new again, awaiting its first request, as [`new`](Self::new)
    /// with the same limits would; the head keeps the memory of its table of header fields,
    /// so a server that pools connection states allocates nothing for the next connection.
    ///
    /// ```
    /// use rtserve_protocol::{Event, Limits, ServerConn};
    ///
    /// let mut conn = ServerConn::new(Limits::default());
    /// let one_shot = b"GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    /// let (used, _) = conn.recv(one_shot)?;
    /// assert!(matches!(conn.recv(&one_shot[used..])?, (_, Event::End)));
    /// assert!(!conn.is_between_requests());
    /// conn.reset();
    /// assert!(conn.is_between_requests());
    /// assert!(matches!(conn.recv(b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n")?, (_, Event::Head)));
    /// # Ok::<(), rtserve_protocol::RecvError>(())
    /// ```
    pub fn reset(&mut self) {
        self.state = ReadState::Head;
        self.scan = HeadScan::default();
        self.head.clear();
    }

    /// Whether the connection is between requests with nothing of the next one seen: a state
    /// in which it can serve another connection from its start (a server may pool it).
    pub fn is_between_requests(&self) -> bool {
        matches!(self.state, ReadState::Head) && self.scan.pos == 0 && self.scan.head_start == 0
    }
}

/// Checks a complete request line (with its line ending) on its own.
fn check_request_line(line: &[u8]) -> Result<(), RecvError> {
    let mut req = httparse::Request::new(&mut []);
    match req.parse(line) {
        // Partial, or stopped by the empty header table: the line itself is fine.
        Ok(_) | Err(httparse::Error::TooManyHeaders) => Ok(()),
        Err(httparse::Error::Version) => later_minor_version(line).map(drop),
        Err(_) => Err(RecvError::BadRequestLine),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in pieces of `step` bytes as a reactor would and returns the events as
    /// text, with body pieces merged.
    fn run(limits: Limits, input: &[u8], step: usize) -> Vec<String> {
        let mut conn = ServerConn::new(limits);
        let mut out: Vec<String> = Vec::new();
        let mut pos = 0;
        let mut avail = 0;
        loop {
            match conn.recv(&input[pos..avail]) {
                Ok((n, event)) => {
                    let text = match &event {
                        Event::Head => {
                            let req = conn.request(&input[pos..avail]);
                            format!("head {} {}", req.method_str(), req.target())
                        }
                        Event::Body(r) => {
                            let piece = &input[pos..avail][r.clone()];
                            format!("body {}", String::from_utf8_lossy(piece))
                        }
                        Event::End => "end".to_owned(),
                        Event::Closed => "closed".to_owned(),
                        Event::NeedMore if avail == input.len() => return out,
                        Event::NeedMore => {
                            pos += n;
                            avail = (avail + step).min(input.len());
                            continue;
                        }
                    };
                    pos += n;
                    match (out.last_mut(), text.strip_prefix("body ")) {
                        (Some(last), Some(piece)) if last.starts_with("body ") => {
                            last.push_str(piece);
                        }
                        _ => out.push(text),
                    }
                    if event == Event::Closed {
                        return out;
                    }
                }
                Err(e) => {
                    out.push(format!("error {}", e.status().as_u16()));
                    // An error is final.
                    assert_eq!(conn.recv(&input[pos..]), Err(e));
                    return out;
                }
            }
        }
    }

    fn all_splits(limits: Limits, input: &[u8]) -> Vec<String> {
        let whole = run(limits, input, input.len().max(1));
        for step in 1..input.len() {
            assert_eq!(run(limits, input, step), whole, "steps of {step}");
        }
        whole
    }

    #[test]
    fn pipelined_then_close() {
        let input = b"\r\nGET /a HTTP/1.1\r\nHost: x\r\n\r\n\
            POST /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n\
            GET /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n\
            GET /never HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_eq!(
            all_splits(Limits::default(), input),
            [
                "head GET /a",
                "end",
                "head POST /b",
                "body abc",
                "end",
                "head GET /c",
                "end",
                "closed",
            ]
        );
    }

    #[test]
    fn head_limits_are_split_independent() {
        let limits = Limits {
            max_head: 64,
            max_request_line: 24,
            ..Limits::default()
        };
        let cases: &[(&[u8], &str)] = &[
            (b"GET /0123456789abcdef HTTP/1.1\r\n", "error 414"),
            (b"GET /0123456789abcdefghij", "error 414"),
            (
                b"GET / HTTP/1.1\r\nHost: x\r\nA: 0123456789012345678901234567890123456789",
                "error 431",
            ),
            (
                b"GET / HTTP/1.1\r\nHost: x\r\nA: 0123456789012345678901234567890\r\n\r\n",
                "end",
            ),
        ];
        for (input, last) in cases {
            let events = all_splits(limits, input);
            assert_eq!(events.last().map(String::as_str), Some(*last), "{events:?}");
        }
    }

    #[test]
    fn another_protocol_is_refused_at_once() {
        // The first bytes of a TLS ClientHello, with no line ending in sight.
        let mut conn = ServerConn::new(Limits::default());
        assert_eq!(
            conn.recv(b"\x16\x03\x01\x02\x00\x01"),
            Err(RecvError::BadRequestLine)
        );
        // A malformed request line is refused before the rest of the head arrives.
        let mut conn = ServerConn::new(Limits::default());
        assert_eq!(conn.recv(b"GET /a b c\r\n"), Err(RecvError::BadVersion));
        let mut conn = ServerConn::new(Limits::default());
        assert_eq!(
            conn.recv(b"GET /a b HTTP/1.1\r\nHost"),
            Err(RecvError::BadRequestLine)
        );
    }

    #[test]
    fn eof() {
        let mut conn = ServerConn::new(Limits::default());
        assert_eq!(conn.recv_eof(b"\r\n"), Ok(()));
        assert_eq!(conn.recv(b"GET / HTTP/1.1\r\n\r\n"), Ok((0, Event::Closed)));

        let mut conn = ServerConn::new(Limits::default());
        assert_eq!(conn.recv(b"GET / HT"), Ok((0, Event::NeedMore)));
        assert_eq!(
            conn.recv_eof(b"GET / HT"),
            Err(RecvError::IncompleteMessage)
        );

        let mut conn = ServerConn::new(Limits::default());
        let input = b"PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nab";
        assert_eq!(conn.recv(input), Ok((input.len() - 2, Event::Head)));
        assert_eq!(conn.recv(b"ab"), Ok((2, Event::Body(0..2))));
        assert_eq!(conn.recv_eof(b""), Err(RecvError::IncompleteMessage));
        assert_eq!(conn.recv(b"cde"), Err(RecvError::IncompleteMessage));
    }

    #[test]
    fn between_requests() {
        let mut conn = ServerConn::new(Limits::default());
        assert!(conn.is_between_requests());
        let input = b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGE";
        let (n, event) = conn.recv(input).unwrap();
        assert_eq!(event, Event::Head);
        assert!(!conn.is_between_requests());
        assert_eq!(conn.recv(&input[n..]), Ok((0, Event::End)));
        assert!(conn.is_between_requests());
        assert_eq!(conn.recv(&input[n..]), Ok((0, Event::NeedMore)));
        assert!(
            !conn.is_between_requests(),
            "part of the next head was seen"
        );
    }

    #[test]
    fn close_stops_reading() {
        let mut conn = ServerConn::new(Limits::default());
        conn.close();
        assert_eq!(
            conn.recv(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
            Ok((0, Event::Closed))
        );
    }

    #[test]
    #[should_panic(expected = "invalid limits")]
    fn invalid_limits_panic_at_construction() {
        let limits = Limits {
            max_headers: 0,
            ..Limits::default()
        };
        let _ = ServerConn::new(limits);
    }
}
