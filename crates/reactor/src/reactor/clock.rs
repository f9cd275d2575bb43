//! The reactor's clock: read once per turn, with the `Date` header text it implies, and the
//! mapping of the kernel's receive stamps onto it.
//!
//! Theory of operation. A request's deadline counts from when its bytes reached the kernel,
//! not from when the reactor got to them: a request that waited in the socket of a stalled
//! reactor has already spent that time. Linux stamps every received segment on the realtime
//! clock (`SO_TIMESTAMPNS`), and the reactor's reads hand that stamp back (`conn/io.rs`). Deadlines
//! are on the monotonic clock (`Instant`), so each turn that stamps reads the realtime clock
//! once more, right after the monotonic one, and a stamp maps to `now - (wall - stamp)`.
//!
//! The realtime clock can be stepped (by an administrator, or NTP correcting a large offset),
//! which a pair read per turn follows at once; only a stamp taken before a step and mapped
//! after it is off by the step. So a stamp is not believed when it cannot be true: one after
//! the turn's realtime reading arrived during this turn (or the clock went back) and counts
//! from the turn, as every request did before stamping; one older than [`MAX_QUEUE_AGE`]
//! is taken for a step forward and falls back to the turn's time too.

use std::time::{Duration, Instant, SystemTime};

use rtserve_protocol::HttpDate;

/// The oldest a receive stamp is believed to be: past it, the clock more likely stepped than
/// the bytes waited (a reactor stalled this long has failed every deadline anyway, so falling
/// back to the turn's time costs nothing that matters).
pub(crate) const MAX_QUEUE_AGE: Duration = Duration::from_secs(60);

/// The time of the current turn, and the `Date` text for responses sent in it.
#[derive(Debug)]
pub(crate) struct Clock {
    pub(crate) now: Instant,
    pub(crate) date: HttpDate,
    /// The realtime clock read with `now`, when receive stamps are mapped (see the module
    /// docs).
    wall: Option<SystemTime>,
    /// Whether each tick reads the realtime clock for `wall`.
    stamps: bool,
    /// When the `Date` text next changes.
    next_date: Instant,
}

impl Clock {
    /// A clock at the current time; `stamps`: each tick also reads the realtime clock, to map
    /// receive stamps with.
    pub(crate) fn new(stamps: bool) -> Self {
        let now = Instant::now();
        let wall = SystemTime::now();
        Self {
            now,
            date: HttpDate::new(wall),
            wall: stamps.then_some(wall),
            stamps,
            next_date: now,
        }
    }

    /// A clock stopped at `now`, whose realtime reading is `wall` (for tests: time moves only
    /// when told to).
    #[cfg(test)]
    pub(crate) fn at(now: Instant, wall: Option<SystemTime>) -> Self {
        Self {
            now,
            date: HttpDate::new(SystemTime::UNIX_EPOCH),
            wall,
            stamps: wall.is_some(),
            next_date: now + Duration::from_secs(3600),
        }
    }

    /// Reads the clock, once per turn (and the realtime clock with it, when stamps are
    /// mapped: one more vDSO read, no system call); returns whether a new second began (the
    /// `Date` text changed).
    pub(crate) fn tick(&mut self) -> bool {
        self.now = Instant::now();
        if self.stamps {
            self.wall = Some(SystemTime::now());
        }
        if self.now < self.next_date {
            return false;
        }
        let wall = self.wall.unwrap_or_else(SystemTime::now);
        self.date.update(wall);
        let into_second = wall
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(Duration::ZERO, |d| {
                Duration::from_nanos(u64::from(d.subsec_nanos()))
            });
        self.next_date = self.now + (Duration::from_secs(1) - into_second);
        true
    }

    /// How long since `at`, by a fresh read of the monotonic clock (one vDSO read, no system
    /// call), for what must count the work done since the turn began: an inline answer's
    /// latency includes its handler's run and the requests before it in the turn.
    pub(crate) fn since(&self, at: Instant) -> Duration {
        at.elapsed()
    }

    /// When bytes the kernel stamped `stamp` (realtime) arrived, on this turn's clock, and
    /// how long they waited for the reactor; `None` when the stamp cannot be believed (see
    /// the module docs) or stamps are not mapped.
    pub(crate) fn arrival(&self, stamp: SystemTime) -> Option<(Instant, Duration)> {
        let wall = self.wall?;
        match wall.duration_since(stamp) {
            Ok(queued) if queued <= MAX_QUEUE_AGE => {
                let at = self.now.checked_sub(queued)?;
                Some((at, queued))
            }
            // Older than believable: a step forward of the realtime clock.
            Ok(_) => None,
            // Arrived after the tick, while this turn ran (or the clock stepped back): the
            // turn's time, as without a stamp.
            Err(_) => Some((self.now, Duration::ZERO)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A clock whose turn began at `now`, with the realtime clock reading `wall`.
    fn clock() -> (Clock, Instant, SystemTime) {
        let now = Instant::now();
        let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        (Clock::at(now, Some(wall)), now, wall)
    }

    #[test]
    fn a_stamp_maps_to_the_turn_minus_its_age() {
        let (clock, now, wall) = clock();
        let waited = Duration::from_millis(80);
        assert_eq!(clock.arrival(wall - waited), Some((now - waited, waited)));
        // Stamped at the tick itself: no wait.
        assert_eq!(clock.arrival(wall), Some((now, Duration::ZERO)));
        // Nanoseconds survive the mapping.
        let fine = Duration::new(1, 123_456_789);
        assert_eq!(clock.arrival(wall - fine), Some((now - fine, fine)));
    }

    #[test]
    fn a_stamp_after_the_tick_counts_from_the_turn() {
        // Bytes that came while the turn ran, or a realtime clock stepped back: never later
        // than the turn (a deadline must not be moved on by a clock step).
        let (clock, now, wall) = clock();
        for ahead in [Duration::from_nanos(1), Duration::from_secs(3600)] {
            assert_eq!(clock.arrival(wall + ahead), Some((now, Duration::ZERO)));
        }
    }

    #[test]
    fn an_implausibly_old_stamp_is_not_believed() {
        // A step forward of the realtime clock would make every queued byte look this old.
        let (clock, _, wall) = clock();
        assert!(clock.arrival(wall - MAX_QUEUE_AGE).is_some());
        assert_eq!(
            clock.arrival(wall - MAX_QUEUE_AGE - Duration::from_nanos(1)),
            None
        );
        assert_eq!(clock.arrival(wall - Duration::from_secs(86_400)), None);
    }

    #[test]
    fn without_a_realtime_reading_nothing_is_mapped() {
        let clock = Clock::at(Instant::now(), None);
        assert_eq!(clock.arrival(SystemTime::now()), None);
    }

    #[test]
    fn ticks_read_the_realtime_clock_only_when_stamps_are_mapped() {
        let mut off = Clock::new(false);
        off.tick();
        assert_eq!(off.wall, None);
        let mut on = Clock::new(true);
        let before = SystemTime::now();
        on.tick();
        let wall = on.wall.expect("read with the tick");
        assert!(wall >= before);
        // A stamp from before the tick maps to before the turn.
        let (at, queued) = on.arrival(before).expect("believable");
        assert!(at <= on.now);
        assert_eq!(on.now - at, queued);
    }
}
