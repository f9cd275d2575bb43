//! Timers: a small table per connection and one min-heap per reactor.
//!
//! Theory of operation: each connection keeps, per slot (one for the client-side timers, which
//! exclude each other, one for the write stall, one for the deadline), the kind of timer in
//! it, the key it was armed for (which request's head, how many bytes sent: see
//! `reactor/conn/timing.rs`, the one place that decides them), the time it is due (or none)
//! and the time of the entry the slot has in the reactor's heap (or none). Setting a timer
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
    /// A request on a connection with none in hand, once shutdown has begun: close.
    ShutdownWait = 6,
    /// The peer to take more of our output: close.
    WriteStall = 3,
    /// The peer's input to end after we half-closed: close.
    Linger = 4,
    /// The earliest deadline among a connection's responses waiting for the worker pool: 503
    /// in place of each one due.
    Deadline = 5,
}

impl TimerKind {
    /// The kind's slot in a [`TimerTable`]: the client-side timers exclude each other (a
    /// connection waits for a head, a body, a new request or the peer's close, never two at
    /// once), so they share one.
    fn slot(self) -> Option<usize> {
        match self {
            Self::HeadRead | Self::BodyRead | Self::Idle | Self::ShutdownWait | Self::Linger => {
                Some(0)
            }
            Self::WriteStall => Some(1),
            Self::Deadline => Some(2),
        }
    }
}

/// One timer slot: the kind it holds now and the key it was armed for, when that is due, and
/// the time of the slot's entry in the heap.
#[derive(Clone, Copy, Debug)]
struct Slot {
    kind: TimerKind,
    key: u64,
    due: Option<Instant>,
    queued: Option<Instant>,
}

/// One connection's timers.
#[derive(Clone, Debug)]
pub(crate) struct TimerTable {
    slots: [Slot; 3],
}

impl Default for TimerTable {
    fn default() -> Self {
        let empty = |kind| Slot {
            kind,
            key: 0,
            due: None,
            queued: None,
        };
        Self {
            slots: [
                empty(TimerKind::HeadRead),
                empty(TimerKind::WriteStall),
                empty(TimerKind::Deadline),
            ],
        }
    }
}

/// What to do with an entry popped from the heap.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Popped {
    /// This timer is due: act on it.
    Fire(TimerKind),
    /// The slot's timer is due later: push it again.
    Requeue(Instant, TimerKind),
    /// Stale entry: drop it.
    Ignore,
}

impl TimerTable {
    /// Sets `kind`, armed for `key`, due at `at` (replacing the other kind of its slot, if
    /// any); returns the time to push into the heap, if any.
    #[must_use]
    pub(crate) fn set(&mut self, kind: TimerKind, key: u64, at: Instant) -> Option<Instant> {
        let slot = &mut self.slots[kind.slot()?];
        slot.kind = kind;
        slot.key = key;
        slot.due = Some(at);
        match slot.queued {
            Some(queued) if queued <= at => None,
            _ => {
                slot.queued = Some(at);
                Some(at)
            }
        }
    }

    /// Cancels the timer in `kind`'s slot, whichever kind it holds now; its heap entry
    /// becomes stale.
    pub(crate) fn clear(&mut self, kind: TimerKind) {
        if let Some(i) = kind.slot() {
            self.slots[i].due = None;
        }
    }

    /// When `kind` is due, if it is set.
    pub(crate) fn due(&self, kind: TimerKind) -> Option<Instant> {
        let slot = self.slots[kind.slot()?];
        if slot.kind == kind { slot.due } else { None }
    }

    /// Whether `kind` is set, armed for `key`.
    pub(crate) fn holds(&self, kind: TimerKind, key: u64) -> bool {
        kind.slot().is_some_and(|i| {
            let slot = self.slots[i];
            slot.kind == kind && slot.key == key && slot.due.is_some()
        })
    }

    /// Decides on a heap entry for `kind` at `at`, popped at `now`.
    pub(crate) fn on_pop(&mut self, kind: TimerKind, at: Instant, now: Instant) -> Popped {
        let Some(i) = kind.slot() else {
            return Popped::Ignore;
        };
        let slot = &mut self.slots[i];
        if slot.queued != Some(at) {
            return Popped::Ignore;
        }
        slot.queued = None;
        match slot.due {
            None => Popped::Ignore,
            Some(due) if due <= now => {
                slot.due = None;
                Popped::Fire(slot.kind)
            }
            Some(due) => {
                slot.queued = Some(due);
                Popped::Requeue(due, slot.kind)
            }
        }
    }
}

/// A reactor's timers: a min-heap of (due, connection, kind).
#[derive(Debug, Default)]
pub(crate) struct TimerQueue {
    heap: BinaryHeap<Reverse<(Instant, ConnId, TimerKind)>>,
}

impl TimerQueue {
    /// Sets `kind`, armed for `key`, for connection `id`, whose table is `table`.
    pub(crate) fn set(
        &mut self,
        table: &mut TimerTable,
        id: ConnId,
        (kind, key): (TimerKind, u64),
        at: Instant,
    ) {
        if let Some(at) = table.set(kind, key, at) {
            self.push(id, kind, at);
        }
    }

    /// Pushes an entry.
    pub(crate) fn push(&mut self, id: ConnId, kind: TimerKind, at: Instant) {
        self.heap.push(Reverse((at, id, kind)));
    }

    /// The earliest entry's time (possibly of a stale entry: waking for it is harmless).
    pub(crate) fn next(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, ..))| *at)
    }

    /// Pops an entry due at or before `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<(Instant, ConnId, TimerKind)> {
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
        while let Some((at, id, kind)) = queue.pop_due(now) {
            match table.on_pop(kind, at, now) {
                Popped::Fire(kind) => fired.push(kind),
                Popped::Requeue(at, kind) => queue.push(id, kind, at),
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
                (TimerKind::Idle, 0),
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
    fn a_slot_changes_kind() {
        let t0 = Instant::now();
        let mut queue = TimerQueue::default();
        let mut table = TimerTable::default();
        queue.set(
            &mut table,
            ID,
            (TimerKind::HeadRead, 0),
            t0 + Duration::from_secs(1),
        );
        // The head arrived; the body is timed now, in the same slot, from the same entry.
        table.clear(TimerKind::HeadRead);
        queue.set(
            &mut table,
            ID,
            (TimerKind::BodyRead, 0),
            t0 + Duration::from_secs(3),
        );
        assert_eq!(table.due(TimerKind::HeadRead), None);
        assert!(table.holds(TimerKind::BodyRead, 0));
        assert_eq!(queue.len(), 1);
        assert_eq!(
            fire(&mut queue, &mut table, t0 + Duration::from_secs(2)),
            []
        );
        assert_eq!(
            fire(&mut queue, &mut table, t0 + Duration::from_secs(3)),
            [TimerKind::BodyRead]
        );
    }

    #[test]
    fn a_timer_is_held_for_the_key_it_was_armed_for() {
        let t0 = Instant::now();
        let mut queue = TimerQueue::default();
        let mut table = TimerTable::default();
        let head = TimerKind::HeadRead;
        queue.set(&mut table, ID, (head, 3), t0 + Duration::from_secs(5));
        assert!(table.holds(head, 3));
        assert!(!table.holds(head, 4), "another request's head");
        assert!(!table.holds(TimerKind::Idle, 3), "another kind");
        assert_eq!(table.due(head), Some(t0 + Duration::from_secs(5)));
        assert_eq!(table.due(TimerKind::BodyRead), None);
        assert_eq!(
            fire(&mut queue, &mut table, t0 + Duration::from_secs(5)),
            [head]
        );
        assert!(!table.holds(head, 3), "fired: no longer set");
    }

    #[test]
    fn earlier_and_cleared_timers() {
        let t0 = Instant::now();
        let mut queue = TimerQueue::default();
        let mut table = TimerTable::default();
        queue.set(
            &mut table,
            ID,
            (TimerKind::HeadRead, 0),
            t0 + Duration::from_secs(10),
        );
        // Moving it earlier needs a new entry; the old one goes stale.
        queue.set(
            &mut table,
            ID,
            (TimerKind::HeadRead, 0),
            t0 + Duration::from_secs(1),
        );
        queue.set(
            &mut table,
            ID,
            (TimerKind::WriteStall, 0),
            t0 + Duration::from_secs(2),
        );
        table.clear(TimerKind::WriteStall);
        assert_eq!(table.due(TimerKind::WriteStall), None);
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
