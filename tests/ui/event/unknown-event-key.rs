use factum::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "account.deposited", verison = 2)]
pub struct Deposited {
    pub amount: u64,
}

fn main() {}
