use factum::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Deposited {
    pub amount: u64,
}

#[derive(Default, Clone, Debug, Serialize, Deserialize)]
pub struct Summary {
    balance: u64,
}

#[view(name = "summary", shards = 4, version = "two", name = "totals", colour(red))]
impl Summary {
    #[on(partition = e.amount, key = e.amount)]
    fn deposited(&self, e: Deposited) -> u64 {
        e.amount
    }
}

fn main() {}
