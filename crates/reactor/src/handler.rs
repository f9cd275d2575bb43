//! The handler API: the trait user code implements to answer a request, and
//! [`with_deadline`] for the jobs it offloads.

use std::time::Duration;

use crate::{IntoReply, Reply, Request};

/// Request handling code: one instance serves every reactor.
///
/// `handle` runs on a reactor thread, between socket events of many other connections, so it
/// must return quickly and never block. Closures and functions that take a `&Request` and
/// return an answer ([`IntoReply`]: a [`Reply`], a [`Response`](crate::Response), or a
/// `Result` of answers) are handlers too.
///
/// # Closures and inference
///
/// Rust infers a closure's parameter types only from a bound of the `Fn` family on the type
/// parameter it is passed as, never through another trait such as this one. So:
///
/// - [`Router::get`](crate::Router::get), [`post`](crate::Router::post),
///   [`put`](crate::Router::put) and [`delete`](crate::Router::delete) bound their handler
///   `F: Fn(&Request<'_>) -> R` with `R: IntoReply`: `|req| …` needs no annotation there, and
///   the return type is inferred too. They take closures and functions only, not a type that
///   implements `Handler` itself; [`with_deadline`] returns a closure, so it fits them.
/// - [`Router::route`](crate::Router::route), [`try_route`](crate::Router::try_route),
///   [`any`](crate::Router::any), [`with_deadline`], [`Server::start`](crate::Server::start) and
///   [`Harness::call`](crate::Harness::call) take any `Handler`: a type of the application's
///   own, a [`Router`](crate::Router), a mounted service, or a closure, whose parameter must then
///   be written `|req: &Request<'_>|`. A struct handler is routed for one method with
///   `route(Method::Get, …)`.
/// - A closure that ends in `.into()` leaves the target open where the return type is generic:
///   write `-> Reply`, or return the [`Response`](crate::Response) itself.
///
/// # Examples
///
/// ```
/// use rtserve_reactor::{Handler, Method, Reply, Request, Response, Router, StatusCode};
///
/// struct Hello;
///
/// impl Handler for Hello {
///     fn handle(&self, _req: &Request<'_>) -> Reply {
///         Response::text(StatusCode::OK, "hello\n").into()
///     }
/// }
///
/// let router = Router::new()
///     .route(Method::Get, "/hello", Hello)
///     // The request's type and the answer's are inferred.
///     .get("/path", |req| Response::text(StatusCode::OK, req.path().to_owned()))
///     .post("/echo", |req| Response::new(StatusCode::OK).with_body(req.body().to_vec()));
/// let by_closure = |req: &Request<'_>| Response::text(StatusCode::OK, req.path().to_owned());
/// # fn is_handler(_: impl Handler) {}
/// # is_handler(router);
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

impl<F, R> Handler for F
where
    F: Fn(&Request<'_>) -> R + Send + Sync + 'static,
    R: IntoReply,
{
    fn handle(&self, req: &Request<'_>) -> Reply {
        self(req).into_reply()
    }
}

/// Gives the requests `handler` serves this deadline, counted from their arrival: a per-route
/// deadline, between the server's default and a per-request
/// [`Job::with_deadline`](crate::Job::with_deadline). The handler reads it with
/// [`Request::deadline`], its jobs and futures with their context's; a caller's deadline that
/// comes sooner still holds ([caller deadlines](crate#caller-deadlines)).
///
/// The result is a closure, so it fits every method that takes a handler,
/// [`Router::get`](crate::Router::get) and the other shorthands included. Being a closure it
/// names no routes ([`Handler::routes`]): give a router's routes their deadlines one by one,
/// and the whole server its default with [`Config::deadline`](crate::Config::deadline), rather
/// than wrap a router passed to [`Server::start`](crate::Server::start), whose requests would
/// all be counted as "other".
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use rtserve_reactor::{JobContext, Reply, Request, Response, Router, StatusCode, with_deadline};
///
/// let report = |_: &Request<'_>| {
///     Reply::offload(|_: &JobContext| Response::text(StatusCode::OK, "done\n"))
/// };
/// let router = Router::new().get("/report", with_deadline(Duration::from_millis(50), report));
/// # let _ = router;
/// ```
pub fn with_deadline(
    deadline: Duration,
    handler: impl Handler,
) -> impl Fn(&Request<'_>) -> Reply + Send + Sync + 'static {
    move |req: &Request<'_>| {
        // The handler sees the route's deadline (never past its caller's); its jobs and
        // futures inherit it from the request.
        req.set_route_deadline(deadline);
        handler.handle(req)
    }
}

#[cfg(test)]
mod tests {
    use rtserve_protocol::Method;

    use super::*;
    use crate::{
        Harness, JobContext, Response, Router, StatusCode,
        harness::testing::{get, ready},
    };

    /// A handler of the application's own type: answers 200 with the time left to its deadline,
    /// in whole seconds.
    struct Remaining;

    impl Handler for Remaining {
        fn handle(&self, req: &Request<'_>) -> Reply {
            let left = req.remaining().as_secs_f64().round();
            Response::text(StatusCode::OK, format!("{left}")).into()
        }
    }

    /// The status and body text of `response`.
    fn seen(response: &Response) -> (StatusCode, String) {
        let text = std::str::from_utf8(response.body().as_bytes()).expect("a text body");
        (response.status(), text.to_owned())
    }

    #[test]
    fn closures_on_the_shorthands_infer_their_types_and_return_any_answer() {
        // No annotation on any of these closures.
        let router = Router::new()
            .get("/response", |req| {
                Response::text(StatusCode::OK, req.path().to_owned())
            })
            .get("/reply", |_| {
                Reply::from(Response::new(StatusCode::ACCEPTED))
            })
            .post("/result", |req| {
                let Some(n) = req.query_param("n") else {
                    return Err(Response::text(StatusCode::BAD_REQUEST, "n?"));
                };
                Ok(Response::text(StatusCode::OK, n.into_owned()))
            })
            .put("/utf8", |req| {
                // `NotUtf8` borrows the request, which an answer may not: it becomes its response.
                req.check_utf8()
                    .map(|()| Response::new(StatusCode::OK))
                    .map_err(Response::from)
            })
            .delete("/nested", |_| {
                Ok::<_, Response>(Err::<Reply, _>(Response::new(StatusCode::NOT_FOUND)))
            });
        let mut harness = Harness::new();
        for (raw, expected) in [
            (get("/response"), (StatusCode::OK, "/response")),
            (get("/reply"), (StatusCode::ACCEPTED, "")),
            (
                b"POST /result?n=7 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n".to_vec(),
                (StatusCode::OK, "7"),
            ),
            (
                b"POST /result HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n".to_vec(),
                (StatusCode::BAD_REQUEST, "n?"),
            ),
            (
                b"PUT /utf8?q=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n".to_vec(),
                (StatusCode::OK, ""),
            ),
            (
                b"DELETE /nested HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
                (StatusCode::NOT_FOUND, ""),
            ),
        ] {
            let response = ready(harness.call(&router, &raw));
            let expected = (expected.0, expected.1.to_owned());
            assert_eq!(
                seen(&response),
                expected,
                "{}",
                String::from_utf8_lossy(&raw)
            );
        }
    }

    #[test]
    fn a_rejection_in_the_error_of_a_result_is_its_answer() {
        // Called without the router, which would refuse the query before the handler.
        let handler = |req: &Request<'_>| -> Result<Response, Response> {
            req.check_utf8()?;
            Ok(Response::new(StatusCode::OK))
        };
        let response = ready(Harness::new().call(&handler, &get("/?q=%FF")));
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn struct_handlers_route_by_method_and_take_a_deadline_on_the_shorthands() {
        let router = Router::new()
            .route(Method::Get, "/own", Remaining)
            .get("/short", with_deadline(Duration::from_secs(2), Remaining))
            .post(
                "/short",
                with_deadline(Duration::from_secs(2), |req: &Request<'_>| {
                    Response::text(StatusCode::OK, format!("{}", req.remaining().as_secs()))
                }),
            );
        let mut harness = Harness::new();
        // The harness gives every request 5 s; the route's deadline comes sooner.
        for (raw, left) in [
            (get("/own"), "5"),
            (get("/short"), "2"),
            (
                b"POST /short HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n".to_vec(),
                "1",
            ),
        ] {
            let response = ready(harness.call(&router, &raw));
            assert_eq!(seen(&response), (StatusCode::OK, left.to_owned()));
        }
    }

    #[test]
    fn with_deadline_gives_its_requests_and_their_jobs_the_route_deadline_unless_they_name_their_own()
     {
        let handler = with_deadline(Duration::from_millis(50), |req: &Request<'_>| {
            if req.query_param("own").is_some() {
                Reply::Offload(
                    crate::Job::new(|_: &JobContext| Response::new(StatusCode::OK))
                        .with_deadline(Duration::from_millis(7)),
                )
            } else {
                Reply::offload(|_: &JobContext| Response::new(StatusCode::OK))
            }
        });
        let mut harness = Harness::new();
        for (target, deadline) in [("/", 50), ("/?own", 7)] {
            let outcome = harness.run(&handler, get(target));
            assert_eq!(outcome.response.status(), StatusCode::OK, "{target}");
            assert_eq!(
                outcome.deadline,
                Duration::from_millis(deadline),
                "{target}"
            );
        }
    }
}
