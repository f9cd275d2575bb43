//! A small sans-I/O HTTP/1.1 response parser: just enough framing to find where each response
//! ends on a keep-alive or pipelined connection.
//!
//! # Theory of operation
//!
//! The caller owns the read buffer. [`ResponseParser::recv`] looks at the unconsumed front of it
//! and returns how many bytes it consumed plus a [`Progress`]:
//!
//! * While the head (status line + headers) is incomplete it consumes nothing and asks for more,
//!   so the caller keeps the bytes and calls again with more appended.
//! * Once the head is complete it is consumed whole; the body is then consumed as it arrives
//!   (its bytes are skipped, never copied), so a large body never grows the buffer.
//! * [`Progress::Complete`] ends one response; bytes after it belong to the next (pipelined)
//!   response and stay in the buffer for the next call.
//!
//! At end of stream the caller calls [`ResponseParser::recv_eof`], which completes a body
//! delimited by the connection closing (RFC 9112 §6.3 (8)) and reports a truncated one.
//!
//! Interim `1xx` responses are skipped: they carry no body and the final response follows.

use std::fmt;

/// Largest response head accepted, in bytes. Far above what any server sends (nginx's default
/// response buffer is 4–8 KiB); a head that keeps growing past this is garbage, not a response.
const MAX_HEAD: usize = 64 * 1024;

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
    /// The status code of the final (non-`1xx`) response.
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
    /// A header line has no colon or an empty name.
    Header,
    /// The head is larger than the parser accepts.
    HeadTooLarge,
    /// `Content-Length` is not a number, or several disagree.
    ContentLength,
    /// `Transfer-Encoding` is present but does not end in `chunked`.
    TransferEncoding,
    /// A chunk-size line or a chunk delimiter is malformed.
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
/// let (used, progress) = parser.recv(bytes, false).unwrap();
/// assert_eq!(used, bytes.len());
/// assert!(matches!(progress, Progress::Complete(done) if done.status == 200));
/// ```
#[derive(Debug, Clone)]
pub struct ResponseParser {
    state: State,
    status: u16,
    close: bool,
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
    /// Reading hex digits of the chunk size (`digits` read so far, `len` bytes on the line).
    Size { size: u64, digits: u8, len: usize },
    /// Skipping a chunk extension up to CRLF.
    Extension { size: u64, len: usize },
    /// Saw CR after the size line, expect LF.
    SizeLf { size: u64 },
    /// Skipping `remaining` data bytes.
    Data { remaining: u64 },
    /// Expect CR after chunk data.
    DataCr,
    /// Expect LF after chunk data.
    DataLf,
    /// At the start of a trailer line (or the final empty line); `total` bytes of trailers.
    TrailerStart { total: usize },
    /// Inside a trailer field line.
    Trailer { total: usize },
    /// Saw CR of the final empty line, expect LF.
    EndLf,
}

impl Default for ResponseParser {
    fn default() -> Self {
        Self::new()
    }
}

impl ResponseParser {
    /// A parser waiting for the first response head.
    pub fn new() -> Self {
        Self {
            state: State::Head,
            status: 0,
            close: false,
        }
    }

    /// Forget any partial response (after an error or a reconnect).
    pub fn reset(&mut self) {
        *self = Self::new();
    }

    /// Whether the parser is between responses (nothing partial buffered in its state).
    pub fn is_idle(&self) -> bool {
        self.state == State::Head
    }

    /// Parse from the front of `input`: returns the bytes consumed and the progress made.
    ///
    /// `head_request` says the request was `HEAD`, whose response never has a body
    /// (RFC 9112 §6.3 (1)).
    ///
    /// # Errors
    ///
    /// A [`ParseError`] if the bytes are not a valid response; the connection should be closed.
    pub fn recv(
        &mut self,
        input: &[u8],
        head_request: bool,
    ) -> Result<(usize, Progress), ParseError> {
        let mut used = 0;
        loop {
            match self.state {
                State::Head => {
                    let Some(end) = find_head_end(&input[used..]) else {
                        if input.len() - used > MAX_HEAD {
                            return Err(ParseError::HeadTooLarge);
                        }
                        return Ok((used, Progress::NeedMore));
                    };
                    if end > MAX_HEAD {
                        return Err(ParseError::HeadTooLarge);
                    }
                    let head = parse_head(&input[used..used + end])?;
                    used += end;
                    if (100..200).contains(&head.status) {
                        // RFC 9110 §15.2: interim response; the final one follows.
                        continue;
                    }
                    self.status = head.status;
                    self.close = head.close;
                    // RFC 9112 §6.3 (1): HEAD, 1xx, 204 and 304 responses end at the head.
                    let bodiless = head_request || head.status == 204 || head.status == 304;
                    self.state = if bodiless {
                        return Ok((used, self.complete()));
                    } else if head.chunked {
                        // RFC 9112 §6.3 (4): chunked wins over Content-Length.
                        State::Chunked(Chunk::Size {
                            size: 0,
                            digits: 0,
                            len: 0,
                        })
                    } else if let Some(length) = head.content_length {
                        State::Length(length)
                    } else {
                        // RFC 9112 §6.3 (8): the body runs until the connection closes.
                        self.close = true;
                        State::UntilClose
                    };
                }
                State::Length(remaining) => {
                    let available = (input.len() - used) as u64;
                    let take = remaining.min(available);
                    // `take` ≤ available, which came from a usize.
                    used += take as usize;
                    if take == remaining {
                        return Ok((used, self.complete()));
                    }
                    self.state = State::Length(remaining - take);
                    return Ok((used, Progress::NeedMore));
                }
                State::UntilClose => return Ok((input.len(), Progress::NeedMore)),
                State::Chunked(chunk) => {
                    let (n, next) = step_chunked(chunk, &input[used..])?;
                    used += n;
                    match next {
                        Some(chunk) => {
                            self.state = State::Chunked(chunk);
                            return Ok((used, Progress::NeedMore));
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
        let done = Completed {
            status: self.status,
            close: self.close,
        };
        self.state = State::Head;
        Progress::Complete(done)
    }
}

/// Offset just past the `\r\n\r\n` ending the head, if present.
fn find_head_end(input: &[u8]) -> Option<usize> {
    input
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4)
}

struct Head {
    status: u16,
    close: bool,
    chunked: bool,
    content_length: Option<u64>,
}

/// Parse a complete head (including its final blank line).
fn parse_head(head: &[u8]) -> Result<Head, ParseError> {
    let mut lines = head
        .split(|&b| b == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line));
    let status_line = lines.next().ok_or(ParseError::StatusLine)?;
    // RFC 9112 §4: status-line = HTTP-version SP status-code SP [ reason-phrase ]
    let rest = status_line
        .strip_prefix(b"HTTP/1.")
        .ok_or(ParseError::StatusLine)?;
    let (minor, rest) = rest.split_first().ok_or(ParseError::StatusLine)?;
    let http10 = match minor {
        b'0' => true,
        b'1' => false,
        _ => return Err(ParseError::StatusLine),
    };
    let code = match rest {
        [b' ', a, b, c, tail @ ..] if tail.is_empty() || tail[0] == b' ' => [*a, *b, *c],
        _ => return Err(ParseError::StatusLine),
    };
    if !code.iter().all(u8::is_ascii_digit) {
        return Err(ParseError::StatusLine);
    }
    let status = code
        .iter()
        .fold(0u16, |acc, d| acc * 10 + u16::from(d - b'0'));

    let mut out = Head {
        status,
        close: http10,
        chunked: false,
        content_length: None,
    };
    for line in lines {
        if line.is_empty() {
            continue;
        }
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or(ParseError::Header)?;
        let name = &line[..colon];
        if name.is_empty() || name.iter().any(|b| b.is_ascii_whitespace()) {
            return Err(ParseError::Header);
        }
        let value = line[colon + 1..].trim_ascii();
        if name.eq_ignore_ascii_case(b"content-length") {
            let length = parse_decimal(value).ok_or(ParseError::ContentLength)?;
            // RFC 9112 §6.3 (5): differing lengths are unrecoverable.
            if out.content_length.is_some_and(|l| l != length) {
                return Err(ParseError::ContentLength);
            }
            out.content_length = Some(length);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            // RFC 9112 §6.3 (4): chunked must be the final coding in a response we can frame.
            let last = value
                .rsplit(|&b| b == b',')
                .next()
                .unwrap_or(value)
                .trim_ascii();
            if !last.eq_ignore_ascii_case(b"chunked") {
                return Err(ParseError::TransferEncoding);
            }
            out.chunked = true;
        } else if name.eq_ignore_ascii_case(b"connection") {
            for token in value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                if token.eq_ignore_ascii_case(b"close") {
                    out.close = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") && http10 {
                    out.close = false;
                }
            }
        }
    }
    Ok(out)
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

/// Step the chunked decoder over `input`: bytes consumed, and the next state or `None` when the
/// body (including trailers) is complete.
fn step_chunked(mut chunk: Chunk, input: &[u8]) -> Result<(usize, Option<Chunk>), ParseError> {
    let mut i = 0;
    while i < input.len() {
        let b = input[i];
        chunk = match chunk {
            Chunk::Size { size, digits, len } => {
                if len >= MAX_CHUNK_LINE {
                    return Err(ParseError::Chunk);
                }
                if let Some(d) = (b as char).to_digit(16) {
                    // 16 hex digits fill a u64; more is an overflow (hyper decode.rs does the same).
                    if digits >= 16 {
                        return Err(ParseError::Chunk);
                    }
                    Chunk::Size {
                        size: size << 4 | u64::from(d),
                        digits: digits + 1,
                        len: len + 1,
                    }
                } else if digits == 0 {
                    return Err(ParseError::Chunk);
                } else if b == b'\r' {
                    Chunk::SizeLf { size }
                } else if b == b';' || b == b' ' || b == b'\t' {
                    Chunk::Extension { size, len: len + 1 }
                } else {
                    return Err(ParseError::Chunk);
                }
            }
            Chunk::Extension { size, len } => {
                if len >= MAX_CHUNK_LINE {
                    return Err(ParseError::Chunk);
                }
                match b {
                    b'\r' => Chunk::SizeLf { size },
                    b'\n' => return Err(ParseError::Chunk),
                    _ => Chunk::Extension { size, len: len + 1 },
                }
            }
            Chunk::SizeLf { size } => {
                if b != b'\n' {
                    return Err(ParseError::Chunk);
                }
                if size == 0 {
                    Chunk::TrailerStart { total: 0 }
                } else {
                    Chunk::Data { remaining: size }
                }
            }
            Chunk::Data { remaining } => {
                let available = (input.len() - i) as u64;
                let take = remaining.min(available);
                // `take` ≤ available, which came from a usize.
                i += take as usize;
                chunk = if take == remaining {
                    Chunk::DataCr
                } else {
                    Chunk::Data {
                        remaining: remaining - take,
                    }
                };
                continue;
            }
            Chunk::DataCr if b == b'\r' => Chunk::DataLf,
            Chunk::DataLf if b == b'\n' => Chunk::Size {
                size: 0,
                digits: 0,
                len: 0,
            },
            Chunk::DataCr | Chunk::DataLf => return Err(ParseError::Chunk),
            Chunk::TrailerStart { total } => match b {
                b'\r' => Chunk::EndLf,
                _ => Chunk::Trailer { total: total + 1 },
            },
            Chunk::Trailer { total } => {
                if total >= MAX_TRAILERS {
                    return Err(ParseError::Chunk);
                }
                match b {
                    b'\n' => Chunk::TrailerStart { total: total + 1 },
                    _ => Chunk::Trailer { total: total + 1 },
                }
            }
            Chunk::EndLf => {
                if b != b'\n' {
                    return Err(ParseError::Chunk);
                }
                return Ok((i + 1, None));
            }
        };
        i += 1;
    }
    Ok((i, Some(chunk)))
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
                let (used, progress) = parser.recv(&buffer, false)?;
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
        let (used, progress) = parser.recv(bytes, true).unwrap();
        assert_eq!(used, bytes.len());
        assert!(matches!(progress, Progress::Complete(_)));
    }
}
