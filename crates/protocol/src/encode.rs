//! Responses to bytes: status line, headers and body framing, appended to a caller's buffer.
//!
//! Encoding is separate from [`ServerConn`](crate::ServerConn) on purpose: with pipelining a
//! response is often written after later requests have been parsed, so everything the encoder
//! needs to know about its request travels in a small `Copy` [`ResponseContext`] that the
//! caller keeps next to the pending response.

use crate::{HttpDate, RecvError, RequestHead, SendError, StatusCode, Version, framing::is_tchar};

/// What the response's encoding depends on in its request: version, HEAD, keep-alive.
///
/// # Examples
///
/// ```
/// use rtserve_protocol::{ResponseContext, Version};
///
/// let ctx = ResponseContext::new(Version::Http11, false, true);
/// assert!(ctx.keep_alive());
/// assert!(!ctx.with_close().keep_alive());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResponseContext {
    version: Version,
    head: bool,
    keep_alive: bool,
}

impl ResponseContext {
    /// A context from its parts; usually taken from [`RequestHead::response_context`].
    pub const fn new(version: Version, head: bool, keep_alive: bool) -> Self {
        Self {
            version,
            head,
            keep_alive,
        }
    }

    /// The context of a response to a request that could not be parsed: HTTP/1.1 framing,
    /// with a body, closing the connection after it.
    pub const fn for_error() -> Self {
        Self::new(Version::Http11, false, false)
    }

    /// The same context, closing the connection after the response.
    #[must_use]
    pub const fn with_close(self) -> Self {
        Self {
            keep_alive: false,
            ..self
        }
    }

    /// Whether the response answers a HEAD request (its body is not sent).
    pub const fn is_head(&self) -> bool {
        self.head
    }

    /// Whether the connection may stay open after this response, as far as the request goes
    /// (a body of unknown length on HTTP/1.0 closes it too: see [`BodyEncoder::keep_alive`]).
    pub const fn keep_alive(&self) -> bool {
        self.keep_alive
    }
}

impl RequestHead {
    /// The context for encoding this request's response.
    pub fn response_context(&self) -> ResponseContext {
        ResponseContext::new(self.version(), self.is_head(), self.keep_alive())
    }
}

/// The length of a response body, as known when its head is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyLength {
    /// Exactly this many bytes: sent with Content-Length.
    Known(u64),
    /// Not known yet: chunked on HTTP/1.1, delimited by closing the connection on HTTP/1.0.
    Unknown,
}

/// Frames the body of one response, after [`send_head`].
///
/// Call [`BodyEncoder::send_body`] for each piece, then [`BodyEncoder::send_end`] once.
#[derive(Debug)]
#[must_use = "a response body must be ended with send_end"]
pub struct BodyEncoder {
    kind: BodyEncoding,
    keep_alive: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BodyEncoding {
    /// A HEAD response: the framing headers describe the GET body, which is not sent.
    Discard,
    /// 1xx, 204, 304: no body at all.
    Bodiless,
    /// Content-Length with this many bytes still to send.
    Length(u64),
    Chunked,
    CloseDelimited,
}

impl BodyEncoder {
    /// Appends a piece of the body to `out`. On a HEAD response the piece is dropped.
    ///
    /// # Errors
    ///
    /// [`SendError::BodyTooLong`] past the declared length and [`SendError::BodyNotAllowed`]
    /// for bytes on a 1xx, 204 or 304 response; `out` is left unchanged.
    pub fn send_body(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<(), SendError> {
        match &mut self.kind {
            BodyEncoding::Discard => {}
            BodyEncoding::Bodiless if data.is_empty() => {}
            BodyEncoding::Bodiless => return Err(SendError::BodyNotAllowed),
            BodyEncoding::Length(remaining) => {
                *remaining = remaining
                    .checked_sub(data.len() as u64)
                    .ok_or(SendError::BodyTooLong)?;
                out.extend_from_slice(data);
            }
            // An empty chunk would end the body, so an empty piece writes nothing.
            BodyEncoding::Chunked if data.is_empty() => {}
            BodyEncoding::Chunked => {
                let mut hex = [0u8; 16];
                let hex = format_hex(data.len() as u64, &mut hex);
                out.reserve(hex.len() + data.len() + 4);
                out.extend_from_slice(hex);
                out.extend_from_slice(b"\r\n");
                out.extend_from_slice(data);
                out.extend_from_slice(b"\r\n");
            }
            BodyEncoding::CloseDelimited => out.extend_from_slice(data),
        }
        Ok(())
    }

    /// Ends the body: the last chunk for a chunked body, nothing otherwise.
    ///
    /// # Errors
    ///
    /// [`SendError::BodyTooShort`] if fewer bytes than the declared length were sent.
    pub fn send_end(self, out: &mut Vec<u8>) -> Result<(), SendError> {
        match self.kind {
            BodyEncoding::Length(remaining) if remaining > 0 => Err(SendError::BodyTooShort),
            BodyEncoding::Chunked => {
                out.extend_from_slice(b"0\r\n\r\n");
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Whether the connection may carry another request after this response. False when
    /// the request or the caller asked to close, and for a close-delimited body.
    pub fn keep_alive(&self) -> bool {
        self.keep_alive
    }
}

/// Appends a response head to `out` and returns the encoder for its body.
///
/// Writes the status line (always `HTTP/1.1`, RFC 9110 §2.5), `Date`, the caller's `headers`,
/// the framing header for `length` (none on 1xx, 204 and 304; on a HEAD response the one a GET
/// would carry), and `Connection: close` when the connection closes after this response
/// (`Connection: keep-alive` for a persistent HTTP/1.0 connection).
///
/// # Errors
///
/// [`SendError::InvalidHeader`] for a header name that is not a token or a value with a
/// control byte (CR, LF, NUL, ...), and [`SendError::ReservedHeader`] for a header the encoder
/// writes itself. On error `out` is left as it was.
///
/// # Examples
///
/// ```
/// use std::time::UNIX_EPOCH;
/// use rtserve_protocol::{BodyLength, HttpDate, ResponseContext, StatusCode, Version, send_head};
///
/// let date = HttpDate::new(UNIX_EPOCH);
/// let ctx = ResponseContext::new(Version::Http11, false, true);
/// let mut out = Vec::new();
/// let headers = [("Content-Type", &b"text/plain"[..])];
/// let mut body = send_head(ctx, StatusCode::OK, headers, BodyLength::Unknown, &date, &mut out)?;
/// body.send_body(b"hello", &mut out)?;
/// body.send_end(&mut out)?;
/// assert_eq!(
///     out,
///     b"HTTP/1.1 200 OK\r\nDate: Thu, 01 Jan 1970 00:00:00 GMT\r\n\
///       Content-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n\
///       5\r\nhello\r\n0\r\n\r\n"
/// );
/// # Ok::<(), rtserve_protocol::SendError>(())
/// ```
pub fn send_head<'h>(
    ctx: ResponseContext,
    status: StatusCode,
    headers: impl IntoIterator<Item = (&'h str, &'h [u8])>,
    length: BodyLength,
    date: &HttpDate,
    out: &mut Vec<u8>,
) -> Result<BodyEncoder, SendError> {
    let start = out.len();
    let result = write_head(ctx, status, headers, length, date, out);
    if result.is_err() {
        out.truncate(start);
    }
    result
}

fn write_head<'h>(
    ctx: ResponseContext,
    status: StatusCode,
    headers: impl IntoIterator<Item = (&'h str, &'h [u8])>,
    length: BodyLength,
    date: &HttpDate,
    out: &mut Vec<u8>,
) -> Result<BodyEncoder, SendError> {
    let reason = status.reason();
    out.reserve(64 + reason.len() + 64);
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(&status.digits());
    out.push(b' ');
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\r\nDate: ");
    out.extend_from_slice(date.as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in headers {
        check_header(name.as_bytes(), value)?;
        out.reserve(name.len() + value.len() + 4);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }

    let mut keep_alive = ctx.keep_alive;
    let kind = if status.is_bodiless() {
        // RFC 9110 §8.6, RFC 9112 §6.1: no Content-Length or Transfer-Encoding on 1xx and 204;
        // a 304 would describe the selected representation, which we do not know here.
        BodyEncoding::Bodiless
    } else {
        let encoding = match (length, ctx.version) {
            (BodyLength::Known(n), _) => {
                let mut digits = [0u8; 20];
                out.extend_from_slice(b"Content-Length: ");
                out.extend_from_slice(format_decimal(n, &mut digits));
                out.extend_from_slice(b"\r\n");
                BodyEncoding::Length(n)
            }
            (BodyLength::Unknown, Version::Http11) => {
                out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
                BodyEncoding::Chunked
            }
            // RFC 9112 §6.3 (8): an HTTP/1.0 client learns where the body ends from the close.
            (BodyLength::Unknown, Version::Http10) => {
                if !ctx.head {
                    keep_alive = false;
                }
                BodyEncoding::CloseDelimited
            }
        };
        // RFC 9110 §9.3.2: a HEAD response has the GET response's header fields, no body.
        if ctx.head {
            BodyEncoding::Discard
        } else {
            encoding
        }
    };
    if !keep_alive {
        out.extend_from_slice(b"Connection: close\r\n");
    } else if ctx.version == Version::Http10 {
        out.extend_from_slice(b"Connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
    Ok(BodyEncoder { kind, keep_alive })
}

/// Appends a whole response with a body in memory; returns whether the connection stays open.
///
/// # Errors
///
/// As [`send_head`]; on error `out` is left as it was.
///
/// # Examples
///
/// ```
/// use std::time::UNIX_EPOCH;
/// use rtserve_protocol::{HttpDate, ResponseContext, StatusCode, Version, send_response};
///
/// let date = HttpDate::new(UNIX_EPOCH);
/// let mut out = Vec::new();
/// let ctx = ResponseContext::new(Version::Http11, false, false);
/// let keep_alive = send_response(ctx, StatusCode::OK, [], b"hi", &date, &mut out)?;
/// assert!(!keep_alive);
/// assert!(out.ends_with(b"Content-Length: 2\r\nConnection: close\r\n\r\nhi"));
/// # Ok::<(), rtserve_protocol::SendError>(())
/// ```
pub fn send_response<'h>(
    ctx: ResponseContext,
    status: StatusCode,
    headers: impl IntoIterator<Item = (&'h str, &'h [u8])>,
    body: &[u8],
    date: &HttpDate,
    out: &mut Vec<u8>,
) -> Result<bool, SendError> {
    let start = out.len();
    let length = BodyLength::Known(body.len() as u64);
    let result = send_head(ctx, status, headers, length, date, out).and_then(|mut encoder| {
        encoder.send_body(body, out)?;
        let keep_alive = encoder.keep_alive();
        encoder.send_end(out)?;
        Ok(keep_alive)
    });
    if result.is_err() {
        out.truncate(start);
    }
    result
}

/// Appends the answer to a request that failed to parse: its status, a one-line text body
/// naming the problem, and `Connection: close`. The connection must close after it.
///
/// # Examples
///
/// ```
/// use std::time::UNIX_EPOCH;
/// use rtserve_protocol::{HttpDate, RecvError, send_error};
///
/// let mut out = Vec::new();
/// send_error(RecvError::MissingHost, &HttpDate::new(UNIX_EPOCH), &mut out);
/// assert!(out.starts_with(b"HTTP/1.1 400 Bad Request\r\n"));
/// assert!(out.ends_with(b"Connection: close\r\n\r\nHTTP/1.1 request without Host\n"));
/// ```
pub fn send_error(error: RecvError, date: &HttpDate, out: &mut Vec<u8>) {
    use std::io::Write;

    let start = out.len();
    let mut body = [0u8; 64];
    let mut cursor = &mut body[..];
    // Every message is shorter than the buffer; a longer one would only be cut short.
    let _ = writeln!(cursor, "{error}");
    let len = 64 - cursor.len();
    let headers = [("Content-Type", &b"text/plain; charset=utf-8"[..])];
    let sent = send_response(
        ResponseContext::for_error(),
        error.status(),
        headers,
        &body[..len],
        date,
        out,
    );
    // The status, headers and body are all ours and valid, so this cannot fail; if it ever
    // did, the caller still closes the connection, which tells the client enough.
    if sent.is_err() {
        out.truncate(start);
    }
}

/// Appends the interim `100 Continue` response (RFC 9110 §15.2.1) that tells a client waiting
/// on `Expect: 100-continue` to send its body.
pub fn send_continue(out: &mut Vec<u8>) {
    out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
}

/// RFC 9110 §5.1, §5.5: a name is a token; a value holds no CR, LF, NUL or other control byte
/// but HTAB (the first three allow header injection).
fn check_header(name: &[u8], value: &[u8]) -> Result<(), SendError> {
    if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
        return Err(SendError::InvalidHeader);
    }
    if !value
        .iter()
        .all(|&b| b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0x80)
    {
        return Err(SendError::InvalidHeader);
    }
    let reserved: &[u8] = match name.len() {
        4 => b"date",
        10 => b"connection",
        14 => b"content-length",
        17 => b"transfer-encoding",
        _ => return Ok(()),
    };
    if name.eq_ignore_ascii_case(reserved) {
        return Err(SendError::ReservedHeader);
    }
    Ok(())
}

fn format_decimal(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}

fn format_hex(mut n: u64, buf: &mut [u8; 16]) -> &[u8] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = HEX[(n & 15) as usize];
        n >>= 4;
        if n == 0 {
            return &buf[i..];
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;

    const DATE: &str = "Date: Thu, 01 Jan 1970 00:00:00 GMT\r\n";

    fn encode(
        ctx: ResponseContext,
        status: u16,
        headers: &[(&str, &[u8])],
        length: BodyLength,
        body: &[&[u8]],
    ) -> Result<String, SendError> {
        let mut out = Vec::new();
        let date = HttpDate::new(UNIX_EPOCH);
        let status = StatusCode::from_u16(status).unwrap();
        let mut enc = send_head(
            ctx,
            status,
            headers.iter().copied(),
            length,
            &date,
            &mut out,
        )?;
        for piece in body {
            enc.send_body(piece, &mut out)?;
        }
        enc.send_end(&mut out)?;
        Ok(String::from_utf8(out).unwrap().replace(DATE, ""))
    }

    const V11: ResponseContext = ResponseContext::new(Version::Http11, false, true);
    const V10: ResponseContext = ResponseContext::new(Version::Http10, false, false);
    const V10_KA: ResponseContext = ResponseContext::new(Version::Http10, false, true);
    const HEAD11: ResponseContext = ResponseContext::new(Version::Http11, true, true);

    #[test]
    fn framing_by_version_and_length() {
        use BodyLength::*;
        type Case = (
            ResponseContext,
            u16,
            BodyLength,
            &'static [&'static [u8]],
            &'static str,
        );
        let cases: &[Case] = &[
            (
                V11,
                200,
                Known(2),
                &[b"h", b"i"],
                "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi",
            ),
            (
                V11,
                200,
                Unknown,
                &[b"ab", b"", b"cde"],
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n3\r\ncde\r\n0\r\n\r\n",
            ),
            (
                V11.with_close(),
                200,
                Known(0),
                &[],
                "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            ),
            // HTTP/1.0: close unless keep-alive was asked for; unknown length closes.
            (
                V10,
                200,
                Known(1),
                &[b"x"],
                "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx",
            ),
            (
                V10_KA,
                200,
                Known(1),
                &[b"x"],
                "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nConnection: keep-alive\r\n\r\nx",
            ),
            (
                V10_KA,
                200,
                Unknown,
                &[b"xy"],
                "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nxy",
            ),
            // HEAD: the GET framing headers, no body.
            (
                HEAD11,
                200,
                Known(5),
                &[b"hello"],
                "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
            ),
            (
                HEAD11,
                200,
                Unknown,
                &[b"hello"],
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            ),
            // 204 and 304: no framing headers, no body.
            (V11, 204, Known(0), &[], "HTTP/1.1 204 No Content\r\n\r\n"),
            (V11, 304, Unknown, &[], "HTTP/1.1 304 Not Modified\r\n\r\n"),
            (
                V11,
                299,
                Known(0),
                &[],
                "HTTP/1.1 299 \r\nContent-Length: 0\r\n\r\n",
            ),
        ];
        for (ctx, status, length, body, want) in cases {
            assert_eq!(
                encode(*ctx, *status, &[], *length, body).as_deref(),
                Ok(*want),
                "{ctx:?} {status} {length:?}"
            );
        }
    }

    #[test]
    fn keep_alive_reported() {
        let mut out = Vec::new();
        let date = HttpDate::new(UNIX_EPOCH);
        let enc = send_head(
            V10_KA,
            StatusCode::OK,
            [],
            BodyLength::Unknown,
            &date,
            &mut out,
        );
        assert!(!enc.unwrap().keep_alive());
        let enc = send_head(
            V11,
            StatusCode::OK,
            [],
            BodyLength::Unknown,
            &date,
            &mut out,
        );
        assert!(enc.unwrap().keep_alive());
    }

    #[test]
    fn user_headers() {
        let mut out = Vec::new();
        let date = HttpDate::new(UNIX_EPOCH);
        let headers: [(&str, &[u8]); 2] = [("X-A", b"1"), ("x-b", b"tab\tand \x80 obs-text")];
        send_response(V11, StatusCode::OK, headers, b"", &date, &mut out).unwrap();
        let want = [
            b"HTTP/1.1 200 OK\r\n".as_slice(),
            DATE.as_bytes(),
            b"X-A: 1\r\nx-b: tab\tand \x80 obs-text\r\nContent-Length: 0\r\n\r\n",
        ]
        .concat();
        assert_eq!(out, want);
    }

    #[test]
    fn bad_headers_are_refused_and_leave_out_unchanged() {
        let date = HttpDate::new(UNIX_EPOCH);
        let cases: &[((&str, &[u8]), SendError)] = &[
            (("X-A", b"a\r\nSet-Cookie: x"), SendError::InvalidHeader),
            (("X-A", b"a\nb"), SendError::InvalidHeader),
            (("X-A", b"a\0b"), SendError::InvalidHeader),
            (("X A", b"a"), SendError::InvalidHeader),
            (("", b"a"), SendError::InvalidHeader),
            (("X-A:", b"a"), SendError::InvalidHeader),
            (("Content-Length", b"5"), SendError::ReservedHeader),
            (("transfer-encoding", b"chunked"), SendError::ReservedHeader),
            (("CONNECTION", b"close"), SendError::ReservedHeader),
            (("Date", b"x"), SendError::ReservedHeader),
        ];
        for (header, want) in cases {
            let mut out = b"earlier".to_vec();
            let got = send_response(V11, StatusCode::OK, [*header], b"body", &date, &mut out);
            assert_eq!(got, Err(*want), "{header:?}");
            assert_eq!(out, b"earlier");
        }
    }

    #[test]
    fn body_length_is_enforced() {
        use BodyLength::*;
        assert_eq!(
            encode(V11, 200, &[], Known(2), &[b"abc"]),
            Err(SendError::BodyTooLong)
        );
        assert_eq!(
            encode(V11, 200, &[], Known(2), &[b"a"]),
            Err(SendError::BodyTooShort)
        );
        assert_eq!(
            encode(V11, 204, &[], Known(0), &[b"a"]),
            Err(SendError::BodyNotAllowed)
        );
    }

    #[test]
    fn numbers() {
        let mut d = [0u8; 20];
        assert_eq!(format_decimal(0, &mut d), b"0");
        assert_eq!(format_decimal(u64::MAX, &mut d), b"18446744073709551615");
        let mut h = [0u8; 16];
        assert_eq!(format_hex(0, &mut h), b"0");
        assert_eq!(format_hex(255, &mut h), b"ff");
        assert_eq!(format_hex(u64::MAX, &mut h), b"ffffffffffffffff");
    }

    #[test]
    fn continue_and_error() {
        let mut out = Vec::new();
        send_continue(&mut out);
        assert_eq!(out, b"HTTP/1.1 100 Continue\r\n\r\n");
        let mut out = Vec::new();
        send_error(
            RecvError::BodyTooLarge,
            &HttpDate::new(UNIX_EPOCH),
            &mut out,
        );
        let text = String::from_utf8(out).unwrap().replace(DATE, "");
        assert_eq!(
            text,
            "HTTP/1.1 413 Content Too Large\r\nContent-Type: text/plain; charset=utf-8\r\n\
             Content-Length: 23\r\nConnection: close\r\n\r\nrequest body too large\n"
        );
    }
}
