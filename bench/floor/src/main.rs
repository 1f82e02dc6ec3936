//! Placeholder until the benchmark floor lands.
fn main() {}
