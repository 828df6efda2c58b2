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

pub trait Bank {
    fn deposited(&mut self, e: &Deposited);
}

#[entity]
impl Bank for Account {
    #[apply]
    fn deposited(&mut self, e: &Deposited) {
        self.balance += e.amount;
    }
}

fn main() {}
