//! The fault points themselves (`factum::fault`), one test per action: every
//! point is reached by the operation it names on every store (so a call site
//! lost in a refactor fails here, not silently in a crash test); `fail` makes
//! the operation fail with an error naming the point and moves nothing;
//! `pause` holds the operation until released; `abort` ends a child process
//! at the hit it names, and a misspelt rule ends it at once.
//!
//! The fault table is process-wide, so every test here takes one lock and
//! disarms everything before and after.

use std::process::Command;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use factum::App;
use factum::fault::{self, Action, Hits};
use factum::postgres::PostgresStore;
use factum::sqlite::{SqliteStore, SqliteViewStore};
use factum::store::{EventStore, MemoryStore, Snapshot};
use factum::view::{MemoryViewStore, ViewError, ViewStore};
use factum::{Codec, Timestamp};
use factum_examples::transfer::{Credit, StartTransfer, Transfer, Wallet};
use factum_tests::child::run_with_fault;
use factum_tests::views::{Scored, Tally, append, fold_log, write_log};

/// Events per view transaction in these tests.
const BATCH: usize = 7;

/// A consumer of the test log that does nothing: its batches pass the consumer points.
struct Counter;

#[factum::consumer(name = "fault_points.counter")]
impl Counter {
    #[on]
    async fn scored(&self, _e: &Scored) {}
}
/// Long enough that only a hang reaches it: a guard, not a timing assertion.
const HANG: Duration = Duration::from_secs(60);

static SERIAL: Mutex<()> = Mutex::new(());

/// Holds the fault table for one test; disarms it on both ends.
struct Faults(#[allow(dead_code)] MutexGuard<'static, ()>);

fn faults() -> Faults {
    let guard = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    fault::disarm_all();
    Faults(guard)
}

impl Drop for Faults {
    fn drop(&mut self) {
        fault::disarm_all();
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// The event stores to test: memory, SQLite, and PostgreSQL when `FACTUM_PG_URL` is set.
async fn event_stores(dir: &std::path::Path, test: &str) -> Vec<Arc<dyn EventStore>> {
    let mut stores: Vec<Arc<dyn EventStore>> = vec![
        Arc::new(MemoryStore::new()),
        Arc::new(SqliteStore::open(dir.join("log.db")).expect("sqlite log")),
    ];
    if let Some(url) = factum_tests::pg::url(test) {
        let schema = factum_tests::pg::fresh_schema(test);
        let store = PostgresStore::connect(url)
            .schema(schema)
            .open()
            .await
            .expect("pg log");
        stores.push(Arc::new(store));
    }
    stores
}

/// The view stores to test, with whether their commit has the `view.commit.inside` point.
async fn view_stores(dir: &std::path::Path, test: &str) -> Vec<(Arc<dyn ViewStore>, bool)> {
    let mut stores: Vec<(Arc<dyn ViewStore>, bool)> = vec![
        (Arc::new(MemoryViewStore::new()), false),
        (
            Arc::new(SqliteViewStore::open(dir.join("views.db")).expect("sqlite views")),
            true,
        ),
    ];
    if let Some(store) = factum_tests::pg::view_store(test).await {
        stores.push((Arc::new(store), true));
    }
    stores
}

/// The checkpoint `test_tally`'s tables hold in storage.
async fn stored_checkpoint(views: &dyn ViewStore) -> u64 {
    let tables = views.tables("test_tally").await.expect("tables");
    tables.iter().map(|t| t.position).max().unwrap_or(0)
}

/// A log of 50 events over 5 streams, and an app that will fold it in batches of 7.
async fn app_over_a_log(views: Arc<dyn ViewStore>) -> (App, Arc<dyn EventStore>, u64) {
    let log: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    write_log(&*log, 50, 5).await;
    let head = log.head().await.expect("head");
    let app = App::builder()
        .shared_store(log.clone())
        .shared_view_store(views)
        .view_batch(BATCH)
        .build();
    (app, log, head)
}

/// The view's rows equal a fresh fold of `log`.
async fn assert_equals_a_fresh_fold(app: &App, log: &dyn EventStore, context: &str) {
    let tally = app.view::<Tally>();
    let rows = tally.list(None, 1000).await.expect("list").rows;
    let expected = fold_log(log).await;
    assert_eq!(rows.len(), expected.len(), "{context}: one row per stream");
    for (key, row) in rows {
        assert_eq!((row.count, row.sum), expected[&key], "{context}: row {key}");
    }
}

/// Waits until the view reaches `head` after a failure streak: until the
/// runner moves again, `wait_for` answers `Failing` at once.
async fn recovered(tally: &factum::view::ViewReader<Tally>, head: u64) {
    loop {
        match tally.wait_for(head).await {
            Ok(()) => return,
            Err(ViewError::Failing { .. }) => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(error) => panic!("the view did not recover: {error}"),
        }
    }
}

fn snapshot() -> Snapshot {
    Snapshot {
        stream_type: "test".into(),
        stream_id: "a".into(),
        version: 1,
        codec: Codec::Json,
        payload: b"1".to_vec(),
    }
}

#[test]
fn every_point_is_reached_by_the_operation_it_names() {
    let _faults = faults();
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = runtime();
    rt.block_on(async {
        for store in event_stores(dir.path(), "fault_points_reached").await {
            let backend = store.backend();
            // Given nothing armed, when one append and one snapshot save run ...
            fault::disarm_all();
            append(&*store, "a", 0, &Scored { amount: 1 }).await;
            store.save_snapshot(snapshot()).await.expect("save a snapshot");
            // ... then each passed its points once.
            for point in ["append.before", "append.after", "snapshot.save.before"] {
                assert_eq!(fault::hits(point), 1, "{backend}: {point}");
            }
        }
        for (views, inside) in view_stores(dir.path(), "fault_points_reached").await {
            let backend = views.backend();
            // Given a log, when a view folds it in 8 batches ...
            let (app, _log, head) = app_over_a_log(views).await;
            fault::disarm_all();
            app.start_view::<Tally>().await.expect("start");
            let tally = app.view::<Tally>();
            tokio::time::timeout(HANG, tally.wait_for(head))
                .await
                .expect("not hung")
                .expect("caught up");
            // ... then every commit passed the view points.
            let commits = head.div_ceil(BATCH as u64);
            assert_eq!(fault::hits("view.commit.before"), commits, "{backend}");
            assert_eq!(fault::hits("view.commit.after"), commits, "{backend}");
            let expected_inside = if inside { commits } else { 0 };
            assert_eq!(fault::hits("view.commit.inside"), expected_inside, "{backend}");
        }
        // Given a log, when a consumer handles it in batches of 7 ...
        let log: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
        write_log(&*log, 50, 5).await;
        let head = log.head().await.expect("head");
        let app = App::builder().shared_store(log).consumer_batch(BATCH).build();
        fault::disarm_all();
        let counter = app.consumers().start(Counter).await.expect("start the consumer");
        tokio::time::timeout(HANG, counter.wait_for(head))
            .await
            .expect("not hung")
            .expect("caught up");
        // ... then every batch passed the consumer points.
        let batches = head.div_ceil(BATCH as u64);
        assert_eq!(fault::hits("consumer.commit.before"), batches);
        assert_eq!(fault::hits("consumer.commit.after"), batches);
        // Given nothing armed, when a transfer runs its two steps (withdraw, deposit) ...
        let app = App::in_memory();
        fault::disarm_all();
        app.entity::<Wallet>("ada")
            .send(Credit {
                amount: 10,
                reference: "opening balance".into(),
            })
            .await
            .expect("fund");
        let transfer = app.workflow::<Transfer>("t-1");
        transfer
            .start(StartTransfer {
                from: "ada".into(),
                to: "bob".into(),
                amount: 5,
            })
            .await
            .expect("start");
        tokio::time::timeout(HANG, transfer.wait_for_end())
            .await
            .expect("not hung")
            .expect("ended");
        // ... then each step passed the workflow point once.
        assert_eq!(fault::hits("workflow.step.after"), 2);
    });
    // Every point of the table is one of those.
    let points: Vec<&str> = fault::POINTS.iter().map(|(p, _)| *p).collect();
    assert_eq!(
        points,
        [
            "append.before",
            // Reached by a PostgreSQL append of 256 KiB or more, in `postgres_large_appends.rs`.
            "append.large.before",
            "append.after",
            "snapshot.save.before",
            "view.commit.before",
            "view.commit.inside",
            "view.commit.after",
            "consumer.commit.before",
            "consumer.commit.after",
            // Reached by the NATS producer, in `nats_producer.rs`.
            "producer.commit.before",
            "workflow.step.after",
        ]
    );
}

#[test]
fn a_misspelt_or_impossible_rule_is_refused() {
    let _faults = faults();
    assert!(matches!(
        fault::arm("view.comit.after", Action::Abort, Hits::Only(1)),
        Err(fault::ArmError::UnknownPoint(_))
    ));
    assert!(matches!(
        fault::arm("append.after", Action::Fail, Hits::Only(1)),
        Err(fault::ArmError::CannotFail(_))
    ));
}

#[test]
fn fail_makes_an_append_or_a_snapshot_save_fail_naming_the_point_and_write_nothing() {
    let _faults = faults();
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = runtime();
    rt.block_on(async {
        for store in event_stores(dir.path(), "fault_points_fail_store").await {
            let backend = store.backend();
            // Given the first append armed to fail ...
            fault::arm("append.before", Action::Fail, Hits::Only(1)).expect("arm");
            let request = || factum::store::AppendRequest {
                stream_type: "test".into(),
                stream_id: "a".into(),
                expected_version: 0,
                events: vec![factum::store::NewEvent {
                    event_type: "test.scored".into(),
                    schema_version: 1,
                    codec: Codec::Json,
                    payload: br#"{"amount":1}"#.to_vec(),
                    metadata: factum::store::EventMetadata {
                        event_id: uuid::Uuid::new_v4(),
                        recorded_at: Timestamp::from_secs(0),
                        command_id: uuid::Uuid::new_v4(),
                        causation_id: None,
                        correlation_id: uuid::Uuid::new_v4(),
                    },
                }],
            };
            // ... when it runs, then it fails naming the point and writes nothing,
            let error = store.append(request()).await.expect_err("the armed append fails");
            assert!(
                error.to_string().contains("fault point append.before"),
                "{backend}: {error}"
            );
            assert_eq!(store.head().await.expect("head"), 0, "{backend}: nothing written");
            assert_eq!(store.stream_version("test", "a").await.expect("version"), 0);
            // and the next one (the point fires on its first hit only) succeeds.
            let appended = store.append(request()).await.expect("the next append");
            assert_eq!(appended.version, 1, "{backend}");

            // Given the next snapshot save armed to fail, when it runs, then it
            // fails naming the point and stores nothing.
            fault::arm("snapshot.save.before", Action::Fail, Hits::Only(1)).expect("arm");
            let error = store
                .save_snapshot(snapshot())
                .await
                .expect_err("the armed save fails");
            assert!(
                error.to_string().contains("fault point snapshot.save.before"),
                "{backend}: {error}"
            );
            let stored = store.load_snapshot("test", "a").await.expect("load");
            assert!(stored.is_none(), "{backend}: no snapshot stored");
            fault::disarm_all();
        }
    });
}

#[test]
fn fail_at_a_view_commit_moves_no_checkpoint_and_once_disarmed_the_view_equals_a_fresh_fold() {
    let _faults = faults();
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = runtime();
    rt.block_on(async {
        for point in ["view.commit.before", "view.commit.inside"] {
            let round = dir.path().join(point);
            std::fs::create_dir(&round).expect("a folder per point");
            for (views, inside) in view_stores(&round, "fault_points_fail_view").await {
                if point == "view.commit.inside" && !inside {
                    continue;
                }
                let context = format!("{} at {point}", views.backend());
                // Given every commit of a view armed to fail at `point` ...
                let (app, log, head) = app_over_a_log(views.clone()).await;
                fault::arm(point, Action::Fail, Hits::Onward(1)).expect("arm");
                app.start_view::<Tally>().await.expect("start");
                let tally = app.view::<Tally>();
                // ... when it catches up, then the runner reports the failure,
                let error = tokio::time::timeout(HANG, tally.wait_for(head))
                    .await
                    .expect("not hung")
                    .expect_err("the runner fails at every commit");
                assert!(
                    matches!(&error, ViewError::Failing { error, .. } if error.contains(point)),
                    "{context}: {error}"
                );
                let last = tally.last_error().unwrap_or_default();
                assert!(
                    last.contains(&format!("fault point {point}")),
                    "{context}: {last}"
                );
                assert!(fault::hits(point) >= 3, "{context}: retried");
                // and the checkpoint did not move, in memory nor in storage, and no row was written.
                assert_eq!(tally.checkpoint(), 0, "{context}");
                assert_eq!(stored_checkpoint(&*views).await, 0, "{context}: stored");
                let rows = tally.list(None, 10).await.expect("list").rows;
                assert!(rows.is_empty(), "{context}: {rows:?}");

                // When disarmed, then it catches up and equals a fresh fold.
                fault::disarm_all();
                tokio::time::timeout(HANG, recovered(&tally, head))
                    .await
                    .expect("not hung");
                assert_eq!(stored_checkpoint(&*views).await, head, "{context}: stored");
                assert_equals_a_fresh_fold(&app, &*log, &context).await;
            }
        }
    });
}

#[test]
fn fail_after_a_commit_resumes_from_the_stored_checkpoint_and_folds_nothing_twice() {
    let _faults = faults();
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = runtime();
    rt.block_on(async {
        for (views, _) in view_stores(dir.path(), "fault_points_fail_after").await {
            let backend = views.backend();
            // Given the second commit of a view armed to fail after it committed ...
            let (app, log, head) = app_over_a_log(views.clone()).await;
            fault::arm("view.commit.after", Action::Fail, Hits::Only(2)).expect("arm");
            // ... when the view catches up, then it gets there,
            app.start_view::<Tally>().await.expect("start");
            let tally = app.view::<Tally>();
            tokio::time::timeout(HANG, tally.wait_for(head))
                .await
                .expect("not hung")
                .expect("caught up");
            // having failed once at the point,
            let last = tally.last_error().unwrap_or_default();
            assert!(
                last.contains("fault point view.commit.after failed on purpose (hit 2)"),
                "{backend}: {last}"
            );
            // and equals a fresh fold: the committed batch was not folded again.
            assert_equals_a_fresh_fold(&app, &*log, backend).await;
        }
    });
}

#[test]
fn pause_holds_a_view_commit_until_released() {
    let _faults = faults();
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = runtime();
    let views: Arc<dyn ViewStore> =
        Arc::new(SqliteViewStore::open(dir.path().join("views.db")).expect("sqlite views"));
    // Given the second commit of a view armed to pause ...
    fault::arm("view.commit.before", Action::Pause, Hits::Only(2)).expect("arm");
    let (app, log, head) = rt.block_on(app_over_a_log(views.clone()));
    rt.block_on(app.start_view::<Tally>()).expect("start");
    // ... when the view catches up, then it holds there, the first batch committed,
    assert!(
        fault::wait_paused("view.commit.before", HANG),
        "the runner reached its second commit"
    );
    let tally = app.view::<Tally>();
    assert_eq!(tally.checkpoint(), BATCH as u64);
    assert_eq!(rt.block_on(stored_checkpoint(&*views)), BATCH as u64);
    // and once released it catches up and equals a fresh fold.
    fault::release("view.commit.before");
    rt.block_on(async {
        tokio::time::timeout(HANG, tally.wait_for(head))
            .await
            .expect("not hung")
            .expect("caught up once released");
        assert_equals_a_fresh_fold(&app, &*log, "after the pause").await;
    });
    assert_eq!(fault::hits("view.commit.before"), head.div_ceil(BATCH as u64));
}

/// A SQLite file holding a log of `events` events and, beside it, the view.
fn child_files(events: u64) -> (tempfile::TempDir, Vec<String>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("views.db");
    let rt = runtime();
    rt.block_on(async {
        let log = SqliteStore::open(&path).expect("log");
        write_log(&log, events, 10).await;
    });
    let args = vec![
        "sqlite".to_owned(),
        path.display().to_string(),
        events.to_string(),
    ];
    (dir, args)
}

fn view_child(args: &[String]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_view_child"));
    command.args(args).env("FACTUM_CHILD_BATCH", "10");
    command
}

#[test]
fn abort_ends_a_child_at_the_hit_it_names_after_announcing_it() {
    let _faults = faults();
    let (dir, args) = child_files(100);
    // Given a child catching up a view in batches of 10, armed to abort
    // after its third commit, when it runs ...
    let ended = run_with_fault(&mut view_child(&args), "view.commit.after=abort@3");
    // ... then it announced the hit and died of the abort there,
    ended.assert_aborted_at("view.commit.after", 3);
    assert!(!ended.stdout.iter().any(|l| l == "done"), "{ended:?}");
    // with exactly three batches committed.
    let rt = runtime();
    let views = SqliteViewStore::open(dir.path().join("views.db")).expect("views");
    assert_eq!(rt.block_on(stored_checkpoint(&views)), 30);
}

#[test]
fn a_misspelt_rule_in_the_environment_ends_the_child_at_once() {
    let _faults = faults();
    let (_dir, args) = child_files(100);
    // Given a rule naming no point, when a child reaches its first point ...
    let ended = run_with_fault(&mut view_child(&args), "view.comit.after=abort@3");
    // ... then it ends with exit code 2 and says why, instead of running uncrashed.
    assert_eq!(ended.status.code(), Some(2), "{ended:?}");
    assert!(
        ended
            .stderr
            .iter()
            .any(|l| l.contains("`view.comit.after` is not a fault point")),
        "{ended:?}"
    );
    assert!(!ended.stdout.iter().any(|l| l == "done"), "{ended:?}");
}
