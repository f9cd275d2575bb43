//! The reactor's clock: read once per turn, with the `Date` header text it implies.

use std::time::{Duration, Instant, SystemTime};

use rtserve_protocol::HttpDate;

/// The time of the current turn, and the `Date` text for responses sent in it.
#[derive(Debug)]
pub(crate) struct Clock {
    pub(crate) now: Instant,
    pub(crate) date: HttpDate,
    /// When the `Date` text next changes.
    next_date: Instant,
}

impl Clock {
    /// A clock at the current time.
    pub(crate) fn new() -> Self {
        let now = Instant::now();
        Self {
            now,
            date: HttpDate::new(SystemTime::now()),
            next_date: now,
        }
    }

    /// A clock stopped at `now` (for tests: time moves only when told to).
    #[cfg(test)]
    pub(crate) fn at(now: Instant) -> Self {
        Self {
            now,
            date: HttpDate::new(SystemTime::UNIX_EPOCH),
            next_date: now + Duration::from_secs(3600),
        }
    }

    /// Reads the clock, once per turn; returns whether a new second began (the `Date` text
    /// changed).
    pub(crate) fn tick(&mut self) -> bool {
        self.now = Instant::now();
        if self.now < self.next_date {
            return false;
        }
        let wall = SystemTime::now();
        self.date.update(wall);
        let into_second = wall
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(Duration::ZERO, |d| {
                Duration::from_nanos(u64::from(d.subsec_nanos()))
            });
        self.next_date = self.now + (Duration::from_secs(1) - into_second);
        true
    }
}
