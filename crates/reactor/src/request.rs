//! A request as a handler sees it: the head, the body and what the server tells of it, all
//! borrowed from the reactor's buffers.

use std::{
    borrow::Cow,
    cell::Cell,
    fmt,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use rtserve_protocol::{Method, OwnedHead, Version};

#[cfg(doc)]
use crate::{Handler, Router};
use crate::{
    Reply, Response,
    deadline::deadline_after,
    stats::{Stats, StatsRegistry},
};

/// A complete request, body included, as a handler sees it.
///
/// Everything borrows the reactor's buffers: nothing was copied to make it. A handler that
/// needs the request after it returns (on another thread, say) copies what it needs, e.g. with
/// [`Request::to_owned_head`] and [`Request::body`]`.to_vec()`.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    inner: rtserve_protocol::Request<'a>,
    body: &'a [u8],
    reactor: usize,
    received: Instant,
    /// The caller's deadline (see [caller deadlines](crate#caller-deadlines)): no route may
    /// give the request a later one.
    cap: Option<Instant>,
    server: &'a ServerView,
    filing: &'a Filing,
    /// The path parameters of the route that matched, set by [`Router`].
    params: Option<&'a matchit::Params<'a, 'a>>,
}

/// What the handler decides of the request it answers, filed for the server to read after
/// it returns: the route it is counted under ([`Request::set_route`]), and its deadline
/// ([`with_deadline`](crate::with_deadline)), which the request's jobs and futures inherit.
#[derive(Debug)]
pub(crate) struct Filing {
    pub(crate) route: Cell<usize>,
    pub(crate) deadline: Cell<Instant>,
}

impl Filing {
    /// A filing under route `route`, with no deadline yet (each request sets its own).
    pub(crate) fn new(route: usize) -> Self {
        Self {
            route: Cell::new(route),
            deadline: Cell::new(Instant::now()),
        }
    }
}

/// What a request can see of the server it arrived at.
#[derive(Debug)]
pub(crate) struct ServerView {
    pub(crate) draining: Arc<AtomicBool>,
    pub(crate) stats: Arc<StatsRegistry>,
}

impl<'a> Request<'a> {
    pub(crate) fn new(
        inner: rtserve_protocol::Request<'a>,
        body: &'a [u8],
        reactor: usize,
        (received, deadline): (Instant, Instant),
        server: &'a ServerView,
        filing: &'a Filing,
    ) -> Self {
        filing.deadline.set(deadline);
        Self {
            inner,
            body,
            reactor,
            received,
            cap: None,
            server,
            filing,
            params: None,
        }
    }

    /// The same request under its caller's deadline, if it stated one: its deadline is the
    /// earlier of the two, now and whatever its route makes it.
    pub(crate) fn capped(self, cap: Option<Instant>) -> Self {
        if let Some(cap) = cap {
            self.filing
                .deadline
                .set(cap.min(self.filing.deadline.get()));
        }
        Self { cap, ..self }
    }

    /// Gives the request its route's deadline, `after` its arrival (never later than its
    /// caller's).
    pub(crate) fn set_route_deadline(&self, after: Duration) {
        let deadline = deadline_after(self.received, after);
        self.filing
            .deadline
            .set(self.cap.map_or(deadline, |cap| cap.min(deadline)));
    }

    /// The same request, with the path parameters of the route that matched it.
    pub(crate) fn with_params<'p>(&self, params: &'p matchit::Params<'p, 'p>) -> Request<'p>
    where
        'a: 'p,
    {
        Request {
            params: Some(params),
            ..*self
        }
    }

    /// The value of path parameter `name` of the route that matched (`{id}` in
    /// `/accounts/{id}/score`, or a catch-all `{*path}`), percent-decoded (`%20` is a space,
    /// and `+` stays a `+`). Borrowed from the request when nothing needs decoding. `None`
    /// outside a [`Router`] route, or for a name the route does not have.
    ///
    /// The value is always valid UTF-8 once decoded: [`Router`] answers a parameter that
    /// decodes to anything else (`%FF`) with 400 before the handler runs (see
    /// [`check_utf8`](Self::check_utf8)), so that two ids that differ only in such bytes are
    /// never taken for the same one.
    ///
    /// Routes match the path as sent, before decoding: `/accounts/a%2Fb/score` matches
    /// `/accounts/{id}/score` with `id` = `a/b`. So a parameter may hold `/`, and a catch-all
    /// may hold `..` segments or start with `/` (`/static/%2e%2e/%2e%2e/etc/passwd` gives
    /// `../../etc/passwd`): never join one to a directory as it is, take it with
    /// [`param_path`](Self::param_path), which refuses what could lead out of the directory.
    ///
    /// # Examples
    ///
    /// ```
    /// use rtserve_reactor::{Harness, Reply, Request, Response, Router, StatusCode};
    ///
    /// let router = Router::new().get("/accounts/{id}/score", |req: &Request<'_>| -> Reply {
    ///     let id = req.param("id").unwrap_or_default();
    ///     Response::text(StatusCode::OK, format!("account {id}\n")).into()
    /// });
    /// let mut harness = Harness::new();
    /// let raw = b"GET /accounts/ab%20c/score HTTP/1.1\r\nHost: x\r\n\r\n";
    /// let Reply::Ready(response) = harness.call(&router, raw) else { panic!() };
    /// assert_eq!(response.body().as_bytes(), b"account ab c\n");
    ///
    /// // Not UTF-8 once decoded: the router answers, not the handler.
    /// let raw = b"GET /accounts/ab%FF/score HTTP/1.1\r\nHost: x\r\n\r\n";
    /// let Reply::Ready(response) = harness.call(&router, raw) else { panic!() };
    /// assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    /// ```
    pub fn param(&self, name: &str) -> Option<Cow<'a, str>> {
        let value = self.params?.get(name)?;
        // Never fails behind a Router, which checked every parameter.
        percent_encoding::percent_decode_str(value)
            .decode_utf8()
            .ok()
    }

    /// Checks that every path parameter, and every name and value of the query, is valid
    /// UTF-8 once percent-decoded: what [`Router`] does before it calls a route's handler,
    /// answering 400 when the check fails. A handler that is not behind a `Router` may call
    /// it to do the same; without the check it sees no parameters in such a query (see
    /// [`query_pairs`](Self::query_pairs)).
    ///
    /// Allocates nothing; a parameter or query without `%` is not even looked at, since the
    /// head parser refused a request target that was not UTF-8 as sent.
    ///
    /// # Errors
    ///
    /// A [`NotUtf8`] naming the first part that failed, ready to answer with (400).
    ///
    /// # Examples
    ///
    /// ```
    /// use rtserve_reactor::{Harness, Reply, Request, Response, StatusCode};
    ///
    /// let handler = |req: &Request<'_>| -> Reply {
    ///     if let Err(not_utf8) = req.check_utf8() {
    ///         return not_utf8.into();
    ///     }
    ///     let q = req.query_param("q").unwrap_or_default();
    ///     Response::text(StatusCode::OK, format!("q={q}\n")).into()
    /// };
    /// let mut harness = Harness::new();
    /// let Reply::Ready(bad) = harness.call(&handler, b"GET /?q=%FF HTTP/1.1\r\nHost: x\r\n\r\n")
    /// else {
    ///     panic!()
    /// };
    /// assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    /// assert_eq!(bad.body().as_bytes(), b"bad request: query is not UTF-8 once percent-decoded\n");
    /// ```
    pub fn check_utf8(&self) -> Result<(), NotUtf8<'a>> {
        if let Some(params) = self.params
            && let Some((name, _)) = params.iter().find(|(_, value)| !decodes_to_utf8(value))
        {
            return Err(NotUtf8::Param(name));
        }
        // Names and values are split at `&` and `=`, which are ASCII: each of them is UTF-8
        // once decoded exactly when the whole query is, so one pass over it settles all.
        if self.query().is_some_and(|query| !decodes_to_utf8(query)) {
            return Err(NotUtf8::Query);
        }
        Ok(())
    }

    /// Files the request under route `index` of [`Handler::routes`] for statistics and the
    /// request log. [`Router`] does this itself; an index past the list means "other".
    pub fn set_route(&self, index: usize) {
        self.filing.route.set(index);
    }

    /// The server's statistics, merged across reactors (cheap enough for a `/metrics` route
    /// to call inline).
    pub fn stats(&self) -> Stats {
        self.server.stats.merged()
    }

    /// When the request arrived: the moment its deadline counts from. With
    /// [`Config::kernel_timestamps`](crate::Config::kernel_timestamps) (the default), the
    /// kernel's receive stamp of the read that brought the head's first byte, so time spent
    /// waiting in the socket for a busy reactor counts; otherwise the reactor turn that read
    /// it. Either way it may be earlier than the handler's start.
    pub fn received(&self) -> Instant {
        self.received
    }

    /// This request's deadline: its route's ([`with_deadline`](crate::with_deadline)) or the
    /// server's default ([`Config::deadline`](crate::Config::deadline)), and never later than
    /// the one its caller stated ([caller deadlines](crate#caller-deadlines)). An offloaded
    /// [`Job`](crate::Job) may set another with
    /// [`Job::with_deadline`](crate::Job::with_deadline), again never past the caller's.
    pub fn deadline(&self) -> Instant {
        self.filing.deadline.get()
    }

    /// Time left before [`deadline`](Self::deadline) (zero once it has passed): what a handler
    /// passes on as the timeout of its own calls.
    pub fn remaining(&self) -> Duration {
        self.deadline().saturating_duration_since(Instant::now())
    }

    /// Whether the server is shutting down (for a health check to report it).
    pub fn is_draining(&self) -> bool {
        self.server.draining.load(Ordering::Relaxed)
    }

    /// The method.
    pub fn method(&self) -> Method {
        self.inner.method()
    }

    /// The method's name as sent.
    pub fn method_str(&self) -> &'a str {
        self.inner.method_str()
    }

    /// The request target as sent.
    pub fn target(&self) -> &'a str {
        self.inner.target()
    }

    /// The path, without the query.
    pub fn path(&self) -> &'a str {
        self.inner.path()
    }

    /// The query, without its `?`.
    pub fn query(&self) -> Option<&'a str> {
        self.inner.query()
    }

    /// The value of query parameter `name` (the first one), decoded as a form value
    /// (`application/x-www-form-urlencoded`: `%XX` escapes, and `+` for a space). Borrowed
    /// from the request when nothing needs decoding.
    ///
    /// The value is valid UTF-8 once decoded: behind a [`Router`], a query with a name or
    /// value that is not never reaches the handler (400); elsewhere such a query has no
    /// parameters (see [`query_pairs`](Self::query_pairs)).
    ///
    /// # Examples
    ///
    /// ```
    /// use rtserve_reactor::{Harness, Reply, Request, Response, StatusCode};
    ///
    /// let handler = |req: &Request<'_>| -> Reply {
    ///     assert_eq!(req.query_param("q").as_deref(), Some("a b&c"));
    ///     assert_eq!(req.query_param("n").as_deref(), Some("1"));
    ///     assert_eq!(req.query_pairs().count(), 2);
    ///     Response::new(StatusCode::OK).into()
    /// };
    /// Harness::new().call(&handler, b"GET /?q=a+b%26c&n=1 HTTP/1.1\r\nHost: x\r\n\r\n");
    /// ```
    pub fn query_param(&self, name: &str) -> Option<Cow<'a, str>> {
        self.query_pairs()
            .find_map(|(key, value)| (key == name).then_some(value))
    }

    /// Every query parameter, in order, decoded as [`query_param`](Self::query_param) does.
    ///
    /// A query in which a name or a value is not valid UTF-8 once decoded (`?id=%FF`) has no
    /// parameters at all, rather than a guess at them: [`Router`] answers it with 400 before
    /// its handler runs, and a handler called otherwise can tell it from an empty query with
    /// [`check_utf8`](Self::check_utf8).
    pub fn query_pairs(&self) -> impl Iterator<Item = (Cow<'a, str>, Cow<'a, str>)> + use<'a> {
        let query = self.query().filter(|query| decodes_to_utf8(query));
        // Every name and value of a query that decodes to UTF-8 does too (see `check_utf8`),
        // so the form parser's lossy decoding never has anything to replace.
        form_urlencoded::parse(query.unwrap_or("").as_bytes())
    }

    /// The authority: from an absolute-form target, else the Host header.
    pub fn authority(&self) -> Option<&'a str> {
        self.inner.authority()
    }

    /// The HTTP version the request is served as.
    pub fn version(&self) -> Version {
        self.inner.version()
    }

    /// The first header field named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        self.inner.header(name)
    }

    /// Every header field as (name, value), in order.
    pub fn headers(&self) -> impl ExactSizeIterator<Item = (&'a str, &'a [u8])> + use<'a> {
        self.inner.headers()
    }

    /// The body, whole (decoded from chunked framing if it came that way).
    pub fn body(&self) -> &'a [u8] {
        self.body
    }

    /// Which reactor thread is serving the request, from 0.
    pub fn reactor(&self) -> usize {
        self.reactor
    }

    /// The protocol-level view of the head.
    pub fn protocol(&self) -> rtserve_protocol::Request<'a> {
        self.inner
    }

    /// A copy of the head that owns its bytes, for use after the handler returns.
    pub fn to_owned_head(&self) -> OwnedHead {
        self.inner.to_owned_head()
    }
}

/// A part of the request that is not valid UTF-8 once percent-decoded: a path parameter, or
/// a name or value in the query. [`Router`] answers it with 400 before the handler runs;
/// [`Request::check_utf8`] finds it for a handler called otherwise.
///
/// It converts into the 400 [`Response`] (or [`Reply`]) the router sends, whose one-line
/// text says which part failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NotUtf8<'a> {
    /// The path parameter of this name.
    Param(&'a str),
    /// The query: a name or a value in it.
    Query,
}

impl fmt::Display for NotUtf8<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Param(name) => write!(f, "path parameter `{name}`")?,
            Self::Query => f.write_str("query")?,
        }
        f.write_str(" is not UTF-8 once percent-decoded")
    }
}

impl std::error::Error for NotUtf8<'_> {}

impl From<NotUtf8<'_>> for Response {
    fn from(not_utf8: NotUtf8<'_>) -> Self {
        crate::answers::not_utf8(format!("bad request: {not_utf8}\n"))
    }
}

impl From<NotUtf8<'_>> for Reply {
    fn from(not_utf8: NotUtf8<'_>) -> Self {
        Self::Ready(not_utf8.into())
    }
}

/// Whether `text` is UTF-8 once percent-decoded, found without decoding it into a buffer.
///
/// `text` is a `&str`, so without a `%` it is its own decoding and UTF-8 already (the head
/// parser refuses a request target that is not UTF-8 as sent, raw bytes of 0x80 and up
/// included). With one, the decoded bytes are checked a sequence at a time: its first byte
/// gives its length, and `std` checks the (at most four) bytes as a whole, overlong forms,
/// surrogates and code points past U+10FFFF included.
fn decodes_to_utf8(text: &str) -> bool {
    if !text.contains('%') {
        return true;
    }
    let mut bytes = percent_encoding::percent_decode_str(text);
    let mut sequence = [0; 4];
    while let Some(first) = bytes.next() {
        let len = match first {
            0x00..=0x7f => continue,
            0xc2..=0xdf => 2,
            0xe0..=0xef => 3,
            0xf0..=0xf4 => 4,
            // A continuation byte, or a byte that starts no sequence.
            _ => return false,
        };
        sequence[0] = first;
        for slot in &mut sequence[1..len] {
            let Some(byte) = bytes.next() else {
                return false;
            };
            *slot = byte;
        }
        if std::str::from_utf8(&sequence[..len]).is_err() {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rtserve_protocol::{Event, Limits, ServerConn, StatusCode};

    use super::*;
    use crate::{
        Harness,
        budget::Budgets,
        harness::testing::{get, ready},
    };

    /// What a request is read against: its parser, a server of two reactors and a filing.
    struct Fixture {
        conn: ServerConn,
        view: ServerView,
        filing: Filing,
        received: Instant,
    }

    impl Fixture {
        fn new() -> Self {
            let stats = StatsRegistry::new(2, Vec::new(), Budgets::unbounded(), usize::MAX);
            Self {
                conn: ServerConn::new(Limits::default()),
                view: ServerView {
                    draining: Arc::new(AtomicBool::new(false)),
                    stats: Arc::new(stats),
                },
                filing: Filing::new(usize::MAX),
                received: Instant::now(),
            }
        }

        /// The head in `raw` with `body`, as reactor 1 hands it to a handler, with a deadline
        /// 50 ms after it arrived.
        #[track_caller]
        fn request<'a>(&'a mut self, raw: &'a [u8], body: &'a [u8]) -> Request<'a> {
            self.conn = ServerConn::new(Limits::default());
            let (_, event) = self.conn.recv(raw).expect("a valid head");
            assert_eq!(event, Event::Head);
            let deadline = self.received + Duration::from_millis(50);
            Request::new(
                self.conn.request(raw),
                body,
                1,
                (self.received, deadline),
                &self.view,
                &self.filing,
            )
        }
    }

    /// Calls `check` with `req` as a route of `pattern`, which its path matches, hands it on.
    #[track_caller]
    fn routed(req: &Request<'_>, pattern: &str, check: impl FnOnce(&Request<'_>)) {
        let mut tree = matchit::Router::new();
        tree.insert(pattern, ()).expect("a valid pattern");
        let matched = tree.at(req.path()).expect("a match");
        check(&req.with_params(&matched.params));
    }

    #[test]
    fn the_head_is_read_as_sent() {
        let mut fixture = Fixture::new();
        // (head, method, its name, target, path, query, authority, version)
        for (raw, method, name, target, path, query, authority, version) in [
            (
                "GET /a/b?x=1&y=2 HTTP/1.1\r\nHost: example.com\r\n\r\n",
                Method::Get,
                "GET",
                "/a/b?x=1&y=2",
                "/a/b",
                Some("x=1&y=2"),
                Some("example.com"),
                Version::Http11,
            ),
            // An empty query is there, and empty.
            (
                "DELETE /a? HTTP/1.1\r\nHost: x\r\n\r\n",
                Method::Delete,
                "DELETE",
                "/a?",
                "/a",
                Some(""),
                Some("x"),
                Version::Http11,
            ),
            // An extension method is `Other`, with its name as sent.
            (
                "PURGE /cache HTTP/1.1\r\nHost: x\r\n\r\n",
                Method::Other,
                "PURGE",
                "/cache",
                "/cache",
                None,
                Some("x"),
                Version::Http11,
            ),
            // RFC 9112 §3.2.2: the authority of an absolute-form target wins over Host.
            (
                "GET http://a.example:8080/p?q HTTP/1.1\r\nHost: b\r\n\r\n",
                Method::Get,
                "GET",
                "http://a.example:8080/p?q",
                "/p",
                Some("q"),
                Some("a.example:8080"),
                Version::Http11,
            ),
            // HTTP/1.0 without Host has no authority.
            (
                "GET / HTTP/1.0\r\n\r\n",
                Method::Get,
                "GET",
                "/",
                "/",
                None,
                None,
                Version::Http10,
            ),
        ] {
            let req = fixture.request(raw.as_bytes(), b"");
            assert_eq!(req.method(), method, "{raw:?}");
            assert_eq!(req.method_str(), name, "{raw:?}");
            assert_eq!(req.target(), target, "{raw:?}");
            assert_eq!(req.path(), path, "{raw:?}");
            assert_eq!(req.query(), query, "{raw:?}");
            assert_eq!(req.authority(), authority, "{raw:?}");
            assert_eq!(req.version(), version, "{raw:?}");
            assert_eq!(req.protocol().target(), target, "{raw:?}");
        }
    }

    #[test]
    fn headers_are_found_by_name_without_regard_to_case_and_listed_in_order() {
        let mut fixture = Fixture::new();
        let raw = b"POST /in HTTP/1.1\r\nHost: x\r\nX-Tag: one\r\nContent-Length: 5\r\n\
                    x-tag: two\r\n\r\n";
        let req = fixture.request(raw, b"hello");
        assert_eq!(req.header("content-length"), Some(&b"5"[..]));
        assert_eq!(req.header("CONTENT-LENGTH"), Some(&b"5"[..]));
        // The first of two fields of a name.
        assert_eq!(req.header("x-tag"), Some(&b"one"[..]));
        assert_eq!(req.header("accept"), None);
        let headers = req.headers();
        assert_eq!(headers.len(), 4);
        assert_eq!(
            headers.collect::<Vec<_>>(),
            [
                ("Host", &b"x"[..]),
                ("X-Tag", b"one"),
                ("Content-Length", b"5"),
                ("x-tag", b"two"),
            ]
        );
        assert_eq!(req.body(), b"hello");
    }

    #[test]
    fn an_owned_head_reads_as_the_request_did() {
        let mut fixture = Fixture::new();
        let raw = b"PUT /items/7?v=2 HTTP/1.1\r\nHost: x\r\nX-Tag: one\r\n\r\n";
        let owned = fixture.request(raw, b"").to_owned_head();
        // The parser that read the head starts afresh: the copy has a head and bytes of its own.
        fixture.conn = ServerConn::new(Limits::default());
        let req = owned.request();
        assert_eq!(req.method(), Method::Put);
        assert_eq!(req.path(), "/items/7");
        assert_eq!(req.query(), Some("v=2"));
        assert_eq!(req.header("x-tag"), Some(&b"one"[..]));
    }

    #[test]
    fn what_the_server_tells_of_the_request() {
        let mut fixture = Fixture::new();
        let received = fixture.received;
        let draining = Arc::clone(&fixture.view.draining);
        fixture.view.stats.reactors[1].connection_opened();
        let req = fixture.request(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"");
        assert_eq!(req.reactor(), 1);
        assert_eq!(req.received(), received);
        assert_eq!(req.deadline(), received + Duration::from_millis(50));
        // The server's statistics, merged across its reactors.
        assert_eq!(req.stats().open_connections, [0, 1]);
        assert!(!req.is_draining());
        draining.store(true, Ordering::Relaxed);
        assert!(req.is_draining());
    }

    #[test]
    fn set_route_files_the_request_under_its_route() {
        let mut fixture = Fixture::new();
        let req = fixture.request(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"");
        req.set_route(2);
        assert_eq!(fixture.filing.route.get(), 2);
    }

    #[test]
    fn path_parameters_are_percent_decoded_and_borrowed_when_they_need_not_be() {
        let mut fixture = Fixture::new();
        let raw = b"GET /accounts/a%2Fb+c/files/x/%2e%2e/y HTTP/1.1\r\nHost: x\r\n\r\n";
        let req = fixture.request(raw, b"");
        // Outside a route there are none.
        assert_eq!(req.param("id"), None);
        routed(&req, "/accounts/{id}/files/{*path}", |req| {
            // `%2F` decodes to a `/` in the parameter, and `+` stays a `+`.
            assert_eq!(req.param("id").as_deref(), Some("a/b+c"));
            assert_eq!(req.param("path").as_deref(), Some("x/../y"));
            assert_eq!(req.param("name"), None);
            assert_eq!(req.check_utf8(), Ok(()));
        });
        let req = fixture.request(b"GET /accounts/plain HTTP/1.1\r\nHost: x\r\n\r\n", b"");
        routed(&req, "/accounts/{id}", |req| {
            assert!(matches!(req.param("id"), Some(Cow::Borrowed("plain"))));
        });
    }

    #[test]
    fn query_parameters_are_decoded_as_a_form() {
        let mut fixture = Fixture::new();
        let raw = b"GET /?a=1&b=x+y%2Bz&a=2&flag&=v&e= HTTP/1.1\r\nHost: x\r\n\r\n";
        let req = fixture.request(raw, b"");
        // The first of two parameters of a name.
        assert_eq!(req.query_param("a").as_deref(), Some("1"));
        // `+` is a space, `%2B` a plus.
        assert_eq!(req.query_param("b").as_deref(), Some("x y+z"));
        // A name without `=` has an empty value.
        assert_eq!(req.query_param("flag").as_deref(), Some(""));
        assert_eq!(req.query_param("e").as_deref(), Some(""));
        assert_eq!(req.query_param("missing"), None);
        assert!(matches!(req.query_param("a"), Some(Cow::Borrowed("1"))));
        let pairs: Vec<_> = req.query_pairs().collect();
        assert_eq!(
            pairs,
            [
                ("a", "1"),
                ("b", "x y+z"),
                ("a", "2"),
                ("flag", ""),
                ("", "v"),
                ("e", ""),
            ]
            .map(|(name, value)| (Cow::Borrowed(name), Cow::Borrowed(value)))
        );
        // No query, and an empty one: no parameters.
        let req = fixture.request(b"GET /p HTTP/1.1\r\nHost: x\r\n\r\n", b"");
        assert_eq!(req.query_pairs().count(), 0);
        let req = fixture.request(b"GET /p? HTTP/1.1\r\nHost: x\r\n\r\n", b"");
        assert_eq!(req.query_pairs().count(), 0);
    }

    #[test]
    fn check_utf8_names_the_first_part_that_fails() {
        let mut fixture = Fixture::new();
        let raw = b"GET /x/%C3%A9/%FF/%FE?q=%FF HTTP/1.1\r\nHost: x\r\n\r\n";
        let req = fixture.request(raw, b"");
        // Outside a route, only the query is checked.
        assert_eq!(req.check_utf8(), Err(NotUtf8::Query));
        // The parameters before the query, in the pattern's order.
        routed(&req, "/x/{a}/{b}/{c}", |req| {
            assert_eq!(req.check_utf8(), Err(NotUtf8::Param("b")));
        });
        let req = fixture.request(
            b"GET /x/%C3%A9?q=%E2%82%AC HTTP/1.1\r\nHost: x\r\n\r\n",
            b"",
        );
        routed(&req, "/x/{a}", |req| assert_eq!(req.check_utf8(), Ok(())));
    }

    #[test]
    fn not_utf8_says_which_part_failed_in_a_400() {
        for (not_utf8, text) in [
            (
                NotUtf8::Param("id"),
                "path parameter `id` is not UTF-8 once percent-decoded",
            ),
            (NotUtf8::Query, "query is not UTF-8 once percent-decoded"),
        ] {
            assert_eq!(not_utf8.to_string(), text);
            let response = Response::from(not_utf8);
            assert_eq!(response.status(), StatusCode::BAD_REQUEST);
            assert_eq!(
                response.body().as_bytes(),
                format!("bad request: {text}\n").as_bytes()
            );
            let Reply::Ready(response) = Reply::from(not_utf8) else {
                panic!("answered inline");
            };
            assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        }
    }

    #[test]
    fn without_a_router_queries_are_decoded_strictly_or_not_at_all() {
        let handler = |req: &Request<'_>| -> Reply {
            let pairs: Vec<_> = req.query_pairs().collect();
            let text = format!("{:?} {:?} {pairs:?}", req.param("id"), req.query_param("q"));
            Response::text(StatusCode::OK, text).into()
        };
        let mut harness = Harness::new();
        let mut seen = |target: &str| {
            let response = ready(harness.call(&handler, &get(target)));
            String::from_utf8(response.body().as_bytes().to_vec()).unwrap()
        };
        assert_eq!(
            seen("/?q=%C3%A9&n=1"),
            r#"None Some("é") [("q", "é"), ("n", "1")]"#
        );
        // Two queries that differ only in bytes that are not UTF-8 are not taken for the
        // same one (both were U+FFFD once): such a query has no parameters at all.
        assert_eq!(seen("/?q=%FF&n=1"), "None None []");
        assert_eq!(seen("/?q=%FE&n=1"), "None None []");
        // The check says why, for a handler that answers as the router does.
        let check = |req: &Request<'_>| -> Reply {
            match req.check_utf8() {
                Ok(()) => Response::new(StatusCode::OK).into(),
                Err(e) => e.into(),
            }
        };
        let response = ready(harness.call(&check, &get("/?q=%FF")));
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn utf8_after_percent_decoding_is_checked_without_allocating_a_copy() {
        for (text, utf8) in [
            ("", true),
            ("plain", true),
            ("caf\u{e9}", true),
            ("%41%42", true),
            ("%c3%a9", true),
            ("%EF%BF%BF", true),
            ("%F4%8F%BF%BF", true),
            // `%` not followed by two hex digits stays as it is.
            ("100%", true),
            ("%zz", true),
            ("%FF", false),
            ("%80", false),
            ("%C3", false),
            ("%C3a", false),
            ("%C1%BF", false),
            ("%E0%80%80", false),
            ("%ED%BF%BF", false),
            ("%F5%80%80%80", false),
            ("%F0%90%80", false),
        ] {
            assert_eq!(decodes_to_utf8(text), utf8, "{text}");
        }
    }

    #[test]
    fn a_routes_deadline_is_filed_and_never_past_the_callers() {
        let mut fixture = Fixture::new();
        let received = fixture.received;
        let ms = Duration::from_millis;
        let req = fixture.request(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"");
        assert_eq!(req.deadline(), received + ms(50));
        req.set_route_deadline(ms(200));
        assert_eq!(
            req.deadline(),
            received + ms(200),
            "the route's, later than the default"
        );
        // A caller with 80 ms left: the earlier of the two, whatever the route says after.
        let req = req.capped(Some(received + ms(80)));
        assert_eq!(req.deadline(), received + ms(80));
        req.set_route_deadline(ms(300));
        assert_eq!(req.deadline(), received + ms(80));
        req.set_route_deadline(ms(30));
        assert_eq!(req.deadline(), received + ms(30));
        assert_eq!(
            fixture.filing.deadline.get(),
            received + ms(30),
            "filed for the server"
        );
    }
}
