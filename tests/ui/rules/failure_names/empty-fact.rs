//! `#[event(fact = "")]` opts out of the failure-name check without saying why.

use serde::{Deserialize, Serialize};

#[derive(factum::Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(fact = "")]
pub struct PaymentRejected {
    pub reason: String,
}

fn main() {}
