//! What a handler returns: a response now ([`Reply::Ready`]), blocking work for the worker
//! pool ([`Reply::Offload`], a [`Job`] that sees a [`JobContext`]), or a future for the async
//! runtime ([`Reply::Async`], feature `tokio`).

use std::{
    fmt,
    time::{Duration, Instant},
};

use crate::{Response, pool::Ticket};

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
    /// deadline) from [`Request::received`](crate::Request::received): its arrival.
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
