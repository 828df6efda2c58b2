//! A consumer of the bank's events: a withdrawal or outgoing transfer above a
//! limit freezes the account. Freezing is a command sent through the
//! consumer's context, so its id is derived from the event: a redelivered
//! withdrawal (a crash before the checkpoint moved, a redrive) does not freeze twice.

use factum::prelude::*;

use crate::bank::{Account, AccountError, Freeze, TransferredOut, Withdrawn, money};

/// Freezes an account that moves more than `limit` cents out at once.
#[derive(Clone, Debug)]
pub struct FraudCheck {
    /// The largest single withdrawal or transfer out that passes, in cents.
    pub limit: u64,
}

#[consumer(name = "fraud_check")]
impl FraudCheck {
    #[on]
    async fn withdrawn(
        &self,
        e: &Withdrawn,
        ctx: &mut ConsumerContext,
    ) -> Result<(), CommandError<AccountError>> {
        self.check(e.amount, "withdrew", ctx).await
    }

    #[on]
    async fn transferred_out(
        &self,
        e: &TransferredOut,
        ctx: &mut ConsumerContext,
    ) -> Result<(), CommandError<AccountError>> {
        self.check(e.amount, "transferred out", ctx).await
    }
}

impl FraudCheck {
    async fn check(
        &self,
        amount: u64,
        what: &str,
        ctx: &mut ConsumerContext,
    ) -> Result<(), CommandError<AccountError>> {
        if amount <= self.limit {
            return Ok(());
        }
        let account = ctx.stream_id().to_owned();
        let reason = format!(
            "{what} {} at once, above the limit of {} (event at position {})",
            money(amount),
            money(self.limit),
            ctx.meta().position
        );
        match ctx.send::<Account>(&account, Freeze { reason }).await {
            Ok(_) => Ok(()),
            // A closed account cannot move money any more: nothing to freeze.
            Err(CommandError::Rejected(AccountError::Closed)) => Ok(()),
            Err(e) => Err(e),
        }
    }
}
