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
