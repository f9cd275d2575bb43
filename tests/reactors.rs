//! Reactors and listening sockets: one SO_REUSEPORT listener per reactor on one port, new
//! connections spread across reactors, port ownership, IPv6, the connection limit, config
//! validation and graceful shutdown.

mod support;

use std::{
    collections::BTreeSet,
    io::{ErrorKind, Read},
    net::{TcpListener, TcpStream},
    thread,
    time::Duration,
};

use rtserve_reactor::{Server, StartError};
use support::{Client, TIMEOUT, TestServer, config, get, listening_on, routes, tcp_sockets};

/// Whether `/proc/net/tcp` can be read here; prints why a test is skipped if not.
fn have_proc_net_tcp() -> bool {
    let ok = !tcp_sockets().is_empty();
    if !ok {
        eprintln!("skipped: /proc/net/tcp is not readable here");
    }
    ok
}

#[test]
fn every_reactor_has_its_own_listening_socket_on_the_port() {
    let mut c = config();
    c.reactors = 4;
    let server = TestServer::routes(c);
    assert_ne!(server.addr.port(), 0);
    if have_proc_net_tcp() {
        assert_eq!(listening_on(server.addr.port()), 4);
    }
}

#[test]
fn new_connections_are_spread_across_reactors() {
    let mut c = config();
    c.reactors = 4;
    let server = TestServer::routes(c);
    // Connect all first, so that the kernel picks a listener for each of 64 different
    // source ports while they are all open.
    let mut clients: Vec<Client> = (0..64).map(|_| Client::new(server.connect())).collect();
    for client in &mut clients {
        client.send(&get("/reactor"));
    }
    let mut seen = BTreeSet::new();
    for client in &mut clients {
        let r = client.response();
        assert_eq!(r.status, 200);
        let index: usize = r.text().parse().expect("a reactor index");
        assert!(index < 4, "reactor {index} of 4");
        seen.insert(index);
    }
    assert!(
        seen.len() > 1,
        "64 connections all went to reactors {seen:?}"
    );
}

#[test]
fn a_second_server_on_the_same_address_is_refused() {
    let first = TestServer::routes(config());
    let mut c = config();
    c.addr = first.addr;
    match Server::start(c, routes()) {
        Err(StartError::Io(e)) => {
            assert_eq!(e.kind(), ErrorKind::AddrInUse, "{e}");
            let shown = StartError::Io(e).to_string();
            assert!(shown.contains(&first.addr.to_string()), "{shown}");
        }
        Err(other) => panic!("expected an address-in-use error, got {other}"),
        Ok(second) => {
            second.shutdown();
            panic!("a second server started on {}", first.addr);
        }
    }
    // The first one is untouched.
    assert_eq!(support::request(&first, &get("/hello")).status, 200);
}

#[test]
fn a_shared_port_is_joined_on_purpose() {
    let first = TestServer::routes(config());
    let mut c = config();
    c.addr = first.addr;
    c.shared_port = true;
    let second = TestServer::routes(c);
    assert_eq!(second.addr, first.addr);
    if have_proc_net_tcp() {
        assert_eq!(listening_on(first.addr.port()), 4);
    }
    // The kernel spreads connections over the group by their 4-tuple: keep connecting
    // until both servers have answered (each new source port is a new draw; missing one
    // server 1,000 times running has odds of about 2^-1000).
    let answered = |server: &TestServer| {
        server
            .stats()
            .routes
            .iter()
            .map(|r| r.requests())
            .sum::<u64>()
    };
    for _ in 0..1000 {
        if answered(&first) > 0 && answered(&second) > 0 {
            break;
        }
        assert_eq!(support::request(&first, &get("/hello")).status, 200);
    }
    assert!(answered(&first) > 0, "the first server answered nothing");
    assert!(answered(&second) > 0, "the joining server answered nothing");
    drop(second);
    drop(first);
}

#[test]
fn a_plain_listener_on_the_port_is_refused_even_when_sharing() {
    let plain = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = plain.local_addr().unwrap();
    for shared in [false, true] {
        let mut c = config();
        c.addr = addr;
        c.shared_port = shared;
        match Server::start(c, routes()) {
            Err(StartError::Io(e)) => assert_eq!(e.kind(), ErrorKind::AddrInUse, "{e}"),
            Err(other) => panic!("expected an address-in-use error, got {other}"),
            Ok(server) => {
                server.shutdown();
                panic!("started on a port a plain listener holds (shared: {shared})");
            }
        }
    }
}

#[test]
fn ipv6_loopback() {
    if let Err(e) = TcpListener::bind("[::1]:0") {
        eprintln!("skipped: no IPv6 loopback here ({e})");
        return;
    }
    let mut c = config();
    c.addr = "[::1]:0".parse().unwrap();
    c.reactors = 3;
    let server = TestServer::routes(c);
    assert!(server.addr.is_ipv6(), "{}", server.addr);
    assert_ne!(server.addr.port(), 0);
    if have_proc_net_tcp() {
        assert_eq!(listening_on(server.addr.port()), 3);
    }
    let r = support::request(&server, &get("/hello"));
    assert_eq!((r.status, r.text().as_str()), (200, "hello\n"));
}

#[test]
fn zero_reactors_is_a_config_error() {
    let mut c = config();
    c.reactors = 0;
    match Server::start(c, routes()) {
        Err(StartError::Config(e)) => {
            assert_eq!(e.setting, "reactors");
            let shown = StartError::Config(e).to_string();
            assert!(shown.contains("reactors"), "{shown}");
        }
        Err(other) => panic!("expected a config error, got {other}"),
        Ok(server) => {
            server.shutdown();
            panic!("started with zero reactors");
        }
    }
}

#[test]
fn other_bad_settings_are_config_errors() {
    type Change = fn(&mut rtserve_reactor::Config);
    let cases: [(Change, &str); 4] = [
        (|c| c.idle_timeout = Duration::ZERO, "idle_timeout"),
        (|c| c.max_connections = 0, "max_connections"),
        (|c| c.limits.max_headers = 0, "limits"),
        (|c| c.requests_per_turn = 0, "requests_per_turn"),
    ];
    for (change, setting) in cases {
        let mut c = config();
        change(&mut c);
        match Server::start(c, routes()) {
            Err(StartError::Config(e)) => assert_eq!(e.setting, setting),
            Err(other) => panic!("{setting}: expected a config error, got {other}"),
            Ok(server) => {
                server.shutdown();
                panic!("started with a bad {setting}");
            }
        }
    }
}

#[test]
fn connections_past_the_limit_wait_for_a_free_slot() {
    let mut c = config();
    c.reactors = 1;
    c.max_connections = 2;
    let server = TestServer::routes(c);
    let mut first = Client::new(server.connect());
    let mut second = Client::new(server.connect());
    for client in [&mut first, &mut second] {
        client.send(&get("/hello"));
        assert_eq!(client.response().status, 200);
    }
    // The kernel completes the third handshake, but the reactor does not take it yet.
    let mut third = Client::new(server.connect());
    third.send(&get("/hello"));
    third.expect_nothing_yet();
    // A slot frees: the waiting connection is taken and answered.
    drop(first);
    let r = third.response();
    assert_eq!(r.status, 200);
    second.send(&get("/hello"));
    assert_eq!(second.response().status, 200);
}

#[test]
fn a_client_that_resets_frees_its_slot() {
    let mut c = config();
    c.reactors = 1;
    c.max_connections = 1;
    let server = TestServer::routes(c);
    let mut first = Client::new(server.connect());
    first.send(&get("/big?size=8000000"));
    // Wait for the first bytes, then close with the rest unread: the kernel resets.
    let mut byte = [0u8; 1];
    assert_eq!(first.stream.read(&mut byte).unwrap(), 1);
    let mut waiting = Client::new(server.connect());
    waiting.send(&get("/hello"));
    drop(first);
    // The reset frees the only slot: the waiting connection is taken and answered.
    assert_eq!(waiting.response().text(), "hello\n");
}

#[test]
fn shutdown_closes_idle_connections_and_stops_listening() {
    let handle = Server::start(config(), routes()).expect("server starts");
    let addr = handle.local_addr();
    let connect = || {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(TIMEOUT)).unwrap();
        Client::new(s)
    };
    let mut idle = connect();
    idle.send(&get("/hello"));
    assert_eq!(idle.response().status, 200);
    // A request whose head is still arriving when shutdown begins is answered, and its
    // answer says the connection closes.
    let mut busy = connect();
    busy.send(b"GET /path?late HTTP/1.1\r\nHo");
    support::wait_until_read_at(addr, &busy.stream);
    handle.shutdown();
    idle.expect_eof();
    busy.send(b"st: x\r\n\r\n");
    let r = busy.response();
    assert_eq!((r.status, r.text().as_str()), (200, "/path?late"));
    assert_eq!(r.header("connection"), Some("close"));
    busy.expect_eof();

    support::join_within_timeout(handle);
    let refused = TcpStream::connect_timeout(&addr, TIMEOUT);
    assert!(refused.is_err(), "still accepting after shutdown");
}

/// Shuts a one-reactor server down while `client` holds a connection with no request in
/// hand, sends a request 20 ms later, and checks that it is answered and told the connection
/// closes (rather than read and dropped).
#[track_caller]
fn request_after_shutdown_is_answered(handle: rtserve_reactor::ServerHandle, client: &mut Client) {
    handle.shutdown();
    thread::sleep(Duration::from_millis(20));
    client.send(&get("/path?after-shutdown"));
    let r = client.response();
    assert_eq!((r.status, r.text().as_str()), (200, "/path?after-shutdown"));
    assert_eq!(r.header("connection"), Some("close"), "{r:?}");
    client.expect_eof();
    support::join_within_timeout(handle);
}

#[test]
fn shutdown_answers_the_first_request_of_a_fresh_connection() {
    let mut c = config();
    c.reactors = 1;
    // A connection accepted before it sends anything: not deferred.
    c.defer_accept = None;
    let handle = Server::start(c, routes()).expect("server starts");
    let mut fresh = Client::new(support::connect(handle.local_addr()));
    // Accepted, not just queued, before shutdown begins.
    assert!(support::wait_until(
        || handle.stats().open_connections == [1]
    ));
    request_after_shutdown_is_answered(handle, &mut fresh);
}

#[test]
fn shutdown_answers_the_next_request_of_an_idle_keep_alive_connection() {
    let mut c = config();
    c.reactors = 1;
    let handle = Server::start(c, routes()).expect("server starts");
    let mut idle = Client::new(support::connect(handle.local_addr()));
    idle.send(&get("/hello"));
    let first = idle.response();
    assert_eq!((first.status, first.header("connection")), (200, None));
    request_after_shutdown_is_answered(handle, &mut idle);
}

#[test]
fn during_the_drain_grace_responses_say_the_connection_closes() {
    let mut c = config();
    // Longer than this test needs to send two requests, busy machine included.
    c.drain_grace = Duration::from_secs(3);
    let handle = Server::start(c, routes()).expect("server starts");
    let addr = handle.local_addr();
    let mut keep_alive = Client::new(support::connect(addr));
    keep_alive.send(&get("/hello"));
    assert_eq!(keep_alive.response().header("connection"), None);
    handle.shutdown();
    // Still serving, on the connection it had and on new ones, but each answer moves the
    // client off.
    keep_alive.send(&get("/path?draining"));
    let r = keep_alive.response();
    assert_eq!((r.status, r.header("connection")), (200, Some("close")));
    keep_alive.expect_eof();
    let mut new = Client::new(support::connect(addr));
    new.send(&get("/path?new"));
    let r = new.response();
    assert_eq!((r.status, r.header("connection")), (200, Some("close")));
    new.expect_eof();
    support::join_within_timeout(handle);
}

#[test]
fn shutdown_serves_connections_already_in_the_accept_queue() {
    let mut c = config();
    c.reactors = 1;
    let handle = Server::start(c, routes()).expect("server starts");
    let addr = handle.local_addr();
    let connect = || {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(TIMEOUT)).unwrap();
        Client::new(s)
    };
    // Keep the only reactor busy while clients connect and send their requests: they wait
    // in the listener's accept queue when shutdown begins.
    let mut blocker = connect();
    support::block_reactor(&mut blocker, 500);
    thread::sleep(Duration::from_millis(100));
    let mut queued: Vec<Client> = (0..5).map(|_| connect()).collect();
    for (i, client) in queued.iter_mut().enumerate() {
        client.send(&get(&format!("/path?queued={i}")));
    }
    handle.shutdown();
    assert_eq!(blocker.response().text(), "slept\n");
    // Each was accepted and answered (closing), not reset.
    for (i, client) in queued.iter_mut().enumerate() {
        let r = client.response();
        assert_eq!((r.status, r.text()), (200, format!("/path?queued={i}")));
        assert_eq!(r.header("connection"), Some("close"));
        client.expect_eof();
    }
    drop(blocker);
    support::join_within_timeout(handle);
}
