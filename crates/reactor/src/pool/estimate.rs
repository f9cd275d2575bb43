//! What a route's jobs cost: a running estimate of their run time, from which the pool
//! predicts waits and decides whether a job can still make its deadline.
//!
//! The estimate is a smoothed mean with a smoothed deviation, as TCP estimates round-trip
//! times (RFC 6298): cheap, quick to follow a change, and the deviation gives the margin a
//! job needs when its route's run times vary. A windowed percentile would be steadier for
//! very uneven routes, but it costs a sorted window per route; the mean plus twice the
//! deviation covers the same ground for the job sizes a deadline of milliseconds allows.
//!
//! Wall time is what a deadline sees, so that is what is measured. When workers outnumber
//! cores, a CPU-bound job's wall time grows with the number running at once, that is with
//! the very load being refused; an estimate that followed it freely could grow until every
//! job is refused, and with no job run it would never come down. So the estimate in use is
//! capped at [`CAP`] times the shortest run among the recent ones: the cost of the job itself
//! with a bounded share of contention. The cap leaves room for a route whose runs vary by a
//! factor of a few; a route that varies more is better split in two, as two routes or as
//! two cost classes of one ([`Job::with_cost_class`](crate::Job::with_cost_class)).

use std::time::Duration;

/// Samples per window of the recent minimum; two windows are kept, so the minimum covers the
/// last `WINDOW` to `2 × WINDOW` runs.
const WINDOW: u32 = 64;

/// The estimate in use is at most this many times the shortest recent run.
const CAP: u64 = 4;

/// The running estimate of one route's job run time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct RunTime {
    /// Smoothed mean, ns (gain 1/8).
    mean: u64,
    /// Smoothed mean deviation, ns (gain 1/4).
    deviation: u64,
    /// Shortest run in the current window and in the one before it, ns.
    floor: [u64; 2],
    /// Runs in the current window.
    in_window: u32,
    /// Whether any run has been measured.
    known: bool,
}

impl RunTime {
    /// Takes one run's wall time into account.
    pub(crate) fn record(&mut self, ran: Duration) {
        let ns = u64::try_from(ran.as_nanos()).unwrap_or(u64::MAX);
        if self.known {
            let error = ns.abs_diff(self.mean);
            // Rounded so that a steady route's deviation falls to zero, not to a few ns.
            self.deviation = self.deviation - self.deviation.div_ceil(4) + error / 4;
            self.mean = self.mean - self.mean / 8 + ns / 8;
        } else {
            // RFC 6298 §2.2: the first sample sets the mean, half of it the deviation.
            self.mean = ns;
            self.deviation = ns / 2;
            self.floor = [ns, ns];
            self.known = true;
        }
        if self.in_window == WINDOW {
            self.floor = [ns, self.floor[0]];
            self.in_window = 0;
        }
        self.floor[0] = self.floor[0].min(ns);
        self.in_window += 1;
    }

    /// The shortest run among the recent ones, ns.
    fn floor(&self) -> u64 {
        self.floor[0].min(self.floor[1])
    }

    /// The shortest run among the recent ones: the least a job can be expected to take. Zero
    /// before any run.
    pub(crate) fn shortest(&self) -> Duration {
        Duration::from_nanos(self.floor())
    }

    /// Expected run time of the next job: the mean, capped at [`CAP`] times the recent shortest
    /// run.
    /// Zero before any run (so that a new route is tried rather than refused).
    pub(crate) fn expected(&self) -> Duration {
        Duration::from_nanos(self.mean.min(self.floor().saturating_mul(CAP)))
    }

    /// The time a job should have left to be worth starting: the mean plus twice the
    /// deviation, under the same cap.
    pub(crate) fn needed(&self) -> Duration {
        let needed = self.mean.saturating_add(self.deviation.saturating_mul(2));
        Duration::from_nanos(needed.min(self.floor().saturating_mul(CAP)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn unknown_until_measured_then_follows_the_runs() {
        let mut cost = RunTime::default();
        assert_eq!(cost.expected(), Duration::ZERO);
        cost.record(2 * MS);
        assert_eq!(cost.expected(), 2 * MS);
        for _ in 0..200 {
            cost.record(3 * MS);
        }
        let expected = cost.expected();
        assert!(
            expected > 2990 * MS / 1000 && expected <= 3 * MS,
            "{expected:?}"
        );
        // Steady runs leave almost no margin.
        assert!(cost.needed() - cost.expected() < MS / 100, "{cost:?}");
    }

    #[test]
    fn uneven_runs_ask_for_a_margin() {
        let mut cost = RunTime::default();
        for i in 0..400 {
            cost.record(if i % 2 == 0 { MS } else { 3 * MS });
        }
        let (expected, needed) = (cost.expected(), cost.needed());
        assert!(expected > MS && expected < 3 * MS, "{expected:?}");
        assert!(needed >= expected + MS, "{needed:?} vs {expected:?}");
    }

    #[test]
    fn contention_cannot_inflate_the_estimate_past_a_few_times_the_recent_shortest() {
        let mut cost = RunTime::default();
        // A 1 ms job that, with too many workers per core, takes 10 ms of wall time.
        cost.record(MS);
        for _ in 0..100 {
            cost.record(10 * MS);
        }
        assert_eq!(cost.expected(), 4 * MS);
        assert_eq!(cost.needed(), 4 * MS);
        assert_eq!(cost.shortest(), MS);
        // Once contention lasts two windows, the shortest recent run is the contended one:
        // the job does cost that now.
        for _ in 0..2 * WINDOW {
            cost.record(10 * MS);
        }
        assert!(cost.expected() > 9 * MS, "{cost:?}");
    }
}
