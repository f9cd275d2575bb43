//! Handlers called without a server: for unit tests of handlers, their jobs and their
//! futures, and for benchmarks. [`Harness`]'s docs say what of its clock is made up.

use std::{
    sync::{Arc, atomic::AtomicBool},
    time::{Duration, Instant},
};

use rtserve_protocol::{Event, Limits, ServerConn};

use crate::{
    Handler, Job, JobContext, Reply, Request, Response, Shed, answers,
    body::Pieces,
    budget::Budgets,
    deadline::{Due, deadline_after},
    pool::Tickets,
    request::{Filing, ServerView},
    stats::StatsRegistry,
};

/// Calls a [`Handler`] on a request, with no socket and no thread: for unit tests of
/// handlers, and for benchmarks of routing and handlers.
///
/// The request is parsed by the server's own parser, and the handler sees it as it would on a
/// reactor, with a deadline of [`deadline`](Self::deadline) from its arrival. The request is
/// given as bytes, or built with [`Harness::get`], [`Harness::post`] or
/// [`Harness::request`].
///
/// [`call`](Self::call) returns the handler's reply as it is: a reply that offloads, or that
/// spawns a future (feature `tokio`), is not run. It keeps its parser between calls, so a call
/// for a request whose body (if any) is in one piece allocates nothing of its own.
/// [`run`](Self::run) runs the job or future to its end under the request's deadline and
/// returns the response the client would get, the 503 of a missed deadline included.
///
/// # The made-up clock
///
/// The clock is made up in one respect only: the time before a job or future starts.
/// [`start_after`](Self::start_after) says how long after its request arrived the work
/// starts, standing for a wait in the worker pool's queue. The harness does not wait that
/// long: it dates the request's arrival that much before the call, so the request's deadline
/// is that much nearer. Everything from the start on happens on the real clock: the work's
/// run, and whatever it reads of the time ([`JobContext::remaining`],
/// [`JobContext::is_cancelled`] and [`JobContext::sleep`] read `Instant::now()`, as do
/// `AsyncContext::remaining` (feature `tokio`) and tokio's timers). Those readings agree with
/// the made-up start because the arrival was moved back rather than the start forward; a job
/// that sleeps 10 ms takes 10 ms of the test's time. The handler runs at the same moment as
/// the start, so a handler that reads the clock sees the time its work starts, not the time
/// its request arrived.
///
/// # Examples
///
/// ```
/// use rtserve_reactor::{Harness, Reply, Request, Response, Router, StatusCode};
///
/// let router = Router::new().get("/hello", |_: &Request<'_>| -> Reply {
///     Response::text(StatusCode::OK, "hi\n").into()
/// });
/// let mut harness = Harness::new();
/// let Reply::Ready(response) = harness.call(&router, b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
/// else {
///     panic!("answered inline");
/// };
/// assert_eq!(response.status(), StatusCode::OK);
/// assert_eq!(response.body().as_bytes(), b"hi\n");
/// ```
#[derive(Debug)]
pub struct Harness {
    conn: ServerConn,
    limits: Limits,
    view: ServerView,
    /// Where the handler files the request's route and deadline.
    filing: Filing,
    body: Vec<u8>,
    /// The runtime [`run`](Self::run) drives futures on: made at the first one.
    #[cfg(feature = "tokio")]
    runtime: Option<tokio::runtime::Runtime>,
    /// The deadline each request gets, from its arrival, unless its job or future sets its own
    /// (as the server's [`Config::deadline`](crate::Config::deadline) is).
    pub deadline: Duration,
    /// How long after its arrival a request's job or future starts in [`run`](Self::run): the
    /// wait in the worker pool's queue a test stands for. Zero by default. Made up: the
    /// harness dates the request's arrival this much before the call rather than waiting.
    pub start_after: Duration,
}

/// What a request came to in [`Harness::run`]: the response its client would get, and the
/// deadline it was held to.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use rtserve_reactor::{Harness, JobContext, Reply, Request, Response, StatusCode, with_deadline};
///
/// let report = with_deadline(Duration::from_millis(500), |_: &Request<'_>| -> Reply {
///     Reply::offload(|_: &JobContext| Response::text(StatusCode::OK, "done\n"))
/// });
/// let outcome = Harness::new().run(&report, Harness::get("/report"));
/// assert_eq!(outcome.response.status(), StatusCode::OK);
/// assert_eq!(outcome.deadline, Duration::from_millis(500));
/// assert_eq!(outcome.shed, None);
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub struct Outcome {
    /// The response the client gets: the handler's, its job's or its future's, or the 503
    /// the server answers in its place.
    pub response: Response,
    /// The request's deadline, counted from its arrival: the one its job or future set
    /// ([`with_deadline`](crate::with_deadline) on its route, or
    /// [`Job::with_deadline`]), else the harness's [`deadline`](Harness::deadline).
    pub deadline: Duration,
    /// Why the response is the server's 503 rather than the work's own answer, if it is.
    pub shed: Option<Shed>,
}

/// A request built for a [`Harness`], with the framing written for it: its bytes have a
/// `Host`, and a `Content-Length` that matches its body.
///
/// Made with [`Harness::get`], [`Harness::post`] or [`Harness::request`]; given to
/// [`Harness::run`] as it is, or to [`Harness::call`] as [`to_bytes`](Self::to_bytes).
///
/// # Examples
///
/// ```
/// use rtserve_reactor::Harness;
///
/// let request = Harness::post("/v1/notes").header("X-Trace", "t-1").body("hello");
/// assert_eq!(
///     request.to_bytes(),
///     b"POST /v1/notes HTTP/1.1\r\nHost: localhost\r\nX-Trace: t-1\r\n\
///       Content-Length: 5\r\n\r\nhello"
/// );
/// ```
#[derive(Clone, Debug)]
#[must_use = "a request does nothing until a harness is given it"]
pub struct TestRequest {
    method: String,
    target: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

impl Harness {
    /// A harness with the default [`Limits`], a deadline of 5 s, and jobs that start as soon
    /// as their request arrives.
    pub fn new() -> Self {
        let limits = Limits::default();
        Self {
            conn: ServerConn::new(limits),
            limits,
            view: ServerView {
                draining: Arc::new(AtomicBool::new(false)),
                stats: Arc::new(StatsRegistry::new(
                    1,
                    Vec::new(),
                    Budgets::unbounded(),
                    usize::MAX,
                )),
            },
            filing: Filing::new(0),
            body: Vec::new(),
            #[cfg(feature = "tokio")]
            runtime: None,
            deadline: Duration::from_secs(5),
            start_after: Duration::ZERO,
        }
    }

    /// A `GET` of `target` (a path, with its query if any).
    ///
    /// # Examples
    ///
    /// ```
    /// use rtserve_reactor::Harness;
    ///
    /// assert_eq!(
    ///     Harness::get("/items?page=2").to_bytes(),
    ///     b"GET /items?page=2 HTTP/1.1\r\nHost: localhost\r\n\r\n"
    /// );
    /// ```
    pub fn get(target: &str) -> TestRequest {
        Self::request("GET", target)
    }

    /// A `POST` to `target`, with an empty body until one is given.
    ///
    /// # Examples
    ///
    /// ```
    /// use rtserve_reactor::Harness;
    ///
    /// assert_eq!(
    ///     Harness::post("/jobs").to_bytes(),
    ///     b"POST /jobs HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n"
    /// );
    /// ```
    pub fn post(target: &str) -> TestRequest {
        Self::request("POST", target)
    }

    /// A request with any `method` (case-sensitive, as on the wire: `PUT`, `DELETE`, …).
    ///
    /// # Examples
    ///
    /// ```
    /// use rtserve_reactor::Harness;
    ///
    /// let request = Harness::request("PUT", "/items/7").body("{}");
    /// assert!(request.to_bytes().starts_with(b"PUT /items/7 HTTP/1.1\r\n"));
    /// ```
    pub fn request(method: &str, target: &str) -> TestRequest {
        TestRequest {
            method: method.to_owned(),
            target: target.to_owned(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// Parses the one request in `raw` and returns what `handler` replies to it, without
    /// running a job or future it replies with.
    ///
    /// # Panics
    ///
    /// If `raw` is not one complete, valid request: a test states its request whole.
    #[track_caller]
    pub fn call<H: Handler + ?Sized>(&mut self, handler: &H, raw: &[u8]) -> Reply {
        self.handle(raw, Instant::now(), |req| handler.handle(req))
    }

    /// Parses the one request in `request` (built, or bytes) and returns the response its
    /// client would get from the server: the handler's, or its job's or future's, run here to
    /// the end, or the 503 the server answers in its place.
    ///
    /// What the server does, the harness does:
    /// - a job or future that would start at or past the request's deadline
    ///   ([`start_after`](Self::start_after)) is never run, and the request is answered 503
    ///   [`Shed::Deadline`], as the reactor answers a job still queued at its deadline;
    /// - a job runs on this thread, with a [`JobContext`] whose deadline is the request's;
    /// - a future (feature `tokio`) runs on a current-thread runtime the harness makes (with
    ///   every driver tokio was built with), with an `AsyncContext` whose deadline is the
    ///   request's; one still running at the deadline is dropped;
    /// - an answer that comes at or past the deadline is replaced by the 503
    ///   [`Shed::Deadline`] (the reactor answered at the deadline and dropped it);
    /// - a handler, job or future that panics is answered 500.
    ///
    /// What it does not: it has no queue, so no `queue-full`, `expected-miss` or
    /// `not-started` refusal (the last needs the run times the pool learns), and no limit of
    /// futures in flight; the client never leaves, so a job is cancelled only by its deadline;
    /// a job that blocks past its deadline without looking at its [`JobContext`] is waited
    /// for, where the server answers at the deadline and lets it run on; and a future is
    /// dropped at its deadline only when it yields, so one that blocks its thread is waited
    /// for too. The 503s carry no `Retry-After`, as with the default
    /// [`Config::retry_after`](crate::Config::retry_after).
    ///
    /// # Examples
    ///
    /// A job on a route whose deadline is 300 ms, started at once, then 400 ms after its request
    /// arrived:
    ///
    /// ```
    /// use std::time::Duration;
    /// use rtserve_reactor::{
    ///     Harness, JobContext, Reply, Request, Response, Shed, StatusCode, with_deadline,
    /// };
    ///
    /// let lookup = with_deadline(Duration::from_millis(300), |_: &Request<'_>| -> Reply {
    ///     Reply::offload(|ctx: &JobContext| {
    ///         Response::text(StatusCode::OK, format!("{:?} left\n", ctx.remaining()))
    ///     })
    /// });
    /// let mut harness = Harness::new();
    /// assert_eq!(harness.run(&lookup, Harness::get("/")).response.status(), StatusCode::OK);
    ///
    /// harness.start_after = Duration::from_millis(400);
    /// let late = harness.run(&lookup, Harness::get("/"));
    /// assert_eq!(late.response.status(), StatusCode::SERVICE_UNAVAILABLE);
    /// assert_eq!(late.shed, Some(Shed::Deadline));
    /// ```
    ///
    /// A future (feature `tokio`), still waiting at its deadline:
    ///
    /// ```
    /// # #[cfg(feature = "tokio")] {
    /// use std::time::Duration;
    /// use rtserve_reactor::{AsyncContext, Harness, Reply, Request, Response, Shed, StatusCode};
    ///
    /// let stuck = |_: &Request<'_>| -> Reply {
    ///     Reply::spawn(|_: AsyncContext| async {
    ///         std::future::pending::<()>().await; // stands for a call that never answers
    ///         Response::text(StatusCode::OK, "never\n")
    ///     })
    /// };
    /// let mut harness = Harness::new();
    /// harness.deadline = Duration::from_millis(20);
    /// harness.start_after = Duration::from_millis(15); // so the test waits only 5 ms
    /// assert_eq!(harness.run(&stuck, Harness::get("/")).shed, Some(Shed::Deadline));
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// If `request` is not one complete, valid request; if the monotonic clock cannot be set
    /// [`start_after`](Self::start_after) back (longer than the machine has been up); with
    /// feature `tokio`, for a future, if the runtime cannot be made or if the caller is itself
    /// running on a tokio runtime (one cannot block inside another).
    #[track_caller]
    pub fn run<H: Handler + ?Sized>(
        &mut self,
        handler: &H,
        request: impl Into<Vec<u8>>,
    ) -> Outcome {
        let raw = request.into();
        let received = Instant::now()
            .checked_sub(self.start_after)
            .expect("the clock goes back as far as `start_after`");
        let reply = self.handle(&raw, received, |req| {
            answers::internal_error_on_panic(|| handler.handle(req))
        });
        self.finish(reply, received)
    }

    /// Parses the one request in `raw`, received at `received`, and returns what `respond`
    /// replies to it.
    #[track_caller]
    fn handle(
        &mut self,
        raw: &[u8],
        received: Instant,
        respond: impl FnOnce(&Request<'_>) -> Reply,
    ) -> Reply {
        if !self.conn.is_between_requests() {
            self.conn = ServerConn::new(self.limits);
        }
        self.body.clear();
        let mut pos = 0;
        let mut head_at = None;
        let mut pieces = Pieces::default();
        loop {
            let (used, event) = match self.conn.recv(&raw[pos..]) {
                Ok(step) => step,
                Err(e) => panic!("not a valid request: {e}"),
            };
            match event {
                Event::Head => head_at = Some(pos),
                Event::Body(range) => {
                    let range = pos + range.start..pos + range.end;
                    let body = &mut self.body;
                    let _ = pieces.add(raw, range, !body.is_empty(), |piece| {
                        body.extend_from_slice(piece);
                        true
                    });
                }
                Event::End => break,
                Event::NeedMore | Event::Closed => panic!("not one complete request"),
            }
            pos += used;
        }
        let head = &raw[head_at.expect("a head comes before the end")..];
        let body = pieces.body(raw, &self.body);
        let req = Request::new(
            self.conn.request(head),
            body,
            0,
            (received, deadline_after(received, self.deadline)),
            &self.view,
            &self.filing,
        );
        respond(&req)
    }

    /// The response the client gets for `reply`, to a request received at `received`.
    fn finish(&mut self, reply: Reply, received: Instant) -> Outcome {
        // The request's deadline as its handler left it (its route's, say).
        let due = Due {
            request: self.filing.deadline.get(),
            caller: None,
        };
        let (deadline, answered) = match reply {
            Reply::Ready(response) => (due.request, Ok(response)),
            Reply::Offload(job) => {
                let deadline = due.of_work(received, job.deadline);
                (deadline, run_job(job, deadline))
            }
            #[cfg(feature = "tokio")]
            Reply::Async(job) => {
                let deadline = due.of_work(received, job.deadline);
                (deadline, self.run_future(job, deadline))
            }
        };
        let after = deadline.saturating_duration_since(received);
        let (response, shed) = match answered {
            Ok(response) => (response, None),
            Err(reason) => (answers::shed(reason, None), Some(reason)),
        };
        Outcome {
            response,
            deadline: after,
            shed,
        }
    }

    /// Runs an async handler's future to its end, or to `deadline`, on the harness's
    /// runtime; its response, or why the server would answer 503 instead.
    #[cfg(feature = "tokio")]
    fn run_future(&mut self, job: crate::AsyncJob, deadline: Instant) -> Result<Response, Shed> {
        use std::{future::Future, pin::Pin};

        if Instant::now() >= deadline {
            // Not started by its deadline: the reactor answered then and aborted its task.
            return Err(Shed::Deadline);
        }
        let runtime = self.runtime.get_or_insert_with(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a current-thread runtime can be made")
        });
        // As the server's task does: the handler's closure runs on the first poll, inside the
        // runtime, and a panic of the closure or of a poll is a 500.
        let ctx = crate::AsyncContext::until(deadline);
        let mut start = Some(job);
        let mut running: Option<Pin<Box<dyn Future<Output = Response> + Send>>> = None;
        let future = std::future::poll_fn(move |cx| {
            answers::internal_error_on_panic(|| {
                if let Some(job) = start.take() {
                    running = Some(Box::pin(job.into_future(ctx)));
                }
                // Made just above on the first poll; a panic ends the polls before a second.
                let future = running.as_mut().expect("made on the first poll");
                future.as_mut().poll(cx)
            })
        });
        // The timer is made inside the runtime, which it needs.
        let timed = async move { tokio::time::timeout_at(deadline.into(), future).await };
        match runtime.block_on(timed) {
            Ok(response) if Instant::now() < deadline => Ok(response),
            // Still running at its deadline, or done only past it (the timer's granularity).
            _ => Err(Shed::Deadline),
        }
    }
}

/// Runs a job on this thread, as a worker would, if it starts before `deadline`; its
/// response, or why the server would answer 503 instead.
fn run_job(job: Job, deadline: Instant) -> Result<Response, Shed> {
    // A ticket nobody cancels: the client never leaves, and the deadline the context checks
    // itself.
    let ctx = JobContext {
        deadline,
        ticket: Tickets::new(1).issue(0),
    };
    if ctx.is_cancelled() {
        // Not started by its deadline: the reactor answered then, and no worker runs it.
        return Err(Shed::Deadline);
    }
    let work = job.work;
    let response = answers::internal_error_on_panic(|| work(&ctx));
    if Instant::now() >= deadline {
        // Done past its deadline: the reactor answered then and drops the late result.
        return Err(Shed::Deadline);
    }
    Ok(response)
}

impl TestRequest {
    /// Adds a header, after those added before (a name given twice is sent twice). A `Host`,
    /// `Content-Length` or `Transfer-Encoding` given here replaces the one the request would
    /// write itself: a test that frames its body its own way (chunked, say) says so.
    ///
    /// # Examples
    ///
    /// ```
    /// use rtserve_reactor::Harness;
    ///
    /// let request = Harness::get("/").header("Host", "api.example").header("Accept", "*/*");
    /// assert_eq!(
    ///     request.to_bytes(),
    ///     b"GET / HTTP/1.1\r\nHost: api.example\r\nAccept: */*\r\n\r\n"
    /// );
    /// ```
    pub fn header(mut self, name: &str, value: impl AsRef<[u8]>) -> Self {
        self.headers
            .push((name.to_owned(), value.as_ref().to_vec()));
        self
    }

    /// Sets the body, replacing any given before; its `Content-Length` is written with it.
    ///
    /// # Examples
    ///
    /// ```
    /// use rtserve_reactor::Harness;
    ///
    /// let request = Harness::request("PUT", "/notes/1").body(b"\x00\x01".to_vec());
    /// assert!(request.to_bytes().ends_with(b"Content-Length: 2\r\n\r\n\x00\x01"));
    /// ```
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Sets the body to `value` as JSON, with `Content-Type: application/json` in place of
    /// any `Content-Type` given before (feature `json`).
    ///
    /// # Examples
    ///
    /// ```
    /// use rtserve_reactor::Harness;
    ///
    /// let request = Harness::post("/score").json(&serde_json::json!({ "amount": 5 }));
    /// assert!(request.to_bytes().ends_with(
    ///     b"Content-Type: application/json\r\nContent-Length: 12\r\n\r\n{\"amount\":5}"
    /// ));
    /// ```
    ///
    /// # Panics
    ///
    /// If `value` cannot be written as JSON (a map with keys that are not strings, say): the
    /// test's own value is wrong.
    #[cfg(feature = "json")]
    pub fn json<T: serde::Serialize + ?Sized>(mut self, value: &T) -> Self {
        let body = match serde_json::to_vec(value) {
            Ok(body) => body,
            Err(e) => panic!("the test's value cannot be written as JSON: {e}"),
        };
        self.headers
            .retain(|(name, _)| !name.eq_ignore_ascii_case("content-type"));
        self.header("Content-Type", "application/json").body(body)
    }

    /// The request as a client sends it: the request line, `Host: localhost` unless a `Host`
    /// was given, the headers given, then `Content-Length` (unless framing was given) when
    /// there is a body or the method is one whose body has a meaning (`POST`, `PUT`, `PATCH`:
    /// RFC 9110 §8.6 asks a client to send `Content-Length: 0` for those), and the body.
    ///
    /// # Examples
    ///
    /// ```
    /// use rtserve_reactor::{Harness, Reply, Request, Response, StatusCode};
    ///
    /// let echo = |req: &Request<'_>| -> Reply {
    ///     Response::new(StatusCode::OK).with_body(req.body().to_vec()).into()
    /// };
    /// let raw = Harness::post("/echo").body("hi").to_bytes();
    /// let Reply::Ready(response) = Harness::new().call(&echo, &raw) else { panic!() };
    /// assert_eq!(response.body().as_bytes(), b"hi");
    /// ```
    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        let given = |wanted: &str| {
            self.headers
                .iter()
                .any(|(name, _)| name.eq_ignore_ascii_case(wanted))
        };
        let mut raw = Vec::with_capacity(64 + self.target.len() + self.body.len());
        raw.extend_from_slice(format!("{} {} HTTP/1.1\r\n", self.method, self.target).as_bytes());
        if !given("host") {
            raw.extend_from_slice(b"Host: localhost\r\n");
        }
        for (name, value) in &self.headers {
            raw.extend_from_slice(name.as_bytes());
            raw.extend_from_slice(b": ");
            raw.extend_from_slice(value);
            raw.extend_from_slice(b"\r\n");
        }
        let framed = given("content-length") || given("transfer-encoding");
        let has_meaning = matches!(self.method.as_str(), "POST" | "PUT" | "PATCH");
        if !framed && (!self.body.is_empty() || has_meaning) {
            raw.extend_from_slice(format!("Content-Length: {}\r\n", self.body.len()).as_bytes());
        }
        raw.extend_from_slice(b"\r\n");
        raw.extend_from_slice(&self.body);
        raw
    }
}

impl From<TestRequest> for Vec<u8> {
    fn from(request: TestRequest) -> Self {
        request.to_bytes()
    }
}

impl From<&TestRequest> for Vec<u8> {
    fn from(request: &TestRequest) -> Self {
        request.to_bytes()
    }
}

#[cfg(test)]
impl Harness {
    /// The route the last request was filed under with [`Request::set_route`].
    pub(crate) fn route(&self) -> usize {
        self.filing.route.get()
    }
}

/// What the crate's unit tests of handlers share: a request's bytes, and the response of a
/// reply answered inline.
#[cfg(test)]
pub(crate) mod testing {
    use std::sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    };

    use crate::{Reply, Request, Response, StatusCode};

    /// A `GET` of `target`, as a client sends it.
    pub(crate) fn get(target: &str) -> Vec<u8> {
        format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n").into_bytes()
    }

    /// A handler that answers 200 and counts its calls, and the count.
    pub(crate) fn counting() -> (
        Arc<AtomicUsize>,
        impl Fn(&Request<'_>) -> Reply + Clone + Send + Sync + 'static,
    ) {
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = {
            let calls = Arc::clone(&calls);
            move |_: &Request<'_>| -> Reply {
                calls.fetch_add(1, Ordering::Relaxed);
                Response::new(StatusCode::OK).into()
            }
        };
        (calls, counted)
    }

    /// The response of a reply answered inline.
    ///
    /// # Panics
    ///
    /// If the reply is not: the test expected it to be.
    #[track_caller]
    pub(crate) fn ready(reply: Reply) -> Response {
        match reply {
            Reply::Ready(response) => response,
            other => panic!("not inline: {other:?}"),
        }
    }
}

impl Default for Harness {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;
    use crate::{StatusCode, with_deadline};

    fn echo(req: &Request<'_>) -> Reply {
        Response::new(StatusCode::OK)
            .with_body(req.body().to_vec())
            .into()
    }

    fn body_of(reply: Reply) -> Vec<u8> {
        match reply {
            Reply::Ready(response) => response.body().as_bytes().to_vec(),
            other => panic!("not inline: {other:?}"),
        }
    }

    #[test]
    fn bodies_in_one_piece_or_chunks_reach_the_handler_whole() {
        let mut harness = Harness::new();
        let one = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello";
        assert_eq!(body_of(harness.call(&echo, one)), b"hello");
        let chunked = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
                        2\r\nhe\r\n3\r\nllo\r\n0\r\n\r\n";
        assert_eq!(body_of(harness.call(&echo, chunked)), b"hello");
        // After a request that closed its connection, the next one starts afresh.
        let close = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
        assert_eq!(body_of(harness.call(&echo, close)), b"");
        assert_eq!(body_of(harness.call(&echo, one)), b"hello");
    }

    #[test]
    #[should_panic(expected = "not one complete request")]
    fn an_incomplete_request_is_a_mistake_in_the_test() {
        Harness::new().call(&echo, b"GET / HTTP/1.1\r\nHost: x\r\n");
    }

    /// The `rtserve-shed` header of a response, if it has one.
    fn shed_header(response: &Response) -> Option<&[u8]> {
        response
            .headers()
            .find(|&(name, _)| name == "rtserve-shed")
            .map(|(_, value)| value)
    }

    /// A handler whose job answers with how long it had left when it started.
    fn remaining_at_start(_: &Request<'_>) -> Reply {
        Reply::offload(|ctx: &JobContext| {
            let left = ctx.remaining().as_micros().to_string();
            Response::text(StatusCode::OK, left)
        })
    }

    fn micros(response: &Response) -> u128 {
        std::str::from_utf8(response.body().as_bytes())
            .expect("digits")
            .parse()
            .expect("a number")
    }

    #[test]
    fn built_requests_carry_their_framing() {
        let cases: [(TestRequest, &[u8]); 6] = [
            // No body, on a method whose body has no meaning: no Content-Length.
            (
                Harness::get("/a?b=c"),
                b"GET /a?b=c HTTP/1.1\r\nHost: localhost\r\n\r\n",
            ),
            // POST, PUT and PATCH say their empty body's length (RFC 9110 §8.6).
            (
                Harness::post("/a"),
                b"POST /a HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n",
            ),
            (
                Harness::request("PATCH", "/a").body("xyz"),
                b"PATCH /a HTTP/1.1\r\nHost: localhost\r\nContent-Length: 3\r\n\r\nxyz",
            ),
            // A body on any method is framed.
            (
                Harness::request("DELETE", "/a").body("1"),
                b"DELETE /a HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1\r\n\r\n1",
            ),
            // Headers in the order given; a Host given replaces the request's own.
            (
                Harness::get("/")
                    .header("host", "h")
                    .header("A", "1")
                    .header("A", "2"),
                b"GET / HTTP/1.1\r\nhost: h\r\nA: 1\r\nA: 2\r\n\r\n",
            ),
            // Framing given replaces the request's own.
            (
                Harness::post("/")
                    .header("Transfer-Encoding", "chunked")
                    .body("2\r\nhi\r\n0\r\n\r\n"),
                b"POST / HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n\
                  2\r\nhi\r\n0\r\n\r\n",
            ),
        ];
        for (request, raw) in cases {
            assert_eq!(request.to_bytes(), raw, "{}", String::from_utf8_lossy(raw));
        }
    }

    #[test]
    fn a_built_request_reaches_the_handler_as_written() {
        let mut harness = Harness::new();
        let request = Harness::post("/").header("X-Id", "7").body("hello");
        assert_eq!(body_of(harness.call(&echo, &request.to_bytes())), b"hello");
        let chunked = Harness::post("/")
            .header("Transfer-Encoding", "chunked")
            .body("2\r\nhe\r\n3\r\nllo\r\n0\r\n\r\n");
        let outcome = harness.run(&echo, &chunked);
        assert_eq!(outcome.response.body().as_bytes(), b"hello");
        let header = |req: &Request<'_>| -> Reply {
            let id = req.header("x-id").unwrap_or_default().to_vec();
            Response::new(StatusCode::OK).with_body(id).into()
        };
        let outcome = harness.run(&header, request);
        assert_eq!(outcome.response.body().as_bytes(), b"7");
    }

    #[test]
    fn an_inline_reply_is_the_outcome_under_the_harness_deadline() {
        let mut harness = Harness::new();
        harness.deadline = Duration::from_millis(70);
        let outcome = harness.run(
            &echo,
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi",
        );
        assert_eq!(outcome.response.body().as_bytes(), b"hi");
        assert_eq!(outcome.deadline, Duration::from_millis(70));
        assert_eq!(outcome.shed, None);
    }

    #[test]
    fn a_job_runs_with_the_requests_deadline() {
        // The route's deadline, then a job's own in place of it.
        let job_sees = |req: &Request<'_>| -> Reply {
            let received = req.received();
            Reply::offload(move |ctx: &JobContext| {
                let after = ctx.deadline() - received;
                Response::text(StatusCode::OK, after.as_millis().to_string())
            })
        };
        let route = with_deadline(Duration::from_millis(4_000), job_sees);
        let outcome = Harness::new().run(&route, Harness::get("/"));
        assert_eq!(outcome.response.body().as_bytes(), b"4000");
        assert_eq!(outcome.deadline, Duration::from_millis(4_000));
        let own = with_deadline(
            Duration::from_millis(4_000),
            move |req: &Request<'_>| -> Reply {
                match job_sees(req) {
                    Reply::Offload(job) => {
                        Reply::Offload(job.with_deadline(Duration::from_millis(900)))
                    }
                    other => other,
                }
            },
        );
        let outcome = Harness::new().run(&own, Harness::get("/"));
        assert_eq!(outcome.response.body().as_bytes(), b"900");
        assert_eq!(outcome.deadline, Duration::from_millis(900));
        // No deadline of its own or its route's: the harness's.
        let outcome = Harness::new().run(&job_sees, Harness::get("/"));
        assert_eq!(outcome.response.body().as_bytes(), b"5000");
    }

    #[test]
    fn a_job_starting_late_sees_only_what_is_left_of_its_deadline() {
        let route = with_deadline(Duration::from_millis(1_000), remaining_at_start);
        let mut harness = Harness::new();
        harness.start_after = Duration::from_millis(900);
        let outcome = harness.run(&route, Harness::get("/"));
        assert_eq!(outcome.shed, None);
        let left = micros(&outcome.response);
        assert!(left <= 100_000, "{left} µs left");
    }

    #[test]
    fn a_job_that_would_start_past_its_deadline_never_runs() {
        let ran = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&ran);
        let route = with_deadline(Duration::from_millis(30), move |_: &Request<'_>| -> Reply {
            let flag = Arc::clone(&flag);
            Reply::offload(move |_: &JobContext| {
                flag.store(true, Ordering::Relaxed);
                Response::text(StatusCode::OK, "ran\n")
            })
        });
        let mut harness = Harness::new();
        // At the deadline exactly, and past it.
        for start_after in [30, 31] {
            harness.start_after = Duration::from_millis(start_after);
            let outcome = harness.run(&route, Harness::get("/"));
            assert_eq!(outcome.shed, Some(Shed::Deadline));
            assert_eq!(outcome.response.status(), StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(shed_header(&outcome.response), Some(&b"deadline"[..]));
            assert_eq!(outcome.response.body().as_bytes(), b"deadline exceeded\n");
        }
        assert!(!ran.load(Ordering::Relaxed));
    }

    #[test]
    fn a_job_done_past_its_deadline_is_answered_503_and_its_response_dropped() {
        // Started with 5 ms left, it asks for 200: its sleep is cut short at the deadline.
        let cut_short = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&cut_short);
        let route = with_deadline(Duration::from_millis(50), move |_: &Request<'_>| -> Reply {
            let flag = Arc::clone(&flag);
            Reply::offload(move |ctx: &JobContext| {
                flag.store(!ctx.sleep(Duration::from_millis(200)), Ordering::Relaxed);
                assert!(ctx.is_cancelled(), "past its deadline");
                Response::text(StatusCode::OK, "too late\n")
            })
        });
        let mut harness = Harness::new();
        harness.start_after = Duration::from_millis(45);
        let outcome = harness.run(&route, Harness::get("/"));
        assert!(cut_short.load(Ordering::Relaxed));
        assert_eq!(outcome.shed, Some(Shed::Deadline));
        assert_eq!(shed_header(&outcome.response), Some(&b"deadline"[..]));
    }

    #[test]
    fn a_panic_in_the_handler_or_its_job_is_a_500() {
        let handler = |_: &Request<'_>| -> Reply { panic!("a handler") };
        let outcome = Harness::new().run(&handler, Harness::get("/"));
        assert_eq!(outcome.response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let job = |_: &Request<'_>| -> Reply { Reply::offload(|_: &JobContext| panic!("a job")) };
        let outcome = Harness::new().run(&job, Harness::get("/"));
        assert_eq!(outcome.response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(outcome.shed, None);
    }

    #[test]
    #[should_panic(expected = "not a valid request")]
    fn an_invalid_request_is_a_mistake_in_the_test_not_a_500() {
        Harness::new().run(&echo, b"GET / HTTP/1.1\r\nHost x\r\n\r\n");
    }

    #[cfg(feature = "json")]
    #[test]
    fn a_json_body_is_framed_and_typed() {
        #[derive(serde::Deserialize)]
        struct Amount {
            cents: u64,
        }
        let handler = |req: &Request<'_>| -> Reply {
            match req.json::<Amount>() {
                Ok(amount) => Response::text(StatusCode::OK, amount.cents.to_string()).into(),
                Err(rejection) => rejection.into(),
            }
        };
        let request = Harness::post("/")
            .header("Content-Type", "text/plain")
            .json(&serde_json::json!({ "cents": 250 }));
        let outcome = Harness::new().run(&handler, request);
        assert_eq!(outcome.response.body().as_bytes(), b"250");
    }

    #[cfg(feature = "tokio")]
    mod futures {
        use super::*;
        use crate::AsyncContext;

        #[test]
        fn a_future_runs_to_its_end_with_the_requests_deadline() {
            let route = with_deadline(Duration::from_millis(4_000), |req: &Request<'_>| -> Reply {
                let received = req.received();
                Reply::spawn(move |ctx: AsyncContext| async move {
                    // The runtime has a timer: a future may sleep.
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    let after = ctx.deadline() - received;
                    Response::text(StatusCode::OK, after.as_millis().to_string())
                })
            });
            let mut harness = Harness::new();
            for _ in 0..2 {
                let outcome = harness.run(&route, Harness::get("/"));
                assert_eq!(outcome.response.body().as_bytes(), b"4000");
                assert_eq!(outcome.deadline, Duration::from_millis(4_000));
                assert_eq!(outcome.shed, None);
            }
        }

        #[test]
        fn a_future_still_running_at_its_deadline_is_dropped_for_a_503() {
            struct Dropped(Arc<AtomicBool>);
            impl Drop for Dropped {
                fn drop(&mut self) {
                    self.0.store(true, Ordering::Relaxed);
                }
            }
            let dropped = Arc::new(AtomicBool::new(false));
            let flag = Arc::clone(&dropped);
            let route = with_deadline(Duration::from_millis(50), move |_: &Request<'_>| -> Reply {
                let guard = Dropped(Arc::clone(&flag));
                Reply::spawn(move |_: AsyncContext| async move {
                    let _guard = guard;
                    std::future::pending::<()>().await;
                    Response::text(StatusCode::OK, "never\n")
                })
            });
            let mut harness = Harness::new();
            harness.start_after = Duration::from_millis(45);
            let outcome = harness.run(&route, Harness::get("/"));
            assert_eq!(outcome.shed, Some(Shed::Deadline));
            assert_eq!(shed_header(&outcome.response), Some(&b"deadline"[..]));
            assert!(dropped.load(Ordering::Relaxed), "cancelled");
            // One that would start past its deadline is never polled.
            harness.start_after = Duration::from_millis(60);
            let outcome = harness.run(&route, Harness::get("/"));
            assert_eq!(outcome.shed, Some(Shed::Deadline));
        }

        #[test]
        fn a_panic_in_a_future_or_its_closure_is_a_500() {
            let closure = |_: &Request<'_>| -> Reply {
                Reply::spawn(|_: AsyncContext| -> std::future::Ready<Response> {
                    panic!("a closure")
                })
            };
            let future = |_: &Request<'_>| -> Reply {
                Reply::spawn(|_: AsyncContext| async { panic!("a future") })
            };
            let mut harness = Harness::new();
            for handler in [&closure as &dyn Handler, &future] {
                let outcome = harness.run(handler, Harness::get("/"));
                assert_eq!(outcome.response.status(), StatusCode::INTERNAL_SERVER_ERROR);
            }
        }
    }
}
