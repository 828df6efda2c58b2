//! An event with a `RwLock` field could change after it is recorded.

use std::sync::RwLock;

#[derive(factum::Event)]
pub struct Deposited {
    pub amount: RwLock<u64>,
}

fn main() {}
