//! How the server's threads are set up to run: CPU placement (`Config::pin_cpus`): reactor *i*
//! on CPU *i* of the CPUs the process may use, the workers on the CPUs left over; and timers
//! that ring on time.

use std::num::NonZeroU64;

use rustix::thread::{CpuSet, sched_getaffinity, sched_setaffinity, set_current_timer_slack};

/// Makes the calling thread's timed waits end on time: the kernel lets a timed wait of an
/// ordinary thread (a futex, a poll timeout; not a `timerfd`, which the reactor's alarm is)
/// end up to its "timer slack" late, 50 µs by default, so that wake-ups can be merged. A
/// worker's timed wait is a job's run time (`ctx.sleep`): a nanosecond of slack instead.
/// Measured: `/slow?ms=2` ran 2.091 ms on average with the default, 2.052 ms with this. Best
/// effort: an error leaves the default.
pub(crate) fn tight_timers() {
    let _ = set_current_timer_slack(NonZeroU64::new(1));
}

/// Where each thread goes, decided once at start from the process's allowed CPUs.
#[derive(Clone, Debug, Default)]
pub(crate) struct Placement {
    /// One CPU per reactor, in order (empty: no pinning).
    reactors: Vec<usize>,
    /// The CPUs the workers share (empty: not pinned).
    workers: Vec<usize>,
}

impl Placement {
    /// The placement for `reactors` reactors on the CPUs this process may use; empty when
    /// `pin` is off or the CPUs cannot be read.
    pub(crate) fn new(pin: bool, reactors: usize) -> Self {
        if !pin {
            return Self::default();
        }
        let Ok(allowed) = sched_getaffinity(None) else {
            return Self::default();
        };
        let cpus: Vec<usize> = (0..CpuSet::MAX_CPU)
            .filter(|&c| allowed.is_set(c))
            .collect();
        Self::of(&cpus, reactors)
    }

    /// The placement for `reactors` reactors on `cpus`: one each in turn (wrapping round
    /// when there are more reactors than CPUs), and the rest for the workers.
    fn of(cpus: &[usize], reactors: usize) -> Self {
        if cpus.is_empty() {
            return Self::default();
        }
        Self {
            reactors: (0..reactors).map(|i| cpus[i % cpus.len()]).collect(),
            workers: cpus.get(reactors..).unwrap_or_default().to_vec(),
        }
    }

    /// Sets up the calling thread as reactor `index`: tight timers, and pinned if placement
    /// is on.
    pub(crate) fn enter_reactor(&self, index: usize) {
        tight_timers();
        if let Some(&cpu) = self.reactors.get(index) {
            pin(&[cpu]);
        }
    }

    /// Sets up the calling thread as a worker: tight timers, and pinned if there are CPUs
    /// left for workers.
    pub(crate) fn enter_worker(&self) {
        tight_timers();
        if !self.workers.is_empty() {
            pin(&self.workers);
        }
    }
}

fn pin(cpus: &[usize]) {
    let mut set = CpuSet::new();
    for &cpu in cpus {
        set.set(cpu);
    }
    // Best effort: a thread that cannot be pinned runs where the scheduler puts it.
    let _ = sched_setaffinity(None, &set);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tight_timers_leave_a_nanosecond_of_slack() {
        std::thread::spawn(|| {
            tight_timers();
            assert_eq!(rustix::thread::current_timer_slack().unwrap(), 1);
        })
        .join()
        .unwrap();
    }

    #[test]
    fn reactors_take_a_cpu_each_and_workers_the_rest() {
        let p = Placement::of(&[2, 3, 5, 7], 2);
        assert_eq!((p.reactors, p.workers), (vec![2, 3], vec![5, 7]));
        // As many reactors as CPUs: workers are not pinned.
        let p = Placement::of(&[0, 1], 2);
        assert_eq!((p.reactors, p.workers), (vec![0, 1], vec![]));
        // More reactors than CPUs: round the CPUs again.
        let p = Placement::of(&[0, 1], 3);
        assert_eq!(p.reactors, vec![0, 1, 0]);
        assert!(Placement::of(&[], 2).reactors.is_empty());
    }

    #[test]
    fn a_pinned_thread_runs_on_its_cpu() {
        let allowed = sched_getaffinity(None).unwrap();
        let first = (0..CpuSet::MAX_CPU).find(|&c| allowed.is_set(c)).unwrap();
        std::thread::spawn(move || {
            Placement::of(&[first], 1).enter_reactor(0);
            let now = sched_getaffinity(None).unwrap();
            let set: Vec<usize> = (0..CpuSet::MAX_CPU).filter(|&c| now.is_set(c)).collect();
            assert_eq!(set, [first]);
        })
        .join()
        .unwrap();
    }
}
