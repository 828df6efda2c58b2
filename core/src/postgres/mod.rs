//! PostgreSQL (feature `postgres`), for several app nodes on one log: the
//! event log and snapshots ([`PostgresStore`]) and view tables with their
//! checkpoints and runner leases ([`PostgresViewStore`]).

mod events;
mod views;

pub use events::{PostgresOptions, PostgresStore};
pub use views::PostgresViewStore;
