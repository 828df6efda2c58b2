//! The event lock sees through a `type` alias that `#[derive(Event)]` cannot:
//! given an event whose field type is an alias for a `OnceLock` (which has
//! every trait an event needs, so it compiles), the lock check fails naming
//! the event, the field and what the alias is. (A `Cell` or `RefCell` behind
//! an alias is rejected by the compiler already: `Event` requires `Sync`; a
//! `Mutex`, `RwLock` or atomic lacks `Clone` and `PartialEq`.)
#![allow(missing_docs)] // a test crate: its `pub` items are fixtures, not an API

use factum::Event;
use factum::testkit::{check_event_lock, update_event_lock};
use serde::{Deserialize, Serialize};

/// A cache filled on first read: it changes after the event is recorded.
type Cache = std::sync::OnceLock<u64>;

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "lock.cached")]
pub struct Cached {
    pub amount: u64,
    #[serde(skip)]
    pub total: Cache,
}

#[test]
fn interior_mutability_behind_a_type_alias_fails_the_lock_check() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("events.lock.json");
    std::fs::write(&path, r#"{ "events": [] }"#).expect("lock written");
    let err = check_event_lock(&path).expect_err("the alias hides a OnceLock");
    assert_eq!(
        err.to_string(),
        format!(
            "the events of this program do not match the event lock {} (rule: never modify an event):\n\
             - `lock.cached` v1 (`Cached`): field `total` is `Cache`, which is `{}`: `OnceLock` can change \
             after the event is recorded; events are immutable facts. Store the plain value instead",
            path.display(),
            std::any::type_name::<Cache>()
        )
    );
}

#[test]
fn updating_the_lock_does_not_accept_interior_mutability() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("events.lock.json");
    let err = update_event_lock(&path).expect_err("nothing to accept");
    assert!(err.to_string().contains("field `total` is `Cache`"), "{err}");
    assert!(!path.exists(), "no lock written");
}
