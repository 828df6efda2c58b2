//! An event with a `Cell` field could change after it is recorded.

use std::cell::Cell;

#[derive(factum::Event)]
pub struct Deposited {
    pub visits: Cell<u64>,
}

fn main() {}
