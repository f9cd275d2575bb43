//! Async handlers (feature `tokio`): a handler answers with a future, which runs on the
//! application's tokio runtime, never on a reactor.
//!
//! Theory of operation. The reactor spawns the future with the runtime's `Handle` (not
//! `tokio::spawn`: a reactor thread is not inside any runtime) wrapped in a task that
//! - holds an [`InFlight`] guard, so the route's count of futures in flight drops however
//!   the task ends: finished, or aborted and dropped;
//! - catches a panic of the future, which becomes a 500, as a job's does;
//! - posts the answer to the owning reactor's mailbox, like a job's completion.
//!
//! The reactor keeps the task's `AbortHandle` in the response owed. At the deadline it answers
//! 503 itself (the deadline timer is the reactor's, so no `tokio::time` is needed, which the
//! application's runtime may not have enabled) and aborts the task. When the connection
//! fails or is reset, or is dropped at shutdown, its exchange is dropped, which aborts the
//! tasks still owed (`Exchange`'s `Drop`). Dropping a `JoinHandle` would only detach a task;
//! aborting drops the future at its next yield, which cancels whatever it was waiting on. The
//! handler's closure itself runs in the task, on its first poll, so nothing the application
//! wrote runs on a reactor.

#[cfg(any(feature = "tokio", test))]
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
#[cfg(feature = "tokio")]
use std::{
    fmt,
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::{Duration, Instant},
};

#[cfg(feature = "tokio")]
use tokio::{runtime::Handle, task::AbortHandle};

#[cfg(feature = "tokio")]
use crate::{
    Response,
    mailbox::{Answer, Completion, Mailbox, Message},
    token::ConnId,
};

/// A boxed future answering one request.
#[cfg(feature = "tokio")]
type BoxedFuture = Pin<Box<dyn Future<Output = Response> + Send>>;

#[cfg(feature = "tokio")]
/// An async handler's work: a future started with the request's [`AsyncContext`], and the
/// deadline it must meet.
pub struct AsyncJob {
    start: StartFuture,
    pub(crate) deadline: Option<Duration>,
}

#[cfg(feature = "tokio")]
impl AsyncJob {
    /// A future made by `work` from the request's context, with the server's default
    /// deadline.
    pub fn new<F, Fut>(work: F) -> Self
    where
        F: FnOnce(AsyncContext) -> Fut + Send + 'static,
        Fut: Future<Output = Response> + Send + 'static,
    {
        Self {
            start: Box::new(move |ctx| Box::pin(work(ctx))),
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

    /// The future, started with `ctx`, for a test that drives it on a runtime of its own
    /// ([`Harness::call`](crate::Harness::call) hands the reply back without running it;
    /// [`Harness::run`](crate::Harness::run) runs it under the request's deadline).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use rtserve_reactor::{AsyncContext, Harness, Reply, Request, Response, StatusCode};
    ///
    /// let handler = |_: &Request<'_>| -> Reply {
    ///     Reply::spawn(|_: AsyncContext| async { Response::text(StatusCode::OK, "hi\n") })
    /// };
    /// let Reply::Async(job) = Harness::new().call(&handler, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    /// else {
    ///     panic!("an async reply");
    /// };
    /// let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    /// let deadline = Instant::now() + Duration::from_secs(1);
    /// let response = runtime.block_on(job.into_future(AsyncContext::until(deadline)));
    /// assert_eq!(response.body().as_bytes(), b"hi\n");
    /// ```
    pub fn into_future(self, ctx: AsyncContext) -> impl Future<Output = Response> + Send {
        (self.start)(ctx)
    }
}

#[cfg(feature = "tokio")]
impl AsyncJob {
    /// This work, its future's response passed through `f` once it is ready.
    pub(crate) fn map_response(
        self,
        f: impl FnOnce(Response) -> Response + Send + 'static,
    ) -> Self {
        let start = self.start;
        Self {
            start: Box::new(move |ctx| {
                let future = start(ctx);
                Box::pin(async move { f(future.await) })
            }),
            deadline: self.deadline,
        }
    }
}

#[cfg(feature = "tokio")]
impl fmt::Debug for AsyncJob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncJob")
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "tokio")]
/// What an async handler's future can know about its request: its deadline.
///
/// The future is dropped (and so cancelled) when the deadline passes or the client leaves, so
/// it needs no flag to poll: whatever it awaits stops with it.
#[derive(Clone, Copy, Debug)]
pub struct AsyncContext {
    deadline: Instant,
}

#[cfg(feature = "tokio")]
impl AsyncContext {
    /// A context whose deadline is `deadline` (for tests; the server makes its own).
    pub fn until(deadline: Instant) -> Self {
        Self { deadline }
    }

    /// The request's deadline. The client has been answered with 503 once it has passed.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Time left before the deadline (zero once it has passed): the budget to give a
    /// downstream call, such as a client's own timeout.
    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }
}

/// Futures in flight per route, and those cancelled, shared by every reactor and the tasks.
#[derive(Debug)]
pub(crate) struct Tasks {
    in_flight: Box<[AtomicUsize]>,
    cancelled: AtomicU64,
    /// Futures in flight one route may have; past it, 503 at once.
    #[cfg(any(feature = "tokio", test))]
    limit: usize,
}

impl Tasks {
    pub(crate) fn new(routes: usize, limit: usize) -> Self {
        #[cfg(not(any(feature = "tokio", test)))]
        let _ = limit;
        Self {
            in_flight: (0..routes).map(|_| AtomicUsize::new(0)).collect(),
            cancelled: AtomicU64::new(0),
            #[cfg(any(feature = "tokio", test))]
            limit,
        }
    }

    /// Counts a future in for `route`; `None` when the route has its limit in flight.
    #[cfg(any(feature = "tokio", test))]
    fn enter(self: &Arc<Self>, route: usize) -> Option<InFlight> {
        let count = self.in_flight.get(route)?;
        let mut now = count.load(Ordering::Relaxed);
        loop {
            if now >= self.limit {
                return None;
            }
            match count.compare_exchange_weak(now, now + 1, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => {
                    return Some(InFlight {
                        tasks: Arc::clone(self),
                        route,
                        finished: false,
                        #[cfg(feature = "tokio")]
                        answer: None,
                    });
                }
                Err(seen) => now = seen,
            }
        }
    }

    /// Futures in flight now, all routes.
    pub(crate) fn in_flight(&self) -> u64 {
        self.in_flight
            .iter()
            .map(|n| n.load(Ordering::Relaxed) as u64)
            .sum()
    }

    /// Futures dropped before they finished: at their deadline, when their client left, or at
    /// shutdown.
    pub(crate) fn cancelled(&self) -> u64 {
        self.cancelled.load(Ordering::Relaxed)
    }
}

/// One future in flight; counted out when dropped, and as cancelled if it had not finished.
/// A future dropped unfinished for a reason the reactor did not choose (a runtime shut down
/// under it, a panic in its own `Drop`) is answered at once through `answer`, rather than
/// left to its deadline; when the reactor dropped it, that answer is not wanted and is ignored.
#[cfg(any(feature = "tokio", test))]
struct InFlight {
    tasks: Arc<Tasks>,
    route: usize,
    finished: bool,
    #[cfg(feature = "tokio")]
    answer: Option<(Arc<Mailbox>, ConnId, u64)>,
}

#[cfg(any(feature = "tokio", test))]
impl Drop for InFlight {
    fn drop(&mut self) {
        self.tasks.in_flight[self.route].fetch_sub(1, Ordering::Relaxed);
        if !self.finished {
            self.tasks.cancelled.fetch_add(1, Ordering::Relaxed);
            #[cfg(feature = "tokio")]
            if let Some((reply_to, conn, seq)) = self.answer.take() {
                reply_to.send(Message::Completion(Completion {
                    conn,
                    seq,
                    answer: Answer::Cancelled,
                    finished: None,
                }));
            }
        }
    }
}

#[cfg(feature = "tokio")]
/// Why a future was not spawned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NotSpawned {
    /// Its route has as many futures in flight as it may.
    InFlightLimit,
}

#[cfg(feature = "tokio")]
/// Where an owed response's future runs: the runtime, and who to tell.
pub(crate) struct Spawner<'a> {
    pub(crate) runtime: &'a Handle,
    pub(crate) tasks: &'a Arc<Tasks>,
    pub(crate) reply_to: &'a Arc<Mailbox>,
}

#[cfg(feature = "tokio")]
impl Spawner<'_> {
    /// Spawns `job`'s future for response `seq` of `conn`, on `route`, due by `deadline`;
    /// returns the handle that aborts it.
    pub(crate) fn spawn(
        &self,
        job: AsyncJob,
        (conn, seq, route): (ConnId, u64, usize),
        deadline: Instant,
    ) -> Result<AbortHandle, NotSpawned> {
        let mut in_flight = self.tasks.enter(route).ok_or(NotSpawned::InFlightLimit)?;
        in_flight.answer = Some((Arc::clone(self.reply_to), conn, seq));
        // The handler's closure runs in the task too, under the same guard against panics:
        // nothing of the future's making runs on the reactor.
        let future = CatchUnwind::Start(Some((job.start, AsyncContext { deadline })));
        let task = self.runtime.spawn(async move {
            let response = future.await;
            in_flight.finished = true;
            let answer = in_flight.answer.take();
            drop(in_flight);
            if let Some((reply_to, conn, seq)) = answer {
                reply_to.send(Message::Completion(Completion {
                    conn,
                    seq,
                    answer: Answer::Ran(response),
                    finished: None,
                }));
            }
        });
        Ok(task.abort_handle())
    }
}

#[cfg(feature = "tokio")]
/// A handler's future, made from its closure on the first poll; a panic of either becomes a
/// 500 (the panic hook has reported it).
enum CatchUnwind {
    Start(Option<(StartFuture, AsyncContext)>),
    Running(BoxedFuture),
}

/// What makes an async handler's future.
#[cfg(feature = "tokio")]
type StartFuture = Box<dyn FnOnce(AsyncContext) -> BoxedFuture + Send>;

#[cfg(feature = "tokio")]
impl Future for CatchUnwind {
    type Output = Response;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Response> {
        let this = &mut *self;
        crate::answers::internal_error_on_panic(|| {
            if let Self::Start(start) = this
                && let Some((start, ctx)) = start.take()
            {
                *this = Self::Running(start(ctx));
            }
            match this {
                Self::Running(future) => future.as_mut().poll(cx),
                Self::Start(_) => unreachable!("started above"),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_route_takes_futures_up_to_its_limit_and_counts_them_out_when_dropped() {
        let tasks = Arc::new(Tasks::new(2, 2));
        let a = tasks.enter(0).expect("room");
        let mut b = tasks.enter(0).expect("room");
        assert!(tasks.enter(0).is_none(), "route 0 is at its limit");
        let c = tasks.enter(1).expect("another route has its own");
        assert_eq!(tasks.in_flight(), 3);
        b.finished = true;
        drop(b);
        assert_eq!((tasks.in_flight(), tasks.cancelled()), (2, 0));
        drop(a);
        drop(c);
        assert_eq!((tasks.in_flight(), tasks.cancelled()), (0, 2));
        assert!(tasks.enter(5).is_none(), "no such route");
    }
}
