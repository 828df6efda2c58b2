//! An event with a `RefCell` field could change after it is recorded.

use std::cell::RefCell;

#[derive(factum::Event)]
pub struct Deposited {
    pub note: RefCell<String>,
}

fn main() {}
