//! The pool's queue and its discipline: which jobs are let in, which are served, in what
//! order, and which are refused because they can no longer make their deadline.
//!
//! It reads no clock and holds no lock (the pool holds it under one), so its policy is tested
//! here with instants made up by the test.
//!
//! # Policy
//!
//! * **At the door**, a job is refused if the queue is full, or if the wait it can expect plus
//!   the time its route's jobs need would take it past its deadline. The wait is predicted
//!   from the work ahead of it (the expected run time of every queued job, and what is left of
//!   the running ones) spread over the workers, so a queue of 200 ms jobs and one of 2 ms jobs
//!   are told apart. An idle pool lets every job in, so that an estimate gone wrong is
//!   corrected by the next run rather than kept by refusing everything.
//! * **At the head**, a job whose deadline comes before even the shortest recent run of its
//!   route would end is not started: it is handed back to be refused at once. The shortest
//!   run, not the mean: a mean inflated by a few runs that waited for a CPU would otherwise
//!   refuse every job at the head, and with no job run nothing would bring it down. Jobs
//!   that would probably miss are kept out at the door, where the mean is used.
//! * **Order**: first in, first out, unless the discipline is [`Discipline::AdaptiveLifo`] and
//!   the queue is standing (its shortest wait over the last [`INTERVAL`] was above
//!   [`TARGET`], as CoDel tells a standing queue from a burst): then the newest job, which has
//!   the most time left, goes first, and the oldest are refused from the front as soon as they
//!   cannot make it.

use std::{
    collections::VecDeque,
    time::{Duration, Instant},
};

use super::estimate::RunTime;
use crate::Discipline;

/// How long the queue's shortest wait is watched before it is called standing or not.
pub(crate) const INTERVAL: Duration = Duration::from_millis(100);

/// A queue whose shortest wait over [`INTERVAL`] is above this is standing.
pub(crate) const TARGET: Duration = Duration::from_millis(1);

/// Why a job was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The queue is full.
    QueueFull,
    /// The wait ahead plus its run time would take it past its deadline.
    ExpectedMiss,
}

/// A job in the queue.
#[derive(Debug)]
struct Queued<T> {
    item: T,
    route: usize,
    deadline: Instant,
    enqueued: Instant,
    /// Its expected run time when it was let in, counted in the work queued.
    cost: Duration,
}

/// What a worker takes from the queue.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Taken<T> {
    /// Run it.
    Run {
        item: T,
        route: usize,
        waited: Duration,
    },
    /// It cannot make its deadline any more: refuse it now.
    Refuse { item: T, waited: Duration },
}

/// The queue, its run-time estimates and its workers' state.
#[derive(Debug)]
pub(crate) struct Queue<T> {
    jobs: VecDeque<Queued<T>>,
    capacity: usize,
    /// Per worker: when its job is expected to end, if it has one.
    running: Vec<Option<Instant>>,
    /// The expected run time of every queued job, summed.
    queued_work: Duration,
    /// Per route.
    costs: Vec<RunTime>,
    discipline: Discipline,
    standing: Standing,
}

impl<T> Queue<T> {
    /// A queue of at most `capacity` jobs for `workers` workers and `routes` routes (indices
    /// past the last share the last).
    pub(crate) fn new(
        capacity: usize,
        workers: usize,
        routes: usize,
        discipline: Discipline,
        now: Instant,
    ) -> Self {
        Self {
            jobs: VecDeque::with_capacity(capacity),
            capacity,
            running: vec![None; workers.max(1)],
            queued_work: Duration::ZERO,
            costs: vec![RunTime::default(); routes.max(1)],
            discipline,
            standing: Standing::new(now),
        }
    }

    fn cost(&self, route: usize) -> &RunTime {
        &self.costs[route.min(self.costs.len() - 1)]
    }

    /// The expected run time of `route`'s jobs.
    pub(crate) fn expected(&self, route: usize) -> Duration {
        self.cost(route).expected()
    }

    /// Whether the queue is standing (served newest first, under adaptive LIFO).
    #[cfg(test)]
    fn is_standing(&self) -> bool {
        self.standing.standing
    }

    /// The wait a job let in now can expect: the work ahead of it, spread over the workers.
    pub(crate) fn expected_wait(&self, now: Instant) -> Duration {
        let free = self.running.iter().any(Option::is_none);
        if free && self.jobs.is_empty() {
            return Duration::ZERO;
        }
        let running: Duration = self
            .running
            .iter()
            .flatten()
            .map(|end| end.saturating_duration_since(now))
            .sum();
        // At most 4096 workers (the configuration's bound).
        (self.queued_work + running) / self.running.len() as u32
    }

    /// Lets a job in, or gives it back with the reason it was refused.
    pub(crate) fn admit(
        &mut self,
        now: Instant,
        route: usize,
        deadline: Instant,
        item: T,
    ) -> Result<(), (T, Refused)> {
        if self.jobs.len() >= self.capacity {
            return Err((item, Refused::QueueFull));
        }
        let idle = self.jobs.is_empty() && self.running.iter().all(Option::is_none);
        let cost = *self.cost(route);
        if !idle && now + self.expected_wait(now) + cost.needed() > deadline {
            return Err((item, Refused::ExpectedMiss));
        }
        self.queued_work += cost.expected();
        self.jobs.push_back(Queued {
            item,
            route,
            deadline,
            enqueued: now,
            cost: cost.expected(),
        });
        Ok(())
    }

    /// The next job for `worker` (which has finished its last one), or `None` if the queue is
    /// empty. A job refused here does not occupy the worker: take again.
    pub(crate) fn take(&mut self, now: Instant, worker: usize) -> Option<Taken<T>> {
        // Under LIFO the oldest sink to the front: refuse them there as soon as they are
        // hopeless, not when their deadline comes.
        let front_hopeless = self.jobs.front().is_some_and(|job| self.hopeless(job, now));
        let lifo = self.discipline == Discipline::AdaptiveLifo && self.standing.standing;
        let job = if front_hopeless || !lifo {
            self.jobs.pop_front()
        } else {
            self.jobs.pop_back()
        };
        let Some(job) = job else {
            // Empty: whatever waited before, nothing waits now.
            self.standing.observe(now, Duration::ZERO);
            return None;
        };
        self.queued_work = self.queued_work.saturating_sub(job.cost);
        let waited = now.saturating_duration_since(job.enqueued);
        self.standing.observe(now, waited);
        if front_hopeless || self.hopeless(&job, now) {
            return Some(Taken::Refuse {
                item: job.item,
                waited,
            });
        }
        self.running[worker] = Some(now + self.expected(job.route));
        Some(Taken::Run {
            item: job.item,
            route: job.route,
            waited,
        })
    }

    /// `worker`'s job of `route` ended; `ran`: its run time, if it tells the route's cost.
    pub(crate) fn finished(&mut self, worker: usize, route: usize, ran: Option<Duration>) {
        self.running[worker] = None;
        let last = self.costs.len() - 1;
        if let Some(ran) = ran {
            self.costs[route.min(last)].record(ran);
        }
    }

    /// Whether `job`, started now, would end after its deadline even if it ran as fast as its
    /// route's fastest recent job.
    fn hopeless(&self, job: &Queued<T>, now: Instant) -> bool {
        now + self.cost(job.route).shortest() > job.deadline
    }
}

/// Tells a standing queue from a passing burst: standing when even the shortest wait over an
/// interval was above the target (CoDel's test).
#[derive(Debug)]
struct Standing {
    since: Instant,
    shortest: Duration,
    standing: bool,
}

impl Standing {
    fn new(now: Instant) -> Self {
        Self {
            since: now,
            shortest: Duration::MAX,
            standing: false,
        }
    }

    fn observe(&mut self, now: Instant, waited: Duration) {
        self.shortest = self.shortest.min(waited);
        if now.saturating_duration_since(self.since) >= INTERVAL {
            self.standing = self.shortest > TARGET;
            self.since = now;
            self.shortest = Duration::MAX;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn queue(capacity: usize, workers: usize, discipline: Discipline) -> (Queue<u32>, Instant) {
        let t0 = Instant::now();
        (Queue::new(capacity, workers, 2, discipline, t0), t0)
    }

    /// Teaches route 0 that its jobs take `run`.
    fn learn(q: &mut Queue<u32>, run: Duration) {
        for _ in 0..50 {
            q.finished(0, 0, Some(run));
        }
    }

    #[test]
    fn a_full_queue_refuses() {
        let (mut q, t0) = queue(2, 1, Discipline::Fifo);
        let far = t0 + 60 * 1000 * MS;
        assert!(q.admit(t0, 0, far, 1).is_ok());
        assert!(q.admit(t0, 0, far, 2).is_ok());
        assert_eq!(q.admit(t0, 0, far, 3), Err((3, Refused::QueueFull)));
    }

    #[test]
    fn a_job_that_cannot_make_it_is_refused_at_the_door() {
        let (mut q, t0) = queue(100, 2, Discipline::Fifo);
        learn(&mut q, 2 * MS);
        let deadline = t0 + 5 * MS;
        // The work ahead spread over two workers: the fourth job waits 3 ms and ends at 5,
        // the fifth would wait 4 ms and end at 6.
        for i in 0..4 {
            assert!(q.admit(t0, 0, deadline, i).is_ok(), "job {i}");
        }
        assert_eq!(q.admit(t0, 0, deadline, 4), Err((4, Refused::ExpectedMiss)));
        // A later deadline fits.
        assert!(q.admit(t0, 0, t0 + 7 * MS, 5).is_ok());
        // Another route, never measured, is expected to cost nothing but still waits.
        assert_eq!(
            q.admit(t0, 1, t0 + 2 * MS, 6),
            Err((6, Refused::ExpectedMiss))
        );
    }

    #[test]
    fn a_mean_inflated_past_the_deadline_still_lets_jobs_run_and_come_down() {
        let (mut q, t0) = queue(100, 1, Discipline::Fifo);
        learn(&mut q, 2 * MS);
        // A few runs that waited for a CPU: the mean passes the 5 ms deadline.
        for _ in 0..20 {
            q.finished(0, 0, Some(7 * MS));
        }
        assert!(q.expected(0) > 5 * MS, "{:?}", q.expected(0));
        let mut now = t0;
        for i in 0..100 {
            // An idle pool lets the job in, and a job with time for its fastest run starts.
            assert!(q.admit(now, 0, now + 5 * MS, i).is_ok());
            assert!(matches!(q.take(now, 0), Some(Taken::Run { .. })), "job {i}");
            q.finished(0, 0, Some(2 * MS));
            now += 2 * MS;
        }
        assert!(q.expected(0) < 2100 * MS / 1000, "{:?}", q.expected(0));
    }

    #[test]
    fn a_job_that_was_not_run_teaches_nothing() {
        let (mut q, _) = queue(100, 1, Discipline::Fifo);
        learn(&mut q, 2 * MS);
        // A job skipped (its client left) would otherwise read as a job that costs nothing.
        q.finished(0, 0, None);
        assert_eq!(q.expected(0), 2 * MS);
    }

    #[test]
    fn the_wait_counts_what_is_left_of_running_jobs() {
        let (mut q, t0) = queue(100, 1, Discipline::Fifo);
        learn(&mut q, 4 * MS);
        assert!(q.admit(t0, 0, t0 + 100 * MS, 1).is_ok());
        assert_eq!(q.expected_wait(t0), 4 * MS);
        assert!(matches!(q.take(t0, 0), Some(Taken::Run { item: 1, .. })));
        assert_eq!(q.expected_wait(t0 + MS), 3 * MS);
        q.finished(0, 0, Some(4 * MS));
        assert_eq!(q.expected_wait(t0 + 4 * MS), Duration::ZERO);
    }

    #[test]
    fn an_idle_pool_lets_a_job_in_whatever_the_estimate() {
        let (mut q, t0) = queue(100, 1, Discipline::Fifo);
        learn(&mut q, 50 * MS);
        assert!(q.admit(t0, 0, t0 + 5 * MS, 1).is_ok());
        // Not idle any more: the estimate applies.
        assert_eq!(
            q.admit(t0, 0, t0 + 5 * MS, 2),
            Err((2, Refused::ExpectedMiss))
        );
    }

    #[test]
    fn a_job_that_can_no_longer_make_it_is_not_started() {
        let (mut q, t0) = queue(100, 1, Discipline::Fifo);
        learn(&mut q, 2 * MS);
        assert!(q.admit(t0, 0, t0 + 10 * MS, 1).is_ok());
        assert!(q.admit(t0, 0, t0 + 10 * MS, 2).is_ok());
        assert!(matches!(q.take(t0, 0), Some(Taken::Run { item: 1, .. })));
        q.finished(0, 0, Some(2 * MS));
        // Taken at 9 ms, it would end at 11: refused, and the worker takes again.
        let late = t0 + 9 * MS;
        assert_eq!(
            q.take(late, 0),
            Some(Taken::Refuse {
                item: 2,
                waited: 9 * MS
            })
        );
        assert_eq!(q.take(late, 0), None);
    }

    #[test]
    fn adaptive_lifo_serves_the_newest_only_while_the_queue_stands() {
        let (mut q, t0) = queue(100, 1, Discipline::AdaptiveLifo);
        learn(&mut q, MS);
        let far = |at: Instant| at + 1000 * MS;
        // Light load: every job waits less than the target; first in, first out.
        let mut now = t0;
        for i in 0..300 {
            assert!(q.admit(now, 0, far(now), i).is_ok());
            assert!(q.admit(now, 0, far(now), 1000 + i).is_ok());
            assert!(matches!(q.take(now, 0), Some(Taken::Run { item, .. }) if item == i));
            q.finished(0, 0, Some(MS));
            now += MS;
            assert!(matches!(q.take(now, 0), Some(Taken::Run { item, .. }) if item == 1000 + i));
            q.finished(0, 0, Some(MS));
        }
        assert!(!q.is_standing());
        // Overload: every job waits 5 ms or more for an interval; the queue stands.
        for i in 0..10 {
            assert!(q.admit(now, 0, far(now), 2000 + i).is_ok());
        }
        now += 5 * MS;
        let mut order = Vec::new();
        let mut newest = 3000;
        while now < t0 + 300 * MS + 3 * INTERVAL {
            newest += 1;
            assert!(q.admit(now, 0, far(now), newest).is_ok());
            now += 5 * MS;
            if let Some(Taken::Run { item, .. }) = q.take(now, 0) {
                order.push(item);
            }
            q.finished(0, 0, Some(MS));
        }
        assert!(q.is_standing());
        // Newest first: the job just let in is served while the older wait.
        assert_eq!(order.last(), Some(&newest));
        // Drained: the shortest wait falls to nothing, and the order is FIFO again.
        while q.take(now, 0).is_some() {
            q.finished(0, 0, Some(MS));
        }
        now += INTERVAL;
        assert_eq!(q.take(now, 0), None);
        assert!(!q.is_standing());
    }

    #[test]
    fn under_lifo_the_oldest_are_refused_once_hopeless() {
        let (mut q, t0) = queue(100, 1, Discipline::AdaptiveLifo);
        learn(&mut q, 2 * MS);
        assert!(q.admit(t0, 0, t0 + 30 * MS, 1).is_ok());
        assert!(q.admit(t0, 0, t0 + 30 * MS, 2).is_ok());
        assert!(q.admit(t0, 0, t0 + 7 * MS, 3).is_ok());
        q.standing.standing = true;
        // At 6 ms the newest (3) cannot end by 7 ms: refused; the newest that can make it
        // goes first...
        let now = t0 + 6 * MS;
        match q.take(now, 0) {
            Some(Taken::Refuse { item: 3, .. }) => {}
            other => panic!("{other:?}"),
        }
        assert!(matches!(q.take(now, 0), Some(Taken::Run { item: 2, .. })));
        q.finished(0, 0, Some(2 * MS));
        // ...and an old job that became hopeless at the front is refused before any other.
        assert!(q.admit(now, 0, now + 30 * MS, 4).is_ok());
        let late = t0 + 29 * MS;
        assert!(matches!(
            q.take(late, 0),
            Some(Taken::Refuse { item: 1, .. })
        ));
    }
}
