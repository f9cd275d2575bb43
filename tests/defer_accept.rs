//! `TCP_DEFER_ACCEPT` (`Config::defer_accept`): the kernel hands a connection over once its
//! first bytes arrive, so a client that connects and says nothing holds no connection slot;
//! one still silent when the period ends is handed over then, and the header timeout closes
//! it. Sockets made elsewhere (systemd, an earlier process) get the option too.

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
