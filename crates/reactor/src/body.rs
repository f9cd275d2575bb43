//! Request bodies while they arrive, bounded in bytes and in time.
//!
//! Theory of operation. A body that arrives with its head, in the same read, is handed to the
//! handler where it lies and costs nothing here. A body that spans reads is gathered in a
//! [`BodyBuffer`], and every byte of that buffer is taken from one [`BodyBudget`] shared by all
//! reactors: a declared length is reserved whole before the first body byte is read (and before
//! any `100 Continue`), a chunked body reserves as it grows. When the budget has no room, the
//! request is answered 503 and its connection closes; the memory a crowd of slow uploads can
//! pin is the budget, not `max_body × connections`. The reservation goes back when the request
//! ends or its connection closes (the buffer gives it back when dropped).
//!
//! In time, a [`Pace`] bounds each body three ways: a total deadline from the end of its head,
//! a longest pause between pieces, and, as Apache's `mod_reqtimeout` `MinRate` does, a minimum
//! rate: the bytes received in each window (the first one is the grace period) must average at
//! least the configured rate. A client that sends most of a body at once and then a byte now
//! and then fails the rate in the first window after it slowed, however much it sent before.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use memmap2::MmapMut;

use crate::Config;

/// The bytes of request bodies all reactors may hold at once.
#[derive(Debug)]
pub(crate) struct BodyBudget {
    limit: usize,
    used: AtomicUsize,
}

impl BodyBudget {
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            limit,
            used: AtomicUsize::new(0),
        }
    }

    /// Takes `bytes` from the budget; false (taking nothing) if that would go over it.
    fn take(&self, bytes: usize) -> bool {
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

    fn give(&self, bytes: usize) {
        if bytes > 0 {
            self.used.fetch_sub(bytes, Ordering::Relaxed);
        }
    }

    /// Bytes held now.
    pub(crate) fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// Whether any byte is left.
    pub(crate) fn has_room(&self) -> bool {
        self.used() < self.limit
    }
}

/// A body gathered over several reads, and its share of the [`BodyBudget`].
///
/// Up to [`MAP_ABOVE`] bytes it lives in a `Vec`; a larger body gets an anonymous mapping of
/// its own, unmapped as soon as the body is done. glibc's malloc keeps large freed buffers in
/// its arenas, where a burst of large bodies stayed resident long after its connections were
/// gone; a mapping goes back to the system when it is dropped, and its pages take memory only
/// once written, so a body declared large and sent slowly costs what was sent.
#[derive(Debug)]
pub(crate) struct BodyBuffer {
    small: Vec<u8>,
    /// A large body's storage; its first `len` bytes are the body.
    mapped: Option<MmapMut>,
    len: usize,
    /// Bytes taken from the budget: the room made for the body being gathered.
    reserved: usize,
    /// The most a body may hold (`max_body`): chunked bodies grow by doubling up to it.
    max: usize,
    budget: Arc<BodyBudget>,
}

/// A body whose room is larger than this gets a mapping of its own (glibc's own threshold for
/// serving an allocation with `mmap`, before its dynamic adjustment raises it).
const MAP_ABOVE: usize = 128 * 1024;
/// A buffer at most this large is kept for the next request; a larger one is freed.
const KEEP: usize = 4 * 1024;

impl BodyBuffer {
    pub(crate) fn new(budget: Arc<BodyBudget>, max: u64) -> Self {
        Self {
            small: Vec::new(),
            mapped: None,
            len: 0,
            reserved: 0,
            max: usize::try_from(max).unwrap_or(usize::MAX),
            budget,
        }
    }

    /// Makes room for a body of `len` bytes, taken from the budget first; false (and nothing
    /// taken) when the budget has no room, or the system no memory.
    pub(crate) fn reserve(&mut self, len: usize) -> bool {
        if len <= self.reserved {
            return true;
        }
        if !self.budget.take(len - self.reserved) {
            return false;
        }
        if len > MAP_ABOVE {
            let Ok(mut map) = MmapMut::map_anon(len) else {
                self.budget.give(len - self.reserved);
                return false;
            };
            map[..self.len].copy_from_slice(self.as_slice());
            self.mapped = Some(map);
            self.small = Vec::new();
        } else {
            self.small.reserve_exact(len - self.len);
        }
        self.reserved = len;
        true
    }

    /// Appends a piece of body, reserving more first if it does not fit (a chunked body
    /// doubles its reservation, up to `max_body`); false when the budget has no room.
    #[must_use]
    pub(crate) fn extend(&mut self, piece: &[u8]) -> bool {
        let need = self.len + piece.len();
        if need > self.reserved {
            let grow = need.max(self.reserved.saturating_mul(2).min(self.max));
            if !self.reserve(grow) {
                return false;
            }
        }
        match &mut self.mapped {
            Some(map) => map[self.len..need].copy_from_slice(piece),
            None => self.small.extend_from_slice(piece),
        }
        self.len = need;
        true
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        match &self.mapped {
            Some(map) => &map[..self.len],
            None => &self.small,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Drops the body and gives its reservation back; a small buffer is kept for reuse.
    pub(crate) fn clear(&mut self) {
        self.mapped = None;
        self.small.clear();
        if self.small.capacity() > KEEP {
            self.small = Vec::new();
        }
        self.len = 0;
        self.budget.give(self.reserved);
        self.reserved = 0;
    }
}

impl Drop for BodyBuffer {
    fn drop(&mut self) {
        self.budget.give(self.reserved);
    }
}

/// The time bounds of a body, from [`Config`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct BodyRules {
    /// Longest pause between pieces.
    pub(crate) pause: Duration,
    /// Bytes per second each window must average; 0: no minimum.
    pub(crate) min_rate: u64,
    pub(crate) window: Duration,
    /// From the end of the head to the end of the body.
    pub(crate) total: Duration,
}

impl BodyRules {
    pub(crate) fn from(config: &Config) -> Self {
        Self {
            pause: config.body_timeout,
            min_rate: config.body_min_rate,
            window: config.body_rate_window,
            total: config.body_deadline,
        }
    }
}

/// Why a body was cut off: the response says which.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TooSlow {
    Deadline,
    Pause,
    Rate,
}

impl TooSlow {
    /// The 408's body.
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Self::Deadline => "request timeout: the body took longer than allowed\n",
            Self::Pause => "request timeout: the body paused too long\n",
            Self::Rate => "request timeout: the body arrived below the minimum rate\n",
        }
    }
}

/// How a body is arriving, against [`BodyRules`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct Pace {
    started: Instant,
    window_start: Instant,
    window_bytes: u64,
    last_progress: Instant,
}

impl Pace {
    /// A body whose head ended at `now`.
    pub(crate) fn start(now: Instant) -> Self {
        Self {
            started: now,
            window_start: now,
            window_bytes: 0,
            last_progress: now,
        }
    }

    /// `bytes` of body arrived at `now`.
    pub(crate) fn progress(&mut self, bytes: usize, now: Instant) {
        self.window_bytes += bytes as u64;
        self.last_progress = now;
    }

    /// Timing starts (again) at `now`, after the head or after the server held reading back:
    /// a new window and a new pause (the total still counts from the head). Bytes that came at
    /// `now` itself, with the head, stay in the window.
    pub(crate) fn resume(&mut self, now: Instant) {
        if now != self.window_start {
            self.window_start = now;
            self.window_bytes = 0;
        }
        self.last_progress = now;
    }

    /// When to look at the body next.
    pub(crate) fn due(&self, rules: &BodyRules) -> Instant {
        let mut due = (self.started + rules.total).min(self.last_progress + rules.pause);
        if rules.min_rate > 0 {
            due = due.min(self.window_start + rules.window);
        }
        due
    }

    /// Looks at the body at `now`: when to look again, or why it is too slow. A window that
    /// has ended and met the rate starts the next one.
    pub(crate) fn check(&mut self, now: Instant, rules: &BodyRules) -> Result<Instant, TooSlow> {
        if now >= self.started + rules.total {
            return Err(TooSlow::Deadline);
        }
        if now >= self.last_progress + rules.pause {
            return Err(TooSlow::Pause);
        }
        if rules.min_rate > 0 && now >= self.window_start + rules.window {
            let elapsed = now - self.window_start;
            // bytes / elapsed < min_rate, without dividing.
            let needed = u128::from(rules.min_rate) * elapsed.as_micros() / 1_000_000;
            if u128::from(self.window_bytes) < needed {
                return Err(TooSlow::Rate);
            }
            self.window_start = now;
            self.window_bytes = 0;
        }
        Ok(self.due(rules))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn rules() -> BodyRules {
        BodyRules {
            pause: 3000 * MS,
            min_rate: 1000,
            window: 1000 * MS,
            total: 10_000 * MS,
        }
    }

    #[test]
    fn a_body_sent_fast_then_a_byte_at_a_time_fails_the_rate_in_the_next_window() {
        let t0 = Instant::now();
        let rules = rules();
        let mut pace = Pace::start(t0);
        // Most of the body at once, well above the rate.
        pace.progress(1_000_000, t0 + 10 * MS);
        assert_eq!(pace.check(t0 + 1000 * MS, &rules), Ok(t0 + 2000 * MS));
        // Then a byte every 500 ms: no pause is long, but the rate is 2 bytes per second.
        pace.progress(1, t0 + 1500 * MS);
        pace.progress(1, t0 + 1999 * MS);
        assert_eq!(pace.check(t0 + 2000 * MS, &rules), Err(TooSlow::Rate));
    }

    #[test]
    fn a_steady_body_at_the_rate_runs_until_the_total_deadline() {
        let t0 = Instant::now();
        let rules = rules();
        let mut pace = Pace::start(t0);
        let mut now = t0;
        for _ in 0..9 {
            for _ in 0..10 {
                now += 100 * MS;
                pace.progress(100, now);
            }
            assert_eq!(pace.check(now, &rules), Ok(now + rules.window));
        }
        pace.progress(1000, t0 + 9999 * MS);
        assert_eq!(pace.check(t0 + 10_000 * MS, &rules), Err(TooSlow::Deadline));
    }

    #[test]
    fn a_pause_is_caught_without_a_rate() {
        let t0 = Instant::now();
        let rules = BodyRules {
            min_rate: 0,
            ..rules()
        };
        let mut pace = Pace::start(t0);
        assert_eq!(pace.due(&rules), t0 + 3000 * MS);
        pace.progress(10, t0 + 2000 * MS);
        // Looked at early (the timer was set before the progress): not yet.
        assert_eq!(pace.check(t0 + 3000 * MS, &rules), Ok(t0 + 5000 * MS));
        assert_eq!(pace.check(t0 + 5000 * MS, &rules), Err(TooSlow::Pause));
    }

    #[test]
    fn bytes_that_came_with_the_head_count_in_the_first_window() {
        let t0 = Instant::now();
        let rules = rules();
        let mut pace = Pace::start(t0);
        pace.progress(1500, t0);
        // The timer is armed in the same turn.
        pace.resume(t0);
        assert_eq!(pace.check(t0 + 1000 * MS, &rules), Ok(t0 + 2000 * MS));
    }

    #[test]
    fn a_resumed_body_gets_a_fresh_window() {
        let t0 = Instant::now();
        let rules = rules();
        let mut pace = Pace::start(t0);
        pace.resume(t0 + 2500 * MS);
        assert_eq!(pace.due(&rules), t0 + 3500 * MS);
        pace.progress(1000, t0 + 3400 * MS);
        assert_eq!(pace.check(t0 + 3500 * MS, &rules), Ok(t0 + 4500 * MS));
    }

    #[test]
    fn the_budget_is_shared_taken_whole_and_given_back() {
        let budget = Arc::new(BodyBudget::new(1000));
        let mut a = BodyBuffer::new(Arc::clone(&budget), 10_000);
        let mut b = BodyBuffer::new(Arc::clone(&budget), 10_000);
        assert!(a.reserve(600));
        assert_eq!(budget.used(), 600);
        // Over what is left: refused, and nothing taken.
        assert!(!b.reserve(500));
        assert_eq!(budget.used(), 600);
        assert!(a.extend(&[1; 600]));
        assert_eq!(budget.used(), 600, "a declared body fits its reservation");
        a.clear();
        assert_eq!(budget.used(), 0);
        assert!(b.reserve(500));
        drop(b);
        assert_eq!(budget.used(), 0, "dropping gives the reservation back");
    }

    #[test]
    fn a_large_body_moves_to_a_mapping_with_what_it_had() {
        let budget = Arc::new(BodyBudget::new(1 << 20));
        let mut body = BodyBuffer::new(Arc::clone(&budget), 1 << 20);
        let piece: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        assert!(body.extend(&piece));
        assert!(body.mapped.is_none());
        assert!(body.extend(&piece));
        assert!(body.mapped.is_some(), "200,000 bytes are past {MAP_ABOVE}");
        assert_eq!(body.as_slice(), [&piece[..], &piece[..]].concat());
        assert_eq!(budget.used(), 200_000);
        body.clear();
        assert!(body.mapped.is_none() && body.is_empty());
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn a_chunked_body_reserves_as_it_grows_and_stops_at_the_budget() {
        let budget = Arc::new(BodyBudget::new(1000));
        let mut body = BodyBuffer::new(Arc::clone(&budget), 10_000);
        assert!(body.extend(&[1; 100]));
        assert_eq!(budget.used(), 100);
        assert!(body.extend(&[1; 10]));
        assert_eq!(budget.used(), 200, "doubled");
        assert!(body.extend(&[1; 500]));
        assert_eq!(budget.used(), 610);
        assert!(!body.extend(&[1; 500]), "1,110 bytes do not fit in 1,000");
        assert_eq!(body.as_slice().len(), 610);
        assert_eq!(budget.used(), 610, "a refused piece takes nothing");
    }
}
