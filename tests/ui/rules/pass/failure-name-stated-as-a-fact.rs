//! A name that reads like a failure records a real fact when the attribute says
//! so: the bank declining a payment happened, outside this system.

use serde::{Deserialize, Serialize};

#[derive(factum::Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(fact = "the bank rejected the payment; we record its answer")]
pub struct PaymentRejected {
    pub reason: String,
}

#[derive(factum::Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct PaymentDeclined {
    pub reason: String,
}

fn main() {}
