//! Request bodies while they arrive, bounded in bytes and in time.
//!
//! Theory of operation. A body that arrives with its head, in the same read, is handed to the
//! handler where it lies and costs nothing here. A body that spans reads is gathered in a
//! [`BodyBuffer`], and every byte of that buffer is taken from one [`ByteBudget`] shared by all
//! reactors, as the bytes arrive (in steps of [`STEP`]): a client that declares a large body
//! and sends nothing holds nothing. A piece that does not fit is answered 503 and its
//! connection closes; the memory a crowd of uploads can pin is the budget, not
//! `max_body × connections`. The bytes go back when the request ends or its connection closes
//! (the buffer gives them back when dropped).
//!
//! In time, a [`Pace`] bounds each body three ways: a total deadline from the end of its head,
//! a longest pause between pieces, and, as Apache's `mod_reqtimeout` `MinRate` does, a minimum
//! rate: the bytes received in each window (the first one is the grace period) must average at
//! least the configured rate. A client that sends most of a body at once and then a byte now
//! and then fails the rate in the first window after it slowed, however much it sent before.
//!
//! A crowd of clients that each send just above the minimum rate still fills any budget in
//! time. So once half of the budget is held, a body that, at the rate it has averaged so far,
//! would hold its share for more than one window longer is refused (503) when its window ends:
//! the bodies that tie memory up longest per byte go first, and an upload at an ordinary
//! speed, which ends within a window, finds room.

use std::{
    ops::Range,
    sync::Arc,
    time::{Duration, Instant},
};

use memmap2::MmapMut;

use crate::{Config, budget::ByteBudget};

/// A body gathered over several reads, and its share of the body budget.
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
    /// Bytes taken from the budget: those received, rounded up to [`STEP`] (at most the
    /// declared length).
    charged: usize,
    /// The declared length of the body being gathered; `None` for a chunked one.
    declared: Option<usize>,
    /// The most a body may hold (`max_body`): chunked bodies grow by doubling up to it.
    max: usize,
    budget: Arc<ByteBudget>,
}

/// Where a request's body lies as it is parsed: a body that arrives in one piece is handed to
/// the handler where it lies in the input; pieces are gathered (copied) only when there is
/// more than one. The server's dispatcher and the test harness both read bodies this way.
#[derive(Debug, Default)]
pub(crate) struct Pieces {
    /// The one piece so far, in the input.
    single: Option<Range<usize>>,
}

impl Pieces {
    /// Takes the piece at `range` of `data`. `gathered`: pieces were gathered already (in an
    /// earlier read); `gather` copies a piece to where they are gathered, false when there is
    /// no room. Returns false when a piece found no room.
    pub(crate) fn add(
        &mut self,
        data: &[u8],
        range: Range<usize>,
        gathered: bool,
        mut gather: impl FnMut(&[u8]) -> bool,
    ) -> bool {
        if !gathered && self.single.is_none() {
            self.single = Some(range);
            return true;
        }
        self.keep(data, &mut gather) && gather(&data[range])
    }

    /// The whole body, once its end was parsed: the one piece in `data`, or `gathered`.
    pub(crate) fn body<'a>(&mut self, data: &'a [u8], gathered: &'a [u8]) -> &'a [u8] {
        match self.single.take() {
            Some(range) => &data[range],
            None => gathered,
        }
    }

    /// The body goes on past `data` (the input is about to go): its one piece, if any, is
    /// gathered. Returns false when it found no room.
    pub(crate) fn keep(&mut self, data: &[u8], gather: impl FnOnce(&[u8]) -> bool) -> bool {
        self.single.take().is_none_or(|range| gather(&data[range]))
    }
}

/// A body whose room is larger than this gets a mapping of its own (glibc's own threshold for
/// serving an allocation with `mmap`, before its dynamic adjustment raises it).
const MAP_ABOVE: usize = 128 * 1024;
/// A buffer at most this large is kept for the next request; a larger one is freed.
const KEEP: usize = 4 * 1024;
/// Bytes are taken from the budget this many at a time: one atomic operation per 16 KiB
/// received, and at most this much counted that did not arrive.
pub(crate) const STEP: usize = 16 * 1024;

impl BodyBuffer {
    pub(crate) fn new(budget: Arc<ByteBudget>, max: u64) -> Self {
        Self {
            small: Vec::new(),
            mapped: None,
            len: 0,
            charged: 0,
            declared: None,
            max: usize::try_from(max).unwrap_or(usize::MAX),
            budget,
        }
    }

    /// A new body begins: `declared` is its length, `None` if chunked. Nothing is taken from
    /// the budget until bytes arrive.
    pub(crate) fn begin(&mut self, declared: Option<usize>) {
        self.declared = declared;
    }

    /// Appends a piece of body, taking what it needs from the budget first; false (and
    /// nothing kept) when the budget has no room, or the system no memory.
    #[must_use]
    pub(crate) fn extend(&mut self, piece: &[u8]) -> bool {
        let need = self.len + piece.len();
        if need > self.charged {
            let charge = need
                .next_multiple_of(STEP)
                .min(self.declared.unwrap_or(self.max).max(need));
            if !self.budget.take(charge - self.charged) {
                return false;
            }
            self.charged = charge;
        }
        if !self.make_room(need) {
            return false;
        }
        match &mut self.mapped {
            Some(map) => map[self.len..need].copy_from_slice(piece),
            None => self.small.extend_from_slice(piece),
        }
        self.len = need;
        true
    }

    /// Storage for `need` bytes: the `Vec` while small, else a mapping of the declared length
    /// (a chunked body's doubles, up to `max_body`), its pages taken only as they are written.
    fn make_room(&mut self, need: usize) -> bool {
        let have = match &self.mapped {
            Some(map) => map.len(),
            None if need <= MAP_ABOVE && self.declared.is_none_or(|d| d <= MAP_ABOVE) => {
                return true;
            }
            None => 0,
        };
        if need <= have {
            return true;
        }
        let size = match self.declared {
            Some(declared) => declared.max(need),
            None => need.max(have.saturating_mul(2)).min(self.max).max(need),
        };
        let Ok(mut map) = MmapMut::map_anon(size) else {
            return false;
        };
        map[..self.len].copy_from_slice(self.as_slice());
        self.mapped = Some(map);
        self.small = Vec::new();
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

    /// What this body holds, and what it has yet to receive, for [`Pace::check`].
    pub(crate) fn held(&self) -> Held {
        Held {
            received: self.len,
            remaining: self.declared.unwrap_or(self.max).saturating_sub(self.len),
        }
    }

    /// Drops the body and gives its bytes back; a small buffer is kept for reuse.
    pub(crate) fn clear(&mut self) {
        self.mapped = None;
        self.small.clear();
        if self.small.capacity() > KEEP {
            self.small = Vec::new();
        }
        self.len = 0;
        self.declared = None;
        self.budget.give(self.charged);
        self.charged = 0;
    }
}

impl Drop for BodyBuffer {
    fn drop(&mut self) {
        self.budget.give(self.charged);
    }
}

/// A body's bytes in hand and to come, as [`Pace::check`] weighs them when the budget is
/// crowded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Held {
    pub(crate) received: usize,
    /// Up to the declared length, or to `max_body` for a chunked body.
    pub(crate) remaining: usize,
}

impl Held {
    /// Whether, at the rate it averaged over `elapsed`, the body needs more than `window`
    /// more to end: `remaining / (received / elapsed) > window`, without dividing.
    fn outlasts(self, elapsed: Duration, window: Duration) -> bool {
        self.remaining as u128 * elapsed.as_micros() > self.received as u128 * window.as_micros()
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
    /// The budget is crowded and this body would hold its share longest (a 503, not a 408:
    /// the client did nothing wrong by the rules, the server is short of room).
    Crowded,
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

    /// When to look at the body next: at the end of its window at the latest, where the rate
    /// and the budget's crowding are weighed.
    pub(crate) fn due(&self, rules: &BodyRules) -> Instant {
        (self.started + rules.total)
            .min(self.last_progress + rules.pause)
            .min(self.window_start + rules.window)
    }

    /// Looks at the body at `now`: it goes on (to be looked at again at [`due`](Self::due)),
    /// or why it is cut off. `crowded`: what the body holds, given only while the body budget
    /// is crowded. A window that has ended, met the rate and (when crowded) does not outlast
    /// the next window starts the next one.
    pub(crate) fn check(
        &mut self,
        now: Instant,
        rules: &BodyRules,
        crowded: Option<Held>,
    ) -> Result<(), TooSlow> {
        if now >= self.started + rules.total {
            return Err(TooSlow::Deadline);
        }
        if now >= self.last_progress + rules.pause {
            return Err(TooSlow::Pause);
        }
        if now >= self.window_start + rules.window {
            let elapsed = now - self.window_start;
            // bytes / elapsed < min_rate, without dividing.
            let needed = u128::from(rules.min_rate) * elapsed.as_micros() / 1_000_000;
            if u128::from(self.window_bytes) < needed {
                return Err(TooSlow::Rate);
            }
            if crowded.is_some_and(|held| held.outlasts(now - self.started, rules.window)) {
                return Err(TooSlow::Crowded);
            }
            self.window_start = now;
            self.window_bytes = 0;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn one_piece_is_read_where_it_lies_and_more_are_gathered() {
        let data = b"HEAD|hello|world";
        let mut gathered = Vec::new();
        let mut pieces = Pieces::default();
        let gather = |into: &mut Vec<u8>, piece: &[u8]| {
            into.extend_from_slice(piece);
            true
        };
        assert!(pieces.add(data, 5..10, false, |p| gather(&mut gathered, p)));
        assert!(gathered.is_empty(), "one piece is not copied");
        assert_eq!(pieces.body(data, &gathered), b"hello");
        // Two pieces: both gathered, in order.
        assert!(pieces.add(data, 5..10, false, |p| gather(&mut gathered, p)));
        assert!(pieces.add(data, 11..16, false, |p| gather(&mut gathered, p)));
        assert_eq!(pieces.body(data, &gathered), b"helloworld");
        // A body that goes on past this read keeps its one piece; the next read's piece
        // follows it.
        gathered.clear();
        assert!(pieces.add(data, 5..10, false, |p| gather(&mut gathered, p)));
        assert!(pieces.keep(data, |p| gather(&mut gathered, p)));
        assert!(pieces.add(b"world", 0..5, true, |p| gather(&mut gathered, p)));
        assert_eq!(pieces.body(b"world", &gathered), b"helloworld");
        // No room: said so.
        assert!(pieces.add(data, 5..10, false, |_| false));
        assert!(!pieces.add(data, 11..16, false, |_| false));
    }

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
        assert_eq!(
            pace.check(t0 + 1000 * MS, &rules, None)
                .map(|()| pace.due(&rules)),
            Ok(t0 + 2000 * MS)
        );
        // Then a byte every 500 ms: no pause is long, but the rate is 2 bytes per second.
        pace.progress(1, t0 + 1500 * MS);
        pace.progress(1, t0 + 1999 * MS);
        assert_eq!(pace.check(t0 + 2000 * MS, &rules, None), Err(TooSlow::Rate));
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
            assert_eq!(
                pace.check(now, &rules, None).map(|()| pace.due(&rules)),
                Ok(now + rules.window)
            );
        }
        pace.progress(1000, t0 + 9999 * MS);
        assert_eq!(
            pace.check(t0 + 10_000 * MS, &rules, None),
            Err(TooSlow::Deadline)
        );
    }

    #[test]
    fn a_pause_is_caught_without_a_rate() {
        let t0 = Instant::now();
        let rules = BodyRules {
            min_rate: 0,
            window: 10_000 * MS,
            ..rules()
        };
        let mut pace = Pace::start(t0);
        assert_eq!(pace.due(&rules), t0 + 3000 * MS);
        pace.progress(10, t0 + 2000 * MS);
        // Looked at early (the timer was set before the progress): not yet.
        assert_eq!(
            pace.check(t0 + 3000 * MS, &rules, None)
                .map(|()| pace.due(&rules)),
            Ok(t0 + 5000 * MS)
        );
        assert_eq!(
            pace.check(t0 + 5000 * MS, &rules, None),
            Err(TooSlow::Pause)
        );
    }

    #[test]
    fn bytes_that_came_with_the_head_count_in_the_first_window() {
        let t0 = Instant::now();
        let rules = rules();
        let mut pace = Pace::start(t0);
        pace.progress(1500, t0);
        // The timer is armed in the same turn.
        pace.resume(t0);
        assert_eq!(
            pace.check(t0 + 1000 * MS, &rules, None)
                .map(|()| pace.due(&rules)),
            Ok(t0 + 2000 * MS)
        );
    }

    #[test]
    fn a_resumed_body_gets_a_fresh_window() {
        let t0 = Instant::now();
        let rules = rules();
        let mut pace = Pace::start(t0);
        pace.resume(t0 + 2500 * MS);
        assert_eq!(pace.due(&rules), t0 + 3500 * MS);
        pace.progress(1000, t0 + 3400 * MS);
        assert_eq!(
            pace.check(t0 + 3500 * MS, &rules, None)
                .map(|()| pace.due(&rules)),
            Ok(t0 + 4500 * MS)
        );
    }

    #[test]
    fn when_crowded_a_body_that_would_outlast_the_next_window_is_cut() {
        let t0 = Instant::now();
        let rules = rules();
        // Just above the minimum rate, with most of a large body to come.
        let slow = Held {
            received: 1200,
            remaining: 1_000_000,
        };
        let mut pace = Pace::start(t0);
        pace.progress(1200, t0 + 900 * MS);
        assert_eq!(
            pace.check(t0 + 1000 * MS, &rules, None)
                .map(|()| pace.due(&rules)),
            Ok(t0 + 2000 * MS)
        );
        pace.progress(1200, t0 + 1900 * MS);
        assert_eq!(
            pace.check(t0 + 2000 * MS, &rules, Some(slow)),
            Err(TooSlow::Crowded)
        );
        // Crowded too, but at its rate the rest comes within the next window.
        let fast = Held {
            received: 600_000,
            remaining: 400_000,
        };
        let mut pace = Pace::start(t0);
        pace.progress(600_000, t0 + 900 * MS);
        assert_eq!(
            pace.check(t0 + 1000 * MS, &rules, Some(fast))
                .map(|()| pace.due(&rules)),
            Ok(t0 + 2000 * MS)
        );
        // A body that sent nothing at all in its window fails the rate first.
        let mut pace = Pace::start(t0);
        let idle = Held {
            received: 0,
            remaining: 1000,
        };
        assert_eq!(
            pace.check(t0 + 1000 * MS, &rules, Some(idle)),
            Err(TooSlow::Rate)
        );
    }

    #[test]
    fn bytes_are_taken_from_the_budget_as_they_arrive_and_given_back() {
        let budget = Arc::new(ByteBudget::new(4 * STEP));
        let mut a = BodyBuffer::new(Arc::clone(&budget), 1 << 20);
        let mut b = BodyBuffer::new(Arc::clone(&budget), 1 << 20);
        // Declared a mebibyte: nothing is taken before a byte arrives.
        a.begin(Some(1 << 20));
        assert_eq!(budget.used(), 0);
        assert!(a.extend(&[1; 100]));
        assert_eq!(budget.used(), STEP, "one step for the first bytes");
        assert!(a.extend(&vec![1; 2 * STEP]));
        assert_eq!(budget.used(), 3 * STEP);
        b.begin(Some(2 * STEP));
        assert!(!b.extend(&vec![2; 2 * STEP]), "over what is left");
        assert_eq!(budget.used(), 3 * STEP, "a refused piece takes nothing");
        a.clear();
        assert_eq!(budget.used(), 0);
        assert!(b.extend(&vec![2; 2 * STEP]));
        drop(b);
        assert_eq!(budget.used(), 0, "dropping gives the bytes back");
    }

    #[test]
    fn a_small_declared_body_is_charged_no_more_than_its_length() {
        let budget = Arc::new(ByteBudget::new(1 << 20));
        let mut body = BodyBuffer::new(Arc::clone(&budget), 1 << 20);
        body.begin(Some(100));
        assert!(body.extend(&[1; 40]));
        assert!(body.extend(&[1; 60]));
        assert_eq!(budget.used(), 100);
        assert_eq!(body.as_slice().len(), 100);
    }

    #[test]
    fn a_large_body_lives_in_a_mapping_of_its_declared_length() {
        let budget = Arc::new(ByteBudget::new(1 << 20));
        let mut body = BodyBuffer::new(Arc::clone(&budget), 1 << 20);
        body.begin(Some(200_000));
        let piece: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        assert!(body.extend(&piece));
        assert_eq!(body.mapped.as_ref().map(|m| m.len()), Some(200_000));
        assert!(body.extend(&piece));
        assert_eq!(body.as_slice(), [&piece[..], &piece[..]].concat());
        assert_eq!(budget.used(), 200_000, "charged up to the declared length");
        body.clear();
        assert!(body.mapped.is_none() && body.is_empty());
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn a_chunked_body_moves_to_a_mapping_with_what_it_had_and_stops_at_the_budget() {
        let budget = Arc::new(ByteBudget::new(300_000));
        let mut body = BodyBuffer::new(Arc::clone(&budget), 1 << 20);
        body.begin(None);
        let piece: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        assert!(body.extend(&piece));
        assert!(body.mapped.is_none());
        assert!(body.extend(&piece));
        assert!(body.mapped.is_some(), "200,000 bytes are past {MAP_ABOVE}");
        assert_eq!(body.as_slice(), [&piece[..], &piece[..]].concat());
        assert_eq!(budget.used(), 200_000usize.next_multiple_of(STEP));
        assert!(
            !body.extend(&piece),
            "300,000 bytes round up past the budget"
        );
        assert_eq!(
            body.as_slice().len(),
            200_000,
            "a refused piece is not kept"
        );
        assert_eq!(body.held().remaining, (1 << 20) - 200_000);
    }
}
