//! Admission that learns from its own outcomes: the margin a job must leave before its
//! deadline, and how many jobs of a route may run at once, both set by what happened to the
//! jobs let in before it.
//!
//! Like the queue, it reads no clock and holds no lock, so it is tested with made-up times.
//!
//! # The margin: the point where one admitted job in a hundred misses
//!
//! When a job is let in, the queue predicts when it will end: now, plus the wait the work
//! ahead of it implies, plus its route's expected run time. It is let in if that end plus the
//! route's margin is before its deadline. Under overload nearly every job let in is at that
//! edge, so the share of admitted jobs that miss is the share whose actual end came later than
//! predicted by more than the margin: the margin sets the miss rate, and the right margin is
//! the quantile of the prediction error at 1 − [`MISS_TARGET`].
//!
//! That quantile is tracked from the outcomes themselves, by stochastic approximation (as
//! the "frugal" streaming quantile estimators do): each admitted job that missed raises the
//! margin by a step × (1 − target), each that made it lowers it by a step × target, so it
//! settles where misses are the target share. The step is a quarter of the smoothed deviation
//! of the prediction errors, so it is coarse after a stall and fine on a quiet host. Each
//! over-refusal (a job refused at the door although a worker fell idle before the job's
//! deadline minus its expected run time, so it would have made it) lowers the margin as a job
//! that made it does: the 1 % is of the jobs let in and of those refused for nothing. Without
//! them, a neighbour that takes the core for milliseconds at a time, bringing misses that no
//! margin prevents, would drive the margin up until it refused most of the work; with them
//! weighing more (four made jobs each, measured), the thousands of them such a neighbour
//! brings held misses at 8 %. The margin is also kept within a few deviations of the mean
//! error, so that one raised by a stall falls as soon as the errors do.
//!
//! The margin measures the whole prediction, wait included: what the worker's run time alone
//! (a mean plus two deviations, [`Admission::Fixed`](crate::Admission)) cannot see, such as a
//! worker woken late by a neighbour on its core, or a prediction made pessimistic by a stale
//! estimate, which gives a negative margin.
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

/// The share of admitted jobs that may miss their deadline.
const MISS_TARGET: f64 = 0.01;

/// The smallest step of the margin, ns.
const LEAST_STEP_NS: f64 = 5_000.0;

/// A CPU-bound job that waited for the CPU for more than this share of its run lowers its
/// route's limit.
const DELAY_TARGET: f64 = 0.2;

/// A route whose jobs spend more than this share of their running time on the CPU is
/// CPU-bound.
const CPU_BOUND: f64 = 0.5;

/// The margin is kept within this many deviations of the mean error.
const MOST_DEVIATIONS: f64 = 8.0;

/// One route's margin, learnt from its outcomes.
#[derive(Clone, Debug, Default)]
pub(crate) struct Margin {
    /// The margin, ns (negative when predictions run pessimistic).
    ns: f64,
    /// Smoothed prediction error, ns (gain 1/16).
    mean: f64,
    /// Smoothed absolute deviation of the error from that mean, ns (gain 1/16).
    deviation: f64,
}

impl Margin {
    /// An admitted job ended `error_ns` after (negative: before) the end predicted for it, and
    /// made its deadline or not.
    pub(crate) fn outcome(&mut self, error_ns: i64, made: bool) {
        // An i64 of ns in an f64: exact to 2^53 ns (104 days).
        let error = error_ns as f64;
        self.deviation += ((error - self.mean).abs() - self.deviation) / 16.0;
        self.mean += (error - self.mean) / 16.0;
        let step = self.step();
        if made {
            self.nudge(-step * MISS_TARGET);
        } else {
            self.nudge(step * (1.0 - MISS_TARGET));
        }
    }

    /// A job counted as made by [`outcome`](Self::outcome) missed after all (it was delivered
    /// late): the step it took down is taken up again, with a miss's, a whole step in all.
    pub(crate) fn late_after_all(&mut self) {
        self.nudge(self.step());
    }

    /// A job refused at the door would have made its deadline: it lowers the margin as a job
    /// let in that made it does.
    pub(crate) fn over_refused(&mut self) {
        self.nudge(-self.step() * MISS_TARGET);
    }

    /// A quarter of the errors' spread: coarse after a stall, fine on a quiet host.
    fn step(&self) -> f64 {
        (self.deviation / 4.0).max(LEAST_STEP_NS)
    }

    /// Moves the margin, from where it is in use.
    fn nudge(&mut self, by: f64) {
        self.ns = self.bounded() + by;
    }

    /// The margin within [`MOST_DEVIATIONS`] of the mean error, so that a margin raised by a
    /// stall falls back as soon as the errors do.
    fn bounded(&self) -> f64 {
        let most = MOST_DEVIATIONS * self.step() * 4.0;
        self.ns.clamp(self.mean - most, self.mean + most)
    }

    /// The margin a job should leave before its deadline beyond its predicted end, ns.
    pub(crate) fn ns(&self) -> i64 {
        // Near errors that are themselves i64s: the cast does not wrap.
        self.bounded() as i64
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

    /// Admits jobs whose prediction errs by `error(i)` against a margin, for `n` jobs; a job
    /// misses when its error exceeds the margin (it was let in at the edge). Returns the share
    /// that missed.
    fn edge(margin: &mut Margin, n: i64, error: impl Fn(i64) -> i64) -> f64 {
        let mut missed = 0;
        for i in 0..n {
            let e = error(i);
            let made = e <= margin.ns();
            margin.outcome(e, made);
            missed += i64::from(!made);
        }
        missed as f64 / n as f64
    }

    /// Errors spread evenly over [0, 1 ms), in a scrambled order.
    fn spread(i: i64) -> i64 {
        (i * 7919) % 1000 * 1000
    }

    #[test]
    fn the_margin_settles_where_one_job_in_a_hundred_misses() {
        let mut margin = Margin::default();
        edge(&mut margin, 20_000, spread);
        let missed = edge(&mut margin, 20_000, spread);
        assert!((0.005..0.02).contains(&missed), "{missed}");
        // The 99th percentile of errors spread over 1 ms is 0.99 ms.
        assert!((900_000..1_150_000).contains(&margin.ns()), "{margin:?}");
    }

    #[test]
    fn the_margin_follows_a_neighbour_in_and_out() {
        let mut margin = Margin::default();
        edge(&mut margin, 20_000, |i| spread(i) / 10);
        let quiet = margin.ns();
        assert!(quiet < MS * 15 / 100, "{margin:?}");
        // A neighbour takes the CPU: predictions err by up to 2 ms more.
        edge(&mut margin, 20_000, |i| spread(i) * 2 + MS / 10);
        let missed = edge(&mut margin, 20_000, |i| spread(i) * 2 + MS / 10);
        assert!(missed < 0.02, "{missed}");
        assert!(margin.ns() > 19 * MS / 10, "{margin:?}");
        // It leaves: the margin comes back down.
        edge(&mut margin, 20_000, |i| spread(i) / 10);
        assert!(margin.ns() < quiet + MS / 10, "{margin:?} vs {quiet}");
    }

    #[test]
    fn pessimistic_predictions_give_a_negative_margin() {
        let mut margin = Margin::default();
        // Jobs end 3 ms before their predicted end, give or take half a millisecond.
        edge(&mut margin, 50_000, |i| spread(i) / 2 - 3 * MS);
        assert!(margin.ns() < -2 * MS, "{margin:?}");
    }

    #[test]
    fn a_margin_raised_by_a_stall_falls_back_fast() {
        let mut margin = Margin::default();
        edge(&mut margin, 5_000, |i| spread(i) / 10);
        // A stall: 200 jobs miss by 20 ms.
        for _ in 0..200 {
            margin.outcome(20 * MS, false);
        }
        let high = margin.ns();
        assert!(high > 10 * MS, "{margin:?}");
        // Over: the pool is idle, so it lets one job in now and then (which ends as
        // predicted), and refuses the rest although a worker fell idle in time for them. Two
        // hundred jobs (a tenth of a second of 2 ms jobs on four workers) bring it back.
        for _ in 0..200 {
            margin.outcome(0, true);
            for _ in 0..10 {
                margin.over_refused();
            }
        }
        assert!(margin.ns() < MS, "{margin:?} from {high}");
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
