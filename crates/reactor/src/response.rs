//! What a handler answers with: a [`Response`] (status, headers, body), made without
//! allocating where its parts are static.

use std::borrow::Cow;

use rtserve_protocol::StatusCode;

/// A response body.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Body {
    /// No body.
    #[default]
    Empty,
    /// Bytes that live forever: no allocation, no copy until the socket write.
    Static(&'static [u8]),
    /// Bytes the response owns.
    Owned(Vec<u8>),
}

impl Body {
    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Self::Empty => &[],
            Self::Static(bytes) => bytes,
            Self::Owned(bytes) => bytes,
        }
    }
}

impl From<&'static [u8]> for Body {
    fn from(bytes: &'static [u8]) -> Self {
        Self::Static(bytes)
    }
}

impl From<&'static str> for Body {
    fn from(text: &'static str) -> Self {
        Self::Static(text.as_bytes())
    }
}

impl From<Vec<u8>> for Body {
    fn from(bytes: Vec<u8>) -> Self {
        Self::Owned(bytes)
    }
}

impl From<String> for Body {
    fn from(text: String) -> Self {
        Self::Owned(text.into_bytes())
    }
}

/// A header list that lives forever, for responses that need no allocation.
pub type StaticHeaders = &'static [(&'static str, &'static [u8])];

/// A response: status, headers and body. The reactor writes `Date`, `Content-Length` and
/// `Connection` itself.
///
/// # Examples
///
/// ```
/// use rtserve_reactor::{Response, StatusCode};
///
/// // No allocation: static headers and body.
/// let hello = Response::new(StatusCode::OK)
///     .with_static_headers(&[("Content-Type", b"text/plain")])
///     .with_body("hello\n");
/// assert_eq!(hello.body().as_bytes(), b"hello\n");
///
/// let created = Response::new(StatusCode::CREATED)
///     .with_header("Location", format!("/items/{}", 42))
///     .with_body(String::from("made"));
/// assert_eq!(created.status(), StatusCode::CREATED);
/// ```
#[derive(Clone, Debug)]
pub struct Response {
    status: StatusCode,
    static_headers: StaticHeaders,
    headers: Vec<(Cow<'static, str>, Cow<'static, [u8]>)>,
    body: Body,
}

impl Response {
    /// An empty response with this status.
    pub fn new(status: StatusCode) -> Self {
        Self {
            status,
            static_headers: &[],
            headers: Vec::new(),
            body: Body::Empty,
        }
    }

    /// A `text/plain` response.
    pub fn text(status: StatusCode, body: impl Into<Body>) -> Self {
        Self::new(status)
            .with_static_headers(&[("Content-Type", b"text/plain; charset=utf-8")])
            .with_body(body)
    }

    /// Sets headers that live forever; they are written before those added with
    /// [`with_header`](Self::with_header).
    ///
    /// The list replaces the static headers set before, among them the `Content-Type` of
    /// [`text`](Self::text) and the `Cache-Control` that [`no_store`](Self::no_store) sets on a
    /// response without static headers; headers added with `with_header` stay.
    #[must_use]
    pub fn with_static_headers(mut self, headers: StaticHeaders) -> Self {
        self.static_headers = headers;
        self
    }

    /// Adds a header, after every header added before (a name added twice is kept twice).
    /// The name must be a token and the value free of control bytes; an invalid header, or one
    /// the reactor writes itself (Content-Length, Transfer-Encoding, Connection, Date), turns
    /// the response into a 500.
    #[must_use]
    pub fn with_header(
        mut self,
        name: impl Into<Cow<'static, str>>,
        value: impl Into<HeaderValue>,
    ) -> Self {
        self.headers.push((name.into(), value.into().0));
        self
    }

    /// Adds `Cache-Control: no-store`: no cache may keep the response (RFC 9111 §5.2.2.5).
    /// Dynamic answers to GET (a score, a health check, metrics) want it, since any cache may
    /// otherwise store them and give them a freshness of its own choosing (RFC 9111 §4.2.2).
    /// A POST response is not cacheable without explicit freshness and needs none.
    ///
    /// On a response without static headers the header becomes its static list, which a later
    /// [`with_static_headers`](Self::with_static_headers) replaces: call `no_store` after it.
    ///
    /// # Examples
    ///
    /// ```
    /// use rtserve_reactor::{Response, StatusCode};
    ///
    /// let response = Response::text(StatusCode::OK, "ok\n").no_store();
    /// assert!(response.headers().any(|h| h == ("Cache-Control", &b"no-store"[..])));
    /// ```
    #[must_use]
    pub fn no_store(self) -> Self {
        if self.static_headers.is_empty() {
            // No allocation for the common case.
            self.with_static_headers(&[("Cache-Control", b"no-store")])
        } else {
            self.with_header("Cache-Control", "no-store")
        }
    }

    /// Sets the body.
    #[must_use]
    pub fn with_body(mut self, body: impl Into<Body>) -> Self {
        self.body = body.into();
        self
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The body.
    pub fn body(&self) -> &Body {
        &self.body
    }

    /// Every header, static ones first.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &[u8])> {
        let owned = self.headers.iter().map(|(n, v)| (n.as_ref(), v.as_ref()));
        self.static_headers.iter().copied().chain(owned)
    }
}

/// A header value, from text or bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeaderValue(Cow<'static, [u8]>);

impl From<&'static str> for HeaderValue {
    fn from(value: &'static str) -> Self {
        Self(Cow::Borrowed(value.as_bytes()))
    }
}

impl From<&'static [u8]> for HeaderValue {
    fn from(value: &'static [u8]) -> Self {
        Self(Cow::Borrowed(value))
    }
}

impl From<String> for HeaderValue {
    fn from(value: String) -> Self {
        Self(Cow::Owned(value.into_bytes()))
    }
}

impl From<Vec<u8>> for HeaderValue {
    fn from(value: Vec<u8>) -> Self {
        Self(Cow::Owned(value))
    }
}
