//! An event with a `AtomicU64` field could change after it is recorded.

use std::sync::atomic::AtomicU64;

#[derive(factum::Event)]
pub struct Deposited {
    pub amount: AtomicU64,
}

fn main() {}
