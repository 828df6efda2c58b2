//! An event with a `AtomicU64` field could change after it is recorded.
//! The type derives what its fields allow; the errors after the first are the
//! supertraits of `Event` that a type with this field cannot meet.

use serde::{Deserialize, Serialize};
use std::sync::atomic::AtomicU64;

#[derive(factum::Event, Serialize, Deserialize, Debug)]
pub struct Deposited {
    pub amount: AtomicU64,
}

fn main() {}
