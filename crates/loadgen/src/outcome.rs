//! The accounting: what one generator thread counts, and how threads add up into a
//! [`Report`]. Every scheduled request in the measured window ends as exactly one of
//! answered, failed (by kind) or unsent.

use std::{collections::BTreeMap, time::Duration};

use hdrhistogram::Histogram;

use crate::report::{ErrorCounts, Report, RequestCounts, micros, new_histogram};

/// Why a request got no response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorKind {
    /// Its connection could not be opened.
    Connect,
    /// Its connection closed (or reset) first.
    Closed,
    /// No response within the timeout.
    Timeout,
    /// The response could not be parsed (or nobody asked for it).
    Malformed,
}

/// One thread's results, added into the report by [`Outcome::add_to`].
#[derive(Debug)]
pub(crate) struct Outcome {
    pub(crate) corrected: Histogram<u64>,
    /// `corrected`, of the `2xx` responses only.
    pub(crate) success: Histogram<u64>,
    /// `corrected`, of the `503` responses only.
    pub(crate) refused: Histogram<u64>,
    pub(crate) uncorrected: Histogram<u64>,
    pub(crate) schedule_lag: Histogram<u64>,
    /// What became of this thread's requests, counted as the report counts them.
    pub(crate) requests: RequestCounts,
    pub(crate) errors: ErrorCounts,
    pub(crate) statuses: BTreeMap<u16, u64>,
    pub(crate) cpu: Duration,
    pub(crate) wall: Duration,
    /// Per window of the measured time (by scheduled time), when windows are asked for.
    pub(crate) windows: Windows,
    /// Time the event loop spent waiting (in `poll` or spinning towards a send time) with
    /// nothing to do.
    pub(crate) idle: Duration,
}

impl Outcome {
    pub(crate) fn new() -> Self {
        Self {
            corrected: new_histogram(),
            success: new_histogram(),
            refused: new_histogram(),
            uncorrected: new_histogram(),
            schedule_lag: new_histogram(),
            requests: RequestCounts::default(),
            errors: ErrorCounts::default(),
            statuses: BTreeMap::new(),
            windows: Windows::default(),
            cpu: Duration::ZERO,
            wall: Duration::ZERO,
            idle: Duration::ZERO,
        }
    }

    /// A request of the measured window came due, `offset` after the window began.
    pub(crate) fn offered(&mut self, offset: Duration) {
        self.requests.scheduled += 1;
        if let Some(window) = self.windows.at(offset) {
            window.offered += 1;
        }
    }

    /// A response arrived: its status, its latency from its scheduled time (corrected for
    /// coordinated omission) and from when it was actually sent, and when it was due (`offset`
    /// after the measured window began).
    pub(crate) fn answered(
        &mut self,
        status: u16,
        corrected: Duration,
        uncorrected: Duration,
        offset: Duration,
    ) {
        let good = (200..300).contains(&status)
            && self
                .windows
                .deadline
                .is_none_or(|deadline| corrected <= deadline);
        if good && let Some(window) = self.windows.at(offset) {
            window.good += 1;
        }
        self.requests.completed += 1;
        self.corrected.saturating_record(micros(corrected));
        match status {
            200..=299 => self.success.saturating_record(micros(corrected)),
            503 => self.refused.saturating_record(micros(corrected)),
            _ => {}
        }
        self.uncorrected.saturating_record(micros(uncorrected));
        *self.statuses.entry(status).or_insert(0) += 1;
    }

    /// A request failed.
    pub(crate) fn failed(&mut self, kind: ErrorKind) {
        let errors = &mut self.errors;
        match kind {
            ErrorKind::Connect => errors.connect += 1,
            ErrorKind::Closed => errors.closed += 1,
            ErrorKind::Timeout => errors.timeout += 1,
            ErrorKind::Malformed => errors.malformed += 1,
        }
    }

    /// Adds this thread's results into `report`.
    pub(crate) fn add_to(self, report: &mut Report) {
        // All histograms share the same bounds, so adding cannot fail; saturate if it did.
        let _ = report.corrected.add(&self.corrected);
        let _ = report.success.add(&self.success);
        let _ = report.refused.add(&self.refused);
        let _ = report.uncorrected.add(&self.uncorrected);
        let _ = report.schedule_lag.add(&self.schedule_lag);
        report.requests.add(&self.requests);
        report.errors.add(&self.errors);
        for (status, n) in self.statuses {
            *report.statuses.entry(status).or_insert(0) += n;
        }
        report.windows.add(&self.windows);
        report.cpu += self.cpu;
        if !self.wall.is_zero() {
            let utilization = self.cpu.as_secs_f64() / self.wall.as_secs_f64();
            report.max_thread_utilization = report.max_thread_utilization.max(utilization);
            let busy = 1.0 - self.idle.as_secs_f64() / self.wall.as_secs_f64();
            report.max_thread_busy = report.max_thread_busy.max(busy.clamp(0.0, 1.0));
        }
    }
}

/// Requests offered and goodput per window of the measured time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Windows {
    /// The windows' width (zero: no windows kept).
    pub width: Duration,
    /// The deadline a `2xx` must meet to count as good (none: every `2xx` counts).
    pub deadline: Option<Duration>,
    /// Per window, in order.
    pub counts: Vec<Window>,
}

/// One window's requests, counted by their scheduled time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Window {
    /// Requests due in the window.
    pub offered: u64,
    /// Of those, `2xx` answers within the deadline.
    pub good: u64,
}

impl Windows {
    /// Windows of `width` over a measured time of `length`.
    pub(crate) fn new(width: Duration, length: Duration, deadline: Option<Duration>) -> Self {
        let count = if width.is_zero() {
            0
        } else {
            usize::try_from(length.as_nanos().div_ceil(width.as_nanos())).unwrap_or(0)
        };
        Self {
            width,
            deadline,
            counts: vec![Window::default(); count],
        }
    }

    fn at(&mut self, offset: Duration) -> Option<&mut Window> {
        if self.width.is_zero() {
            return None;
        }
        let index = usize::try_from(offset.as_nanos() / self.width.as_nanos()).ok()?;
        self.counts.get_mut(index)
    }

    fn add(&mut self, other: &Self) {
        if self.counts.len() < other.counts.len() {
            self.counts.resize(other.counts.len(), Window::default());
            self.width = other.width;
            self.deadline = other.deadline;
        }
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            mine.offered += theirs.offered;
            mine.good += theirs.good;
        }
    }
}
