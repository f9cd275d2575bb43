//! Accepting: until `WouldBlock`, up to the connection limit, with a back-off when the
//! process runs out of file descriptors (as actix-server pauses rather than spins).

use std::{
    io,
    time::{Duration, Instant},
};

use mio::Interest;

use super::Reactor;
use crate::{connection::Connection, timer::TimerKind, token::ConnId};

/// How long accepting pauses after the process ran out of file descriptors.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Whether the reactor takes new connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Accepting {
    Open,
    /// At the connection limit: resume when one closes.
    AtLimit,
    /// Out of file descriptors: resume at this time.
    Backoff(Instant),
    /// Shutting down: the listener is gone.
    Closed,
}

impl Accepting {
    /// When a back-off ends, if one is running.
    pub(super) fn resumes_at(self) -> Option<Instant> {
        match self {
            Self::Backoff(until) => Some(until),
            _ => None,
        }
    }
}

impl Reactor {
    /// Accepts until `WouldBlock`, the connection limit, or running out of descriptors.
    pub(super) fn accept(&mut self) {
        if self.accepting != Accepting::Open {
            return;
        }
        self.accept_queued();
    }

    /// Resumes accepting after a back-off, or after a connection closed at the limit.
    pub(super) fn resume_accepting(&mut self) {
        let resume = match self.accepting {
            Accepting::Backoff(until) => self.dispatch.clock.now >= until,
            Accepting::AtLimit => self.conns.len() < self.config.max_connections,
            Accepting::Open | Accepting::Closed => false,
        };
        if resume {
            self.accepting = Accepting::Open;
            self.accept();
        }
    }

    /// Takes what waits in the accept queue (also past the limit once shutting down: closing
    /// the listener would reset it).
    pub(super) fn accept_queued(&mut self) {
        let Some(listener) = &self.listener else {
            return;
        };
        let now = self.dispatch.clock.now;
        let stopping = self.stage.is_stopping();
        loop {
            if self.conns.len() >= self.config.max_connections && !stopping {
                self.accepting = Accepting::AtLimit;
                return;
            }
            let mut stream = match listener.accept() {
                Ok((stream, _)) => stream,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if is_transient_accept_error(&e) => continue,
                Err(_) => {
                    // EMFILE, ENFILE, ENOBUFS, ENOMEM: the connection stays in the backlog;
                    // retrying at once would spin, so pause.
                    self.accepting = Accepting::Backoff(now + ACCEPT_BACKOFF);
                    self.stats.accept_backoff();
                    return;
                }
            };
            // Requests are answered in one write each; Nagle would hold the next one back.
            let _ = stream.set_nodelay(true);
            let entry = self.conns.vacant_entry();
            let id = ConnId {
                index: entry.key() as u32,
                generation: self.next_generation,
            };
            self.next_generation = self.next_generation.wrapping_add(1) & 0x7fff_ffff;
            let interest = Interest::READABLE | Interest::WRITABLE;
            if self
                .poll
                .registry()
                .register(&mut stream, id.token(), interest)
                .is_err()
            {
                continue;
            }
            self.stats.connection_opened();
            let conn = entry.insert(Connection::new(stream, id));
            conn.session.close_after = self.stage.is_draining();
            if stopping {
                // Taken from the queue at shutdown: a short wait for its request (see
                // `begin_shutdown`).
                let at = now + self.config.shutdown_idle_wait;
                self.timers.set(&mut conn.timers, id, TimerKind::Idle, at);
            } else {
                let at = now + self.config.header_timeout;
                self.timers
                    .set(&mut conn.timers, id, TimerKind::HeadRead, at);
            }
            // Bytes may already be waiting; the registration's first event will report them.
        }
    }
}

/// Accept errors about one connection (it went away first), not about the process.
fn is_transient_accept_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
    )
}
