//! PostgreSQL (feature `postgres`), for several app nodes on one log: the
//! event log and snapshots ([`PostgresStore`]), view tables with their
//! checkpoints ([`PostgresViewStore`]), timers ([`PostgresTimerStore`]),
//! consumer checkpoints and dead letters ([`PostgresConsumerStore`]), and the
//! advisory-lock lease that lets one node run each of them.

mod consumers;
mod events;
mod lease;
mod timers;
mod views;

pub use consumers::PostgresConsumerStore;
#[cfg(feature = "fault-points")]
#[doc(hidden)]
pub use events::HeldAppend;
pub use events::{PostgresOptions, PostgresStore};
pub use timers::PostgresTimerStore;
pub use views::PostgresViewStore;
