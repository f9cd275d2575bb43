//! The worker pool: blocking jobs, shared by every reactor, behind a queue that lets in only
//! the jobs that can make their deadline.
//!
//! A reactor hands a job over with [`WorkerPool::submit`], which refuses it at once when the
//! queue is full or when the job is expected to miss its deadline (the reactor answers 503:
//! a refusal costs the client microseconds, a late 503 its whole deadline). Workers take jobs
//! in the order the [`Discipline`](crate::Discipline) says; a job that can no longer make its
//! deadline when a worker reaches it is not started but answered 503 at once. The rest run
//! under `catch_unwind`, and their responses go to the owning reactor's mailbox.
//!
//! The policy lives in [`queue`], the run-time estimates in [`estimate`], and what admission
//! learns from outcomes (the margin, the concurrency limit) in [`admission`], all free of
//! clocks and locks so that they are tested with made-up instants; [`schedstat`] is a
//! worker's reading of its own CPU time and run-queue wait, [`job`] the job and what it sees
//! while it runs, and [`ticket`] the cancellation a job can sleep on. Here are the threads and
//! the one lock: reactors and workers meet on a `Mutex` around the queue and a `Condvar` that
//! wakes an idle worker.

mod admission;
mod estimate;
mod job;
mod queue;
mod schedstat;
#[cfg(test)]
mod simulate;
mod ticket;

use std::{
    io,
    sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError},
    thread,
    time::Instant,
};

pub use job::{Job, JobContext};
pub(crate) use queue::Refused;
pub(crate) use ticket::{Ticket, Tickets};

use self::{
    queue::{Queue, Ran, Taken},
    schedstat::ThreadCpu,
};
use crate::{
    Config,
    affinity::Placement,
    answers,
    mailbox::{Answer, Completion, Mailbox, Message},
    stats::PoolStats,
    token::ConnId,
};

/// A job on its way to a worker.
pub(crate) struct Task {
    pub(crate) job: Job,
    pub(crate) deadline: Instant,
    /// The route it was filed under, whose run times (those of its job's cost class) predict
    /// its own.
    pub(crate) route: usize,
    pub(crate) reply_to: Arc<Mailbox>,
    pub(crate) conn: ConnId,
    pub(crate) seq: u64,
}

impl std::fmt::Debug for Task {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Task")
            .field("conn", &self.conn)
            .field("seq", &self.seq)
            .finish_non_exhaustive()
    }
}

/// What the lock guards.
#[derive(Debug)]
struct State {
    queue: Queue<(Task, Ticket)>,
    /// Ticket slots not in use.
    free: Vec<usize>,
    /// Live [`WorkerPool`] handles; workers exit when none is left and the queue is empty.
    handles: usize,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    /// Rung when a job is queued, and when the last handle goes.
    work: Condvar,
    tickets: Arc<Tickets>,
    stats: Arc<PoolStats>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Every update of the state is made whole before any call that could panic, so a
        // poisoned lock still guards a consistent state.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A handle to the pool; one per reactor.
#[derive(Debug)]
pub(crate) struct WorkerPool {
    shared: Arc<Shared>,
}

impl Clone for WorkerPool {
    fn clone(&self) -> Self {
        self.shared.lock().handles += 1;
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl Drop for WorkerPool {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.handles -= 1;
        if state.handles == 0 {
            self.shared.work.notify_all();
        }
    }
}

impl WorkerPool {
    /// Starts the configured workers behind a queue of the configured size, with `routes`
    /// routes to estimate run times for, placed on CPUs as `placement` says.
    pub(crate) fn start(
        config: &Config,
        routes: usize,
        stats: Arc<PoolStats>,
        placement: Placement,
    ) -> io::Result<(Self, Vec<thread::JoinHandle<()>>)> {
        let (workers, capacity) = (config.workers, config.queue);
        // A ticket for every job that can be queued or running at once.
        let slots = capacity + workers;
        let now = Instant::now();
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                queue: Queue::new(
                    capacity,
                    workers,
                    routes,
                    (config.discipline, config.admission),
                    now,
                ),
                free: (0..slots).rev().collect(),
                handles: 1,
            }),
            work: Condvar::new(),
            tickets: Tickets::new(slots),
            stats,
        });
        let mut threads = Vec::with_capacity(workers);
        for i in 0..workers {
            let shared = Arc::clone(&shared);
            let placement = placement.clone();
            threads.push(
                thread::Builder::new()
                    .name(format!("rtserve-worker-{i}"))
                    .spawn(move || {
                        placement.enter_worker();
                        work(&shared, i);
                    })?,
            );
        }
        Ok((Self { shared }, threads))
    }

    /// A job of `route` in cost class `class` that its worker finished before its deadline
    /// reached its client after it (its reactor was late to take it): a miss the worker could
    /// not see.
    pub(crate) fn delivered_late(&self, route: usize, class: u8) {
        let mut state = self.shared.lock();
        state.queue.delivered_late((route, class));
    }

    /// Queues a task and returns its ticket, or refuses it at once.
    pub(crate) fn submit(&self, now: Instant, task: Task) -> Result<Ticket, Refused> {
        let shared = &self.shared;
        let mut state = shared.lock();
        let Some(slot) = state.free.pop() else {
            return Err(Refused::QueueFull);
        };
        let ticket = shared.tickets.issue(slot);
        let (filed, deadline) = ((task.route, task.job.class), task.deadline);
        match state
            .queue
            .admit(now, filed, deadline, (task, ticket.clone()))
        {
            Ok(()) => {
                drop(state);
                shared.work.notify_one();
                Ok(ticket)
            }
            Err((job, refused)) => {
                state.free.push(slot);
                // The job's closure is dropped after the lock: its captures are the handler's.
                drop(state);
                drop(job);
                Err(refused)
            }
        }
    }
}

/// A worker's loop: until every handle is gone and the queue is empty.
fn work(shared: &Shared, worker: usize) {
    // This thread's scheduler statistics, when the system has them: whether its jobs wait for
    // a CPU, which sets how many may run at once.
    let cpu = ThreadCpu::open();
    // The job this worker took last: (route, what its run says of its cost, ticket slot),
    // reported at the next take.
    let mut done: Option<(usize, Ran, usize)> = None;
    loop {
        let taken = {
            let mut state = shared.lock();
            if let Some((route, ran, slot)) = done.take() {
                state.queue.finished(worker, Instant::now(), ran);
                shared.stats.route_view(route, state.queue.view(route));
                state.free.push(slot);
            }
            loop {
                if let Some(taken) = state.queue.take(Instant::now(), worker) {
                    if let Taken::Refuse {
                        item: (task, ticket),
                        ..
                    } = &taken
                    {
                        state.free.push(ticket.index());
                        shared
                            .stats
                            .route_view(task.route, state.queue.view(task.route));
                    }
                    break taken;
                }
                if state.handles == 0 {
                    return;
                }
                state = shared
                    .work
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
            }
        };
        match taken {
            Taken::Refuse {
                item: (task, _),
                waited,
            } => {
                shared.stats.waited(waited);
                let Task {
                    reply_to,
                    conn,
                    seq,
                    ..
                } = task;
                reply_to.send(Message::Completion(Completion {
                    conn,
                    seq,
                    answer: Answer::NotStarted,
                    finished: None,
                }));
            }
            Taken::Run {
                item: (task, ticket),
                route,
                waited,
            } => {
                shared.stats.waited(waited);
                let slot = ticket.index();
                done = Some((route, run(task, ticket, cpu.as_ref()), slot));
            }
        }
    }
}

/// Runs a job and posts its response, unless its answer is no longer wanted; returns what
/// its run tells of its route.
fn run(task: Task, ticket: Ticket, cpu: Option<&ThreadCpu>) -> Ran {
    let Task {
        job,
        deadline,
        reply_to,
        conn,
        seq,
        ..
    } = task;
    let ctx = JobContext { deadline, ticket };
    let class = job.class;
    // Its client is gone, or the reactor answered at the deadline: do not run it at all.
    if ctx.is_cancelled() {
        return Ran::Not;
    }
    let before = cpu.and_then(ThreadCpu::read);
    let started = Instant::now();
    let work = job.work;
    let response = answers::internal_error_on_panic(|| work(&ctx));
    let finished = Instant::now();
    let ran = finished - started;
    let used = before.and_then(|before| Some(cpu?.read()?.since(before)));
    // Finished too late, or its client left meanwhile: the reactor answers (or answered)
    // without it.
    if ctx.is_cancelled() {
        return Ran::CutShort(ran);
    }
    reply_to.send(Message::Completion(Completion {
        conn,
        seq,
        answer: Answer::Ran(response),
        finished: Some((finished, class)),
    }));
    Ran::Whole(ran, used)
}
