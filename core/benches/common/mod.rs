//! The bench account, written by hand against the `factum` traits: the shape
//! `#[entity]` generates (an event enum, a command enum, a `match` in `handle`
//! and `apply`), so it is both the baseline the generated dispatch is compared
//! with and a workload for the runtime, fold and codec benches.

#![allow(dead_code)] // each bench binary uses a different part of this module

use factum::{Codec, CodecError, Context, DecodeError, Entity, Event, EventSet, Timestamp};
use serde::{Deserialize, Serialize};

/// Money was deposited.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Deposited {
    /// Cents.
    pub amount: u64,
}

/// Money was withdrawn.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Withdrawn {
    /// Cents.
    pub amount: u64,
    /// When, as the command saw it.
    pub at: Timestamp,
}

macro_rules! event_impl {
    ($t:ty, $name:literal) => {
        impl Event for $t {
            const NAME: &'static str = $name;
            const VERSION: u32 = 1;
            fn decode_stored(schema_version: u32, codec: Codec, payload: &[u8]) -> Result<Self, DecodeError> {
                if schema_version == Self::VERSION {
                    factum::__private::decode_current::<Self>(codec, payload)
                } else {
                    Err(factum::__private::unknown_version::<Self>(schema_version))
                }
            }
        }
    };
}
event_impl!(Deposited, "bench.deposited");
event_impl!(Withdrawn, "bench.withdrawn");

/// Put money in.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Deposit {
    /// Cents.
    pub amount: u64,
}

/// Take money out.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Withdraw {
    /// Cents.
    pub amount: u64,
}

/// Why the account refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountError {
    /// A zero amount.
    #[error("the amount must be above zero")]
    ZeroAmount,
    /// More than the balance.
    #[error("insufficient funds: the balance is {balance}, {requested} was requested")]
    Insufficient {
        /// What there is.
        balance: u64,
        /// What was asked for.
        requested: u64,
    },
}

/// The hand-written account's events.
#[derive(Clone, Debug, PartialEq)]
pub enum AccountEvent {
    /// See [`Deposited`].
    Deposited(Deposited),
    /// See [`Withdrawn`].
    Withdrawn(Withdrawn),
}

impl From<Deposited> for AccountEvent {
    fn from(e: Deposited) -> Self {
        AccountEvent::Deposited(e)
    }
}

impl From<Withdrawn> for AccountEvent {
    fn from(e: Withdrawn) -> Self {
        AccountEvent::Withdrawn(e)
    }
}

impl EventSet for AccountEvent {
    const NAMES: &'static [&'static str] = &[Deposited::NAME, Withdrawn::NAME];
    fn name(&self) -> &'static str {
        match self {
            AccountEvent::Deposited(_) => Deposited::NAME,
            AccountEvent::Withdrawn(_) => Withdrawn::NAME,
        }
    }
    fn schema_version(&self) -> u32 {
        match self {
            AccountEvent::Deposited(_) => Deposited::VERSION,
            AccountEvent::Withdrawn(_) => Withdrawn::VERSION,
        }
    }
    fn encode(&self, codec: Codec) -> Result<Vec<u8>, CodecError> {
        match self {
            AccountEvent::Deposited(e) => codec.encode(e),
            AccountEvent::Withdrawn(e) => codec.encode(e),
        }
    }
    fn decode(name: &str, schema_version: u32, codec: Codec, payload: &[u8]) -> Result<Self, DecodeError> {
        match name {
            Deposited::NAME => Deposited::decode_stored(schema_version, codec, payload).map(Self::Deposited),
            Withdrawn::NAME => Withdrawn::decode_stored(schema_version, codec, payload).map(Self::Withdrawn),
            _ => Err(DecodeError::UnknownType {
                event_type: name.to_owned(),
                known: Self::NAMES,
            }),
        }
    }
}

/// The hand-written account's commands.
#[derive(Clone, Debug)]
pub enum AccountCommand {
    /// See [`Deposit`].
    Deposit(Deposit),
    /// See [`Withdraw`].
    Withdraw(Withdraw),
}

impl From<Deposit> for AccountCommand {
    fn from(c: Deposit) -> Self {
        AccountCommand::Deposit(c)
    }
}

impl From<Withdraw> for AccountCommand {
    fn from(c: Withdraw) -> Self {
        AccountCommand::Withdraw(c)
    }
}

/// A bank account, hand-written.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Account {
    /// Cents.
    pub balance: u64,
    /// How many events were applied.
    pub movements: u64,
}

impl Account {
    fn covers(&self, amount: u64) -> Result<(), AccountError> {
        nonzero(amount)?;
        if amount > self.balance {
            return Err(AccountError::Insufficient {
                balance: self.balance,
                requested: amount,
            });
        }
        Ok(())
    }
}

/// Rejects zero amounts.
pub fn nonzero(amount: u64) -> Result<(), AccountError> {
    if amount == 0 {
        Err(AccountError::ZeroAmount)
    } else {
        Ok(())
    }
}

impl Entity for Account {
    const NAME: &'static str = "bench_account";
    const SNAPSHOT_EVERY: u64 = 0;
    type Event = AccountEvent;
    type Command = AccountCommand;
    type Error = AccountError;

    // The same inlining chance as the generated side, whose trait `handle`
    // forwards to an inherent fn that LLVM inlines into the bench driver:
    // left out of line, this baseline read ~30% slower than the generated
    // dispatch (4.7 vs 6.7 us per 1024 commands), which measured the
    // inliner, not the dispatch.
    #[inline]
    fn handle(&self, command: AccountCommand, ctx: &Context) -> Result<Vec<AccountEvent>, AccountError> {
        match command {
            AccountCommand::Deposit(cmd) => {
                nonzero(cmd.amount)?;
                Ok(vec![AccountEvent::Deposited(Deposited { amount: cmd.amount })])
            }
            AccountCommand::Withdraw(cmd) => {
                self.covers(cmd.amount)?;
                Ok(vec![AccountEvent::Withdrawn(Withdrawn {
                    amount: cmd.amount,
                    at: ctx.now(),
                })])
            }
        }
    }

    fn apply(&mut self, event: &AccountEvent) {
        match event {
            AccountEvent::Deposited(e) => {
                self.balance += e.amount;
                self.movements += 1;
            }
            AccountEvent::Withdrawn(e) => {
                self.balance -= e.amount;
                self.movements += 1;
            }
        }
    }
}

/// `n` events that fold to a positive balance: three deposits of 100 for every withdrawal of 150.
pub fn history(n: usize) -> Vec<AccountEvent> {
    let at = Timestamp::from_secs(1_767_225_600);
    (0..n)
        .map(|i| {
            if i % 4 == 3 {
                AccountEvent::Withdrawn(Withdrawn { amount: 150, at })
            } else {
                AccountEvent::Deposited(Deposited { amount: 100 })
            }
        })
        .collect()
}
