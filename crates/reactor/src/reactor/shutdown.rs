//! Graceful shutdown: the drain grace, then stopping, and when the reactor may exit.
//!
//! Theory of operation. `Shutdown` from the mailbox starts the drain grace: the reactor goes on
//! serving (a health check says "draining"), but every response says its connection closes,
//! so that keep-alive clients move elsewhere first. When the grace ends, the reactor takes what
//! waits in its accept queue (closing the listener would reset it) and closes the listener.
//! Every request already read is answered, the last one on each connection with `Connection:
//! close`. A connection with no request in hand (new, or idle keep-alive) gets
//! `shutdown_idle_wait` for one to arrive, answered the same way; then it is closed without
//! reading anything more, so a request is never read and then dropped: it is answered, or
//! its connection closed before any of its bytes were read. The reactor exits when its last
//! connection is gone or `shutdown_timeout` has passed.

use std::{
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

use super::{Reactor, accept::Accepting};

/// Where a reactor is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Stage {
    Serving,
    /// Serving, with `Connection: close` on every response, until the grace ends.
    Draining {
        until: Instant,
    },
    /// Not accepting; finishing what is in hand, until the deadline at the latest.
    Stopping {
        deadline: Instant,
    },
}

impl Stage {
    /// A shutdown has begun (the drain grace included).
    pub(super) fn is_draining(self) -> bool {
        self != Self::Serving
    }

    /// The listener is closed, or about to be.
    pub(super) fn is_stopping(self) -> bool {
        matches!(self, Self::Stopping { .. })
    }

    /// When the stage next moves on by itself.
    pub(super) fn next_change(self) -> Option<Instant> {
        match self {
            Self::Serving => None,
            Self::Draining { until } => Some(until),
            Self::Stopping { deadline } => Some(deadline),
        }
    }
}

impl Reactor {
    /// Starts the drain grace (see the module docs).
    pub(super) fn begin_drain(&mut self, grace: Duration) {
        if self.stage.is_draining() {
            return;
        }
        self.stage = Stage::Draining {
            until: self.clock.now + grace,
        };
    }

    /// Moves shutdown along; returns whether the reactor is done.
    pub(super) fn advance_shutdown(&mut self) -> bool {
        let now = self.clock.now;
        if let Stage::Draining { until } = self.stage
            && now >= until
        {
            self.begin_shutdown();
        }
        match self.stage {
            Stage::Serving | Stage::Draining { .. } => false,
            Stage::Stopping { deadline } => self.conns.is_empty() || now >= deadline,
        }
    }

    /// Stops accepting and gives connections with nothing in hand a short wait for a request
    /// (see the module docs).
    fn begin_shutdown(&mut self) {
        let now = self.clock.now;
        self.stage = Stage::Stopping {
            deadline: now + self.config.shutdown_timeout,
        };
        // The server handle has set it already; this covers a reactor told some other way.
        self.dispatch.view().draining.store(true, Ordering::Relaxed);
        self.accept_queued();
        self.accepting = Accepting::Open;
        if let Some(mut listener) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut listener);
        }
        // Every connection's timers follow from the stage: those with nothing in hand now
        // wait only briefly.
        let (conns, mut cx) = self.split();
        for (_, conn) in conns.iter_mut() {
            conn.retime(&mut cx);
        }
    }
}
