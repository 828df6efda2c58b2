//! The run-time backing of the rules: what the compile-time check cannot see
//! (a global read through a helper function) the test kit's replay catches.

use std::sync::atomic::{AtomicU64, Ordering};

use factum::prelude::*;
use factum::testkit::{assert_deterministic, given};
use serde::{Deserialize, Serialize};

static VISITS: AtomicU64 = AtomicU64::new(0);

/// Looks innocent at the call site; the check does not follow calls.
fn next_visit_number() -> u64 {
    VISITS.fetch_add(1, Ordering::SeqCst)
}

#[derive(Clone, Debug)]
struct Visit;

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "museum.visited")]
struct Visited {
    ticket: u64,
}

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "museum.opened")]
struct Opened {}

#[derive(Default, Clone, Debug, PartialEq)]
struct Museum {
    visits: u64,
    last_visit_number: u64,
}

#[entity(name = "museum")]
impl Museum {
    #[handle]
    fn visit(&self, _cmd: Visit, ctx: &Context) -> Visited {
        Visited {
            ticket: ctx.random_u64(),
        }
    }

    #[apply]
    fn opened(&mut self, _e: &Opened) {}

    #[apply]
    fn visited(&mut self, _e: &Visited) {
        self.visits += 1;
        self.last_visit_number = next_visit_number(); // state from outside the event
    }
}

fn panic_message(f: impl FnOnce() + std::panic::UnwindSafe) -> String {
    let payload = std::panic::catch_unwind(f).expect_err("the test kit must fail this scenario");
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

#[test]
fn an_apply_reading_a_global_through_a_helper_compiles_but_fails_the_replay_check() {
    let message = panic_message(|| {
        let _ = given::<Museum>([Opened {}.into(), Visited { ticket: 9 }.into()]).when(Visit);
    });
    assert!(message.contains("replaying"), "{message}");
    assert!(
        message.contains("after event 2 of 2: Visited(Visited { ticket: 9 })"),
        "the message names the event: {message}"
    );
}

#[test]
fn assert_deterministic_names_the_first_event_where_replays_diverge() {
    let events: Vec<MuseumEvent> = vec![Opened {}.into(), Opened {}.into(), Visited { ticket: 1 }.into()];
    let message = panic_message(|| {
        assert_deterministic::<Museum>(&events);
    });
    assert!(
        message.contains("after event 3 of 3: Visited(Visited { ticket: 1 })"),
        "{message}"
    );
}

#[test]
fn events_whose_apply_is_pure_pass_the_same_check() {
    let events = [Opened {}.into(), Opened {}.into()];
    assert_eq!(assert_deterministic::<Museum>(&events), Museum::default());
}
