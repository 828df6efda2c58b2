//! A view rebuilt beside the live table from the command line (`factum
//! rebuild-view`, `swap-view`) survives being killed mid-build: the child is
//! aborted at the view's commit fault points, each restart (`swap-view`)
//! resumes the side table at its last committed batch, and the table made
//! live at the end equals a fresh fold of the whole log (a skipped or doubled
//! event would show in a row's count and sum).

use std::process::Command;

use factum::sqlite::SqliteViewStore;
use factum::view::{TableState, ViewStore};
use factum_tests::child::run_with_fault;
use factum_tests::views::{Tally, fold_log, write_log_in_chunks};

const EVENTS: u64 = 20_000;
const STREAMS: u64 = 100;
/// Events per view transaction in the child: one commit per batch.
const BATCH: u64 = 200;

fn cli(db: &std::path::Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cli_child"));
    command
        .arg("--db")
        .arg(db)
        .args(args)
        .args(["--batch", &BATCH.to_string()]);
    command
}

/// The side table's state and checkpoint (the view has exactly one table here).
fn table(rt: &tokio::runtime::Runtime, db: &std::path::Path) -> (TableState, u64) {
    let views = SqliteViewStore::open(db).expect("view store");
    let tables = rt.block_on(views.tables("test_tally")).expect("tables");
    assert_eq!(
        tables.len(),
        1,
        "one table, resumed, never a second build: {tables:?}"
    );
    (tables[0].state, tables[0].position)
}

#[test]
fn a_rebuild_killed_at_each_commit_point_resumes_and_swaps_in_a_fresh_fold() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("rebuild.db");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    // Given a durable log and no table of the view yet ...
    let log = {
        let _guard = rt.enter();
        factum::sqlite::SqliteStore::options()
            .synchronous(factum::sqlite::Synchronous::Off)
            .open(&db)
            .expect("log")
    };
    rt.block_on(write_log_in_chunks(&log, EVENTS, STREAMS));
    drop(log);

    // ... a rebuild killed after its 13th commit leaves a building table at 13 batches,
    let ended = run_with_fault(
        &mut cli(&db, &["rebuild-view", "test_tally"]),
        "view.commit.after=abort@13",
    );
    ended.assert_aborted_at("view.commit.after", 13);
    let mut expected = 13 * BATCH;
    assert_eq!(table(&rt, &db), (TableState::Building, expected));

    // each swap killed part-way resumes it where it stood and keeps what it committed,
    for (point, commit) in [
        ("view.commit.inside", 7),
        ("view.commit.before", 1),
        ("view.commit.after", 30),
    ] {
        let ended = run_with_fault(
            &mut cli(&db, &["swap-view", "test_tally"]),
            &format!("{point}=abort@{commit}"),
        );
        ended.assert_aborted_at(point, commit);
        expected += if point == "view.commit.after" {
            commit
        } else {
            commit - 1
        } * BATCH;
        assert_eq!(
            table(&rt, &db),
            (TableState::Building, expected),
            "killed at {point} of commit {commit}: not swapped, and at its last committed batch"
        );
    }
    assert!(expected < EVENTS, "every kill was mid-build");

    // and the swap that runs to the end makes a table equal to a fresh fold live.
    let ended = run_with_fault(&mut cli(&db, &["swap-view", "test_tally", "--json"]), "");
    assert!(ended.status.success(), "the last swap finished: {ended:?}");
    assert_eq!(table(&rt, &db), (TableState::Active, EVENTS));
    let log = {
        let _guard = rt.enter();
        factum::sqlite::SqliteStore::open_read_only(&db).expect("log")
    };
    let fresh = rt.block_on(fold_log(&log));
    let views = SqliteViewStore::open(&db).expect("view store");
    let info = rt.block_on(views.tables("test_tally")).expect("tables").remove(0);
    let live = rt
        .block_on(views.open(&info.id, <Tally as factum::View>::INDEXES, TableState::Active))
        .expect("open");
    let rows = rt.block_on(live.list(None, 10_000)).expect("rows");
    assert_eq!(rows.len() as u64, STREAMS, "one row per stream");
    for (key, bytes) in rows {
        let row: Tally = serde_json::from_slice(&bytes).expect("a tally row");
        assert_eq!(
            (row.count, row.sum),
            fresh[&key],
            "row {key}: count and sum of a fresh fold"
        );
    }
}
