//! Statistics and the request log, read after real traffic.

mod support;

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use rtserve_reactor::{LogRecord, RequestLog};
use support::{Client, TIMEOUT, TestServer, config, request};

#[test]
fn responses_are_counted_by_route_and_status_and_logged() {
    let seen: Arc<Mutex<Vec<(String, u16)>>> = Arc::default();
    let mut config = config();
    let sink = Arc::clone(&seen);
    config.request_log = Some(RequestLog::new(1024, move |r: &LogRecord<'_>| {
        sink.lock()
            .unwrap()
            .push((r.route.to_owned(), r.status.as_u16()));
    }));
    let server = TestServer::routes(config);
    let mut client = Client::new(server.connect());
    for _ in 0..3 {
        client.send(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(client.response().status, 200);
    }
    client.send(b"GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(client.response().status, 404);
    // The server's own answer to a malformed request is counted too.
    assert_eq!(request(&server, b"GET / HTTP/1.1\r\n\r\n").status, 400);

    let stats = server.stats();
    let hello = stats.routes.iter().find(|r| r.name == "/hello").unwrap();
    assert_eq!(hello.by_status, [(200, 3)]);
    assert_eq!(hello.latency.buckets.iter().sum::<u64>(), 3);
    let other = stats.routes.last().unwrap();
    assert_eq!(other.name, "other");
    assert_eq!(other.by_status, [(400, 1), (404, 1)]);
    assert_eq!(stats.accepted, 2);

    // The logger thread gets there too, in its own time.
    let wait = Instant::now();
    loop {
        let mut got = seen.lock().unwrap().clone();
        got.sort();
        if got.len() == 5 {
            assert_eq!(
                got,
                [
                    ("/hello".to_owned(), 200),
                    ("/hello".to_owned(), 200),
                    ("/hello".to_owned(), 200),
                    ("other".to_owned(), 400),
                    ("other".to_owned(), 404),
                ]
            );
            break;
        }
        assert!(wait.elapsed() < TIMEOUT, "log has {got:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
}
