//! An event with a `OnceCell` field could change after it is recorded.

use std::cell::OnceCell;

#[derive(factum::Event)]
pub struct Deposited {
    pub amount: OnceCell<u64>,
}

fn main() {}
