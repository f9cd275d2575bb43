//! What a handler returns: a response now ([`Reply::Ready`]), blocking work for the worker
//! pool ([`Reply::Offload`], a [`Job`] that sees a [`JobContext`]), or a future for the async
//! runtime ([`Reply::Async`], feature `tokio`).

use crate::{
    Response,
    pool::{Job, JobContext},
};

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
    /// A future for the application's tokio runtime (feature `tokio`): for work that waits on
    /// async I/O (a database or HTTP client). It never runs on a reactor. If its route already
    /// has [`Config::max_in_flight_per_route`](crate::Config::max_in_flight_per_route)
    /// futures in flight the client gets 503 at once; if it has not finished by the request's
    /// deadline the client gets 503 then, and the future is dropped (so cancelled), as it is
    /// when the client's connection fails or is reset (a client that only half-closes still
    /// gets its answer, as with every reply).
    #[cfg(feature = "tokio")]
    Async(crate::AsyncJob),
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

    /// Answers with the future `work` makes from the request's
    /// [`AsyncContext`](crate::AsyncContext), run on the application's tokio runtime
    /// (feature `tokio`), with the server's default deadline. Copy what the future needs out
    /// of the request first: it outlives the borrow.
    ///
    /// # Examples
    ///
    /// ```
    /// use rtserve_reactor::{AsyncContext, Reply, Request, Response, StatusCode};
    ///
    /// let handler = |req: &Request<'_>| -> Reply {
    ///     let key = req.path().to_owned();
    ///     Reply::spawn(move |ctx: AsyncContext| async move {
    ///         // An async client call here, given `ctx.remaining()` as its own timeout.
    ///         let _budget = ctx.remaining();
    ///         Response::text(StatusCode::OK, format!("looked up {key}\n"))
    ///     })
    /// };
    /// # let _ = handler;
    /// ```
    #[cfg(feature = "tokio")]
    pub fn spawn<F, Fut>(work: F) -> Self
    where
        F: FnOnce(crate::AsyncContext) -> Fut + Send + 'static,
        Fut: Future<Output = Response> + Send + 'static,
    {
        Self::Async(crate::AsyncJob::new(work))
    }
}

impl From<Response> for Reply {
    fn from(response: Response) -> Self {
        Self::Ready(response)
    }
}

/// What a handler may return: anything that becomes a [`Reply`].
///
/// A [`Reply`], a [`Response`], and every other type that converts into a `Reply` (the
/// rejections [`NotUtf8`](crate::NotUtf8), [`PathRejection`](crate::PathRejection), the `json`
/// feature's `Rejection`, an `http::Response` with the `http` feature) are answers as they
/// are. A `Result<T, E>` whose `T` and `E` are answers is one too, so a handler can use `?`:
/// `Result<Response, Response>` takes every rejection above through `?`, as each converts into
/// a `Response`; an error type of the application's own takes part once it converts into a
/// `Response` (or `Reply`). An answer cannot borrow from the request it answers, so a
/// `NotUtf8`, which does, is returned through `?` (or `map_err(Response::from)`), not as it is.
///
/// The conversion happens on the reactor, once per request, and allocates nothing of its own.
///
/// # Examples
///
/// ```
/// use rtserve_reactor::{Harness, Reply, Request, Response, Router, StatusCode};
///
/// fn limit(req: &Request<'_>) -> Result<Response, Response> {
///     req.check_utf8()?; // a 400 for a query that is not UTF-8
///     let cents: u64 = req
///         .query_param("cents")
///         .and_then(|c| c.parse().ok())
///         .ok_or_else(|| Response::text(StatusCode::BAD_REQUEST, "cents?\n"))?;
///     Ok(Response::text(StatusCode::OK, format!("{}\n", cents / 100)))
/// }
///
/// let router = Router::new().get("/limit", limit);
/// let mut harness = Harness::new();
/// let Reply::Ready(ok) = harness.call(&router, b"GET /limit?cents=250 HTTP/1.1\r\nHost: x\r\n\r\n")
/// else {
///     panic!("answered inline");
/// };
/// assert_eq!(ok.body().as_bytes(), b"2\n");
/// let Reply::Ready(refused) = harness.call(&router, b"GET /limit HTTP/1.1\r\nHost: x\r\n\r\n")
/// else {
///     panic!("answered inline");
/// };
/// assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an answer a handler can return",
    label = "a handler returns this",
    note = "return a `Response`, a `Reply`, or a `Result` of them (`Result<Response, Response>` takes `?`)"
)]
pub trait IntoReply {
    /// The reply this answer is.
    fn into_reply(self) -> Reply;
}

impl<T: Into<Reply>> IntoReply for T {
    fn into_reply(self) -> Reply {
        self.into()
    }
}

impl<T: IntoReply, E: IntoReply> IntoReply for Result<T, E> {
    fn into_reply(self) -> Reply {
        match self {
            Ok(answer) => answer.into_reply(),
            Err(error) => error.into_reply(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use rtserve_protocol::StatusCode;

    use super::*;
    use crate::pool::Tickets;

    #[test]
    fn a_response_converts_into_a_ready_reply() {
        let reply: Reply = Response::text(StatusCode::CREATED, "made\n").into();
        let Reply::Ready(response) = reply else {
            panic!("not ready: {reply:?}");
        };
        assert_eq!(response.status(), StatusCode::CREATED);
        assert_eq!(response.body().as_bytes(), b"made\n");
    }

    #[test]
    fn a_result_is_the_answer_it_holds_either_way() {
        let status = |answer: Result<Response, Reply>| match answer.into_reply() {
            Reply::Ready(response) => response.status(),
            other => panic!("not ready: {other:?}"),
        };
        assert_eq!(status(Ok(Response::new(StatusCode::OK))), StatusCode::OK);
        let refused = Reply::from(Response::new(StatusCode::BAD_REQUEST));
        assert_eq!(status(Err(refused)), StatusCode::BAD_REQUEST);
        let offloaded = Ok::<_, Response>(Reply::offload(|_: &JobContext| {
            Response::new(StatusCode::OK)
        }));
        assert!(matches!(offloaded.into_reply(), Reply::Offload(_)));
    }

    #[test]
    fn offload_carries_the_job_with_the_default_deadline() {
        let reply = Reply::offload(|_: &JobContext| Response::new(StatusCode::ACCEPTED));
        let Reply::Offload(job) = reply else {
            panic!("not offloaded: {reply:?}");
        };
        assert_eq!(job.deadline, None);
        let ctx = JobContext {
            deadline: Instant::now() + Duration::from_secs(60),
            ticket: Tickets::new(1).issue(0),
        };
        assert_eq!((job.work)(&ctx).status(), StatusCode::ACCEPTED);
    }

    #[test]
    fn debug_names_the_variant() {
        let ready = format!("{:?}", Reply::from(Response::new(StatusCode::OK)));
        assert!(ready.starts_with("Ready(Response {"), "{ready}");

        let offload = Reply::offload(|_: &JobContext| Response::new(StatusCode::OK));
        assert_eq!(
            format!("{offload:?}"),
            "Offload(Job { deadline: None, .. })"
        );
        let timed = Reply::Offload(
            Job::new(|_: &JobContext| Response::new(StatusCode::OK))
                .with_deadline(Duration::from_millis(500)),
        );
        assert_eq!(
            format!("{timed:?}"),
            "Offload(Job { deadline: Some(500ms), .. })"
        );
    }
}
