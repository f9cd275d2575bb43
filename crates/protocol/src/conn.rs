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
    /// Whether the request line has ended.
    request_line_done: bool,
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
        // Nothing past `max_head` can belong to an acceptable head.
        let window = &input[..input.len().min(limits.max_head)];
        loop {
            // Reject a first byte that cannot start a method at once, so that a client
            // speaking another protocol (a TLS hello, say) is answered now, not at a timeout.
            if let (false, Some(&b)) = (scan.request_line_done, window.get(scan.head_start))
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
            match (scan.request_line_done, empty) {
                // RFC 9112 §2.2: a server SHOULD ignore empty lines before the request line.
                (false, true) => scan.head_start = newline + 1,
                (false, false) => {
                    if newline - scan.head_start > limits.max_request_line {
                        return Err(RecvError::RequestLineTooLong);
                    }
                    scan.request_line_done = true;
                    check_request_line(&window[scan.head_start..=newline])?;
                }
                (true, false) => {}
                (true, true) => {
                    let (start, end) = (scan.head_start, newline + 1);
                    self.head.parse(input, start, end, limits)?;
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
        if !scan.request_line_done && input.len() - scan.head_start > limits.max_request_line {
            return Err(RecvError::RequestLineTooLong);
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
}

/// Checks a complete request line (with its line ending) as soon as it has arrived, so that a
/// malformed one is answered before the rest of the head comes (or never does).
fn check_request_line(line: &[u8]) -> Result<(), RecvError> {
    let mut req = httparse::Request::new(&mut []);
    match req.parse(line) {
        // The version is decided on the whole head, where later 1.x minors are parsed.
        Ok(_) | Err(httparse::Error::Version | httparse::Error::TooManyHeaders) => Ok(()),
        Err(httparse::Error::HeaderName | httparse::Error::HeaderValue) => Ok(()),
        Err(_) => Err(RecvError::BadRequestLine),
    }
}
