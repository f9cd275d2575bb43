//! A reproducible noisy neighbour on the server's core, and the signs that a run was spoiled by
//! the host rather than the server.
//!
//! # Theory of operation
//!
//! The neighbour is this benchmark's own binary, started again with a hidden argument
//! (`--noise-child BUSY/PERIOD --noise-cpu N`): it pins itself to the server's CPU, then spins
//! for BUSY ms out of every PERIOD ms and sleeps until the next period starts, on an absolute
//! schedule, so that its duty cycle does not drift with its own lateness. An ordinary neighbour
//! runs as SCHED_OTHER at nice 0 and shares the core with the server fairly; a `fifo` one is
//! started through `chrt -f 1` (SCHED_FIFO priority 1, root only) and takes the core outright
//! while it spins, as a hypervisor's steal would. Its pid is killed when the [`Neighbour`] is
//! dropped, and it leaves by itself once its parent is gone.
//!
//! The neighbour's time shows as ordinary CPU time, not as steal, so the host's steal time
//! (`/proc/stat`) during a run is still a sign of a hypervisor taking the machine away; and the
//! generator runs on the other CPUs, so its schedule lag is a sign of a busy host too. A run
//! with either sign above its limit is repeated ([`HostSigns::spoiled`]).

use std::{
    fmt,
    io::{BufRead, BufReader, Write},
    process::{Child, Command, Stdio},
    str::FromStr,
    time::Duration,
};

use rtserve_loadgen::Report;
use rustix::thread::{ClockId, Timespec};

/// One noise setting: spin `busy` out of every `period` on the server's CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Noise {
    pub(crate) busy: Duration,
    pub(crate) period: Duration,
    pub(crate) kind: NoiseKind,
}

/// How the neighbour is scheduled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NoiseKind {
    /// SCHED_OTHER, nice 0: it shares the core with the server.
    Ordinary,
    /// SCHED_FIFO priority 1: it takes the core while it spins.
    Fifo,
}

impl Noise {
    /// Busy and period as `B/P` in milliseconds, the form `--noise-child` takes.
    pub(crate) fn duty(&self) -> String {
        format!("{}/{}", self.busy.as_millis(), self.period.as_millis())
    }
}

impl FromStr for Noise {
    type Err = String;

    /// `BUSY_MS/PERIOD_MS`, optionally followed by `:fifo`.
    fn from_str(s: &str) -> Result<Self, String> {
        let (duty, kind) = match s.split_once(':') {
            None => (s, NoiseKind::Ordinary),
            Some((duty, "fifo")) => (duty, NoiseKind::Fifo),
            Some((_, other)) => return Err(format!("unknown noise kind {other:?} (only fifo)")),
        };
        let (busy, period) = duty
            .split_once('/')
            .ok_or_else(|| format!("{s:?}: expected BUSY_MS/PERIOD_MS[:fifo], e.g. 1/4"))?;
        let ms = |v: &str| {
            v.trim()
                .parse::<u64>()
                .map(Duration::from_millis)
                .map_err(|_| format!("{s:?}: {v:?} is not a whole number of ms"))
        };
        let (busy, period) = (ms(busy)?, ms(period)?);
        if busy.is_zero() || busy >= period {
            return Err(format!("{s:?}: BUSY must be above 0 and below PERIOD"));
        }
        Ok(Self { busy, period, kind })
    }
}

impl fmt::Display for Noise {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            NoiseKind::Ordinary => "ordinary",
            NoiseKind::Fifo => "FIFO",
        };
        write!(f, "noise {} ms {kind}", self.duty())
    }
}

/// Why FIFO noise cannot run here, if it cannot: `chrt` is missing or may not set SCHED_FIFO
/// (that takes root, or CAP_SYS_NICE).
pub(crate) fn fifo_unavailable() -> Option<String> {
    match Command::new("chrt")
        .args(["-f", "1", "true"])
        .stdout(Stdio::null())
        .output()
    {
        Err(e) => Some(format!("chrt (util-linux) cannot run: {e}")),
        Ok(out) if !out.status.success() => Some(format!(
            "chrt -f 1 failed (SCHED_FIFO needs root or CAP_SYS_NICE): {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Ok(_) => None,
    }
}

/// A running neighbour process, killed by its pid when dropped.
pub(crate) struct Neighbour {
    child: Child,
}

impl Neighbour {
    /// Starts `noise` on `cpu` and waits until the neighbour has pinned itself.
    pub(crate) fn start(noise: Noise, cpu: usize) -> Result<Self, String> {
        let exe = std::env::current_exe().map_err(|e| format!("no path to this binary: {e}"))?;
        let mut command = match noise.kind {
            NoiseKind::Ordinary => Command::new(&exe),
            NoiseKind::Fifo => {
                let mut c = Command::new("chrt");
                c.args(["-f", "1"]).arg(&exe);
                c
            }
        };
        let mut child = command
            .args([
                "--noise-child",
                &noise.duty(),
                "--noise-cpu",
                &cpu.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("start the neighbour: {e}"))?;
        let mut ready = String::new();
        let stdout = child.stdout.take().expect("stdout is piped");
        let _ = BufReader::new(stdout).read_line(&mut ready);
        let neighbour = Self { child };
        if ready.trim() == "ready" {
            Ok(neighbour)
        } else {
            Err(format!("the neighbour ({noise}) did not start"))
        }
    }
}

impl Drop for Neighbour {
    fn drop(&mut self) {
        // `Child::kill` sends SIGKILL to this child's pid, and only to it.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The neighbour's own life (`--noise-child BUSY/PERIOD --noise-cpu N`): pin, say "ready",
/// then spin and sleep on an absolute schedule until killed or orphaned.
pub(crate) fn neighbour_main(duty: &str, cpu: usize) -> ! {
    let noise: Noise = duty.parse().unwrap_or_else(|e| {
        eprintln!("--noise-child: {e}");
        std::process::exit(2);
    });
    let mut set = rustix::thread::CpuSet::new();
    set.set(cpu);
    if let Err(e) = rustix::thread::sched_setaffinity(None, &set) {
        eprintln!("--noise-child: cannot pin to CPU {cpu}: {e}");
        std::process::exit(1);
    }
    let parent = rustix::process::getppid();
    println!("ready");
    let _ = std::io::stdout().flush();
    let mut start = now();
    loop {
        let busy_until = add(start, noise.busy);
        while before(now(), busy_until) {
            std::hint::spin_loop();
        }
        start = add(start, noise.period);
        // Behind by more than a period (the machine was taken away): start again from now
        // instead of spinning through the missed periods back to back.
        if before(add(start, noise.period), now()) {
            start = now();
        }
        let _ = rustix::thread::clock_nanosleep_absolute(ClockId::Monotonic, &start);
        if rustix::process::getppid() != parent {
            std::process::exit(0);
        }
    }
}

fn now() -> Timespec {
    rustix::time::clock_gettime(ClockId::Monotonic)
}

fn add(t: Timespec, d: Duration) -> Timespec {
    let nanos = t.tv_nsec + i64::from(d.subsec_nanos());
    Timespec {
        tv_sec: t.tv_sec + d.as_secs() as i64 + nanos / 1_000_000_000,
        tv_nsec: nanos % 1_000_000_000,
    }
}

fn before(a: Timespec, b: Timespec) -> bool {
    (a.tv_sec, a.tv_nsec) < (b.tv_sec, b.tv_nsec)
}

/// The host's steal time so far, all CPUs together (`/proc/stat`, the `cpu` line's eighth
/// field, in clock ticks).
pub(crate) fn steal() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let ticks: u64 = line.split_whitespace().nth(8)?.parse().ok()?;
    let per_second = rustix::param::clock_ticks_per_second().max(1);
    Some(Duration::from_secs_f64(ticks as f64 / per_second as f64))
}

/// Steal above this share of a run's wall time (all CPUs together) spoils it: 1 %, 10 ms a
/// second, more than the few ticks an idle cloud host shows, less than one stall that would
/// cost a 5 ms deadline a run's worth of tail.
const STEAL_LIMIT: f64 = 0.01;

/// The least generator schedule lag p99 that spoils a run: the generator sends late only
/// when its own CPUs are taken, and a late send is latency the server never saw. Where the
/// generator's own floor on a quiet machine is higher (a VM whose idle vCPUs wake slowly:
/// 3–4 ms on a Firecracker guest), the limit is twice that floor ([`lag_limit`]).
pub(crate) const LAG_LIMIT_US: u64 = 1_000;

/// The schedule lag limit for runs on this machine: twice the generator's own lag p99 in
/// `floor_runs` quiet runs (the least of them), and at least [`LAG_LIMIT_US`].
pub(crate) fn lag_limit(floor_runs: &[Report]) -> u64 {
    floor_runs
        .iter()
        .filter(|r| !r.schedule_lag.is_empty())
        .map(|r| r.schedule_lag.value_at_quantile(0.99))
        .min()
        .map_or(LAG_LIMIT_US, |floor| (2 * floor).max(LAG_LIMIT_US))
}

/// What the host did during a run.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct HostSigns {
    /// Steal time over the run, all CPUs together; `None` where `/proc/stat` has none.
    pub(crate) steal: Option<Duration>,
    /// The generator's schedule lag, µs.
    pub(crate) lag_p99: u64,
    pub(crate) lag_max: u64,
}

impl HostSigns {
    /// The signs of a run that reported `report`, with `steal` over it.
    pub(crate) fn of(report: &Report, steal: Option<Duration>) -> Self {
        let lag = &report.schedule_lag;
        let (lag_p99, lag_max) = if lag.is_empty() {
            (0, 0)
        } else {
            (lag.value_at_quantile(0.99), lag.max())
        };
        Self {
            steal,
            lag_p99,
            lag_max,
        }
    }

    /// Why a run of `elapsed` wall time was spoiled by the host, if it was, with a generator
    /// schedule lag p99 above `lag_limit_us` taken as a sign.
    pub(crate) fn spoiled(&self, elapsed: Duration, lag_limit_us: u64) -> Option<Spoil> {
        if let Some(steal) = self.steal {
            let limit = elapsed.mul_f64(STEAL_LIMIT);
            if steal > limit {
                return Some(Spoil {
                    cause: Cause::Steal,
                    detail: format!(
                        "steal {} ms over {:.1} s (limit {} ms)",
                        steal.as_millis(),
                        elapsed.as_secs_f64(),
                        limit.as_millis()
                    ),
                });
            }
        }
        (self.lag_p99 > lag_limit_us).then(|| Spoil {
            cause: Cause::Lag,
            detail: format!(
                "generator schedule lag p99 {} µs (limit {lag_limit_us} µs)",
                self.lag_p99
            ),
        })
    }
}

/// Why a run was taken to be spoiled by the host.
#[derive(Clone, Debug)]
pub(crate) struct Spoil {
    pub(crate) cause: Cause,
    pub(crate) detail: String,
}

/// The sign that spoiled a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Cause {
    /// The hypervisor took the CPUs away.
    Steal,
    /// The generator could not keep its schedule.
    Lag,
    /// `/hello` alone did worse than `/hello` beside a loaded pool.
    Baseline,
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Steal => "steal time",
            Self::Lag => "generator schedule lag",
            Self::Baseline => "an isolation baseline worse than its loaded run",
        })
    }
}

impl fmt::Display for Spoil {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.detail)
    }
}
