use factum::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "account.deposited", version = 2)]
pub struct DepositedV1 {
    pub amount: u32,
}

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "account.deposited", version = 2, upcast_from = DepositedV1)]
pub struct Deposited {
    pub amount: u64,
}

impl From<DepositedV1> for Deposited {
    fn from(v1: DepositedV1) -> Self {
        Deposited { amount: v1.amount.into() }
    }
}

fn main() {}
