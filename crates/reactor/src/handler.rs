//! The handler API: the trait user code implements to answer a request, and
//! [`with_deadline`] for the jobs it offloads.

use std::time::Duration;

use crate::{Reply, Request};

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

/// Gives the requests `handler` serves this deadline, counted from their arrival: a per-route
/// deadline, between the server's default and a per-request
/// [`Job::with_deadline`](crate::Job::with_deadline). The handler reads it with
/// [`Request::deadline`], its jobs and futures with their context's; a caller's deadline that
/// comes sooner still holds ([caller deadlines](crate#caller-deadlines)).
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
        // The handler sees the route's deadline (never past its caller's); its jobs and
        // futures inherit it from the request.
        req.set_route_deadline(self.deadline);
        self.handler.handle(req)
    }

    fn routes(&self) -> Vec<String> {
        self.handler.routes()
    }
}
