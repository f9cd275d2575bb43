//! Accepting: until `WouldBlock`, up to the connection limit, with a back-off when the
//! process runs out of file descriptors (as actix-server pauses rather than spins).
//!
//! A new connection is read before it is registered with the poll: its first request usually
//! arrives with the handshake, so it goes on the still-ready list and is read in the same turn.
//! A one-shot request (`Connection: close`) is then answered and closed without ever costing
//! an `epoll_ctl`; a connection that stays open is registered after that first read.

use std::{
    io,
    time::{Duration, Instant},
};

use super::{Reactor, conn::Connection};
use crate::token::ConnId;

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

    /// Resumes accepting after a back-off, or after connections closed at the limit (once per
    /// turn, after its work).
    pub(super) fn resume_accepting(&mut self) {
        let resume = match self.accepting {
            Accepting::Backoff(until) => self.clock.now >= until,
            Accepting::AtLimit => self.conns.len() < self.config.max_connections,
            Accepting::Open => false,
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
        let now = self.clock.now;
        let stopping = self.stage.is_stopping();
        loop {
            if self.conns.len() >= self.config.max_connections && !stopping {
                self.accepting = Accepting::AtLimit;
                return;
            }
            let stream = match listener.accept() {
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
            // TCP_NODELAY (and SO_SNDBUF) come from the listener (`listener::tune`).
            let entry = self.conns.vacant_entry();
            let id = ConnId {
                index: entry.key() as u32,
                generation: self.next_generation,
            };
            self.next_generation = self.next_generation.wrapping_add(1) & 0x7fff_ffff;
            self.stats.connection_opened();
            // Read in this turn, before it is registered (see the module docs).
            entry
                .insert(Connection::new(stream, id))
                .queue(&mut self.still_ready);
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
