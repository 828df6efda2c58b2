use factum::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Deposited {
    pub amount: u64,
}

#[derive(Clone, Debug)]
pub struct Deposit {
    pub amount: u64,
}

#[derive(Default, Clone, Debug)]
pub struct Account {
    balance: u64,
}

#[entity(snapshot_version = 2)]
impl Account {
    #[handle]
    fn deposit(&self, cmd: Deposit) -> Deposited {
        Deposited { amount: cmd.amount }
    }
    #[apply]
    fn deposited(&mut self, e: &Deposited) {
        self.balance += e.amount;
    }
}

fn main() {}
