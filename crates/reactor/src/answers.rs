//! The server's own answers, made in one place: the 404 and 405 of the router, the 503s of
//! its refusals (each naming its reason in the body and in the `rtserve-shed` header), the
//! 408 for a request that did not come in time, the 400s of a request it cannot read, and the
//! 500 for a handler that failed or panicked.
//! Static text and headers, so that an answer allocates nothing for them; each is marked with
//! its [`ServerError`], so that an application's [`ErrorAnswers`] can give it another body
//! when it is sent.

use std::{
    fmt,
    panic::{AssertUnwindSafe, catch_unwind},
    sync::Arc,
};

use rtserve_protocol::{RecvError, StatusCode};

use crate::{Response, Shed};

/// One of the server's own error answers: its status, a stable name for why it was given,
/// and a line of English saying so. An [`ErrorAnswers`] hook is called with it.
///
/// | Status | [`reason`](Self::reason) | Given for |
/// |---|---|---|
/// | 404 | `not-found` | a path no route matches (and no [fallback](crate::Router::fallback)) |
/// | 405 | `method-not-allowed` | a method the path's routes do not take (`Allow` names those they do) |
/// | 408 | `request-timeout` | a head or body that did not come in time |
/// | 400 | `bad-deadline-header` | a caller's budget that cannot be read |
/// | 400 | `not-utf8` | a path parameter or query that is not UTF-8 once decoded |
/// | 400, 413, 414, 417, 431, 501, 505 | `bad-request` | a request the protocol layer cannot read (its message says what) |
/// | 503 | a [`Shed`] reason, `body-budget` or `output-budget` | a refusal (`rtserve-shed` names the same reason) |
/// | 500 | `internal-error` | a handler, job or future that failed or panicked |
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerError {
    status: StatusCode,
    reason: &'static str,
    message: &'static str,
}

impl ServerError {
    /// The description of a built-in answer.
    pub(crate) const fn new(
        status: StatusCode,
        reason: &'static str,
        message: &'static str,
    ) -> Self {
        Self {
            status,
            reason,
            message,
        }
    }

    /// The status the server answers with.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// Why, as a stable lower-case name (see the table above), fit for a JSON field or a
    /// metric label.
    pub fn reason(&self) -> &'static str {
        self.reason
    }

    /// Why, as one line of English without its line end: the built-in body's text.
    pub fn message(&self) -> &'static str {
        self.message
    }
}

/// Gives the server's own error answers (see [`ServerError`]) the body, content type and
/// status of the application's choosing, so that a JSON API answers JSON everywhere; set it
/// as [`Config::error_answers`](crate::Config::error_answers).
///
/// The reactor calls it as it sends a built-in answer, on the reactor thread, so it must be
/// quick. The headers that belong to the answer (`Allow` of a 405, `Retry-After` and
/// `rtserve-shed` of a 503) are added to what it returns. A hook that panics gets the
/// built-in 500 in place of its answer. Without a hook the built-in answers are `text/plain`
/// and allocate nothing.
///
/// # Examples
///
/// ```
/// use rtserve_reactor::{Config, ErrorAnswers, Response, ServerError};
///
/// let mut config = Config::default();
/// config.error_answers = Some(ErrorAnswers::new(|error: &ServerError| {
///     let body = format!(r#"{{"error":"{}","message":"{}"}}"#, error.reason(), error.message());
///     Response::new(error.status())
///         .with_content_type("application/json")
///         .with_body(body)
/// }));
/// ```
#[derive(Clone)]
pub struct ErrorAnswers(Arc<dyn Fn(&ServerError) -> Response + Send + Sync>);

impl ErrorAnswers {
    /// A hook that answers each built-in error with what `answer` makes of it.
    pub fn new(answer: impl Fn(&ServerError) -> Response + Send + Sync + 'static) -> Self {
        Self(Arc::new(answer))
    }

    /// The answer to send in place of `response`, if it is one of the server's own: the
    /// hook's, with the built-in's headers added; or the built-in 500 if the hook panicked.
    pub(crate) fn shape(&self, response: &Response) -> Option<Response> {
        let error = response.server_error()?;
        let shaped = catch_unwind(AssertUnwindSafe(|| (self.0)(&error)));
        Some(match shaped {
            Ok(shaped) => response.carry_headers_to(shaped),
            Err(_) => internal_error(),
        })
    }
}

impl fmt::Debug for ErrorAnswers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ErrorAnswers(..)")
    }
}

/// A built-in `text/plain` answer whose body is `$message` and a line end, marked with its
/// [`ServerError`]: all of it static.
macro_rules! builtin {
    ($status:expr, $reason:expr, $message:literal) => {
        Response::text($status, concat!($message, "\n")).builtin(Builtin::Listed(
            const { &ServerError::new($status, $reason, $message) },
        ))
    };
}

/// Which built-in answer a response is, as it carries it: small, so that every
/// [`Response`] stays small.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Builtin {
    /// One of this module's answers.
    Listed(&'static ServerError),
    /// The answer to a request the protocol layer cannot read.
    Unreadable(RecvError),
}

impl Builtin {
    /// What the hook is told.
    pub(crate) fn error(self) -> ServerError {
        match self {
            Self::Listed(error) => *error,
            Self::Unreadable(error) => {
                ServerError::new(error.status(), "bad-request", error.as_str())
            }
        }
    }
}

/// Each reason's `rtserve-shed` header, in the order of [`Shed::ALL`], its value the
/// reason's [`Shed::as_str`]: static, so that a refusal allocates nothing for it.
static SHED_HEADERS: [[(&str, &[u8]); 1]; Shed::ALL.len()] = {
    let mut headers = [[("rtserve-shed", b"" as &[u8])]; Shed::ALL.len()];
    let mut i = 0;
    while i < Shed::ALL.len() {
        headers[i][0].1 = Shed::ALL[i].as_str().as_bytes();
        i += 1;
    }
    headers
};

/// The 404 for a path no route matches.
pub(crate) fn not_found() -> Response {
    builtin!(StatusCode::NOT_FOUND, "not-found", "not found")
}

/// The 405 for a method the path's routes do not take; `allow` names those they do
/// (RFC 9110 §15.5.6).
pub(crate) fn method_not_allowed(allow: String) -> Response {
    builtin!(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "method not allowed"
    )
    .with_header("Allow", allow)
}

/// The 503 for an offloaded request shed for `reason`, with `Retry-After` if configured.
pub(crate) fn shed(reason: Shed, retry_after: Option<u32>) -> Response {
    use StatusCode as S;

    let response = match reason {
        Shed::QueueFull => builtin!(
            S::SERVICE_UNAVAILABLE,
            Shed::QueueFull.as_str(),
            "overloaded: the queue is full"
        ),
        Shed::ExpectedMiss => builtin!(
            S::SERVICE_UNAVAILABLE,
            Shed::ExpectedMiss.as_str(),
            "overloaded: expected to miss the deadline"
        ),
        Shed::NotStarted => builtin!(
            S::SERVICE_UNAVAILABLE,
            Shed::NotStarted.as_str(),
            "overloaded: not started in time"
        ),
        Shed::Deadline => builtin!(
            S::SERVICE_UNAVAILABLE,
            Shed::Deadline.as_str(),
            "deadline exceeded"
        ),
        Shed::InFlight => builtin!(
            S::SERVICE_UNAVAILABLE,
            Shed::InFlight.as_str(),
            "overloaded: too many requests in flight on this route"
        ),
        Shed::CallerBudget => builtin!(
            S::SERVICE_UNAVAILABLE,
            Shed::CallerBudget.as_str(),
            "the caller's budget is spent"
        ),
    };
    let response = response.with_static_headers(&SHED_HEADERS[reason as usize]);
    match retry_after {
        Some(seconds) => response.with_header("Retry-After", seconds.to_string().into_bytes()),
        None => response,
    }
}

/// The 408 for a head that did not come in time (RFC 9110 §15.5.9).
pub(crate) fn request_timeout() -> Response {
    builtin!(
        StatusCode::REQUEST_TIMEOUT,
        "request-timeout",
        "request timeout"
    )
}

/// The 408 for a body that came too slowly, saying how.
pub(crate) fn body_timeout(how: crate::body::TooSlow) -> Response {
    use crate::body::TooSlow;

    match how {
        TooSlow::Deadline => builtin!(
            StatusCode::REQUEST_TIMEOUT,
            "request-timeout",
            "request timeout: the body took longer than allowed"
        ),
        TooSlow::Pause => builtin!(
            StatusCode::REQUEST_TIMEOUT,
            "request-timeout",
            "request timeout: the body paused too long"
        ),
        TooSlow::Rate => builtin!(
            StatusCode::REQUEST_TIMEOUT,
            "request-timeout",
            "request timeout: the body arrived below the minimum rate"
        ),
        TooSlow::Crowded => no_room_for_body(),
    }
}

/// A caller's budget header in neither form the convention allows, or sent twice (see
/// `caller.rs`).
pub(crate) fn bad_deadline_header() -> Response {
    builtin!(
        StatusCode::BAD_REQUEST,
        "bad-deadline-header",
        "bad deadline header"
    )
}

/// The 400 for a path parameter or query that is not UTF-8 once percent-decoded, its body
/// `text` (which names the part).
pub(crate) fn not_utf8(text: String) -> Response {
    const ERROR: ServerError = ServerError::new(
        StatusCode::BAD_REQUEST,
        "not-utf8",
        "a path parameter or the query is not UTF-8 once percent-decoded",
    );
    Response::text(StatusCode::BAD_REQUEST, text).builtin(Builtin::Listed(&ERROR))
}

/// The answer to a request the protocol layer cannot read, for the hook to shape (the
/// reactor sends `send_error`'s own when there is no hook). Its body is empty: the hook's
/// takes its place.
pub(crate) fn unreadable(error: RecvError) -> Response {
    Response::new(error.status()).builtin(Builtin::Unreadable(error))
}

/// The body budget's refusal.
pub(crate) fn no_room_for_body() -> Response {
    builtin!(
        StatusCode::SERVICE_UNAVAILABLE,
        "body-budget",
        "overloaded: no room to buffer the request body"
    )
    .with_static_headers(&[("rtserve-shed", b"body-budget")])
}

/// The output budget's refusal.
pub(crate) fn no_room_to_send() -> Response {
    builtin!(
        StatusCode::SERVICE_UNAVAILABLE,
        "output-budget",
        "overloaded: no room to buffer the response"
    )
    .with_static_headers(&[("rtserve-shed", b"output-budget")])
}

/// A handler (or job, or future, or service) that failed: it panicked, or its answer could
/// not be had.
pub(crate) fn internal_error() -> Response {
    builtin!(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal-error",
        "internal server error"
    )
}

/// What `work` returns, or the 500 of [`internal_error`] if it panics: a handler, a job or a
/// poll of a future that panics fails its own request alone. The panic hook has reported the
/// panic by then.
///
/// # Implementation notes
///
/// `work` is taken as unwind-safe: after a panic nothing reads what it left half done as if
/// it were whole (the request is answered with the 500, the job's closure is gone, a future
/// that panicked is not polled again). A handler that keeps state across requests and
/// panics mid-update is its own to make consistent, as with any panic it catches.
pub(crate) fn internal_error_on_panic<T: From<Response>>(work: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(work)).unwrap_or_else(|_| internal_error().into())
}

#[cfg(test)]
mod tests {
    use std::task::Poll;

    use super::*;
    use crate::Reply;

    #[test]
    fn each_shed_names_its_own_reason() {
        for reason in Shed::ALL {
            let response = shed(reason, None);
            let named: Vec<_> = response
                .headers()
                .filter(|&(name, _)| name == "rtserve-shed")
                .map(|(_, value)| value.to_vec())
                .collect();
            assert_eq!(named, [reason.as_str().as_bytes()], "{reason:?}");
        }
    }

    /// Every answer the server makes of its own, with its status and reason.
    fn every_builtin() -> Vec<(Response, StatusCode, &'static str)> {
        use crate::body::TooSlow;

        let (bad, unavailable) = (StatusCode::BAD_REQUEST, StatusCode::SERVICE_UNAVAILABLE);
        let timeout = StatusCode::REQUEST_TIMEOUT;
        let mut all = vec![
            (not_found(), StatusCode::NOT_FOUND, "not-found"),
            (
                method_not_allowed("GET".into()),
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
            ),
            (request_timeout(), timeout, "request-timeout"),
            (body_timeout(TooSlow::Deadline), timeout, "request-timeout"),
            (body_timeout(TooSlow::Pause), timeout, "request-timeout"),
            (body_timeout(TooSlow::Rate), timeout, "request-timeout"),
            (body_timeout(TooSlow::Crowded), unavailable, "body-budget"),
            (bad_deadline_header(), bad, "bad-deadline-header"),
            (not_utf8("bad request\n".into()), bad, "not-utf8"),
            (no_room_for_body(), unavailable, "body-budget"),
            (no_room_to_send(), unavailable, "output-budget"),
            (
                internal_error(),
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal-error",
            ),
        ];
        for reason in Shed::ALL {
            all.push((shed(reason, None), unavailable, reason.as_str()));
            all.push((shed(reason, Some(1)), unavailable, reason.as_str()));
        }
        all
    }

    #[test]
    fn every_builtin_error_has_a_content_type_and_says_which_it_is() {
        for (response, status, reason) in every_builtin() {
            let types: Vec<_> = response
                .headers()
                .filter(|(name, _)| name.eq_ignore_ascii_case("content-type"))
                .collect();
            assert_eq!(
                types,
                [("Content-Type", &b"text/plain; charset=utf-8"[..])],
                "{reason}"
            );
            assert_eq!(response.status(), status, "{reason}");
            let error = response.server_error().expect("marked");
            assert_eq!((error.status(), error.reason()), (status, reason));
            // The message is the body's text, or its first words (not-utf8 names the part).
            let body = std::str::from_utf8(response.body().as_bytes()).unwrap();
            assert!(!error.message().ends_with('\n'), "{reason}");
            if reason != "not-utf8" {
                assert_eq!(body, format!("{}\n", error.message()), "{reason}");
            }
        }
        // Those the protocol layer answers, shaped only by a hook, carry theirs too
        // (`send_error` writes its own `Content-Type`).
        let error = unreadable(RecvError::BodyTooLarge).server_error().unwrap();
        assert_eq!(
            (error.status(), error.reason(), error.message()),
            (
                StatusCode::CONTENT_TOO_LARGE,
                "bad-request",
                "request body too large"
            )
        );
    }

    #[test]
    fn a_hook_shapes_every_builtin_and_keeps_the_headers_that_belong_to_it() {
        let hook = ErrorAnswers::new(|error: &ServerError| {
            Response::new(error.status())
                .with_content_type("application/json")
                .with_body(format!(r#"{{"error":"{}"}}"#, error.reason()))
        });
        for (response, status, reason) in every_builtin() {
            let shaped = hook.shape(&response).expect("a built-in answer");
            assert_eq!(shaped.status(), status);
            assert_eq!(
                shaped.body().as_bytes(),
                format!(r#"{{"error":"{reason}"}}"#).as_bytes()
            );
            let mut headers: Vec<_> = shaped.headers().collect();
            assert_eq!(
                headers.remove(0),
                ("Content-Type", &b"application/json"[..])
            );
            // The rest are the built-in's, but its Content-Type.
            let kept: Vec<_> = response.headers().skip(1).collect();
            assert_eq!(headers, kept, "{reason}");
        }
        let shed = hook.shape(&shed(Shed::QueueFull, Some(2))).unwrap();
        let names: Vec<_> = shed.headers().map(|(name, _)| name).collect();
        assert_eq!(names, ["Content-Type", "rtserve-shed", "Retry-After"]);
        // An application's own response is left alone.
        assert!(
            hook.shape(&Response::text(StatusCode::NOT_FOUND, "x"))
                .is_none()
        );
    }

    #[test]
    fn a_hook_that_panics_gets_the_builtin_500() {
        let hook = ErrorAnswers::new(|_: &ServerError| -> Response { panic!("a hook") });
        let shaped = hook.shape(&not_found()).unwrap();
        assert_eq!(shaped.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(shaped.body().as_bytes(), b"internal server error\n");
        assert_eq!(format!("{hook:?}"), "ErrorAnswers(..)");
    }

    #[test]
    fn a_panic_is_a_500_in_whatever_its_caller_returns() {
        let response = internal_error_on_panic(|| Response::text(StatusCode::OK, "made\n"));
        assert_eq!(response.body().as_bytes(), b"made\n");
        // A handler's reply, a job's response, a future's poll.
        let Reply::Ready(response) = internal_error_on_panic(|| -> Reply { panic!("a handler") })
        else {
            panic!("answered inline");
        };
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let response = internal_error_on_panic(|| -> Response { panic!("a job") });
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(response.body().as_bytes(), b"internal server error\n");
        let Poll::Ready(response) = internal_error_on_panic(|| -> Poll<Response> {
            panic!("a future");
        }) else {
            panic!("ready at once");
        };
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
