//! Parser benchmarks.
fn main() {}
