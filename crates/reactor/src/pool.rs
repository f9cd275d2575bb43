//! The worker pool: blocking jobs, shared by every reactor, behind a bounded queue.
//!
//! A reactor hands a job over with [`WorkerPool::try_submit`], which fails at once when the
//! queue is full (the reactor answers 503: shedding load beats queueing it when the client's
//! deadline is the point). A worker skips a job whose answer is no longer wanted, runs the rest
//! under `catch_unwind`, and posts the response to the owning reactor's mailbox.

use std::{
    io,
    panic::{AssertUnwindSafe, catch_unwind},
    sync::{
        Arc, Mutex,
        atomic::Ordering,
        mpsc::{self, Receiver, SyncSender, TrySendError},
    },
    thread,
    time::Instant,
};

use crate::{
    JobContext, Response, StatusCode,
    handler::Job,
    mailbox::{Completion, Mailbox, Message},
    token::ConnId,
};

/// A job on its way to a worker.
pub(crate) struct Task {
    pub(crate) job: Job,
    pub(crate) ctx: JobContext,
    pub(crate) reply_to: Arc<Mailbox>,
    pub(crate) conn: ConnId,
    pub(crate) seq: u64,
}

/// The pool's sending side, one clone per reactor.
#[derive(Clone, Debug)]
pub(crate) struct WorkerPool {
    queue: SyncSender<Task>,
}

impl WorkerPool {
    /// Starts `workers` threads behind a queue of `capacity` jobs.
    pub(crate) fn start(
        workers: usize,
        capacity: usize,
    ) -> io::Result<(Self, Vec<thread::JoinHandle<()>>)> {
        let (queue, receiver) = mpsc::sync_channel::<Task>(capacity);
        // Workers take turns waiting on the queue; the lock is held only between workers,
        // never by a reactor.
        let receiver = Arc::new(Mutex::new(receiver));
        let mut threads = Vec::with_capacity(workers);
        for i in 0..workers {
            let receiver = Arc::clone(&receiver);
            threads.push(
                thread::Builder::new()
                    .name(format!("rtserve-worker-{i}"))
                    .spawn(move || work(&receiver))?,
            );
        }
        Ok((Self { queue }, threads))
    }

    /// Queues a task, or gives it back when the queue is full.
    pub(crate) fn try_submit(&self, task: Task) -> Result<(), Task> {
        self.queue.try_send(task).map_err(|e| match e {
            TrySendError::Full(task) | TrySendError::Disconnected(task) => task,
        })
    }
}

impl std::fmt::Debug for Task {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Task")
            .field("conn", &self.conn)
            .field("seq", &self.seq)
            .finish_non_exhaustive()
    }
}

/// A worker's loop: until every reactor has dropped its sender.
fn work(receiver: &Mutex<Receiver<Task>>) {
    loop {
        let task = {
            // A worker that panicked while holding the lock cannot have left the receiver in
            // a bad state (it only waits in `recv`), so a poisoned lock is still usable.
            let guard = receiver
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            match guard.recv() {
                Ok(task) => task,
                Err(_) => return,
            }
        };
        let Task {
            job,
            ctx,
            reply_to,
            conn,
            seq,
        } = task;
        // Not started by its deadline, or its client is gone: the reactor has answered or
        // dropped it already, so do not run it at all.
        if ctx.cancelled.load(Ordering::Relaxed) || Instant::now() >= ctx.deadline {
            continue;
        }
        let work = job.work;
        let response = catch_unwind(AssertUnwindSafe(|| work(&ctx))).unwrap_or_else(|_| {
            Response::text(StatusCode::INTERNAL_SERVER_ERROR, "internal server error\n")
        });
        // Finished too late, or its client left meanwhile: the reactor answers (or answered)
        // without it.
        if ctx.cancelled.load(Ordering::Relaxed) || Instant::now() >= ctx.deadline {
            continue;
        }
        reply_to.send(Message::Completion(Completion {
            conn,
            seq,
            response,
        }));
    }
}
