//! The pool's admission driven by a simulated clock: workers, arrivals at a steady rate and
//! run times chosen by each test, so that the closed loop (the margin and the limit) is seen
//! converging, recovering after a stall, correcting a wrong estimate, and never refusing
//! everything, in milliseconds of test time.

use std::time::{Duration, Instant};

use super::{
    admission::CpuUse,
    queue::{Queue, Ran, Taken},
};
use crate::{Admission, Discipline};

const MS: Duration = Duration::from_millis(1);
const STEP: Duration = Duration::from_micros(10);

/// What happened in one stretch of simulated time.
#[derive(Debug, Default, Clone, Copy)]
struct Window {
    offered: u32,
    admitted: u32,
    refused: u32,
    made: u32,
    missed: u32,
}

impl Window {
    /// Share of the jobs let in that missed their deadline.
    fn missed_share(&self) -> f64 {
        f64::from(self.missed) / f64::from((self.made + self.missed).max(1))
    }
}

/// A job on a simulated worker: when it ends, how long it ran, its deadline, what its thread
/// did, and how long after it ends the worker is back for the next (woken late).
type Busy = (Instant, Duration, Instant, CpuUse, Duration);

/// What a simulated job does: how long it runs, how long of that its thread waits for a
/// CPU, and how late its worker is back for the next job.
type Job = (Duration, Duration, Duration);

struct Sim {
    q: Queue<u32>,
    workers: Vec<Option<Busy>>,
    now: Instant,
    next_arrival: Instant,
}

impl Sim {
    fn new(workers: usize, admission: Admission) -> Self {
        Self::with(workers, Discipline::AdaptiveLifo, admission)
    }

    fn with(workers: usize, discipline: Discipline, admission: Admission) -> Self {
        let now = Instant::now();
        Self {
            q: Queue::new(1024, workers, 1, (discipline, admission), now),
            workers: vec![None; workers],
            now,
            next_arrival: now,
        }
    }

    /// Runs for `span`, a job arriving every `every` with `deadline`; `job` says how long a
    /// job started at a given time takes, and how long of that its thread waits for a CPU.
    fn run(
        &mut self,
        span: Duration,
        every: Duration,
        deadline: Duration,
        job: &mut dyn FnMut(Instant, usize) -> Job,
    ) -> Window {
        let mut w = Window::default();
        let end = self.now + span;
        while self.now < end {
            let now = self.now;
            for (i, slot) in self.workers.iter_mut().enumerate() {
                if let Some((ends, ran, due, cpu, gap)) = *slot {
                    if ends <= now && !ran.is_zero() {
                        if now <= due {
                            w.made += 1;
                        } else {
                            w.missed += 1;
                        }
                        // The job is over; the worker is back once the gap has passed.
                        *slot = Some((now + gap, Duration::ZERO, due, cpu, gap));
                        self.q.finished(i, now, Ran::Whole(ran, Some(cpu)));
                    }
                    if ends <= now && ran.is_zero() {
                        *slot = None;
                    }
                }
            }
            while self.next_arrival <= now {
                w.offered += 1;
                match self.q.admit(now, (0, 0), now + deadline, w.offered) {
                    Ok(()) => w.admitted += 1,
                    Err(_) => w.refused += 1,
                }
                self.next_arrival += every;
            }
            let mut running = self
                .workers
                .iter()
                .flatten()
                .filter(|busy| !busy.1.is_zero())
                .count();
            for i in 0..self.workers.len() {
                if self.workers[i].is_some() {
                    continue;
                }
                loop {
                    match self.q.take(now, i) {
                        Some(Taken::Run { .. }) => {
                            let (ran, waiting, gap) = job(now, running + 1);
                            let cpu = CpuUse {
                                on_cpu: ran.saturating_sub(waiting),
                                waiting,
                            };
                            self.workers[i] = Some((now + ran, ran, now + deadline, cpu, gap));
                            running += 1;
                            break;
                        }
                        Some(Taken::Refuse { .. }) => w.missed += 1,
                        None => break,
                    }
                }
            }
            self.now += STEP;
        }
        w
    }

    fn margin(&self) -> Duration {
        Duration::from_nanos(self.q.view(0).margin_ns.max(0).unsigned_abs())
    }
}

/// A deterministic uniform spread in `[0, 1)` from a counter.
fn spread(n: &mut u64) -> f64 {
    *n = n
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    (*n >> 11) as f64 / (1u64 << 53) as f64
}

/// Sleep jobs of 2 ms, their thread woken up to 1 ms late by a neighbour at the end of the
/// sleep (in the run time the worker measures) and, as often, before its next job (outside
/// it).
fn noisy_sleep(seed: u64) -> impl FnMut(Instant, usize) -> Job {
    let mut n = seed;
    move |_, _| {
        let late = MS.mul_f64(spread(&mut n) * spread(&mut n));
        let gap = MS.mul_f64(spread(&mut n) * spread(&mut n));
        (2 * MS + late, late, gap)
    }
}

#[test]
fn under_noise_it_converges_to_few_misses_and_most_of_capacity() {
    let mut sim = Sim::new(1, Admission::Adaptive);
    let mut job = noisy_sleep(7);
    // Warm up, then measure: one job every 1.25 ms, twice what the worker can do.
    sim.run(1000 * MS, 1250 * MS / 1000, 5 * MS, &mut job);
    let w = sim.run(2000 * MS, 1250 * MS / 1000, 5 * MS, &mut job);
    // Capacity: 2 s of 2.5 ms jobs on average.
    let capacity = 800.0;
    assert!(w.missed_share() <= 0.02, "{w:?}");
    assert!(f64::from(w.made) >= 0.85 * capacity, "{w:?}");
    // The margin covers the noise, which the run time alone does not.
    assert!(sim.margin() > Duration::ZERO, "{:?}", sim.margin());
}

#[test]
fn the_closed_loop_misses_less_than_the_fixed_margin_under_noise() {
    let window = |admission| {
        let mut sim = Sim::new(1, admission);
        let mut job = noisy_sleep(11);
        sim.run(1000 * MS, 1250 * MS / 1000, 5 * MS, &mut job);
        sim.run(2000 * MS, 1250 * MS / 1000, 5 * MS, &mut job)
    };
    let (fixed, adaptive) = (window(Admission::Fixed), window(Admission::Adaptive));
    assert!(
        adaptive.missed_share() < fixed.missed_share(),
        "fixed {fixed:?}, adaptive {adaptive:?}"
    );
    assert!(adaptive.made as f64 >= 0.95 * fixed.made as f64);
}

/// Two workers of steady 2 ms jobs at twice their capacity, through a 100 ms stall in which
/// every job takes 20 ms; returns the second after the stall, once 500 ms have passed.
fn stall(discipline: Discipline) -> (Window, Duration) {
    let mut sim = Sim::with(2, discipline, Admission::Adaptive);
    let steady = |_: Instant, _: usize| (2 * MS, Duration::ZERO, Duration::ZERO);
    let every = 500 * MS / 1000;
    sim.run(500 * MS, every, 5 * MS, &mut { steady });
    let stall = sim.run(100 * MS, every, 5 * MS, &mut |_, _| {
        (20 * MS, 18 * MS, Duration::ZERO)
    });
    assert!(stall.missed > 0, "{stall:?}");
    sim.run(500 * MS, every, 5 * MS, &mut { steady });
    let after = sim.run(1000 * MS, every, 5 * MS, &mut { steady });
    (after, sim.margin())
}

#[test]
fn it_recovers_after_a_stall() {
    // Within half a second the margin is small again and the workers make their capacity
    // (2 workers, 2 ms jobs: 1,000 a second).
    let (after, margin) = stall(Discipline::Fifo);
    assert!(margin < MS, "{margin:?}");
    assert!(after.made >= 950, "{after:?}");
    // The margin is set to let about 1 % miss.
    assert!(after.missed_share() <= 0.02, "{after:?}");
    // Adaptive LIFO recovers as well, but misses a little more: its queue of 1-3 ms waits
    // counts as standing, and a job served newest first overtakes older ones, some of which
    // are then refused at the head.
    let (after, margin) = stall(Discipline::AdaptiveLifo);
    assert!(margin < 2 * MS, "{margin:?}");
    assert!(after.made >= 950, "{after:?}");
    assert!(after.missed_share() <= 0.05, "{after:?}");
}

#[test]
fn it_never_refuses_everything_forever() {
    let mut sim = Sim::new(1, Admission::Adaptive);
    // Every job takes ten times its deadline: all miss, whatever the margin.
    let hopeless = |_: Instant, _: usize| (50 * MS, Duration::ZERO, Duration::ZERO);
    for _ in 0..10 {
        let w = sim.run(100 * MS, MS, 5 * MS, &mut { hopeless });
        // An idle pool still lets a job in, so outcomes keep coming and a change in the
        // host would be seen.
        assert!(w.admitted > 0, "{w:?}");
    }
    // The jobs become fast again: admission follows.
    let fast = |_: Instant, _: usize| (MS, Duration::ZERO, Duration::ZERO);
    sim.run(500 * MS, MS, 5 * MS, &mut { fast });
    let w = sim.run(1000 * MS, MS, 5 * MS, &mut { fast });
    assert!(w.made >= 950, "{w:?}");
}

#[test]
fn cpu_bound_jobs_run_fewer_at_once_and_make_their_deadline() {
    // Four workers on one core, 1 ms of CPU a job: n at once take n ms each.
    let shared_core = |_: Instant, n: usize| {
        let n = n as u32;
        (n * MS, (n - 1) * MS, Duration::ZERO)
    };
    let every = 500 * MS / 1000;
    let deadline = 3 * MS;
    let run = |admission| {
        let mut sim = Sim::new(4, admission);
        sim.run(500 * MS, every, deadline, &mut { shared_core });
        let w = sim.run(1000 * MS, every, deadline, &mut { shared_core });
        (w, sim.q.view(0).limit)
    };
    let (adaptive, limit) = run(Admission::Adaptive);
    assert!(limit <= 2, "{limit}");
    assert!(adaptive.missed_share() <= 0.02, "{adaptive:?}");
    // The core does 1,000 jobs a second; most of them are made.
    assert!(adaptive.made >= 800, "{adaptive:?}");
    let (fixed, _) = run(Admission::Fixed);
    assert!(
        adaptive.made > fixed.made,
        "fixed {fixed:?}, adaptive {adaptive:?}"
    );
}

/// One route on two workers, with the two kinds of job: a large one (20 ms, deadline
/// 100 ms) every 20 ms, so that one always runs, and after the first ten of them a small one
/// (2 ms, deadline 10 ms) every 4 ms, between the large ones' arrivals. They are filed under two
/// cost classes or (`classes` false) both in class 0. Returns what became of the small jobs
/// over the next second.
fn mixed(classes: bool) -> Window {
    const LARGE: u8 = 1;
    let t0 = Instant::now();
    let mut q = Queue::new(1024, 2, 1, (Discipline::Fifo, Admission::Adaptive), t0);
    // Per worker: when its job ends, how long it runs, its deadline, and whether it is small.
    let mut workers: [Option<(Instant, Duration, Instant, bool)>; 2] = [None; 2];
    let (mut large, mut small_at) = (t0, t0 + 202 * MS);
    let mut small = Window::default();
    let mut now = t0;
    while now < t0 + 1200 * MS {
        for (i, worker) in workers.iter_mut().enumerate() {
            let Some((ends, ran, due, is_small)) = *worker else {
                continue;
            };
            if ends > now {
                continue;
            }
            if is_small && now <= due {
                small.made += 1;
            } else if is_small {
                small.missed += 1;
            }
            q.finished(i, now, Ran::Whole(ran, None));
            *worker = None;
        }
        if large <= now {
            let (class, due) = (if classes { LARGE } else { 0 }, now + 100 * MS);
            // The pool is idle as each arrives (its predecessor has just ended): let in.
            assert!(q.admit(now, (0, class), due, (false, due)).is_ok());
            large += 20 * MS;
        }
        if small_at <= now {
            small.offered += 1;
            let due = now + 10 * MS;
            match q.admit(now, (0, 0), due, (true, due)) {
                Ok(()) => small.admitted += 1,
                Err(_) => small.refused += 1,
            }
            small_at += 4 * MS;
        }
        for (i, worker) in workers.iter_mut().enumerate() {
            while worker.is_none() {
                match q.take(now, i) {
                    Some(Taken::Run {
                        item: (is_small, due),
                        ..
                    }) => {
                        let ran = if is_small { 2 * MS } else { 20 * MS };
                        *worker = Some((now + ran, ran, due, is_small));
                    }
                    Some(Taken::Refuse {
                        item: (is_small, _),
                        ..
                    }) => small.missed += u32::from(is_small),
                    None => break,
                }
            }
        }
        now += STEP;
    }
    small
}

#[test]
fn small_jobs_in_their_own_class_are_not_refused_for_the_large_ones() {
    // In one class with the large ones, every small job is expected to take 20 ms and
    // refused: none runs, so the estimate never learns otherwise (it would if one came to an
    // idle pool, but a large job always runs).
    let together = mixed(false);
    assert_eq!(together.offered, 250, "{together:?}");
    assert_eq!(together.refused, together.offered, "{together:?}");
    // In a class of their own, each is let in and makes its deadline on the other worker
    // (all but the last, still running at the end).
    let alone = mixed(true);
    assert_eq!(alone.admitted, 250, "{alone:?}");
    assert_eq!((alone.made, alone.missed), (249, 0), "{alone:?}");
}
