//! What makes a view exactly-once, tested on each view store directly: a
//! commit moves rows and checkpoint together or not at all, and a commit
//! folded on a stale checkpoint (a runner that lost its lease) is refused
//! with `CheckpointMoved` and changes no row.
//!
//! A failing row write is made certain, not hoped for: a trigger in the
//! database refuses the row with key `poison`, after the checkpoint update
//! and another row were already written in the same commit.

use std::sync::Arc;

use factum::postgres::PostgresViewStore;
use factum::sqlite::SqliteViewStore;
use factum::view::{
    Commit, MemoryViewStore, RowWrite, TableId, TableState, ViewStore, ViewStoreError, ViewTable,
};

fn table() -> TableId {
    TableId {
        view: "commits".into(),
        version: 1,
        build: 0,
    }
}

fn row(key: &str, value: &str) -> RowWrite {
    RowWrite {
        key: key.into(),
        row: Some(format!("{{\"v\":\"{value}\"}}").into_bytes()),
        indexes: vec![("v", value.into())],
    }
}

async fn open(store: &dyn ViewStore) -> Arc<dyn ViewTable> {
    store
        .open(&table(), &["v"], TableState::Active)
        .await
        .expect("open the table")
}

/// Given a table at checkpoint 5 with row `a`, when a commit from 5 writes
/// row `b` and then fails on row `poison`, then the checkpoint is still 5,
/// `b` is absent and `a` is as it was.
async fn a_failed_row_write_leaves_the_checkpoint_and_rows_as_they_were(t: Arc<dyn ViewTable>) {
    t.commit(Commit {
        from: 0,
        to: 5,
        rows: vec![row("a", "1")],
    })
    .await
    .expect("the first commit");
    let err = t
        .commit(Commit {
            from: 5,
            to: 9,
            rows: vec![row("b", "2"), row("a", "3"), row("poison", "x")],
        })
        .await
        .expect_err("the trigger refuses the poison row");
    assert!(
        err.to_string().contains("poison"),
        "the error carries the database's reason: {err}"
    );
    assert_eq!(
        t.checkpoint().await.expect("checkpoint"),
        5,
        "the checkpoint did not move"
    );
    assert_eq!(
        t.get("b").await.expect("get b"),
        None,
        "no row of the failed commit"
    );
    assert_eq!(
        t.get("a").await.expect("get a"),
        Some(b"{\"v\":\"1\"}".to_vec()),
        "row a as the first commit left it"
    );
    assert_eq!(
        t.find("v", "2", 10).await.expect("find").len(),
        0,
        "no index entry either"
    );
}

/// Given a table a runner moved to 5, when another runner commits a batch
/// it folded on checkpoint 0, then the commit is refused with
/// `CheckpointMoved { expected: 0, found: 5 }` and no row changes.
async fn a_commit_from_a_stale_checkpoint_is_refused_and_changes_no_row(t: Arc<dyn ViewTable>) {
    t.commit(Commit {
        from: 0,
        to: 5,
        rows: vec![row("a", "1")],
    })
    .await
    .expect("the live runner's commit");
    let err = t
        .commit(Commit {
            from: 0,
            to: 7,
            rows: vec![row("a", "stale"), row("b", "stale")],
        })
        .await
        .expect_err("a stale runner's commit");
    match err {
        ViewStoreError::CheckpointMoved {
            table: id,
            expected,
            found,
        } => assert_eq!((id, expected, found), (table(), 0, 5)),
        other => panic!("expected CheckpointMoved, got {other}"),
    }
    assert_eq!(t.checkpoint().await.expect("checkpoint"), 5);
    assert_eq!(t.get("a").await.expect("get"), Some(b"{\"v\":\"1\"}".to_vec()));
    assert_eq!(t.get("b").await.expect("get"), None);
    assert!(t.find("v", "stale", 10).await.expect("find").is_empty());
}

#[tokio::test]
async fn memory_a_commit_from_a_stale_checkpoint_is_refused_and_changes_no_row() {
    let store = MemoryViewStore::new();
    a_commit_from_a_stale_checkpoint_is_refused_and_changes_no_row(open(&store).await).await;
}

fn sqlite_store(dir: &tempfile::TempDir) -> (SqliteViewStore, std::path::PathBuf) {
    let path = dir.path().join("views.db");
    (SqliteViewStore::open(&path).expect("open"), path)
}

#[tokio::test]
async fn sqlite_a_commit_from_a_stale_checkpoint_is_refused_and_changes_no_row() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _) = sqlite_store(&dir);
    a_commit_from_a_stale_checkpoint_is_refused_and_changes_no_row(open(&store).await).await;
}

#[tokio::test]
async fn sqlite_a_failed_row_write_leaves_the_checkpoint_and_rows_as_they_were() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, path) = sqlite_store(&dir);
    let t = open(&store).await;
    let conn = rusqlite::Connection::open(&path).expect("open the file beside the store");
    conn.execute_batch(
        "CREATE TRIGGER poison BEFORE INSERT ON fv_commits_v1_b0 WHEN NEW.key = 'poison'
         BEGIN SELECT RAISE(ABORT, 'poison row refused'); END;",
    )
    .expect("create the trigger");
    drop(conn);
    a_failed_row_write_leaves_the_checkpoint_and_rows_as_they_were(t).await;
}

async fn postgres_store(test: &str) -> Option<(PostgresViewStore, String, String)> {
    let url = factum_tests::pg::url(test)?;
    let schema = factum_tests::pg::fresh_schema("vsc");
    let store = PostgresViewStore::connect_in_schema(&url, &schema)
        .await
        .expect("connect to FACTUM_PG_URL");
    Some((store, url, schema))
}

#[cfg_attr(
    not(factum_pg),
    ignore = "needs PostgreSQL: set FACTUM_PG_URL (see tests/README.md)"
)]
#[tokio::test]
async fn postgres_a_commit_from_a_stale_checkpoint_is_refused_and_changes_no_row() {
    let Some((store, _, _)) = postgres_store("stale_commit").await else {
        return;
    };
    a_commit_from_a_stale_checkpoint_is_refused_and_changes_no_row(open(&store).await).await;
}

#[cfg_attr(
    not(factum_pg),
    ignore = "needs PostgreSQL: set FACTUM_PG_URL (see tests/README.md)"
)]
#[tokio::test]
async fn postgres_a_failed_row_write_leaves_the_checkpoint_and_rows_as_they_were() {
    let Some((store, url, schema)) = postgres_store("failed_row").await else {
        return;
    };
    let t = open(&store).await;
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    client
        .batch_execute(&format!(
            "CREATE FUNCTION {schema}.poison() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
                 IF NEW.key = 'poison' THEN RAISE EXCEPTION 'poison row refused'; END IF;
                 RETURN NEW;
             END $$;
             CREATE TRIGGER poison BEFORE INSERT OR UPDATE ON {schema}.fv_commits_v1_b0
                 FOR EACH ROW EXECUTE FUNCTION {schema}.poison();"
        ))
        .await
        .expect("create the trigger");
    a_failed_row_write_leaves_the_checkpoint_and_rows_as_they_were(t).await;
}
