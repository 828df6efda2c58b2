//! A `Cell` behind a `type` alias: `#[derive(Event)]` sees only `Visits`, but
//! `Event` requires `Sync`, which a `Cell` is not, so the compiler rejects it.
//! (What an alias can hide and still compile, a `OnceLock`, the event lock
//! catches: see `tests/tests/event_lock_aliases.rs`.)

use serde::{Deserialize, Serialize};

type Visits = std::cell::Cell<u64>;

#[derive(factum::Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Deposited {
    pub visits: Visits,
}

fn main() {}
