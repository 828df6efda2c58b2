//! An event with a `RwLock` field could change after it is recorded.
//! The type derives what its fields allow; the errors after the first are the
//! supertraits of `Event` that a type with this field cannot meet.

use serde::{Deserialize, Serialize};
use std::sync::RwLock;

#[derive(factum::Event, Serialize, Deserialize, Debug)]
pub struct Deposited {
    pub amount: RwLock<u64>,
}

fn main() {}
