//! The server under test, as a process of its own: started (pinned where cores allow),
//! measured (CPU time from /proc), and stopped.

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    process::{Child, Command, Stdio},
    time::Duration,
};

/// A running `rtserve` (or a service built on its library, such as the scoring example).
pub(crate) struct ServerProcess {
    child: Child,
    pub(crate) addr: SocketAddr,
}

impl ServerProcess {
    /// Starts `rtserve` with `args` (after `--bind 127.0.0.1:0`), on `cpus` if given.
    pub(crate) fn start(args: &[&str], cpus: Option<&str>) -> Self {
        Self::start_binary(env!("CARGO_BIN_EXE_rtserve"), args, cpus)
    }

    /// Starts the program `bin`, which takes `--bind ADDR` and `-q` as rtserve does and says
    /// `listening on http://ADDR` on stderr, with `args`, on `cpus` if given.
    pub(crate) fn start_binary(bin: &str, args: &[&str], cpus: Option<&str>) -> Self {
        let mut command = match cpus {
            Some(cpus) if have("taskset") => {
                let mut c = Command::new("taskset");
                c.args(["-c", cpus, bin]);
                c
            }
            _ => Command::new(bin),
        };
        command
            .args(["--bind", "127.0.0.1:0", "-q"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("start {bin}: {e}"));
        let mut lines = BufReader::new(child.stderr.take().expect("stderr"));
        let mut line = String::new();
        let addr = loop {
            line.clear();
            let n = lines.read_line(&mut line).expect("read rtserve's stderr");
            assert!(n > 0, "rtserve exited before listening");
            if let Some(rest) = line.split("listening on http://").nth(1) {
                let addr = rest.split_whitespace().next().expect("address");
                break addr.parse().expect("socket address");
            }
        };
        // Keep draining stderr so the server never blocks on it.
        std::thread::spawn(move || {
            let mut sink = String::new();
            while lines.read_line(&mut sink).unwrap_or(0) > 0 {
                sink.clear();
            }
        });
        Self { child, addr }
    }

    /// The server's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        // A graceful stop first, so that the server's own shutdown is part of what runs.
        if let Some(pid) = i32::try_from(self.child.id())
            .ok()
            .and_then(rustix::process::Pid::from_raw)
        {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        for _ in 0..200 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `redis-server` of the benchmark's own on a free port, with no persistence, killed when
/// dropped (the scoring scenario's store).
pub(crate) struct RedisProcess {
    child: Child,
    pub(crate) url: String,
}

impl RedisProcess {
    /// Starts one, or says why it cannot.
    pub(crate) fn start() -> Result<Self, String> {
        if !have("redis-server") {
            return Err("redis-server is not on the PATH (apt-get install redis-server)".into());
        }
        // Redis takes no port 0: take a free port from the kernel, and give it back.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map_err(|e| format!("no free port: {e}"))?
            .port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--loglevel", "warning"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| format!("start redis-server: {e}"))?;
        let redis = Self {
            child,
            url: format!("redis://127.0.0.1:{port}"),
        };
        for _ in 0..500 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(redis);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Err(format!("redis-server does not listen on port {port}"))
    }
}

impl Drop for RedisProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU time used by process `pid`, from /proc/PID/stat (utime + stime, in clock ticks). It is
/// another process (the server, or the peer), so its CPU-time clock is not ours to read.
pub(crate) fn cpu_of(pid: u32) -> Duration {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return Duration::ZERO;
    };
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return Duration::ZERO;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields
        .get(11..13)
        .map(|f| f.iter().filter_map(|v| v.parse::<u64>().ok()).sum())
        .unwrap_or(0);
    let per_second = rustix::param::clock_ticks_per_second().max(1);
    Duration::from_secs_f64(ticks as f64 / per_second as f64)
}

/// The CPUs this process may run on.
pub(crate) fn allowed_cpus() -> Vec<usize> {
    let Ok(allowed) = rustix::thread::sched_getaffinity(None) else {
        return Vec::new();
    };
    (0..rustix::thread::CpuSet::MAX_CPU)
        .filter(|&cpu| allowed.is_set(cpu))
        .collect()
}

fn have(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}
