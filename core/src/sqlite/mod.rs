//! The embedded default: every table factum keeps in a SQLite file — the
//! event log and snapshots ([`SqliteStore`]), view tables with their
//! checkpoints ([`SqliteViewStore`]), timers ([`SqliteTimerStore`]) and
//! consumer checkpoints with dead letters ([`SqliteConsumerStore`]); all may
//! share one file, and timers and consumers belong in the events file.

mod conn;
mod consumers;
mod events;
mod timers;
mod views;

pub use consumers::SqliteConsumerStore;
pub use events::{SqliteOptions, SqliteStore, Synchronous};
pub use timers::SqliteTimerStore;
pub use views::SqliteViewStore;
