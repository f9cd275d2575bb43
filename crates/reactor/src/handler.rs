//! The handler API: what a request looks like to user code, and what it returns.

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

use rtserve_protocol::{Method, OwnedHead, StatusCode, Version};

use crate::{
    pool::Ticket,
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
    deadline: Instant,
    server: &'a ServerView,
    route: &'a Cell<usize>,
    /// The path parameters of the route that matched, set by [`Router`].
    params: Option<&'a matchit::Params<'a, 'a>>,
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
        route: &'a Cell<usize>,
    ) -> Self {
        Self {
            inner,
            body,
            reactor,
            received,
            deadline,
            server,
            route,
            params: None,
        }
    }

    /// The same request, with the path parameters of the route that matched it.
    fn with_params<'p>(&self, params: &'p matchit::Params<'p, 'p>) -> Request<'p>
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
    /// and `+` stays a `+`; invalid UTF-8 becomes U+FFFD). Borrowed from the request when
    /// nothing needs decoding. `None` outside a [`Router`] route, or for a name the route does
    /// not have.
    ///
    /// Routes match the path as sent, before decoding: `/accounts/a%2Fb/score` matches
    /// `/accounts/{id}/score` with `id` = `a/b`.
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
    /// let raw = b"GET /accounts/ab%20c/score HTTP/1.1\r\nHost: x\r\n\r\n";
    /// let Reply::Ready(response) = Harness::new().call(&router, raw) else { panic!() };
    /// assert_eq!(response.body().as_bytes(), b"account ab c\n");
    /// ```
    pub fn param(&self, name: &str) -> Option<Cow<'a, str>> {
        let value = self.params?.get(name)?;
        Some(percent_encoding::percent_decode_str(value).decode_utf8_lossy())
    }

    /// Files the request under route `index` of [`Handler::routes`] for statistics and the
    /// request log. [`Router`] does this itself; an index past the list means "other".
    pub fn set_route(&self, index: usize) {
        self.route.set(index);
    }

    /// The server's statistics, merged across reactors (cheap enough for a `/metrics` route
    /// to call inline).
    pub fn stats(&self) -> Stats {
        self.server.stats.merged()
    }

    /// When the head was fully received: the moment the deadline counts from.
    pub fn received(&self) -> Instant {
        self.received
    }

    /// The server's default deadline for this request. An offloaded [`Job`] may set its own
    /// with [`Job::with_deadline`].
    pub fn deadline(&self) -> Instant {
        self.deadline
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
    pub fn query_pairs(&self) -> impl Iterator<Item = (Cow<'a, str>, Cow<'a, str>)> + use<'a> {
        form_urlencoded::parse(self.query().unwrap_or("").as_bytes())
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
    #[must_use]
    pub fn with_static_headers(mut self, headers: StaticHeaders) -> Self {
        self.static_headers = headers;
        self
    }

    /// Adds a header. The name must be a token and the value free of control bytes; an
    /// invalid header, or one the reactor writes itself (Content-Length, Transfer-Encoding,
    /// Connection, Date), turns the response into a 500.
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

/// What a handler returns: a response now, or a job for the worker pool.
///
/// # When to reply inline and when to offload
///
/// A reactor serves thousands of connections on one thread, so everything `handle` does adds
/// to the latency of every request queued behind it on that reactor. Reply
/// [`Ready`](Reply::Ready) when the answer takes microseconds and never blocks: lookups in
/// memory, small computations, static content. [`Offload`](Reply::Offload) anything that
/// blocks (file or network I/O, locks that can be contended, sleeping) or computes for long:
/// it runs on the shared worker pool, its response goes out in request order, and the request's
/// deadline bounds how long the client waits for it.
///
/// New ways to reply may be added, so the enum is `#[non_exhaustive]`; build replies with the
/// variants, [`Reply::offload`], or `.into()` from a [`Response`].
#[derive(Debug)]
#[non_exhaustive]
pub enum Reply {
    /// The response, produced on the reactor thread: the fastest path.
    Ready(Response),
    /// Blocking work for the worker pool. If the pool's queue is full the client gets 503 at
    /// once; if the job has not finished by the request's deadline the client gets 503 then,
    /// and the job's late result is dropped (a job that has not started by then never runs).
    Offload(Job),
}

impl Reply {
    /// Offloads `work` to the worker pool with the server's default deadline.
    ///
    /// # Examples
    ///
    /// ```
    /// use rtserve_reactor::{JobContext, Reply, Request, Response, StatusCode};
    ///
    /// let handler = |req: &Request<'_>| -> Reply {
    ///     let key = req.path().to_owned(); // copy what the job needs
    ///     Reply::offload(move |ctx: &JobContext| {
    ///         if ctx.is_cancelled() {
    ///             return Response::new(StatusCode::SERVICE_UNAVAILABLE);
    ///         }
    ///         Response::text(StatusCode::OK, format!("looked up {key}\n"))
    ///     })
    /// };
    /// # let _ = handler;
    /// ```
    pub fn offload(work: impl FnOnce(&JobContext) -> Response + Send + 'static) -> Self {
        Self::Offload(Job::new(work))
    }
}

/// Blocking work for the worker pool, and the deadline it must meet.
pub struct Job {
    pub(crate) work: Box<dyn FnOnce(&JobContext) -> Response + Send>,
    pub(crate) deadline: Option<Duration>,
}

impl Job {
    /// A job running `work`, with the server's default deadline.
    pub fn new(work: impl FnOnce(&JobContext) -> Response + Send + 'static) -> Self {
        Self {
            work: Box::new(work),
            deadline: None,
        }
    }

    /// Gives the request this deadline instead of the server's default, counted (like every
    /// deadline) from the moment its head was fully received.
    #[must_use]
    pub fn with_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = Some(deadline);
        self
    }
}

impl fmt::Debug for Job {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Job")
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

/// What a running job can know about its request: its deadline, and whether its answer is
/// still wanted.
#[derive(Clone, Debug)]
pub struct JobContext {
    pub(crate) deadline: Instant,
    pub(crate) ticket: Ticket,
}

impl JobContext {
    /// The request's deadline. The client has been answered with 503 once it has passed.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Time left before the deadline (zero once it has passed).
    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// Whether the answer is no longer wanted: the deadline has passed or the client has
    /// gone. Cooperative work checks this and stops early; whatever it returns then is dropped.
    pub fn is_cancelled(&self) -> bool {
        Instant::now() >= self.deadline || self.ticket.is_cancelled()
    }

    /// Sleeps for `duration`, or less if the answer stops being wanted meanwhile: the client
    /// leaves or the deadline passes, and the sleep ends at that moment, freeing the worker.
    /// Returns whether it slept the whole time (`false`: cut short, the answer is not wanted).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use rtserve_reactor::{JobContext, Reply, Request, Response, Router, StatusCode};
    ///
    /// fn slow(_: &Request<'_>) -> Reply {
    ///     Reply::offload(|ctx: &JobContext| {
    ///         // Waiting on something slow; a client that leaves frees the worker at once.
    ///         if !ctx.sleep(Duration::from_millis(20)) {
    ///             return Response::new(StatusCode::SERVICE_UNAVAILABLE);
    ///         }
    ///         Response::text(StatusCode::OK, "done\n")
    ///     })
    /// }
    /// let router = Router::new().get("/slow", slow);
    /// # drop(router);
    /// ```
    pub fn sleep(&self, duration: Duration) -> bool {
        let until = Instant::now() + duration;
        if until >= self.deadline {
            // The deadline comes first: the sleep cannot be whole.
            self.ticket.wait_until(self.deadline);
            return false;
        }
        !self.ticket.wait_until(until)
    }
}

impl From<Response> for Reply {
    fn from(response: Response) -> Self {
        Self::Ready(response)
    }
}

/// Request handling code: one instance serves every reactor.
///
/// `handle` runs on a reactor thread, between socket events of many other connections, so it
/// must return quickly and never block. Closures implement it too.
///
/// # Examples
///
/// ```
/// use rtserve_reactor::{Handler, Reply, Request, Response, StatusCode};
///
/// struct Hello;
///
/// impl Handler for Hello {
///     fn handle(&self, _req: &Request<'_>) -> Reply {
///         Response::text(StatusCode::OK, "hello\n").into()
///     }
/// }
///
/// let by_closure = |req: &Request<'_>| -> Reply {
///     Response::text(StatusCode::OK, req.path().to_owned()).into()
/// };
/// # fn is_handler(_: impl Handler) {}
/// # is_handler(Hello);
/// # is_handler(by_closure);
/// ```
pub trait Handler: Send + Sync + 'static {
    /// Answers one request.
    fn handle(&self, req: &Request<'_>) -> Reply;

    /// Names of the routes this handler files requests under with
    /// [`Request::set_route`], for statistics and the request log. None by default: every
    /// request is then counted as "other".
    fn routes(&self) -> Vec<String> {
        Vec::new()
    }
}

impl<F> Handler for F
where
    F: Fn(&Request<'_>) -> Reply + Send + Sync + 'static,
{
    fn handle(&self, req: &Request<'_>) -> Reply {
        self(req)
    }
}

/// Gives the jobs `handler` offloads this deadline, unless a job sets its own: a per-route
/// deadline, between the server's default and a per-request [`Job::with_deadline`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use rtserve_reactor::{JobContext, Reply, Request, Response, Router, StatusCode, with_deadline};
///
/// let report = |_: &Request<'_>| -> Reply {
///     Reply::offload(|_: &JobContext| Response::text(StatusCode::OK, "done\n"))
/// };
/// let router = Router::new().get("/report", with_deadline(Duration::from_millis(50), report));
/// # let _ = router;
/// ```
pub fn with_deadline(deadline: Duration, handler: impl Handler) -> impl Handler {
    WithDeadline { deadline, handler }
}

struct WithDeadline<H> {
    deadline: Duration,
    handler: H,
}

impl<H: Handler> Handler for WithDeadline<H> {
    fn handle(&self, req: &Request<'_>) -> Reply {
        match self.handler.handle(req) {
            Reply::Offload(mut job) => {
                job.deadline = job.deadline.or(Some(self.deadline));
                Reply::Offload(job)
            }
            reply => reply,
        }
    }

    fn routes(&self) -> Vec<String> {
        self.handler.routes()
    }
}

/// Routes requests by path, then method, to handlers.
///
/// Paths are patterns: `/accounts/{id}/score` has a parameter, read with
/// [`Request::param`]; `/static/{*path}` ends with a catch-all, which takes the rest of the
/// path and needs at least one character of it (so `/static/` itself is not matched: add a
/// route for it if it should be). A static segment wins over a parameter
/// (`/accounts/me` over `/accounts/{id}`). Matching walks a radix tree (the `matchit` crate)
/// and allocates nothing.
///
/// An unknown path gets 404; a known path with another method gets 405 with `Allow`. HEAD is
/// served by the GET route of a path unless it has its own. Statistics and the request log
/// name a request by its route's pattern, never by its concrete path, so their number of
/// series stays that of the routes.
///
/// Two patterns that would match the same paths (`/a/{x}` and `/a/{y}`), or a malformed one,
/// are a mistake in the program: [`route`](Self::route) and its shorthands panic while the
/// router is built, before anything is served, and [`try_route`](Self::try_route) returns
/// the error instead. Adding the same pattern and method again replaces the handler.
///
/// # Examples
///
/// ```
/// use rtserve_reactor::{Reply, Request, Response, Router, StatusCode};
///
/// let router = Router::new()
///     .get("/hello", |_: &Request<'_>| -> Reply { Response::text(StatusCode::OK, "hi\n").into() })
///     .get("/accounts/{id}", |req: &Request<'_>| -> Reply {
///         let id = req.param("id").unwrap_or_default();
///         Response::text(StatusCode::OK, format!("account {id}\n")).into()
///     })
///     .post("/echo", |req: &Request<'_>| -> Reply {
///         Response::new(StatusCode::OK).with_body(req.body().to_vec()).into()
///     });
/// // `/accounts/{name}` would match the same paths as `/accounts/{id}`.
/// let ok = |_: &Request<'_>| -> Reply { Response::new(StatusCode::OK).into() };
/// assert!(router.try_route(rtserve_reactor::Method::Get, "/accounts/{name}", ok).is_err());
/// ```
#[derive(Default)]
pub struct Router {
    routes: Vec<Route>,
    /// Pattern → index into `routes`.
    tree: matchit::Router<usize>,
}

struct Route {
    pattern: String,
    methods: Vec<(Method, Box<dyn Handler>)>,
}

/// A route that cannot be added to a [`Router`]: it conflicts with one already there, or its
/// pattern is malformed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteError {
    pattern: String,
    reason: String,
}

impl fmt::Display for RouteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "route {:?}: {}", self.pattern, self.reason)
    }
}

impl std::error::Error for RouteError {}

impl Router {
    /// A router with no routes.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a route for `method` and the path pattern `pattern`.
    ///
    /// # Panics
    ///
    /// If the route cannot be added (see [`try_route`](Self::try_route)), or `method` is
    /// [`Method::Other`], which names no single method: mistakes in the program, found when
    /// the router is built.
    #[must_use]
    #[track_caller]
    pub fn route(self, method: Method, pattern: &str, handler: impl Handler) -> Self {
        match self.try_route(method, pattern, handler) {
            Ok(router) => router,
            Err(e) => panic!("{e}"),
        }
    }

    /// Adds a route for `method` and the path pattern `pattern`, or says why it cannot be
    /// added: it conflicts with a route already there, or the pattern is malformed.
    ///
    /// # Errors
    ///
    /// A [`RouteError`] naming the pattern and the reason.
    ///
    /// # Panics
    ///
    /// If `method` is [`Method::Other`].
    pub fn try_route(
        mut self,
        method: Method,
        pattern: &str,
        handler: impl Handler,
    ) -> Result<Self, RouteError> {
        assert!(method != Method::Other, "routes need a named method");
        let handler: Box<dyn Handler> = Box::new(handler);
        if let Some(route) = self.routes.iter_mut().find(|r| r.pattern == pattern) {
            route.methods.retain(|(m, _)| *m != method);
            route.methods.push((method, handler));
            return Ok(self);
        }
        self.tree
            .insert(pattern, self.routes.len())
            .map_err(|e| RouteError {
                pattern: pattern.to_owned(),
                reason: e.to_string(),
            })?;
        self.routes.push(Route {
            pattern: pattern.to_owned(),
            methods: vec![(method, handler)],
        });
        Ok(self)
    }

    /// Adds a GET route (which serves HEAD too).
    #[must_use]
    #[track_caller]
    pub fn get(self, pattern: &str, handler: impl Handler) -> Self {
        self.route(Method::Get, pattern, handler)
    }

    /// Adds a POST route.
    #[must_use]
    #[track_caller]
    pub fn post(self, pattern: &str, handler: impl Handler) -> Self {
        self.route(Method::Post, pattern, handler)
    }

    /// Adds a PUT route.
    #[must_use]
    #[track_caller]
    pub fn put(self, pattern: &str, handler: impl Handler) -> Self {
        self.route(Method::Put, pattern, handler)
    }

    /// Adds a DELETE route.
    #[must_use]
    #[track_caller]
    pub fn delete(self, pattern: &str, handler: impl Handler) -> Self {
        self.route(Method::Delete, pattern, handler)
    }
}

impl Handler for Router {
    fn routes(&self) -> Vec<String> {
        self.routes.iter().map(|r| r.pattern.clone()).collect()
    }

    fn handle(&self, req: &Request<'_>) -> Reply {
        let Ok(matched) = self.tree.at(req.path()) else {
            return Response::text(StatusCode::NOT_FOUND, "not found\n").into();
        };
        let index = *matched.value;
        let route = &self.routes[index];
        req.set_route(index);
        let method = req.method();
        let found = route
            .methods
            .iter()
            .find(|(m, _)| *m == method)
            .or_else(|| {
                // RFC 9110 §9.3.2: HEAD is GET without the body.
                (method == Method::Head)
                    .then(|| route.methods.iter().find(|(m, _)| *m == Method::Get))
                    .flatten()
            });
        if let Some((_, handler)) = found {
            return handler.handle(&req.with_params(&matched.params));
        }
        let mut allow = String::new();
        for (m, _) in &route.methods {
            for name in method_names(*m) {
                if allow.split(", ").any(|n| n == *name) {
                    continue;
                }
                if !allow.is_empty() {
                    allow.push_str(", ");
                }
                allow.push_str(name);
            }
        }
        Response::text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n")
            .with_header("Allow", allow)
            .into()
    }
}

/// The names a route for `method` answers to in `Allow`.
fn method_names(method: Method) -> &'static [&'static str] {
    match method {
        Method::Get => &["GET", "HEAD"],
        Method::Head => &["HEAD"],
        Method::Post => &["POST"],
        Method::Put => &["PUT"],
        Method::Delete => &["DELETE"],
        Method::Connect => &["CONNECT"],
        Method::Options => &["OPTIONS"],
        Method::Trace => &["TRACE"],
        Method::Patch => &["PATCH"],
        _ => &[],
    }
}

impl fmt::Debug for Router {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut list = f.debug_list();
        for route in &self.routes {
            for (method, _) in &route.methods {
                list.entry(&format_args!("{method:?} {}", route.pattern));
            }
        }
        list.finish()
    }
}
