//! A worker thread's own scheduler statistics: how long it ran on a CPU, and how long it was
//! runnable but waited for one (`/proc/thread-self/schedstat`, Linux with schedstats, which
//! distributions enable). Read before and after a job, they tell whether the job queued for
//! the CPU, the signal that sets how many CPU-bound jobs may run at once.
//!
//! The file is opened once per worker, by the worker (`thread-self` names the thread that
//! opens it, and the open file stays bound to that thread); each reading is one `pread`.

use std::{fs::File, os::unix::fs::FileExt, time::Duration};

use super::admission::CpuUse;

/// A worker thread's scheduler statistics file.
#[derive(Debug)]
pub(crate) struct ThreadCpu {
    file: File,
}

/// One reading: nanoseconds on a CPU and waiting for one, since the thread began.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Reading {
    on_cpu: u64,
    waiting: u64,
}

impl Reading {
    /// What the thread did between `before` and this reading.
    pub(crate) fn since(self, before: Self) -> CpuUse {
        CpuUse {
            on_cpu: Duration::from_nanos(self.on_cpu.saturating_sub(before.on_cpu)),
            waiting: Duration::from_nanos(self.waiting.saturating_sub(before.waiting)),
        }
    }
}

impl ThreadCpu {
    /// The calling thread's statistics, if the system keeps them.
    pub(crate) fn open() -> Option<Self> {
        let file = File::open("/proc/thread-self/schedstat").ok()?;
        let cpu = Self { file };
        cpu.read()?;
        Some(cpu)
    }

    /// Reads the statistics now.
    pub(crate) fn read(&self) -> Option<Reading> {
        let mut buf = [0u8; 96];
        let n = self.file.read_at(&mut buf, 0).ok()?;
        parse(&buf[..n])
    }
}

/// Parses "on-CPU-ns waiting-ns timeslices".
fn parse(text: &[u8]) -> Option<Reading> {
    let text = std::str::from_utf8(text).ok()?;
    let mut fields = text.split_ascii_whitespace();
    let on_cpu = fields.next()?.parse().ok()?;
    let waiting = fields.next()?.parse().ok()?;
    Some(Reading { on_cpu, waiting })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_kernels_line() {
        assert_eq!(
            parse(b"1234 567 8\n"),
            Some(Reading {
                on_cpu: 1234,
                waiting: 567
            })
        );
        assert_eq!(parse(b"garbage"), None);
        assert_eq!(parse(b""), None);
    }

    #[test]
    fn a_spinning_thread_sees_its_cpu_time_grow() {
        // Kernels built without schedstats have no file: nothing to check there.
        let Some(cpu) = ThreadCpu::open() else {
            eprintln!("skipped: /proc/thread-self/schedstat is not available here");
            return;
        };
        let before = cpu.read().unwrap();
        let until = std::time::Instant::now() + Duration::from_millis(20);
        let mut spins = 0u64;
        while std::time::Instant::now() < until {
            spins = spins.wrapping_add(1);
        }
        let used = cpu.read().unwrap().since(before);
        assert!(spins > 0);
        assert!(used.on_cpu > Duration::ZERO, "{used:?}");
    }
}
