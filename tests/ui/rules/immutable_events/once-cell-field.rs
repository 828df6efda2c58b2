//! An event with a `OnceCell` field could change after it is recorded.
//! The type derives what its fields allow; the errors after the first are the
//! supertraits of `Event` that a type with this field cannot meet.

use std::cell::OnceCell;

#[derive(factum::Event, Clone, Debug, PartialEq)]
pub struct Deposited {
    pub amount: OnceCell<u64>,
}

fn main() {}
