//! An event with a `…Rejected` name records a rejected command, which is an `Err`, never an event.

use serde::{Deserialize, Serialize};

#[derive(factum::Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct OrderRejected {
    pub reason: String,
}

fn main() {}
