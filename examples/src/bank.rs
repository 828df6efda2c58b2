//! The talk's bank account: open, deposit, withdraw, transfer in and out, close.
//!
//! Rejections (overdraft, closed account, zero amounts) are `Err`s returned to
//! the caller and never stored: "failed to withdraw" is not a fact.
//!
//! The commands are serde types, so the `factum` binary's `what-if` can read
//! them from JSON (`--command 'Withdraw={"amount":100000}'`).

use factum::prelude::*;
use serde::{Deserialize, Serialize};

/// Open an account for an owner.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Open {
    /// Who owns the account.
    pub owner: String,
}

/// Put money in.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Deposit {
    /// Cents.
    pub amount: u64,
}

/// Take money out. Also stored by timers (the monthly fee).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Withdraw {
    /// Cents.
    pub amount: u64,
}

/// Send money to another account (the debit side of a transfer).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TransferOut {
    /// The receiving account.
    pub to: String,
    /// Cents.
    pub amount: u64,
}

/// Receive money from another account (the credit side of a transfer).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TransferIn {
    /// The sending account.
    pub from: String,
    /// Cents.
    pub amount: u64,
}

/// Close the account; only an empty account can be closed.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Close;

/// Stop money leaving the account (the fraud check sends it); deposits still land.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Freeze {
    /// Why, for the audit trail.
    pub reason: String,
}

/// The account was opened.
#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "account.opened")]
pub struct Opened {
    /// Who owns it.
    pub owner: String,
    /// The account number, drawn from the command's deterministic generator.
    pub number: u32,
}

/// Money was deposited.
#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "account.deposited")]
pub struct Deposited {
    /// Cents.
    pub amount: u64,
}

/// Money was withdrawn.
#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "account.withdrawn")]
pub struct Withdrawn {
    /// Cents.
    pub amount: u64,
    /// When, as the command saw it.
    pub at: Timestamp,
}

/// Money left for another account.
#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "account.transferred_out")]
pub struct TransferredOut {
    /// The receiving account.
    pub to: String,
    /// Cents.
    pub amount: u64,
}

/// Money arrived from another account.
#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "account.transferred_in")]
pub struct TransferredIn {
    /// The sending account.
    pub from: String,
    /// Cents.
    pub amount: u64,
}

/// The account was closed.
#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "account.closed")]
pub struct Closed {}

/// The account was frozen: withdrawals and outgoing transfers are refused.
#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "account.frozen")]
pub struct Frozen {
    /// Why.
    pub reason: String,
}

/// Why the bank refuses a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountError {
    /// Open on an account that exists.
    #[error("the account is already open")]
    AlreadyOpen,
    /// Anything but Open on an account that was never opened.
    #[error("the account is not open")]
    NotOpen,
    /// Anything on a closed account.
    #[error("the account is closed")]
    Closed,
    /// A zero amount.
    #[error("the amount must be above zero")]
    ZeroAmount,
    /// More than the balance.
    #[error("insufficient funds: the balance is {}, {} was requested", money(*.balance), money(*.requested))]
    Insufficient {
        /// What there is.
        balance: u64,
        /// What was asked for.
        requested: u64,
    },
    /// Money leaving a frozen account.
    #[error("the account is frozen: {0}")]
    Frozen(String),
    /// Close with money left.
    #[error("the balance is {}; empty the account before closing it", money(*.0))]
    NotEmpty(u64),
}

/// A bank account.
#[derive(Default, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Account {
    /// Who owns it (empty until opened).
    pub owner: String,
    /// Its number.
    pub number: u32,
    /// Cents.
    pub balance: u64,
    /// Opened and not closed.
    pub open: bool,
    /// Closed for good.
    pub closed: bool,
    /// Why money may not leave it, when frozen (absent in older snapshots).
    #[serde(default)]
    pub frozen: Option<String>,
}

#[entity(name = "account", snapshot_every = 100)]
impl Account {
    #[handle]
    fn open(&self, cmd: Open, ctx: &Context) -> Result<Opened, AccountError> {
        if self.open || self.closed {
            return Err(AccountError::AlreadyOpen);
        }
        let number = 10_000_000 + (ctx.random_below(90_000_000) as u32);
        Ok(Opened {
            owner: cmd.owner,
            number,
        })
    }

    #[handle]
    fn deposit(&self, cmd: Deposit) -> Result<Deposited, AccountError> {
        self.usable()?;
        nonzero(cmd.amount)?;
        Ok(Deposited { amount: cmd.amount })
    }

    #[handle]
    fn withdraw(&self, cmd: Withdraw, ctx: &Context) -> Result<Withdrawn, AccountError> {
        self.usable()?;
        self.not_frozen()?;
        self.covers(cmd.amount)?;
        Ok(Withdrawn {
            amount: cmd.amount,
            at: ctx.now(),
        })
    }

    #[handle]
    fn transfer_out(&self, cmd: TransferOut) -> Result<TransferredOut, AccountError> {
        self.usable()?;
        self.not_frozen()?;
        self.covers(cmd.amount)?;
        Ok(TransferredOut {
            to: cmd.to,
            amount: cmd.amount,
        })
    }

    #[handle]
    fn transfer_in(&self, cmd: TransferIn) -> Result<TransferredIn, AccountError> {
        self.usable()?;
        nonzero(cmd.amount)?;
        Ok(TransferredIn {
            from: cmd.from,
            amount: cmd.amount,
        })
    }

    #[handle]
    fn close(&self, _cmd: Close) -> Result<Closed, AccountError> {
        self.usable()?;
        if self.balance > 0 {
            return Err(AccountError::NotEmpty(self.balance));
        }
        Ok(Closed {})
    }

    /// Every freeze is recorded, with its reason (a frozen account frozen
    /// again for another reason keeps both in its history), so a freeze sent
    /// twice would show twice: the consumer's derived command ids are what
    /// keep one suspicious withdrawal to one freeze.
    #[handle]
    fn freeze(&self, cmd: Freeze) -> Result<Frozen, AccountError> {
        self.usable()?;
        Ok(Frozen { reason: cmd.reason })
    }

    #[apply]
    fn opened(&mut self, e: &Opened) {
        self.owner = e.owner.clone();
        self.number = e.number;
        self.open = true;
    }

    #[apply]
    fn deposited(&mut self, e: &Deposited) {
        self.balance += e.amount;
    }

    #[apply]
    fn withdrawn(&mut self, e: &Withdrawn) {
        self.balance -= e.amount;
    }

    #[apply]
    fn transferred_out(&mut self, e: &TransferredOut) {
        self.balance -= e.amount;
    }

    #[apply]
    fn transferred_in(&mut self, e: &TransferredIn) {
        self.balance += e.amount;
    }

    #[apply]
    fn closed(&mut self, _e: &Closed) {
        self.open = false;
        self.closed = true;
    }

    #[apply]
    fn frozen(&mut self, e: &Frozen) {
        self.frozen = Some(e.reason.clone());
    }
}

impl Account {
    fn not_frozen(&self) -> Result<(), AccountError> {
        match &self.frozen {
            Some(reason) => Err(AccountError::Frozen(reason.clone())),
            None => Ok(()),
        }
    }

    fn usable(&self) -> Result<(), AccountError> {
        match (self.open, self.closed) {
            (_, true) => Err(AccountError::Closed),
            (false, _) => Err(AccountError::NotOpen),
            _ => Ok(()),
        }
    }

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

fn nonzero(amount: u64) -> Result<(), AccountError> {
    if amount == 0 {
        Err(AccountError::ZeroAmount)
    } else {
        Ok(())
    }
}

/// Formats cents as `12.34`.
pub fn money(cents: u64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

/// `d` whole units of money, in cents.
pub const fn dollars(d: u64) -> u64 {
    d * 100
}

/// The `account_summary` view: one row per account, for account pages and lists.
/// `find_by_owner` (the `accounts_by_owner` index) lists an owner's accounts.
#[derive(Default, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountSummary {
    /// Who owns it.
    pub owner: String,
    /// Its number.
    pub number: u32,
    /// Cents.
    pub balance: u64,
    /// How many deposits (transfers in included).
    pub deposits: u32,
    /// How many withdrawals (transfers out included).
    pub withdrawals: u32,
    /// When it last changed.
    pub last_activity: Timestamp,
    /// Closed for good.
    pub closed: bool,
}

#[view(name = "account_summary", version = 1, index = [owner])]
impl AccountSummary {
    #[on]
    fn opened(&mut self, e: &Opened, meta: &EventMeta) {
        self.owner = e.owner.clone();
        self.number = e.number;
        self.last_activity = meta.recorded_at;
    }

    #[on]
    fn deposited(&mut self, e: &Deposited, meta: &EventMeta) {
        self.balance += e.amount;
        self.deposits += 1;
        self.last_activity = meta.recorded_at;
    }

    #[on]
    fn withdrawn(&mut self, e: &Withdrawn, meta: &EventMeta) {
        self.balance = self.balance.saturating_sub(e.amount);
        self.withdrawals += 1;
        self.last_activity = meta.recorded_at;
    }

    #[on]
    fn transferred_out(&mut self, e: &TransferredOut, meta: &EventMeta) {
        self.balance = self.balance.saturating_sub(e.amount);
        self.withdrawals += 1;
        self.last_activity = meta.recorded_at;
    }

    #[on]
    fn transferred_in(&mut self, e: &TransferredIn, meta: &EventMeta) {
        self.balance += e.amount;
        self.deposits += 1;
        self.last_activity = meta.recorded_at;
    }

    #[on]
    fn closed(&mut self, _e: &Closed, meta: &EventMeta) {
        self.closed = true;
        self.last_activity = meta.recorded_at;
    }
}
