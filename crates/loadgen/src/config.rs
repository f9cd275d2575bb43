//! What to load and how: [`LoadConfig`], the target URL, and [`LoadError`].

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

/// Longest run accepted (warm-up plus duration).
const MAX_RUN: Duration = Duration::from_secs(30 * 24 * 3600);

/// Longest per-request timeout accepted.
const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// Where requests go: a parsed `http://host:port/path` URL.
///
/// # Examples
///
/// ```
/// use rtserve_loadgen::Target;
///
/// let target: Target = "http://127.0.0.1:8080/hello?x=1".parse().unwrap();
/// assert_eq!(target.addr.port(), 8080);
/// assert_eq!(target.path, "/hello?x=1");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Target {
    /// The address to connect to.
    pub addr: SocketAddr,
    /// The `Host` header value, as written in the URL (`host:port`).
    pub host: String,
    /// The request target: path and query (`/` when the URL has none).
    pub path: String,
}

impl Target {
    /// Parse `http://host[:port][/path]` (the same as `str::parse`).
    ///
    /// # Errors
    ///
    /// [`LoadError::Url`] saying what is wrong with the URL.
    pub fn parse(url: &str) -> Result<Self, LoadError> {
        url.parse()
    }

    /// A target for `addr` and `path` (which must start with `/`).
    pub fn new(addr: SocketAddr, path: &str) -> Self {
        Self {
            addr,
            host: addr.to_string(),
            path: path.to_owned(),
        }
    }
}

impl std::str::FromStr for Target {
    type Err = LoadError;

    /// Parse `http://host[:port][/path]` where host is an IPv4 literal, `localhost` or a
    /// bracketed IPv6 literal. No DNS: a benchmark should not depend on a resolver.
    fn from_str(url: &str) -> Result<Self, Self::Err> {
        let bad = |why: &str| LoadError::Url(format!("{url:?}: {why}"));
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| bad("only http:// URLs are supported"))?;
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], &rest[i..]),
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let path = if path.starts_with('?') {
            format!("/{path}")
        } else {
            path.to_owned()
        };
        if path.bytes().any(|b| b.is_ascii_control() || b == b' ') {
            return Err(bad("the path contains spaces or control characters"));
        }
        if authority.contains('@') {
            return Err(bad("user information is not supported"));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (ip, after) = v6.split_once(']').ok_or_else(|| bad("unclosed '['"))?;
            let ip: Ipv6Addr = ip.parse().map_err(|_| bad("invalid IPv6 address"))?;
            (IpAddr::V6(ip), after)
        } else {
            let (name, after) = match authority.find(':') {
                Some(i) => (&authority[..i], &authority[i..]),
                None => (authority, ""),
            };
            let ip = if name.eq_ignore_ascii_case("localhost") {
                IpAddr::V4(Ipv4Addr::LOCALHOST)
            } else {
                IpAddr::V4(name.parse().map_err(|_| {
                    bad("host must be an IPv4 address, localhost or [IPv6] (no DNS lookups)")
                })?)
            };
            (ip, after)
        };
        let port = match port {
            "" => 80,
            p => p
                .strip_prefix(':')
                .and_then(|p| p.parse::<u16>().ok())
                .filter(|&p| p != 0)
                .ok_or_else(|| bad("invalid port"))?,
        };
        Ok(Self {
            addr: SocketAddr::new(host, port),
            host: authority.to_owned(),
            path,
        })
    }
}

/// A load run's parameters. Build one with [`LoadConfig::new`] and adjust the public fields.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use rtserve_loadgen::LoadConfig;
///
/// let mut config = LoadConfig::new("http://127.0.0.1:8080/hello".parse().unwrap());
/// config.rate = 1000.0;
/// config.connections = 10;
/// config.duration = Duration::from_secs(2);
/// assert!(config.validate().is_ok());
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LoadConfig {
    /// Where to send requests.
    pub target: Target,
    /// Request method (`GET` by default).
    pub method: String,
    /// Request body, sent with a `Content-Length` (empty: no body, no header).
    pub body: Vec<u8>,
    /// Header fields sent with every request, after `Host` and `User-Agent`, as (name, value).
    pub headers: Vec<(String, String)>,
    /// Target rate in requests per second, over all connections.
    pub rate: f64,
    /// Number of connection slots; the rate is spread evenly over them.
    pub connections: usize,
    /// Open a new connection for every request instead of keeping connections alive.
    pub new_connection_per_request: bool,
    /// Requests allowed in flight on one connection (1: no pipelining).
    pub pipeline: usize,
    /// Measured duration (after the warm-up).
    pub duration: Duration,
    /// Warm-up time whose results are discarded.
    pub warmup: Duration,
    /// Per-request timeout from the actual send (and the connect timeout).
    pub timeout: Duration,
    /// The clients' deadline, if they have one: the report then counts goodput, the `2xx`
    /// responses whose corrected latency is within it.
    pub deadline: Option<Duration>,
    /// A stretch of the measured window at another rate.
    pub burst: Option<Burst>,
    /// Report requests offered and goodput per window of this width, by scheduled time.
    pub window: Option<Duration>,
    /// Generator threads, each with its own `mio::Poll` and share of connections.
    pub threads: usize,
    /// CPUs to pin the threads to, round-robin (empty: no pinning).
    pub cpus: Vec<usize>,
    /// Print a progress line on stderr once a second.
    pub progress: bool,
}

/// A stretch of the measured window at another rate: a step up (or down) and back.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Burst {
    /// When it starts, counted from the end of the warm-up.
    pub start: Duration,
    /// How long it lasts.
    pub length: Duration,
    /// Its rate, requests per second over all connections.
    pub rate: f64,
}

impl LoadConfig {
    /// Defaults: `GET`, 1000 req/s over 10 keep-alive connections, 10 s measured after 1 s of
    /// warm-up, no pipelining, 5 s timeout, 1 thread, no pinning, no progress output.
    pub fn new(target: Target) -> Self {
        Self {
            target,
            method: "GET".to_owned(),
            body: Vec::new(),
            headers: Vec::new(),
            rate: 1000.0,
            connections: 10,
            new_connection_per_request: false,
            pipeline: 1,
            duration: Duration::from_secs(10),
            warmup: Duration::from_secs(1),
            timeout: Duration::from_secs(5),
            deadline: None,
            burst: None,
            window: None,
            threads: 1,
            cpus: Vec::new(),
            progress: false,
        }
    }

    /// Check the parameters make sense.
    ///
    /// # Errors
    ///
    /// [`LoadError::Config`] naming the first bad parameter.
    pub fn validate(&self) -> Result<(), LoadError> {
        let bad = |why: &str| Err(LoadError::Config(why.to_owned()));
        if !(self.rate.is_finite() && self.rate > 0.0) {
            return bad("rate must be a positive number of requests per second");
        }
        if self.connections == 0 {
            return bad("connections must be at least 1");
        }
        if self.threads == 0 {
            return bad("threads must be at least 1");
        }
        if self.threads > self.connections {
            return bad("threads must not exceed connections (each thread needs a connection)");
        }
        if self.pipeline == 0 {
            return bad("pipeline depth must be at least 1");
        }
        if self.duration.is_zero() {
            return bad("duration must be positive");
        }
        // Bounds that keep every `Instant` computed from them far from overflow.
        if self.duration.saturating_add(self.warmup) > MAX_RUN {
            return bad("warm-up plus duration must be at most 30 days");
        }
        if self.timeout.is_zero() || self.timeout > MAX_TIMEOUT {
            return bad("timeout must be positive and at most one day");
        }
        if self.method.is_empty() || !self.method.bytes().all(|b| b.is_ascii_uppercase()) {
            return bad("method must be an upper-case token such as GET or POST");
        }
        let token = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        };
        for (name, value) in &self.headers {
            if !token(name) || value.bytes().any(|b| b.is_ascii_control() && b != b'\t') {
                return bad("a header must be `Name: value`, a token and a value on one line");
            }
        }
        Ok(())
    }

    /// The bytes of one request, sent unchanged every time.
    pub(crate) fn request_bytes(&self) -> Vec<u8> {
        let mut req = format!(
            "{} {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: rtserve-load\r\n",
            self.method, self.target.path, self.target.host
        );
        for (name, value) in &self.headers {
            req.push_str(&format!("{name}: {value}\r\n"));
        }
        if self.new_connection_per_request {
            req.push_str("Connection: close\r\n");
        }
        if !self.body.is_empty() || self.method == "POST" || self.method == "PUT" {
            req.push_str(&format!("Content-Length: {}\r\n", self.body.len()));
        }
        req.push_str("\r\n");
        let mut bytes = req.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }
}

/// Why a run could not start or finish. Errors *during* a run (refused reconnects, timeouts,
/// malformed responses) are counted in the [`Report`](crate::Report) instead.
#[derive(Debug)]
#[non_exhaustive]
pub enum LoadError {
    /// The URL could not be parsed.
    Url(String),
    /// A parameter is out of range.
    Config(String),
    /// The target refused or did not answer the connection made before the run.
    Connect(SocketAddr, io::Error),
    /// A local resource failed (poll creation, thread spawn, CPU pinning).
    Io(String, io::Error),
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Url(why) => write!(f, "bad URL {why}"),
            Self::Config(why) => write!(f, "bad configuration: {why}"),
            Self::Connect(addr, e) => write!(f, "cannot connect to {addr}: {e}"),
            Self::Io(what, e) => write!(f, "{what}: {e}"),
        }
    }
}

impl std::error::Error for LoadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Connect(_, e) | Self::Io(_, e) => Some(e),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let ok = |url: &str, addr: &str, path: &str| {
            let t: Target = url.parse().unwrap();
            assert_eq!(t.addr, addr.parse::<SocketAddr>().unwrap(), "{url}");
            assert_eq!(t.path, path, "{url}");
        };
        ok("http://127.0.0.1:8080/hello", "127.0.0.1:8080", "/hello");
        ok("http://localhost:1/", "127.0.0.1:1", "/");
        ok("http://LOCALHOST", "127.0.0.1:80", "/");
        ok("http://[::1]:9000/slow?ms=2", "[::1]:9000", "/slow?ms=2");
        ok("http://10.0.0.1?x=1", "10.0.0.1:80", "/?x=1");
        for bad in [
            "https://127.0.0.1/",
            "127.0.0.1:80/",
            "http://example.com/",
            "http://127.0.0.1:0/",
            "http://127.0.0.1:99999/",
            "http://127.0.0.1:/",
            "http://[::1/",
            "http://u@127.0.0.1/",
            "http://127.0.0.1/a b",
        ] {
            assert!(
                matches!(bad.parse::<Target>(), Err(LoadError::Url(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn validation() {
        let ok = LoadConfig::new("http://localhost/".parse().unwrap());
        assert!(ok.validate().is_ok());
        let cases: [fn(&mut LoadConfig); 11] = [
            |c| c.headers = vec![("Bad Name".to_owned(), "v".to_owned())],
            |c| c.headers = vec![("X".to_owned(), "a\r\nInjected: 1".to_owned())],
            |c| c.rate = 0.0,
            |c| c.rate = f64::NAN,
            |c| c.connections = 0,
            |c| c.threads = 11,
            |c| c.pipeline = 0,
            |c| c.duration = Duration::ZERO,
            |c| c.duration = Duration::MAX,
            |c| c.timeout = Duration::from_millis(u64::MAX),
            |c| c.method = "get".to_owned(),
        ];
        for (n, change) in cases.iter().enumerate() {
            let mut config = ok.clone();
            change(&mut config);
            assert!(
                matches!(config.validate(), Err(LoadError::Config(_))),
                "case {n}"
            );
        }
    }

    #[test]
    fn request_bytes() {
        let mut config = LoadConfig::new("http://localhost:8080/x".parse().unwrap());
        assert_eq!(
            config.request_bytes(),
            b"GET /x HTTP/1.1\r\nHost: localhost:8080\r\nUser-Agent: rtserve-load\r\n\r\n"
        );
        config.method = "POST".to_owned();
        config.body = b"hi".to_vec();
        config.new_connection_per_request = true;
        config.headers = vec![("Content-Type".to_owned(), "application/json".to_owned())];
        assert_eq!(
            config.request_bytes(),
            b"POST /x HTTP/1.1\r\nHost: localhost:8080\r\nUser-Agent: rtserve-load\r\n\
              Content-Type: application/json\r\nConnection: close\r\nContent-Length: 2\r\n\r\nhi"
        );
    }
}
