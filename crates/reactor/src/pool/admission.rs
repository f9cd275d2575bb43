//! Admission that learns from its own outcomes: the margin a job must leave before its
//! deadline, and how many jobs of a route may run at once, both set by what happened to the
//! jobs let in before it.
//!
//! Like the queue, it reads no clock and holds no lock, so it is tested with made-up times.
//!
//! # The margin: how late jobs end against the end predicted for them
//!
//! When a job is let in, the queue predicts when it will end: now, plus the wait the work
//! ahead of it implies, plus its route's expected run time. Every prediction is checked
//! against the job's actual end (or, for a job refused at the head, the end it would have
//! had), and the error, signed, goes into a window of the route's last [`WINDOW`] errors. The
//! margin a job must leave is a high quantile of that window. On a quiet host the errors are
//! small and the margin is near zero; when a neighbour takes the CPU, jobs end late, the
//! errors grow and the margin with them, within [`WINDOW`] jobs; when the neighbour goes, the
//! late errors leave the window and the margin falls back. A prediction that is too pessimistic
//! (a run-time estimate inflated by a stall, say) shows as negative errors, and the margin goes
//! negative: the estimate gone wrong is corrected by its outcome, not kept.
//!
//! This is the "separate estimate of the wait" that a mean plus two deviations of the run
//! time alone cannot give: the run time of a job is measured on the worker, but what a
//! deadline sees also includes the wait, whose error under noise is the larger part.
//!
//! # Which quantile: admitted misses against refusals that were not needed
//!
//! Under overload nearly every job let in is at the edge (its predicted end plus the margin
//! is its deadline), so the share of them that miss is the share of errors above the margin.
//! The quantile is set by [`Level`], pool-wide, from two outcomes counted over rounds of
//! [`ROUND`] jobs:
//! * an admitted job that missed its deadline (ran past it, or was refused at the head);
//! * an over-refusal: a job refused at the door although a worker fell idle before the job's
//!   deadline minus its expected run time, so it would have made it.
//!
//! More misses than [`MISS_TARGET`] move the quantile up (a larger margin); fewer than half of
//! it, with over-refusals seen, move it down. So the margin is the smallest that keeps misses
//! under the target, on the host as it is now.
//!
//! # How many run at once: CPU queueing as the congestion signal
//!
//! When workers outnumber the free cores, CPU-bound jobs running at once share them, and each
//! takes longer; past a point, the jobs that are let in miss together. Each worker reads its
//! own thread's scheduler statistics (`/proc/thread-self/schedstat`: CPU time and time spent
//! runnable but waiting for a CPU) before and after a job. For a route whose jobs use the CPU
//! for most of the time they are not waiting for it, a job that waited for the CPU for more
//! than [`DELAY_TARGET`] of its run lowers the route's limit in proportion to the excess
//! (Breakwater's credits, with queueing delay as the signal, here the CPU's run queue); a job
//! that did not raises it slowly, up to the number of workers. Jobs that mostly sleep never
//! lower it: fewer of them at once would not give them the CPU they do not need.

use std::time::Duration;

/// Errors kept per route: the margin follows the host within this many jobs.
pub(crate) const WINDOW: usize = 128;

/// The margin is recomputed after this many new errors (a selection over the window).
const RECOMPUTE: u32 = 8;

/// Outcomes per round of the quantile's controller.
pub(crate) const ROUND: u32 = 256;

/// The share of admitted jobs that may miss their deadline.
pub(crate) const MISS_TARGET: f64 = 0.01;

/// The quantile starts here: the errors above the margin in a full window.
const START_ABOVE: usize = 1;

/// The lowest quantile the margin may fall to (errors above the margin in a full window).
const MOST_ABOVE: usize = 12;

/// A CPU-bound job that waited for the CPU for more than this share of its run lowers its
/// route's limit.
pub(crate) const DELAY_TARGET: f64 = 0.2;

/// A route whose jobs spend more than this share of their running time on the CPU is
/// CPU-bound.
const CPU_BOUND: f64 = 0.5;

/// The last [`WINDOW`] errors of one route's predictions, and the margin they give.
#[derive(Clone, Debug)]
pub(crate) struct Errors {
    /// Signed errors, ns: actual (or would-be) end minus predicted end.
    samples: Box<[i64; WINDOW]>,
    len: usize,
    next: usize,
    since_recompute: u32,
    /// The margin in use, ns (negative when predictions run pessimistic).
    margin: i64,
}

impl Default for Errors {
    fn default() -> Self {
        Self {
            samples: Box::new([0; WINDOW]),
            len: 0,
            next: 0,
            since_recompute: 0,
            margin: 0,
        }
    }
}

impl Errors {
    /// A job ended `error_ns` after (negative: before) the end predicted for it.
    pub(crate) fn record(&mut self, error_ns: i64, above: usize) {
        self.samples[self.next] = error_ns;
        self.next = (self.next + 1) % WINDOW;
        self.len = (self.len + 1).min(WINDOW);
        self.since_recompute += 1;
        // Early on, every sample counts; then every few.
        if self.len < WINDOW || self.since_recompute >= RECOMPUTE {
            self.recompute(above);
        }
    }

    /// Sets the margin to the error with `above` of a full window's errors above it (scaled
    /// to the errors there are).
    pub(crate) fn recompute(&mut self, above: usize) {
        self.since_recompute = 0;
        if self.len == 0 {
            self.margin = 0;
            return;
        }
        let mut sorted = *self.samples;
        let sorted = &mut sorted[..self.len];
        let skip = (above * self.len / WINDOW).min(self.len - 1);
        let index = self.len - 1 - skip;
        let (_, nth, _) = sorted.select_nth_unstable(index);
        self.margin = *nth;
    }

    /// The margin a job should leave before its deadline beyond its predicted end, ns.
    pub(crate) fn margin(&self) -> i64 {
        self.margin
    }
}

/// The quantile of the errors used as the margin, set from the outcomes of admitted jobs.
#[derive(Clone, Debug)]
pub(crate) struct Level {
    /// Errors above the margin in a full window.
    above: usize,
    made: u32,
    missed: u32,
    over_refused: u32,
}

impl Default for Level {
    fn default() -> Self {
        Self {
            above: START_ABOVE,
            made: 0,
            missed: 0,
            over_refused: 0,
        }
    }
}

impl Level {
    /// Errors above the margin in a full window.
    pub(crate) fn above(&self) -> usize {
        self.above
    }

    /// An admitted job made its deadline (`true`) or missed it. Returns whether a round ended
    /// and the level changed.
    pub(crate) fn outcome(&mut self, made: bool) -> bool {
        if made {
            self.made += 1;
        } else {
            self.missed += 1;
        }
        let jobs = self.made + self.missed;
        if jobs < ROUND {
            return false;
        }
        let missed = f64::from(self.missed) / f64::from(jobs);
        let before = self.above;
        if missed > MISS_TARGET {
            self.above = self.above.saturating_sub(1);
        } else if missed < MISS_TARGET / 2.0 && self.over_refused > 0 {
            self.above = (self.above + 1).min(MOST_ABOVE);
        }
        self.made = 0;
        self.missed = 0;
        self.over_refused = 0;
        self.above != before
    }

    /// A job refused at the door would have made its deadline.
    pub(crate) fn over_refused(&mut self) {
        self.over_refused += 1;
    }
}

/// What a job's thread did while the job ran, from the scheduler's statistics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct CpuUse {
    /// Time on a CPU.
    pub(crate) on_cpu: Duration,
    /// Time runnable, waiting for a CPU.
    pub(crate) waiting: Duration,
}

/// How many of one route's jobs may run at once.
#[derive(Clone, Debug)]
pub(crate) struct Limit {
    /// The limit, fractional so that increases can be gradual; at least 1.
    limit: f64,
    /// The most: the number of workers.
    most: f64,
}

impl Limit {
    /// A limit of `workers`, the most it can be.
    pub(crate) fn new(workers: usize) -> Self {
        // At most 4096 workers (the configuration's bound): exact in an f64.
        let most = workers.max(1) as f64;
        Self { limit: most, most }
    }

    /// Jobs that may run at once now.
    pub(crate) fn get(&self) -> usize {
        // In [1, workers]: the cast neither truncates a large value nor wraps.
        self.limit.floor() as usize
    }

    /// A job of the route ran for `ran` of wall time, using the CPU as `cpu` says; `full`:
    /// the route had as many jobs running as the limit allows when it ended.
    pub(crate) fn observe(&mut self, ran: Duration, cpu: CpuUse, full: bool) {
        let ran = ran.as_secs_f64();
        if ran <= 0.0 {
            return;
        }
        let waiting = cpu.waiting.as_secs_f64().min(ran);
        let running = ran - waiting;
        let cpu_bound = running > 0.0 && cpu.on_cpu.as_secs_f64() / running > CPU_BOUND;
        let delay = waiting / ran;
        if cpu_bound && delay > DELAY_TARGET {
            // Multiplicative decrease in proportion to the excess: with n CPU-bound jobs on
            // one core each waits (n-1)/n of its run, so the limit falls towards the cores.
            self.limit = (self.limit * (1.0 - 0.5 * (delay - DELAY_TARGET))).max(1.0);
        } else if full {
            // Additive increase, about one more per `limit × 4` jobs that did not queue, but
            // only while the limit is what holds the route back: a limit that is not reached
            // says nothing of the next one up (as a congestion window is grown only while it
            // is used, RFC 7661).
            self.limit = (self.limit + 0.25 / self.limit).min(self.most);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: i64 = 1_000_000;

    #[test]
    fn the_margin_is_a_high_quantile_of_the_window() {
        let mut errors = Errors::default();
        for i in 0..WINDOW as i64 {
            errors.record(i * 1000, 1);
        }
        // One error of the window above it: the second largest.
        assert_eq!(errors.margin(), (WINDOW as i64 - 2) * 1000);
        errors.recompute(0);
        assert_eq!(errors.margin(), (WINDOW as i64 - 1) * 1000);
    }

    #[test]
    fn the_margin_follows_a_neighbour_in_and_out_within_a_window() {
        let mut errors = Errors::default();
        for _ in 0..WINDOW {
            errors.record(20_000, 1);
        }
        assert_eq!(errors.margin(), 20_000);
        // A neighbour takes the CPU: jobs end 1 to 2 ms late.
        for i in 0..WINDOW as i64 {
            errors.record(MS + (i % 10) * MS / 10, 1);
        }
        assert!(errors.margin() >= MS + 8 * MS / 10, "{}", errors.margin());
        // It leaves: within a window the margin is back.
        for _ in 0..WINDOW {
            errors.record(20_000, 1);
        }
        assert_eq!(errors.margin(), 20_000);
    }

    #[test]
    fn pessimistic_predictions_give_a_negative_margin() {
        let mut errors = Errors::default();
        for _ in 0..WINDOW {
            errors.record(-3 * MS, 1);
        }
        assert_eq!(errors.margin(), -3 * MS);
    }

    #[test]
    fn misses_raise_the_quantile_and_over_refusals_lower_it() {
        let mut level = Level::default();
        assert_eq!(level.above(), START_ABOVE);
        // 5 % of admitted jobs miss: the margin must grow.
        for i in 0..ROUND {
            level.outcome(i % 20 != 0);
        }
        assert_eq!(level.above(), START_ABOVE - 1);
        // No misses, but refusals that were not needed: the margin may shrink, one step a
        // round, down to the lowest quantile allowed.
        for _ in 0..4 * MOST_ABOVE {
            level.over_refused();
            for _ in 0..ROUND {
                level.outcome(true);
            }
        }
        assert_eq!(level.above(), MOST_ABOVE);
        // No misses and no over-refusals: nothing says the margin is wrong; it stays.
        for _ in 0..ROUND {
            level.outcome(true);
        }
        assert_eq!(level.above(), MOST_ABOVE);
    }

    fn cpu(on_cpu_us: u64, waiting_us: u64) -> CpuUse {
        CpuUse {
            on_cpu: Duration::from_micros(on_cpu_us),
            waiting: Duration::from_micros(waiting_us),
        }
    }

    #[test]
    fn cpu_bound_jobs_that_queue_for_the_cpu_lower_the_limit_to_what_it_can_run() {
        let mut limit = Limit::new(4);
        assert_eq!(limit.get(), 4);
        // One core, n spinning jobs at once: each is on the CPU 1/n of its run.
        let mut ran = 0;
        for _ in 0..1000 {
            let n = limit.get() as u64;
            limit.observe(
                Duration::from_micros(1000 * n),
                cpu(1000, 1000 * (n - 1)),
                true,
            );
            ran += 1;
        }
        assert!(limit.get() <= 2, "{limit:?} after {ran}");
        // The other cores free again (no waiting): it grows back, up to the workers.
        for _ in 0..1000 {
            limit.observe(Duration::from_millis(1), cpu(1000, 0), true);
        }
        assert_eq!(limit.get(), 4);
    }

    #[test]
    fn sleeping_jobs_delayed_by_a_neighbour_keep_their_limit() {
        let mut limit = Limit::new(4);
        // 2 ms of sleep with 10 µs of CPU, woken 1 ms late by a neighbour on the core.
        for _ in 0..1000 {
            limit.observe(Duration::from_millis(3), cpu(10, 1000), true);
        }
        assert_eq!(limit.get(), 4);
    }

    #[test]
    fn a_limit_that_is_not_reached_does_not_grow() {
        let mut limit = Limit::new(8);
        for _ in 0..100 {
            limit.observe(Duration::from_millis(2), cpu(2000, 1000), true);
        }
        let low = limit.get();
        assert!(low < 8, "{limit:?}");
        // Jobs run alone, below the limit: nothing says more at once would not queue.
        for _ in 0..1000 {
            limit.observe(Duration::from_millis(1), cpu(1000, 0), false);
        }
        assert_eq!(limit.get(), low);
    }

    #[test]
    fn the_limit_never_falls_below_one() {
        let mut limit = Limit::new(16);
        for _ in 0..10_000 {
            limit.observe(Duration::from_millis(10), cpu(1000, 9000), true);
        }
        assert_eq!(limit.get(), 1);
    }
}
