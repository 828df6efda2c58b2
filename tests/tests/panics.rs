//! User code that panics is an error of the component that ran it, never a
//! dead runner or a bricked entity: a panicking view handler fails its view
//! (visible through `wait_for`, `last_error` and the runner flag) while other
//! views go on; a panicking `#[apply]` or `#[handle]` is a typed error and the
//! rest of the app keeps working.
#![allow(missing_docs)] // a test crate: its `pub` items are fixtures, not an API

use factum::prelude::*;
use factum::view::ViewError;
use factum::{LoadError, MemoryStore};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug)]
pub struct Note {
    pub text: String,
}

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "panics.noted")]
pub struct Noted {
    pub text: String,
}

#[derive(Debug, PartialEq, thiserror::Error)]
#[error("never")]
pub struct Never;

#[derive(Default, Clone, Debug, PartialEq)]
pub struct Pad {
    notes: Vec<String>,
}

#[entity(name = "pad")]
impl Pad {
    #[handle]
    fn note(&self, cmd: Note) -> Result<Noted, Never> {
        assert!(cmd.text != "handler-bomb", "the handler refuses to look at this");
        Ok(Noted { text: cmd.text })
    }

    #[apply]
    fn noted(&mut self, e: &Noted) {
        assert!(e.text != "apply-bomb", "apply cannot fold this");
        self.notes.push(e.text.clone());
    }
}

/// Counts notes, and panics on the text `view-bomb`.
#[derive(Default, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Fragile {
    count: u32,
}

#[view(name = "panics_fragile")]
impl Fragile {
    #[on]
    fn noted(&mut self, e: &Noted) {
        assert!(e.text != "view-bomb", "the view cannot fold this");
        self.count += 1;
    }
}

/// Counts notes, whatever they say.
#[derive(Default, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sturdy {
    count: u32,
}

#[view(name = "panics_sturdy")]
impl Sturdy {
    #[on]
    fn noted(&mut self, _e: &Noted) {
        self.count += 1;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_view_handler_fails_its_view_visibly_and_other_views_go_on() {
    let app = App::in_memory();
    app.start_view::<Fragile>().await.unwrap();
    app.start_view::<Sturdy>().await.unwrap();
    let pad = app.entity::<Pad>("pad-1");
    let one = pad.send(Note { text: "one".into() }).await.unwrap();
    app.view::<Fragile>().wait_for(one.position).await.unwrap();
    let bomb = pad
        .send(Note {
            text: "view-bomb".into(),
        })
        .await
        .unwrap();

    // The view that does not panic reaches the position.
    let sturdy = app.view::<Sturdy>();
    sturdy.wait_for(bomb.position).await.unwrap();
    assert_eq!(sturdy.get("pad-1").await.unwrap(), Some(Sturdy { count: 2 }));

    // The one that panics: wait_for gives up with the panic, naming the event.
    let fragile = app.view::<Fragile>();
    let err = fragile.wait_for(bomb.position).await.unwrap_err();
    let ViewError::Failing {
        view,
        error,
        checkpoint,
        ..
    } = &err
    else {
        panic!("expected Failing, got {err:?}");
    };
    assert_eq!(
        (*view, *checkpoint),
        ("panics_fragile", 1),
        "stuck before the bad event"
    );
    for part in [
        "the view cannot fold this",
        "panics.noted",
        "pad/pad-1 version 2",
        &format!("position {}", bomb.position),
    ] {
        assert!(error.contains(part), "`{part}` in: {error}");
    }
    let last = fragile.last_error().expect("last_error shows the failure");
    assert!(last.contains("the view cannot fold this"), "{last}");
    assert_eq!(fragile.checkpoint(), 1, "never past the bad event");
    assert_eq!(
        fragile.get("pad-1").await.unwrap(),
        Some(Fragile { count: 1 }),
        "the batch was not committed"
    );
    assert_eq!(
        app.running_views(),
        vec!["panics_fragile", "panics_sturdy"],
        "still running, retrying"
    );
}

#[tokio::test]
async fn a_panicking_apply_is_a_load_error_naming_the_event_and_the_app_goes_on() {
    let store = MemoryStore::new();
    let app = App::new(store.clone());
    let pad = app.entity::<Pad>("pad-1");
    pad.send(Note { text: "one".into() }).await.unwrap();
    let err = pad
        .send(Note {
            text: "apply-bomb".into(),
        })
        .await
        .unwrap_err();
    let expect_apply_panicked = |err: &LoadError| match err {
        LoadError::ApplyPanicked {
            stream_type,
            stream_id,
            version,
            event_type,
            message,
        } => {
            assert_eq!((*stream_type, stream_id.as_str(), *version), ("pad", "pad-1", 2));
            assert_eq!(event_type, "panics.noted");
            assert!(message.contains("apply cannot fold this"), "{message}");
        }
        other => panic!("expected ApplyPanicked, got {other:?}"),
    };
    match &err {
        CommandError::Load(load) => expect_apply_panicked(load),
        other => panic!("expected a load error, got {other:?}"),
    }
    // The event was committed; every later load says why it cannot fold it, in a new app too.
    expect_apply_panicked(&pad.state().await.unwrap_err());
    let restarted = App::new(store);
    expect_apply_panicked(&restarted.entity::<Pad>("pad-1").state().await.unwrap_err());
    // Other entities are unaffected.
    let other = restarted.entity::<Pad>("pad-2");
    other.send(Note { text: "fine".into() }).await.unwrap();
    assert_eq!(other.state().await.unwrap().notes, vec!["fine".to_owned()]);
}

#[tokio::test]
async fn a_panicking_handler_is_a_command_error_and_stores_nothing() {
    let app = App::in_memory();
    let pad = app.entity::<Pad>("pad-1");
    pad.send(Note { text: "one".into() }).await.unwrap();
    let err = pad
        .send(Note {
            text: "handler-bomb".into(),
        })
        .await
        .unwrap_err();
    match &err {
        CommandError::HandlerPanicked {
            stream_type,
            stream_id,
            message,
        } => {
            assert_eq!((*stream_type, stream_id.as_str()), ("pad", "pad-1"));
            assert!(
                message.contains("the handler refuses to look at this"),
                "{message}"
            );
        }
        other => panic!("expected HandlerPanicked, got {other:?}"),
    }
    assert_eq!(app.store().head().await.unwrap(), 1, "nothing stored");
    pad.send(Note { text: "two".into() }).await.unwrap();
    assert_eq!(
        pad.state().await.unwrap().notes,
        vec!["one".to_owned(), "two".to_owned()]
    );
}

/// While set, `Repairable` panics on every event: a cause that can be fixed
/// while the view keeps retrying.
static BROKEN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// Counts notes; panics while [`BROKEN`] is set.
#[derive(Default, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Repairable {
    count: u32,
}

#[view(name = "panics_repairable")]
impl Repairable {
    #[on]
    fn noted(&mut self, _e: &Noted) {
        assert!(
            !BROKEN.load(std::sync::atomic::Ordering::SeqCst),
            "not repaired yet"
        );
        self.count += 1;
    }
}

/// Given a view failing long enough that `wait_for` gives up, when the cause
/// is repaired, then a `wait_for` called at once looks at the runner's next
/// attempt instead of answering with the old streak, and succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_repair_a_fresh_wait_for_answers_from_the_current_state() {
    let app = App::in_memory();
    app.start_view::<Repairable>().await.unwrap();
    let done = app
        .entity::<Pad>("pad-1")
        .send(Note { text: "one".into() })
        .await
        .unwrap();
    let view = app.view::<Repairable>();
    let err = view.wait_for(done.position).await.unwrap_err();
    assert!(matches!(err, ViewError::Failing { .. }), "{err:?}");
    BROKEN.store(false, std::sync::atomic::Ordering::SeqCst);
    view.wait_for(done.position)
        .await
        .expect("the next attempt succeeds: the wait does not answer with the old failure");
    assert_eq!(view.get("pad-1").await.unwrap(), Some(Repairable { count: 1 }));
}
