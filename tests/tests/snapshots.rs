//! Snapshots are trusted only when this program's apply logic wrote them: a
//! snapshot stored under another `#[entity(snapshot_version = …)]`, or by
//! other `#[apply]` code, is ignored with a warning, the state is rebuilt from
//! the events, and a fresh snapshot replaces it. On the memory and SQLite
//! stores (the snapshot tables did not change; the stamp is in the payload).
//! A snapshot that fails its checksum (moved to another version, its state
//! changed in the file) is ignored the same way.

use std::sync::{Arc, Mutex};

use factum::prelude::*;
use factum::store::EventStore;
use factum::{App, MemoryStore};
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "tab.charged")]
/// A charge was put on the tab.
pub struct Charged {
    /// How much.
    pub cents: u64,
}

/// Put a charge on the tab.
#[derive(Clone, Debug)]
pub struct Charge {
    /// How much.
    pub cents: u64,
}

/// One tab entity ("tab") as three deploys of one program wrote it: the apply
/// code reads the same in each, but `fee` (a helper the fingerprint cannot
/// see) and so the meaning of `owed` change between them.
macro_rules! tab {
    ($module:ident, $fee:literal, $($version:tt)*) => {
        /// One deploy of the tab entity.
        pub mod $module {
            use super::*;

            fn fee(_cents: u64) -> u64 {
                $fee
            }

            /// What the tab owes.
            #[derive(Default, Clone, Debug, PartialEq, Serialize, Deserialize)]
            pub struct Tab {
                /// Cents owed, fees included.
                pub owed: u64,
            }

            #[factum::entity(name = "tab", snapshot_every = 10 $($version)*)]
            impl Tab {
                #[handle]
                fn charge(&self, cmd: Charge) -> Charged {
                    Charged { cents: cmd.cents }
                }

                #[apply]
                fn charged(&mut self, e: &Charged) {
                    self.owed += e.cents + fee(e.cents);
                }
            }
        }
    };
}

// The first deploy: no fee, no declared snapshot version.
tab!(v0, 0,);
// The second adds a one-cent fee and says so with `snapshot_version = 1`.
tab!(v1, 1, , snapshot_version = 1);
// A third that changed the fee but forgot the version: its snapshots are
// trusted, which is why the version exists (the documented limit).
tab!(v1_forgot, 2, , snapshot_version = 1);

/// The same entity whose `#[apply]` code itself changed (a fee written
/// inline): the fingerprint tells its snapshots apart without a version bump.
pub mod inline_fee {
    use super::*;

    /// What the tab owes.
    #[derive(Default, Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub struct Tab {
        /// Cents owed, fees included.
        pub owed: u64,
    }

    #[factum::entity(name = "tab", snapshot_every = 10, snapshot_version = 1)]
    impl Tab {
        #[handle]
        fn charge(&self, cmd: Charge) -> Charged {
            Charged { cents: cmd.cents }
        }

        #[apply]
        fn charged(&mut self, e: &Charged) {
            self.owed += e.cents + 5;
        }
    }
}

/// The warnings logged while `f` runs on this thread (the tests run on a
/// current-thread runtime, so the command's task runs here too).
async fn warnings_of<T>(f: impl std::future::Future<Output = T>) -> (T, Vec<String>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let guard = tracing::subscriber::set_default(Warnings(seen.clone()));
    let value = f.await;
    drop(guard);
    let seen = seen.lock().expect("the warnings").clone();
    (value, seen)
}

/// A subscriber that keeps each warning's fields as text.
struct Warnings(Arc<Mutex<Vec<String>>>);

impl tracing::Subscriber for Warnings {
    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        *metadata.level() <= tracing::Level::WARN
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        struct Text(String);
        impl tracing::field::Visit for Text {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                self.0.push_str(&format!("{}={:?} ", field.name(), value));
            }
        }
        let mut text = Text(String::new());
        event.record(&mut text);
        self.0.lock().expect("the warnings").push(text.0);
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// Twelve charges of 1..=12 cents: a snapshot at version 10, two events after it.
async fn twelve_charges(store: &Arc<dyn EventStore>) {
    let app = App::builder().shared_store(store.clone()).build();
    let tab = app.entity::<v0::Tab>("t-1");
    for cents in 1..=12 {
        tab.send(Charge { cents }).await.expect("a charge");
    }
    let snapshot = store
        .load_snapshot("tab", "t-1")
        .await
        .unwrap()
        .expect("a snapshot");
    assert_eq!(snapshot.version, 10);
}

async fn owed<E: Entity>(store: &Arc<dyn EventStore>) -> E {
    let app = App::builder().shared_store(store.clone()).build();
    app.entity::<E>("t-1").state().await.expect("the tab loads")
}

async fn a_changed_snapshot_version_rebuilds_from_events(store: Arc<dyn EventStore>) {
    twelve_charges(&store).await;

    // Given the v0 snapshot (at version 10, 55 cents owed), when the
    // program that charges a fee of one cent per charge loads the tab...
    let (tab, warnings) = warnings_of(owed::<v1::Tab>(&store)).await;
    // ...then it owes 78 + 12, folded from all twelve events, not 55 + 11 + 12 + 2.
    assert_eq!(tab, v1::Tab { owed: 90 });
    assert_eq!(warnings.len(), 1, "one warning: {warnings:?}");
    let warning = &warnings[0];
    assert!(
        warning.contains("other apply logic")
            && warning.contains("snapshot_version 0")
            && warning.contains("snapshot_version 1"),
        "the warning names both versions: {warning}"
    );
    assert!(
        warning.contains("t-1") && warning.contains("tab"),
        "and the entity: {warning}"
    );

    // The ignored snapshot was replaced at the current version, so the next
    // load starts from it, quietly.
    let snapshot = store
        .load_snapshot("tab", "t-1")
        .await
        .unwrap()
        .expect("a snapshot");
    assert_eq!(snapshot.version, 12);
    let (tab, warnings) = warnings_of(owed::<v1::Tab>(&store)).await;
    assert_eq!(tab, v1::Tab { owed: 90 });
    assert!(warnings.is_empty(), "{warnings:?}");

    // A deploy that changed the helper but kept the version trusts the
    // snapshot: the version is what says so (documented).
    let tab = owed::<v1_forgot::Tab>(&store).await;
    assert_eq!(tab, v1_forgot::Tab { owed: 90 });
}

async fn changed_apply_code_rebuilds_from_events_without_a_version_bump(store: Arc<dyn EventStore>) {
    let app = App::builder().shared_store(store.clone()).build();
    let tab = app.entity::<v1::Tab>("t-1");
    for cents in 1..=12 {
        tab.send(Charge { cents }).await.expect("a charge");
    }
    let (tab, warnings) = warnings_of(owed::<inline_fee::Tab>(&store)).await;
    assert_eq!(tab, inline_fee::Tab { owed: 78 + 12 * 5 });
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("apply fingerprint"), "{}", warnings[0]);
}

async fn a_snapshot_without_a_stamp_is_rebuilt(store: Arc<dyn EventStore>) {
    twelve_charges(&store).await;
    // A snapshot as stored before snapshots carried a stamp: the bare state.
    store
        .save_snapshot(factum::store::Snapshot {
            stream_type: "tab".into(),
            stream_id: "t-1".into(),
            version: 11,
            codec: factum::Codec::Json,
            payload: br#"{"owed":1000}"#.to_vec(),
        })
        .await
        .unwrap();
    let (tab, warnings) = warnings_of(owed::<v0::Tab>(&store)).await;
    assert_eq!(tab, v0::Tab { owed: 78 });
    assert!(warnings[0].contains("no stamp"), "{warnings:?}");
}

/// The stored snapshot at version 10, re-saved under version 11: a row that
/// says it includes an event it does not. Its checksum covers the version,
/// so it is ignored and the state rebuilt (78), never read as 55 + 12 = 67.
async fn a_snapshot_saved_under_another_version_is_rebuilt(store: Arc<dyn EventStore>) {
    twelve_charges(&store).await;
    let mut moved = store
        .load_snapshot("tab", "t-1")
        .await
        .unwrap()
        .expect("a snapshot");
    moved.version = 11;
    store.save_snapshot(moved).await.unwrap();
    let (tab, warnings) = warnings_of(owed::<v0::Tab>(&store)).await;
    assert_eq!(tab, v0::Tab { owed: 78 });
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("checksum") && warnings[0].contains("t-1") && warnings[0].contains("version=11"),
        "the warning says why and which snapshot: {}",
        warnings[0]
    );
}

fn memory() -> Arc<dyn EventStore> {
    Arc::new(MemoryStore::new())
}

fn sqlite(dir: &tempfile::TempDir) -> Arc<dyn EventStore> {
    Arc::new(factum::sqlite::SqliteStore::open(dir.path().join("events.db")).expect("open SQLite"))
}

#[tokio::test]
async fn memory_a_changed_snapshot_version_rebuilds_from_events() {
    a_changed_snapshot_version_rebuilds_from_events(memory()).await;
}

#[tokio::test]
async fn sqlite_a_changed_snapshot_version_rebuilds_from_events() {
    let dir = tempfile::tempdir().unwrap();
    a_changed_snapshot_version_rebuilds_from_events(sqlite(&dir)).await;
}

#[tokio::test]
async fn memory_changed_apply_code_rebuilds_from_events_without_a_version_bump() {
    changed_apply_code_rebuilds_from_events_without_a_version_bump(memory()).await;
}

#[tokio::test]
async fn sqlite_changed_apply_code_rebuilds_from_events_without_a_version_bump() {
    let dir = tempfile::tempdir().unwrap();
    changed_apply_code_rebuilds_from_events_without_a_version_bump(sqlite(&dir)).await;
}

#[tokio::test]
async fn memory_a_snapshot_without_a_stamp_is_rebuilt() {
    a_snapshot_without_a_stamp_is_rebuilt(memory()).await;
}

#[tokio::test]
async fn sqlite_a_snapshot_without_a_stamp_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    a_snapshot_without_a_stamp_is_rebuilt(sqlite(&dir)).await;
}

#[tokio::test]
async fn memory_a_snapshot_saved_under_another_version_is_rebuilt() {
    a_snapshot_saved_under_another_version_is_rebuilt(memory()).await;
}

#[tokio::test]
async fn sqlite_a_snapshot_saved_under_another_version_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    a_snapshot_saved_under_another_version_is_rebuilt(sqlite(&dir)).await;
}

/// A snapshot whose state was changed in the file (`"owed":55` → `99`, the
/// same length, still valid JSON: the silent-garbage case) fails its
/// checksum: the tab is rebuilt from its events, and the next snapshot
/// replaces the damaged one.
#[tokio::test]
async fn sqlite_a_tampered_snapshot_is_rebuilt_from_events() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.db");
    {
        let store = sqlite(&dir);
        twelve_charges(&store).await;
    }
    let db = rusqlite::Connection::open(&path).expect("open the file");
    let payload: Vec<u8> = db
        .query_row("SELECT payload FROM snapshots WHERE stream_id = 't-1'", [], |r| {
            r.get(0)
        })
        .expect("the snapshot row");
    let at = payload
        .windows(10)
        .position(|w| w == b"\"owed\":55}")
        .expect("the state's JSON in the payload");
    let mut tampered = payload.clone();
    tampered[at + 7..at + 9].copy_from_slice(b"99");
    db.execute(
        "UPDATE snapshots SET payload = ?1 WHERE stream_id = 't-1'",
        [&tampered],
    )
    .expect("tamper");
    drop(db);

    let store = sqlite(&dir);
    let (tab, warnings) = warnings_of(owed::<v0::Tab>(&store)).await;
    assert_eq!(
        tab,
        v0::Tab { owed: 78 },
        "rebuilt from the events, not 99 + 11 + 12"
    );
    assert!(
        warnings.len() == 1 && warnings[0].contains("checksum mismatch"),
        "{warnings:?}"
    );
    let replaced = store
        .load_snapshot("tab", "t-1")
        .await
        .unwrap()
        .expect("a snapshot");
    assert_eq!(replaced.version, 12, "the damaged snapshot was replaced");
    let (tab, warnings) = warnings_of(owed::<v0::Tab>(&store)).await;
    assert_eq!(tab, v0::Tab { owed: 78 });
    assert!(warnings.is_empty(), "{warnings:?}");
}
