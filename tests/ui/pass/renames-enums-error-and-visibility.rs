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
pub(crate) struct Account {
    balance: u64,
}

#[entity(name = "bank_account", events = Happened, commands = Asked, error = Rejected, vis = "pub(crate)", snapshot_every = 0)]
impl Account {
    #[handle]
    fn deposit(&self, cmd: Deposit) -> Deposited {
        Deposited { amount: cmd.amount }
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
    let events: Result<Vec<Happened>, Rejected> = Account::default().handle(Asked::Deposit(Deposit { amount: 1 }), &ctx);
    let _ = events;
    assert_eq!(<Account as Entity>::NAME, "bank_account");
}
