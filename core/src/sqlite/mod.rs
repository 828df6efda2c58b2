//! The embedded default: every table factum keeps in a SQLite file — the
//! event log and snapshots ([`SqliteStore`]) and view tables with their
//! checkpoints ([`SqliteViewStore`]); both may share one file.

mod events;
mod views;

pub use events::{SqliteOptions, SqliteStore, Synchronous};
pub use views::SqliteViewStore;
