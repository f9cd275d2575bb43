//! Cancellation a job can wait on: one slot per job that can be queued or running at once,
//! reused from job to job, so offloading allocates no flag of its own.
//!
//! The reactor holds a [`Ticket`] for each job it is owed, and cancels it when the client
//! leaves or the deadline passes; the job holds the same ticket in its [`JobContext`] and
//! sleeps on it, so a cancellation wakes it at once. A slot's generation changes each time it
//! is issued, so a ticket of a job that ended cannot touch the next job in its slot.
//!
//! [`JobContext`]: crate::JobContext

use std::{
    sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError},
    time::Instant,
};

/// Every slot of one pool.
#[derive(Debug)]
pub(crate) struct Tickets {
    slots: Box<[Slot]>,
}

#[derive(Debug, Default)]
struct Slot {
    state: Mutex<SlotState>,
    wake: Condvar,
}

#[derive(Debug, Default)]
struct SlotState {
    generation: u64,
    cancelled: bool,
}

impl Slot {
    fn lock(&self) -> MutexGuard<'_, SlotState> {
        // The state is two plain fields, valid whatever a panicking holder was doing.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Tickets {
    /// `count` slots.
    pub(crate) fn new(count: usize) -> Arc<Self> {
        Arc::new(Self {
            slots: (0..count).map(|_| Slot::default()).collect(),
        })
    }

    /// A new ticket in slot `index`, which must be free.
    pub(crate) fn issue(self: &Arc<Self>, index: usize) -> Ticket {
        let mut state = self.slots[index].lock();
        state.generation += 1;
        state.cancelled = false;
        Ticket {
            tickets: Arc::clone(self),
            index,
            generation: state.generation,
        }
    }
}

/// One job's cancellation.
#[derive(Clone)]
pub(crate) struct Ticket {
    tickets: Arc<Tickets>,
    index: usize,
    generation: u64,
}

impl std::fmt::Debug for Ticket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ticket")
            .field("index", &self.index)
            .field("generation", &self.generation)
            .finish()
    }
}

impl Ticket {
    fn slot(&self) -> &Slot {
        &self.tickets.slots[self.index]
    }

    /// The slot this ticket was issued in.
    pub(crate) fn index(&self) -> usize {
        self.index
    }

    /// The job's answer is no longer wanted: tell it, and wake it if it waits.
    pub(crate) fn cancel(&self) {
        let slot = self.slot();
        let mut state = slot.lock();
        if state.generation == self.generation {
            state.cancelled = true;
            slot.wake.notify_all();
        }
    }

    /// Whether the job was cancelled (a ticket whose slot has moved on is: its job is over).
    pub(crate) fn is_cancelled(&self) -> bool {
        let state = self.slot().lock();
        state.cancelled || state.generation != self.generation
    }

    /// Waits until `until` or a cancellation, whichever comes first; returns whether it was
    /// cancelled.
    pub(crate) fn wait_until(&self, until: Instant) -> bool {
        let slot = self.slot();
        let mut state = slot.lock();
        loop {
            if state.cancelled || state.generation != self.generation {
                return true;
            }
            let now = Instant::now();
            if now >= until {
                return false;
            }
            state = slot
                .wake
                .wait_timeout(state, until - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{thread, time::Duration};

    use super::*;

    #[test]
    fn a_cancellation_wakes_the_waiter_at_once() {
        let tickets = Tickets::new(1);
        let ticket = tickets.issue(0);
        let theirs = ticket.clone();
        let waiter = thread::spawn(move || {
            let started = Instant::now();
            let cancelled = theirs.wait_until(started + Duration::from_secs(60));
            (cancelled, started.elapsed())
        });
        thread::sleep(Duration::from_millis(20));
        ticket.cancel();
        let (cancelled, waited) = waiter.join().unwrap();
        assert!(cancelled);
        // Woken, not timed out: far below the minute it would otherwise wait.
        assert!(waited < Duration::from_secs(30), "{waited:?}");
    }

    #[test]
    fn a_wait_ends_at_its_time_when_nobody_cancels() {
        let tickets = Tickets::new(1);
        let ticket = tickets.issue(0);
        let until = Instant::now() + Duration::from_millis(5);
        assert!(!ticket.wait_until(until));
        assert!(Instant::now() >= until);
        assert!(!ticket.is_cancelled());
    }

    #[test]
    fn an_old_ticket_cannot_cancel_the_next_job_in_its_slot() {
        let tickets = Tickets::new(1);
        let old = tickets.issue(0);
        let new = tickets.issue(0);
        old.cancel();
        assert!(!new.is_cancelled());
        assert!(old.is_cancelled(), "its job is over");
        new.cancel();
        assert!(new.is_cancelled());
    }
}
