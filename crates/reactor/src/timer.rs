//! Timers: a small table per connection and one min-heap per reactor.
//!
//! Theory of operation: each connection keeps, per [`TimerKind`], the time its timer is due
//! (or none) and the time of the entry it has in the reactor's heap (or none). Setting a timer
//! writes the table and pushes a heap entry only when the connection has none for that kind,
//! or a later one. Since timeouts are "now + a fixed duration", re-arming moves a timer later
//! and pushes nothing: when the old entry pops, the table shows the later time and the entry is
//! pushed again for it. So re-arming on every request costs no heap operation, the heap holds
//! at most a couple of entries per connection and kind (plus entries of closed connections,
//! which drop when they pop), and nothing ever scans all connections.

use std::{cmp::Reverse, collections::BinaryHeap, time::Instant};

use crate::token::ConnId;

/// What a connection can be waiting for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum TimerKind {
    /// The rest of a request head (slowloris protection): 408.
    HeadRead = 0,
    /// More of a request body: 408.
    BodyRead = 1,
    /// A new request on an idle keep-alive connection: close.
    Idle = 2,
    /// The peer to take more of our output: close.
    WriteStall = 3,
    /// The peer's input to end after we half-closed: close.
    Linger = 4,
    /// A pending response's deadline: 503 in its place. Kept in the response's slot, not in
    /// the table: a connection may have many.
    Deadline = 5,
}

/// Kinds kept in the table (all but `Deadline`).
const KINDS: usize = 5;

impl TimerKind {
    /// The kind's place in a [`TimerTable`]; `None` for deadlines, which are not kept there.
    fn index(self) -> Option<usize> {
        (self != Self::Deadline).then_some(self as usize)
    }
}

/// One connection's timers.
#[derive(Clone, Debug, Default)]
pub(crate) struct TimerTable {
    due: [Option<Instant>; KINDS],
    queued: [Option<Instant>; KINDS],
}

/// What to do with an entry popped from the heap.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Popped {
    /// The timer is due: act on it.
    Fire,
    /// The timer moved later: push this time.
    Requeue(Instant),
    /// Stale entry: drop it.
    Ignore,
}

impl TimerTable {
    /// Sets `kind` due at `at`; returns the time to push into the heap, if any.
    #[must_use]
    pub(crate) fn set(&mut self, kind: TimerKind, at: Instant) -> Option<Instant> {
        let k = kind.index()?;
        self.due[k] = Some(at);
        match self.queued[k] {
            Some(queued) if queued <= at => None,
            _ => {
                self.queued[k] = Some(at);
                Some(at)
            }
        }
    }

    /// Cancels `kind`; its heap entry becomes stale.
    pub(crate) fn clear(&mut self, kind: TimerKind) {
        if let Some(k) = kind.index() {
            self.due[k] = None;
        }
    }

    /// Whether `kind` is set.
    pub(crate) fn is_set(&self, kind: TimerKind) -> bool {
        kind.index().is_some_and(|k| self.due[k].is_some())
    }

    /// Decides on a heap entry for `kind` at `at`, popped at `now`.
    pub(crate) fn on_pop(&mut self, kind: TimerKind, at: Instant, now: Instant) -> Popped {
        let Some(k) = kind.index() else {
            return Popped::Ignore;
        };
        if self.queued[k] != Some(at) {
            return Popped::Ignore;
        }
        self.queued[k] = None;
        match self.due[k] {
            None => Popped::Ignore,
            Some(due) if due <= now => {
                self.due[k] = None;
                Popped::Fire
            }
            Some(due) => {
                self.queued[k] = Some(due);
                Popped::Requeue(due)
            }
        }
    }
}

/// A reactor's timers: a min-heap of (due, connection, kind, response sequence number).
#[derive(Debug, Default)]
pub(crate) struct TimerQueue {
    heap: BinaryHeap<Reverse<(Instant, ConnId, TimerKind, u64)>>,
}

impl TimerQueue {
    /// Sets `kind` for connection `id`, whose table is `table`.
    pub(crate) fn set(&mut self, table: &mut TimerTable, id: ConnId, kind: TimerKind, at: Instant) {
        if let Some(at) = table.set(kind, at) {
            self.push(id, kind, at);
        }
    }

    /// Pushes an entry.
    pub(crate) fn push(&mut self, id: ConnId, kind: TimerKind, at: Instant) {
        self.heap.push(Reverse((at, id, kind, 0)));
    }

    /// Pushes the deadline of response `seq` of connection `id`.
    pub(crate) fn push_deadline(&mut self, id: ConnId, seq: u64, at: Instant) {
        self.heap.push(Reverse((at, id, TimerKind::Deadline, seq)));
    }

    /// The earliest entry's time (possibly of a stale entry: waking for it is harmless).
    pub(crate) fn next(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, ..))| *at)
    }

    /// Pops an entry due at or before `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<(Instant, ConnId, TimerKind, u64)> {
        match self.heap.peek() {
            Some(Reverse((at, ..))) if *at <= now => self.heap.pop().map(|Reverse(e)| e),
            _ => None,
        }
    }

    /// Entries in the heap, stale ones included.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const ID: ConnId = ConnId {
        index: 1,
        generation: 1,
    };

    /// Fires everything due at `now` against one table; returns the kinds fired.
    fn fire(queue: &mut TimerQueue, table: &mut TimerTable, now: Instant) -> Vec<TimerKind> {
        let mut fired = Vec::new();
        while let Some((at, id, kind, _)) = queue.pop_due(now) {
            match table.on_pop(kind, at, now) {
                Popped::Fire => fired.push(kind),
                Popped::Requeue(at) => queue.push(id, kind, at),
                Popped::Ignore => {}
            }
        }
        fired
    }

    #[test]
    fn rearming_later_does_not_grow_the_heap() {
        let t0 = Instant::now();
        let mut queue = TimerQueue::default();
        let mut table = TimerTable::default();
        for i in 0..1000 {
            queue.set(
                &mut table,
                ID,
                TimerKind::Idle,
                t0 + Duration::from_millis(100 + i),
            );
        }
        assert_eq!(queue.len(), 1);
        // The first entry pops at +100 ms, finds the timer moved, and is pushed again.
        assert_eq!(
            fire(&mut queue, &mut table, t0 + Duration::from_millis(500)),
            []
        );
        assert_eq!(queue.len(), 1);
        assert_eq!(
            fire(&mut queue, &mut table, t0 + Duration::from_millis(1099)),
            [TimerKind::Idle]
        );
        assert_eq!(queue.len(), 0);
    }

    #[test]
    fn earlier_and_cleared_timers() {
        let t0 = Instant::now();
        let mut queue = TimerQueue::default();
        let mut table = TimerTable::default();
        queue.set(
            &mut table,
            ID,
            TimerKind::HeadRead,
            t0 + Duration::from_secs(10),
        );
        // Moving it earlier needs a new entry; the old one goes stale.
        queue.set(
            &mut table,
            ID,
            TimerKind::HeadRead,
            t0 + Duration::from_secs(1),
        );
        queue.set(
            &mut table,
            ID,
            TimerKind::WriteStall,
            t0 + Duration::from_secs(2),
        );
        table.clear(TimerKind::WriteStall);
        assert!(!table.is_set(TimerKind::WriteStall));
        assert_eq!(
            fire(&mut queue, &mut table, t0 + Duration::from_secs(5)),
            [TimerKind::HeadRead]
        );
        assert_eq!(
            fire(&mut queue, &mut table, t0 + Duration::from_secs(20)),
            []
        );
        assert_eq!(queue.len(), 0);
    }
}
