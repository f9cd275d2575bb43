//! The way into a reactor from other threads: a queue of [`Message`]s and the reactor's one
//! `Waker` (mio allows one per `Poll`), as actix-server's `waker_queue.rs` pairs them.
//!
//! Senders are worker threads (finished jobs) and the server handle (shutdown). Each message
//! is queued first and the waker rung second, so a reactor woken by it always finds it.

use std::{
    io,
    sync::{Arc, mpsc},
    time::{Duration, Instant},
};

use mio::{Registry, Waker};

use crate::{
    Response,
    token::{ConnId, WAKER},
};

/// What other threads tell a reactor.
#[derive(Debug)]
pub(crate) enum Message {
    /// An offloaded job's response.
    Completion(Completion),
    /// Report draining for `grace`, then stop accepting, finish what is in flight, close, and
    /// exit.
    Shutdown { grace: Duration },
}

/// A worker's answer to response `seq` of connection `conn`.
#[derive(Debug)]
pub(crate) struct Completion {
    pub(crate) conn: ConnId,
    pub(crate) seq: u64,
    pub(crate) answer: Answer,
    /// When a worker finished the job, and the job's cost class, for a pool job that ran: the
    /// reactor tells the pool when a job done in time was delivered too late, which the worker
    /// cannot see.
    pub(crate) finished: Option<(Instant, u8)>,
}

/// What became of an offloaded job.
#[derive(Debug)]
pub(crate) enum Answer {
    /// It ran, and this is its response.
    Ran(Response),
    /// A worker reached it too late to make its deadline, and did not start it.
    NotStarted,
    /// An async handler's future was dropped before it finished, by something other than the
    /// reactor (its runtime shut down, or its own `Drop` panicked): a 500 at once, not a wait
    /// for the deadline.
    #[cfg(feature = "tokio")]
    Cancelled,
}

/// The sending side of one reactor's mailbox, shared through an `Arc`.
#[derive(Debug)]
pub(crate) struct Mailbox {
    sender: mpsc::Sender<Message>,
    waker: Waker,
}

impl Mailbox {
    /// A mailbox whose waker is registered with `registry` under the reserved waker token,
    /// and the receiving side, for the reactor.
    pub(crate) fn new(registry: &Registry) -> io::Result<(Arc<Self>, mpsc::Receiver<Message>)> {
        let waker = Waker::new(registry, WAKER)?;
        let (sender, receiver) = mpsc::channel();
        Ok((Arc::new(Self { sender, waker }), receiver))
    }

    /// Queues a message and wakes the reactor.
    pub(crate) fn send(&self, message: Message) {
        // A reactor that has exited has dropped its receiver; there is nobody to tell.
        if self.sender.send(message).is_ok() {
            let _ = self.waker.wake();
        }
    }
}
