//! HTTP/1.1 for servers, without I/O.
//!
//! This crate has no networking code, starts no threads and never reads the clock. Bytes go
//! in, events come out; responses go in, bytes come out. The caller owns the socket, the
//! buffers and the time, which makes every rule here testable byte by byte and the same under
//! any event loop.
//!
//! ```text
//!   socket bytes ──▶ ServerConn::recv ──▶ Event::{Head, Body, End, NeedMore, Closed}
//!                          │                       │
//!                          ▼                       ▼ (handler)
//!                  RecvError::status()    send_head / send_response ──▶ caller's Vec<u8> ──▶ socket
//! ```
//!
//! - [`ServerConn`] parses requests one at a time from the front of the caller's input, so
//!   pipelined requests stay buffered for the next call. Heads are parsed by `httparse` and kept
//!   as spans into that input: no copy, no allocation per header.
//! - Body framing follows RFC 9112 §6: Content-Length, chunked (extensions skipped under a cap,
//!   trailers checked and bounded), or none. Anything ambiguous, the shape of a request
//!   smuggling attack, is rejected with the status to answer ([`RecvError::status`]).
//! - Every bound is in [`Limits`]; the parser never buffers, loops or allocates past them.
//! - [`send_head`], [`send_response`], [`send_error`] and [`send_continue`] append responses
//!   to a caller's buffer, with a `Date` from an [`HttpDate`] the caller refreshes.
//!
//! # Examples
//!
//! One keep-alive exchange:
//!
//! ```
//! use std::time::SystemTime;
//! use rtserve_protocol::{Event, HttpDate, Limits, ServerConn, StatusCode, send_response};
//!
//! let mut conn = ServerConn::new(Limits::default());
//! let date = HttpDate::new(SystemTime::now());
//! let input = b"GET /hello HTTP/1.1\r\nHost: example.com\r\n\r\n";
//!
//! let (used, event) = conn.recv(input)?;
//! assert_eq!((used, event), (input.len(), Event::Head));
//! let request = conn.request(input);
//! assert_eq!(request.path(), "/hello");
//! let ctx = conn.head().response_context();
//! assert_eq!(conn.recv(&input[used..])?, (0, Event::End));
//!
//! let mut out = Vec::new();
//! let keep_alive = send_response(ctx, StatusCode::OK, [], b"hello\n", &date, &mut out)?;
//! assert!(keep_alive);
//! assert!(out.starts_with(b"HTTP/1.1 200 OK\r\n"));
//! assert!(out.ends_with(b"Content-Length: 6\r\n\r\nhello\n"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![doc(test(attr(deny(warnings))))]

mod buffer;
mod conn;
mod date;
mod decode;
mod encode;
mod error;
mod framing;
mod head;
#[cfg(feature = "http")]
mod http_types;
mod limits;
mod status;

pub use buffer::{Input, InputBuffer};
pub use conn::{Event, ServerConn};
pub use date::HttpDate;
pub use encode::{
    BodyEncoder, BodyLength, ResponseContext, send_continue, send_error, send_head, send_response,
};
pub use error::{RecvError, SendError};
pub use framing::BodyKind;
pub use head::{Method, OwnedHead, Request, RequestHead, Version};
#[cfg(feature = "http")]
pub use http_types::OtherMethod;
pub use limits::{Limits, MAX_HEADERS_CAP};
pub use status::StatusCode;

// This crate's README, as published: its Rust snippets are compiled as doc tests here.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct CrateReadmeDoctests;
