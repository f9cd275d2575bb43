//! OPTIONS and CORS over real sockets: raw bytes, curl, and a headless Chromium page that
//! fetches from another origin. The curl and Chromium tests say they skipped, and why, when
//! the program is not installed.

mod support;

use std::{
    io::Read,
    process::{Command, Stdio},
    sync::{Arc, OnceLock},
    time::{Duration, Instant},
};

use rtserve_reactor::{Cors, Method, Reply, Request, Response, Router, StatusCode};
use support::{Client, TestServer, config};

/// The API the tests call across origins: GET and PUT `/items/{id}`, echoing what they got.
fn api() -> Router {
    Router::new()
        .get("/items/{id}", |req: &Request<'_>| -> Reply {
            let id = req.param("id").unwrap_or_default();
            Response::text(StatusCode::OK, format!("item {id}\n")).into()
        })
        .put("/items/{id}", |req: &Request<'_>| -> Reply {
            let body = String::from_utf8_lossy(req.body()).into_owned();
            Response::new(StatusCode::OK)
                .with_content_type("application/json")
                .with_body(body)
                .into()
        })
}

/// The API with a policy allowing `origin` to GET and PUT with a JSON body.
fn api_for(origin: &str) -> impl rtserve_reactor::Handler {
    Cors::new()
        .allow_origin(origin)
        .allow_methods(&[Method::Get, Method::Put])
        .allow_headers(&["Content-Type"])
        .max_age(Duration::from_secs(60))
        .wrap(api())
}

const PREFLIGHT: &[u8] = b"OPTIONS /items/7 HTTP/1.1\r\nHost: x\r\n\
    Origin: https://app.example\r\nAccess-Control-Request-Method: PUT\r\n\
    Access-Control-Request-Headers: content-type\r\n\r\n";

#[test]
fn options_is_204_with_allow_for_a_path_and_for_the_server() {
    let server = TestServer::start(config(), api());
    let mut client = Client::new(server.connect());
    client.send(b"OPTIONS /items/7 HTTP/1.1\r\nHost: x\r\n\r\n");
    let reply = client.response();
    assert_eq!(reply.status, 204, "{reply:?}");
    assert_eq!(reply.header("allow"), Some("GET, HEAD, PUT, OPTIONS"));
    // RFC 9110 §8.6: no Content-Length in a 204.
    assert_eq!(reply.header("content-length"), None);
    assert!(reply.body.is_empty());
    // RFC 9110 §9.3.7: asterisk-form asks about the server as a whole.
    client.send(b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n");
    let reply = client.response();
    assert_eq!(reply.status, 204, "{reply:?}");
    assert_eq!(reply.header("allow"), Some("GET, HEAD, PUT, OPTIONS"));
    // An unknown path is still unknown, and the connection goes on.
    client.send(b"OPTIONS /nope HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(client.response().status, 404);
    // Asterisk-form is for OPTIONS alone (RFC 9112 §3.2.4).
    client.send(b"GET * HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(client.response().status, 400);
}

#[test]
fn a_preflight_is_answered_and_the_request_after_it_is_marked() {
    let server = TestServer::start(config(), api_for("https://app.example"));
    let mut client = Client::new(server.connect());
    client.send(PREFLIGHT);
    let reply = client.response();
    assert_eq!(reply.status, 204, "{reply:?}");
    for (name, value) in [
        ("access-control-allow-origin", "https://app.example"),
        ("access-control-allow-methods", "GET, PUT"),
        ("access-control-allow-headers", "content-type"),
        ("access-control-max-age", "60"),
    ] {
        assert_eq!(reply.header(name), Some(value), "{name}: {reply:?}");
    }
    client.send(
        b"PUT /items/7 HTTP/1.1\r\nHost: x\r\nOrigin: https://app.example\r\n\
          Content-Type: application/json\r\nContent-Length: 7\r\n\r\n{\"a\":1}",
    );
    let reply = client.response();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.text(), "{\"a\":1}");
    assert_eq!(
        reply.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    assert_eq!(reply.header("vary"), Some("Origin"));
    // Another origin gets no allowance.
    client.send(b"GET /items/7 HTTP/1.1\r\nHost: x\r\nOrigin: https://evil.example\r\n\r\n");
    let reply = client.response();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("access-control-allow-origin"), None);
}

/// Runs `program` with `args` and returns its standard output, or why it could not.
fn run(program: &str, args: &[&str], within: Duration) -> Result<String, String> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("{program} cannot be run: {e}"))?;
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            let mut out = String::new();
            let _ = child.stdout.take().unwrap().read_to_string(&mut out);
            return if status.success() {
                Ok(out)
            } else {
                Err(format!("{program} exited with {status}: {out}"))
            };
        }
        if started.elapsed() > within {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("{program} did not finish within {within:?}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether `program` answers `--version`; if not, says that the test skipped, and why.
fn installed(program: &str, test: &str) -> bool {
    match run(program, &["--version"], Duration::from_secs(30)) {
        Ok(_) => true,
        Err(why) => {
            eprintln!("SKIPPED {test}: {why} (install it: apt-get install {program})");
            false
        }
    }
}

#[test]
fn curl_sees_options_and_a_preflight() {
    if !installed("curl", "curl_sees_options_and_a_preflight") {
        return;
    }
    let server = TestServer::start(config(), api_for("https://app.example"));
    let base = format!("http://{}", server.addr);
    let within = Duration::from_secs(20);
    let path = format!("{base}/items/7");
    let out = run("curl", &["-sS", "-i", "-X", "OPTIONS", &path], within).unwrap();
    assert!(out.starts_with("HTTP/1.1 204 No Content\r\n"), "{out}");
    assert!(
        out.contains("\r\nAllow: GET, HEAD, PUT, OPTIONS\r\n"),
        "{out}"
    );

    let args = ["-sS", "-i", "-X", "OPTIONS", "--request-target", "*", &base];
    let out = run("curl", &args, within).unwrap();
    assert!(out.starts_with("HTTP/1.1 204 No Content\r\n"), "{out}");
    assert!(
        out.contains("\r\nAllow: GET, HEAD, PUT, OPTIONS\r\n"),
        "{out}"
    );

    let preflight = [
        "-sS",
        "-i",
        "-X",
        "OPTIONS",
        "-H",
        "Origin: https://app.example",
        "-H",
        "Access-Control-Request-Method: PUT",
        "-H",
        "Access-Control-Request-Headers: content-type",
        &path,
    ];
    let out = run("curl", &preflight, within).unwrap();
    assert!(out.starts_with("HTTP/1.1 204 No Content\r\n"), "{out}");
    for line in [
        "Access-Control-Allow-Origin: https://app.example",
        "Access-Control-Allow-Methods: GET, PUT",
        "Access-Control-Allow-Headers: content-type",
        "Access-Control-Max-Age: 60",
    ] {
        assert!(out.contains(&format!("\r\n{line}\r\n")), "{line}: {out}");
    }
}

/// The page the browser loads from the first origin: it PUTs JSON to `allowed` (a
/// preflighted request) and GETs from `refused` (whose policy names another origin), and
/// writes what happened into the document.
fn page(allowed: &str, refused: &str) -> String {
    format!(
        r#"<!doctype html><html><body><pre id="out">pending</pre><script>
const out = document.getElementById("out");
async function main() {{
  const lines = [];
  try {{
    const r = await fetch("{allowed}/items/7", {{
      method: "PUT",
      headers: {{ "Content-Type": "application/json" }},
      body: JSON.stringify({{ "n": 42 }}),
    }});
    lines.push("allowed:" + r.status + ":" + (await r.text()));
  }} catch (e) {{
    lines.push("allowed:failed:" + e.name);
  }}
  try {{
    const r = await fetch("{refused}/items/7");
    lines.push("refused:" + r.status);
  }} catch (e) {{
    lines.push("refused:failed:" + e.name);
  }}
  out.textContent = "done|" + lines.join("|");
}}
main();
</script></body></html>"#
    )
}

#[test]
fn a_browser_page_fetches_across_origins_as_the_policy_says() {
    let test = "a_browser_page_fetches_across_origins_as_the_policy_says";
    let Some(chromium) = ["chromium", "chromium-browser"]
        .into_iter()
        .find(|program| installed(program, test))
    else {
        return;
    };
    // The page's origin is the first server's; the API's two servers are other origins
    // (another port is another origin). The page names them, so it is set once they run.
    let html = Arc::new(OnceLock::<String>::new());
    let page_router = Router::new().get("/", {
        let html = Arc::clone(&html);
        move |_: &Request<'_>| -> Reply {
            let html = html.get().cloned().unwrap_or_default();
            Response::text(StatusCode::OK, html)
                .with_content_type("text/html; charset=utf-8")
                .into()
        }
    });
    let page_server = TestServer::start(config(), page_router);
    let origin = format!("http://{}", page_server.addr);
    let allowed = TestServer::start(config(), api_for(&origin));
    let refused = TestServer::start(config(), api_for("http://elsewhere.example"));
    let _ = html.set(page(
        &format!("http://{}", allowed.addr),
        &format!("http://{}", refused.addr),
    ));

    let profile = std::env::temp_dir().join(format!("rtserve-cors-{}", std::process::id()));
    let profile_arg = format!("--user-data-dir={}", profile.display());
    let url = format!("http://{}/", page_server.addr);
    let args = [
        "--headless",
        // Running as root (in CI containers) needs it; the page is our own.
        "--no-sandbox",
        "--disable-gpu",
        "--virtual-time-budget=10000",
        &profile_arg,
        "--dump-dom",
        &url,
    ];
    let dom = run(chromium, &args, Duration::from_secs(90));
    let _ = std::fs::remove_dir_all(&profile);
    let dom = match dom {
        Ok(dom) => dom,
        Err(why) => {
            eprintln!("SKIPPED {test}: {why}");
            return;
        }
    };
    assert!(
        dom.contains(r#"done|allowed:200:{"n":42}|refused:failed:TypeError"#),
        "{dom}"
    );
}
