//! An event with a `Mutex` field could change after it is recorded.

use std::sync::Mutex;

#[derive(factum::Event)]
pub struct Deposited {
    pub amount: Mutex<u64>,
}

fn main() {}
