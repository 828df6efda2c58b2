//! Two event types stored under one (name, version) are refused before any
//! view folds an event, with an error naming both Rust types: given a room's
//! and a guest's `Registered`, both with the default stored name, when the
//! views start, then the app says which types collide and how to rename one.

use factum::prelude::*;
use factum::{App, ViewError};

mod room {
    use factum::prelude::*;
    use serde::{Deserialize, Serialize};

    /// A room was registered; stored as `Registered` by default.
    #[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
    pub struct Registered {
        pub number: u32,
    }
}

mod guest {
    use factum::prelude::*;
    use serde::{Deserialize, Serialize};

    /// A guest was registered; also stored as `Registered` by default.
    #[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
    pub struct Registered {
        pub name: String,
    }
}

#[test]
fn both_types_store_the_default_name() {
    assert_eq!(<room::Registered as Event>::NAME, "Registered");
    assert_eq!(<guest::Registered as Event>::NAME, "Registered");
    let (room, guest) = (
        room::Registered { number: 7 },
        guest::Registered { name: "Ada".into() },
    );
    assert_eq!((room.number, guest.name.as_str()), (7, "Ada"));
}

#[test]
fn the_catalogue_check_names_both_types_and_the_fix() {
    let err = factum::event::check_catalogue().unwrap_err();
    let paths = [err.first.path(), err.second.path()];
    assert_eq!(
        paths,
        ["event_names::guest::Registered", "event_names::room::Registered"]
    );
    assert_eq!((err.first.name, err.first.version), ("Registered", 1));
    let message = err.to_string();
    assert!(message.contains("event_names::guest::Registered"), "{message}");
    assert!(message.contains("event_names::room::Registered"), "{message}");
    assert!(message.contains("#[event(name = "), "{message}");
}

#[tokio::test]
async fn views_do_not_start_while_two_event_types_share_a_name() {
    let app = App::in_memory();
    let err = app.start_views().await.unwrap_err();
    assert!(matches!(err, ViewError::Catalogue(_)), "{err:?}");
    assert!(app.running_views().is_empty());
}

#[test]
#[should_panic(expected = "two event types are stored as `Registered` v1")]
fn the_test_kit_check_fails_cargo_test() {
    factum::testkit::check_catalogue();
}
