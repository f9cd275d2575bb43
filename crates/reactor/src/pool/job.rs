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
    /// Its cost class within its route, below [`Job::COST_CLASSES`].
    pub(crate) class: u8,
}

impl Job {
    /// How many cost classes a route's jobs can be filed under (see
    /// [`with_cost_class`](Self::with_cost_class)); classes are numbered from 0, the default.
    pub const COST_CLASSES: u8 = 4;

    /// A job running `work`, with the server's default deadline, in cost class 0.
    pub fn new(work: impl FnOnce(&JobContext) -> Response + Send + 'static) -> Self {
        Self {
            work: Box::new(work),
            deadline: None,
            class: 0,
        }
    }

    /// Gives the request this deadline instead of the server's default, counted (like every
    /// deadline) from [`Request::received`](crate::Request::received): its arrival.
    #[must_use]
    pub fn with_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// Files the job under cost class `class` of its route, for a route whose jobs differ in
    /// cost in a way the handler can tell beforehand (by the size of the request, say).
    ///
    /// The pool keeps what it learns for admission (the expected run time, the margin left
    /// before a deadline, how many jobs may run at once) per route and class, so a class of
    /// 2 ms jobs is not judged by the 20 ms jobs of another class on the same route. Jobs
    /// that name no class are in class 0, which on its own behaves as the route did before
    /// classes. Classes from [`COST_CLASSES`](Self::COST_CLASSES) − 1 up share the last one.
    ///
    /// The route's statistics stay per route: its jobs' outcomes are counted together, and
    /// its admission gauges (run time, margin, limit) show the most cautious of the classes
    /// it has used.
    ///
    /// # Examples
    ///
    /// ```
    /// use rtserve_reactor::{Job, JobContext, Reply, Request, Response, StatusCode};
    ///
    /// // Large bodies take ten times longer to score than small ones: estimate them apart.
    /// let score = |req: &Request<'_>| -> Reply {
    ///     let class = if req.body().len() > 64 * 1024 { 1 } else { 0 };
    ///     let job = Job::new(|_: &JobContext| Response::text(StatusCode::OK, "scored\n"));
    ///     Reply::Offload(job.with_cost_class(class))
    /// };
    /// # let _ = score;
    /// ```
    #[must_use]
    pub fn with_cost_class(mut self, class: u8) -> Self {
        self.class = class.min(Self::COST_CLASSES - 1);
        self
    }
}

impl Job {
    /// This job, its response passed through `f` once it has run.
    pub(crate) fn map_response(
        self,
        f: impl FnOnce(Response) -> Response + Send + 'static,
    ) -> Self {
        let work = self.work;
        Self {
            work: Box::new(move |ctx| f(work(ctx))),
            deadline: self.deadline,
            class: self.class,
        }
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

#[cfg(test)]
mod tests {
    use std::thread;

    use rtserve_protocol::StatusCode;

    use super::*;
    use crate::pool::Tickets;

    /// Far longer than any test waits: a sleep this long that returns was cut short.
    const LONG: Duration = Duration::from_secs(60);
    /// The bound a cut-short wait stays under, however loaded the machine.
    const BOUND: Duration = Duration::from_secs(30);

    /// A context with this deadline, and the ticket the reactor would hold for it.
    fn context(deadline: Instant) -> (JobContext, Ticket) {
        let ticket = Tickets::new(1).issue(0);
        let ctx = JobContext {
            deadline,
            ticket: ticket.clone(),
        };
        (ctx, ticket)
    }

    #[test]
    fn deadline_is_the_request_s() {
        let deadline = Instant::now() + LONG;
        let (ctx, _) = context(deadline);
        assert_eq!(ctx.deadline(), deadline);
    }

    #[test]
    fn remaining_counts_down_to_the_deadline() {
        let (ctx, _) = context(Instant::now() + LONG);
        let remaining = ctx.remaining();
        assert!(
            remaining > Duration::ZERO && remaining <= LONG,
            "{remaining:?}"
        );
    }

    #[test]
    fn remaining_is_zero_after_the_deadline() {
        let (ctx, _) = context(Instant::now());
        thread::sleep(Duration::from_millis(1));
        assert_eq!(ctx.remaining(), Duration::ZERO);
    }

    #[test]
    fn is_cancelled_only_after_the_deadline_or_a_cancellation() {
        let (ctx, ticket) = context(Instant::now() + LONG);
        assert!(!ctx.is_cancelled());
        ticket.cancel();
        assert!(ctx.is_cancelled());

        let (past, _) = context(Instant::now());
        assert!(past.is_cancelled(), "its deadline has come");
    }

    #[test]
    fn a_whole_sleep_returns_true() {
        let (ctx, _) = context(Instant::now() + LONG);
        let started = Instant::now();
        assert!(ctx.sleep(Duration::from_millis(5)));
        assert!(started.elapsed() >= Duration::from_millis(5));
        assert!(!ctx.is_cancelled());
    }

    #[test]
    fn a_sleep_ends_early_when_cancelled_from_another_thread() {
        let (ctx, ticket) = context(Instant::now() + 2 * LONG);
        let sleeper = thread::spawn(move || {
            let started = Instant::now();
            (ctx.sleep(LONG), started.elapsed())
        });
        thread::sleep(Duration::from_millis(20));
        ticket.cancel();
        let (whole, slept) = sleeper.join().unwrap();
        assert!(!whole);
        // Woken by the cancellation, not by the end of the minute.
        assert!(slept < BOUND, "{slept:?}");
    }

    #[test]
    fn a_sleep_after_a_cancellation_returns_false_at_once() {
        let (ctx, ticket) = context(Instant::now() + 2 * LONG);
        ticket.cancel();
        let started = Instant::now();
        assert!(!ctx.sleep(LONG));
        assert!(started.elapsed() < BOUND);
    }

    #[test]
    fn a_sleep_past_the_deadline_returns_false_at_the_deadline() {
        let deadline = Instant::now() + Duration::from_millis(20);
        let (ctx, _) = context(deadline);
        let started = Instant::now();
        assert!(!ctx.sleep(LONG));
        // It waits out the deadline (the answer is wanted until then), not the whole sleep.
        assert!(Instant::now() >= deadline);
        assert!(started.elapsed() < BOUND);
    }

    #[test]
    fn a_sleep_after_the_deadline_returns_false_at_once() {
        let (ctx, _) = context(Instant::now());
        let started = Instant::now();
        assert!(!ctx.sleep(LONG));
        assert!(started.elapsed() < BOUND);
    }

    #[test]
    fn a_job_has_the_default_deadline_until_given_its_own() {
        let job = Job::new(|_: &JobContext| Response::new(StatusCode::OK));
        assert_eq!(job.deadline, None);
        let job = job.with_deadline(Duration::from_millis(250));
        assert_eq!(job.deadline, Some(Duration::from_millis(250)));
    }

    #[test]
    fn a_job_is_in_class_0_until_given_its_own_and_past_the_last_in_the_last() {
        let job = Job::new(|_: &JobContext| Response::new(StatusCode::OK));
        assert_eq!(job.class, 0);
        let job = job.with_cost_class(2);
        assert_eq!(job.class, 2);
        let job = job.with_cost_class(200);
        assert_eq!(job.class, Job::COST_CLASSES - 1);
    }

    #[test]
    fn a_job_runs_its_work_with_the_context() {
        let job = Job::new(|ctx: &JobContext| {
            let status = if ctx.is_cancelled() {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::OK
            };
            Response::new(status)
        });
        let (ctx, _) = context(Instant::now() + LONG);
        assert_eq!((job.work)(&ctx).status(), StatusCode::OK);
    }

    #[test]
    fn a_job_s_debug_shows_its_deadline_only() {
        let job = Job::new(|_: &JobContext| Response::new(StatusCode::OK))
            .with_deadline(Duration::from_secs(2));
        assert_eq!(format!("{job:?}"), "Job { deadline: Some(2s), .. }");
    }
}
