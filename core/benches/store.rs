//! Store benchmarks (placeholder until the bench branch lands).

fn main() {}
