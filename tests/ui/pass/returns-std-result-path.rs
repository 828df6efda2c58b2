use factum::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Deposited {
    pub amount: u64,
}

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Fee {
    pub amount: u64,
}

#[derive(Clone, Debug)]
pub struct Deposit {
    pub amount: u64,
}

#[derive(Debug, thiserror::Error)]
#[error("rejected")]
pub struct Rejected;

#[derive(Default, Clone, Debug)]
pub struct Account {
    balance: u64,
}

#[entity]
impl Account {
    #[handle]
    fn deposit(&self, cmd: Deposit) -> std::result::Result<Deposited, Rejected> {
        Ok(Deposited { amount: cmd.amount })
    }

    #[apply]
    fn deposited(&mut self, e: &Deposited) {
        self.balance += e.amount;
    }

    #[apply]
    fn fee(&mut self, e: &Fee) {
        self.balance -= e.amount;
    }
}

fn main() {
    let ctx = Context::new(Default::default(), Timestamp::from_secs(0), "a-1", 0);
    let events = Entity::handle(&Account::default(), Deposit { amount: 1 }.into(), &ctx);
    let _ = events;
}
