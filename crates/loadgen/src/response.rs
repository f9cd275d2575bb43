//! A sans-I/O HTTP/1.1 response reader: finds where each response ends on a keep-alive or
//! pipelined connection, and hands its head and body to an [`Observer`] that wants them.
//!
//! # Theory of operation
//!
//! The caller owns the read buffer. [`ResponseParser::recv`] looks at the unconsumed front of it
//! and returns how many bytes it consumed plus a [`Progress`]:
//!
//! * While the head (status line + headers) is incomplete it consumes nothing and asks for more,
//!   so the caller keeps the bytes and calls again with more appended. The head is parsed by
//!   `httparse`, the same parser the server reads requests with.
//! * Once the head is complete it is consumed whole; the body is then consumed as it arrives and
//!   passed to the observer (the load generator's observer is `()`, which ignores it), so a large
//!   body never grows the buffer. Chunk-size lines and trailers are parsed by `httparse` too.
//! * [`Progress::Complete`] ends one response; bytes after it belong to the next (pipelined)
//!   response and stay in the buffer for the next call.
//!
//! At end of stream the caller calls [`ResponseParser::recv_eof`], which completes a body
//! delimited by the connection closing (RFC 9112 §6.3 (8)) and reports a truncated one.
//!
//! Interim `1xx` responses are skipped (the final response follows) unless the parser was made
//! with [`ResponseParser::reporting_interim`], for a client that waits for `100 Continue`.

use std::fmt;

/// Largest response head accepted, in bytes. Far above what any server sends (nginx's default
/// response buffer is 4–8 KiB); a head that keeps growing past this is garbage, not a response.
const MAX_HEAD: usize = 64 * 1024;

/// Most header fields in a response head or trailer section; more is garbage too.
const MAX_HEADERS: usize = 64;

/// Largest chunk-size line (hex digits plus extensions) accepted, in bytes.
const MAX_CHUNK_LINE: usize = 4096;

/// Largest trailer section accepted, in bytes.
const MAX_TRAILERS: usize = 16 * 1024;

/// What one call to [`ResponseParser::recv`] achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Progress {
    /// The response is not finished: call again with more bytes.
    NeedMore,
    /// One response finished.
    Complete(Completed),
}

/// Facts about a finished response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Completed {
    /// The status code of the response.
    pub status: u16,
    /// The connection cannot carry another response after this one (`Connection: close`,
    /// HTTP/1.0 without keep-alive, or a body delimited by closing the connection).
    pub close: bool,
}

/// Why a response could not be parsed. Every variant means the connection is unusable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseError {
    /// The status line is not `HTTP/1.x NNN reason`.
    StatusLine,
    /// A header line is malformed.
    Header,
    /// The head is larger than the parser accepts.
    HeadTooLarge,
    /// `Content-Length` is not a number, or several disagree.
    ContentLength,
    /// `Transfer-Encoding` is present but does not end in `chunked`.
    TransferEncoding,
    /// A chunk-size line, a chunk delimiter or the trailers are malformed.
    Chunk,
    /// The connection closed in the middle of a response.
    Truncated,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::StatusLine => "malformed status line",
            Self::Header => "malformed header line",
            Self::HeadTooLarge => "response head too large",
            Self::ContentLength => "invalid Content-Length",
            Self::TransferEncoding => "unsupported Transfer-Encoding",
            Self::Chunk => "malformed chunked body",
            Self::Truncated => "connection closed mid-response",
        })
    }
}

impl std::error::Error for ParseError {}

/// What a caller that wants more than the framing gets to see of each response.
///
/// Both methods do nothing by default; `()` is the observer that wants nothing.
pub trait Observer {
    /// A response head was parsed: the final one, or an interim one when they are reported.
    fn head(&mut self, _head: &httparse::Response<'_, '_>) {}
    /// The next bytes of the body, with any chunked framing removed.
    fn body(&mut self, _bytes: &[u8]) {}
}

impl Observer for () {}

/// Incremental parser for a stream of HTTP/1.1 responses on one connection.
///
/// Call [`recv`](Self::recv) with the unconsumed bytes after every read, dropping the consumed
/// prefix, until it returns [`Progress::NeedMore`]; call [`recv_eof`](Self::recv_eof) when the
/// peer closes. After an error, [`reset`](Self::reset) before reusing it on a new connection.
///
/// # Examples
///
/// ```
/// use rtserve_loadgen::response::{Progress, ResponseParser};
///
/// let mut parser = ResponseParser::new();
/// let bytes = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi";
/// let (used, progress) = parser.recv(bytes, false, &mut ()).unwrap();
/// assert_eq!(used, bytes.len());
/// assert!(matches!(progress, Progress::Complete(done) if done.status == 200));
/// ```
#[derive(Debug, Clone)]
pub struct ResponseParser {
    state: State,
    status: u16,
    close: bool,
    report_interim: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Head,
    Length(u64),
    UntilClose,
    Chunked(Chunk),
}

/// The chunked-body decoder's position (RFC 9112 §7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Waiting for a whole chunk-size line.
    Size,
    /// `remaining` data bytes of the current chunk to come.
    Data { remaining: u64 },
    /// The CRLF after a chunk's data.
    DataEnd,
    /// The trailer section (possibly empty) after the last chunk.
    Trailers,
}

impl Default for ResponseParser {
    fn default() -> Self {
        Self::new()
    }
}

impl ResponseParser {
    /// A parser waiting for the first response head; interim responses are skipped.
    pub fn new() -> Self {
        Self {
            state: State::Head,
            status: 0,
            close: false,
            report_interim: false,
        }
    }

    /// A parser that completes interim (`1xx`) responses too, for a client that waits for
    /// `100 Continue` before it sends a body.
    pub fn reporting_interim() -> Self {
        Self {
            report_interim: true,
            ..Self::new()
        }
    }

    /// Forget any partial response (after an error or a reconnect).
    pub fn reset(&mut self) {
        self.state = State::Head;
    }

    /// Whether the parser is between responses (nothing partial buffered in its state).
    pub fn is_idle(&self) -> bool {
        self.state == State::Head
    }

    /// Parse from the front of `input`: returns the bytes consumed and the progress made.
    ///
    /// `head_request` says the request was `HEAD`, whose response never has a body
    /// (RFC 9112 §6.3 (1)). The `observer` sees each head and the body's bytes.
    ///
    /// # Errors
    ///
    /// A [`ParseError`] if the bytes are not a valid response; the connection should be closed.
    pub fn recv(
        &mut self,
        input: &[u8],
        head_request: bool,
        observer: &mut impl Observer,
    ) -> Result<(usize, Progress), ParseError> {
        let mut used = 0;
        loop {
            let rest = &input[used..];
            match self.state {
                State::Head => {
                    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
                    let mut response = httparse::Response::new(&mut fields);
                    let end = match response.parse(rest) {
                        Ok(httparse::Status::Complete(end)) if end <= MAX_HEAD => end,
                        Ok(httparse::Status::Partial) if rest.len() <= MAX_HEAD => {
                            return Ok((used, Progress::NeedMore));
                        }
                        Ok(_) | Err(httparse::Error::TooManyHeaders) => {
                            return Err(ParseError::HeadTooLarge);
                        }
                        Err(httparse::Error::Version | httparse::Error::Status) => {
                            return Err(ParseError::StatusLine);
                        }
                        Err(_) => return Err(ParseError::Header),
                    };
                    let head = Head::of(&response)?;
                    used += end;
                    // RFC 9110 §15.2: an interim response; the final one follows.
                    if (100..200).contains(&head.status) {
                        if self.report_interim {
                            observer.head(&response);
                            return Ok((used, self.finish(head.status, false)));
                        }
                        continue;
                    }
                    observer.head(&response);
                    self.status = head.status;
                    self.close = head.close;
                    // RFC 9112 §6.3 (1): HEAD, 204 and 304 responses end at the head.
                    if head_request || head.status == 204 || head.status == 304 {
                        return Ok((used, self.complete()));
                    }
                    self.state = if head.chunked {
                        // RFC 9112 §6.3 (4): chunked wins over Content-Length.
                        State::Chunked(Chunk::Size)
                    } else if let Some(length) = head.content_length {
                        State::Length(length)
                    } else {
                        // RFC 9112 §6.3 (8): the body runs until the connection closes.
                        self.close = true;
                        State::UntilClose
                    };
                }
                State::Length(remaining) => {
                    let take = take(rest, remaining);
                    observer.body(&rest[..take]);
                    used += take;
                    if take as u64 == remaining {
                        return Ok((used, self.complete()));
                    }
                    self.state = State::Length(remaining - take as u64);
                    return Ok((used, Progress::NeedMore));
                }
                State::UntilClose => {
                    observer.body(rest);
                    return Ok((input.len(), Progress::NeedMore));
                }
                State::Chunked(chunk) => {
                    let (n, next) = step_chunked(chunk, rest, observer)?;
                    used += n;
                    match next {
                        Some(chunk) => {
                            self.state = State::Chunked(chunk);
                            if n == 0 {
                                return Ok((used, Progress::NeedMore));
                            }
                        }
                        None => return Ok((used, self.complete())),
                    }
                }
            }
        }
    }

    /// The peer closed the connection: finish a close-delimited body.
    ///
    /// Returns `Ok(None)` if no response was in progress.
    ///
    /// # Errors
    ///
    /// [`ParseError::Truncated`] if a response was cut short.
    pub fn recv_eof(&mut self) -> Result<Option<Completed>, ParseError> {
        match self.state {
            State::Head => Ok(None),
            State::UntilClose => match self.complete() {
                Progress::Complete(done) => Ok(Some(done)),
                Progress::NeedMore => Ok(None),
            },
            _ => Err(ParseError::Truncated),
        }
    }

    fn complete(&mut self) -> Progress {
        self.finish(self.status, self.close)
    }

    fn finish(&mut self, status: u16, close: bool) -> Progress {
        self.state = State::Head;
        Progress::Complete(Completed { status, close })
    }
}

/// How many of `input`'s bytes belong to a body part with `remaining` bytes to come.
fn take(input: &[u8], remaining: u64) -> usize {
    usize::try_from(remaining).map_or(input.len(), |r| r.min(input.len()))
}

/// What framing a response head declares.
struct Head {
    status: u16,
    close: bool,
    chunked: bool,
    content_length: Option<u64>,
}

impl Head {
    fn of(response: &httparse::Response<'_, '_>) -> Result<Self, ParseError> {
        let http10 = response.version == Some(0);
        let mut head = Self {
            status: response.code.ok_or(ParseError::StatusLine)?,
            close: http10,
            chunked: false,
            content_length: None,
        };
        for field in response.headers.iter() {
            let value = field.value.trim_ascii();
            if field.name.eq_ignore_ascii_case("content-length") {
                let length = parse_decimal(value).ok_or(ParseError::ContentLength)?;
                // RFC 9112 §6.3 (5): differing lengths are unrecoverable.
                if head.content_length.is_some_and(|l| l != length) {
                    return Err(ParseError::ContentLength);
                }
                head.content_length = Some(length);
            } else if field.name.eq_ignore_ascii_case("transfer-encoding") {
                // RFC 9112 §6.3 (4): chunked must be the final coding in a response we can frame.
                let last = value.rsplit(|&b| b == b',').next().unwrap_or(value);
                if !last.trim_ascii().eq_ignore_ascii_case(b"chunked") {
                    return Err(ParseError::TransferEncoding);
                }
                head.chunked = true;
            } else if field.name.eq_ignore_ascii_case("connection") {
                for token in value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                    if token.eq_ignore_ascii_case(b"close") {
                        head.close = true;
                    } else if token.eq_ignore_ascii_case(b"keep-alive") && http10 {
                        head.close = false;
                    }
                }
            }
        }
        Ok(head)
    }
}

/// A non-empty string of ASCII digits, without overflow.
fn parse_decimal(value: &[u8]) -> Option<u64> {
    if value.is_empty() {
        return None;
    }
    value.iter().try_fold(0u64, |acc, &b| {
        if !b.is_ascii_digit() {
            return None;
        }
        acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))
    })
}

/// One step of the chunked decoder over `input`: the bytes consumed, and the next state, or
/// `None` when the body (trailers included) is complete. Consuming nothing means it needs more.
fn step_chunked(
    chunk: Chunk,
    input: &[u8],
    observer: &mut impl Observer,
) -> Result<(usize, Option<Chunk>), ParseError> {
    Ok(match chunk {
        Chunk::Size => match httparse::parse_chunk_size(input) {
            Ok(httparse::Status::Complete((n, size))) if n <= MAX_CHUNK_LINE => {
                let next = if size == 0 {
                    Chunk::Trailers
                } else {
                    Chunk::Data { remaining: size }
                };
                (n, Some(next))
            }
            Ok(httparse::Status::Partial) if input.len() <= MAX_CHUNK_LINE => (0, Some(chunk)),
            Ok(_) | Err(_) => return Err(ParseError::Chunk),
        },
        Chunk::Data { remaining } => {
            let take = take(input, remaining);
            observer.body(&input[..take]);
            let left = remaining - take as u64;
            (
                take,
                Some(if left == 0 {
                    Chunk::DataEnd
                } else {
                    Chunk::Data { remaining: left }
                }),
            )
        }
        Chunk::DataEnd => match input {
            [b'\r', b'\n', ..] => (2, Some(Chunk::Size)),
            [] | [b'\r'] => (0, Some(chunk)),
            _ => return Err(ParseError::Chunk),
        },
        Chunk::Trailers => {
            let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
            match httparse::parse_headers(input, &mut fields) {
                Ok(httparse::Status::Complete((n, _))) if n <= MAX_TRAILERS => (n, None),
                Ok(httparse::Status::Partial) if input.len() <= MAX_TRAILERS => (0, Some(chunk)),
                Ok(_) | Err(_) => return Err(ParseError::Chunk),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feed `input` split at `splits` (cumulative offsets), buffering like a connection does, and
    /// collect every completed response.
    fn feed(
        input: &[u8],
        chunk_sizes: &mut dyn Iterator<Item = usize>,
    ) -> Result<Vec<Completed>, ParseError> {
        let mut parser = ResponseParser::new();
        let mut buffer = Vec::new();
        let mut out = Vec::new();
        let mut offset = 0;
        while offset < input.len() {
            let n = chunk_sizes
                .next()
                .unwrap_or(input.len())
                .max(1)
                .min(input.len() - offset);
            buffer.extend_from_slice(&input[offset..offset + n]);
            offset += n;
            loop {
                let (used, progress) = parser.recv(&buffer, false, &mut ())?;
                buffer.drain(..used);
                match progress {
                    Progress::Complete(done) => out.push(done),
                    Progress::NeedMore => break,
                }
            }
        }
        if let Some(done) = parser.recv_eof()? {
            out.push(done);
        }
        Ok(out)
    }

    /// Whole, byte by byte, and split at every point: all give the same result.
    fn check(input: &[u8], expected: Result<Vec<(u16, bool)>, ParseError>) {
        let expected = expected.map(|v| {
            v.into_iter()
                .map(|(status, close)| Completed { status, close })
                .collect::<Vec<_>>()
        });
        assert_eq!(feed(input, &mut std::iter::empty()), expected, "whole");
        assert_eq!(
            feed(input, &mut std::iter::repeat(1)),
            expected,
            "byte by byte"
        );
        for split in 1..input.len() {
            let mut sizes = [split, input.len()].into_iter();
            assert_eq!(feed(input, &mut sizes), expected, "split at {split}");
        }
    }

    #[test]
    fn content_length_and_pipelining() {
        check(
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
            Ok(vec![(200, false)]),
        );
        check(
            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n\
              HTTP/1.1 503 Service Unavailable\r\ncontent-length: 3\r\nConnection: close\r\n\r\nbye",
            Ok(vec![(200, false), (503, true)]),
        );
        // Same length twice is allowed; different lengths are not.
        check(
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
            Ok(vec![(200, false)]),
        );
        check(
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxy",
            Err(ParseError::ContentLength),
        );
        check(
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            Err(ParseError::ContentLength),
        );
        check(
            b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n",
            Err(ParseError::ContentLength),
        );
    }

    #[test]
    fn chunked() {
        check(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
              5\r\nhello\r\n1;ext=1\r\n!\r\n0\r\n\r\n",
            Ok(vec![(200, false)]),
        );
        // Trailers, then a pipelined response.
        check(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n\
              A\r\n0123456789\r\n0\r\nX-Trailer: 1\r\n\r\n\
              HTTP/1.1 204 No Content\r\n\r\n",
            Ok(vec![(200, false), (204, false)]),
        );
        check(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nZ\r\n",
            Err(ParseError::Chunk),
        );
        check(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabX\r\n",
            Err(ParseError::Chunk),
        );
        check(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n11111111111111111\r\n",
            Err(ParseError::Chunk),
        );
        check(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
            Err(ParseError::TransferEncoding),
        );
    }

    #[test]
    fn close_delimited_and_bodiless() {
        check(
            b"HTTP/1.1 200 OK\r\n\r\nuntil the end",
            Ok(vec![(200, true)]),
        );
        check(
            b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n",
            Ok(vec![(200, true)]),
        );
        check(
            b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n",
            Ok(vec![(200, false)]),
        );
        check(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 304 Not Modified\r\n\r\n",
            Ok(vec![(304, false)]),
        );
    }

    #[test]
    fn malformed() {
        check(b"HTTP/2.0 200 OK\r\n\r\n", Err(ParseError::StatusLine));
        check(b"HTTP/1.1 2x0 OK\r\n\r\n", Err(ParseError::StatusLine));
        check(b"HTTP/1.1 2000 OK\r\n\r\n", Err(ParseError::StatusLine));
        check(b"garbage\r\n\r\n", Err(ParseError::StatusLine));
        check(
            b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
            Err(ParseError::Header),
        );
        check(
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
            Err(ParseError::Truncated),
        );
        let mut huge = b"HTTP/1.1 200 OK\r\n".to_vec();
        huge.resize(MAX_HEAD + 10, b'a');
        assert_eq!(
            feed(&huge, &mut std::iter::empty()),
            Err(ParseError::HeadTooLarge)
        );
    }

    #[test]
    fn head_request_has_no_body() {
        let mut parser = ResponseParser::new();
        let bytes = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n";
        let (used, progress) = parser.recv(bytes, true, &mut ()).unwrap();
        assert_eq!(used, bytes.len());
        assert!(matches!(progress, Progress::Complete(_)));
    }

    /// Keeps what the observer is shown.
    #[derive(Default)]
    struct Seen {
        heads: Vec<(u16, usize)>,
        body: Vec<u8>,
    }

    impl Observer for Seen {
        fn head(&mut self, head: &httparse::Response<'_, '_>) {
            self.heads.push((head.code.unwrap(), head.headers.len()));
        }
        fn body(&mut self, bytes: &[u8]) {
            self.body.extend_from_slice(bytes);
        }
    }

    /// Feeds `input` in pieces of `piece` bytes to `parser`; returns what the observer saw and
    /// the completed responses.
    fn observe(mut parser: ResponseParser, input: &[u8], piece: usize) -> (Seen, Vec<Completed>) {
        let mut seen = Seen::default();
        let mut done = Vec::new();
        let mut buffer = Vec::new();
        for part in input.chunks(piece) {
            buffer.extend_from_slice(part);
            loop {
                let (used, progress) = parser.recv(&buffer, false, &mut seen).unwrap();
                buffer.drain(..used);
                match progress {
                    Progress::Complete(c) => done.push(c),
                    Progress::NeedMore => break,
                }
            }
        }
        done.extend(parser.recv_eof().unwrap());
        (seen, done)
    }

    #[test]
    fn the_observer_sees_each_head_and_the_decoded_body() {
        let input = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX: y\r\n\r\n\
                      5\r\nhello\r\n1;ext=1\r\n!\r\n0\r\nT: 1\r\n\r\n\
                      HTTP/1.1 201 Created\r\nContent-Length: 3\r\n\r\nabc\
                      HTTP/1.0 200 OK\r\n\r\nto the end";
        for piece in 1..=input.len() {
            let (seen, done) = observe(ResponseParser::new(), input, piece);
            assert_eq!(
                seen.heads,
                [(200, 2), (201, 1), (200, 0)],
                "pieces of {piece}"
            );
            assert_eq!(seen.body, b"hello!abcto the end", "pieces of {piece}");
            let statuses: Vec<u16> = done.iter().map(|c| c.status).collect();
            assert_eq!(statuses, [200, 201, 200], "pieces of {piece}");
        }
    }

    #[test]
    fn interim_responses_are_skipped_or_reported() {
        let input = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
        for piece in [1, 7, input.len()] {
            let (seen, done) = observe(ResponseParser::new(), input, piece);
            assert_eq!(seen.heads, [(200, 1)]);
            assert_eq!(done.len(), 1);
            let (seen, done) = observe(ResponseParser::reporting_interim(), input, piece);
            assert_eq!(seen.heads, [(100, 0), (200, 1)]);
            let statuses: Vec<u16> = done.iter().map(|c| c.status).collect();
            assert_eq!(statuses, [100, 200]);
        }
    }
}
