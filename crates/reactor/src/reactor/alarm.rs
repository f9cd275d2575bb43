//! The reactor's alarm clock: a `timerfd` registered with its poll, so that a timer fires
//! within microseconds of its time. `mio`'s poll timeout is whole milliseconds, rounded up, so
//! without it a deadline's 503 would leave up to a millisecond late.
//!
//! The alarm is set for the earliest timer, and set again only when an earlier one appears or
//! after it rang: a keep-alive request moves no timer earlier, so it costs no system call here.

use std::{
    io,
    os::fd::{AsRawFd, OwnedFd},
    time::{Duration, Instant},
};

use mio::{Interest, Registry, unix::SourceFd};
use rustix::time::{
    Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags, Timespec, timerfd_create,
    timerfd_settime,
};

use crate::token::ALARM;

/// A `timerfd` and the time it is set for.
#[derive(Debug)]
pub(super) struct Alarm {
    fd: OwnedFd,
    /// When it will ring, if it is set and has not rung.
    set_for: Option<Instant>,
}

impl Alarm {
    /// A new alarm, registered with `registry` under the alarm's token.
    pub(super) fn new(registry: &Registry) -> io::Result<Self> {
        let fd = timerfd_create(
            TimerfdClockId::Monotonic,
            TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
        )?;
        registry.register(&mut SourceFd(&fd.as_raw_fd()), ALARM, Interest::READABLE)?;
        Ok(Self { fd, set_for: None })
    }

    /// Makes sure the alarm rings by `at`, which is after `now`; only an earlier time than the
    /// one set costs a system call.
    pub(super) fn ring_by(&mut self, at: Instant, now: Instant) -> io::Result<()> {
        if self.set_for.is_some_and(|set| set <= at) {
            return Ok(());
        }
        // A zero time would disarm it: at least a nanosecond.
        let after = at
            .saturating_duration_since(now)
            .max(Duration::from_nanos(1));
        let value = Itimerspec {
            it_interval: Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: Timespec {
                tv_sec: i64::try_from(after.as_secs()).unwrap_or(i64::MAX),
                tv_nsec: i64::from(after.subsec_nanos()),
            },
        };
        timerfd_settime(&self.fd, TimerfdTimerFlags::empty(), &value)?;
        self.set_for = Some(at);
        Ok(())
    }

    /// The alarm rang: clear it (edge-triggered, it would not ring again otherwise).
    pub(super) fn rang(&mut self) {
        let mut expirations = [0u8; 8];
        // Nothing to read means a spurious event: either way it is clear now.
        let _ = rustix::io::read(&self.fd, &mut expirations);
        self.set_for = None;
    }
}
