//! The bank of `examples/src/bank.rs` written the esrs way (Prima's
//! `event_sourcing.rs`, 0.18): a synchronous `Aggregate` whose
//! `handle_command` returns the events, run by an `AggregateManager` over a
//! `PgStore`. Same commands, events (the very `BankEvent` the cqrs-es side
//! stores, so the same JSON payloads), rules and rejections as factum's bank.
//!
//! What esrs does per command, the optimistic way its `locking_strategies`
//! example shows (`increment_optimistically`): `AggregateManager::load` selects
//! the account's events (one round trip) and folds them; `handle_command`
//! decides and `PgStore::persist` inserts the event in its own transaction
//! (BEGIN, INSERT, COMMIT: three round trips). Two writers that loaded the
//! same sequence number collide on the `(aggregate_id, sequence_number)`
//! unique index; the loser's error "must be handled downstream", and this
//! side does what factum and the cqrs-es side do: load again and retry, up to
//! 16 attempts. esrs's other way, `lock_and_load` (an advisory lock held on
//! its own pooled connection until the events are stored), would add a round
//! trip and a second connection per command to spare a conflict that 16
//! writers over 1,000 accounts rarely meet.

use esrs::manager::AggregateManager;
use esrs::store::postgres::{PgStore, PgStoreError};
use esrs::{Aggregate, AggregateState};
use uuid::Uuid;

use crate::cqrs_bank::{BankError, BankEvent};
use crate::workload::{Bank, Outcome};

/// The account's commands. esrs's `handle_command` is synchronous and
/// without side effects ("place that information in the command"), so a
/// withdrawal carries the time it was asked for.
#[derive(Debug, Clone)]
pub enum BankCommand {
    Open { owner: String },
    Deposit { amount: u64 },
    Withdraw { amount: u64, at_micros: i64 },
}

/// The state an account folds to.
#[derive(Debug, Default)]
pub struct AccountState {
    pub owner: String,
    pub number: u32,
    pub balance: u64,
    pub open: bool,
}

/// The aggregate (esrs keeps the state apart from the type).
pub struct BankAccount;

impl Aggregate for BankAccount {
    /// The events go to the table `account_events`, in the run's schema.
    const NAME: &'static str = "account";
    type State = AccountState;
    type Command = BankCommand;
    type Event = BankEvent;
    type Error = BankError;

    fn handle_command(state: &AccountState, command: BankCommand) -> Result<Vec<BankEvent>, BankError> {
        let event = match command {
            BankCommand::Open { owner } => {
                if state.open {
                    return Err(BankError::AlreadyOpen);
                }
                let number = 10_000_000 + (owner.len() as u32 % 90_000_000);
                BankEvent::Opened { owner, number }
            }
            BankCommand::Deposit { amount } => {
                usable(state)?;
                nonzero(amount)?;
                BankEvent::Deposited { amount }
            }
            BankCommand::Withdraw { amount, at_micros } => {
                usable(state)?;
                nonzero(amount)?;
                if amount > state.balance {
                    return Err(BankError::Insufficient {
                        balance: state.balance,
                        requested: amount,
                    });
                }
                BankEvent::Withdrawn { amount, at_micros }
            }
        };
        Ok(vec![event])
    }

    fn apply_event(mut state: AccountState, event: BankEvent) -> AccountState {
        match event {
            BankEvent::Opened { owner, number } => {
                state.owner = owner;
                state.number = number;
                state.open = true;
            }
            BankEvent::Deposited { amount } => state.balance += amount,
            BankEvent::Withdrawn { amount, .. } => state.balance -= amount,
        }
        state
    }
}

fn usable(state: &AccountState) -> Result<(), BankError> {
    if state.open {
        Ok(())
    } else {
        Err(BankError::NotOpen)
    }
}

fn nonzero(amount: u64) -> Result<(), BankError> {
    if amount == 0 {
        Err(BankError::ZeroAmount)
    } else {
        Ok(())
    }
}

fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// esrs keys aggregates by UUID: the `i`-th account's, fixed so that a check
/// after the run finds the same accounts.
pub fn account_uuid(i: usize) -> Uuid {
    Uuid::from_u128(0x0fac_7000_0000_4000_8000_0000_0000_0000 | i as u128)
}

/// How often a command is tried when another writer wins the sequence number
/// (factum's default, as on the cqrs-es side).
const MAX_ATTEMPTS: u32 = 16;

/// esrs over its PostgreSQL store.
pub struct EsrsBank {
    manager: AggregateManager<PgStore<BankAccount>>,
    /// Account ids built once, as factum's entity handles hold theirs.
    ids: Vec<Uuid>,
}

impl EsrsBank {
    pub fn new(store: PgStore<BankAccount>, entities: usize) -> Self {
        EsrsBank {
            manager: AggregateManager::new(store),
            ids: (0..entities).map(account_uuid).collect(),
        }
    }

    /// Load, decide, persist; again on a lost sequence number.
    async fn execute(&self, account: usize, command: impl Fn() -> BankCommand) -> Outcome {
        let id = self.ids[account];
        for _ in 0..MAX_ATTEMPTS {
            let state = match self.manager.load(id).await {
                // Nothing stored yet: the account's first command (Open).
                Ok(state) => state.unwrap_or_else(|| AggregateState::with_id(id)),
                Err(e) => return Outcome::Failed(format!("loading {id}: {e}")),
            };
            match self.manager.handle_command(state, command()).await {
                Ok(Ok(_)) => return Outcome::Accepted,
                Ok(Err(_)) => return Outcome::Rejected,
                Err(e) if lost_sequence(&e) => continue,
                Err(e) => return Outcome::Failed(format!("storing for {id}: {e}")),
            }
        }
        Outcome::Failed(format!("{id}: {MAX_ATTEMPTS} attempts all conflicted"))
    }
}

/// Another writer stored this sequence number first: the unique index on
/// `(aggregate_id, sequence_number)` refused the insert.
fn lost_sequence(error: &PgStoreError) -> bool {
    match error {
        PgStoreError::Sqlx(sqlx::Error::Database(e)) => e.is_unique_violation(),
        _ => false,
    }
}

impl Bank for EsrsBank {
    async fn open(&self, account: usize) -> Outcome {
        let owner = format!("owner of {}", crate::workload::account_id(account));
        self.execute(account, || BankCommand::Open { owner: owner.clone() })
            .await
    }
    async fn deposit(&self, account: usize, amount: u64) -> Outcome {
        self.execute(account, || BankCommand::Deposit { amount }).await
    }
    async fn withdraw(&self, account: usize, amount: u64) -> Outcome {
        self.execute(account, || BankCommand::Withdraw {
            amount,
            at_micros: now_micros(),
        })
        .await
    }
}

/// Loads every account through a fresh manager over the store (folding its
/// stored events) and compares it with what the accepted commands imply.
pub async fn check(store: PgStore<BankAccount>, balances: &[i64]) -> Result<(), String> {
    let manager = AggregateManager::new(store);
    for (i, &expected) in balances.iter().enumerate() {
        let id = account_uuid(i);
        let state = manager
            .load(id)
            .await
            .map_err(|e| format!("loading {id} for the check: {e}"))?
            .ok_or_else(|| format!("{id} ({}) has no stored events", crate::workload::account_id(i)))?
            .into_inner();
        if !state.open || i64::try_from(state.balance) != Ok(expected) {
            return Err(format!(
                "{id} ({}): stored balance {} (open: {}), the accepted commands imply {expected}",
                crate::workload::account_id(i),
                state.balance,
                state.open
            ));
        }
    }
    Ok(())
}
