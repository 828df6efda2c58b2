//! The bank of `examples/src/bank.rs` written the cqrs-es way: an `Aggregate`
//! whose async `handle` writes events into the framework's `EventSink`.
//! Same commands, events and rules as factum's bank; the withdrawal time is
//! an integer (microseconds) rather than factum's RFC 3339 text, which, if
//! anything, saves the peer work. Shared with the postgres-es child by path,
//! so it depends on cqrs-es only.

use cqrs_es::event_sink::EventSink;
use cqrs_es::mem_store::MemStore;
use cqrs_es::{Aggregate, AggregateError, CqrsFramework, DomainEvent, EventStore};
use serde::{Deserialize, Serialize};

use crate::workload::{Bank, Outcome, account_id};

/// The account's commands.
#[derive(Debug, Clone)]
pub enum BankCommand {
    Open { owner: String },
    Deposit { amount: u64 },
    Withdraw { amount: u64 },
}

/// The account's events (the same fields as factum's bank events).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum BankEvent {
    Opened { owner: String, number: u32 },
    Deposited { amount: u64 },
    Withdrawn { amount: u64, at_micros: i64 },
}

impl DomainEvent for BankEvent {
    fn event_type(&self) -> String {
        match self {
            BankEvent::Opened { .. } => "account.opened",
            BankEvent::Deposited { .. } => "account.deposited",
            BankEvent::Withdrawn { .. } => "account.withdrawn",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

/// Why the account refuses.
#[derive(Debug, thiserror::Error)]
pub enum BankError {
    #[error("the account is already open")]
    AlreadyOpen,
    #[error("the account is not open")]
    NotOpen,
    #[error("the amount must be above zero")]
    ZeroAmount,
    #[error("insufficient funds: the balance is {balance}, {requested} was requested")]
    Insufficient { balance: u64, requested: u64 },
}

/// What handlers may call besides the state: here, the clock.
pub struct BankServices;

impl BankServices {
    fn now_micros(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as i64)
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct BankAccount {
    owner: String,
    number: u32,
    /// Read by the postgres-es child's check after the run.
    pub balance: u64,
    pub open: bool,
}

impl Aggregate for BankAccount {
    const TYPE: &'static str = "account";
    type Command = BankCommand;
    type Event = BankEvent;
    type Error = BankError;
    type Services = BankServices;

    async fn handle(
        &mut self,
        command: BankCommand,
        services: &BankServices,
        sink: &EventSink<Self>,
    ) -> Result<(), BankError> {
        let event = match command {
            BankCommand::Open { owner } => {
                if self.open {
                    return Err(BankError::AlreadyOpen);
                }
                let number = 10_000_000 + (owner.len() as u32 % 90_000_000);
                BankEvent::Opened { owner, number }
            }
            BankCommand::Deposit { amount } => {
                self.usable()?;
                nonzero(amount)?;
                BankEvent::Deposited { amount }
            }
            BankCommand::Withdraw { amount } => {
                self.usable()?;
                nonzero(amount)?;
                if amount > self.balance {
                    return Err(BankError::Insufficient {
                        balance: self.balance,
                        requested: amount,
                    });
                }
                BankEvent::Withdrawn {
                    amount,
                    at_micros: services.now_micros(),
                }
            }
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: BankEvent) {
        match event {
            BankEvent::Opened { owner, number } => {
                self.owner = owner;
                self.number = number;
                self.open = true;
            }
            BankEvent::Deposited { amount } => self.balance += amount,
            BankEvent::Withdrawn { amount, .. } => self.balance -= amount,
        }
    }
}

impl BankAccount {
    fn usable(&self) -> Result<(), BankError> {
        if self.open {
            Ok(())
        } else {
            Err(BankError::NotOpen)
        }
    }
}

fn nonzero(amount: u64) -> Result<(), BankError> {
    if amount == 0 {
        Err(BankError::ZeroAmount)
    } else {
        Ok(())
    }
}

/// How often a command is tried when another writer wins the sequence (factum's default).
const MAX_ATTEMPTS: u32 = 16;

/// cqrs-es over one of its stores.
pub struct CqrsBank<ES: EventStore<BankAccount>> {
    cqrs: CqrsFramework<BankAccount, ES>,
    /// Account ids built once, as factum's entity handles hold theirs.
    ids: Vec<String>,
}

impl CqrsBank<MemStore<BankAccount>> {
    /// Over cqrs-es's in-memory store.
    pub fn memory(entities: usize) -> Self {
        CqrsBank::new(MemStore::default(), entities)
    }
}

impl<ES: EventStore<BankAccount>> CqrsBank<ES> {
    /// Over any cqrs-es store.
    pub fn new(store: ES, entities: usize) -> Self {
        CqrsBank {
            cqrs: CqrsFramework::new(store, vec![], BankServices),
            ids: (0..entities).map(account_id).collect(),
        }
    }
}

impl<ES> CqrsBank<ES>
where
    ES: EventStore<BankAccount> + 'static,
    ES::AC: Send,
{
    async fn execute(&self, account: usize, command: BankCommand) -> Outcome {
        let id = &self.ids[account];
        for _ in 0..MAX_ATTEMPTS {
            match self.cqrs.execute(id, command.clone()).await {
                Ok(()) => return Outcome::Accepted,
                Err(AggregateError::UserError(_)) => return Outcome::Rejected,
                Err(AggregateError::AggregateConflict) => continue,
                Err(e) => return Outcome::Failed(e.to_string()),
            }
        }
        Outcome::Failed(format!("{id}: {MAX_ATTEMPTS} attempts all conflicted"))
    }
}

impl<ES> Bank for CqrsBank<ES>
where
    ES: EventStore<BankAccount> + Send + Sync + 'static,
    ES::AC: Send,
{
    async fn open(&self, account: usize) -> Outcome {
        let owner = format!("owner of {}", account_id(account));
        self.execute(account, BankCommand::Open { owner }).await
    }
    async fn deposit(&self, account: usize, amount: u64) -> Outcome {
        self.execute(account, BankCommand::Deposit { amount }).await
    }
    async fn withdraw(&self, account: usize, amount: u64) -> Outcome {
        self.execute(account, BankCommand::Withdraw { amount }).await
    }
}
