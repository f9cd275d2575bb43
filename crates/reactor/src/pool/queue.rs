//! The pool's queue and its discipline: which jobs are let in, which are served, in what
//! order, and which are refused because they can no longer make their deadline.
//!
//! It reads no clock and holds no lock (the pool holds it under one), so its policy is tested
//! here with instants made up by the test.
//!
//! # Policy
//!
//! * **At the door**, a job is refused if the queue is full, or if its predicted end plus a
//!   margin would take it past its deadline. The predicted end is now, plus the wait the work
//!   ahead of it implies (the expected run time of every queued job, and what is left of the
//!   running ones, spread over the workers, or over the jobs of its route that may run at
//!   once if that is longer), plus its route's expected run time. The margin is learnt from
//!   how late past jobs ended against their prediction (see [`admission`](super::admission));
//!   under [`Admission::Fixed`] it is twice the deviation of the run time instead. An idle
//!   pool lets every job in, so that an estimate gone wrong is corrected by the next run
//!   rather than kept by refusing everything.
//! * **At the head**, a job whose deadline comes before even the shortest recent run of its
//!   route would end is not started: it is handed back to be refused at once. The shortest
//!   run, not the mean: a mean inflated by a few runs that waited for a CPU would otherwise
//!   refuse every job at the head, and with no job run nothing would bring it down. Jobs
//!   that would probably miss are kept out at the door, where the mean is used.
//! * **Order**: first in, first out, unless the discipline is [`Discipline::AdaptiveLifo`] and
//!   the queue is standing (its shortest wait over the last [`INTERVAL`] was above
//!   [`TARGET`], as CoDel tells a standing queue from a burst): then the newest job, which has
//!   the most time left, goes first, and the oldest are refused from the front as soon as they
//!   cannot make it. A job whose route has as many jobs running as its limit allows waits,
//!   and the next job of another route goes first.
//! * **Outcomes**: every admitted job's end is checked against its deadline and its
//!   prediction, and every refusal at the door against the workers' idle time, per route;
//!   these set the margin and the limits (see [`admission`](super::admission)).
//!
//! # Cost classes
//!
//! What is said above of a route holds of each of its cost classes
//! ([`Job::with_cost_class`](crate::Job::with_cost_class)): each has its own run-time
//! estimate, margin, limit and count of jobs running and queued, so a route's small jobs are
//! predicted from small jobs, not from the large ones beside them. A route's
//! [`CLASSES`] states are made up front, so a class costs no allocation and no lock beyond the
//! queue's own. Jobs that name no class are in class 0, alone in it as they were in their
//! route before classes.

use std::{
    collections::VecDeque,
    time::{Duration, Instant},
};

use super::{
    admission::{CpuUse, Limit, Margin},
    estimate::RunTime,
};
use crate::{Admission, Discipline, Job, stats::RouteView};

/// How long the queue's shortest wait is watched before it is called standing or not.
pub(crate) const INTERVAL: Duration = Duration::from_millis(100);

/// A queue whose shortest wait over [`INTERVAL`] is above this is standing.
pub(crate) const TARGET: Duration = Duration::from_millis(1);

/// Cost classes per route: each route's states are this many, one per class.
const CLASSES: usize = Job::COST_CLASSES as usize;

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
    /// Its route and class, as an index into [`Queue::classes`].
    slot: usize,
    deadline: Instant,
    enqueued: Instant,
    /// Its expected run time when it was let in, counted in the work queued.
    cost: Duration,
    /// When it was predicted to end when it was let in.
    predicted_end: Instant,
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

/// What a worker's last job tells of its route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ran {
    /// It ran to the end in this time, using the CPU as said (when the worker can tell).
    Whole(Duration, Option<CpuUse>),
    /// It was cancelled while it ran, after this time.
    CutShort(Duration),
    /// It was not run (cancelled before it started: its client left).
    Not,
}

/// A job a worker runs.
#[derive(Clone, Copy, Debug)]
struct Running {
    /// Its route and class, as an index into [`Queue::classes`].
    slot: usize,
    /// When it is expected to end, by its class's expected run time from its start.
    expected_end: Instant,
    /// When it was predicted to end when it was let in.
    predicted_end: Instant,
    deadline: Instant,
}

/// One cost class's state in the queue: the jobs of one route filed under one class.
#[derive(Clone, Debug)]
struct Class {
    cost: RunTime,
    margin: Margin,
    limit: Limit,
    /// Its jobs running now.
    running: usize,
    /// Its jobs' expected run times, queued, summed.
    queued_work: Duration,
    /// Its jobs refused at the door although a worker fell idle in time to run them, since
    /// the start.
    over_refused: u64,
    /// Whether a job of it has come to the door: the route's statistics show the classes in
    /// use.
    used: bool,
}

/// Most refusals remembered to tell whether they were needed.
const REFUSALS_KEPT: usize = 256;

/// The queue, its run-time estimates and its workers' state.
#[derive(Debug)]
pub(crate) struct Queue<T> {
    jobs: VecDeque<Queued<T>>,
    capacity: usize,
    /// Per worker: the job it runs, if any.
    running: Vec<Option<Running>>,
    /// The expected run time of every queued job, summed.
    queued_work: Duration,
    /// Per route and cost class: [`CLASSES`] for each route, route by route.
    classes: Vec<Class>,
    discipline: Discipline,
    admission: Admission,
    standing: Standing,
    /// Jobs refused at the door: the latest each could have started to make its deadline,
    /// and its route and class.
    refused: VecDeque<(Instant, usize)>,
}

impl<T> Queue<T> {
    /// A queue of at most `capacity` jobs for `workers` workers and `routes` routes (indices
    /// past the last share the last), each with [`CLASSES`] cost classes.
    pub(crate) fn new(
        capacity: usize,
        workers: usize,
        routes: usize,
        (discipline, admission): (Discipline, Admission),
        now: Instant,
    ) -> Self {
        let class = Class {
            cost: RunTime::default(),
            margin: Margin::default(),
            limit: Limit::new(workers),
            running: 0,
            queued_work: Duration::ZERO,
            over_refused: 0,
            used: false,
        };
        Self {
            jobs: VecDeque::with_capacity(capacity),
            capacity,
            running: vec![None; workers.max(1)],
            queued_work: Duration::ZERO,
            classes: vec![class; routes.max(1) * CLASSES],
            discipline,
            admission,
            standing: Standing::new(now),
            refused: VecDeque::with_capacity(REFUSALS_KEPT),
        }
    }

    /// Where the state of `route`'s jobs of `class` is in [`classes`](Self::classes).
    fn slot(&self, (route, class): (usize, u8)) -> usize {
        let route = route.min(self.classes.len() / CLASSES - 1);
        route * CLASSES + usize::from(class).min(CLASSES - 1)
    }

    /// The expected run time of `route`'s jobs of `class`.
    #[cfg(test)]
    pub(crate) fn expected(&self, (route, class): (usize, u8)) -> Duration {
        self.classes[self.slot((route, class))].cost.expected()
    }

    /// What the statistics show of `route`: its one class in use, or the most cautious of the
    /// classes it uses (the longest expected run time, the widest margin, the lowest limit),
    /// and the over-refusals of all of them.
    pub(crate) fn view(&self, route: usize) -> RouteView {
        let first = self.slot((route, 0));
        let slots = first..first + CLASSES;
        let one = |slot: usize| {
            let r = &self.classes[slot];
            RouteView {
                expected: r.cost.expected(),
                margin_ns: r.margin.ns(),
                limit: self.limit(slot),
                over_refused: 0,
            }
        };
        let used = slots.clone().filter(|&slot| self.classes[slot].used);
        let cautious = used.map(one).reduce(|a, b| RouteView {
            expected: a.expected.max(b.expected),
            margin_ns: a.margin_ns.max(b.margin_ns),
            limit: a.limit.min(b.limit),
            over_refused: 0,
        });
        RouteView {
            over_refused: slots.map(|slot| self.classes[slot].over_refused).sum(),
            // No job has come yet: class 0, as it starts.
            ..cautious.unwrap_or_else(|| one(first))
        }
    }

    /// How many jobs of the class at `slot` may run at once.
    fn limit(&self, slot: usize) -> usize {
        match self.admission {
            Admission::Adaptive => self.classes[slot].limit.get(),
            Admission::Fixed => self.running.len(),
        }
    }

    /// Whether the queue is standing (served newest first, under adaptive LIFO).
    #[cfg(test)]
    fn is_standing(&self) -> bool {
        self.standing.standing
    }

    /// The wait a job of the class at `slot` let in now can expect: the work ahead of it
    /// spread over the workers, or its class's work spread over the jobs of it that may run
    /// at once, whichever is longer.
    fn expected_wait(&self, now: Instant, slot: usize) -> Duration {
        let free = self.running.iter().any(Option::is_none);
        let r = &self.classes[slot];
        let limit = self.limit(slot);
        if free && self.jobs.is_empty() && r.running < limit {
            return Duration::ZERO;
        }
        let left = |job: &Running| job.expected_end.saturating_duration_since(now);
        let running: Duration = self.running.iter().flatten().map(left).sum();
        // At most 4096 workers (the configuration's bound).
        let spread = (self.queued_work + running) / self.running.len() as u32;
        if r.running < limit && r.queued_work.is_zero() {
            return spread;
        }
        let own: Duration = self
            .running
            .iter()
            .flatten()
            .filter(|job| job.slot == slot)
            .map(left)
            .sum();
        spread.max((r.queued_work + own) / limit as u32)
    }

    /// Lets a job of `route` in cost class `class` in, or gives it back with the reason it
    /// was refused.
    pub(crate) fn admit(
        &mut self,
        now: Instant,
        (route, class): (usize, u8),
        deadline: Instant,
        item: T,
    ) -> Result<(), (T, Refused)> {
        let index = self.slot((route, class));
        let r = &mut self.classes[index];
        r.used = true;
        let expected = r.cost.expected();
        if self.jobs.len() >= self.capacity {
            self.remember_refusal(now, index, deadline);
            return Err((item, Refused::QueueFull));
        }
        let idle = self.jobs.is_empty() && self.running.iter().all(Option::is_none);
        let predicted_end = now + self.expected_wait(now, index) + expected;
        if !idle && self.past(now, index, predicted_end, deadline) {
            self.remember_refusal(now, index, deadline);
            return Err((item, Refused::ExpectedMiss));
        }
        self.queued_work += expected;
        self.classes[index].queued_work += expected;
        self.jobs.push_back(Queued {
            item,
            slot: index,
            deadline,
            enqueued: now,
            cost: expected,
            predicted_end,
        });
        Ok(())
    }

    /// Whether a job of the class at `index` predicted to end at `predicted_end` should be kept out
    /// as one that would miss `deadline`.
    fn past(&self, now: Instant, index: usize, predicted_end: Instant, deadline: Instant) -> bool {
        let r = &self.classes[index];
        match self.admission {
            // Open loop: the mean plus twice the deviation of the run time.
            Admission::Fixed => {
                predicted_end + r.cost.needed().saturating_sub(r.cost.expected()) > deadline
            }
            // Closed loop: what the errors of past predictions say to leave.
            Admission::Adaptive => {
                let margin = r.margin.ns();
                let magnitude = Duration::from_nanos(margin.unsigned_abs());
                let end = if margin >= 0 {
                    predicted_end + magnitude
                } else {
                    // A pessimistic prediction is pulled in, but never to less than the
                    // fastest run from now.
                    predicted_end
                        .checked_sub(magnitude)
                        .unwrap_or(now)
                        .max(now + r.cost.shortest())
                };
                end > deadline
            }
        }
    }

    /// Remembers a refusal at the door, to tell later whether it was needed.
    fn remember_refusal(&mut self, now: Instant, index: usize, deadline: Instant) {
        while self
            .refused
            .front()
            .is_some_and(|&(latest, _)| latest < now)
        {
            self.refused.pop_front();
        }
        if self.refused.len() == REFUSALS_KEPT {
            self.refused.pop_front();
        }
        let latest = deadline
            .checked_sub(self.classes[index].cost.expected())
            .unwrap_or(now);
        self.refused.push_back((latest, index));
    }

    /// The next job for `worker` (which has finished its last one), or `None` if there is
    /// none it may run. A job refused here does not occupy the worker: take again.
    pub(crate) fn take(&mut self, now: Instant, worker: usize) -> Option<Taken<T>> {
        // Under LIFO the oldest sink to the front: refuse them there as soon as they are
        // hopeless, not when their deadline comes.
        let front_hopeless = self.jobs.front().is_some_and(|job| self.hopeless(job, now));
        let lifo = self.discipline == Discipline::AdaptiveLifo && self.standing.standing;
        let at = if front_hopeless {
            Some(0)
        } else {
            self.next_runnable(lifo)
        };
        let Some(job) = at.and_then(|at| self.jobs.remove(at)) else {
            // Nothing it may run: whatever waited before, nothing waits for this worker now.
            self.standing.observe(now, Duration::ZERO);
            self.fell_idle(now);
            return None;
        };
        self.queued_work = self.queued_work.saturating_sub(job.cost);
        let r = &mut self.classes[job.slot];
        r.queued_work = r.queued_work.saturating_sub(job.cost);
        let waited = now.saturating_duration_since(job.enqueued);
        self.standing.observe(now, waited);
        if front_hopeless || self.hopeless(&job, now) {
            // Admitted, and missed: the end it would have had tells the prediction's error.
            let would_end = now + self.classes[job.slot].cost.expected();
            self.outcome(job.slot, job.predicted_end, would_end, false);
            return Some(Taken::Refuse {
                item: job.item,
                waited,
            });
        }
        let r = &mut self.classes[job.slot];
        r.running += 1;
        self.running[worker] = Some(Running {
            slot: job.slot,
            expected_end: now + r.cost.expected(),
            predicted_end: job.predicted_end,
            deadline: job.deadline,
        });
        Some(Taken::Run {
            item: job.item,
            route: job.slot / CLASSES,
            waited,
        })
    }

    /// Where the next job to run is: the oldest (or under LIFO the newest) whose route has
    /// room under its limit.
    fn next_runnable(&self, lifo: bool) -> Option<usize> {
        let room = |job: &Queued<T>| self.classes[job.slot].running < self.limit(job.slot);
        if lifo {
            self.jobs.iter().rposition(room)
        } else {
            self.jobs.iter().position(room)
        }
    }

    /// A worker found nothing to run at `now`: each job refused at the door that could still
    /// have started in time, on a route with room, was refused for nothing.
    fn fell_idle(&mut self, now: Instant) {
        for (latest, index) in std::mem::take(&mut self.refused) {
            if latest >= now && self.classes[index].running < self.limit(index) {
                let r = &mut self.classes[index];
                r.over_refused += 1;
                r.margin.over_refused();
            }
        }
    }

    /// `worker`'s job ended at `now`; `ran` says what its run tells of its route.
    pub(crate) fn finished(&mut self, worker: usize, now: Instant, ran: Ran) {
        let Some(job) = self.running[worker].take() else {
            return;
        };
        let full = self.classes[job.slot].running >= self.limit(job.slot);
        let r = &mut self.classes[job.slot];
        r.running -= 1;
        let expected = r.cost.expected();
        match ran {
            Ran::Whole(took, cpu) => {
                r.cost.record(took);
                if let Some(cpu) = cpu {
                    r.limit.observe(took, cpu, full);
                }
            }
            // Cut short: it would have taken at least this long. Only a longer run than
            // expected says anything; a shorter one is not a cost.
            Ran::CutShort(took) if took > expected => r.cost.record(took),
            Ran::CutShort(_) => {}
            // Cancelled before it started: by its client leaving, which says nothing of the
            // route or the host, or by its deadline passing as it was taken (a miss).
            Ran::Not if now <= job.deadline => return,
            Ran::Not => {}
        }
        // Cancelled while it ran: by its client leaving (an outcome of neither kind) or by
        // its deadline (a miss).
        if matches!(ran, Ran::CutShort(_)) && now <= job.deadline {
            return;
        }
        self.outcome(job.slot, job.predicted_end, now, now <= job.deadline);
    }

    /// A job of `route` in cost class `class`, counted as made when its worker finished it,
    /// reached its client after its deadline.
    pub(crate) fn delivered_late(&mut self, (route, class): (usize, u8)) {
        let index = self.slot((route, class));
        self.classes[index].margin.late_after_all();
    }

    /// An admitted job of the class at `index`, predicted to end at `predicted`, ended (or would have
    /// ended) at `ended`, making its deadline or not.
    fn outcome(&mut self, index: usize, predicted: Instant, ended: Instant, made: bool) {
        let error = if ended >= predicted {
            i64::try_from((ended - predicted).as_nanos()).unwrap_or(i64::MAX)
        } else {
            -i64::try_from((predicted - ended).as_nanos()).unwrap_or(i64::MAX)
        };
        self.classes[index].margin.outcome(error, made);
    }

    /// Whether `job`, started now, would end after its deadline even if it ran as fast as its
    /// route's fastest recent job.
    ///
    /// Unless even a job that waited not at all would have missed (its route's recent runs
    /// were all longer than the whole time it had): then, while no job of its route runs, it
    /// is run all the same if its deadline has not passed, as a probe. Otherwise such a route
    /// would be refused at the head forever, and never measured again.
    fn hopeless(&self, job: &Queued<T>, now: Instant) -> bool {
        let r = &self.classes[job.slot];
        let shortest = r.cost.shortest();
        if r.running == 0 && job.enqueued + shortest > job.deadline {
            return now >= job.deadline;
        }
        now + shortest > job.deadline
    }

    /// Teaches `route` that its jobs of `class` take `run` (for tests).
    #[cfg(test)]
    pub(crate) fn learn(&mut self, (route, class): (usize, u8), run: Duration) {
        let slot = self.slot((route, class));
        for _ in 0..50 {
            self.classes[slot].cost.record(run);
        }
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
        (
            Queue::new(capacity, workers, 2, (discipline, Admission::Adaptive), t0),
            t0,
        )
    }

    /// Teaches route 0 that its jobs take `run`.
    fn learn(q: &mut Queue<u32>, run: Duration) {
        q.learn((0, 0), run);
    }

    /// Worker 0's job ended at `at` after running `ran`.
    fn done(q: &mut Queue<u32>, at: Instant, ran: Duration) {
        q.finished(0, at, Ran::Whole(ran, None));
    }

    #[test]
    fn a_full_queue_refuses() {
        let (mut q, t0) = queue(2, 1, Discipline::Fifo);
        let far = t0 + 60 * 1000 * MS;
        assert!(q.admit(t0, (0, 0), far, 1).is_ok());
        assert!(q.admit(t0, (0, 0), far, 2).is_ok());
        assert_eq!(q.admit(t0, (0, 0), far, 3), Err((3, Refused::QueueFull)));
    }

    #[test]
    fn a_job_that_cannot_make_it_is_refused_at_the_door() {
        let (mut q, t0) = queue(100, 2, Discipline::Fifo);
        learn(&mut q, 2 * MS);
        let deadline = t0 + 5 * MS;
        // The work ahead spread over two workers: the fourth job waits 3 ms and ends at 5,
        // the fifth would wait 4 ms and end at 6.
        for i in 0..4 {
            assert!(q.admit(t0, (0, 0), deadline, i).is_ok(), "job {i}");
        }
        assert_eq!(
            q.admit(t0, (0, 0), deadline, 4),
            Err((4, Refused::ExpectedMiss))
        );
        // A later deadline fits.
        assert!(q.admit(t0, (0, 0), t0 + 7 * MS, 5).is_ok());
        // Another route, never measured, is expected to cost nothing but still waits.
        assert_eq!(
            q.admit(t0, (1, 0), t0 + 2 * MS, 6),
            Err((6, Refused::ExpectedMiss))
        );
    }

    #[test]
    fn a_mean_inflated_past_the_deadline_still_lets_jobs_run_and_come_down() {
        let (mut q, t0) = queue(100, 1, Discipline::Fifo);
        learn(&mut q, 2 * MS);
        // A few runs that waited for a CPU: the mean passes the 5 ms deadline.
        for _ in 0..20 {
            q.classes[0].cost.record(7 * MS);
        }
        assert!(q.expected((0, 0)) > 5 * MS, "{:?}", q.expected((0, 0)));
        let mut now = t0;
        for i in 0..100 {
            // An idle pool lets the job in, and a job with time for its fastest run starts.
            assert!(q.admit(now, (0, 0), now + 5 * MS, i).is_ok());
            assert!(matches!(q.take(now, 0), Some(Taken::Run { .. })), "job {i}");
            now += 2 * MS;
            done(&mut q, now, 2 * MS);
        }
        assert!(
            q.expected((0, 0)) < 2100 * MS / 1000,
            "{:?}",
            q.expected((0, 0))
        );
    }

    #[test]
    fn a_job_that_was_not_run_teaches_nothing() {
        let (mut q, _) = queue(100, 1, Discipline::Fifo);
        learn(&mut q, 2 * MS);
        // A job skipped (its client left) would otherwise read as a job that costs nothing.
        let (_, t0) = queue(1, 1, Discipline::Fifo);
        assert!(q.admit(t0, (0, 0), t0 + 100 * MS, 1).is_ok());
        assert!(matches!(q.take(t0, 0), Some(Taken::Run { item: 1, .. })));
        q.finished(0, t0, Ran::Not);
        assert_eq!(q.expected((0, 0)), 2 * MS);
    }

    #[test]
    fn the_wait_counts_what_is_left_of_running_jobs() {
        let (mut q, t0) = queue(100, 1, Discipline::Fifo);
        learn(&mut q, 4 * MS);
        assert!(q.admit(t0, (0, 0), t0 + 100 * MS, 1).is_ok());
        assert_eq!(q.expected_wait(t0, 0), 4 * MS);
        assert!(matches!(q.take(t0, 0), Some(Taken::Run { item: 1, .. })));
        assert_eq!(q.expected_wait(t0 + MS, 0), 3 * MS);
        done(&mut q, t0 + 4 * MS, 4 * MS);
        assert_eq!(q.expected_wait(t0 + 4 * MS, 0), Duration::ZERO);
    }

    #[test]
    fn an_idle_pool_lets_a_job_in_whatever_the_estimate() {
        let (mut q, t0) = queue(100, 1, Discipline::Fifo);
        learn(&mut q, 50 * MS);
        assert!(q.admit(t0, (0, 0), t0 + 5 * MS, 1).is_ok());
        // Not idle any more: the estimate applies.
        assert_eq!(
            q.admit(t0, (0, 0), t0 + 5 * MS, 2),
            Err((2, Refused::ExpectedMiss))
        );
    }

    #[test]
    fn a_job_that_can_no_longer_make_it_is_not_started() {
        let (mut q, t0) = queue(100, 1, Discipline::Fifo);
        learn(&mut q, 2 * MS);
        assert!(q.admit(t0, (0, 0), t0 + 10 * MS, 1).is_ok());
        assert!(q.admit(t0, (0, 0), t0 + 10 * MS, 2).is_ok());
        assert!(matches!(q.take(t0, 0), Some(Taken::Run { item: 1, .. })));
        done(&mut q, t0 + 2 * MS, 2 * MS);
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
            assert!(q.admit(now, (0, 0), far(now), i).is_ok());
            assert!(q.admit(now, (0, 0), far(now), 1000 + i).is_ok());
            assert!(matches!(q.take(now, 0), Some(Taken::Run { item, .. }) if item == i));
            done(&mut q, now, MS);
            now += MS;
            assert!(matches!(q.take(now, 0), Some(Taken::Run { item, .. }) if item == 1000 + i));
            done(&mut q, now, MS);
        }
        assert!(!q.is_standing());
        // Overload: every job waits 5 ms or more for an interval; the queue stands.
        for i in 0..10 {
            assert!(q.admit(now, (0, 0), far(now), 2000 + i).is_ok());
        }
        now += 5 * MS;
        let mut order = Vec::new();
        let mut newest = 3000;
        while now < t0 + 300 * MS + 3 * INTERVAL {
            newest += 1;
            assert!(q.admit(now, (0, 0), far(now), newest).is_ok());
            now += 5 * MS;
            if let Some(Taken::Run { item, .. }) = q.take(now, 0) {
                order.push(item);
            }
            done(&mut q, now, MS);
        }
        assert!(q.is_standing());
        // Newest first: the job just let in is served while the older wait.
        assert_eq!(order.last(), Some(&newest));
        // Drained: the shortest wait falls to nothing, and the order is FIFO again.
        while q.take(now, 0).is_some() {
            done(&mut q, now, MS);
        }
        now += INTERVAL;
        assert_eq!(q.take(now, 0), None);
        assert!(!q.is_standing());
    }

    #[test]
    fn under_lifo_the_oldest_are_refused_once_hopeless() {
        let (mut q, t0) = queue(100, 1, Discipline::AdaptiveLifo);
        learn(&mut q, 2 * MS);
        assert!(q.admit(t0, (0, 0), t0 + 30 * MS, 1).is_ok());
        assert!(q.admit(t0, (0, 0), t0 + 30 * MS, 2).is_ok());
        assert!(q.admit(t0, (0, 0), t0 + 7 * MS, 3).is_ok());
        q.standing.standing = true;
        // At 6 ms the newest (3) cannot end by 7 ms: refused; the newest that can make it
        // goes first...
        let now = t0 + 6 * MS;
        match q.take(now, 0) {
            Some(Taken::Refuse { item: 3, .. }) => {}
            other => panic!("{other:?}"),
        }
        assert!(matches!(q.take(now, 0), Some(Taken::Run { item: 2, .. })));
        done(&mut q, t0 + 2 * MS, 2 * MS);
        // ...and an old job that became hopeless at the front is refused before any other.
        assert!(q.admit(now, (0, 0), now + 30 * MS, 4).is_ok());
        let late = t0 + 29 * MS;
        assert!(matches!(
            q.take(late, 0),
            Some(Taken::Refuse { item: 1, .. })
        ));
    }

    /// The route: large jobs of 20 ms and small ones of 2 ms with a 10 ms deadline.
    const SMALL: u8 = 0;
    const LARGE: u8 = 1;

    /// A queue of two workers whose route has learnt that its `large` jobs take 20 ms, with
    /// one of them running (so the pool is not idle, and the estimates apply).
    fn large_running(large: u8) -> (Queue<u32>, Instant) {
        let (mut q, t0) = queue(100, 2, Discipline::Fifo);
        q.learn((0, large), 20 * MS);
        assert!(q.admit(t0, (0, large), t0 + 100 * MS, 1).is_ok());
        assert!(matches!(q.take(t0, 0), Some(Taken::Run { item: 1, .. })));
        (q, t0)
    }

    #[test]
    fn without_classes_small_jobs_are_judged_by_the_large_ones() {
        let (mut q, t0) = large_running(0);
        // Expected to take 20 ms like the job before it: refused, though it needs 2 ms.
        assert_eq!(
            q.admit(t0, (0, 0), t0 + 10 * MS, 2),
            Err((2, Refused::ExpectedMiss))
        );
    }

    #[test]
    fn a_cost_class_is_estimated_apart_from_the_route_s_others() {
        let (mut q, t0) = large_running(LARGE);
        // Its class has never run: expected to cost nothing, let in, and started at once.
        assert!(q.admit(t0, (0, SMALL), t0 + 10 * MS, 2).is_ok());
        assert!(matches!(q.take(t0, 1), Some(Taken::Run { item: 2, .. })));
        q.finished(1, t0 + 2 * MS, Ran::Whole(2 * MS, None));
        assert_eq!(q.expected((0, SMALL)), 2 * MS);
        assert_eq!(q.expected((0, LARGE)), 20 * MS);
        // Measured at 2 ms, the next ones fit their 10 ms too, while the large one runs.
        let mut now = t0 + 2 * MS;
        for i in 3..6 {
            assert!(
                q.admit(now, (0, SMALL), now + 10 * MS, i).is_ok(),
                "job {i}"
            );
            assert!(matches!(q.take(now, 1), Some(Taken::Run { .. })), "job {i}");
            now += 2 * MS;
            q.finished(1, now, Ran::Whole(2 * MS, None));
        }
        // A large job with the same deadline is still refused.
        assert_eq!(
            q.admit(now, (0, LARGE), now + 10 * MS, 6),
            Err((6, Refused::ExpectedMiss))
        );
    }

    #[test]
    fn a_route_shows_its_one_class_or_the_most_cautious_of_those_it_uses() {
        let (mut q, t0) = queue(100, 2, Discipline::Fifo);
        q.learn((0, SMALL), 2 * MS);
        assert_eq!(q.view(0).expected, 2 * MS);
        // Taught but unused, a class does not show.
        q.learn((0, LARGE), 20 * MS);
        assert_eq!(q.view(0).expected, 2 * MS);
        assert!(q.admit(t0, (0, LARGE), t0 + 100 * MS, 1).is_ok());
        assert_eq!(q.view(0).expected, 20 * MS);
        // Classes past the last share the last; a route's classes are its own.
        assert_eq!(q.expected((0, 200)), q.expected((0, Job::COST_CLASSES - 1)));
        assert_eq!(q.expected((1, LARGE)), Duration::ZERO);
    }
}
