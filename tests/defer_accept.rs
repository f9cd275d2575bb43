//! `TCP_DEFER_ACCEPT` (`Config::defer_accept`): the kernel hands a connection over once its
//! first bytes arrive, so a client that connects and says nothing holds no connection slot;
//! one still silent when the period ends is handed over then, and the header timeout closes
//! it. Sockets made elsewhere (systemd, an earlier process) get the option too. A crowd of
//! silent clients larger than the backlog keeps no one out.

mod support;

use std::{
    net::TcpListener,
    time::{Duration, Instant},
};

use rtserve_reactor::Server;
use support::{Client, TestServer, config, connect, get, routes};

/// Far longer than any test waits: a connection deferred for it is never handed over during
/// the test (Linux rounds 30 s up to 31 s of SYN-ACK retransmissions).
const LONG: Duration = Duration::from_secs(30);

/// One reactor with one connection slot.
fn one_slot(defer_accept: Option<Duration>) -> rtserve_reactor::Config {
    let mut c = config();
    c.reactors = 1;
    c.max_connections = 1;
    c.defer_accept = defer_accept;
    c
}

/// A silent client connects first; a second client that asks at once is served, because
/// the first never reached the server to take the only slot.
#[track_caller]
fn silent_client_takes_no_slot(server: &TestServer) {
    let _silent = connect(server.addr);
    let mut asking = Client::new(server.connect());
    asking.send(&get("/hello"));
    assert_eq!(asking.response().text(), "hello\n");
    assert_eq!(server.stats().accepted, 1, "only the client that spoke");
}

#[test]
fn a_silent_client_holds_no_slot() {
    silent_client_takes_no_slot(&TestServer::routes(one_slot(Some(LONG))));
}

#[test]
fn an_inherited_listener_defers_too() {
    // A socket bound and listening elsewhere, as systemd or an earlier process hands it over.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let handle =
        Server::start_on(one_slot(Some(LONG)), vec![listener], routes()).expect("server starts");
    let server = TestServer::from_handle(handle);
    silent_client_takes_no_slot(&server);
}

#[test]
fn turned_off_a_silent_client_takes_the_slot() {
    let server = TestServer::routes(one_slot(None));
    let silent = connect(server.addr);
    assert!(
        support::wait_until(|| server.stats().accepted == 1),
        "the silent connection was not accepted"
    );
    let mut waiting = Client::new(server.connect());
    waiting.send(&get("/hello"));
    waiting.expect_nothing_yet();
    // The slot frees: the waiting client is taken and answered.
    drop(silent);
    assert_eq!(waiting.response().text(), "hello\n");
}

#[test]
fn a_client_silent_past_the_period_is_handed_over_and_timed_out() {
    let mut c = one_slot(Some(Duration::from_secs(1)));
    c.header_timeout = Duration::from_millis(200);
    let server = TestServer::routes(c);
    let connected = Instant::now();
    let mut silent = Client::new(server.connect());
    // Linux does not drop it: it is accepted when the period ends, and closed by the header
    // timeout, with nothing to answer.
    silent.expect_eof();
    // Not before the period: without deferral it would close after the header timeout alone.
    assert!(
        connected.elapsed() >= Duration::from_millis(900),
        "closed after {:?}",
        connected.elapsed()
    );
    assert_eq!(server.stats().accepted, 1);
    // The slot is free again.
    support::assert_serves(&server);
}

#[test]
fn a_crowd_of_silent_clients_past_the_backlog_keeps_no_one_out() {
    // Past the listener's queue of half-open connections (the backlog), Linux answers new
    // connections with SYN cookies, which it hands over at once, deferred or not.
    let cookies = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_syncookies");
    if cookies.as_deref().map(str::trim).ok() != Some("1") {
        eprintln!("skipped: needs net.ipv4.tcp_syncookies = 1 (found {cookies:?})");
        return;
    }
    let mut c = one_slot(Some(LONG));
    c.max_connections = 1_000;
    c.backlog = 64;
    let server = TestServer::routes(c);
    let _silent: Vec<_> = (0..100).map(|_| connect(server.addr)).collect();
    let mut asking = Client::new(server.connect());
    asking.send(&get("/hello"));
    assert_eq!(asking.response().text(), "hello\n");
    // Those in the queue were deferred; the rest came through cookies and were accepted.
    let accepted = server.stats().accepted;
    assert!(accepted <= 100, "all 101 were accepted: none was deferred");
}
