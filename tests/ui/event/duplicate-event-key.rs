use factum::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(version = 2)]
#[event(name = "account.deposited", version = 3)]
pub struct Deposited {
    pub amount: u64,
}

fn main() {}
