//! Money transfer between two wallets as a workflow: withdraw → deposit → end.
//!
//! - A deposit that keeps failing (the receiving wallet is frozen) fails over
//!   to `refund`, which pays the withdrawn amount back: the compensation.
//! - A transfer above [`LIMIT`] is held after the withdrawal and pauses for an
//!   [`Accept`] signal; [`Decline`] or no answer within [`ACCEPT_WITHIN`] refunds it.
//! - An operator's cancel (`on_cancel = refund`) lets the step in flight
//!   finish, then refunds instead of going on: a transfer cancelled after its
//!   withdrawal is paid back once; one whose deposit went through stays done.
//!
//! Every wallet call a step makes carries a command id derived from the
//! transfer, the step and its sequence number, so a step re-run after a crash
//! or retried after a failure withdraws once.

use std::time::Duration;

use factum::prelude::*;
use factum::workflow::WorkflowRejection;
use serde::{Deserialize, Serialize};

/// Transfers above this many cents wait for an [`Accept`].
pub const LIMIT: u64 = 100_000;
/// How long a held transfer waits for its [`Accept`] before it is refunded.
pub const ACCEPT_WITHIN: Duration = Duration::from_secs(3_600);

/// Put money in a wallet.
#[derive(Clone, Debug)]
pub struct Credit {
    /// Cents.
    pub amount: u64,
    /// Why: the transfer or the top-up that pays it.
    pub reference: String,
}

/// Take money out of a wallet.
#[derive(Clone, Debug)]
pub struct Debit {
    /// Cents.
    pub amount: u64,
    /// Why.
    pub reference: String,
}

/// Freeze a wallet: it takes no more credits.
#[derive(Clone, Debug)]
pub struct Freeze;

/// Money was put in.
#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "wallet.credited")]
pub struct Credited {
    /// Cents.
    pub amount: u64,
    /// Why.
    pub reference: String,
}

/// Money was taken out.
#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "wallet.debited")]
pub struct Debited {
    /// Cents.
    pub amount: u64,
    /// Why.
    pub reference: String,
}

/// The wallet was frozen.
#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "wallet.frozen")]
pub struct Frozen {}

/// Why a wallet refused a command.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum WalletError {
    /// Not enough money for the debit.
    #[error("insufficient funds: {balance} cents, {wanted} wanted")]
    Insufficient {
        /// The balance.
        balance: u64,
        /// The debit.
        wanted: u64,
    },
    /// The wallet is frozen.
    #[error("the wallet is frozen")]
    Frozen,
}

/// A wallet: a balance, and whether it is frozen.
#[derive(Default, Clone, Debug, PartialEq)]
pub struct Wallet {
    /// Cents.
    pub balance: u64,
    /// True once frozen.
    pub frozen: bool,
}

#[entity(name = "wallet")]
impl Wallet {
    #[handle]
    fn credit(&self, cmd: Credit) -> Result<Credited, WalletError> {
        if self.frozen {
            return Err(WalletError::Frozen);
        }
        Ok(Credited {
            amount: cmd.amount,
            reference: cmd.reference,
        })
    }

    #[handle]
    fn debit(&self, cmd: Debit) -> Result<Debited, WalletError> {
        if cmd.amount > self.balance {
            return Err(WalletError::Insufficient {
                balance: self.balance,
                wanted: cmd.amount,
            });
        }
        Ok(Debited {
            amount: cmd.amount,
            reference: cmd.reference,
        })
    }

    #[handle]
    fn freeze(&self, _cmd: Freeze) -> Frozen {
        Frozen {}
    }

    #[apply]
    fn credited(&mut self, e: &Credited) {
        self.balance += e.amount;
    }

    #[apply]
    fn debited(&mut self, e: &Debited) {
        self.balance -= e.amount;
    }

    #[apply]
    fn frozen(&mut self, _e: &Frozen) {
        self.frozen = true;
    }
}

/// Start a transfer.
#[derive(Clone, Debug)]
pub struct StartTransfer {
    /// The paying wallet.
    pub from: String,
    /// The receiving wallet.
    pub to: String,
    /// Cents.
    pub amount: u64,
}

/// Accept a held transfer.
#[derive(Clone, Debug)]
pub struct Accept;

/// Decline a held transfer: it is refunded.
#[derive(Clone, Debug)]
pub struct Decline;

/// Why a transfer was not started.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum TransferError {
    /// Nothing to transfer.
    #[error("a transfer moves more than zero cents")]
    Empty,
    /// The wallets are the same.
    #[error("a transfer goes from one wallet to another")]
    SameWallet,
}

/// How a transfer came out.
#[derive(Default, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// Still under way.
    #[default]
    Pending,
    /// Held for an [`Accept`].
    Held,
    /// The money arrived.
    Completed,
    /// The withdrawal was paid back.
    Refunded,
    /// The paying wallet had too little.
    Insufficient,
}

/// A transfer's state.
#[derive(Default, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transfer {
    /// The paying wallet.
    pub from: String,
    /// The receiving wallet.
    pub to: String,
    /// Cents.
    pub amount: u64,
    /// How it came out.
    pub outcome: Outcome,
}

impl Transfer {
    fn with_outcome(&self, outcome: Outcome) -> Self {
        Transfer {
            outcome,
            ..self.clone()
        }
    }
}

#[workflow(name = "transfer", on_cancel = refund)]
impl Transfer {
    #[start]
    fn start(&self, cmd: StartTransfer) -> Result<Then<Self>, TransferError> {
        if cmd.amount == 0 {
            return Err(TransferError::Empty);
        }
        if cmd.from == cmd.to {
            return Err(TransferError::SameWallet);
        }
        let state = Transfer {
            from: cmd.from,
            to: cmd.to,
            amount: cmd.amount,
            outcome: Outcome::Pending,
        };
        Ok(Then::to(Self::withdraw, ()).with_state(state))
    }

    #[signal]
    fn accept(&self, _cmd: Accept) -> Then<Self> {
        Then::to(Self::deposit, ()).with_state(self.with_outcome(Outcome::Pending))
    }

    #[signal]
    fn decline(&self, _cmd: Decline) -> Then<Self> {
        Then::to(Self::refund, ())
    }

    /// Takes the money out of the paying wallet; holds a large transfer.
    #[step(max_retries = 3, backoff = "1s")]
    async fn withdraw(&self, ctx: &StepContext) -> Result<Then<Self>, CommandError<WalletError>> {
        let debit = Debit {
            amount: self.amount,
            reference: format!("transfer {}", ctx.workflow_id()),
        };
        match ctx.send::<Wallet>(&self.from, debit).await {
            Ok(_) if self.amount > LIMIT => {
                Ok(Then::pause_for(ACCEPT_WITHIN, Self::refund, ())
                    .with_state(self.with_outcome(Outcome::Held)))
            }
            Ok(_) => Ok(Then::to(Self::deposit, ())),
            Err(CommandError::Rejected(WalletError::Insufficient { .. })) => {
                Ok(Then::fail("insufficient funds").with_state(self.with_outcome(Outcome::Insufficient)))
            }
            Err(other) => Err(other),
        }
    }

    /// Puts the money in the receiving wallet; once its retries are spent, refunds.
    #[step(timeout = "30s", max_retries = 2, backoff = "1s", failover = refund)]
    async fn deposit(&self, ctx: &StepContext) -> Result<Then<Self>, CommandError<WalletError>> {
        let credit = Credit {
            amount: self.amount,
            reference: format!("transfer {}", ctx.workflow_id()),
        };
        ctx.send::<Wallet>(&self.to, credit).await?;
        Ok(Then::end().with_state(self.with_outcome(Outcome::Completed)))
    }

    /// The compensation: pays the withdrawn amount back.
    #[step(max_retries = 10, backoff = "1s")]
    async fn refund(&self, ctx: &StepContext) -> Result<Then<Self>, CommandError<WalletError>> {
        let credit = Credit {
            amount: self.amount,
            reference: format!("refund of transfer {}", ctx.workflow_id()),
        };
        ctx.send::<Wallet>(&self.from, credit).await?;
        Ok(Then::end().with_state(self.with_outcome(Outcome::Refunded)))
    }
}

/// What a refused start or signal of a transfer looks like.
pub type TransferRejection = WorkflowRejection<TransferError>;
