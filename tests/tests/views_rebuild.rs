//! Blue/green rebuilds: a new version of a view is built beside the live one
//! while queries are answered from the old; after the swap they come from the
//! new. Also: `app.rebuild_view(name)` on demand, and duplicate view names.

use std::sync::Arc;
use std::time::Duration;

use factum::prelude::*;
use factum::sqlite::SqliteViewStore;
use factum::store::{EventStore, MemoryStore};
use factum::view::{MemoryViewStore, TableState, ViewError, ViewStore};
use factum_tests::views::{Scored, write_log};
use serde::{Deserialize, Serialize};

const EVENTS: u64 = 20_000;
const STREAMS: u64 = 10;

/// Version 1 of the logic: the plain sum.
#[derive(Default, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SumV1 {
    sum: u64,
}

#[view(name = "test_rebuild", version = 1)]
impl SumV1 {
    #[on]
    fn scored(&mut self, e: &Scored) {
        self.sum += e.amount;
    }
}

/// Version 2 of the logic (same rows, new meaning): ten times the sum.
#[derive(Default, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SumV2 {
    sum: u64,
}

#[view(name = "test_rebuild", version = 2)]
impl SumV2 {
    #[on]
    fn scored(&mut self, e: &Scored) {
        self.sum += 10 * e.amount;
    }
}

fn expected_sum(stream: u64) -> u64 {
    (0..EVENTS)
        .filter(|i| i % STREAMS == stream)
        .map(factum_tests::views::amount)
        .sum()
}

async fn bumping_the_version_rebuilds_beside_the_live_table(view_store: Arc<dyn ViewStore>, batch: usize) {
    let log: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    write_log(&*log, EVENTS, STREAMS).await;
    let v1_sum = expected_sum(0);

    // Given version 1 running and caught up.
    {
        let app = App::builder()
            .shared_store(log.clone())
            .shared_view_store(view_store.clone())
            .build();
        app.start_view::<SumV1>().await.unwrap();
        app.view::<SumV1>().wait_for(EVENTS).await.unwrap();
        assert_eq!(
            app.view::<SumV1>().get("s0").await.unwrap(),
            Some(SumV1 { sum: v1_sum })
        );
    }

    // When the code moves to version 2 (small batches, so the rebuild takes a while) ...
    let app = App::builder()
        .shared_store(log.clone())
        .shared_view_store(view_store.clone())
        .view_batch(batch)
        .build();
    app.start_view::<SumV2>().await.unwrap();
    let view = app.view::<SumV2>();

    // ... then queries are answered from version 1 during the rebuild ...
    let mut answered_from_v1 = 0;
    loop {
        let serving = view.serving_table().unwrap();
        let row = view.get("s0").await.unwrap();
        if serving.version == 2 {
            break;
        }
        assert_eq!(
            row,
            Some(SumV2 { sum: v1_sum }),
            "a version-1 row while v1 serves"
        );
        answered_from_v1 += 1;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert!(answered_from_v1 > 0, "the swap happened before any query");

    // ... and from version 2 after the swap, with the old table gone.
    assert_eq!(view.get("s0").await.unwrap(), Some(SumV2 { sum: 10 * v1_sum }));
    let tables = view_store.tables("test_rebuild").await.unwrap();
    let active: Vec<_> = tables.iter().filter(|t| t.state == TableState::Active).collect();
    assert_eq!(active.len(), 1, "{tables:?}");
    assert_eq!(active[0].id.version, 2);
    // The old table stays a moment for queries that picked it before the swap, then goes.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let tables = view_store.tables("test_rebuild").await.unwrap();
    assert_eq!(tables.len(), 1, "the retired table was dropped: {tables:?}");

    // And rebuild_view does the same on demand, at the same version.
    let before = view.serving_table().unwrap();
    let rebuild = tokio::spawn({
        let app = app.clone();
        async move { app.rebuild_view("test_rebuild").await }
    });
    let mut during = 0;
    while !rebuild.is_finished() {
        assert_eq!(view.get("s0").await.unwrap(), Some(SumV2 { sum: 10 * v1_sum }));
        during += 1;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    rebuild.await.unwrap().unwrap();
    let after = view.serving_table().unwrap();
    assert_eq!((after.version, after.build), (2, before.build + 1));
    assert_eq!(view.get("s0").await.unwrap(), Some(SumV2 { sum: 10 * v1_sum }));
    assert!(during > 0);
    // The live table kept tailing during the rebuild; the new one tails after it.
    let pos = factum_tests::views::append(&*log, "s0", EVENTS / STREAMS, &Scored { amount: 1 }).await;
    view.wait_for(pos).await.unwrap();
    assert_eq!(
        view.get("s0").await.unwrap(),
        Some(SumV2 {
            sum: 10 * v1_sum + 10
        })
    );
}

#[tokio::test]
async fn memory_version_bump_and_rebuild_swap_blue_green() {
    bumping_the_version_rebuilds_beside_the_live_table(Arc::new(MemoryViewStore::new()), 5).await;
}

#[tokio::test]
async fn sqlite_version_bump_and_rebuild_swap_blue_green() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteViewStore::open(dir.path().join("views.db")).unwrap();
    bumping_the_version_rebuilds_beside_the_live_table(Arc::new(store), 5).await;
}

#[cfg_attr(
    not(factum_pg),
    ignore = "needs PostgreSQL: set FACTUM_PG_URL (see tests/README.md)"
)]
#[tokio::test]
async fn postgres_version_bump_and_rebuild_swap_blue_green() {
    let Some(store) = factum_tests::pg::view_store("rebuild").await else {
        return;
    };
    bumping_the_version_rebuilds_beside_the_live_table(Arc::new(store), 25).await;
}

#[tokio::test]
async fn two_views_with_one_name_are_a_start_up_error() {
    let err = App::in_memory().start_views().await.unwrap_err();
    assert!(
        matches!(
            err,
            ViewError::DuplicateName {
                name: "test_rebuild",
                ..
            }
        ),
        "{err}"
    );
    let message = err.to_string();
    assert!(
        message.contains("SumV1") && message.contains("SumV2"),
        "{message}"
    );
}

#[tokio::test]
async fn rebuilding_an_unknown_view_names_it() {
    let err = App::in_memory().rebuild_view("nope").await.unwrap_err();
    assert_eq!(err.to_string(), "no view named `nope` is running");
}

/// A rolling deploy: a newer binary swapped in version 2. An older binary
/// (version 1) starting on the same tables must serve and follow version 2,
/// never build version 1 (whose swap would retire version 2), not even once
/// the newer binary is gone (a lease failover).
async fn an_older_binary_follows_a_newer_active_version(view_store: Arc<dyn ViewStore>) {
    let log: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    write_log(&*log, 200, STREAMS).await;
    let newer = App::builder()
        .shared_store(log.clone())
        .shared_view_store(view_store.clone())
        .build();
    newer.start_view::<SumV2>().await.unwrap();
    newer.view::<SumV2>().wait_for(200).await.unwrap();
    let v2_only = |tables: &[factum::view::TableInfo]| {
        tables.len() == 1 && tables[0].id.version == 2 && tables[0].state == TableState::Active
    };
    assert!(v2_only(&view_store.tables("test_rebuild").await.unwrap()));

    let older = App::builder()
        .shared_store(log.clone())
        .shared_view_store(view_store.clone())
        .build();
    older.start_view::<SumV1>().await.unwrap();
    let view = older.view::<SumV1>();
    // It serves the newer table (its rows decode as the old type) and follows it.
    let pos = factum_tests::views::append(&*log, "s0", 200 / STREAMS, &Scored { amount: 1 }).await;
    tokio::time::timeout(Duration::from_secs(10), view.wait_for(pos))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(view.serving_table().map(|t| t.version), Some(2));
    assert_eq!(
        view.get("s0").await.unwrap(),
        Some(SumV1 {
            sum: 10 * (expected_sum_of(200, 0) + 1)
        })
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!view.is_runner());
    let last_error = view.last_error().unwrap_or_default();
    assert!(
        last_error.contains("version 2") && last_error.contains("version 1"),
        "{last_error}"
    );
    let tables = view_store.tables("test_rebuild").await.unwrap();
    assert!(v2_only(&tables), "no version-1 build: {tables:?}");

    // The newer binary goes away: the older one still does not build its version.
    drop(newer);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let tables = view_store.tables("test_rebuild").await.unwrap();
    assert!(v2_only(&tables), "no version-1 build after failover: {tables:?}");
    assert_eq!(view.serving_table().map(|t| t.version), Some(2));
}

fn expected_sum_of(events: u64, stream: u64) -> u64 {
    (0..events)
        .filter(|i| i % STREAMS == stream)
        .map(factum_tests::views::amount)
        .sum()
}

#[tokio::test]
async fn memory_an_older_binary_follows_a_newer_active_version() {
    an_older_binary_follows_a_newer_active_version(Arc::new(MemoryViewStore::new())).await;
}

#[tokio::test]
async fn sqlite_an_older_binary_follows_a_newer_active_version() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteViewStore::open(dir.path().join("views.db")).unwrap();
    an_older_binary_follows_a_newer_active_version(Arc::new(store)).await;
}

#[cfg_attr(
    not(factum_pg),
    ignore = "needs PostgreSQL: set FACTUM_PG_URL (see tests/README.md)"
)]
#[tokio::test]
async fn postgres_an_older_binary_follows_a_newer_active_version() {
    let Some(store) = factum_tests::pg::view_store("older").await else {
        return;
    };
    an_older_binary_follows_a_newer_active_version(Arc::new(store)).await;
}
