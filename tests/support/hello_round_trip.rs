//! One keep-alive round trip that allocates nothing: for the allocation-counting tests
//! (`tests/alloc.rs`, `tests/alloc_async.rs`), included with `#[path]`.

use std::{
    io::{Read, Write},
    net::TcpStream,
};

/// Sends `request` and reads its response, whose body ends with "hello\n", into `buf`.
pub(crate) fn send(stream: &mut TcpStream, request: &[u8], buf: &mut [u8; 4096]) {
    stream.write_all(request).unwrap();
    let mut have = 0;
    while !buf[..have].ends_with(b"hello\n") {
        let n = stream.read(&mut buf[have..]).unwrap();
        assert!(n > 0, "connection closed");
        have += n;
    }
}
