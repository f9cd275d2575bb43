//! The open-loop schedule: when each request is due, whatever became of the earlier ones.
//!
//! Request number `g` of the whole run (over every thread) is due `g / rate` seconds after
//! the start (with a [burst](Schedule::with_burst), at another rate for a stretch of the
//! run) and goes to connection `g mod connections`; connection `c`'s `k`-th request is
//! therefore number `k * connections + c`. Times are computed from the index, never summed,
//! so they do not drift however long the run. The [`Timeline`] holds each connection's next
//! due time and hands out, in order, every request whose time has come: after a stall, all the
//! requests it missed at once (they are late, and their latency counts from their due time).
//!
//! No clock is read here: the caller passes nanoseconds since the start, so the schedule is
//! tested with a clock of its own.

use std::{cmp::Reverse, collections::BinaryHeap};

/// When requests are due.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Schedule {
    /// Requests per second, over every connection of the run.
    rate: f64,
    /// Connections of the run (over every thread).
    connections: u64,
    /// Nanoseconds after the start at which scheduling stops.
    end_ns: u64,
    burst: Option<Stretch>,
}

/// A stretch of the run at another rate.
#[derive(Clone, Copy, Debug)]
struct Stretch {
    /// From and to, ns after the start.
    from: f64,
    to: f64,
    rate: f64,
    /// Requests due before it, and during it (fractional: the rates need not divide).
    before: f64,
    during: f64,
}

impl Schedule {
    pub(crate) fn new(rate: f64, connections: usize, end_ns: u64) -> Self {
        Self {
            rate,
            connections: connections as u64,
            end_ns,
            burst: None,
        }
    }

    /// The same schedule, at `rate` from `from_ns` to `to_ns` after the start.
    pub(crate) fn with_burst(self, from_ns: u64, to_ns: u64, rate: f64) -> Self {
        let (from, to) = (from_ns as f64, to_ns.max(from_ns) as f64);
        let burst = Stretch {
            from,
            to,
            rate,
            before: from * self.rate / 1e9,
            during: (to - from) * rate / 1e9,
        };
        Self {
            burst: Some(burst),
            ..self
        }
    }

    /// Nanoseconds after the start at which connection `conn`'s `k`-th request is due.
    pub(crate) fn due(&self, conn: u64, k: u64) -> u64 {
        let global = (k * self.connections + conn) as f64;
        let at = match self.burst {
            Some(b) if global >= b.before + b.during => {
                b.to + (global - b.before - b.during) * 1e9 / self.rate
            }
            Some(b) if global >= b.before => b.from + (global - b.before) * 1e9 / b.rate,
            _ => global * 1e9 / self.rate,
        };
        at as u64
    }

    /// The due time of that request, if it falls before the end.
    fn due_before_end(&self, conn: u64, k: u64) -> Option<u64> {
        Some(self.due(conn, k)).filter(|&at| at < self.end_ns)
    }
}

/// Each local connection's next due request, earliest first.
#[derive(Debug)]
pub(crate) struct Timeline {
    schedule: Schedule,
    /// The global index of each local connection.
    globals: Vec<u64>,
    /// The index (`k`) of each local connection's next request.
    next: Vec<u64>,
    /// (due ns, local connection) of each connection's next request.
    heap: BinaryHeap<Reverse<(u64, usize)>>,
}

/// A request whose time has come.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Due {
    /// The local connection it goes to.
    pub(crate) conn: usize,
    /// Nanoseconds after the start at which it was due.
    pub(crate) at: u64,
}

impl Timeline {
    /// A timeline for the local connections whose global indices are `globals`.
    pub(crate) fn new(schedule: Schedule, globals: &[u64]) -> Self {
        let mut heap = BinaryHeap::with_capacity(globals.len());
        for (conn, &global) in globals.iter().enumerate() {
            if let Some(at) = schedule.due_before_end(global, 0) {
                heap.push(Reverse((at, conn)));
            }
        }
        Self {
            schedule,
            globals: globals.to_vec(),
            next: vec![0; globals.len()],
            heap,
        }
    }

    /// The schedule this timeline follows.
    pub(crate) fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    /// The time of the next request due, if any is left.
    pub(crate) fn next_at(&self) -> Option<u64> {
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    /// The next request due by `now_ns`, if any; the connection's following one takes its
    /// place.
    pub(crate) fn pop_due(&mut self, now_ns: u64) -> Option<Due> {
        let &Reverse((at, conn)) = self.heap.peek()?;
        if at > now_ns {
            return None;
        }
        self.heap.pop();
        self.next[conn] += 1;
        if let Some(next) = self
            .schedule
            .due_before_end(self.globals[conn], self.next[conn])
        {
            self.heap.push(Reverse((next, conn)));
        }
        Some(Due { conn, at })
    }

    /// Schedules nothing more (the run is over).
    pub(crate) fn stop(&mut self) {
        self.heap.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_evenly_spaced_over_all_connections() {
        // 1,000 req/s over 4 connections: one every millisecond, connections in turn.
        let schedule = Schedule::new(1000.0, 4, u64::MAX);
        let mut timeline = Timeline::new(schedule, &[0, 1, 2, 3]);
        for n in 0..1000u64 {
            let due = timeline.pop_due(u64::MAX).expect("a request");
            assert_eq!(due.at, n * 1_000_000, "request {n}");
            assert_eq!(due.conn as u64, n % 4, "request {n}");
        }
    }

    #[test]
    fn a_million_requests_do_not_drift() {
        let rate = 30_000.0;
        let schedule = Schedule::new(rate, 7, u64::MAX);
        let mut timeline = Timeline::new(schedule, &[0, 1, 2, 3, 4, 5, 6]);
        let mut last = 0;
        for n in 0..1_000_000u64 {
            let due = timeline.pop_due(u64::MAX).expect("a request");
            assert!(due.at >= last, "out of order at {n}");
            last = due.at;
        }
        // The millionth is due at 1e6 / rate seconds, to the nanosecond (no error summed).
        let exact = (999_999.0 * 1e9 / rate) as u64;
        assert!(last.abs_diff(exact) <= 1, "{last} vs {exact}");
    }

    #[test]
    fn a_stall_releases_every_missed_request_at_once_in_order() {
        let schedule = Schedule::new(1000.0, 1, u64::MAX);
        let mut timeline = Timeline::new(schedule, &[0]);
        assert_eq!(timeline.pop_due(0), Some(Due { conn: 0, at: 0 }));
        assert_eq!(timeline.pop_due(999_999), None, "not due yet");
        // The caller stalled for 10 ms: the ten requests it missed are due now, oldest first,
        // each with its own due time.
        let missed: Vec<u64> = std::iter::from_fn(|| timeline.pop_due(10_000_000))
            .map(|d| d.at)
            .collect();
        assert_eq!(missed, (1..=10).map(|k| k * 1_000_000).collect::<Vec<_>>());
        assert_eq!(timeline.next_at(), Some(11_000_000));
    }

    #[test]
    fn a_burst_runs_at_its_own_rate_then_the_base_rate_resumes() {
        // 1,000 req/s, 5,000 req/s from 10 ms to 20 ms, over 2 connections.
        let schedule =
            Schedule::new(1000.0, 2, 40_000_000).with_burst(10_000_000, 20_000_000, 5000.0);
        let mut timeline = Timeline::new(schedule, &[0, 1]);
        let due: Vec<u64> = std::iter::from_fn(|| timeline.pop_due(u64::MAX))
            .map(|d| d.at)
            .collect();
        let count = |from: u64, to: u64| due.iter().filter(|&&at| at >= from && at < to).count();
        let ms = 1_000_000;
        assert_eq!(count(0, 10 * ms), 10, "before: 1 per ms");
        assert_eq!(count(10 * ms, 20 * ms), 50, "during: 5 per ms");
        assert_eq!(count(20 * ms, 40 * ms), 20, "after: 1 per ms again");
        assert!(due.windows(2).all(|w| w[0] <= w[1]), "in order");
        assert_eq!(due[10], 10 * ms);
        assert_eq!(due[60], 20 * ms);
    }

    #[test]
    fn a_thread_gets_only_its_own_connections() {
        // Connections 1 and 3 of 4 on this thread: requests 1, 3, 5, 7, …
        let schedule = Schedule::new(1000.0, 4, 8_000_000);
        let mut timeline = Timeline::new(schedule, &[1, 3]);
        let due: Vec<(usize, u64)> = std::iter::from_fn(|| timeline.pop_due(u64::MAX))
            .map(|d| (d.conn, d.at / 1_000_000))
            .collect();
        assert_eq!(
            due,
            [(0, 1), (1, 3), (0, 5), (1, 7)],
            "and none past the end"
        );
    }
}
