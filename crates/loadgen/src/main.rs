//! `rtserve-load`: command-line front end of `rtserve-loadgen`.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use rtserve_loadgen::{LoadConfig, LoadError, Target};

/// Open-loop HTTP/1.1 latency load generator.
///
/// Sends requests at a fixed rate whether or not earlier ones were answered, and measures each
/// latency from the request's scheduled send time (coordinated omission corrected, like wrk2).
/// Prints a Markdown table of p50…p99.99 and max, corrected and uncorrected, with errors by kind
/// and responses by status.
#[derive(Debug, Parser)]
#[command(name = "rtserve-load", version)]
struct Args {
    /// Target URL `http://HOST[:PORT][/PATH]`; HOST is an IPv4 address, localhost or `[IPv6]`.
    url: String,
    /// Target rate in requests per second, over all connections.
    #[arg(short, long, default_value_t = 1000.0)]
    rate: f64,
    /// Connections; the rate is spread evenly over them.
    #[arg(short, long, default_value_t = 10)]
    connections: usize,
    /// Measured duration, e.g. 10s, 500ms, 2m.
    #[arg(short, long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Warm-up before the measured duration; its results are discarded.
    #[arg(short, long, default_value = "1s", value_parser = parse_duration)]
    warmup: Duration,
    /// Generator threads, each with its own poll loop and share of the connections.
    #[arg(short, long, default_value_t = 1)]
    threads: usize,
    /// Pin generator threads to these CPUs, round-robin (e.g. 2,3).
    #[arg(long, value_delimiter = ',')]
    cpus: Vec<usize>,
    /// Open a new connection for every request (sends `Connection: close`).
    #[arg(long)]
    new_conn: bool,
    /// Requests in flight per connection (HTTP/1.1 pipelining); 1 disables pipelining.
    #[arg(long, default_value_t = 1)]
    pipeline: usize,
    /// Request method.
    #[arg(short = 'X', long, default_value = "GET")]
    method: String,
    /// Send this file's contents as the request body (with Content-Length).
    #[arg(long)]
    body_file: Option<PathBuf>,
    /// A header field to send with every request, `Name: value` (repeatable), e.g.
    /// `-H 'Content-Type: application/json'`.
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE")]
    headers: Vec<String>,
    /// Per-request timeout in milliseconds, counted from the send; also the connect timeout.
    #[arg(long, default_value_t = 5000)]
    timeout_ms: u64,
    /// The clients' deadline in milliseconds: report goodput (2xx responses within it, per
    /// second) and the share of all responses within it plus 1 ms.
    #[arg(long)]
    deadline_ms: Option<u64>,
    /// A burst within the measured time, `START:LENGTH:RATE` (e.g. `2s:2s:6000`): from START
    /// after the warm-up, for LENGTH, send at RATE instead.
    #[arg(long, value_parser = parse_burst)]
    burst: Option<rtserve_loadgen::Burst>,
    /// Report requests offered and goodput per window of this many milliseconds.
    #[arg(long)]
    window_ms: Option<u64>,
    /// Print the report as JSON instead of Markdown (latencies in microseconds).
    #[arg(long)]
    json: bool,
    /// Also write the corrected latency distribution to PATH in HdrHistogram .hgrm format.
    #[arg(long, value_name = "PATH")]
    hgrm: Option<PathBuf>,
    /// No progress line on stderr.
    #[arg(short, long)]
    quiet: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("rtserve-load: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<(), String> {
    let target: Target = args.url.parse().map_err(|e: LoadError| e.to_string())?;
    let mut config = LoadConfig::new(target);
    config.rate = args.rate;
    config.connections = args.connections;
    config.duration = args.duration;
    config.warmup = args.warmup;
    config.threads = args.threads;
    config.cpus = args.cpus;
    config.new_connection_per_request = args.new_conn;
    config.pipeline = args.pipeline;
    config.method = args.method.to_ascii_uppercase();
    config.timeout = Duration::from_millis(args.timeout_ms);
    config.deadline = args.deadline_ms.map(Duration::from_millis);
    config.burst = args.burst;
    config.window = args.window_ms.map(Duration::from_millis);
    config.progress = !args.quiet;
    for header in &args.headers {
        let (name, value) = header
            .split_once(':')
            .ok_or_else(|| format!("--header {header:?}: expected `Name: value`"))?;
        config
            .headers
            .push((name.trim().to_owned(), value.trim().to_owned()));
    }
    if let Some(path) = &args.body_file {
        config.body =
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    }
    let report = rtserve_loadgen::run(&config).map_err(|e| e.to_string())?;
    if let Some(path) = &args.hgrm {
        std::fs::write(path, report.to_hgrm())
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    if args.json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.to_markdown());
    }
    Ok(())
}

/// `START:LENGTH:RATE`, the first two durations, the last requests per second.
fn parse_burst(text: &str) -> Result<rtserve_loadgen::Burst, String> {
    let parts: Vec<&str> = text.split(':').collect();
    let [start, length, rate] = parts[..] else {
        return Err(format!(
            "invalid burst {text:?} (use START:LENGTH:RATE, e.g. 2s:2s:6000)"
        ));
    };
    let rate: f64 = rate
        .parse()
        .ok()
        .filter(|r: &f64| r.is_finite() && *r > 0.0)
        .ok_or_else(|| format!("invalid burst rate {rate:?}"))?;
    Ok(rtserve_loadgen::Burst {
        start: parse_duration(start)?,
        length: parse_duration(length)?,
        rate,
    })
}

/// `10s`, `500ms`, `2m`, `1.5s` or a bare number of seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("invalid duration {text:?}"))?;
    let seconds = match unit {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => {
            return Err(format!(
                "invalid duration unit {unit:?} (use ms, s, m or h)"
            ));
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("invalid duration {text:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("5x").is_err());
        let burst = parse_burst("2s:500ms:6000").unwrap();
        assert_eq!(
            (burst.start, burst.length, burst.rate),
            (Duration::from_secs(2), Duration::from_millis(500), 6000.0)
        );
        assert!(parse_burst("2s:6000").is_err());
        assert!(parse_burst("2s:1s:-5").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        Args::command().debug_assert();
    }
}
