//! The router: requests to handlers by path, then method.

use std::fmt;

use rtserve_protocol::{Method, StatusCode};

use crate::{Handler, IntoReply, Reply, Request, Response, answers};

/// Routes requests by path, then method, to handlers.
///
/// Paths are patterns: `/accounts/{id}/score` has a parameter, read with
/// [`Request::param`]; `/static/{*path}` ends with a catch-all, which takes the rest of the
/// path and needs at least one character of it (so `/static/` itself is not matched: add a
/// route for it if it should be). A catch-all that names a file is read with
/// [`Request::param_path`], which refuses `..` and absolute paths. A static segment wins over a parameter
/// (`/accounts/me` over `/accounts/{id}`). A path is matched as sent, before any decoding,
/// and whole: `/hello/` is not `/hello`, nor is `/HELLO`. Matching walks a radix tree (the
/// `matchit` crate) and allocates nothing.
///
/// An unknown path gets 404, or what the [`fallback`](Self::fallback) handler answers; a known
/// path with another method gets 405 with `Allow`; `OPTIONS` on a known path gets 204 with
/// `Allow`, and `OPTIONS *` 204 with every method the router's routes take, unless a route of
/// the application's own answers OPTIONS (RFC 9110 §9.3.7). The 404 and 405 are the server's
/// own answers, which [`ErrorAnswers`](crate::ErrorAnswers) may shape. A path
/// parameter or query that is not valid UTF-8 once percent-decoded gets 400, before the
/// handler runs (see [`Request::check_utf8`]). HEAD is served by the GET route of a path
/// unless it has its own. Statistics and the request log
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
    /// The handler for paths no route matches ([`Router::fallback`]); without one, 404.
    fallback: Option<Box<dyn Handler>>,
}

struct Route {
    pattern: String,
    methods: Vec<(Method, Box<dyn Handler>)>,
    /// The handler for every method `methods` does not name ([`Router::any`]).
    any: Option<Box<dyn Handler>>,
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
        let route = self.route_mut(pattern)?;
        route.methods.retain(|(m, _)| *m != method);
        route.methods.push((method, handler));
        Ok(self)
    }

    /// Adds a route for every method (those a route of the same pattern names apart, with
    /// [`route`](Self::route) and its shorthands, excepted), for a handler that dispatches on
    /// the method itself: a mounted service, say (see `tower::service`, feature `tower`).
    ///
    /// # Panics
    ///
    /// If the route cannot be added (see [`try_route`](Self::try_route)).
    ///
    /// # Examples
    ///
    /// ```
    /// use rtserve_reactor::{Harness, Reply, Request, Response, Router, StatusCode};
    ///
    /// let router = Router::new().any("/items/{id}", |req: &Request<'_>| -> Reply {
    ///     Response::text(StatusCode::OK, req.method_str().to_owned()).into()
    /// });
    /// let raw = b"PATCH /items/7 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n";
    /// let Reply::Ready(response) = Harness::new().call(&router, raw) else { panic!() };
    /// assert_eq!(response.body().as_bytes(), b"PATCH");
    /// ```
    #[must_use]
    #[track_caller]
    pub fn any(mut self, pattern: &str, handler: impl Handler) -> Self {
        match self.route_mut(pattern) {
            Ok(route) => route.any = Some(Box::new(handler)),
            Err(e) => panic!("{e}"),
        }
        self
    }

    /// Sets the handler for requests whose path no route matches, in place of the built-in
    /// 404; a path that a route matches, with a method none of its routes takes, still gets
    /// the 405. Its requests are filed under no route's pattern ("other"), unless it files
    /// them itself ([`Request::set_route`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use rtserve_reactor::{Harness, Reply, Request, Response, Router, StatusCode};
    ///
    /// let router = Router::new()
    ///     .get("/hello", |_: &Request<'_>| -> Reply { Response::text(StatusCode::OK, "hi\n").into() })
    ///     .fallback(|req: &Request<'_>| -> Reply {
    ///         let body = format!("{{\"error\":\"no route\",\"path\":{:?}}}", req.path());
    ///         Response::new(StatusCode::NOT_FOUND)
    ///             .with_content_type("application/json")
    ///             .with_body(body)
    ///             .into()
    ///     });
    /// let Reply::Ready(response) = Harness::new().call(&router, b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n")
    /// else { panic!() };
    /// assert_eq!(response.status(), StatusCode::NOT_FOUND);
    /// assert_eq!(response.body().as_bytes(), br#"{"error":"no route","path":"/nope"}"#);
    /// ```
    #[must_use]
    pub fn fallback(mut self, handler: impl Handler) -> Self {
        self.fallback = Some(Box::new(handler));
        self
    }

    /// The route of `pattern`, added (with no handlers) if it is not there yet.
    fn route_mut(&mut self, pattern: &str) -> Result<&mut Route, RouteError> {
        let index = match self.routes.iter().position(|r| r.pattern == pattern) {
            Some(index) => index,
            None => {
                self.tree
                    .insert(pattern, self.routes.len())
                    .map_err(|e| RouteError {
                        pattern: pattern.to_owned(),
                        reason: e.to_string(),
                    })?;
                self.routes.push(Route {
                    pattern: pattern.to_owned(),
                    methods: Vec::new(),
                    any: None,
                });
                self.routes.len() - 1
            }
        };
        Ok(&mut self.routes[index])
    }

    /// Adds a GET route (which serves HEAD too).
    ///
    /// `handler` is a closure or a function (see [which handlers infer their
    /// types](Handler#closures-and-inference)); [`route`](Self::route) takes any handler.
    #[must_use]
    #[track_caller]
    pub fn get<F, R>(self, pattern: &str, handler: F) -> Self
    where
        F: Fn(&Request<'_>) -> R + Send + Sync + 'static,
        R: IntoReply,
    {
        self.route(Method::Get, pattern, handler)
    }

    /// Adds a POST route.
    ///
    /// `handler` is a closure or a function (see [which handlers infer their
    /// types](Handler#closures-and-inference)); [`route`](Self::route) takes any handler.
    #[must_use]
    #[track_caller]
    pub fn post<F, R>(self, pattern: &str, handler: F) -> Self
    where
        F: Fn(&Request<'_>) -> R + Send + Sync + 'static,
        R: IntoReply,
    {
        self.route(Method::Post, pattern, handler)
    }

    /// Adds a PUT route.
    ///
    /// `handler` is a closure or a function (see [which handlers infer their
    /// types](Handler#closures-and-inference)); [`route`](Self::route) takes any handler.
    #[must_use]
    #[track_caller]
    pub fn put<F, R>(self, pattern: &str, handler: F) -> Self
    where
        F: Fn(&Request<'_>) -> R + Send + Sync + 'static,
        R: IntoReply,
    {
        self.route(Method::Put, pattern, handler)
    }

    /// Adds a DELETE route.
    ///
    /// `handler` is a closure or a function (see [which handlers infer their
    /// types](Handler#closures-and-inference)); [`route`](Self::route) takes any handler.
    #[must_use]
    #[track_caller]
    pub fn delete<F, R>(self, pattern: &str, handler: F) -> Self
    where
        F: Fn(&Request<'_>) -> R + Send + Sync + 'static,
        R: IntoReply,
    {
        self.route(Method::Delete, pattern, handler)
    }
}

impl Handler for Router {
    fn routes(&self) -> Vec<String> {
        self.routes.iter().map(|r| r.pattern.clone()).collect()
    }

    fn handle(&self, req: &Request<'_>) -> Reply {
        let method = req.method();
        let Ok(matched) = self.tree.at(req.path()) else {
            // RFC 9112 §3.2.4: asterisk-form, the server as a whole (the protocol layer
            // allows it for OPTIONS alone).
            if method == Method::Options && req.path() == "*" {
                return options(self.routes.iter()).into();
            }
            return match &self.fallback {
                Some(fallback) => fallback.handle(req),
                None => answers::not_found().into(),
            };
        };
        let index = *matched.value;
        let route = &self.routes[index];
        req.set_route(index);
        let found = route
            .methods
            .iter()
            .find(|(m, _)| *m == method)
            .or_else(|| {
                // RFC 9110 §9.3.2: HEAD is GET without the body.
                (method == Method::Head)
                    .then(|| route.methods.iter().find(|(m, _)| *m == Method::Get))
                    .flatten()
            })
            .map(|(_, handler)| handler)
            .or(route.any.as_ref());
        if let Some(handler) = found {
            let req = req.with_params(&matched.params);
            // A parameter or query that two different requests could decode to the same
            // (lossy) text is refused here, so that no handler has to think of it.
            if let Err(not_utf8) = req.check_utf8() {
                return not_utf8.into();
            }
            return handler.handle(&req);
        }
        if method == Method::Options {
            // No route of the application's own takes OPTIONS here.
            return options(std::iter::once(route)).into();
        }
        answers::method_not_allowed(allow(std::iter::once(route))).into()
    }
}

/// The 204 that answers `OPTIONS` for `routes` (RFC 9110 §9.3.7): `Allow` names the methods
/// they take, no body.
fn options<'r>(routes: impl Iterator<Item = &'r Route>) -> Response {
    Response::new(StatusCode::NO_CONTENT).with_header("Allow", allow(routes))
}

/// The value of `Allow` for `routes`: every method they take in the order their handlers were
/// added, HEAD along with GET, each named once, and OPTIONS, which the router answers for
/// every route, last.
fn allow<'r>(routes: impl Iterator<Item = &'r Route>) -> String {
    let mut allow = String::new();
    let named = routes.flat_map(|route| route.methods.iter().map(|(m, _)| *m));
    for name in named.chain([Method::Options]).flat_map(method_names) {
        if allow.split(", ").any(|n| n == *name) {
            continue;
        }
        if !allow.is_empty() {
            allow.push_str(", ");
        }
        allow.push_str(name);
    }
    allow
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
            if route.any.is_some() {
                list.entry(&format_args!("any {}", route.pattern));
            }
        }
        list.finish()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    };

    use super::*;
    use crate::{
        Harness,
        harness::testing::{counting, get, ready},
    };

    /// A router whose `/accounts/{id}` echoes `id` and the query parameter `q`, and counts
    /// the requests that reached it.
    fn echo_router(calls: &Arc<AtomicUsize>) -> Router {
        let calls = Arc::clone(calls);
        Router::new().get("/accounts/{id}", move |req: &Request<'_>| -> Reply {
            calls.fetch_add(1, Ordering::Relaxed);
            let id = req.param("id");
            let q = req.query_param("q");
            Response::text(StatusCode::OK, format!("{id:?} {q:?}")).into()
        })
    }

    /// A handler that answers 200 with `text`.
    fn answer(text: &'static str) -> impl Fn(&Request<'_>) -> Reply + Send + Sync + 'static {
        move |_: &Request<'_>| -> Reply { Response::text(StatusCode::OK, text).into() }
    }

    /// A handler that answers 200 with the parameter `name`, or `-` without it.
    fn param(name: &'static str) -> impl Fn(&Request<'_>) -> Reply + Send + Sync + 'static {
        move |req: &Request<'_>| -> Reply {
            let value = req.param(name).unwrap_or_default();
            Response::text(StatusCode::OK, format!("{name}={value}")).into()
        }
    }

    /// The request `method target` with no body.
    fn request(method: &str, target: &str) -> Vec<u8> {
        format!("{method} {target} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n").into_bytes()
    }

    /// The status and body text of `response`.
    fn seen(response: &Response) -> (StatusCode, String) {
        let text = std::str::from_utf8(response.body().as_bytes()).expect("a text body");
        (response.status(), text.to_owned())
    }

    #[test]
    fn a_static_segment_wins_over_a_parameter_in_either_order_added() {
        let static_first = Router::new()
            .get("/accounts/me", answer("me"))
            .get("/accounts/{id}", param("id"));
        let param_first = Router::new()
            .get("/accounts/{id}", param("id"))
            .get("/accounts/me", answer("me"));
        let mut harness = Harness::new();
        for router in [&static_first, &param_first] {
            for (target, body) in [
                ("/accounts/me", "me"),
                ("/accounts/you", "id=you"),
                // A parameter is one segment, and the static segment all of it.
                ("/accounts/mee", "id=mee"),
                ("/accounts/m", "id=m"),
            ] {
                let response = ready(harness.call(router, &get(target)));
                assert_eq!(
                    seen(&response),
                    (StatusCode::OK, body.to_owned()),
                    "{target}"
                );
            }
        }
    }

    #[test]
    fn parameters_match_the_path_as_sent_and_are_decoded_after() {
        let router = Router::new()
            .get("/accounts/{id}/score", param("id"))
            .get("/static/{*path}", param("path"));
        let mut harness = Harness::new();
        for (target, body) in [
            // An encoded `/` does not end a segment: the parameter holds it.
            ("/accounts/a%2Fb/score", "id=a/b"),
            ("/accounts/ab%20c/score", "id=ab c"),
            // A catch-all takes the rest of the path, `/`s included, and may hold `..`.
            ("/static/css/site.css", "path=css/site.css"),
            ("/static/%2e%2e/%2e%2e/etc/passwd", "path=../../etc/passwd"),
            ("/static/%2Fetc", "path=/etc"),
        ] {
            let response = ready(harness.call(&router, &get(target)));
            assert_eq!(
                seen(&response),
                (StatusCode::OK, body.to_owned()),
                "{target}"
            );
        }
    }

    #[test]
    fn an_unknown_path_is_404_and_reaches_no_handler() {
        let (calls, counted) = counting();
        let router = Router::new()
            .get("/hello", counted.clone())
            .get("/accounts/{id}", counted.clone())
            .get("/static/{*path}", counted);
        let mut harness = Harness::new();
        for target in [
            "/",
            "/hell",
            "/hello/x",
            // A path matches its pattern exactly: a trailing `/` makes another path.
            "/hello/",
            "/accounts/7/",
            // A parameter takes a segment, never an empty one.
            "/accounts/",
            "/accounts",
            // A catch-all needs at least one character of the rest.
            "/static/",
            "/static",
            // Paths are compared as sent: no case folding, no decoding before matching.
            "/HELLO",
            "/%68ello",
        ] {
            let response = ready(harness.call(&router, &get(target)));
            let not_found = (StatusCode::NOT_FOUND, "not found\n".to_owned());
            assert_eq!(seen(&response), not_found, "{target}");
        }
        assert_eq!(calls.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn another_method_on_a_known_path_is_405_with_allow() {
        let router = Router::new()
            .get("/items/{id}", answer("get"))
            .post("/items/{id}", answer("post"))
            .route(Method::Head, "/head", answer("head"))
            .get("/head", answer("get"))
            .get("/get", answer("get"))
            .route(Method::Head, "/get", answer("head"))
            .delete("/gone", answer("delete"));
        let mut harness = Harness::new();
        // (method, target, Allow): the methods in the order their routes were added, HEAD
        // along with GET, each named once, and OPTIONS, which the router answers, last.
        for (method, target, allow) in [
            ("DELETE", "/items/7", "GET, HEAD, POST, OPTIONS"),
            ("PUT", "/items/7", "GET, HEAD, POST, OPTIONS"),
            // An extension method is refused the same way.
            ("PURGE", "/items/7", "GET, HEAD, POST, OPTIONS"),
            ("POST", "/head", "HEAD, GET, OPTIONS"),
            ("POST", "/get", "GET, HEAD, OPTIONS"),
            // A route without GET does not serve HEAD.
            ("HEAD", "/gone", "DELETE, OPTIONS"),
            ("GET", "/gone", "DELETE, OPTIONS"),
        ] {
            let response = ready(harness.call(&router, &request(method, target)));
            let refused = (
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed\n".to_owned(),
            );
            assert_eq!(seen(&response), refused, "{method} {target}");
            let header = response.headers().find(|(name, _)| *name == "Allow");
            assert_eq!(
                header,
                Some(("Allow", allow.as_bytes())),
                "{method} {target}"
            );
        }
    }

    #[test]
    fn the_404_and_405_are_the_server_s_own_answers() {
        let router = Router::new().get("/a", answer("a"));
        let mut harness = Harness::new();
        for (method, target, reason) in [
            ("GET", "/b", "not-found"),
            ("POST", "/a", "method-not-allowed"),
        ] {
            let response = ready(harness.call(&router, &request(method, target)));
            let error = response.server_error().expect("a built-in answer");
            assert_eq!(
                (error.status(), error.reason()),
                (response.status(), reason)
            );
            let content_type = response.headers().find(|(name, _)| *name == "Content-Type");
            assert!(content_type.is_some(), "{method} {target}");
        }
        let ok = ready(harness.call(&router, &get("/a")));
        assert_eq!(ok.server_error(), None);
    }

    #[test]
    fn the_fallback_answers_paths_no_route_matches_and_nothing_else() {
        let calls = Arc::new(AtomicUsize::new(0));
        let fallback = {
            let calls = Arc::clone(&calls);
            move |req: &Request<'_>| -> Reply {
                calls.fetch_add(1, Ordering::Relaxed);
                let text = format!("fallback {}", req.path());
                Response::text(StatusCode::NOT_FOUND, text).into()
            }
        };
        let router = Router::new().get("/a/{id}", param("id")).fallback(fallback);
        let mut harness = Harness::new();
        for (method, target, status, body) in [
            ("GET", "/a/7", StatusCode::OK, "id=7"),
            ("GET", "/nope", StatusCode::NOT_FOUND, "fallback /nope"),
            ("POST", "/a/", StatusCode::NOT_FOUND, "fallback /a/"),
            // A known path with another method is still the router's 405.
            (
                "POST",
                "/a/7",
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed\n",
            ),
        ] {
            let response = ready(harness.call(&router, &request(method, target)));
            assert_eq!(
                seen(&response),
                (status, body.to_owned()),
                "{method} {target}"
            );
            assert_eq!(
                response.server_error().is_some(),
                status == StatusCode::METHOD_NOT_ALLOWED
            );
        }
        assert_eq!(calls.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn options_on_a_known_path_is_204_with_allow() {
        let router = Router::new()
            .get("/items/{id}", answer("get"))
            .put("/items/{id}", answer("put"))
            .post("/items", answer("post"))
            .route(Method::Options, "/own", answer("own options"))
            .get("/own", answer("get"))
            .any("/mounted", answer("any"));
        let mut harness = Harness::new();
        // (target, Allow), or the application's own answer.
        for (target, allow) in [
            ("/items/7", "GET, HEAD, PUT, OPTIONS"),
            ("/items", "POST, OPTIONS"),
        ] {
            let response = ready(harness.call(&router, &request("OPTIONS", target)));
            assert_eq!(response.status(), StatusCode::NO_CONTENT, "{target}");
            assert_eq!(response.body().as_bytes(), b"", "{target}");
            let header = response.headers().find(|(name, _)| *name == "Allow");
            assert_eq!(header, Some(("Allow", allow.as_bytes())), "{target}");
        }
        // A route of the application's own for OPTIONS, or for every method, takes
        // precedence.
        for (target, body) in [("/own", "own options"), ("/mounted", "any")] {
            let response = ready(harness.call(&router, &request("OPTIONS", target)));
            assert_eq!(
                seen(&response),
                (StatusCode::OK, body.to_owned()),
                "{target}"
            );
        }
        // An unknown path is still 404.
        let response = ready(harness.call(&router, &request("OPTIONS", "/nope")));
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
    }

    #[test]
    fn options_asterisk_is_204_with_every_method_of_the_router() {
        let router = Router::new()
            .post("/a", answer("post"))
            .get("/b", answer("get"))
            .delete("/a", answer("delete"))
            .post("/c", answer("post"))
            .fallback(answer("fallback"));
        let mut harness = Harness::new();
        let response = ready(harness.call(&router, &request("OPTIONS", "*")));
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
        let header = response.headers().find(|(name, _)| *name == "Allow");
        let allow: &[u8] = b"POST, DELETE, GET, HEAD, OPTIONS";
        assert_eq!(header, Some(("Allow", allow)));
        // No routes: OPTIONS alone.
        let response = ready(harness.call(&Router::new(), &request("OPTIONS", "*")));
        let header = response.headers().find(|(name, _)| *name == "Allow");
        assert_eq!(header, Some(("Allow", &b"OPTIONS"[..])));
    }

    #[test]
    fn head_is_served_by_the_get_route_unless_it_has_its_own() {
        let router = Router::new()
            .get("/shared", answer("get"))
            .get("/own", answer("get"))
            .route(Method::Head, "/own", answer("head"));
        let mut harness = Harness::new();
        for (request_line, body) in [
            ("HEAD /shared", "get"),
            ("GET /shared", "get"),
            ("HEAD /own", "head"),
            ("GET /own", "get"),
        ] {
            let raw = format!("{request_line} HTTP/1.1\r\nHost: x\r\n\r\n");
            let response = ready(harness.call(&router, raw.as_bytes()));
            assert_eq!(
                seen(&response),
                (StatusCode::OK, body.to_owned()),
                "{request_line}"
            );
        }
    }

    #[test]
    fn each_shorthand_adds_a_route_for_its_method() {
        let router = Router::new()
            .get("/r", answer("get"))
            .post("/r", answer("post"))
            .put("/r", answer("put"))
            .delete("/r", answer("delete"));
        assert_eq!(
            format!("{router:?}"),
            "[Get /r, Post /r, Put /r, Delete /r]"
        );
        let mut harness = Harness::new();
        for (method, body) in [
            ("GET", "get"),
            ("POST", "post"),
            ("PUT", "put"),
            ("DELETE", "delete"),
        ] {
            let response = ready(harness.call(&router, &request(method, "/r")));
            assert_eq!(
                seen(&response),
                (StatusCode::OK, body.to_owned()),
                "{method}"
            );
        }
    }

    #[test]
    fn the_same_pattern_and_method_again_replaces_the_handler() {
        let router = Router::new()
            .get("/a", answer("first"))
            .post("/a", answer("post"))
            .get("/a", answer("second"))
            .any("/a", answer("any one"))
            .any("/a", answer("any two"));
        assert_eq!(format!("{router:?}"), "[Post /a, Get /a, any /a]");
        assert_eq!(router.routes(), ["/a"]);
        let mut harness = Harness::new();
        for (method, body) in [("GET", "second"), ("POST", "post"), ("PUT", "any two")] {
            let response = ready(harness.call(&router, &request(method, "/a")));
            assert_eq!(
                seen(&response),
                (StatusCode::OK, body.to_owned()),
                "{method}"
            );
        }
    }

    #[test]
    fn requests_are_filed_under_the_pattern_of_their_route() {
        let router = Router::new()
            .get("/hello", answer("hello"))
            .get("/accounts/{id}", param("id"))
            .post("/hello", answer("post"));
        // One name a pattern, in the order added, whatever the methods.
        assert_eq!(router.routes(), ["/hello", "/accounts/{id}"]);
        let mut harness = Harness::new();
        for (method, target, route) in [
            ("GET", "/accounts/1", 1),
            ("GET", "/hello", 0),
            ("GET", "/accounts/2", 1),
            ("POST", "/hello", 0),
            // A refused method is filed under the path's route too.
            ("DELETE", "/accounts/3", 1),
        ] {
            let _ = harness.call(&router, &request(method, target));
            assert_eq!(harness.route(), route, "{method} {target}");
        }
    }

    #[test]
    fn conflicting_or_malformed_patterns_are_route_errors() {
        let ok = || answer("ok");
        let base = || {
            Router::new()
                .get("/a/{x}", ok())
                .get("/files/{*rest}", ok())
        };
        for pattern in [
            // Would match the same paths as a route already there.
            "/a/{y}",
            "/files/{*path}",
            // Malformed.
            "/b/{",
            "/b/{}",
            "/b/{*rest}/c",
        ] {
            let Err(error) = base().try_route(Method::Get, pattern, ok()) else {
                panic!("{pattern} was added");
            };
            let text = error.to_string();
            assert!(text.starts_with(&format!("route {pattern:?}: ")), "{text}");
        }
        // Another method for the same pattern is no conflict.
        assert!(base().try_route(Method::Post, "/a/{x}", ok()).is_ok());
    }

    #[test]
    #[should_panic(expected = r#"route "/a/{y}": "#)]
    fn route_panics_on_a_conflict() {
        let _ = Router::new()
            .get("/a/{x}", answer("x"))
            .get("/a/{y}", answer("y"));
    }

    #[test]
    #[should_panic(expected = r#"route "/a/{y}": "#)]
    fn any_panics_on_a_conflict() {
        let _ = Router::new()
            .get("/a/{x}", answer("x"))
            .any("/a/{y}", answer("y"));
    }

    #[test]
    #[should_panic(expected = "routes need a named method")]
    fn a_route_needs_a_named_method() {
        let _ = Router::new().try_route(Method::Other, "/a", answer("a"));
    }

    #[test]
    fn a_route_for_any_method_takes_those_not_named_apart() {
        let named = |text: &'static str| {
            move |_: &Request<'_>| -> Reply { Response::text(StatusCode::OK, text).into() }
        };
        let router = Router::new()
            .get("/a", named("get"))
            .any("/a", named("any"))
            .any("/b", named("b"));
        let mut harness = Harness::new();
        for (request, seen) in [
            ("GET /a", "get"),
            // HEAD goes to the GET route before the route for any method.
            ("HEAD /a", "get"),
            ("DELETE /a", "any"),
            ("PURGE /a", "any"),
            ("OPTIONS /b", "b"),
        ] {
            let raw = format!("{request} HTTP/1.1\r\nHost: x\r\n\r\n");
            let response = ready(harness.call(&router, raw.as_bytes()));
            assert_eq!(response.status(), StatusCode::OK, "{request}");
            assert_eq!(response.body().as_bytes(), seen.as_bytes(), "{request}");
        }
        assert_eq!(format!("{router:?}"), "[Get /a, any /a, any /b]");
    }

    #[test]
    fn parameters_and_queries_that_do_not_decode_to_utf8_are_400_before_the_handler() {
        let calls = Arc::new(AtomicUsize::new(0));
        let router = echo_router(&calls);
        let mut harness = Harness::new();
        for (target, reason) in [
            // A byte that starts no UTF-8 sequence.
            ("/accounts/%FF", "path parameter `id`"),
            ("/accounts/%FE", "path parameter `id`"),
            // Overlong, surrogate, past U+10FFFF, truncated.
            ("/accounts/%C0%AF", "path parameter `id`"),
            ("/accounts/%ED%A0%80", "path parameter `id`"),
            ("/accounts/%F4%90%80%80", "path parameter `id`"),
            ("/accounts/ab%E2%82", "path parameter `id`"),
            // A continuation byte after raw UTF-8.
            ("/accounts/caf\u{e9}%A9", "path parameter `id`"),
            // Query values and names, whole or split by `&` or `=`.
            ("/accounts/1?q=%FF", "query"),
            ("/accounts/1?%FF=1", "query"),
            ("/accounts/1?q=1&r=%C3", "query"),
            ("/accounts/1?q=%C3&%A9", "query"),
        ] {
            let response = ready(harness.call(&router, &get(target)));
            assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{target}");
            let text = std::str::from_utf8(response.body().as_bytes()).unwrap();
            assert_eq!(
                text,
                format!("bad request: {reason} is not UTF-8 once percent-decoded\n"),
                "{target}"
            );
        }
        assert_eq!(calls.load(Ordering::Relaxed), 0, "no handler ran");
    }

    #[test]
    fn parameters_and_queries_that_decode_to_utf8_reach_the_handler() {
        let calls = Arc::new(AtomicUsize::new(0));
        let router = echo_router(&calls);
        let mut harness = Harness::new();
        for (target, seen) in [
            ("/accounts/acc-1", r#"Some("acc-1") None"#),
            (
                "/accounts/caf%C3%A9?q=%E2%82%AC",
                r#"Some("café") Some("€")"#,
            ),
            (
                "/accounts/caf\u{e9}?q=a+b%20c",
                r#"Some("café") Some("a b c")"#,
            ),
            ("/accounts/%F0%9F%A6%80?q=", r#"Some("🦀") Some("")"#),
        ] {
            let response = ready(harness.call(&router, &get(target)));
            assert_eq!(response.status(), StatusCode::OK, "{target}");
            assert_eq!(response.body().as_bytes(), seen.as_bytes(), "{target}");
        }
        assert_eq!(calls.load(Ordering::Relaxed), 4);
    }
}
