//! Requests to responses: parse, run the handler, then answer now, hand the job to the worker
//! pool, or refuse; the responses owed, completed, expired and sent in request order, are in
//! [`owed`].
//!
//! A [`Dispatcher`] works on a connection's [`Session`] and the bytes just read, and appends
//! what to send to its `out` buffer. It holds no socket and reads no clock of its own (the
//! reactor ticks [`Clock`]), so it can be driven in a test with bytes in and bytes out.

mod owed;

use std::{
    cell::Cell,
    ops::Range,
    sync::{Arc, mpsc::SyncSender},
    time::{Duration, Instant},
};

use rtserve_protocol::{BodyKind, Event, ResponseContext, send_continue, send_error};

use super::clock::Clock;
use crate::{
    Config, Handler, Job, Reply, Request, Response, Shed, answers,
    body::{Pace, STEP},
    connection::{Exchange, ExchangePool, OwedState, Pending, Session},
    log::LogEntry,
    mailbox::Mailbox,
    pool::{Refused, Task, WorkerPool},
    request::ServerView,
    stats::ReactorStats,
    token::ConnId,
};

/// Why processing a connection's input stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Flow {
    /// Everything given was consumed: read more.
    Continue,
    /// The per-turn request budget is spent: resume before sleeping.
    Budget,
    /// Output or owed responses are over their limit: resume when they drain.
    Paused,
    /// No more requests on this connection: it closes once its answers are out.
    Stop,
}

/// What processing produced besides output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub(crate) struct Processed {
    pub(crate) flow: Flow,
    /// The earliest deadline of the jobs handed to the pool, for the connection's timer.
    pub(crate) deadline: Option<Instant>,
}

/// Everything one reactor needs to turn requests into responses.
pub(crate) struct Dispatcher {
    reactor: usize,
    handler: Arc<dyn Handler>,
    config: Arc<Config>,
    pool: WorkerPool,
    /// This reactor's own mailbox, for jobs to answer through.
    reply_to: Arc<Mailbox>,
    view: Arc<ServerView>,
    /// This reactor's statistics (it is their only writer).
    stats: Arc<ReactorStats>,
    log: Option<SyncSender<LogEntry>>,
    /// Where the handler files the request it is answering (see `Request::set_route`).
    route: Cell<usize>,
    pub(crate) clock: Clock,
    /// Output of this turn for the connection being served, written by the reactor.
    pub(crate) out: Vec<u8>,
    /// Bytes taken from the output budget for the large responses in `out`; the reactor
    /// hands them to the connection's output when it writes (`Output::settle`).
    pub(crate) charged: usize,
    /// The last number given to a response owed (see `Exchange::owe`).
    last_seq: u64,
    /// Spare exchanges, for connections that have work in hand.
    pub(crate) exchanges: ExchangePool,
    /// Where async handlers' futures run.
    #[cfg(feature = "tokio")]
    runtime: tokio::runtime::Handle,
}

/// What a [`Dispatcher`] shares with the other reactors of its server.
#[derive(Clone)]
pub(crate) struct Shared {
    pub(crate) handler: Arc<dyn Handler>,
    pub(crate) config: Arc<Config>,
    pub(crate) pool: WorkerPool,
    pub(crate) view: Arc<ServerView>,
    pub(crate) log: Option<SyncSender<LogEntry>>,
    #[cfg(feature = "tokio")]
    pub(crate) runtime: tokio::runtime::Handle,
}

impl Dispatcher {
    pub(crate) fn new(reactor: usize, shared: Shared, reply_to: Arc<Mailbox>) -> Self {
        let Shared {
            handler,
            config,
            pool,
            view,
            log,
            #[cfg(feature = "tokio")]
            runtime,
        } = shared;
        let stats = Arc::clone(&view.stats.reactors[reactor]);
        let clock = Clock::new(config.kernel_timestamps);
        Self {
            reactor,
            handler,
            exchanges: ExchangePool::new(config.limits, view.stats.budgets.clone()),
            config,
            pool,
            reply_to,
            route: Cell::new(stats.other_route()),
            view,
            stats,
            log,
            clock,
            out: Vec::new(),
            charged: 0,
            last_seq: 0,
            #[cfg(feature = "tokio")]
            runtime,
        }
    }

    /// Parses `new` (after any input kept from earlier) and answers every complete request,
    /// until the input runs out, `budget` requests were answered, output backs up, or the
    /// connection stops taking requests. Keeps in the session what must outlive this read.
    ///
    /// `drained`: nothing more waited in the socket when `new` was read, so a server shutting
    /// down may close after the last request here without dropping one already read.
    ///
    /// `arrived`: when `new` reached the kernel (the read's receive stamp, or the turn's time).
    /// A request is received when the first byte of its head arrived: one whose head starts in
    /// input kept from an earlier read keeps that read's time (`Session::arrived`), however
    /// long ago, so a request pipelined or cut off by the budget is never made fresher by a
    /// later read.
    pub(crate) fn process(
        &mut self,
        id: ConnId,
        session: &mut Session,
        (new, arrived): (&[u8], Instant),
        drained: bool,
        budget: &mut usize,
    ) -> Processed {
        let close_after = session.close_after;
        // Bytes before this offset of the round's data were kept from earlier reads.
        let kept = session.input.unconsumed().len();
        let kept_arrived = session.arrived.unwrap_or(arrived);
        let exchange = session
            .exchange
            .get_or_insert_with(|| self.exchanges.take());
        let mut input = session.input.begin(new);
        // A body that arrives in one piece is handed to the handler where it lies; pieces are
        // gathered in `exchange.body` only when there is more than one.
        let mut body_at: Option<Range<usize>> = None;
        let mut deadline = None;
        let mut flow = loop {
            if *budget == 0 {
                break Flow::Budget;
            }
            if self.out.len() + exchange.output.pending() > self.config.max_buffered_output
                || exchange.owed.len() >= self.config.max_pending_responses
            {
                break Flow::Paused;
            }
            let pos = input.position();
            match exchange.proto.recv(input.rest()) {
                Ok((n, Event::Head)) => {
                    input.head_starts();
                    input.consume(n);
                    let now = self.clock.now;
                    // The deadline counts from the head's arrival in the kernel; the body's
                    // pace times the client, so from when the reactor saw the head.
                    exchange.received = if pos < kept { kept_arrived } else { arrived };
                    exchange.pace = Pace::start(now);
                    let head = exchange.proto.head();
                    // A body that does not arrive with its head is gathered, and takes from
                    // the budget as its bytes arrive. `100 Continue` asks for it only while
                    // the budget has room for all of it (nothing is set aside: see the body
                    // module's docs for what may still refuse it).
                    let budget = &self.view.stats.budgets.bodies;
                    let room = match head.body() {
                        // Within `max_body`, so it fits in memory's address space.
                        BodyKind::Length(len) if len > input.rest().len() as u64 => {
                            exchange.body.begin(Some(len as usize));
                            !head.expects_continue() || budget.has_room_for(len as usize)
                        }
                        BodyKind::Chunked => {
                            exchange.body.begin(None);
                            !head.expects_continue() || budget.has_room_for(STEP)
                        }
                        _ => true,
                    };
                    if !room {
                        self.refuse_body(exchange);
                        break Flow::Stop;
                    }
                    if head.expects_continue() {
                        if exchange.owed.is_empty() {
                            send_continue(&mut self.out);
                        } else {
                            // In line behind the responses still owed.
                            let route = self.stats.other_route();
                            let ctx = ResponseContext::for_error();
                            let now = self.clock.now;
                            exchange.owe(self.seq(), ctx, route, now, OwedState::Continue);
                        }
                    }
                }
                Ok((n, Event::Body(range))) => {
                    let range = pos + range.start..pos + range.end;
                    exchange.pace.progress(range.len(), self.clock.now);
                    let gathered = if exchange.body.is_empty() && body_at.is_none() {
                        body_at = Some(range);
                        true
                    } else {
                        let first = body_at
                            .take()
                            .is_none_or(|first| exchange.body.extend(&input.data()[first]));
                        first && exchange.body.extend(&input.data()[range])
                    };
                    input.consume(n);
                    if !gathered {
                        // A chunked body outgrew the room left in the budget.
                        self.refuse_body(exchange);
                        break Flow::Stop;
                    }
                }
                Ok((n, Event::End)) => {
                    input.consume(n);
                    // Input may follow this request: in this read, or in the socket when the
                    // read filled the buffer.
                    let last = input.rest().is_empty() && drained;
                    let body = match body_at.take() {
                        Some(range) => &input.data()[range],
                        None => exchange.body.as_slice(),
                    };
                    let reply = self.run_handler(exchange, input.head(), body);
                    input.request_ends();
                    *budget -= 1;
                    session.requests += 1;
                    exchange.body.clear();
                    let close = close_after && last;
                    match self.answer(id, exchange, reply, close) {
                        Answered::Open => {}
                        Answered::Job(at) => {
                            deadline = Some(deadline.map_or(at, |d: Instant| d.min(at)));
                        }
                        Answered::Closing => {
                            session.read_all = last;
                            exchange.proto.close();
                            exchange.cancel_owed();
                            break Flow::Stop;
                        }
                    }
                }
                Ok((n, Event::NeedMore)) => {
                    input.consume(n);
                    break Flow::Continue;
                }
                Ok((_, Event::Closed)) => break Flow::Stop,
                Err(e) => {
                    self.refuse(exchange, e);
                    break Flow::Stop;
                }
            }
        };
        if let Some(first) = body_at
            && !exchange.body.extend(&input.data()[first])
        {
            // The body goes on in a later read, and it outgrew the room left in the budget.
            self.refuse_body(exchange);
            flow = Flow::Stop;
        }
        // What is kept from here on starts in this read's bytes, or still in older ones.
        if input.position() >= kept {
            session.arrived = Some(arrived);
        }
        if flow == Flow::Stop {
            input.discard();
        } else {
            input.finish(exchange.proto.head().len());
        }
        Processed { flow, deadline }
    }

    /// Runs the handler on a complete request; a panic becomes a 500.
    fn run_handler(&self, exchange: &Exchange, head: &[u8], body: &[u8]) -> Reply {
        let received = exchange.received;
        let deadline = deadline_after(received, self.config.deadline);
        self.route.set(self.stats.other_route());
        let req = Request::new(
            exchange.proto.request(head),
            body,
            self.reactor,
            (received, deadline),
            &self.view,
            &self.route,
        );
        let handler = &self.handler;
        answers::internal_error_on_panic(|| handler.handle(&req))
    }

    /// Sends a reply's response, or hands its job to the pool. `close`: the response is the
    /// last this connection will get (the server is shutting down).
    fn answer(
        &mut self,
        id: ConnId,
        exchange: &mut Exchange,
        reply: Reply,
        close: bool,
    ) -> Answered {
        let ctx = exchange.proto.head().response_context();
        let ctx = if close { ctx.with_close() } else { ctx };
        let route = self.route.get();
        // Work that answers later is owed in line (or refused at once, the 503 sent now).
        let handed = match reply {
            Reply::Ready(response) => {
                if response.status().is_success() {
                    self.stats.in_time(route);
                }
                Err(response)
            }
            Reply::Offload(job) => {
                let deadline = job.deadline;
                self.hand_off(exchange, (ctx, route), deadline, |d, seq, at| {
                    d.submit(job, (id, seq, route), at)
                })
            }
            #[cfg(feature = "tokio")]
            Reply::Async(job) => {
                let deadline = job.deadline;
                self.hand_off(exchange, (ctx, route), deadline, |d, seq, at| {
                    d.spawn(job, (id, seq, route), at)
                })
            }
        };
        let response = match handed {
            Ok(deadline) => return Answered::Job(deadline),
            Err(response) => response,
        };
        let (response, charge) = self.admit(ctx, response);
        if !exchange.owed.is_empty() {
            // Behind a response that is not ready: wait in line.
            let received = exchange.received;
            exchange.owe(
                self.seq(),
                ctx,
                route,
                received,
                OwedState::Ready(response, charge),
            );
            return Answered::Open;
        }
        let (keep_alive, status) = self.encode(ctx, &response, charge);
        // The clock is from the start of the turn, so this counts the time the request waited
        // behind others in this turn as well as its handler (one vDSO clock read per inline
        // response, no system call).
        self.record(route, status, exchange.received.elapsed());
        if keep_alive {
            Answered::Open
        } else {
            Answered::Closing
        }
    }

    /// Hands work that answers later (a job, a future) off with `start`, and owes its answer in
    /// line; returns its deadline, or the 503 to send instead when it cannot run: its deadline
    /// (`deadline`, or the server's) has passed, or `start` refused it.
    fn hand_off(
        &mut self,
        exchange: &mut Exchange,
        (ctx, route): (ResponseContext, usize),
        deadline: Option<Duration>,
        start: impl FnOnce(&Self, u64, Instant) -> Result<Pending, Shed>,
    ) -> Result<Instant, Response> {
        let received = exchange.received;
        let deadline = deadline_after(received, deadline.unwrap_or(self.config.deadline));
        if deadline <= self.clock.now {
            return Err(self.shed(Shed::Deadline));
        }
        // The answer cannot be taken before its slot is there: only this thread reads the
        // mailbox.
        let seq = self.seq();
        let pending = start(self, seq, deadline).map_err(|reason| self.shed(reason))?;
        exchange.owe(
            seq,
            ctx,
            route,
            received,
            OwedState::Job { pending, deadline },
        );
        Ok(deadline)
    }

    /// Queues a job for the pool, as response `seq` of `conn`.
    fn submit(
        &self,
        job: Job,
        (conn, seq, route): (ConnId, u64, usize),
        deadline: Instant,
    ) -> Result<Pending, Shed> {
        let task = Task {
            job,
            deadline,
            route,
            reply_to: Arc::clone(&self.reply_to),
            conn,
            seq,
        };
        match self.pool.submit(self.clock.now, task) {
            Ok(ticket) => Ok(Pending::Pool(ticket)),
            Err(Refused::QueueFull) => Err(Shed::QueueFull),
            Err(Refused::ExpectedMiss) => Err(Shed::ExpectedMiss),
        }
    }

    /// Spawns an async handler's future on the runtime, as response `seq` of `conn`; refused
    /// when its route has its limit of futures in flight.
    #[cfg(feature = "tokio")]
    fn spawn(
        &self,
        job: crate::AsyncJob,
        at: (ConnId, u64, usize),
        deadline: Instant,
    ) -> Result<Pending, Shed> {
        use crate::task::{NotSpawned, Spawner};

        let spawner = Spawner {
            runtime: &self.runtime,
            tasks: &self.view.stats.tasks,
            reply_to: &self.reply_to,
        };
        match spawner.spawn(job, at, deadline) {
            Ok(task) => Ok(Pending::Task(task)),
            Err(NotSpawned::InFlightLimit) => Err(Shed::InFlight),
        }
    }

    /// A number for a response owed, unique on this reactor.
    fn seq(&mut self) -> u64 {
        self.last_seq += 1;
        self.last_seq
    }

    /// Counts a 503 for `reason` and makes it (see `answers::shed`).
    fn shed(&self, reason: Shed) -> Response {
        self.stats.shed(reason);
        answers::shed(reason, self.config.retry_after)
    }

    /// Answers a request that could not be parsed, in its place in line: now if nothing is
    /// owed before it, else after what is owed. The connection closes after it.
    fn refuse(&mut self, exchange: &mut Exchange, error: rtserve_protocol::RecvError) {
        if exchange.owed.is_empty() {
            send_error(error, &self.clock.date, &mut self.out);
            self.record(self.stats.other_route(), error.status(), Duration::ZERO);
        } else {
            let (route, now) = (self.stats.other_route(), self.clock.now);
            let ctx = ResponseContext::for_error();
            exchange.owe(self.seq(), ctx, route, now, OwedState::Refusal(error));
        }
    }

    /// The request cannot go on (its client took too long, or its body would hold the budget
    /// too long): `response` in its place in line, then close (RFC 9110 §15.5.9 for a 408).
    pub(crate) fn cut_short(&mut self, session: &mut Session, response: Response) {
        let exchange = session
            .exchange
            .get_or_insert_with(|| self.exchanges.take());
        self.answer_last(exchange, response);
    }

    /// The body budget has no room for the current request's body: 503 before any more of it
    /// is read, in its place in line, then close.
    fn refuse_body(&mut self, exchange: &mut Exchange) {
        self.stats.body_refused();
        self.answer_last(exchange, answers::no_room_for_body());
    }

    /// Answers the current request with `response`, now or behind what is owed, and takes no
    /// more requests: the connection closes after it.
    fn answer_last(&mut self, exchange: &mut Exchange, response: Response) {
        exchange.proto.close();
        // The body will not be read further: its share of the budget goes back now, not when
        // the client has taken the answer.
        exchange.body.clear();
        let ctx = ResponseContext::for_error();
        let route = self.stats.other_route();
        let (response, charge) = self.admit(ctx, response);
        if exchange.owed.is_empty() {
            let (_, status) = self.encode(ctx, &response, charge);
            self.record(route, status, Duration::ZERO);
        } else {
            let now = self.clock.now;
            exchange.owe(
                self.seq(),
                ctx,
                route,
                now,
                OwedState::Ready(response, charge),
            );
        }
    }

    /// The peer closed its side: a request cut short is answered (the client may still be
    /// reading: it half-closed), and no more are taken.
    pub(crate) fn recv_eof(&mut self, session: &mut Session) {
        let Some(exchange) = session.exchange.as_deref_mut() else {
            return;
        };
        if let Err(e) = exchange.proto.recv_eof(session.input.unconsumed()) {
            self.refuse(exchange, e);
        }
    }

    /// What requests can see of the server.
    pub(crate) fn view(&self) -> &ServerView {
        &self.view
    }
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("reactor", &self.reactor)
            .field("out", &self.out.len())
            .finish_non_exhaustive()
    }
}

/// What became of a request's reply.
enum Answered {
    /// Sent or queued; the connection goes on.
    Open,
    /// Handed to the pool, due by this deadline.
    Job(Instant),
    /// Sent, and the connection closes after it.
    Closing,
}

/// `received + after`, at most a year on (a deadline of `Duration::MAX` means "none").
fn deadline_after(received: Instant, after: Duration) -> Instant {
    const FAR: Duration = Duration::from_secs(365 * 86_400);
    received.checked_add(after.min(FAR)).unwrap_or(received)
}

#[cfg(test)]
mod tests {
    //! The dispatcher driven with bytes in and bytes out: no socket, and a clock that moves
    //! only when a test moves it.

    use std::sync::atomic::AtomicBool;

    use mio::Poll;

    use super::*;
    use crate::{JobContext, StatusCode, mailbox::Message, stats::StatsRegistry};

    /// A dispatcher for `handler` with a stopped clock, one worker, and what keeps its
    /// mailbox alive.
    fn dispatcher(handler: impl Handler) -> (Dispatcher, Poll, std::sync::mpsc::Receiver<Message>) {
        dispatcher_with_output_budget(handler, 1 << 20)
    }

    /// [`dispatcher`], with an output budget of `output` bytes.
    fn dispatcher_with_output_budget(
        handler: impl Handler,
        output: usize,
    ) -> (Dispatcher, Poll, std::sync::mpsc::Receiver<Message>) {
        let poll = Poll::new().expect("a poll");
        let (mailbox, receiver) = Mailbox::new(poll.registry()).expect("a mailbox");
        let budgets = crate::budget::Budgets {
            bodies: Arc::new(crate::budget::ByteBudget::new(1 << 20)),
            output: Arc::new(crate::budget::ByteBudget::new(output)),
        };
        let stats = Arc::new(StatsRegistry::new(1, handler.routes(), budgets, 4));
        let mut config = Config::default();
        (config.workers, config.queue) = (1, 4);
        let routes = stats.names.len() + 1;
        let (pool, _workers) =
            WorkerPool::start(&config, routes, Arc::clone(&stats.pool), Default::default())
                .expect("a pool");
        let shared = Shared {
            handler: Arc::new(handler),
            config: Arc::new(config),
            pool,
            view: Arc::new(ServerView {
                draining: Arc::new(AtomicBool::new(false)),
                stats,
            }),
            log: None,
            #[cfg(feature = "tokio")]
            runtime: test_runtime(),
        };
        let mut dispatcher = Dispatcher::new(0, shared, mailbox);
        dispatcher.clock = Clock::at(Instant::now(), None);
        (dispatcher, poll, receiver)
    }

    /// A runtime for the futures of the tests, alive as long as the tests run.
    #[cfg(feature = "tokio")]
    fn test_runtime() -> tokio::runtime::Handle {
        static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
        RUNTIME
            .get_or_init(|| {
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .build()
                    .expect("a runtime")
            })
            .handle()
            .clone()
    }

    fn hello(_: &Request<'_>) -> Reply {
        Response::text(StatusCode::OK, "hi").into()
    }

    const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";

    /// Feeds one read; returns the flow and what was written.
    fn feed(d: &mut Dispatcher, s: &mut Session, new: &[u8], drained: bool) -> (Flow, String) {
        let mut budget = 64;
        let id = ConnId {
            index: 0,
            generation: 0,
        };
        let processed = d.process(id, s, (new, d.clock.now), drained, &mut budget);
        let out = String::from_utf8_lossy(&d.out).into_owned();
        d.out.clear();
        (processed.flow, out)
    }

    #[test]
    fn pipelined_requests_are_answered_in_one_buffer() {
        let (mut d, _poll, _rx) = dispatcher(hello);
        let mut s = Session::default();
        let (flow, out) = feed(&mut d, &mut s, &[GET, GET].concat(), true);
        assert_eq!(flow, Flow::Continue);
        assert_eq!(out.matches("HTTP/1.1 200 OK\r\n").count(), 2, "{out}");
        assert!(!out.contains("Connection: close"), "{out}");
        assert_eq!(s.requests, 2);
        assert!(s.is_idle());
    }

    #[test]
    fn a_head_split_across_reads_is_answered_once_whole() {
        let (mut d, _poll, _rx) = dispatcher(hello);
        let mut s = Session::default();
        assert_eq!(
            feed(&mut d, &mut s, &GET[..7], true),
            (Flow::Continue, String::new())
        );
        assert!(!s.input.is_empty());
        let (_, out) = feed(&mut d, &mut s, &GET[7..], true);
        assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
        assert!(s.input.is_empty());
    }

    /// What a handler that records each request's `received` was told, in order.
    type Received = Arc<std::sync::Mutex<Vec<Instant>>>;

    /// A dispatcher whose handler records each request's `received`, and the connection's id.
    fn recording() -> (
        Dispatcher,
        Poll,
        std::sync::mpsc::Receiver<Message>,
        Received,
        ConnId,
    ) {
        let seen = Received::default();
        let record = Arc::clone(&seen);
        let handler = move |req: &Request<'_>| -> Reply {
            record.lock().expect("not poisoned").push(req.received());
            Response::new(StatusCode::OK).into()
        };
        let (d, poll, rx) = dispatcher(handler);
        let id = ConnId {
            index: 0,
            generation: 0,
        };
        (d, poll, rx, seen, id)
    }

    #[test]
    fn a_request_is_received_when_its_heads_first_byte_arrived() {
        // Each read arrives at its own time; the handler reports what it was told.
        let (mut d, _poll, _rx, seen, id) = recording();
        let base = d.clock.now;
        let at = |ms| base - Duration::from_millis(ms);
        let mut s = Session::default();
        let mut budget = 64;
        let mut feed = |d: &mut Dispatcher, s: &mut Session, new: &[u8], arrived| {
            let _ = d.process(id, s, (new, arrived), true, &mut budget);
            d.out.clear();
        };
        // A head split over two reads dates from the first; the request that starts in the
        // second read dates from it, though a later stamp came with the bytes before it.
        feed(&mut d, &mut s, &GET[..7], at(30));
        feed(&mut d, &mut s, &[&GET[7..], GET].concat(), at(20));
        // A request whose head began in bytes kept across several reads keeps the first.
        feed(&mut d, &mut s, &GET[..3], at(15));
        feed(&mut d, &mut s, &GET[3..9], at(10));
        feed(&mut d, &mut s, &GET[9..], at(5));
        assert_eq!(
            *seen.lock().expect("not poisoned"),
            [at(30), at(20), at(15)]
        );
    }

    #[test]
    fn requests_left_by_the_budget_keep_their_reads_time() {
        let (mut d, _poll, _rx, seen, id) = recording();
        let (early, late) = (d.clock.now - Duration::from_millis(50), d.clock.now);
        let mut s = Session::default();
        // Three pipelined requests, a budget of one: two are kept for later.
        let mut budget = 1;
        let processed = d.process(
            id,
            &mut s,
            (&[GET, GET, GET].concat(), early),
            true,
            &mut budget,
        );
        assert_eq!(processed.flow, Flow::Budget);
        // Served in a later turn, with nothing new read, then with a new read behind them.
        let mut budget = 1;
        let _ = d.process(id, &mut s, (&[], late), true, &mut budget);
        let mut budget = 64;
        let _ = d.process(id, &mut s, (GET, late), true, &mut budget);
        assert_eq!(
            *seen.lock().expect("not poisoned"),
            [early, early, early, late]
        );
    }

    #[test]
    fn shutting_down_the_last_request_read_says_close() {
        let (mut d, _poll, _rx) = dispatcher(hello);
        let mut s = Session {
            close_after: true,
            ..Session::default()
        };
        // More may wait in the socket: not the last yet.
        let (flow, out) = feed(&mut d, &mut s, GET, false);
        assert_eq!(flow, Flow::Continue);
        assert!(!out.contains("Connection: close"), "{out}");
        // Two in one read, the socket drained: only the second says close.
        let (flow, out) = feed(&mut d, &mut s, &[GET, GET].concat(), true);
        assert_eq!(flow, Flow::Stop);
        let (first, second) = out.split_at(out.rfind("HTTP/1.1").expect("two responses"));
        assert!(!first.contains("Connection: close"), "{out}");
        assert!(second.contains("Connection: close"), "{out}");
    }

    #[test]
    fn a_bad_request_is_refused_and_ends_the_connection() {
        let (mut d, _poll, _rx) = dispatcher(hello);
        let mut s = Session::default();
        let (flow, out) = feed(&mut d, &mut s, b"GET / HTTP/1.1\r\n\r\n", true);
        assert_eq!(flow, Flow::Stop);
        assert!(out.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{out}");
        assert!(out.contains("Connection: close"), "{out}");
        assert!(s.input.is_empty());
    }

    #[test]
    fn a_job_past_its_deadline_is_answered_503_in_its_place() {
        let slow = |_: &Request<'_>| -> Reply {
            Reply::offload(|ctx: &JobContext| {
                while !ctx.is_cancelled() {
                    std::thread::sleep(Duration::from_millis(1));
                }
                Response::new(StatusCode::OK)
            })
        };
        let (mut d, _poll, _rx) = dispatcher(slow);
        let mut s = Session::default();
        let mut budget = 64;
        let id = ConnId {
            index: 0,
            generation: 0,
        };
        let processed = d.process(id, &mut s, (GET, d.clock.now), true, &mut budget);
        let deadline = processed.deadline.expect("the job's deadline");
        assert_eq!(s.owed(), 1);
        assert!(d.out.is_empty());
        // Not due yet: nothing to send.
        assert_eq!(d.expire(&mut s), Some(deadline));
        assert!(!d.release(&mut s, false));
        assert!(d.out.is_empty());
        // The clock reaches the deadline.
        d.clock.now = deadline;
        assert_eq!(d.expire(&mut s), None);
        assert!(!d.release(&mut s, false));
        let out = String::from_utf8_lossy(&d.out);
        assert!(
            out.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
            "{out}"
        );
        assert_eq!(s.owed(), 0);
    }

    #[test]
    fn large_answers_waiting_in_line_take_from_the_output_budget_at_once() {
        let handler = |req: &Request<'_>| -> Reply {
            if req.path() == "/job" {
                Reply::offload(|ctx: &JobContext| {
                    ctx.sleep(Duration::from_secs(5));
                    Response::new(StatusCode::OK)
                })
            } else {
                Response::new(StatusCode::OK)
                    .with_body(vec![b'b'; 60_000])
                    .into()
            }
        };
        let (mut d, _poll, _rx) = dispatcher_with_output_budget(handler, 100_000);
        let mut s = Session::default();
        let job = b"GET /job HTTP/1.1\r\nHost: x\r\n\r\n";
        let big = b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n";
        let (_, out) = feed(&mut d, &mut s, &[&job[..], big, big].concat(), true);
        assert!(out.is_empty(), "all wait behind the job: {out}");
        // The first large answer is held in line, and counted; the second does not fit beside
        // it and is refused now, not when the job ends.
        assert_eq!(d.view.stats.budgets.output.used(), 60_000);
        assert_eq!(d.view.stats.merged().output_refusals, 1);
        // Dropping what is owed (the client left) gives the bytes back.
        s.exchange.as_deref_mut().expect("in hand").cancel_owed();
        assert_eq!(d.view.stats.budgets.output.used(), 0);
    }

    #[test]
    fn responses_owed_are_numbered_uniquely_across_exchanges() {
        // A late answer is matched by (connection, number): two exchanges, which the pool
        // may hand to one connection in turn, must never owe under the same number.
        let job = |_: &Request<'_>| -> Reply {
            Reply::offload(|ctx: &JobContext| {
                ctx.sleep(Duration::from_secs(5));
                Response::new(StatusCode::OK)
            })
        };
        let (mut d, _poll, _rx) = dispatcher(job);
        let (mut first, mut second) = (Session::default(), Session::default());
        let _ = feed(&mut d, &mut first, GET, true);
        let _ = feed(&mut d, &mut second, GET, true);
        let seq = |s: &Session| s.exchange.as_ref().expect("in hand").owed[0].seq;
        assert_ne!(seq(&first), seq(&second));
    }
}
