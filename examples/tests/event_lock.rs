//! The examples' events keep their shape across releases: every event type,
//! by name and version, is recorded in `events.lock.json` beside this crate's
//! manifest, and a change to a released one fails here. Rewrite the lock with
//! `FACTUM_UPDATE_LOCK=1 cargo test -p factum-examples --test event_lock`.

// Links the library, and so its events, into this test's event catalogue.
use factum_examples as _;

#[test]
fn the_examples_events_keep_their_shape() {
    factum::testkit::check_event_lock(concat!(env!("CARGO_MANIFEST_DIR"), "/events.lock.json")).unwrap();
}
