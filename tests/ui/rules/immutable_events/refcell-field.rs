//! An event with a `RefCell` field could change after it is recorded.
//! The type derives what its fields allow; the errors after the first are the
//! supertraits of `Event` that a type with this field cannot meet.

use serde::{Deserialize, Serialize};
use std::cell::RefCell;

#[derive(factum::Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Deposited {
    pub note: RefCell<String>,
}

fn main() {}
