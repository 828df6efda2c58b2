//! Placeholder until `#[entity]` lands.
fn main() {}
