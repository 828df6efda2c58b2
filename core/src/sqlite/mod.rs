//! The embedded default: every table factum keeps in a SQLite file — the
//! event log and snapshots ([`SqliteStore`]), view tables with their
//! checkpoints ([`SqliteViewStore`]) and timers ([`SqliteTimerStore`]); all
//! may share one file, and timers belong in the events file.

mod conn;
mod events;
mod timers;
mod views;

pub use events::{SqliteOptions, SqliteStore, Synchronous};
pub use timers::SqliteTimerStore;
pub use views::SqliteViewStore;
