use factum::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "account.deposited")]
pub struct DepositedV1 {
    pub amount: u32,
}

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "account.deposited", version = 2, upcast_from = DepositedV1)]
pub struct Deposited {
    pub amount: u64,
}

fn main() {}
