//! Property tests for `ServerConn`: random streams of pipelined requests, valid or not, give
//! the same events and errors however they are split across reads.
//!
//! Well-formed streams are also checked against a model built by the generator (the heads,
//! bodies and persistence it wrote), so the parser cannot pass by being consistently wrong.
//! Every call goes through the driver in `common`, which checks the `recv` invariants on the
//! way (consumed ≤ input length, body ranges inside the consumed bytes, errors final); a panic
//! anywhere fails the case.

mod common;

use proptest::{collection::vec, prelude::*, sample::Index, test_runner::Config};
use rtserve_protocol::{Limits, Method};

use common::{Ev, HeadView, req, run};

/// Moderate case counts: every case runs a stream several times, byte by byte included, and
/// the suite must stay fast in debug builds on a small CI machine.
/// `PROPTEST_CASES` in the environment overrides the count, for a deeper run.
fn config(cases: u32) -> Config {
    let defaults = Config::default();
    Config {
        cases: std::env::var_os("PROPTEST_CASES").map_or(cases, |_| defaults.cases),
        // Keep failures out of the source tree; a failing case prints its minimal input.
        failure_persistence: None,
        ..defaults
    }
}

const METHODS: &[(&str, Method)] = &[
    ("GET", Method::Get),
    ("HEAD", Method::Head),
    ("POST", Method::Post),
    ("PUT", Method::Put),
    ("DELETE", Method::Delete),
    ("PATCH", Method::Patch),
    ("OPTIONS", Method::Options),
    ("PROPFIND", Method::Other),
];

const HOSTS: &[&str] = &["a", "example.com", "127.0.0.1:8080", "[::1]:443", ""];

/// Connection values, with whether they hold the `close` and `keep-alive` tokens.
const CONNECTIONS: &[(&str, bool, bool)] = &[
    ("close", true, false),
    ("Close", true, false),
    ("keep-alive", false, true),
    ("Keep-Alive, x-foo", false, true),
    ("x-foo, close", true, false),
    ("upgrade", false, false),
];

/// One chunk of a chunked body, as it is written.
#[derive(Clone, Debug)]
struct Chunk {
    data: Vec<u8>,
    upper: bool,
    zeros: usize,
    ext: String,
}

#[derive(Clone, Debug)]
enum BodySpec {
    None,
    Length(Vec<u8>),
    Chunked {
        chunks: Vec<Chunk>,
        last_zeros: usize,
        last_ext: String,
        trailers: Vec<(String, String)>,
    },
}

/// A well-formed request, as the generator wrote it.
#[derive(Clone, Debug)]
struct RequestSpec {
    empty_lines: Vec<&'static str>,
    method: usize,
    path: String,
    query: Option<String>,
    http10: bool,
    host: Option<usize>,
    headers: Vec<(String, String)>,
    expect: bool,
    body: BodySpec,
    connection: Option<usize>,
}

impl RequestSpec {
    /// Appends the request to `out`; returns the events it must produce and whether the
    /// connection stays open after it.
    fn render(&self, out: &mut Vec<u8>) -> (Vec<Ev>, bool) {
        let (method_str, method) = METHODS[self.method];
        let mut target = self.path.clone();
        if let Some(q) = &self.query {
            target.push('?');
            target.push_str(q);
        }
        let version = if self.http10 { "HTTP/1.0" } else { "HTTP/1.1" };
        for line in &self.empty_lines {
            out.extend_from_slice(line.as_bytes());
        }
        out.extend_from_slice(format!("{method_str} {target} {version}\r\n").as_bytes());
        let mut head = req(method, method_str, &target).path(&self.path);
        if let Some(q) = &self.query {
            head = head.query(q);
        }
        if self.http10 {
            head = head.v10();
        }
        let mut field = |head: HeadView, name: &str, value: &str| {
            out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
            head.header(name, value.as_bytes())
        };
        if let Some(h) = self.host {
            head = field(head, "Host", HOSTS[h]).authority(HOSTS[h]);
        }
        for (name, value) in &self.headers {
            head = field(head, name, value);
        }
        let mut keep_alive = !self.http10;
        if let Some(c) = self.connection {
            let (value, close, persist) = CONNECTIONS[c];
            head = field(head, "Connection", value);
            keep_alive = if self.http10 {
                persist && !close
            } else {
                !close
            };
        }
        head = head.keep_alive(keep_alive);
        let has_body = match &self.body {
            BodySpec::None => false,
            BodySpec::Length(data) => !data.is_empty(),
            BodySpec::Chunked { .. } => true,
        };
        if self.expect {
            head = field(head, "Expect", "100-continue");
            // RFC 9110 §10.1.1: only HTTP/1.1 requests with a body wait for 100.
            if has_body && !self.http10 {
                head = head.expects_continue();
            }
        }
        let mut data = Vec::new();
        match &self.body {
            BodySpec::None => {}
            BodySpec::Length(bytes) => {
                head = field(head, "Content-Length", &bytes.len().to_string())
                    .length(bytes.len().try_into().expect("a generated body is small"));
                data.clone_from(bytes);
            }
            BodySpec::Chunked { .. } => {
                head = field(head, "Transfer-Encoding", "chunked").chunked();
            }
        }
        out.extend_from_slice(b"\r\n");
        if let BodySpec::Length(bytes) = &self.body {
            out.extend_from_slice(bytes);
        }
        if let BodySpec::Chunked {
            chunks,
            last_zeros,
            last_ext,
            trailers,
        } = &self.body
        {
            for chunk in chunks {
                let size = if chunk.upper {
                    format!("{:X}", chunk.data.len())
                } else {
                    format!("{:x}", chunk.data.len())
                };
                let zeros = "0".repeat(chunk.zeros);
                out.extend_from_slice(format!("{zeros}{size}{}\r\n", chunk.ext).as_bytes());
                out.extend_from_slice(&chunk.data);
                out.extend_from_slice(b"\r\n");
                data.extend_from_slice(&chunk.data);
            }
            let zeros = "0".repeat(last_zeros + 1);
            out.extend_from_slice(format!("{zeros}{last_ext}\r\n").as_bytes());
            for (name, value) in trailers {
                out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
            }
            out.extend_from_slice(b"\r\n");
        }
        let mut events = vec![Ev::from(head)];
        if !data.is_empty() {
            events.push(Ev::Body(data));
        }
        events.push(Ev::End);
        (events, keep_alive)
    }
}

/// Renders a stream of requests; returns it and the events it must produce.
fn render_all(requests: &[RequestSpec]) -> (Vec<u8>, Vec<Ev>) {
    let mut input = Vec::new();
    let mut expected = Vec::new();
    let mut open = true;
    for request in requests {
        let (events, keep_alive) = request.render(&mut input);
        if open {
            expected.extend(events);
            open = keep_alive;
        }
    }
    expected.push(if open { Ev::NeedMore } else { Ev::Closed });
    (input, expected)
}

// ---------------------------------------------------------------------------------------------
// Strategies.

fn token() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9-]{0,6}"
}

fn chunk_ext() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => Just(String::new()),
        1 => (token(), prop_oneof![
            Just(String::new()),
            "=[a-zA-Z0-9]{1,5}",
            "=\"[a-z ;=]{0,6}\"",
        ], prop_oneof![Just(""), Just(" "), Just("\t ")])
            .prop_map(|(name, value, bws)| format!("{bws};{name}{value}")),
    ]
}

fn chunk() -> impl Strategy<Value = Chunk> {
    (
        vec(any::<u8>(), 1..24),
        any::<bool>(),
        0usize..3,
        chunk_ext(),
    )
        .prop_map(|(data, upper, zeros, ext)| Chunk {
            data,
            upper,
            zeros,
            ext,
        })
}

fn body() -> impl Strategy<Value = BodySpec> {
    prop_oneof![
        2 => Just(BodySpec::None),
        2 => vec(any::<u8>(), 0..40).prop_map(BodySpec::Length),
        2 => (
            vec(chunk(), 0..5),
            0usize..3,
            chunk_ext(),
            vec(("X-[A-Za-z0-9]{1,6}", "[!-~]([ -~]{0,8}[!-~])?"), 0..3),
        )
            .prop_map(|(chunks, last_zeros, last_ext, trailers)| BodySpec::Chunked {
                chunks,
                last_zeros,
                last_ext,
                trailers,
            }),
    ]
}

fn request() -> impl Strategy<Value = RequestSpec> {
    (
        // RFC 9112 §2.2: empty lines before a request line are ignored; a few, or many.
        prop_oneof![
            4 => vec(prop_oneof![Just("\r\n"), Just("\n")], 0..2),
            1 => vec(prop_oneof![Just("\r\n"), Just("\n")], 0..40),
        ],
        0..METHODS.len(),
        vec("[a-zA-Z0-9._~-]{0,6}", 0..3).prop_map(|segments| format!("/{}", segments.join("/"))),
        proptest::option::of("[a-z0-9=&]{0,8}"),
        proptest::bool::weighted(0.2),
        (0..HOSTS.len(), any::<bool>()),
        vec(("X-[a-z]{1,8}", "([!-~]([ -~]{0,10}[!-~])?)?"), 0..4),
        proptest::bool::weighted(0.2),
        body(),
        proptest::option::weighted(0.3, 0..CONNECTIONS.len()),
    )
        .prop_map(
            |(
                empty_lines,
                method,
                path,
                query,
                http10,
                (host, send_host),
                headers,
                expect,
                body,
                connection,
            )| {
                RequestSpec {
                    empty_lines,
                    method,
                    path,
                    query,
                    http10,
                    // HTTP/1.1 requires Host (RFC 9112 §3.2); HTTP/1.0 may go without.
                    host: (send_host || !http10).then_some(host),
                    headers,
                    expect,
                    // RFC 9112 §6.1: no Transfer-Encoding in HTTP/1.0.
                    body: match body {
                        BodySpec::Chunked { .. } if http10 => BodySpec::Length(b"x".to_vec()),
                        body => body,
                    },
                    connection,
                }
            },
        )
}

/// Pieces that break a stream: smuggling shapes, bad framing, garbage, random bytes.
fn broken() -> impl Strategy<Value = Vec<u8>> {
    let chunked = "POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
    prop_oneof![
        Just(
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n\
              3\r\nabc\r\n0\r\n\r\n"
                .to_vec()
        ),
        Just(
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n\
              abcd"
                .to_vec()
        ),
        Just(
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n\
              0\r\n\r\n"
                .to_vec()
        ),
        Just(b"GET / HTTP/1.1\r\nHost: a\r\nX: b\r\n c\r\n\r\n".to_vec()),
        Just(b"GET / HTTP/1.1\r\n\r\n".to_vec()),
        Just(b"GET / HTTP/2.0\r\nHost: a\r\n\r\n".to_vec()),
        Just(b"\x01garbage\r\n".to_vec()),
        Just(b"GET / HTTP/1.1\r\nHost: a\r\nExpect: x\r\n\r\n".to_vec()),
        prop_oneof![
            Just("zz"),
            Just("-1"),
            Just("0x5"),
            Just(" 5"),
            Just("5 5"),
            Just("10000000000000000"),
            Just("5;a\nb"),
        ]
        .prop_map(move |size| format!("{chunked}{size}\r\nhello\r\n0\r\n\r\n").into_bytes()),
        Just(format!("{chunked}5\r\nhelloXX0\r\n\r\n").into_bytes()),
        Just(format!("{chunked}0\r\nBad Trailer\r\n\r\n").into_bytes()),
        vec(any::<u8>(), 0..24),
    ]
}

#[derive(Clone, Debug)]
enum Item {
    Request(RequestSpec),
    Broken(Vec<u8>),
}

fn items() -> impl Strategy<Value = Vec<Item>> {
    vec(
        prop_oneof![
            4 => request().prop_map(Item::Request),
            1 => broken().prop_map(Item::Broken),
        ],
        1..6,
    )
}

/// Replace (0), insert (1) or delete (2) a byte at a position.
fn mutations() -> impl Strategy<Value = Vec<(Index, u8, u8)>> {
    prop_oneof![
        2 => Just(Vec::new()),
        1 => vec((any::<Index>(), 0u8..3, any::<u8>()), 1..4),
    ]
}

fn mutate(input: &mut Vec<u8>, mutations: &[(Index, u8, u8)]) {
    for &(at, kind, byte) in mutations {
        match kind {
            0 if !input.is_empty() => {
                let i = at.index(input.len());
                input[i] = byte;
            }
            1 => input.insert(at.index(input.len() + 1), byte),
            2 if !input.is_empty() => {
                input.remove(at.index(input.len()));
            }
            _ => {}
        }
    }
}

/// Small limits, so that every limit is hit somewhere, or the defaults.
fn limits() -> impl Strategy<Value = Limits> {
    prop_oneof![
        1 => Just(Limits::default()),
        2 => (
            32usize..400,
            // Sometimes as long as the head may be.
            prop_oneof![8usize..200, Just(usize::MAX)],
            1usize..10,
            0u64..120,
            3usize..40,
            2usize..80,
            0usize..4,
        )
            .prop_map(|(head, line, headers, body, chunk_line, trailer, trailers)| {
                let mut l = Limits::default();
                l.max_head = head;
                l.max_request_line = line.min(head);
                l.max_headers = headers;
                l.max_body = body;
                l.max_chunk_line = chunk_line;
                l.max_trailer = trailer;
                l.max_trailers = trailers;
                l
            }),
    ]
}

fn splits() -> impl Strategy<Value = Vec<Index>> {
    vec(any::<Index>(), 1..8)
}

/// Split points in `0..=len`, ascending.
fn points(splits: &[Index], len: usize) -> Vec<usize> {
    let mut points: Vec<usize> = splits.iter().map(|i| i.index(len + 1)).collect();
    points.sort_unstable();
    points
}

/// Checks that `input` gives the same outcome whole, split at `splits` and byte by byte.
fn check_splits(limits: Limits, input: &[u8], splits: &[Index]) -> Result<(), TestCaseError> {
    let whole = run(limits, input, &[]);
    let at = points(splits, input.len());
    let split = run(limits, input, &at);
    prop_assert_eq!(
        &split,
        &whole,
        "split at {:?}: b\"{}\" with {:?}",
        at,
        input.escape_ascii(),
        limits
    );
    let bytes: Vec<usize> = (1..input.len()).collect();
    let bytewise = run(limits, input, &bytes);
    prop_assert_eq!(
        &bytewise,
        &whole,
        "byte by byte: b\"{}\" with {:?}",
        input.escape_ascii(),
        limits
    );
    Ok(())
}

proptest! {
    #![proptest_config(config(384))]

    /// Valid pipelined requests produce exactly what the generator wrote, however split.
    #[test]
    fn well_formed_streams_match_the_model(requests in vec(request(), 1..6), splits in splits()) {
        let (input, expected) = render_all(&requests);
        let whole = run(Limits::default(), &input, &[]);
        prop_assert_eq!(&whole.events, &expected, "b\"{}\"", input.escape_ascii());
        check_splits(Limits::default(), &input, &splits)?;
    }

    /// Any mix of valid and broken requests, mutated and under any limits, gives the same
    /// events and errors however split.
    #[test]
    fn any_stream_is_split_invariant(
        items in items(),
        mutations in mutations(),
        limits in limits(),
        splits in splits(),
    ) {
        let mut input = Vec::new();
        for item in &items {
            match item {
                Item::Request(request) => {
                    request.render(&mut input);
                }
                Item::Broken(bytes) => input.extend_from_slice(bytes),
            }
        }
        mutate(&mut input, &mutations);
        check_splits(limits, &input, &splits)?;
    }

    /// Random bytes, at the start of a connection or inside a chunked body: no panic, the
    /// driver's invariants hold, and the split does not matter.
    #[test]
    fn random_bytes_are_split_invariant(
        prefix in prop_oneof![
            Just(&b""[..]),
            Just(&b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"[..]),
            Just(&b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"[..]),
            Just(&b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n"[..]),
            Just(&b"GET / HTTP/1.1\r\n"[..]),
        ],
        bytes in vec(
            prop_oneof![
                3 => any::<u8>(),
                2 => prop::sample::select(&b"\r\n:; \t0123456789abcdefABCDEF"[..]),
            ],
            0..120,
        ),
        limits in limits(),
        splits in splits(),
    ) {
        let input = [prefix, &bytes[..]].concat();
        check_splits(limits, &input, &splits)?;
    }
}
