//! Request heads: parsed by `httparse`, kept as spans into the connection's input buffer.
//!
//! A [`RequestHead`] holds no bytes of its own, only offsets (spans) into the input that
//! [`ServerConn::recv`](crate::ServerConn::recv) was given when it returned
//! [`Event::Head`](crate::Event::Head). The head therefore needs no lifetime and no copy, and its
//! header table is reused from one request to the next, so parsing allocates nothing once the
//! table has grown to the largest head seen. A [`Request`] pairs the head with those bytes to
//! read it; [`Request::to_owned_head`] copies both for a handler that moves to another thread.

use std::{fmt, mem::MaybeUninit};

use crate::{
    BodyKind, Limits, RecvError,
    framing::{Framing, trim_ows},
    limits::MAX_HEADERS_CAP,
};

/// A request method (RFC 9110 §9). Methods are case-sensitive: `get` is [`Method::Other`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Method {
    /// GET
    #[default]
    Get,
    /// HEAD: answered like GET, without the body.
    Head,
    /// POST
    Post,
    /// PUT
    Put,
    /// DELETE
    Delete,
    /// CONNECT: its target is in authority-form.
    Connect,
    /// OPTIONS: its target may be `*`.
    Options,
    /// TRACE
    Trace,
    /// PATCH (RFC 5789)
    Patch,
    /// Any other method; [`Request::method_str`] has its name.
    Other,
}

impl Method {
    pub(crate) fn from_token(token: &str) -> Self {
        match token {
            "GET" => Self::Get,
            "HEAD" => Self::Head,
            "POST" => Self::Post,
            "PUT" => Self::Put,
            "DELETE" => Self::Delete,
            "CONNECT" => Self::Connect,
            "OPTIONS" => Self::Options,
            "TRACE" => Self::Trace,
            "PATCH" => Self::Patch,
            _ => Self::Other,
        }
    }
}

/// The HTTP version a request was parsed as.
///
/// `HTTP/1.2` and later minors are served as 1.1 (RFC 9110 §2.5); other majors are refused
/// with [`RecvError::VersionNotSupported`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Version {
    /// HTTP/1.0: persistent only when asked with `Connection: keep-alive`.
    Http10,
    /// HTTP/1.1: persistent unless `Connection: close`.
    #[default]
    Http11,
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Http10 => "HTTP/1.0",
            Self::Http11 => "HTTP/1.1",
        })
    }
}

/// Offsets of a run of bytes in the buffer the head was parsed from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Span {
    start: u32,
    end: u32,
}

impl Span {
    /// The span of `part`, a slice of the buffer whose first byte is at address `base`.
    /// `Limits::validate` keeps every head under 4 GiB, so the casts cannot truncate; an
    /// empty part (whose address need not lie in the buffer) is the empty span.
    fn of(base: usize, part: &[u8]) -> Self {
        if part.is_empty() {
            return Self::default();
        }
        let start = (part.as_ptr() as usize).wrapping_sub(base);
        Self {
            start: start as u32,
            end: start.wrapping_add(part.len()) as u32,
        }
    }

    /// The bytes in `buf`; empty if `buf` is not the buffer the span was taken from.
    fn get(self, buf: &[u8]) -> &[u8] {
        buf.get(self.start as usize..self.end as usize)
            .unwrap_or_default()
    }

    fn get_str(self, buf: &[u8]) -> &str {
        // Every span that is read as text was checked to be ASCII by the parser.
        std::str::from_utf8(self.get(buf)).unwrap_or_default()
    }

    fn is_empty(self) -> bool {
        self.start == self.end
    }
}

#[derive(Clone, Copy, Debug)]
struct HeaderSpan {
    name: Span,
    value: Span,
}

/// RFC 9112 §3.2: the four forms of request target.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum TargetForm {
    #[default]
    Origin,
    Absolute,
    Authority,
    Asterisk,
}

/// A parsed request head: method, target, version and header fields, plus the facts derived
/// from them (body framing, keep-alive, `Expect: 100-continue`).
///
/// The head refers to the bytes it was parsed from; read it through a [`Request`]
/// (see [`ServerConn::request`](crate::ServerConn::request)).
#[derive(Clone, Debug, Default)]
pub struct RequestHead {
    method: Method,
    method_span: Span,
    target: Span,
    form: TargetForm,
    path: Span,
    query: Option<Span>,
    authority: Option<Span>,
    version: Version,
    headers: Vec<HeaderSpan>,
    body: BodyKind,
    keep_alive: bool,
    expects_continue: bool,
    len: usize,
}

impl RequestHead {
    /// The method.
    pub fn method(&self) -> Method {
        self.method
    }

    /// The version the request is served as.
    pub fn version(&self) -> Version {
        self.version
    }

    /// How the body is framed.
    pub fn body(&self) -> BodyKind {
        self.body
    }

    /// Whether the connection may carry another request after this one (RFC 9112 §9.3):
    /// HTTP/1.1 unless `Connection: close`; HTTP/1.0 only with `Connection: keep-alive`.
    pub fn keep_alive(&self) -> bool {
        self.keep_alive
    }

    /// Whether the client waits for `100 Continue` before it sends the body: an HTTP/1.1
    /// request with `Expect: 100-continue` and a body. Send it with
    /// [`send_continue`](crate::send_continue) when ready to read the body, or answer with a
    /// final status instead (RFC 9110 §10.1.1). Expect is ignored on HTTP/1.0.
    pub fn expects_continue(&self) -> bool {
        self.expects_continue
    }

    /// Whether this is a HEAD request, whose response carries no body.
    pub fn is_head(&self) -> bool {
        self.method == Method::Head
    }

    /// Bytes of input the head took, counting any empty lines that preceded it.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Empties the head, as a new one, keeping the memory of its table of header fields.
    pub(crate) fn clear(&mut self) {
        let mut headers = std::mem::take(&mut self.headers);
        headers.clear();
        *self = Self {
            headers,
            ..Self::default()
        };
    }

    /// Whether the head is empty: true for a head the parser has not filled since it was made
    /// or reset.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Parses the head in `input[start..end]`, where `end` is just past the empty line that
    /// ends it and `input[..start]` holds only empty lines.
    pub(crate) fn parse(
        &mut self,
        input: &[u8],
        start: usize,
        end: usize,
        limits: &Limits,
    ) -> Result<(), RecvError> {
        let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS_CAP];
        let slots = &mut slots[..limits.max_headers.min(MAX_HEADERS_CAP)];
        let head = &input[start..end];
        let mut req = httparse::Request::new(&mut []);
        match req.parse_with_uninit_headers(head, slots) {
            Ok(httparse::Status::Complete(_)) => {
                self.fill(&req, head.as_ptr() as usize - start, end, limits)
            }
            Err(httparse::Error::Version) => {
                let at = later_minor_version(head)?;
                // Parse a copy that reads HTTP/1.1: the same length, so every span found in
                // the copy is valid in `input`. Rare, so the copy is fine.
                let mut copy = head.to_vec();
                copy[at + 7] = b'1';
                let mut slots =
                    [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS_CAP];
                let slots = &mut slots[..limits.max_headers.min(MAX_HEADERS_CAP)];
                let mut req = httparse::Request::new(&mut []);
                match req.parse_with_uninit_headers(&copy, slots) {
                    Ok(httparse::Status::Complete(_)) => {
                        self.fill(&req, copy.as_ptr() as usize - start, end, limits)
                    }
                    Ok(httparse::Status::Partial) => Err(RecvError::BadHeader),
                    Err(e) => Err(map_httparse(e)),
                }
            }
            // The caller found the empty line that ends the head, so a well-formed head is
            // complete; a partial result means a line httparse reads differently.
            Ok(httparse::Status::Partial) => Err(RecvError::BadHeader),
            Err(e) => Err(map_httparse(e)),
        }
    }

    /// Fills the head from a complete parse; `base` is the address of `input[0]`.
    fn fill(
        &mut self,
        req: &httparse::Request<'_, '_>,
        base: usize,
        end: usize,
        limits: &Limits,
    ) -> Result<(), RecvError> {
        // httparse fills every field of a complete request.
        let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
            return Err(RecvError::BadRequestLine);
        };
        self.len = end;
        self.method = Method::from_token(method);
        self.method_span = Span::of(base, method.as_bytes());
        self.target = Span::of(base, target.as_bytes());
        self.version = if minor == 0 {
            Version::Http10
        } else {
            Version::Http11
        };
        self.parse_target(target.as_bytes(), base)?;

        self.headers.clear();
        let mut host: Option<&[u8]> = None;
        let mut hosts = 0;
        let mut framing = Framing::default();
        let mut close = false;
        let mut keep_alive = false;
        let mut expect_continue = false;
        let mut expect_other = false;
        for h in req.headers.iter() {
            let name = h.name.as_bytes();
            self.headers.push(HeaderSpan {
                name: Span::of(base, name),
                value: Span::of(base, h.value),
            });
            if name.eq_ignore_ascii_case(b"host") {
                hosts += 1;
                host = Some(h.value);
            } else if name.eq_ignore_ascii_case(b"content-length") {
                framing.add_content_length(h.value);
            } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
                framing.add_transfer_encoding(h.value);
            } else if name.eq_ignore_ascii_case(b"connection") {
                for token in h.value.split(|&b| b == b',').map(trim_ows) {
                    close |= token.eq_ignore_ascii_case(b"close");
                    keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
                }
            } else if name.eq_ignore_ascii_case(b"expect") {
                if trim_ows(h.value).eq_ignore_ascii_case(b"100-continue") {
                    expect_continue = true;
                } else {
                    expect_other = true;
                }
            }
        }

        // RFC 9112 §3.2: a server MUST respond with 400 to an HTTP/1.1 request without Host,
        // to any request with more than one, and to one whose Host value is invalid.
        match (hosts, host) {
            (0, _) if self.version == Version::Http11 => return Err(RecvError::MissingHost),
            (0, _) => {}
            (1, Some(value)) if is_host(value) => {
                // RFC 9112 §3.2.2: the authority of an absolute-form target wins over Host.
                if self.authority.is_none() {
                    self.authority = Some(Span::of(base, value));
                }
            }
            (1, _) => return Err(RecvError::BadHost),
            _ => return Err(RecvError::DuplicateHost),
        }

        self.body = framing.finish(self.version, limits.max_body)?;
        self.keep_alive = match self.version {
            Version::Http11 => !close,
            Version::Http10 => keep_alive && !close,
        };
        // RFC 9110 §10.1.1: ignore Expect in an HTTP/1.0 request; answer 417 to an
        // expectation we cannot meet.
        self.expects_continue = false;
        if self.version == Version::Http11 {
            if expect_other {
                return Err(RecvError::ExpectationFailed);
            }
            let has_body = !matches!(self.body, BodyKind::None | BodyKind::Length(0));
            self.expects_continue = expect_continue && has_body;
        }
        Ok(())
    }

    /// Splits the target into path, query and authority by its form (RFC 9112 §3.2).
    fn parse_target(&mut self, target: &[u8], base: usize) -> Result<(), RecvError> {
        self.query = None;
        self.authority = None;
        let path_and_query = match (self.method, target) {
            (Method::Connect, _) => {
                // RFC 9112 §3.2.3: authority-form, only for CONNECT; RFC 9110 §9.3.6: with a
                // port, since CONNECT has no default one.
                if !is_host(target) || !has_port(target) {
                    return Err(RecvError::BadTarget);
                }
                self.form = TargetForm::Authority;
                self.authority = Some(Span::of(base, target));
                self.path = Span::of(base, &target[target.len()..]);
                return Ok(());
            }
            (_, [b'/', ..]) => {
                self.form = TargetForm::Origin;
                target
            }
            (Method::Options, b"*") => {
                // RFC 9112 §3.2.4: asterisk-form, only for a server-wide OPTIONS.
                self.form = TargetForm::Asterisk;
                self.path = Span::of(base, target);
                return Ok(());
            }
            _ => {
                // RFC 9112 §3.2.2: absolute-form, which a server MUST accept.
                let rest = strip_prefix_ignore_case(target, b"http://")
                    .or_else(|| strip_prefix_ignore_case(target, b"https://"))
                    .ok_or(RecvError::BadTarget)?;
                let authority_len = rest
                    .iter()
                    .position(|&b| b == b'/' || b == b'?')
                    .unwrap_or(rest.len());
                let authority = &rest[..authority_len];
                // RFC 9110 §4.2.1: an http(s) URI with an empty host is invalid; §4.2.4:
                // userinfo is an error (`@` is not in our host grammar).
                if authority.is_empty() || authority.starts_with(b":") || !is_host(authority) {
                    return Err(RecvError::BadTarget);
                }
                self.form = TargetForm::Absolute;
                self.authority = Some(Span::of(base, authority));
                &rest[authority_len..]
            }
        };
        match path_and_query.iter().position(|&b| b == b'?') {
            Some(q) => {
                self.path = Span::of(base, &path_and_query[..q]);
                self.query = Some(Span::of(base, &path_and_query[q + 1..]));
            }
            None => self.path = Span::of(base, path_and_query),
        }
        Ok(())
    }
}

/// Tells apart the versions httparse refuses, given a head whose request line it read up to
/// the version: `HTTP/1.2` and later minors are served as 1.1 (RFC 9110 §2.5), so their offset
/// in `head` is returned; another major is a 505; anything not `HTTP/DIGIT.DIGIT` is a 400. A
/// line that ends in `HTTP/1.0` or `HTTP/1.1` and still failed has a malformed target (e.g.
/// a space in it).
pub(crate) fn later_minor_version(head: &[u8]) -> Result<usize, RecvError> {
    let line_end = head.iter().position(|&b| b == b'\n').unwrap_or(head.len());
    let line = &head[..line_end];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let at = line.len().saturating_sub(8);
    match line.get(at.wrapping_sub(1)..) {
        Some([b' ', b'H', b'T', b'T', b'P', b'/', major, b'.', minor])
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            match (major, minor) {
                (b'1', b'0' | b'1') => Err(RecvError::BadRequestLine),
                (b'1', _) => Ok(at),
                _ => Err(RecvError::VersionNotSupported),
            }
        }
        _ => Err(RecvError::BadVersion),
    }
}

fn map_httparse(e: httparse::Error) -> RecvError {
    match e {
        httparse::Error::HeaderName | httparse::Error::HeaderValue | httparse::Error::NewLine => {
            RecvError::BadHeader
        }
        httparse::Error::TooManyHeaders => RecvError::TooManyHeaders,
        httparse::Error::Version => RecvError::BadVersion,
        _ => RecvError::BadRequestLine,
    }
}

fn strip_prefix_ignore_case<'a>(s: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// `uri-host [ ":" port ]` (RFC 9112 §3.2, RFC 3986 §3.2.2). An empty value is valid: a
/// client sends an empty Host when the target URI has no authority.
fn is_host(value: &[u8]) -> bool {
    let (host, port) = if let [b'[', rest @ ..] = value {
        // IP-literal: IPv6address or IPvFuture, checked for its alphabet only.
        let Some(close) = rest.iter().position(|&b| b == b']') else {
            return false;
        };
        let literal = &rest[..close];
        if literal.is_empty()
            || !literal
                .iter()
                .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.' || is_reg_name_char(b))
        {
            return false;
        }
        (&[][..], &rest[close + 1..])
    } else {
        let colon = value.iter().position(|&b| b == b':').unwrap_or(value.len());
        (&value[..colon], &value[colon..])
    };
    let port_ok = match port {
        [] => true,
        [b':', digits @ ..] => digits.iter().all(u8::is_ascii_digit),
        _ => false,
    };
    port_ok && is_reg_name(host)
}

/// Whether a valid `host [ ":" port ]` ends in a non-empty port.
fn has_port(authority: &[u8]) -> bool {
    let host_end = match authority {
        [b'[', ..] => authority
            .iter()
            .position(|&b| b == b']')
            .map_or(0, |i| i + 1),
        _ => authority
            .iter()
            .position(|&b| b == b':')
            .unwrap_or(authority.len()),
    };
    match &authority[host_end..] {
        [b':', port @ ..] => !port.is_empty() && host_end > 0,
        _ => false,
    }
}

/// `reg-name = *( unreserved / pct-encoded / sub-delims )`, which covers IPv4 addresses too.
fn is_reg_name(mut name: &[u8]) -> bool {
    while let [b, rest @ ..] = name {
        if *b == b'%' {
            let [h1, h2, rest @ ..] = rest else {
                return false;
            };
            if !h1.is_ascii_hexdigit() || !h2.is_ascii_hexdigit() {
                return false;
            }
            name = rest;
        } else if is_reg_name_char(*b) {
            name = rest;
        } else {
            return false;
        }
    }
    true
}

/// unreserved / sub-delims (RFC 3986 §2.2, §2.3).
fn is_reg_name_char(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.'
                | b'_'
                | b'~'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
        )
}

/// A parsed request: a [`RequestHead`] read against the bytes it was parsed from.
///
/// Every accessor is a slice of those bytes: nothing is copied.
///
/// # Examples
///
/// ```
/// use rtserve_protocol::{Event, Limits, Method, ServerConn};
///
/// let input = b"GET /search?q=rust HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n";
/// let mut conn = ServerConn::new(Limits::default());
/// let (used, event) = conn.recv(input).unwrap();
/// assert_eq!(event, Event::Head);
///
/// let req = conn.request(input);
/// assert_eq!(req.method(), Method::Get);
/// assert_eq!(req.path(), "/search");
/// assert_eq!(req.query(), Some("q=rust"));
/// assert_eq!(req.authority(), Some("example.com"));
/// assert_eq!(req.header("accept"), Some(&b"*/*"[..]));
/// assert_eq!(used, input.len());
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    head: &'a RequestHead,
    buf: &'a [u8],
}

impl<'a> Request<'a> {
    /// Reads `head` against `buf`, which must start where the input that produced the head
    /// started. With any other buffer the accessors return meaningless (or empty) values, but
    /// they never panic.
    pub fn new(head: &'a RequestHead, buf: &'a [u8]) -> Self {
        Self { head, buf }
    }

    /// The parsed head and its derived facts.
    pub fn head(&self) -> &'a RequestHead {
        self.head
    }

    /// The method.
    pub fn method(&self) -> Method {
        self.head.method
    }

    /// The method's name as sent, e.g. `"GET"` or an extension method.
    pub fn method_str(&self) -> &'a str {
        self.head.method_span.get_str(self.buf)
    }

    /// The request target as sent.
    pub fn target(&self) -> &'a str {
        self.head.target.get_str(self.buf)
    }

    /// The path: of an origin-form target, the part before `?`; of an absolute-form target,
    /// the path after the authority (`/` when there is none); `*` for asterisk-form; empty for
    /// CONNECT's authority-form.
    pub fn path(&self) -> &'a str {
        if self.head.form == TargetForm::Absolute && self.head.path.is_empty() {
            return "/";
        }
        self.head.path.get_str(self.buf)
    }

    /// The query, without its `?`, if the target has one.
    pub fn query(&self) -> Option<&'a str> {
        self.head.query.map(|q| q.get_str(self.buf))
    }

    /// The authority the request is for: from an absolute-form target if it has one
    /// (RFC 9112 §3.2.2), else the Host header; `None` for HTTP/1.0 without Host.
    pub fn authority(&self) -> Option<&'a str> {
        self.head.authority.map(|a| a.get_str(self.buf))
    }

    /// The version the request is served as.
    pub fn version(&self) -> Version {
        self.head.version
    }

    /// The value of the first header field named `name`, compared without regard to case.
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        self.headers_named(name).next()
    }

    /// The values of every header field named `name`, in order.
    pub fn headers_named<'n>(&self, name: &'n str) -> impl Iterator<Item = &'a [u8]> + use<'a, 'n> {
        let buf = self.buf;
        self.head
            .headers
            .iter()
            .filter(move |h| h.name.get(buf).eq_ignore_ascii_case(name.as_bytes()))
            .map(move |h| h.value.get(buf))
    }

    /// Every header field as (name as sent, value), in order.
    pub fn headers(&self) -> impl ExactSizeIterator<Item = (&'a str, &'a [u8])> + use<'a> {
        let buf = self.buf;
        self.head
            .headers
            .iter()
            .map(move |h| (h.name.get_str(buf), h.value.get(buf)))
    }

    /// A copy of the head and its bytes that owns its data, for a handler that hands the
    /// request to another thread. Allocates twice.
    pub fn to_owned_head(&self) -> OwnedHead {
        let len = self.head.len.min(self.buf.len());
        OwnedHead {
            head: self.head.clone(),
            bytes: self.buf[..len].into(),
        }
    }
}

/// A request head that owns its bytes: `Send`, `'static`, and readable as a [`Request`].
#[derive(Clone, Debug)]
pub struct OwnedHead {
    head: RequestHead,
    bytes: Box<[u8]>,
}

impl OwnedHead {
    /// The request, read from the owned bytes.
    pub fn request(&self) -> Request<'_> {
        Request::new(&self.head, &self.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Event, ServerConn};

    /// The head of `input`, or the error it gets.
    fn parse(input: &str) -> Result<(RequestHead, String), RecvError> {
        let mut conn = ServerConn::new(Limits::default());
        match conn.recv(input.as_bytes())? {
            (_, Event::Head) => Ok((conn.head().clone(), input.to_owned())),
            other => panic!("{input:?}: {other:?}"),
        }
    }

    #[test]
    fn rejections() {
        use RecvError::*;
        let cases = [
            // RFC 9112 §5.2: obs-fold in a request is rejected.
            ("GET / HTTP/1.1\r\nHost: x\r\nA: b\r\n c\r\n\r\n", BadHeader),
            // RFC 9112 §5.1: whitespace between name and colon.
            ("GET / HTTP/1.1\r\nHost : x\r\n\r\n", BadHeader),
            ("GET / HTTP/1.1\r\nHost: x\r\nA : b\r\n\r\n", BadHeader),
            ("GET / HTTP/1.1\r\nHost: x\r\n: b\r\n\r\n", BadHeader),
            ("GET / HTTP/1.1\r\n\r\n", MissingHost),
            (
                "GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n",
                DuplicateHost,
            ),
            (
                "GET / HTTP/1.0\r\nHost: a\r\nhost: b\r\n\r\n",
                DuplicateHost,
            ),
            ("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", BadHost),
            ("GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", BadHost),
            ("GET / HTTP/2.0\r\nHost: a\r\n\r\n", VersionNotSupported),
            ("GET / HTTP/0.9\r\nHost: a\r\n\r\n", VersionNotSupported),
            ("GET / HTTP/1.10\r\nHost: a\r\n\r\n", BadRequestLine),
            ("GET / HTTP/1\r\nHost: a\r\n\r\n", BadVersion),
            ("GET / http/1.1\r\nHost: a\r\n\r\n", BadVersion),
            ("GET /\r\nHost: a\r\n\r\n", BadRequestLine),
            ("GET a HTTP/1.1\r\nHost: a\r\n\r\n", BadTarget),
            ("GET * HTTP/1.1\r\nHost: a\r\n\r\n", BadTarget),
            ("GET ftp://a/ HTTP/1.1\r\nHost: a\r\n\r\n", BadTarget),
            ("GET http:///x HTTP/1.1\r\nHost: a\r\n\r\n", BadTarget),
            ("GET http://u@a/x HTTP/1.1\r\nHost: a\r\n\r\n", BadTarget),
            ("CONNECT /x HTTP/1.1\r\nHost: a\r\n\r\n", BadTarget),
            ("CONNECT a HTTP/1.1\r\nHost: a\r\n\r\n", BadTarget),
            (
                "GET / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\n\r\n",
                ExpectationFailed,
            ),
        ];
        for (input, want) in cases {
            assert_eq!(parse(input).err(), Some(want), "{input:?}");
        }
    }

    #[test]
    fn targets() {
        // (input, path, query, authority)
        let cases = [
            (
                "GET /a/b?c=d&e HTTP/1.1\r\nHost: h\r\n\r\n",
                "/a/b",
                Some("c=d&e"),
                Some("h"),
            ),
            (
                "GET /? HTTP/1.1\r\nHost: h:81\r\n\r\n",
                "/",
                Some(""),
                Some("h:81"),
            ),
            // RFC 9112 §3.2.2: the target's authority wins over Host.
            (
                "GET http://a.example:8080/p?q HTTP/1.1\r\nHost: b\r\n\r\n",
                "/p",
                Some("q"),
                Some("a.example:8080"),
            ),
            (
                "GET HTTPS://a HTTP/1.1\r\nHost: b\r\n\r\n",
                "/",
                None,
                Some("a"),
            ),
            (
                "GET http://a?x HTTP/1.1\r\nHost: \r\n\r\n",
                "/",
                Some("x"),
                Some("a"),
            ),
            (
                "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n",
                "*",
                None,
                Some("h"),
            ),
            (
                "CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n",
                "",
                None,
                Some("a.example:443"),
            ),
            ("GET / HTTP/1.0\r\n\r\n", "/", None, None),
            ("GET / HTTP/1.1\r\nHost:\r\n\r\n", "/", None, Some("")),
        ];
        for (input, path, query, authority) in cases {
            let (head, buf) = parse(input).unwrap();
            let req = Request::new(&head, buf.as_bytes());
            assert_eq!(
                (req.path(), req.query(), req.authority()),
                (path, query, authority),
                "{input:?}"
            );
        }
    }

    #[test]
    fn derived_facts() {
        // (input, version, keep-alive, expects 100-continue, HEAD)
        let cases = [
            (
                "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
                Version::Http11,
                true,
                false,
                false,
            ),
            (
                "GET / HTTP/1.1\r\nHost: a\r\nConnection: Close\r\n\r\n",
                Version::Http11,
                false,
                false,
                false,
            ),
            (
                "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, close\r\n\r\n",
                Version::Http11,
                false,
                false,
                false,
            ),
            (
                "GET / HTTP/1.0\r\n\r\n",
                Version::Http10,
                false,
                false,
                false,
            ),
            (
                "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n",
                Version::Http10,
                true,
                false,
                false,
            ),
            (
                "GET / HTTP/1.0\r\nConnection: te, keep-alive\r\n\r\n",
                Version::Http10,
                true,
                false,
                false,
            ),
            (
                "GET / HTTP/1.0\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n",
                Version::Http10,
                false,
                false,
                false,
            ),
            // RFC 9110 §2.5: a later 1.x minor is served as 1.1.
            (
                "GET / HTTP/1.2\r\nHost: a\r\n\r\n",
                Version::Http11,
                true,
                false,
                false,
            ),
            (
                "HEAD / HTTP/1.9\r\nHost: a\r\n\r\n",
                Version::Http11,
                true,
                false,
                true,
            ),
            (
                "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nExpect: 100-Continue\r\n\r\n",
                Version::Http11,
                true,
                true,
                false,
            ),
            // No body to wait for: nothing to continue.
            (
                "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nExpect: 100-continue\r\n\r\n",
                Version::Http11,
                true,
                false,
                false,
            ),
            // RFC 9110 §10.1.1: Expect is ignored on HTTP/1.0, even one we could not meet.
            (
                "POST / HTTP/1.0\r\nContent-Length: 1\r\nExpect: 100-continue\r\n\r\n",
                Version::Http10,
                false,
                false,
                false,
            ),
            (
                "POST / HTTP/1.0\r\nContent-Length: 1\r\nExpect: x\r\n\r\n",
                Version::Http10,
                false,
                false,
                false,
            ),
        ];
        for (input, version, keep_alive, expects_continue, is_head) in cases {
            let (head, _) = parse(input).unwrap();
            assert_eq!(
                (
                    head.version(),
                    head.keep_alive(),
                    head.expects_continue(),
                    head.is_head()
                ),
                (version, keep_alive, expects_continue, is_head),
                "{input:?}"
            );
        }
    }

    #[test]
    fn headers_by_name() {
        let (head, buf) =
            parse("GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\nx-a: 2\r\nB:\r\n\r\n").unwrap();
        let req = Request::new(&head, buf.as_bytes());
        assert_eq!(req.header("X-a"), Some(&b"1"[..]));
        assert_eq!(
            req.headers_named("x-A").collect::<Vec<_>>(),
            [&b"1"[..], b"2"]
        );
        assert_eq!(req.header("b"), Some(&b""[..]));
        assert_eq!(req.header("c"), None);
        assert_eq!(req.headers().len(), 4);
        // Another buffer gives empty values, not a panic.
        let other = Request::new(&head, b"ab");
        assert_eq!(other.path(), "");
        let owned = req.to_owned_head();
        drop(buf);
        assert_eq!(owned.request().header("x-a"), Some(&b"1"[..]));
    }

    #[test]
    fn host_grammar() {
        for ok in [
            "",
            "example.com",
            "example.com:80",
            "example.com:",
            "127.0.0.1:8080",
            "[::1]",
            "[::1]:443",
            "a-b_c~d.e",
            "xn--bcher-kva.example",
            "%41b",
            "[v1.fe80::a+en1]",
        ] {
            assert!(is_host(ok.as_bytes()), "{ok:?} should be valid");
        }
        for bad in [
            "exa mple.com",
            "user@example.com",
            "example.com:80:90",
            "example.com:8o",
            "[::1",
            "[]",
            "[::1]x",
            "%4",
            "%zz",
            "exa/mple",
            "a\tb",
        ] {
            assert!(!is_host(bad.as_bytes()), "{bad:?} should be invalid");
        }
    }
}
