//! An event with a `Cell` field could change after it is recorded.
//! The type derives what its fields allow; the errors after the first are the
//! supertraits of `Event` that a type with this field cannot meet.

use serde::{Deserialize, Serialize};
use std::cell::Cell;

#[derive(factum::Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Deposited {
    pub visits: Cell<u64>,
}

fn main() {}
