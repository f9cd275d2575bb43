//! The rtserve reactors: N `mio` event loops sharing one SO_REUSEPORT port, serving HTTP/1.1
//! through [`rtserve_protocol`], with a bounded worker pool and a deadline on every request.
//!
//! Not built yet: this crate only re-exports the protocol crate so far.
#![forbid(unsafe_code)]

pub use rtserve_protocol as protocol;
