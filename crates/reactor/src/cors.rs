//! Cross-origin resource sharing (the Fetch standard's CORS protocol), opt in: a [`Cors`]
//! policy wrapped around a handler answers preflights itself and marks the responses to
//! origins it allows.
//!
//! # Theory of operation
//!
//! A browser asks before a cross-origin request that is not "simple" (another method than
//! GET, HEAD or POST, a JSON `Content-Type`, a header of its own): it sends a *preflight*,
//! `OPTIONS` with `Origin` and `Access-Control-Request-Method` (and
//! `Access-Control-Request-Headers` for the headers it would add). The policy answers it on
//! the reactor, with no job and without the wrapped handler: 204 with the
//! `Access-Control-Allow-*` headers when the origin, the method and every header are
//! allowed, 403 otherwise. The browser then sends the request itself, with `Origin`; its
//! response is the wrapped handler's, with `Access-Control-Allow-Origin` added when the
//! origin is allowed. Without that header the browser keeps the response from the page.
//!
//! A policy with a list of origins answers each with its own name, so every response says
//! `Vary: Origin`: a cache must not give one origin's answer to another.

use std::{fmt::Write as _, sync::Arc, time::Duration};

use rtserve_protocol::{Method, StatusCode};

use crate::{Handler, Reply, Request, Response};

/// A CORS policy: the origins, methods and request headers it allows, and how long a browser
/// may keep a preflight's answer. Wrap a handler in it with [`wrap`](Self::wrap).
///
/// It allows no origin until told: name them with [`allow_origin`](Self::allow_origin), or
/// allow every one with [`allow_any_origin`](Self::allow_any_origin). Methods default to GET,
/// HEAD and POST, request headers to none (a browser sends the CORS-safelisted ones, such as
/// `Accept`, without asking), max-age to none (the browser's default, 5 s).
///
/// # Implementation notes
///
/// The 503s the reactor gives an offloaded request it sheds (and a hook's answers in their
/// place) do not pass through the wrapped handler, so they carry no
/// `Access-Control-Allow-Origin`: a page sees them as a failed fetch, not as a 503.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use rtserve_reactor::{Cors, Harness, Method, Reply, Request, Response, Router, StatusCode};
///
/// let api = Router::new().put("/items/{id}", |_: &Request<'_>| -> Reply {
///     Response::new(StatusCode::NO_CONTENT).into()
/// });
/// let api = Cors::new()
///     .allow_origin("https://app.example")
///     .allow_methods(&[Method::Get, Method::Put])
///     .allow_headers(&["Content-Type"])
///     .max_age(Duration::from_secs(600))
///     .wrap(api);
///
/// let preflight = b"OPTIONS /items/7 HTTP/1.1\r\nHost: api.example\r\n\
///     Origin: https://app.example\r\nAccess-Control-Request-Method: PUT\r\n\
///     Access-Control-Request-Headers: content-type\r\n\r\n";
/// let Reply::Ready(response) = Harness::new().call(&api, preflight) else { panic!() };
/// assert_eq!(response.status(), StatusCode::NO_CONTENT);
/// let allowed = response.headers().find(|(name, _)| *name == "Access-Control-Allow-Methods");
/// assert_eq!(allowed, Some(("Access-Control-Allow-Methods", &b"GET, PUT"[..])));
/// ```
#[derive(Clone, Debug)]
pub struct Cors {
    origins: Origins,
    methods: Vec<Method>,
    /// Allowed request header names, in lower case.
    headers: Vec<String>,
    max_age: Option<Duration>,
    credentials: bool,
}

/// The origins a [`Cors`] policy allows.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Origins {
    /// Those named, each as a browser serializes it (`https://app.example:8443`).
    Listed(Vec<String>),
    /// Every origin.
    Any,
}

/// A handler with a [`Cors`] policy around it (see [`Cors::wrap`]).
#[derive(Debug)]
pub struct WithCors<H> {
    /// Shared with the jobs and futures whose responses it marks.
    cors: Arc<Cors>,
    /// `Access-Control-Allow-Methods`, made once.
    methods: String,
    /// `Access-Control-Allow-Headers`, made once.
    headers: String,
    /// `Access-Control-Max-Age`, made once.
    max_age: Option<String>,
    handler: H,
}

impl Cors {
    /// A policy that allows no origin yet; GET, HEAD and POST; no request header beyond the
    /// safelisted ones; no max-age; no credentials.
    pub fn new() -> Self {
        Self {
            origins: Origins::Listed(Vec::new()),
            methods: vec![Method::Get, Method::Head, Method::Post],
            headers: Vec::new(),
            max_age: None,
            credentials: false,
        }
    }

    /// Allows `origin` too, as a browser writes it in `Origin`: scheme, host and any port,
    /// without a path (`https://app.example`, `http://127.0.0.1:8080`). Compared exactly.
    ///
    /// # Panics
    ///
    /// If `origin` ends with `/` or has no `://`: a mistake in the program, which would
    /// never match.
    #[must_use]
    #[track_caller]
    pub fn allow_origin(mut self, origin: &str) -> Self {
        assert!(
            origin.contains("://") && !origin.ends_with('/'),
            "a CORS origin is scheme://host[:port], without a path: {origin:?}"
        );
        if let Origins::Listed(origins) = &mut self.origins {
            origins.push(origin.to_owned());
        }
        self
    }

    /// Allows every origin: responses say `Access-Control-Allow-Origin: *` (or name the
    /// origin, with [`allow_credentials`](Self::allow_credentials), which `*` does not
    /// cover).
    #[must_use]
    pub fn allow_any_origin(mut self) -> Self {
        self.origins = Origins::Any;
        self
    }

    /// The methods a cross-origin request may use, in place of those set before.
    #[must_use]
    pub fn allow_methods(mut self, methods: &[Method]) -> Self {
        self.methods = methods.to_vec();
        self
    }

    /// The request headers a cross-origin request may add (compared without regard to
    /// case), in place of those set before.
    #[must_use]
    pub fn allow_headers(mut self, headers: &[&str]) -> Self {
        self.headers = headers.iter().map(|h| h.to_ascii_lowercase()).collect();
        self
    }

    /// How long a browser may keep a preflight's answer (`Access-Control-Max-Age`, in whole
    /// seconds).
    #[must_use]
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.max_age = Some(max_age);
        self
    }

    /// Lets a page send cookies and credentials along (`Access-Control-Allow-Credentials:
    /// true`); the response then names the origin even when any is allowed.
    #[must_use]
    pub fn allow_credentials(mut self) -> Self {
        self.credentials = true;
        self
    }

    /// `handler`, with this policy around it.
    pub fn wrap<H: Handler>(self, handler: H) -> WithCors<H> {
        let mut methods = String::new();
        for name in self.methods.iter().filter_map(|&m| method_name(m)) {
            if !methods.is_empty() {
                methods.push_str(", ");
            }
            methods.push_str(name);
        }
        let headers = self.headers.join(", ");
        let max_age = self.max_age.map(|age| {
            let mut text = String::new();
            let _ = write!(text, "{}", age.as_secs());
            text
        });
        WithCors {
            cors: Arc::new(self),
            methods,
            headers,
            max_age,
            handler,
        }
    }

    /// Whether `origin` may read responses.
    fn allows(&self, origin: &[u8]) -> bool {
        match &self.origins {
            Origins::Any => true,
            Origins::Listed(origins) => origins.iter().any(|o| o.as_bytes() == origin),
        }
    }

    /// Why a preflight from an allowed origin is refused, if it is: its method, or a header
    /// it would add, is not allowed.
    fn refuses(&self, method: &[u8], headers: Option<&[u8]>) -> Option<&'static str> {
        let allowed = self
            .methods
            .iter()
            .filter_map(|&m| method_name(m))
            .any(|name| name.as_bytes() == method);
        if !allowed {
            return Some("CORS preflight refused: method not allowed\n");
        }
        let requested = headers.unwrap_or_default().split(|&b| b == b',');
        for name in requested.map(<[u8]>::trim_ascii).filter(|n| !n.is_empty()) {
            if !self
                .headers
                .iter()
                .any(|h| h.as_bytes().eq_ignore_ascii_case(name))
            {
                return Some("CORS preflight refused: header not allowed\n");
            }
        }
        None
    }

    /// `response` with the headers that let `origin` read it (it is allowed), and `Vary`.
    fn mark(&self, response: Response, origin: Option<&[u8]>) -> Response {
        let response = match &self.origins {
            Origins::Any if !self.credentials => {
                return response.with_header("Access-Control-Allow-Origin", "*");
            }
            // The answer depends on the origin: caches keep one per origin.
            _ => response.with_header("Vary", "Origin"),
        };
        let Some(origin) = origin else {
            return response;
        };
        let response = response.with_header("Access-Control-Allow-Origin", origin.to_vec());
        if self.credentials {
            response.with_header("Access-Control-Allow-Credentials", "true")
        } else {
            response
        }
    }
}

impl Default for Cors {
    fn default() -> Self {
        Self::new()
    }
}

impl<H: Handler> WithCors<H> {
    /// The answer to a preflight from `origin`: 204 with what the policy allows, or 403
    /// saying what it does not.
    fn preflight(&self, req: &Request<'_>, origin: &[u8], method: &[u8]) -> Response {
        let cors = &self.cors;
        let refusal = if cors.allows(origin) {
            cors.refuses(method, req.header("Access-Control-Request-Headers"))
        } else {
            Some("CORS preflight refused: origin not allowed\n")
        };
        if let Some(why) = refusal {
            return Response::text(StatusCode::FORBIDDEN, why).with_header(
                "Vary",
                "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
            );
        }
        let mut response = Response::new(StatusCode::NO_CONTENT)
            .with_header("Access-Control-Allow-Methods", self.methods.clone());
        if !self.headers.is_empty() {
            response = response.with_header("Access-Control-Allow-Headers", self.headers.clone());
        }
        if let Some(age) = &self.max_age {
            response = response.with_header("Access-Control-Max-Age", age.clone());
        }
        cors.mark(response, Some(origin)).with_header(
            "Vary",
            "Access-Control-Request-Method, Access-Control-Request-Headers",
        )
    }
}

impl<H: Handler> Handler for WithCors<H> {
    fn handle(&self, req: &Request<'_>) -> Reply {
        let origin = req.header("Origin");
        if req.method() == Method::Options
            && let Some(origin) = origin
            && let Some(method) = req.header("Access-Control-Request-Method")
        {
            return self.preflight(req, origin, method).into();
        }
        let reply = self.handler.handle(req);
        let allowed = origin.filter(|o| self.cors.allows(o));
        if allowed.is_none() && self.cors.origins == Origins::Any {
            // Nothing to add: a request without Origin, to a policy the same for everyone.
            return reply;
        }
        match reply {
            Reply::Ready(response) => self.cors.mark(response, allowed).into(),
            Reply::Offload(job) => {
                let (cors, origin) = (Arc::clone(&self.cors), allowed.map(<[u8]>::to_vec));
                Reply::Offload(job.map_response(move |r| cors.mark(r, origin.as_deref())))
            }
            #[cfg(feature = "tokio")]
            Reply::Async(job) => {
                let (cors, origin) = (Arc::clone(&self.cors), allowed.map(<[u8]>::to_vec));
                Reply::Async(job.map_response(move |r| cors.mark(r, origin.as_deref())))
            }
        }
    }

    fn routes(&self) -> Vec<String> {
        self.handler.routes()
    }
}

/// A method's name, for `Access-Control-Allow-Methods`; none for [`Method::Other`].
fn method_name(method: Method) -> Option<&'static str> {
    Some(match method {
        Method::Get => "GET",
        Method::Head => "HEAD",
        Method::Post => "POST",
        Method::Put => "PUT",
        Method::Delete => "DELETE",
        Method::Connect => "CONNECT",
        Method::Options => "OPTIONS",
        Method::Trace => "TRACE",
        Method::Patch => "PATCH",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use std::{sync::atomic::Ordering, time::Instant};

    use super::*;
    use crate::{
        Harness, JobContext, Router,
        harness::testing::{counting, ready},
        pool::{Job, Tickets},
    };

    const APP: &str = "https://app.example";

    /// A router with GET and PUT `/items/{id}`, and a GET `/report` whose answer is a job.
    fn api() -> Router {
        let ok = |_: &Request<'_>| -> Reply { Response::text(StatusCode::OK, "ok\n").into() };
        Router::new()
            .get("/items/{id}", ok)
            .put("/items/{id}", ok)
            .get("/report", |_: &Request<'_>| -> Reply {
                Reply::offload(|_: &JobContext| Response::text(StatusCode::OK, "report\n"))
            })
    }

    /// The policy the tests share: one origin, GET and PUT, `Content-Type` and `X-Trace`.
    fn policy() -> Cors {
        Cors::new()
            .allow_origin(APP)
            .allow_methods(&[Method::Get, Method::Put])
            .allow_headers(&["Content-Type", "X-Trace"])
            .max_age(Duration::from_secs(600))
    }

    /// `method target` with `headers` (each a whole line without its end).
    fn request(method: &str, target: &str, headers: &[&str]) -> Vec<u8> {
        let mut raw = format!("{method} {target} HTTP/1.1\r\nHost: api.example\r\n");
        for header in headers {
            raw.push_str(header);
            raw.push_str("\r\n");
        }
        raw.push_str("\r\n");
        raw.into_bytes()
    }

    /// The values of every header named `name`, joined as one list.
    fn header(response: &Response, name: &str) -> Option<String> {
        let values: Vec<_> = response
            .headers()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
            .collect();
        (!values.is_empty()).then(|| values.join(", "))
    }

    #[test]
    fn an_allowed_preflight_is_204_with_what_the_policy_allows_and_no_handler_runs() {
        let (calls, counted) = counting();
        let api = policy().wrap(Router::new().put("/items/{id}", counted));
        let mut harness = Harness::new();
        for requested in [
            None,
            Some("Access-Control-Request-Headers: content-type"),
            Some("Access-Control-Request-Headers: X-TRACE , content-type"),
        ] {
            let mut headers = vec![
                "Origin: https://app.example",
                "Access-Control-Request-Method: PUT",
            ];
            headers.extend(requested);
            let raw = request("OPTIONS", "/items/7", &headers);
            let response = ready(harness.call(&api, &raw));
            assert_eq!(response.status(), StatusCode::NO_CONTENT, "{requested:?}");
            assert_eq!(response.body().as_bytes(), b"");
            for (name, value) in [
                ("Access-Control-Allow-Origin", APP),
                ("Access-Control-Allow-Methods", "GET, PUT"),
                ("Access-Control-Allow-Headers", "content-type, x-trace"),
                ("Access-Control-Max-Age", "600"),
                (
                    "Vary",
                    "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
                ),
            ] {
                assert_eq!(header(&response, name).as_deref(), Some(value), "{name}");
            }
            assert_eq!(header(&response, "Access-Control-Allow-Credentials"), None);
        }
        assert_eq!(calls.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_preflight_the_policy_does_not_allow_is_403_without_allow_headers() {
        let api = policy().wrap(api());
        let mut harness = Harness::new();
        // (Origin, requested method, requested headers, why)
        for (origin, method, headers, why) in [
            ("https://evil.example", "PUT", "", "origin not allowed"),
            // Origins compare exactly: scheme and port are part of them.
            ("http://app.example", "GET", "", "origin not allowed"),
            ("https://app.example:8443", "GET", "", "origin not allowed"),
            (APP, "DELETE", "", "method not allowed"),
            // Method names are case-sensitive (RFC 9110 §9.1).
            (APP, "put", "", "method not allowed"),
            (APP, "PUT", "x-other", "header not allowed"),
            (
                APP,
                "PUT",
                "content-type, authorization",
                "header not allowed",
            ),
        ] {
            let origin_line = format!("Origin: {origin}");
            let method_line = format!("Access-Control-Request-Method: {method}");
            let headers_line = format!("Access-Control-Request-Headers: {headers}");
            let mut lines = vec![origin_line.as_str(), method_line.as_str()];
            if !headers.is_empty() {
                lines.push(&headers_line);
            }
            let raw = request("OPTIONS", "/items/7", &lines);
            let response = ready(harness.call(&api, &raw));
            assert_eq!(
                response.status(),
                StatusCode::FORBIDDEN,
                "{origin} {method}"
            );
            let text = format!("CORS preflight refused: {why}\n");
            assert_eq!(response.body().as_bytes(), text.as_bytes());
            let named: Vec<_> = response.headers().map(|(n, _)| n).collect();
            assert!(
                !named.iter().any(|n| n.starts_with("Access-Control")),
                "{named:?}"
            );
        }
    }

    #[test]
    fn responses_to_an_allowed_origin_say_so_and_vary_by_origin() {
        let api = policy().wrap(api());
        let mut harness = Harness::new();
        // (Origin line, Access-Control-Allow-Origin)
        for (origin, allowed) in [
            (Some("Origin: https://app.example"), Some(APP)),
            (Some("Origin: https://evil.example"), None),
            (None, None),
        ] {
            let raw = request("GET", "/items/7", origin.as_slice());
            let response = ready(harness.call(&api, &raw));
            assert_eq!(response.status(), StatusCode::OK);
            assert_eq!(
                header(&response, "Access-Control-Allow-Origin").as_deref(),
                allowed,
                "{origin:?}"
            );
            assert_eq!(header(&response, "Vary").as_deref(), Some("Origin"));
        }
        // The router's own answers are marked too: its 404, and OPTIONS without a preflight's
        // headers.
        let raw = request("GET", "/nope", &["Origin: https://app.example"]);
        let response = ready(harness.call(&api, &raw));
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(
            header(&response, "Access-Control-Allow-Origin").as_deref(),
            Some(APP)
        );
        let raw = request("OPTIONS", "/items/7", &["Origin: https://app.example"]);
        let response = ready(harness.call(&api, &raw));
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
        assert_eq!(
            header(&response, "Allow").as_deref(),
            Some("GET, HEAD, PUT, OPTIONS")
        );
        assert_eq!(
            header(&response, "Access-Control-Allow-Origin").as_deref(),
            Some(APP)
        );
    }

    #[test]
    fn an_offloaded_answer_is_marked_when_its_job_has_run() {
        let api = policy().wrap(api());
        let raw = request("GET", "/report", &["Origin: https://app.example"]);
        let Reply::Offload(job) = Harness::new().call(&api, &raw) else {
            panic!("offloaded");
        };
        let ctx = JobContext {
            deadline: Instant::now() + Duration::from_secs(60),
            ticket: Tickets::new(1).issue(0),
        };
        let response = (job.work)(&ctx);
        assert_eq!(response.body().as_bytes(), b"report\n");
        assert_eq!(
            header(&response, "Access-Control-Allow-Origin").as_deref(),
            Some(APP)
        );
        assert_eq!(header(&response, "Vary").as_deref(), Some("Origin"));
        // A job keeps its deadline through the mapping.
        let job = Job::new(|_: &JobContext| Response::new(StatusCode::OK))
            .with_deadline(Duration::from_millis(5))
            .map_response(|r| r);
        assert_eq!(job.deadline, Some(Duration::from_millis(5)));
    }

    #[test]
    fn any_origin_is_a_star_unless_credentials_are_allowed() {
        let mut harness = Harness::new();
        let raw = request("GET", "/items/7", &["Origin: https://anyone.example"]);
        let any = Cors::new().allow_any_origin().wrap(api());
        let response = ready(harness.call(&any, &raw));
        assert_eq!(
            header(&response, "Access-Control-Allow-Origin").as_deref(),
            Some("*")
        );
        assert_eq!(header(&response, "Vary"), None);
        // No Origin: nothing added.
        let response = ready(harness.call(&any, &request("GET", "/items/7", &[])));
        assert_eq!(response.headers().count(), 1, "Content-Type alone");

        let with_credentials = Cors::new()
            .allow_any_origin()
            .allow_credentials()
            .wrap(api());
        let response = ready(harness.call(&with_credentials, &raw));
        for (name, value) in [
            ("Access-Control-Allow-Origin", "https://anyone.example"),
            ("Access-Control-Allow-Credentials", "true"),
            ("Vary", "Origin"),
        ] {
            assert_eq!(header(&response, name).as_deref(), Some(value), "{name}");
        }
    }

    #[test]
    fn the_wrapped_handler_s_routes_are_its_own() {
        assert_eq!(policy().wrap(api()).routes(), ["/items/{id}", "/report"]);
    }

    #[test]
    #[should_panic(expected = "a CORS origin is scheme://host[:port], without a path")]
    fn an_origin_with_a_path_is_a_mistake() {
        let _ = Cors::new().allow_origin("https://app.example/");
    }
}
