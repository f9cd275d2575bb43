//! A first look: one request, keep-alive, pipelining.

mod support;

use support::{Client, TestServer, config};

#[test]
fn hello_keep_alive_and_pipelining() {
    let server = TestServer::routes(config());
    let mut client = Client::new(server.connect());
    client.send(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    let r = client.response();
    assert_eq!((r.status, r.text().as_str()), (200, "hello\n"));
    let mut batch = Vec::new();
    for i in 0..10 {
        batch.extend_from_slice(format!("GET /path?i={i} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
    }
    client.send(&batch);
    for i in 0..10 {
        let r = client.response();
        assert_eq!(r.text(), format!("/path?i={i}"));
    }
    server.stop();
}
