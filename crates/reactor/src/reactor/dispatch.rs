//! Requests to responses: parse, run the handler, then answer now, hand the job to the worker
//! pool, or refuse; the responses owed, completed, expired and sent in request order, are in
//! [`owed`].
//!
//! A [`Dispatcher`] works on a connection's [`Session`] and the bytes just read, and appends
//! what to send to the [`Turn`]'s output. It holds no socket, no clock and no output of its
//! own: the reactor lends them for each call, so it can be driven in a test with bytes in and
//! bytes out, on a clock that moves only when the test moves it.

mod owed;

use std::{
    sync::{Arc, mpsc::SyncSender},
    time::{Duration, Instant},
};

use rtserve_protocol::{BodyKind, Event, ResponseContext, send_continue};

use super::clock::Clock;
use crate::{
    Config, Handler, Job, Reply, Request, Response, Shed, answers,
    body::{Pace, Pieces, STEP},
    deadline::{self, Caller, Due, deadline_after},
    log::LogEntry,
    mailbox::Mailbox,
    pool::{Refused, Task, WorkerPool},
    request::{Filing, ServerView},
    session::{Exchange, ExchangePool, Outgoing, OwedState, Pending, Session},
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
    /// The request that ended the connection was read in full, with nothing after it in the
    /// socket: the connection may close at once (see `Phase::Closing`).
    pub(crate) read_all: bool,
}

/// What the reactor lends its dispatcher for one call: the turn's clock, the configuration and
/// statistics answers are made and counted by, whether the server is shutting down, and
/// where the bytes to send go.
pub(crate) struct Turn<'a> {
    pub(crate) clock: &'a Clock,
    pub(crate) config: &'a Config,
    /// This reactor's statistics (it is their only writer).
    pub(crate) stats: &'a ReactorStats,
    /// The server is shutting down: the last response owed on a connection says it closes.
    pub(crate) draining: bool,
    pub(crate) out: &'a mut Outgoing,
}

/// Everything one reactor needs to turn requests into responses.
pub(crate) struct Dispatcher {
    reactor: usize,
    handler: Arc<dyn Handler>,
    pool: WorkerPool,
    /// This reactor's own mailbox, for jobs to answer through.
    reply_to: Arc<Mailbox>,
    view: Arc<ServerView>,
    log: Option<SyncSender<LogEntry>>,
    /// Where the handler files what it decides of the request it is answering: its route
    /// (`Request::set_route`) and its deadline (`with_deadline`).
    filing: Filing,
    /// The last number given to a response owed (see `Exchange::owe`).
    last_seq: u64,
    /// Spare exchanges, for connections that have work in hand.
    exchanges: ExchangePool,
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
        let other_route = view.stats.reactors[reactor].other_route();
        Self {
            reactor,
            handler,
            exchanges: ExchangePool::new(config.limits, view.stats.budgets.clone()),
            pool,
            reply_to,
            filing: Filing::new(other_route),
            view,
            log,
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
        t: &mut Turn<'_>,
        id: ConnId,
        session: &mut Session,
        (new, arrived): (&[u8], Instant),
        drained: bool,
        budget: &mut usize,
    ) -> Processed {
        // Bytes before this offset of the round's data were kept from earlier reads.
        let kept = session.input.unconsumed().len();
        let kept_arrived = session.arrived.unwrap_or(arrived);
        let exchange = session
            .exchange
            .get_or_insert_with(|| self.exchanges.take());
        let mut input = session.input.begin(new);
        let mut pieces = Pieces::default();
        let mut read_all = false;
        let mut flow = loop {
            if *budget == 0 {
                break Flow::Budget;
            }
            if t.out.buf.len() + exchange.output.pending() > t.config.max_buffered_output
                || exchange.owed.len() >= t.config.max_pending_responses
            {
                break Flow::Paused;
            }
            let pos = input.position();
            let went_on = match exchange.proto.recv(input.rest()) {
                Ok((n, Event::Head)) => {
                    input.head_starts();
                    input.consume(n);
                    let received = if pos < kept { kept_arrived } else { arrived };
                    self.head(t, exchange, received, input.rest().len())
                }
                Ok((n, Event::Body(range))) => {
                    let range = pos + range.start..pos + range.end;
                    exchange.pace.progress(range.len(), t.clock.now);
                    let body = &mut exchange.body;
                    let gathered = pieces.add(input.data(), range, !body.is_empty(), |piece| {
                        body.extend(piece)
                    });
                    input.consume(n);
                    // A chunked body outgrew the room left in the budget.
                    gathered || self.refuse_body(t, exchange)
                }
                Ok((n, Event::End)) => {
                    input.consume(n);
                    // Input may follow this request: in this read, or in the socket when the
                    // read filled the buffer.
                    let last = input.rest().is_empty() && drained;
                    let body = pieces.body(input.data(), exchange.body.as_slice());
                    let (reply, due) = self.run_handler(t, exchange, input.head(), body);
                    input.request_ends();
                    *budget -= 1;
                    session.requests += 1;
                    let open = self.end(t, (id, exchange), (reply, due), last);
                    read_all = !open && last;
                    open
                }
                Ok((n, Event::NeedMore)) => {
                    input.consume(n);
                    break Flow::Continue;
                }
                Ok((_, Event::Closed)) => false,
                Err(e) => {
                    self.refuse(t, exchange, e);
                    false
                }
            };
            if !went_on {
                break Flow::Stop;
            }
        };
        let body = &mut exchange.body;
        if !pieces.keep(input.data(), |piece| body.extend(piece)) {
            // The body goes on in a later read, and it outgrew the room left in the budget.
            self.refuse_body(t, exchange);
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
        Processed { flow, read_all }
    }

    /// A request's head was parsed (`rest`: the bytes of this read after it): its deadline
    /// counts from `received`, when the head reached the kernel; its body's pace times the
    /// client, so from now. Returns whether the request goes on (false: its body is refused,
    /// and the connection closes after the answer).
    fn head(
        &mut self,
        t: &mut Turn<'_>,
        exchange: &mut Exchange,
        received: Instant,
        rest: usize,
    ) -> bool {
        exchange.received = received;
        exchange.pace = Pace::start(t.clock.now);
        let head = exchange.proto.head();
        // A body that does not arrive with its head is gathered, and takes from the budget as
        // its bytes arrive. `100 Continue` asks for it only while the budget has room for all
        // of it (nothing is set aside: see the body module's docs for what may still refuse
        // it).
        let budget = &self.view.stats.budgets.bodies;
        let room = match head.body() {
            // Within `max_body`, so it fits in memory's address space.
            BodyKind::Length(len) if len > rest as u64 => {
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
            return self.refuse_body(t, exchange);
        }
        if head.expects_continue() {
            if exchange.owed.is_empty() {
                send_continue(&mut t.out.buf);
            } else {
                // In line behind the responses still owed.
                let (route, ctx) = (t.stats.other_route(), ResponseContext::for_error());
                exchange.owe(self.seq(), ctx, route, t.clock.now, OwedState::Continue);
            }
        }
        true
    }

    /// A request was read to its end and its handler replied: answer, or hand the work off
    /// (held to the deadlines of `reply.1`). `last`: nothing followed it in this read or the
    /// socket. Returns whether the connection
    /// takes more requests.
    fn end(
        &mut self,
        t: &mut Turn<'_>,
        (id, exchange): (ConnId, &mut Exchange),
        reply: (Reply, Due),
        last: bool,
    ) -> bool {
        exchange.body.clear();
        let close = t.draining && last;
        if self.answer(t, id, exchange, reply, close) {
            return true;
        }
        exchange.proto.close();
        exchange.cancel_owed();
        false
    }

    /// Runs the handler on a complete request; a panic becomes a 500. Returns the reply, and
    /// the deadlines it is held to: the request's as the handler left it (its route's, say),
    /// and the one its caller stated (see [caller deadlines](crate#caller-deadlines)). A
    /// caller's budget that cannot be read, or is spent, is answered at once, the handler not
    /// run.
    fn run_handler(
        &self,
        t: &Turn<'_>,
        exchange: &Exchange,
        head: &[u8],
        body: &[u8],
    ) -> (Reply, Due) {
        let received = exchange.received;
        let request = exchange.proto.request(head);
        let other = t.stats.other_route();
        self.filing.route.set(other);
        let default = deadline_after(received, t.config.deadline);
        let header = t.config.deadline_header.as_deref();
        let judged = (t.clock.now, t.config.min_caller_budget);
        let caller = match deadline::caller(header, &request, received, judged) {
            Caller::Silent => None,
            Caller::Until(at) => Some(at),
            refused => {
                let due = Due {
                    request: default,
                    caller: None,
                };
                let answer = if refused == Caller::Spent {
                    self.shed(t, other, Shed::CallerBudget)
                } else {
                    answers::bad_deadline_header()
                };
                return (answer.into(), due);
            }
        };
        let req = Request::new(
            request,
            body,
            self.reactor,
            (received, default),
            &self.view,
            &self.filing,
        )
        .capped(caller);
        let handler = &self.handler;
        let reply = answers::internal_error_on_panic(|| handler.handle(&req));
        let due = Due {
            request: self.filing.deadline.get(),
            caller,
        };
        (reply, due)
    }

    /// Sends a reply's response, or hands its job to the pool (see [`Due`] for its deadline);
    /// returns whether the connection stays open. `close`: the response is the last this
    /// connection will get (the server is shutting down).
    fn answer(
        &mut self,
        t: &mut Turn<'_>,
        id: ConnId,
        exchange: &mut Exchange,
        (reply, due): (Reply, Due),
        close: bool,
    ) -> bool {
        let ctx = exchange.proto.head().response_context();
        let ctx = if close { ctx.with_close() } else { ctx };
        let route = self.filing.route.get();
        // How long the request had to be answered in time.
        let allowed = due.request.saturating_duration_since(exchange.received);
        // Work that answers later is owed in line (or refused at once, the 503 sent now).
        let handed = match reply {
            Reply::Ready(response) => Err(response),
            Reply::Offload(job) => {
                let deadline = (job.deadline, due);
                self.hand_off(t, exchange, (ctx, route), deadline, |d, t, seq, at| {
                    d.submit(t, job, (id, seq, route), at)
                })
            }
            #[cfg(feature = "tokio")]
            Reply::Async(job) => {
                let deadline = (job.deadline, due);
                self.hand_off(t, exchange, (ctx, route), deadline, |d, _, seq, at| {
                    d.spawn(job, (id, seq, route), at)
                })
            }
        };
        let response = match handed {
            Ok(()) => return true,
            Err(response) => response,
        };
        let (response, charge) = self.admit(t, ctx, response);
        if !exchange.owed.is_empty() {
            // Behind a response that is not ready: wait in line. It was ready now (the clock
            // is read for it, as for an answer sent at once below).
            let received = exchange.received;
            if response.status().is_success() {
                Self::ready(t, route, t.clock.since(received), allowed);
            }
            exchange.owe(
                self.seq(),
                ctx,
                route,
                received,
                OwedState::Ready(response, charge),
            );
            return true;
        }
        let (keep_alive, status) = self.encode(t, ctx, &response, charge);
        // The clock is from the start of the turn, so this counts the time the request waited
        // behind others in this turn as well as its handler (one vDSO clock read per inline
        // response, no system call).
        let latency = t.clock.since(exchange.received);
        if status.is_success() {
            Self::ready(t, route, latency, allowed);
        }
        self.record(t, route, status, latency);
        keep_alive
    }

    /// Counts a 2xx answer made on the reactor (an inline handler's) `after` its request
    /// arrived, which had `allowed` to be answered: in time, or late. Nothing stops an inline
    /// handler at its deadline, so this is the one path that can answer late; offloaded work
    /// that ends late is answered 503.
    fn ready(t: &Turn<'_>, route: usize, after: Duration, allowed: Duration) {
        if after < allowed {
            t.stats.in_time(route);
        } else {
            t.stats.answered_late(route);
        }
    }

    /// Hands work that answers later (a job, a future) off with `start`, and owes its answer in
    /// line; or returns the 503 to send instead when it cannot run: its deadline (its own, or
    /// the server's, and never past its caller's) has passed, or `start` refused it.
    fn hand_off(
        &mut self,
        t: &Turn<'_>,
        exchange: &mut Exchange,
        (ctx, route): (ResponseContext, usize),
        (own, due): (Option<Duration>, Due),
        start: impl FnOnce(&Self, &Turn<'_>, u64, Instant) -> Result<Pending, Shed>,
    ) -> Result<(), Response> {
        let received = exchange.received;
        let deadline = due.of_work(received, own);
        if deadline <= t.clock.now {
            return Err(self.shed(t, route, Shed::Deadline));
        }
        // The answer cannot be taken before its slot is there: only this thread reads the
        // mailbox.
        let seq = self.seq();
        let pending =
            start(self, t, seq, deadline).map_err(|reason| self.shed(t, route, reason))?;
        exchange.owe(
            seq,
            ctx,
            route,
            received,
            OwedState::Job { pending, deadline },
        );
        Ok(())
    }

    /// Queues a job for the pool, as response `seq` of `conn`.
    fn submit(
        &self,
        t: &Turn<'_>,
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
        match self.pool.submit(t.clock.now, task) {
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

    /// Counts a 503 for `reason` on `route` and makes it (see `answers::shed`).
    fn shed(&self, t: &Turn<'_>, route: usize, reason: Shed) -> Response {
        t.stats.shed(route, reason);
        answers::shed(reason, t.config.retry_after)
    }

    /// Answers a request that could not be parsed, in its place in line: now if nothing is
    /// owed before it, else after what is owed. The connection closes after it.
    fn refuse(
        &mut self,
        t: &mut Turn<'_>,
        exchange: &mut Exchange,
        error: rtserve_protocol::RecvError,
    ) {
        if exchange.owed.is_empty() {
            let (_, status) = Self::send_refusal(t, error);
            self.record(t, t.stats.other_route(), status, Duration::ZERO);
        } else {
            let (route, now) = (t.stats.other_route(), t.clock.now);
            let ctx = ResponseContext::for_error();
            exchange.owe(self.seq(), ctx, route, now, OwedState::Refusal(error));
        }
    }

    /// The request cannot go on (its client took too long, or its body would hold the budget
    /// too long): `response` in its place in line, then close (RFC 9110 §15.5.9 for a 408).
    pub(crate) fn cut_short(
        &mut self,
        t: &mut Turn<'_>,
        session: &mut Session,
        response: Response,
    ) {
        let exchange = session
            .exchange
            .get_or_insert_with(|| self.exchanges.take());
        self.answer_last(t, exchange, response);
    }

    /// The body budget has no room for the current request's body: 503 before any more of it
    /// is read, in its place in line, then close. Returns false: the request does not go on.
    fn refuse_body(&mut self, t: &mut Turn<'_>, exchange: &mut Exchange) -> bool {
        t.stats.body_refused();
        self.answer_last(t, exchange, answers::no_room_for_body());
        false
    }

    /// Answers the current request with `response`, now or behind what is owed, and takes no
    /// more requests: the connection closes after it.
    fn answer_last(&mut self, t: &mut Turn<'_>, exchange: &mut Exchange, response: Response) {
        exchange.proto.close();
        // The body will not be read further: its share of the budget goes back now, not when
        // the client has taken the answer.
        exchange.body.clear();
        let ctx = ResponseContext::for_error();
        let route = t.stats.other_route();
        let (response, charge) = self.admit(t, ctx, response);
        if exchange.owed.is_empty() {
            let (_, status) = self.encode(t, ctx, &response, charge);
            self.record(t, route, status, Duration::ZERO);
        } else {
            let now = t.clock.now;
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
    pub(crate) fn recv_eof(&mut self, t: &mut Turn<'_>, session: &mut Session) {
        let Some(exchange) = session.exchange.as_deref_mut() else {
            return;
        };
        if let Err(e) = exchange.proto.recv_eof(session.input.unconsumed()) {
            self.refuse(t, exchange, e);
        }
    }

    /// What requests can see of the server.
    pub(crate) fn view(&self) -> &ServerView {
        &self.view
    }

    /// Takes back a connection's exchange (its connection closed, or has nothing in hand).
    pub(crate) fn give_back(&mut self, exchange: Box<Exchange>) {
        self.exchanges.give(exchange);
    }

    /// Frees spare exchanges left unused since the last call (once a second).
    pub(crate) fn trim_spares(&mut self) {
        self.exchanges.trim();
    }
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("reactor", &self.reactor)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    //! The dispatcher driven with bytes in and bytes out: no socket, and a clock that moves
    //! only when a test moves it.

    use std::sync::{atomic::AtomicBool, mpsc::Receiver};

    use mio::Poll;

    use super::*;
    use crate::{JobContext, StatusCode, mailbox::Message, stats::StatsRegistry};

    /// A dispatcher, with what its reactor lends it (a stopped clock, the configuration, the
    /// statistics, the turn's output), and what keeps its mailbox alive.
    struct Rig {
        d: Dispatcher,
        clock: Clock,
        config: Config,
        stats: Arc<ReactorStats>,
        out: Outgoing,
        draining: bool,
        _poll: Poll,
        _rx: Receiver<Message>,
    }

    impl Rig {
        /// The dispatcher, and the turn lent to it.
        fn turn(&mut self) -> (&mut Dispatcher, Turn<'_>) {
            let turn = Turn {
                clock: &self.clock,
                config: &self.config,
                stats: &self.stats,
                draining: self.draining,
                out: &mut self.out,
            };
            (&mut self.d, turn)
        }

        fn process(
            &mut self,
            s: &mut Session,
            new: (&[u8], Instant),
            drained: bool,
            budget: &mut usize,
        ) -> Processed {
            let (d, mut t) = self.turn();
            d.process(&mut t, ID, s, new, drained, budget)
        }

        fn expire(&mut self, s: &mut Session) {
            let (d, t) = self.turn();
            d.expire(&t, s);
        }

        fn release(&mut self, s: &mut Session) -> bool {
            let (d, mut t) = self.turn();
            d.release(&mut t, s, false)
        }

        /// What was written since the last call.
        fn written(&mut self) -> String {
            let out = String::from_utf8_lossy(&self.out.buf).into_owned();
            self.out.buf.clear();
            out
        }
    }

    const ID: ConnId = ConnId {
        index: 0,
        generation: 0,
    };

    /// A dispatcher for `handler`, one worker.
    fn rig(handler: impl Handler) -> Rig {
        rig_with_output_budget(handler, 1 << 20)
    }

    /// [`rig`], with an output budget of `output` bytes.
    fn rig_with_output_budget(handler: impl Handler, output: usize) -> Rig {
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
        let reactor_stats = Arc::clone(&stats.reactors[0]);
        let shared = Shared {
            handler: Arc::new(handler),
            config: Arc::new(config.clone()),
            pool,
            view: Arc::new(ServerView {
                draining: Arc::new(AtomicBool::new(false)),
                stats,
            }),
            log: None,
            #[cfg(feature = "tokio")]
            runtime: test_runtime(),
        };
        Rig {
            d: Dispatcher::new(0, shared, mailbox),
            clock: Clock::at(Instant::now(), None),
            config,
            stats: reactor_stats,
            out: Outgoing::default(),
            draining: false,
            _poll: poll,
            _rx: receiver,
        }
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
    fn feed(r: &mut Rig, s: &mut Session, new: &[u8], drained: bool) -> (Flow, String) {
        let mut budget = 64;
        let now = r.clock.now;
        let processed = r.process(s, (new, now), drained, &mut budget);
        (processed.flow, r.written())
    }

    #[test]
    fn pipelined_requests_are_answered_in_one_buffer() {
        let mut r = rig(hello);
        let mut s = Session::default();
        let (flow, out) = feed(&mut r, &mut s, &[GET, GET].concat(), true);
        assert_eq!(flow, Flow::Continue);
        assert_eq!(out.matches("HTTP/1.1 200 OK\r\n").count(), 2, "{out}");
        assert!(!out.contains("Connection: close"), "{out}");
        assert_eq!(s.requests, 2);
        assert!(s.is_idle());
    }

    #[test]
    fn a_head_split_across_reads_is_answered_once_whole() {
        let mut r = rig(hello);
        let mut s = Session::default();
        assert_eq!(
            feed(&mut r, &mut s, &GET[..7], true),
            (Flow::Continue, String::new())
        );
        assert!(!s.input.is_empty());
        let (_, out) = feed(&mut r, &mut s, &GET[7..], true);
        assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
        assert!(s.input.is_empty());
    }

    /// What a handler that records each request's `received` was told, in order.
    type Received = Arc<std::sync::Mutex<Vec<Instant>>>;

    /// A dispatcher whose handler records each request's `received`.
    fn recording() -> (Rig, Received) {
        let seen = Received::default();
        let record = Arc::clone(&seen);
        let handler = move |req: &Request<'_>| -> Reply {
            record.lock().expect("not poisoned").push(req.received());
            Response::new(StatusCode::OK).into()
        };
        (rig(handler), seen)
    }

    #[test]
    fn a_request_is_received_when_its_heads_first_byte_arrived() {
        // Each read arrives at its own time; the handler reports what it was told.
        let (mut r, seen) = recording();
        let base = r.clock.now;
        let at = |ms| base - Duration::from_millis(ms);
        let mut s = Session::default();
        let mut budget = 64;
        let mut feed = |r: &mut Rig, s: &mut Session, new: &[u8], arrived| {
            let _ = r.process(s, (new, arrived), true, &mut budget);
            r.out.buf.clear();
        };
        // A head split over two reads dates from the first; the request that starts in the
        // second read dates from it, though a later stamp came with the bytes before it.
        feed(&mut r, &mut s, &GET[..7], at(30));
        feed(&mut r, &mut s, &[&GET[7..], GET].concat(), at(20));
        // A request whose head began in bytes kept across several reads keeps the first.
        feed(&mut r, &mut s, &GET[..3], at(15));
        feed(&mut r, &mut s, &GET[3..9], at(10));
        feed(&mut r, &mut s, &GET[9..], at(5));
        assert_eq!(
            *seen.lock().expect("not poisoned"),
            [at(30), at(20), at(15)]
        );
    }

    #[test]
    fn requests_left_by_the_budget_keep_their_reads_time() {
        let (mut r, seen) = recording();
        let (early, late) = (r.clock.now - Duration::from_millis(50), r.clock.now);
        let mut s = Session::default();
        // Three pipelined requests, a budget of one: two are kept for later.
        let mut budget = 1;
        let processed = r.process(
            &mut s,
            (&[GET, GET, GET].concat(), early),
            true,
            &mut budget,
        );
        assert_eq!(processed.flow, Flow::Budget);
        // Served in a later turn, with nothing new read, then with a new read behind them.
        let mut budget = 1;
        let _ = r.process(&mut s, (&[], late), true, &mut budget);
        let mut budget = 64;
        let _ = r.process(&mut s, (GET, late), true, &mut budget);
        assert_eq!(
            *seen.lock().expect("not poisoned"),
            [early, early, early, late]
        );
    }

    #[test]
    fn shutting_down_the_last_request_read_says_close() {
        let mut r = rig(hello);
        r.draining = true;
        let mut s = Session::default();
        // More may wait in the socket: not the last yet.
        let (flow, out) = feed(&mut r, &mut s, GET, false);
        assert_eq!(flow, Flow::Continue);
        assert!(!out.contains("Connection: close"), "{out}");
        // Two in one read, the socket drained: only the second says close.
        let (flow, out) = feed(&mut r, &mut s, &[GET, GET].concat(), true);
        assert_eq!(flow, Flow::Stop);
        let (first, second) = out.split_at(out.rfind("HTTP/1.1").expect("two responses"));
        assert!(!first.contains("Connection: close"), "{out}");
        assert!(second.contains("Connection: close"), "{out}");
    }

    #[test]
    fn a_bad_request_is_refused_and_ends_the_connection() {
        let mut r = rig(hello);
        let mut s = Session::default();
        let (flow, out) = feed(&mut r, &mut s, b"GET / HTTP/1.1\r\n\r\n", true);
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
        let mut r = rig(slow);
        let mut s = Session::default();
        let mut budget = 64;
        let now = r.clock.now;
        let processed = r.process(&mut s, (GET, now), true, &mut budget);
        assert_eq!(processed.flow, Flow::Continue);
        assert_eq!(s.owed(), 1);
        let deadline = s.next_deadline().expect("the job's deadline");
        assert!(r.out.buf.is_empty());
        // Not due yet: nothing to send.
        r.expire(&mut s);
        assert!(!r.release(&mut s));
        assert!(r.out.buf.is_empty());
        assert_eq!(s.next_deadline(), Some(deadline));
        // The clock reaches the deadline.
        r.clock.now = deadline;
        r.expire(&mut s);
        assert_eq!(s.next_deadline(), None);
        assert!(!r.release(&mut s));
        let out = r.written();
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
        let mut r = rig_with_output_budget(handler, 100_000);
        let mut s = Session::default();
        let job = b"GET /job HTTP/1.1\r\nHost: x\r\n\r\n";
        let big = b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n";
        let (_, out) = feed(&mut r, &mut s, &[&job[..], big, big].concat(), true);
        assert!(out.is_empty(), "all wait behind the job: {out}");
        // The first large answer is held in line, and counted; the second does not fit beside
        // it and is refused now, not when the job ends.
        assert_eq!(r.d.view.stats.budgets.output.used(), 60_000);
        assert_eq!(r.d.view.stats.merged().output_refusals, 1);
        // Dropping what is owed (the client left) gives the bytes back.
        s.exchange.as_deref_mut().expect("in hand").cancel_owed();
        assert_eq!(r.d.view.stats.budgets.output.used(), 0);
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
        let mut r = rig(job);
        let (mut first, mut second) = (Session::default(), Session::default());
        let _ = feed(&mut r, &mut first, GET, true);
        let _ = feed(&mut r, &mut second, GET, true);
        let seq = |s: &Session| s.exchange.as_ref().expect("in hand").owed[0].seq;
        assert_ne!(seq(&first), seq(&second));
    }

    /// A dispatcher whose callers state their budget in `x-budget`, and whose handler offloads
    /// a job that sleeps, after counting the requests it saw and what deadline each had.
    fn budgeted() -> (Rig, Arc<std::sync::Mutex<Vec<Instant>>>) {
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let record = Arc::clone(&seen);
        let handler = move |req: &Request<'_>| -> Reply {
            record.lock().expect("not poisoned").push(req.deadline());
            Reply::offload(|ctx: &JobContext| {
                ctx.sleep(Duration::from_secs(5));
                Response::new(StatusCode::OK)
            })
        };
        let mut r = rig(handler);
        r.config.deadline_header = Some("x-budget".to_owned());
        r.config.deadline = Duration::from_secs(60);
        (r, seen)
    }

    fn with_budget(value: &str) -> Vec<u8> {
        format!("GET / HTTP/1.1\r\nHost: x\r\nX-Budget: {value}\r\n\r\n").into_bytes()
    }

    #[test]
    fn a_callers_budget_is_the_deadline_when_it_comes_first() {
        let (mut r, seen) = budgeted();
        let now = r.clock.now;
        let mut s = Session::default();
        let _ = feed(&mut r, &mut s, &with_budget("40"), true);
        let _ = feed(&mut r, &mut s, &with_budget("100m"), true);
        let _ = feed(&mut r, &mut s, &with_budget("2H"), true);
        let _ = feed(&mut r, &mut s, GET, true);
        let ms = Duration::from_millis;
        // The handler saw each deadline, and the jobs were given the same ones.
        let expected = [
            now + ms(40),
            now + ms(100),
            now + ms(60_000),
            now + ms(60_000),
        ];
        assert_eq!(*seen.lock().expect("not poisoned"), expected);
        let owed: Vec<_> = s.exchange.as_ref().expect("in hand").owed.iter().collect();
        let deadlines: Vec<_> = owed
            .iter()
            .map(|o| match o.state {
                OwedState::Job { deadline, .. } => deadline,
                _ => panic!("a job: {o:?}"),
            })
            .collect();
        assert_eq!(deadlines, expected);
    }

    #[test]
    fn a_spent_budget_is_refused_without_running_the_handler() {
        let (mut r, seen) = budgeted();
        let mut s = Session::default();
        for budget in ["0", "0m", "999u"] {
            let (flow, out) = feed(&mut r, &mut s, &with_budget(budget), true);
            assert_eq!(flow, Flow::Continue, "the connection goes on");
            assert!(out.starts_with("HTTP/1.1 503 "), "{out}");
            assert!(out.contains("rtserve-shed: caller-budget\r\n"), "{out}");
        }
        assert!(seen.lock().expect("not poisoned").is_empty());
        assert_eq!(r.d.view.stats.merged().shed.get(Shed::CallerBudget), 3);
        // Exactly the least budget allowed is let in.
        let (_, out) = feed(&mut r, &mut s, &with_budget("1"), true);
        assert!(out.is_empty(), "owed: {out}");
        assert_eq!(seen.lock().expect("not poisoned").len(), 1);
    }

    #[test]
    fn a_budget_that_cannot_be_read_is_a_400() {
        let (mut r, seen) = budgeted();
        let mut s = Session::default();
        let (_, out) = feed(&mut r, &mut s, &with_budget("soon"), true);
        assert!(out.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{out}");
        let twice = b"GET / HTTP/1.1\r\nHost: x\r\nX-Budget: 5\r\nx-budget: 5\r\n\r\n";
        let (_, out) = feed(&mut r, &mut s, twice, true);
        assert!(out.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{out}");
        assert!(seen.lock().expect("not poisoned").is_empty());
        // Without a header to read, the header means nothing.
        r.config.deadline_header = None;
        let (_, out) = feed(&mut r, &mut s, &with_budget("soon"), true);
        assert!(out.is_empty(), "owed: {out}");
    }
}
