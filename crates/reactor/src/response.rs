//! What a handler answers with: a [`Response`] (status, headers, body), made without
//! allocating where its parts are static.

use std::borrow::Cow;

use rtserve_protocol::StatusCode;

use crate::{ServerError, answers::Builtin};

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
/// Its headers come in three parts, each set apart so that setting one never drops
/// another: the content type ([`text`](Self::text), [`with_content_type`](Self::with_content_type)),
/// a static list ([`with_static_headers`](Self::with_static_headers)) and headers added one by
/// one ([`with_header`](Self::with_header)); [`no_store`](Self::no_store) is a fourth.
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
///
/// // A static list set after `text` keeps its Content-Type.
/// let shed = Response::text(StatusCode::SERVICE_UNAVAILABLE, "busy\n")
///     .with_static_headers(&[("Retry-After", b"1")]);
/// assert!(shed.headers().any(|(name, _)| name == "Content-Type"));
/// ```
#[derive(Clone, Debug)]
pub struct Response {
    status: StatusCode,
    /// The `Content-Type`, kept apart from the static list so that a list set after it does
    /// not drop it.
    content_type: Option<Cow<'static, [u8]>>,
    static_headers: StaticHeaders,
    headers: Vec<(Cow<'static, str>, Cow<'static, [u8]>)>,
    /// `Cache-Control: no-store`, written after every other header.
    no_store: bool,
    body: Body,
    /// Set on the server's own error answers alone: which one this is, for the
    /// [`ErrorAnswers`](crate::ErrorAnswers) hook to shape.
    builtin: Option<Builtin>,
}

impl Response {
    /// An empty response with this status.
    pub fn new(status: StatusCode) -> Self {
        Self {
            status,
            content_type: None,
            static_headers: &[],
            headers: Vec::new(),
            no_store: false,
            body: Body::Empty,
            builtin: None,
        }
    }

    /// A `text/plain` response.
    pub fn text(status: StatusCode, body: impl Into<Body>) -> Self {
        Self::new(status)
            .with_content_type("text/plain; charset=utf-8")
            .with_body(body)
    }

    /// Sets the `Content-Type`, in place of one set before (by [`text`](Self::text),
    /// [`json`](Self::json), this method, or a static list that names one). It is written
    /// first.
    ///
    /// # Examples
    ///
    /// ```
    /// use rtserve_reactor::{Response, StatusCode};
    ///
    /// let html = Response::text(StatusCode::OK, "<p>hi</p>").with_content_type("text/html");
    /// assert_eq!(html.headers().collect::<Vec<_>>(), [("Content-Type", &b"text/html"[..])]);
    /// ```
    #[must_use]
    pub fn with_content_type(mut self, value: impl Into<HeaderValue>) -> Self {
        self.content_type = Some(value.into().0);
        self
    }

    /// Sets headers that live forever; they are written after the content type and before
    /// those added with [`with_header`](Self::with_header).
    ///
    /// The list replaces the static list set before, and nothing else: the content type of
    /// [`text`](Self::text), the header of [`no_store`](Self::no_store) and the headers added
    /// with `with_header` stay. A `Content-Type` in the list takes the place of the content
    /// type set before.
    #[must_use]
    pub fn with_static_headers(mut self, headers: StaticHeaders) -> Self {
        if headers.iter().any(|(name, _)| is_content_type(name)) {
            self.content_type = None;
        }
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
    /// The header is written after every other, whatever was set before or after: it costs
    /// no allocation.
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
    pub fn no_store(mut self) -> Self {
        self.no_store = true;
        self
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

    /// Every header, in the order written: the content type, the static list, those added
    /// one by one, then `Cache-Control: no-store` if asked for.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &[u8])> {
        let content_type = self.content_type.as_deref().map(|v| ("Content-Type", v));
        let owned = self.headers.iter().map(|(n, v)| (n.as_ref(), v.as_ref()));
        let no_store = self.no_store.then_some(("Cache-Control", &b"no-store"[..]));
        // A static Content-Type set before `with_content_type` gave way to it.
        let typed = content_type.is_some();
        let listed = self.static_headers.iter().copied();
        content_type
            .into_iter()
            .chain(listed.filter(move |&(name, _)| !(typed && is_content_type(name))))
            .chain(owned)
            .chain(no_store)
    }

    /// Which of the server's own error answers this is, if it is one (see
    /// [`ErrorAnswers`](crate::ErrorAnswers)): `None` for every response an application
    /// makes.
    pub fn server_error(&self) -> Option<ServerError> {
        self.builtin.map(Builtin::error)
    }

    /// Marks this response as the server's own answer `which`.
    pub(crate) fn builtin(mut self, which: Builtin) -> Self {
        self.builtin = Some(which);
        self
    }

    /// `shaped`, the hook's answer in place of this built-in one, with this one's headers
    /// but its content type (`Allow`, `Retry-After`, `rtserve-shed`) added: they belong to
    /// the answer whatever its body says.
    pub(crate) fn carry_headers_to(&self, mut shaped: Self) -> Self {
        for &(name, value) in self.static_headers {
            shaped
                .headers
                .push((Cow::Borrowed(name), Cow::Borrowed(value)));
        }
        shaped.headers.extend(self.headers.iter().cloned());
        shaped.no_store |= self.no_store;
        shaped
    }
}

/// Whether a header name is `Content-Type`, in any case (RFC 9110 §5.1).
fn is_content_type(name: &str) -> bool {
    name.eq_ignore_ascii_case("content-type")
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The headers as `headers` yields them, in order.
    fn headers(response: &Response) -> Vec<(&str, &[u8])> {
        response.headers().collect()
    }

    #[test]
    fn body_as_bytes_gives_each_variant_s_bytes() {
        assert_eq!(Body::Empty.as_bytes(), b"");
        assert_eq!(Body::default().as_bytes(), b"");
        assert_eq!(Body::Static(b"static").as_bytes(), b"static");
        assert_eq!(Body::Owned(b"owned".to_vec()).as_bytes(), b"owned");
    }

    #[test]
    fn body_from_text_and_bytes() {
        // Borrowed forever: no copy.
        assert_eq!(Body::from("text"), Body::Static(b"text"));
        assert_eq!(Body::from(&b"bytes"[..]), Body::Static(b"bytes"));
        // Owned: moved in.
        assert_eq!(
            Body::from(String::from("text")),
            Body::Owned(b"text".to_vec())
        );
        assert_eq!(
            Body::from(b"bytes".to_vec()),
            Body::Owned(b"bytes".to_vec())
        );
    }

    #[test]
    fn new_sets_the_status_and_nothing_else() {
        let response = Response::new(StatusCode::NO_CONTENT);
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
        assert!(headers(&response).is_empty());
        assert_eq!(response.body(), &Body::Empty);
    }

    #[test]
    fn text_sets_the_status_content_type_and_body() {
        let response = Response::text(StatusCode::NOT_FOUND, "no such item\n");
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(
            headers(&response),
            [("Content-Type", &b"text/plain; charset=utf-8"[..])]
        );
        assert_eq!(response.body().as_bytes(), b"no such item\n");
    }

    #[test]
    fn with_static_headers_replaces_the_static_list_alone() {
        // Text's Content-Type is kept apart: a later list adds to it.
        let response = Response::text(StatusCode::SERVICE_UNAVAILABLE, "x")
            .with_static_headers(&[("rtserve-shed", b"queue-full")]);
        assert_eq!(
            headers(&response),
            [
                ("Content-Type", &b"text/plain; charset=utf-8"[..]),
                ("rtserve-shed", b"queue-full"),
            ]
        );

        // A list replaces the list set before.
        let response = Response::new(StatusCode::OK)
            .with_static_headers(&[("A", b"1"), ("B", b"2")])
            .with_static_headers(&[("C", b"3")]);
        assert_eq!(headers(&response), [("C", &b"3"[..])]);
    }

    #[test]
    fn the_content_type_set_last_is_the_one_written() {
        // A list naming Content-Type (in any case) takes the place of text's.
        let response = Response::text(StatusCode::OK, "x")
            .with_static_headers(&[("content-type", b"application/json"), ("A", b"1")]);
        assert_eq!(
            headers(&response),
            [("content-type", &b"application/json"[..]), ("A", b"1")]
        );
        // And `with_content_type` takes the place of the list's.
        let response = Response::new(StatusCode::OK)
            .with_static_headers(&[("Content-Type", b"text/html"), ("A", b"1")])
            .with_content_type(String::from("image/png"));
        assert_eq!(
            headers(&response),
            [("Content-Type", &b"image/png"[..]), ("A", b"1")]
        );
        let response = Response::text(StatusCode::OK, "x").with_content_type("text/csv");
        assert_eq!(headers(&response), [("Content-Type", &b"text/csv"[..])]);
    }

    #[test]
    fn with_static_headers_keeps_the_headers_added_before() {
        let response = Response::new(StatusCode::OK)
            .with_header("Added", "before")
            .with_static_headers(&[("Static", b"1")]);
        assert_eq!(
            headers(&response),
            [("Static", &b"1"[..]), ("Added", &b"before"[..])]
        );
    }

    #[test]
    fn with_header_appends_and_keeps_a_name_added_twice() {
        let response = Response::text(StatusCode::OK, "x")
            .with_header("Vary", "Accept")
            .with_header("Set-Cookie", String::from("a=1"))
            .with_header("Set-Cookie", b"b=2".to_vec())
            .with_header(String::from("X-Bytes"), &b"\x01raw"[..]);
        assert_eq!(
            headers(&response),
            [
                ("Content-Type", &b"text/plain; charset=utf-8"[..]),
                ("Vary", b"Accept"),
                ("Set-Cookie", b"a=1"),
                ("Set-Cookie", b"b=2"),
                // Kept as given: headers are checked when the response is written.
                ("X-Bytes", b"\x01raw"),
            ]
        );
    }

    #[test]
    fn no_store_alone_is_its_header() {
        let response = Response::new(StatusCode::OK).no_store();
        assert_eq!(headers(&response), [("Cache-Control", &b"no-store"[..])]);
    }

    #[test]
    fn no_store_is_written_after_every_other_header() {
        let response = Response::text(StatusCode::OK, "x")
            .no_store()
            .with_header("Vary", "Accept");
        assert_eq!(
            headers(&response),
            [
                ("Content-Type", &b"text/plain; charset=utf-8"[..]),
                ("Vary", b"Accept"),
                ("Cache-Control", b"no-store"),
            ]
        );
    }

    #[test]
    fn static_headers_set_after_no_store_keep_its_header() {
        // The order of the calls does not matter: neither drops the other.
        let after = Response::new(StatusCode::OK)
            .no_store()
            .with_static_headers(&[("Content-Type", b"text/html")]);
        let before = Response::new(StatusCode::OK)
            .with_static_headers(&[("Content-Type", b"text/html")])
            .no_store();
        for response in [after, before] {
            assert_eq!(
                headers(&response),
                [
                    ("Content-Type", &b"text/html"[..]),
                    ("Cache-Control", b"no-store"),
                ]
            );
        }
    }

    #[test]
    fn with_body_replaces_the_body_and_nothing_else() {
        let response = Response::text(StatusCode::OK, "first").with_body(b"second".to_vec());
        assert_eq!(response.body(), &Body::Owned(b"second".to_vec()));
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            headers(&response),
            [("Content-Type", &b"text/plain; charset=utf-8"[..])]
        );
        let emptied = response.with_body(Body::Empty);
        assert_eq!(emptied.body().as_bytes(), b"");
    }

    #[test]
    fn headers_yield_static_ones_first_then_added_ones_in_order() {
        let response = Response::new(StatusCode::OK)
            .with_header("Third", "3")
            .with_static_headers(&[("First", b"1"), ("Second", b"2")])
            .with_header("Fourth", "4");
        let names: Vec<&str> = response.headers().map(|(name, _)| name).collect();
        assert_eq!(names, ["First", "Second", "Third", "Fourth"]);
    }
}
