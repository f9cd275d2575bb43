//! `rtserve`: the command-line server.
#![forbid(unsafe_code)]

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!(
        "rtserve {}: the server is not built yet; rtserve-protocol {} is ready",
        env!("CARGO_PKG_VERSION"),
        env!("CARGO_PKG_VERSION"),
    );
    ExitCode::FAILURE
}
