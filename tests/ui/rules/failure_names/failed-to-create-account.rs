//! An event with a `FailedTo…` name records a rejected command, which is an `Err`, never an event.

use serde::{Deserialize, Serialize};

#[derive(factum::Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct FailedToCreateAccount {
    pub reason: String,
}

fn main() {}
