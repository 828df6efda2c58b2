//! A view whose handlers update a computed set of rows: the occupancy of a
//! hotel by night, from one booking event per stay (`#[on(keys =
//! e.nights())]`), never one event per night. On every view store the rows
//! equal a count made night by night without the view's code; each batch
//! loads every row it touches once and writes it once; after kills at the
//! commit fault points and after a rebuild the rows are still exact.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::process::Command;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use factum::App;
use factum::process::Lease;
use factum::sqlite::SqliteViewStore;
use factum::store::{EventStore, MemoryStore};
use factum::view::{
    Commit, IndexedRow, MemoryViewStore, TableId, TableInfo, TableState, ViewStore, ViewStoreError, ViewTable,
};
use factum_tests::child::run_with_fault;
use factum_tests::occupancy::{NightOccupancy, StayBooked, expected_occupancy, night, write_bookings};
use factum_tests::views::append;

/// Every row of the view, read page by page.
async fn rows(app: &App) -> BTreeMap<String, NightOccupancy> {
    let view = app.view::<NightOccupancy>();
    let mut out = BTreeMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = view.list(cursor.as_deref(), 64).await.expect("list");
        out.extend(page.rows);
        match page.next {
            Some(next) => cursor = Some(next),
            None => return out,
        }
    }
}

/// Given 300 bookings (every fifth cancelled) written before the view starts
/// and one more stay booked while it runs, the rows are the night-by-night count.
async fn occupancy_is_counted_night_by_night(view_store: Arc<dyn ViewStore>) {
    let log: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    let written = write_bookings(&*log, 300).await;
    let app = App::builder()
        .shared_store(log.clone())
        .shared_view_store(view_store)
        .view_batch(50)
        .build();
    app.start_view::<NightOccupancy>().await.expect("start");
    let view = app.view::<NightOccupancy>();
    view.wait_for(written).await.expect("caught up");
    assert_eq!(rows(&app).await, expected_occupancy(300));

    // A stay of 10,000 nights is one event, and 10,000 rows.
    let long = StayBooked {
        room: 99,
        guests: 2,
        first: 1,
        nights: 10_000,
    };
    let position = append(&*log, "long-stay", 0, &long).await;
    view.wait_for(position).await.expect("the long stay folded");
    let mut expected = expected_occupancy(300);
    for day in 1..=10_000 {
        let row = expected.entry(night(day)).or_default();
        row.rooms += 1;
        row.guests += 2;
    }
    let folded = rows(&app).await;
    assert_eq!(folded.len(), expected.len());
    assert_eq!(folded, expected);
}

#[tokio::test]
async fn memory_occupancy_is_counted_night_by_night() {
    occupancy_is_counted_night_by_night(Arc::new(MemoryViewStore::new())).await;
}

#[tokio::test]
async fn sqlite_occupancy_is_counted_night_by_night() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteViewStore::open(dir.path().join("views.db")).expect("open");
    occupancy_is_counted_night_by_night(Arc::new(store)).await;
}

#[cfg_attr(
    not(factum_pg),
    ignore = "needs PostgreSQL: set FACTUM_PG_URL (see tests/README.md)"
)]
#[tokio::test]
async fn postgres_occupancy_is_counted_night_by_night() {
    let Some(url) = factum_tests::pg::url("postgres_occupancy_is_counted_night_by_night") else {
        return;
    };
    let schema = factum_tests::pg::fresh_schema("occupancy");
    let store = factum::postgres::PostgresViewStore::connect_in_schema(&url, &schema)
        .await
        .expect("connect");
    occupancy_is_counted_night_by_night(Arc::new(store)).await;
}

/// What one batch did to the table: the keys it loaded, the keys it wrote.
#[derive(Debug, Default)]
struct Batch {
    loads: Vec<Vec<String>>,
    writes: Vec<String>,
}

/// A memory view store that records each table's reads and commits.
struct Recording {
    inner: MemoryViewStore,
    batches: Arc<Mutex<Vec<Batch>>>,
    pending: Arc<Mutex<Vec<Vec<String>>>>,
}

struct RecordingTable {
    inner: Arc<dyn ViewTable>,
    batches: Arc<Mutex<Vec<Batch>>>,
    pending: Arc<Mutex<Vec<Vec<String>>>>,
}

#[async_trait]
impl ViewTable for RecordingTable {
    fn id(&self) -> &TableId {
        self.inner.id()
    }
    async fn checkpoint(&self) -> Result<u64, ViewStoreError> {
        self.inner.checkpoint().await
    }
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, ViewStoreError> {
        self.inner.get(key).await
    }
    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, ViewStoreError> {
        self.pending.lock().unwrap().push(keys.to_vec());
        self.inner.get_many(keys).await
    }
    async fn find(
        &self,
        index: &str,
        value: &str,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, ViewStoreError> {
        self.inner.find(index, value, limit).await
    }
    async fn list(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, ViewStoreError> {
        self.inner.list(after, limit).await
    }
    async fn range(
        &self,
        from: Bound<&str>,
        to: Bound<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, ViewStoreError> {
        self.inner.range(from, to, limit).await
    }
    async fn find_range(
        &self,
        index: &str,
        from: Bound<&str>,
        to: Bound<&str>,
        after: Option<(&str, &str)>,
        limit: usize,
    ) -> Result<Vec<IndexedRow>, ViewStoreError> {
        self.inner.find_range(index, from, to, after, limit).await
    }
    async fn commit(&self, commit: Commit) -> Result<(), ViewStoreError> {
        let writes = commit.rows.iter().map(|r| r.key.clone()).collect();
        self.inner.commit(commit).await?;
        let loads = std::mem::take(&mut *self.pending.lock().unwrap());
        self.batches.lock().unwrap().push(Batch { loads, writes });
        Ok(())
    }
}

#[async_trait]
impl ViewStore for Recording {
    fn backend(&self) -> &'static str {
        "recording"
    }
    async fn tables(&self, view: &str) -> Result<Vec<TableInfo>, ViewStoreError> {
        self.inner.tables(view).await
    }
    async fn open(
        &self,
        id: &TableId,
        indexes: &[&'static str],
        state: TableState,
    ) -> Result<Arc<dyn ViewTable>, ViewStoreError> {
        Ok(Arc::new(RecordingTable {
            inner: self.inner.open(id, indexes, state).await?,
            batches: self.batches.clone(),
            pending: self.pending.clone(),
        }))
    }
    async fn activate(&self, id: &TableId) -> Result<(), ViewStoreError> {
        self.inner.activate(id).await
    }
    async fn drop_retired(&self, view: &str) -> Result<(), ViewStoreError> {
        self.inner.drop_retired(view).await
    }
    async fn try_lease(&self, view: &str) -> Result<Option<Box<dyn Lease>>, ViewStoreError> {
        self.inner.try_lease(view).await
    }
}

/// Given bookings whose stays overlap (many events per night in one batch),
/// when the view folds them in batches of 40 events, then each batch reads
/// its rows in one `get_many` naming each touched night once, and writes each
/// of those nights once.
#[tokio::test]
async fn each_batch_loads_and_writes_each_touched_night_once() {
    let log: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    let written = write_bookings(&*log, 400).await;
    let batches = Arc::new(Mutex::new(Vec::new()));
    let store = Recording {
        inner: MemoryViewStore::new(),
        batches: batches.clone(),
        pending: Arc::default(),
    };
    let app = App::builder()
        .shared_store(log)
        .view_store(store)
        .view_batch(40)
        .build();
    app.start_view::<NightOccupancy>().await.expect("start");
    app.view::<NightOccupancy>()
        .wait_for(written)
        .await
        .expect("caught up");
    assert_eq!(rows(&app).await, expected_occupancy(400));

    let batches = batches.lock().unwrap();
    assert_eq!(
        batches.len() as u64,
        written.div_ceil(40),
        "one commit per batch of 40 events"
    );
    let mut touches = 0;
    for (i, batch) in batches.iter().enumerate() {
        assert_eq!(
            batch.loads.len(),
            1,
            "batch {i}: one read of its rows: {:?}",
            batch.loads
        );
        let mut loaded = batch.loads[0].clone();
        loaded.sort();
        let mut written = batch.writes.clone();
        written.sort();
        let mut distinct = written.clone();
        distinct.dedup();
        assert_eq!(written, distinct, "batch {i}: each night written once");
        assert_eq!(
            loaded, written,
            "batch {i}: each night loaded once, the nights it wrote"
        );
        touches += written.len();
    }
    // The stays overlap: far fewer row writes than (event, night) pairs.
    let pairs: u64 = (0..400u64)
        .map(|i| {
            let nights = u64::from(factum_tests::occupancy::booking(i).nights);
            if factum_tests::occupancy::cancelled(i) {
                2 * nights
            } else {
                nights
            }
        })
        .sum();
    assert!(
        (touches as u64) < pairs,
        "{touches} row writes for {pairs} (event, night) pairs"
    );
}

// ------------------------------------------------------------- crash and rebuild

const BOOKINGS: u64 = 2_000;
/// Events per view transaction in the child.
const BATCH: u64 = 20;
/// The kills: the fault point and which of the (re)started child's commits
/// it aborts at (see `views_crash.rs` for what each leaves committed).
const KILLS: [(&str, u64); 4] = [
    ("view.commit.after", 13),
    ("view.commit.before", 31),
    ("view.commit.inside", 22),
    ("view.commit.after", 17),
];

fn child(args: &[String]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_view_child"));
    command
        .args(args)
        .env("FACTUM_CHILD_BATCH", BATCH.to_string())
        .env("FACTUM_CHILD_VIEW", "occupancy");
    command
}

/// The checkpoint and rows of the view in `views`, read through an app with
/// an empty log (so it folds nothing itself).
async fn read_view(views: Arc<dyn ViewStore>) -> (u64, BTreeMap<String, NightOccupancy>) {
    let app = App::builder().shared_view_store(views).build();
    app.start_view::<NightOccupancy>().await.expect("start");
    let checkpoint = app.view::<NightOccupancy>().checkpoint();
    (checkpoint, rows(&app).await)
}

fn crash_rebuild_and_compare(
    rt: &tokio::runtime::Runtime,
    log: Arc<dyn EventStore>,
    args: impl Fn(u64) -> Vec<String>,
    open: impl Fn() -> Arc<dyn ViewStore>,
) {
    // Given a durable log of bookings and an empty view ...
    let events = rt.block_on(write_bookings(&*log, BOOKINGS));
    assert_eq!(rt.block_on(log.head()).expect("head"), events, "a dense log");
    let args = args(events);

    // ... when the catching-up child is aborted at each kill point in turn ...
    let mut expected = 0;
    for (point, commit) in KILLS {
        let ended = run_with_fault(&mut child(&args), &format!("{point}=abort@{commit}"));
        ended.assert_aborted_at(point, commit);
        expected += if point == "view.commit.after" {
            commit
        } else {
            commit - 1
        } * BATCH;
        let (checkpoint, _) = rt.block_on(read_view(open()));
        assert_eq!(checkpoint, expected, "killed at {point} of commit {commit}");
        assert!(
            0 < checkpoint && checkpoint < events,
            "the kill at {point} of commit {commit} was mid catch-up"
        );
    }

    // ... and then runs to the end, the rows are the night-by-night count;
    let ended = run_with_fault(&mut child(&args), "");
    assert!(
        ended.status.success() && ended.stdout.iter().any(|l| l == "done"),
        "the last child finished the catch-up: {ended:?}"
    );
    let (checkpoint, rows) = rt.block_on(read_view(open()));
    assert_eq!(checkpoint, events);
    assert_eq!(rows, expected_occupancy(BOOKINGS));

    // and a rebuild from position 0 beside the live table gives them again.
    let app = App::builder().shared_store(log).shared_view_store(open()).build();
    rt.block_on(app.start_view::<NightOccupancy>()).expect("start");
    let before = app.view::<NightOccupancy>().serving_table().expect("a table");
    rt.block_on(app.rebuild_view("test_occupancy")).expect("rebuild");
    let after = app.view::<NightOccupancy>().serving_table().expect("a table");
    assert_ne!(before, after, "the rebuild swapped in a new table");
    assert_eq!(rt.block_on(self::rows(&app)), expected_occupancy(BOOKINGS));
}

#[test]
fn a_sqlite_occupancy_view_killed_at_commits_and_rebuilt_stays_exact() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("hotel.db");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let log = {
        let _guard = rt.enter();
        factum::sqlite::SqliteStore::options()
            .synchronous(factum::sqlite::Synchronous::Off)
            .open(&path)
            .expect("log")
    };
    let file = path.display().to_string();
    crash_rebuild_and_compare(
        &rt,
        Arc::new(log),
        |events| vec!["sqlite".to_owned(), file.clone(), events.to_string()],
        || Arc::new(SqliteViewStore::open(&path).expect("open")),
    );
}

#[cfg_attr(
    not(factum_pg),
    ignore = "needs PostgreSQL: set FACTUM_PG_URL (see tests/README.md)"
)]
#[test]
fn a_postgres_occupancy_view_killed_at_commits_and_rebuilt_stays_exact() {
    let Some(url) = factum_tests::pg::url("a_postgres_occupancy_view_killed_at_commits") else {
        return;
    };
    let schema = factum_tests::pg::fresh_schema("occupancy_crash");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let log = rt
        .block_on(
            factum::postgres::PostgresStore::connect(url.clone())
                .schema(schema.clone())
                .open(),
        )
        .expect("log");
    crash_rebuild_and_compare(
        &rt,
        Arc::new(log),
        |events| {
            vec![
                "postgres".to_owned(),
                url.clone(),
                schema.clone(),
                events.to_string(),
            ]
        },
        || {
            let store = rt
                .block_on(factum::postgres::PostgresViewStore::connect_in_schema(
                    &url, &schema,
                ))
                .expect("connect");
            Arc::new(store)
        },
    );
}
