//! The HTTP side of a connection ([`Session`]: kept input, the request count, and, while a
//! request is in hand, an [`Exchange`]), apart from its socket (`reactor/conn`), so that it can
//! be worked on, and tested, with bytes in and bytes out.

use std::{collections::VecDeque, sync::Arc, time::Instant};

use rtserve_protocol::{InputBuffer, Limits, RecvError, ResponseContext, ServerConn};

use crate::{
    Response,
    body::{BodyBuffer, Pace},
    budget::{Budgets, ByteBudget, Charge},
    pool::Ticket,
};

/// The HTTP side of a connection: no socket, so that it can be worked on (and tested) apart.
///
/// Memory per idle connection is kept small. Input is parsed where it was read; only bytes
/// that must outlive the read are kept in `input`. Everything else a request needs is in an
/// [`Exchange`] taken from the reactor's pool when bytes arrive and given back once the
/// connection is idle again.
#[derive(Debug, Default)]
pub(crate) struct Session {
    pub(crate) input: InputBuffer,
    /// Requests answered.
    pub(crate) requests: u32,
    /// Present while the connection has work in hand.
    pub(crate) exchange: Option<Box<Exchange>>,
    /// When the first unconsumed byte of `input` reached the kernel (see
    /// `Dispatcher::process`).
    pub(crate) arrived: Option<Instant>,
}

/// What a connection holds while it reads, answers or writes a request; pooled per reactor.
#[derive(Debug)]
pub(crate) struct Exchange {
    pub(crate) proto: ServerConn,
    /// The current request's body, when it arrived in more than one read.
    pub(crate) body: BodyBuffer,
    /// How the current request's body is arriving.
    pub(crate) pace: Pace,
    pub(crate) output: Output,
    /// Responses owed while one of them waits for the worker pool, in request order.
    pub(crate) owed: VecDeque<Owed>,
    /// When the current request's head began to arrive: the kernel's receive stamp of the
    /// read that brought its first byte (or that read's turn, without stamps). Its deadline
    /// counts from here.
    pub(crate) received: Instant,
}

/// Output the socket has not taken yet, and its share of the server's output budget.
#[derive(Debug)]
pub(crate) struct Output {
    /// Unsent from `written` on.
    pub(crate) buf: Vec<u8>,
    pub(crate) written: usize,
    /// Bytes written in all, to tell a stalled client from a slow one.
    pub(crate) sent: u64,
    /// Bytes counted in the output budget: after each write, those still waiting.
    charged: usize,
    budget: Arc<ByteBudget>,
}

/// The bytes a turn produced for the connection being served, before they are written, and
/// what the large responses among them took from the output budget: the connection's
/// [`Output`] takes both when it writes (`Output::settle`).
#[derive(Debug, Default)]
pub(crate) struct Outgoing {
    pub(crate) buf: Vec<u8>,
    pub(crate) charged: usize,
}

impl Outgoing {
    /// Drops the bytes unsent (their connection is gone), and gives what they took back to
    /// `budget`.
    pub(crate) fn discard(&mut self, budget: &ByteBudget) {
        self.buf.clear();
        if self.charged > 0 {
            budget.give(std::mem::take(&mut self.charged));
        }
    }
}

/// A response owed to the client, in request order.
#[derive(Debug)]
pub(crate) struct Owed {
    pub(crate) seq: u64,
    pub(crate) ctx: ResponseContext,
    /// For statistics: the route, and when the request's head was received.
    pub(crate) route: usize,
    pub(crate) received: Instant,
    pub(crate) state: OwedState,
}

#[derive(Debug)]
pub(crate) enum OwedState {
    /// On the worker pool, or a future on the application's runtime; cancelling it tells the
    /// job, or drops the future, since its answer is no longer wanted.
    Job { pending: Pending, deadline: Instant },
    /// Ready, but behind one that is not; a large body's bytes already taken from the output
    /// budget, so that answers waiting in line are bounded as those waiting for the socket are.
    Ready(Response, Charge),
    /// The answer to a request that could not be parsed; the connection closes after it.
    Refusal(RecvError),
    /// A `100 Continue` for a request whose body is awaited.
    Continue,
}

/// Work whose answer is owed: a job on the worker pool, or a future on the application's
/// runtime.
#[derive(Debug)]
pub(crate) enum Pending {
    Pool(Ticket),
    #[cfg(feature = "tokio")]
    Task(tokio::task::AbortHandle),
}

impl Pending {
    /// The answer is not wanted: the job is told (it may stop early), the future is dropped
    /// at its next yield.
    pub(crate) fn cancel(&self) {
        match self {
            Self::Pool(ticket) => ticket.cancel(),
            #[cfg(feature = "tokio")]
            Self::Task(task) => task.abort(),
        }
    }
}

impl Output {
    pub(crate) fn new(budget: Arc<ByteBudget>) -> Self {
        Self {
            buf: Vec::new(),
            written: 0,
            sent: 0,
            charged: 0,
            budget,
        }
    }

    /// Bytes waiting for the socket.
    pub(crate) fn pending(&self) -> usize {
        self.buf.len() - self.written
    }

    /// After a write: the output budget counts what waits now. `precharged`: what the
    /// dispatcher took for the large responses of this turn before they were written.
    pub(crate) fn settle(&mut self, precharged: usize) {
        self.charged += precharged;
        let pending = self.pending();
        if self.charged > pending {
            self.budget.give(self.charged - pending);
        } else {
            // Small answers are never refused: what they leave waiting is counted as it is.
            self.budget.add(pending - self.charged);
        }
        self.charged = pending;
    }

    /// Drops what waits (the connection is done with it) and gives its bytes back.
    pub(crate) fn clear(&mut self) {
        self.buf.clear();
        if self.buf.capacity() > KEEP_IN_POOL {
            self.buf = Vec::new();
        }
        self.written = 0;
        self.settle(0);
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        self.budget.give(self.charged);
    }
}

impl Exchange {
    pub(crate) fn new(limits: Limits, budgets: &Budgets) -> Self {
        let now = Instant::now();
        Self {
            proto: ServerConn::new(limits),
            body: BodyBuffer::new(Arc::clone(&budgets.bodies), limits.max_body),
            pace: Pace::start(now),
            output: Output::new(Arc::clone(&budgets.output)),
            owed: VecDeque::new(),
            received: now,
        }
    }

    /// Queues an owed response behind the others, under `seq`: a number unique on its
    /// reactor (`Dispatcher::seq`), so that a late answer can never be taken for another's,
    /// even one owed by an exchange that was pooled and handed to another request since.
    pub(crate) fn owe(
        &mut self,
        seq: u64,
        ctx: ResponseContext,
        route: usize,
        received: Instant,
        state: OwedState,
    ) {
        self.owed.push_back(Owed {
            seq,
            ctx,
            route,
            received,
            state,
        });
    }

    /// Tells every job still waiting for this connection that its answer is not wanted, and
    /// drops what was owed.
    pub(crate) fn cancel_owed(&mut self) {
        for owed in self.owed.drain(..) {
            if let OwedState::Job { pending, .. } = owed.state {
                pending.cancel();
            }
        }
    }

    /// The routes of the requests still owed an answer, one per request (a `100 Continue`
    /// waiting in line is not an answer).
    pub(crate) fn unanswered(&self) -> impl Iterator<Item = usize> + '_ {
        self.owed
            .iter()
            .filter(|o| !matches!(o.state, OwedState::Continue))
            .map(|o| o.route)
    }

    /// Nothing in hand: it can serve another connection.
    pub(crate) fn is_idle(&self) -> bool {
        self.output.pending() == 0
            && self.owed.is_empty()
            && self.body.is_empty()
            && self.proto.is_between_requests()
    }
}

impl Drop for Exchange {
    /// However the exchange goes (its connection closed, or its reactor stopped at the
    /// shutdown timeout), the work still owed is told, and futures are aborted: dropping an
    /// abort handle alone would leave them running.
    fn drop(&mut self) {
        self.cancel_owed();
    }
}

/// A reactor's spare [`Exchange`]s. It keeps what was given back for reuse, and trims itself:
/// once a second it frees half of those that were not needed during that second.
#[derive(Debug)]
pub(crate) struct ExchangePool {
    limits: Limits,
    budgets: Budgets,
    // Boxed on purpose: an `Exchange` moves between the pool and its connections as a pointer.
    #[allow(clippy::vec_box)]
    free: Vec<Box<Exchange>>,
    /// The fewest spares held since the last trim.
    low: usize,
}

/// Most spare exchanges a reactor keeps.
const MAX_SPARE: usize = 4096;
/// An output buffer of a pooled exchange larger than this is freed rather than kept.
const KEEP_IN_POOL: usize = 4 * 1024;

impl ExchangePool {
    pub(crate) fn new(limits: Limits, budgets: Budgets) -> Self {
        Self {
            limits,
            budgets,
            free: Vec::new(),
            low: 0,
        }
    }

    pub(crate) fn take(&mut self) -> Box<Exchange> {
        let exchange = self
            .free
            .pop()
            .unwrap_or_else(|| Box::new(Exchange::new(self.limits, &self.budgets)));
        self.low = self.low.min(self.free.len());
        exchange
    }

    /// Takes back an exchange. One that is not between requests (given up in the middle of a
    /// request, or its connection closed after one) has its protocol state made new, keeping
    /// its memory, so a one-shot connection allocates nothing; one between requests needs
    /// nothing (its last head stays, and the next one overwrites it).
    pub(crate) fn give(&mut self, mut exchange: Box<Exchange>) {
        exchange.cancel_owed();
        if self.free.len() >= MAX_SPARE {
            // Dropped: its body and output give their bytes back as they go.
            return;
        }
        if !exchange.proto.is_between_requests() {
            exchange.proto.reset();
        }
        exchange.body.clear();
        exchange.output.clear();
        self.free.push(exchange);
    }

    /// Frees half of the spares unused since the last call.
    pub(crate) fn trim(&mut self) {
        let unused = self.low / 2;
        self.free.truncate(self.free.len() - unused);
        self.low = self.free.len();
    }
}

impl Session {
    /// Output bytes waiting for the socket.
    pub(crate) fn pending_output(&self) -> usize {
        self.exchange.as_ref().map_or(0, |e| e.output.pending())
    }

    /// Responses owed.
    pub(crate) fn owed(&self) -> usize {
        self.exchange.as_ref().map_or(0, |e| e.owed.len())
    }

    /// Between requests with nothing buffered or owed.
    pub(crate) fn is_idle(&self) -> bool {
        self.input.is_empty() && self.pending_output() == 0 && self.owed() == 0
    }

    /// The earliest deadline among the jobs owed.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        let exchange = self.exchange.as_deref()?;
        exchange
            .owed
            .iter()
            .filter_map(|owed| match owed.state {
                OwedState::Job { deadline, .. } => Some(deadline),
                _ => None,
            })
            .min()
    }
}
