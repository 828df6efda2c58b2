//! Exactly once over the log after any crash: a child process catching up a
//! view over a durable log of 100,000 events (SQLite file, PostgreSQL schema)
//! is aborted at fault points — before a batch's commit, inside it (written,
//! not committed) and after it, at batches spread over the catch-up — and
//! restarted each time; at the end the view equals a fresh fold of the whole
//! log (every row's count and sum: a skipped event or one applied twice would
//! show).
//!
//! Each kill is checked to have landed where it was meant: the child
//! announced the point, died of the abort, and left the checkpoint exactly
//! where that point implies (the kills before it, plus the batches it
//! committed), strictly between 0 and the head of the log.

use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use factum::App;
use factum::store::EventStore;
use factum::view::ViewStore;
use factum_tests::child::run_with_fault;
use factum_tests::views::{CHILD_STREAMS, Tally, fold_log, write_log_in_chunks};

const EVENTS: u64 = 100_000;
/// Events per view transaction in the child: one commit per batch.
const BATCH: u64 = 200;

/// The kills, in order: the fault point and which of the (re)started child's
/// commits it aborts at. `view.commit.after` at commit k leaves k more
/// batches folded; `view.commit.before` (the k-th batch folded, not yet
/// committed) and `view.commit.inside` (its rows and checkpoint written in
/// the store's transaction, not yet committed) leave k - 1. The checkpoints
/// at the kills: 7,400, 25,400, 38,000, 60,600, 60,600 and 78,400 of 100,000.
const KILLS: [(&str, u64); 6] = [
    ("view.commit.after", 37),
    ("view.commit.before", 91),
    ("view.commit.inside", 64),
    ("view.commit.after", 113),
    ("view.commit.before", 1),
    ("view.commit.inside", 90),
];

fn child(args: &[String]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_view_child"));
    command.args(args).env("FACTUM_CHILD_BATCH", BATCH.to_string());
    command
}

/// The checkpoint and rows of `test_tally` in `store`, read through an app with an empty log.
async fn read_view(store: Arc<dyn ViewStore>) -> (u64, Vec<(String, Tally)>) {
    let app = App::builder().shared_view_store(store).build();
    app.start_view::<Tally>().await.expect("start");
    let tally = app.view::<Tally>();
    let mut rows = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = tally.list(cursor.as_deref(), 500).await.expect("list");
        rows.extend(page.rows);
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    (tally.checkpoint(), rows)
}

fn crash_and_resume(
    rt: &tokio::runtime::Runtime,
    log: Arc<dyn EventStore>,
    args: Vec<String>,
    open: impl Fn() -> Arc<dyn ViewStore>,
) {
    // Given a durable log of EVENTS events and an empty view ...
    rt.block_on(write_log_in_chunks(&*log, EVENTS, CHILD_STREAMS));
    assert_eq!(rt.block_on(log.head()).expect("head"), EVENTS, "a dense log");

    // ... when the catching-up child is aborted at each kill point in turn ...
    let mut expected = 0;
    for (point, commit) in KILLS {
        let ended = run_with_fault(&mut child(&args), &format!("{point}=abort@{commit}"));
        ended.assert_aborted_at(point, commit);
        let folded = if point == "view.commit.after" {
            commit
        } else {
            commit - 1
        };
        expected += folded * BATCH;
        let (checkpoint, _) = rt.block_on(read_view(open()));
        eprintln!("killed at {point} of commit {commit}: checkpoint {checkpoint}");
        assert_eq!(
            checkpoint, expected,
            "killed at {point} of commit {commit}: the checkpoint is where the restart resumed \
             plus the batches committed before the kill"
        );
        assert!(
            0 < checkpoint && checkpoint < EVENTS,
            "the kill at {point} of commit {commit} was not mid catch-up: checkpoint {checkpoint}"
        );
    }

    // ... and then runs to the end,
    let started = Instant::now();
    let ended = run_with_fault(&mut child(&args), "");
    assert!(
        ended.status.success() && ended.stdout.iter().any(|l| l == "done"),
        "the last child finished the catch-up: {ended:?}"
    );
    eprintln!("final catch-up took {:?}", started.elapsed());

    // then the view equals a fresh fold of the whole log.
    let (checkpoint, rows) = rt.block_on(read_view(open()));
    assert_eq!(checkpoint, EVENTS);
    let expected = rt.block_on(fold_log(&*log));
    assert_eq!(rows.len(), expected.len(), "one row per stream");
    for (key, row) in rows {
        let (count, sum) = expected[&key];
        assert_eq!(
            (row.count, row.sum),
            (count, sum),
            "row {key}: count and sum of a fresh fold"
        );
    }
}

#[test]
fn a_sqlite_view_killed_during_catch_up_ends_equal_to_a_fresh_fold() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("views.db");
    let args = vec![
        "sqlite".to_owned(),
        path.display().to_string(),
        EVENTS.to_string(),
    ];
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let log = {
        let _guard = rt.enter();
        factum::sqlite::SqliteStore::options()
            .synchronous(factum::sqlite::Synchronous::Off)
            .open(&path)
            .expect("log")
    };
    crash_and_resume(&rt, Arc::new(log), args, || {
        Arc::new(factum::sqlite::SqliteViewStore::open(&path).expect("open"))
    });
}

#[cfg_attr(
    not(factum_pg),
    ignore = "needs PostgreSQL: set FACTUM_PG_URL (see tests/README.md)"
)]
#[test]
fn a_postgres_view_killed_during_catch_up_ends_equal_to_a_fresh_fold() {
    let Some(url) = factum_tests::pg::url("a_postgres_view_killed_during_catch_up") else {
        return;
    };
    let schema = factum_tests::pg::fresh_schema("crash");
    let args = vec![
        "postgres".to_owned(),
        url.clone(),
        schema.clone(),
        EVENTS.to_string(),
    ];
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let log = rt
        .block_on(
            factum::postgres::PostgresStore::connect(url.clone())
                .schema(schema.clone())
                .open(),
        )
        .expect("log");
    crash_and_resume(&rt, Arc::new(log), args, || {
        let store = rt
            .block_on(factum::postgres::PostgresViewStore::connect_in_schema(
                &url, &schema,
            ))
            .expect("connect");
        Arc::new(store)
    });
}
