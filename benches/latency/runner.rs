//! The runner: [`Bench`] holds what the suite has measured and how each run is loaded,
//! measured (the server's CPU time and counts, the host's signs) and repeated while the host
//! spoils it; [`Row`] is one measured run, for the tables and the pictures.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    time::{Duration, Instant},
};

use rtserve_loadgen::{LoadConfig, Report, Target};

use crate::{
    metrics::{CallerCounts, Metrics, ServerCounts},
    noise::{self, HostSigns, Neighbour, Noise, Spoil},
    server::{ServerProcess, cpu_of},
};

/// One measured run, for the table and the plot.
pub(crate) struct Row {
    /// The scenario, e.g. "keep-alive".
    pub(crate) scenario: String,
    /// The server measured: "rtserve" (with its settings, where they vary) or a peer's name.
    pub(crate) server: String,
    /// What the generator measured.
    pub(crate) report: Report,
    /// The server's CPU time over the run, if its pid was known.
    pub(crate) server_cpu: Option<Duration>,
    /// What the run varied, e.g. the load level (the noise setting apart: [`Row::note`]).
    pub(crate) note: String,
    /// Overload runs: what the server counted, and the capacity the rate was a multiple of.
    pub(crate) server_counts: Option<ServerCounts>,
    /// Overload runs: the capacity C, 200s per second, the rate was a multiple of.
    pub(crate) capacity: Option<f64>,
    /// A caller-deadline run: what the server counted of its 503s, jobs and histograms.
    pub(crate) caller: Option<CallerCounts>,
    /// A burst run: when the burst started after the warm-up, and for how long.
    pub(crate) burst: Option<(Duration, Duration)>,
    /// The neighbour that ran beside it, if any.
    pub(crate) noise: Option<Noise>,
    /// What the host did during the run.
    pub(crate) signs: HostSigns,
    /// Why the host still spoiled it after the repeats allowed, if it did.
    pub(crate) spoiled: Option<Spoil>,
}

impl Row {
    /// The note, with the noise setting if there was one.
    pub(crate) fn note(&self) -> String {
        match self.noise {
            Some(noise) if self.note.is_empty() => noise.to_string(),
            Some(noise) => format!("{}, {noise}", self.note),
            None => self.note.clone(),
        }
    }
}

/// One load run, measured, after any repeats.
pub(crate) struct Measured {
    /// What the generator measured.
    pub(crate) report: Report,
    /// The server's CPU time over the run, if its pid was given.
    pub(crate) server_cpu: Option<Duration>,
    /// What the server counted of the route over the run, if asked.
    pub(crate) counts: Option<ServerCounts>,
    /// The server's `/metrics` before and after the run kept, if asked.
    pub(crate) scrapes: Option<(Metrics, Metrics)>,
    /// Wall time from the start of the warm-up to the last response.
    pub(crate) elapsed: Duration,
    /// What the host did during the run kept.
    pub(crate) signs: HostSigns,
    /// Why the host still spoiled the run kept, if it did.
    pub(crate) spoiled: Option<Spoil>,
}

/// Where the runs go, and how long each is.
pub(crate) struct Bench {
    /// Short runs (`--quick`).
    pub(crate) quick: bool,
    /// The CPU the server is pinned to, as `taskset` takes it; `None` on a single CPU.
    pub(crate) server_cpus: Option<String>,
    /// The CPUs the generator's threads are pinned to (none: unpinned).
    pub(crate) load_cpus: Vec<usize>,
    /// The runs measured, in order.
    pub(crate) rows: Vec<Row>,
    /// The server's deadline-lateness histogram from the lateness run: (upper bound in µs,
    /// 503s in the bucket), `u64::MAX` for past the last bound.
    pub(crate) lateness: Vec<(u64, u64)>,
    /// The measured capacity C of `/slow?ms=2` on 4 workers, 200s per second, per noise
    /// setting (`None`: quiet), once measured.
    pub(crate) capacity: BTreeMap<Option<String>, Option<f64>>,
    /// The neighbour the runs have now, if any.
    pub(crate) noise: Option<Noise>,
    /// The noise settings to measure after the quiet runs.
    pub(crate) noises: Vec<Noise>,
    /// Noise settings that could not run, and why.
    pub(crate) skipped: Vec<String>,
    /// How often a run the host spoiled is repeated.
    pub(crate) max_repeats: u32,
    /// The runs repeated: what, and why.
    pub(crate) repeats: Vec<(String, Spoil)>,
    /// A generator schedule lag p99 above this (µs) spoils a run.
    pub(crate) lag_limit_us: u64,
}

impl Bench {
    /// Quiet, then each noise setting, for the scenarios measured under noise.
    pub(crate) fn conditions(&self) -> Vec<Option<Noise>> {
        std::iter::once(None)
            .chain(self.noises.iter().copied().map(Some))
            .collect()
    }

    /// The server's CPU as a number, which the neighbour pins itself to.
    pub(crate) fn server_cpu(&self) -> Option<usize> {
        self.server_cpus.as_deref()?.parse().ok()
    }

    /// Runs `config` (beside the neighbour, if there is one now), measuring the CPU time of
    /// process `pid` and what the server at `counted` counts of its route (with its
    /// `/metrics` before and after, scraped around the run kept), and repeats it
    /// while the host spoils it, at most `max_repeats` times; the generator's schedule lag is
    /// a sign only if `lag_is_a_sign`. `None` (said on stderr) if the generator or the
    /// neighbour failed.
    pub(crate) fn measure(
        &mut self,
        what: &str,
        config: &LoadConfig,
        pid: Option<u32>,
        counted: Option<(SocketAddr, &str)>,
        lag_is_a_sign: bool,
    ) -> Option<Measured> {
        let lag_limit = if lag_is_a_sign {
            self.lag_limit_us
        } else {
            u64::MAX
        };
        let what = match self.noise {
            Some(noise) => format!("{what}, {noise}"),
            None => what.to_owned(),
        };
        let mut attempt = 0;
        loop {
            let neighbour = match (self.noise, self.server_cpu()) {
                (None, _) => None,
                (Some(noise), Some(cpu)) => match Neighbour::start(noise, cpu) {
                    Ok(neighbour) => Some(neighbour),
                    Err(e) => {
                        eprintln!("{what}: {e}");
                        return None;
                    }
                },
                (Some(_), None) => {
                    eprintln!("{what}: no CPU of the server's own for the neighbour");
                    return None;
                }
            };
            let scrape_before = counted.and_then(|(addr, _)| Metrics::scrape(addr));
            let cpu_before = pid.map(cpu_of);
            let steal_before = noise::steal();
            let started = Instant::now();
            let result = rtserve_loadgen::run(config);
            let elapsed = started.elapsed();
            let steal = noise::steal()
                .zip(steal_before)
                .map(|(after, before)| after.saturating_sub(before));
            let server_cpu = pid
                .zip(cpu_before)
                .map(|(p, b)| cpu_of(p).saturating_sub(b));
            let scrapes = counted
                .and_then(|(addr, _)| Metrics::scrape(addr))
                .zip(scrape_before)
                .map(|(after, before)| (before, after));
            let counts = counted.zip(scrapes.as_ref()).map(|((_, route), (b, a))| {
                ServerCounts::of(a, route).since(&ServerCounts::of(b, route))
            });
            drop(neighbour);
            let report = match result {
                Ok(report) => report,
                Err(e) => {
                    eprintln!("{what}: {e}");
                    return None;
                }
            };
            let signs = HostSigns::of(&report, steal);
            let spoiled = signs.spoiled(elapsed, lag_limit);
            if let Some(spoil) = &spoiled
                && attempt < self.max_repeats
            {
                attempt += 1;
                eprintln!("{what}: spoiled by the host ({spoil}), repeating it");
                self.repeats.push((what.clone(), spoil.clone()));
                continue;
            }
            if let Some(spoil) = &spoiled {
                eprintln!("{what}: still spoiled by the host ({spoil}), kept as it is");
            }
            return Some(Measured {
                report,
                server_cpu,
                counts,
                scrapes,
                elapsed,
                signs,
                spoiled,
            });
        }
    }

    /// How long each measured run lasts: 1 s with `--quick`, else 10 s.
    pub(crate) fn duration(&self) -> Duration {
        if self.quick {
            Duration::from_secs(1)
        } else {
            Duration::from_secs(10)
        }
    }

    /// A load of `rate` req/s over `connections` at `target`, for [`Self::duration`] after a
    /// warm-up of a fifth of it, on the generator's CPUs.
    pub(crate) fn load(&self, target: Target, rate: f64, connections: usize) -> LoadConfig {
        let mut config = LoadConfig::new(target);
        config.rate = rate;
        config.connections = connections;
        config.duration = self.duration();
        config.warmup = self.duration() / 5;
        config.threads = self.load_cpus.len().clamp(1, 4);
        config.cpus = self.load_cpus.clone();
        config.progress = false;
        config
    }

    /// The server the `/slow` scenarios load: one reactor, 4 workers, a 5 ms deadline.
    pub(crate) fn pool_server(&self) -> ServerProcess {
        ServerProcess::start(
            &["--threads", "1", "--workers", "4", "--deadline-ms", "5"],
            self.server_cpus.as_deref(),
        )
    }

    /// Runs one load against `server` (measuring its CPU) and records it.
    pub(crate) fn run(
        &mut self,
        scenario: &str,
        label: &str,
        server: Option<&ServerProcess>,
        config: &LoadConfig,
        note: String,
    ) -> Option<f64> {
        let pid = server.map(ServerProcess::pid);
        self.run_counted(scenario, label, pid, config, note, None)
    }

    /// Like `run`, measuring the CPU time of process `pid` if given (a peer's, say), and with
    /// what the server at `counted` counted of its route, if given.
    pub(crate) fn run_counted(
        &mut self,
        scenario: &str,
        label: &str,
        pid: Option<u32>,
        config: &LoadConfig,
        note: String,
        counted: Option<(SocketAddr, &str)>,
    ) -> Option<f64> {
        let what = format!("{scenario} {label} {note}");
        let measured = self.measure(what.trim(), config, pid, counted, true)?;
        Some(
            self.record(scenario, label, note, measured)
                .report
                .achieved_rate(),
        )
    }

    /// Records `measured` as a row of `scenario`, said on stderr, and returns it.
    pub(crate) fn record(
        &mut self,
        scenario: &str,
        label: &str,
        note: String,
        measured: Measured,
    ) -> &mut Row {
        let report = measured.report;
        let achieved = report.achieved_rate();
        eprintln!(
            "{scenario:>14} {label:<28} {:>9.0} req/s  p99 {:>8} µs{}",
            achieved,
            report.corrected.value_at_quantile(0.99),
            self.noise.map(|n| format!("  ({n})")).unwrap_or_default()
        );
        self.rows.push(Row {
            scenario: scenario.to_owned(),
            server: label.to_owned(),
            report,
            server_cpu: measured.server_cpu,
            note,
            server_counts: measured.counts,
            capacity: None,
            caller: None,
            burst: None,
            noise: self.noise,
            signs: measured.signs,
            spoiled: measured.spoiled,
        });
        let last = self.rows.len() - 1;
        &mut self.rows[last]
    }
}

/// The generator's schedule lag limit for this machine ([`noise::lag_limit`]): two short quiet
/// runs of `/hello` at 1,000 req/s, said on stderr.
pub(crate) fn lag_floor_limit(bench: &Bench) -> u64 {
    let server = ServerProcess::start(&["--threads", "1"], bench.server_cpus.as_deref());
    let runs: Vec<Report> = (0..2)
        .filter_map(|_| {
            let mut load = bench.load(Target::new(server.addr, "/hello"), 1_000.0, 10);
            load.duration = Duration::from_millis(500);
            load.warmup = Duration::from_millis(100);
            rtserve_loadgen::run(&load).ok()
        })
        .collect();
    let floors: Vec<u64> = runs
        .iter()
        .map(|r| r.schedule_lag.value_at_quantile(0.99))
        .collect();
    let limit = noise::lag_limit(&runs);
    eprintln!(
        "generator schedule lag p99 on a quiet run: {floors:?} µs; a run above {limit} µs is \
         taken as spoiled by the host"
    );
    limit
}
