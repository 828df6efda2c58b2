//! Ticket holding as a workflow: a buyer holds a seat for [`HOLD_FOR`];
//! paying in that time confirms the purchase, otherwise the hold expires and
//! the seat is released for the next buyer.
//!
//! - The hold's limit is the workflow's own timeout
//!   (`#[workflow(timeout = "15m", on_timeout = release)]`), a durable timer:
//!   it fires after a restart too, and on virtual time in tests.
//! - Two buyers for one seat: the [`Seat`] entity takes one hold at a time
//!   (its commands are decided one after the other), so one buyer wins and the
//!   other's purchase fails with the seat taken.
//! - A payment that arrives while the hold is being confirmed is not cut off
//!   by the expiry: the timeout takes effect at a step boundary, and a
//!   confirmed purchase stays confirmed.

use std::time::Duration;

use factum::prelude::*;
use serde::{Deserialize, Serialize};

/// How long a seat is held for its buyer (the `timeout` of [`Purchase`]).
pub const HOLD_FOR: Duration = Duration::from_secs(15 * 60);

/// Hold the seat for a buyer.
#[derive(Clone, Debug)]
pub struct HoldSeat {
    /// Who.
    pub buyer: String,
}

/// Sell the held seat to its holder.
#[derive(Clone, Debug)]
pub struct SellSeat {
    /// Who.
    pub buyer: String,
}

/// Release the seat if this buyer holds it.
#[derive(Clone, Debug)]
pub struct ReleaseSeat {
    /// Who.
    pub buyer: String,
}

/// The seat was held for a buyer.
#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "seat.held")]
pub struct SeatHeld {
    /// Who.
    pub buyer: String,
}

/// The seat was sold to its holder.
#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "seat.sold")]
pub struct SeatSold {
    /// Who.
    pub buyer: String,
}

/// The seat's hold was released: anyone may hold it now.
#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "seat.released")]
pub struct SeatReleased {
    /// Who held it.
    pub buyer: String,
}

/// Why a seat refused a command.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SeatError {
    /// Another buyer holds or bought it.
    #[error("the seat is taken by {by}")]
    Taken {
        /// The holder or owner.
        by: String,
    },
    /// A sale for a buyer who does not hold the seat.
    #[error("{buyer} does not hold the seat")]
    NotHeld {
        /// Who.
        buyer: String,
    },
}

/// A seat: free, held for a buyer, or sold.
#[derive(Default, Clone, Debug, PartialEq)]
pub struct Seat {
    /// Who holds it now.
    pub held_by: Option<String>,
    /// Who bought it.
    pub sold_to: Option<String>,
}

#[entity(name = "seat")]
impl Seat {
    #[handle]
    fn hold(&self, cmd: HoldSeat) -> Result<SeatHeld, SeatError> {
        if let Some(by) = self.sold_to.as_ref().or(self.held_by.as_ref()) {
            return Err(SeatError::Taken { by: by.clone() });
        }
        Ok(SeatHeld { buyer: cmd.buyer })
    }

    #[handle]
    fn sell(&self, cmd: SellSeat) -> Result<SeatSold, SeatError> {
        if self.held_by.as_deref() != Some(cmd.buyer.as_str()) {
            return Err(SeatError::NotHeld { buyer: cmd.buyer });
        }
        Ok(SeatSold { buyer: cmd.buyer })
    }

    /// Releasing a seat held by someone else (or by nobody) changes nothing.
    #[handle]
    fn release(&self, cmd: ReleaseSeat) -> Option<SeatReleased> {
        (self.held_by.as_deref() == Some(cmd.buyer.as_str())).then_some(SeatReleased { buyer: cmd.buyer })
    }

    #[apply]
    fn held(&mut self, e: &SeatHeld) {
        self.held_by = Some(e.buyer.clone());
    }

    #[apply]
    fn sold(&mut self, e: &SeatSold) {
        self.held_by = None;
        self.sold_to = Some(e.buyer.clone());
    }

    #[apply]
    fn released(&mut self, _e: &SeatReleased) {
        self.held_by = None;
    }
}

/// Start a purchase: hold `seat` for `buyer`.
#[derive(Clone, Debug)]
pub struct Buy {
    /// The seat's id.
    pub seat: String,
    /// Who.
    pub buyer: String,
}

/// The buyer paid: confirm the purchase.
#[derive(Clone, Debug)]
pub struct Pay {
    /// The payment's reference.
    pub reference: String,
}

/// How a purchase came out.
#[derive(Default, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PurchaseOutcome {
    /// Still under way.
    #[default]
    Pending,
    /// The seat is held, waiting for the payment.
    Held,
    /// Paid and sold.
    Confirmed,
    /// The hold expired; the seat was released.
    Released,
    /// Another buyer had the seat.
    Lost,
}

/// A purchase's state.
#[derive(Default, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Purchase {
    /// The seat.
    pub seat: String,
    /// Who.
    pub buyer: String,
    /// The payment's reference, once paid.
    pub payment: Option<String>,
    /// How it came out.
    pub outcome: PurchaseOutcome,
}

impl Purchase {
    fn with_outcome(&self, outcome: PurchaseOutcome) -> Self {
        Purchase {
            outcome,
            ..self.clone()
        }
    }
}

#[workflow(name = "purchase", timeout = "15m", on_timeout = release)]
impl Purchase {
    #[start]
    fn start(&self, cmd: Buy) -> Then<Self> {
        let state = Purchase {
            seat: cmd.seat,
            buyer: cmd.buyer,
            payment: None,
            outcome: PurchaseOutcome::Pending,
        };
        Then::to(Self::hold, ()).with_state(state)
    }

    #[signal]
    fn pay(&self, cmd: Pay) -> Then<Self> {
        let paid = Purchase {
            payment: Some(cmd.reference),
            ..self.clone()
        };
        Then::to(Self::confirm, ()).with_state(paid)
    }

    /// Holds the seat, then waits for the payment (the workflow's timeout ends the wait).
    #[step(max_retries = 3, backoff = "1s")]
    async fn hold(&self, ctx: &StepContext) -> Result<Then<Self>, CommandError<SeatError>> {
        let hold = HoldSeat {
            buyer: self.buyer.clone(),
        };
        match ctx.send::<Seat>(&self.seat, hold).await {
            Ok(_) => Ok(Then::pause().with_state(self.with_outcome(PurchaseOutcome::Held))),
            Err(CommandError::Rejected(SeatError::Taken { by })) => {
                Ok(Then::fail(format!("seat {} is taken by {by}", self.seat))
                    .with_state(self.with_outcome(PurchaseOutcome::Lost)))
            }
            Err(other) => Err(other),
        }
    }

    /// Sells the held seat to the buyer who paid.
    #[step(max_retries = 5, backoff = "1s")]
    async fn confirm(&self, ctx: &StepContext) -> Result<Then<Self>, CommandError<SeatError>> {
        let sell = SellSeat {
            buyer: self.buyer.clone(),
        };
        ctx.send::<Seat>(&self.seat, sell).await?;
        Ok(Then::end().with_state(self.with_outcome(PurchaseOutcome::Confirmed)))
    }

    /// The hold expired: the seat goes back on sale.
    #[step(max_retries = 10, backoff = "1s")]
    async fn release(&self, ctx: &StepContext) -> Result<Then<Self>, CommandError<SeatError>> {
        let release = ReleaseSeat {
            buyer: self.buyer.clone(),
        };
        ctx.send::<Seat>(&self.seat, release).await?;
        Ok(Then::end().with_state(self.with_outcome(PurchaseOutcome::Released)))
    }
}
