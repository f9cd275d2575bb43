//! A byte budget shared by every reactor: the request bodies the server buffers draw on one,
//! the responses waiting for slow clients on another.
//!
//! One atomic counter each, touched only by the bytes that must outlive a single read or a
//! single write: a request whose body comes with its head, or a response the socket takes at
//! once, never reaches it.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

/// The server's two budgets.
#[derive(Clone, Debug)]
pub(crate) struct Budgets {
    /// Request bodies gathered over several reads (`Config::body_budget`).
    pub(crate) bodies: Arc<ByteBudget>,
    /// Responses waiting for their clients to take them (`Config::output_budget`).
    pub(crate) output: Arc<ByteBudget>,
}

impl Budgets {
    /// Budgets that never refuse (for the handler test harness).
    pub(crate) fn unbounded() -> Self {
        Self {
            bodies: Arc::new(ByteBudget::new(usize::MAX)),
            output: Arc::new(ByteBudget::new(usize::MAX)),
        }
    }
}

/// Bytes that all reactors together may hold for one purpose.
#[derive(Debug)]
pub(crate) struct ByteBudget {
    limit: usize,
    used: AtomicUsize,
}

impl ByteBudget {
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            limit,
            used: AtomicUsize::new(0),
        }
    }

    /// Takes `bytes`; false (taking nothing) if that would go over the limit.
    #[must_use]
    pub(crate) fn take(&self, bytes: usize) -> bool {
        let mut used = self.used.load(Ordering::Relaxed);
        loop {
            let Some(after) = used.checked_add(bytes).filter(|&u| u <= self.limit) else {
                return false;
            };
            match self
                .used
                .compare_exchange_weak(used, after, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(now) => used = now,
            }
        }
    }

    /// Counts `bytes` that are held whatever the limit (small answers, which must not be
    /// refused, or the refusals would starve themselves).
    pub(crate) fn add(&self, bytes: usize) {
        if bytes > 0 {
            self.used.fetch_add(bytes, Ordering::Relaxed);
        }
    }

    /// Gives back `bytes` taken or added before.
    pub(crate) fn give(&self, bytes: usize) {
        if bytes > 0 {
            self.used.fetch_sub(bytes, Ordering::Relaxed);
        }
    }

    /// Bytes held now.
    pub(crate) fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// Whether `bytes` more would fit now (nothing is taken).
    pub(crate) fn has_room_for(&self, bytes: usize) -> bool {
        self.used().saturating_add(bytes) <= self.limit
    }

    /// Whether half of the budget or more is held: then the holders that would keep their
    /// share longest are asked to give it up first (see `body::Pace::check`).
    pub(crate) fn is_crowded(&self) -> bool {
        self.used() >= self.limit / 2
    }
}

/// Bytes taken from a budget for something held (a response waiting in line): given back
/// when dropped, unless handed on to the holder that accounts for them next.
#[derive(Debug)]
pub(crate) struct Charge {
    bytes: usize,
    budget: Option<Arc<ByteBudget>>,
}

impl Charge {
    /// Nothing taken.
    pub(crate) const fn none() -> Self {
        Self {
            bytes: 0,
            budget: None,
        }
    }

    /// Takes `bytes` from `budget`; `None` (taking nothing) if they do not fit.
    pub(crate) fn take(budget: &Arc<ByteBudget>, bytes: usize) -> Option<Self> {
        budget.take(bytes).then(|| Self {
            bytes,
            budget: Some(Arc::clone(budget)),
        })
    }

    /// The bytes, no longer given back when this is dropped: the caller accounts for them.
    #[must_use]
    pub(crate) fn hand_on(mut self) -> usize {
        std::mem::take(&mut self.bytes)
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        if let Some(budget) = &self.budget {
            budget.give(self.bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_within_the_limit_adds_past_it_and_gives_back() {
        let budget = ByteBudget::new(1000);
        assert!(budget.take(600));
        assert!(!budget.take(500), "over what is left");
        assert_eq!(budget.used(), 600, "a refusal takes nothing");
        assert!(budget.is_crowded());
        assert!(budget.has_room_for(400) && !budget.has_room_for(401));
        budget.add(500);
        assert_eq!(budget.used(), 1100, "added whatever the limit");
        budget.give(1100);
        assert_eq!(budget.used(), 0);
        assert!(!budget.is_crowded());
    }

    #[test]
    fn a_charge_gives_back_when_dropped_unless_handed_on() {
        let budget = Arc::new(ByteBudget::new(1000));
        let dropped = Charge::take(&budget, 600).expect("fits");
        assert!(Charge::take(&budget, 500).is_none());
        drop(dropped);
        assert_eq!(budget.used(), 0);
        let handed = Charge::take(&budget, 700).expect("fits");
        assert_eq!(handed.hand_on(), 700);
        assert_eq!(budget.used(), 700, "the holder gives them back now");
    }
}
