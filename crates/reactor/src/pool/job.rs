//! A job for the worker pool ([`Job`]) and what it sees while it runs ([`JobContext`]): its
//! request's deadline, and the [`Ticket`] the reactor cancels when the answer stops being
//! wanted.

use std::{
    fmt,
    time::{Duration, Instant},
};

use super::Ticket;
use crate::Response;

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
