//! The event store conformance suite: every case runs against every backend —
//! `MemoryStore`, `SqliteStore` (JSON and Postcard), and `PostgresStore` (JSON
//! and Postcard) when `FACTUM_PG_URL` is set, each test in its own schema.
//! Timers join it: each backend's timer store (memory, the events' SQLite
//! file, the events' PostgreSQL schema) passes the same timer cases, and so
//! does each backend's consumer store (checkpoints and dead letters).

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use factum::consumer::{ConsumerStore, ConsumerStoreError, DeadLetter, LetterState, MemoryConsumerStore};
use factum::postgres::{PostgresConsumerStore, PostgresStore, PostgresTimerStore};
use factum::process::Subscription;
use factum::sqlite::{SqliteConsumerStore, SqliteStore, SqliteTimerStore, Synchronous};
use factum::store::{AppendRequest, EventMetadata, EventStore, NewEvent, Snapshot, StoreError};
use factum::timer::{FiringOutcome, MemoryTimerStore, TimerStore};
use factum::{App, ManualClock, TimerError};
use factum::{Codec, MemoryStore, Timestamp};
use factum_tests::timers::{Meter, Refuse, Tick, tick};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Deposited {
    account: String,
    amount: u64,
}

enum Kind {
    Memory,
    Sqlite(PathBuf),
    Postgres { url: String, schema: String },
}

/// A store under test plus what it takes to reach behind its back.
struct Backend {
    store: Arc<dyn EventStore>,
    timers: Arc<dyn TimerStore>,
    consumers: Arc<dyn ConsumerStore>,
    kind: Kind,
    _dir: Option<tempfile::TempDir>,
}

fn pg_url() -> Option<String> {
    factum_tests::pg::url("postgres conformance")
}

impl Backend {
    async fn memory() -> Option<Backend> {
        Some(Backend {
            store: Arc::new(MemoryStore::new()),
            timers: Arc::new(MemoryTimerStore::new()),
            consumers: Arc::new(MemoryConsumerStore::new()),
            kind: Kind::Memory,
            _dir: None,
        })
    }

    async fn sqlite_with(codec: Codec) -> Option<Backend> {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("events.db");
        // NORMAL keeps the suite fast; durability at FULL is the crash test's business.
        let store = SqliteStore::options()
            .synchronous(Synchronous::Normal)
            .codec(codec)
            .open(&path)
            .expect("open sqlite");
        Some(Backend {
            store: Arc::new(store),
            timers: Arc::new(SqliteTimerStore::open(&path).expect("open the sqlite timer store")),
            consumers: Arc::new(SqliteConsumerStore::open(&path).expect("open the sqlite consumer store")),
            kind: Kind::Sqlite(path),
            _dir: Some(dir),
        })
    }

    async fn sqlite() -> Option<Backend> {
        Self::sqlite_with(Codec::Json).await
    }

    async fn sqlite_postcard() -> Option<Backend> {
        Self::sqlite_with(Codec::Postcard).await
    }

    async fn postgres_with(codec: Codec) -> Option<Backend> {
        let url = pg_url()?;
        let schema = format!("t_{}", Uuid::new_v4().simple());
        let store = PostgresStore::connect(url.clone())
            .schema(schema.clone())
            .codec(codec)
            .pool_size(6)
            .poll_interval(Duration::from_millis(200))
            .await
            .expect("connect to postgres");
        let timers = PostgresTimerStore::connect_in_schema(&url, &schema)
            .await
            .expect("connect the postgres timer store");
        let consumers = PostgresConsumerStore::connect_in_schema(&url, &schema)
            .await
            .expect("connect the postgres consumer store");
        Some(Backend {
            store: Arc::new(store),
            timers: Arc::new(timers),
            consumers: Arc::new(consumers),
            kind: Kind::Postgres { url, schema },
            _dir: None,
        })
    }

    async fn postgres() -> Option<Backend> {
        Self::postgres_with(Codec::Json).await
    }

    async fn postgres_postcard() -> Option<Backend> {
        Self::postgres_with(Codec::Postcard).await
    }

    /// Runs SQL against the database directly, as an operator (or a bug) would.
    async fn tamper(&self, sqlite_sql: &str, pg_sql: &str) {
        match &self.kind {
            Kind::Memory => unreachable!("memory has no database to tamper with"),
            Kind::Sqlite(path) => {
                let conn = rusqlite::Connection::open(path).expect("open the file");
                conn.busy_timeout(Duration::from_secs(5)).expect("busy timeout");
                conn.execute_batch(sqlite_sql).expect("tamper");
            }
            Kind::Postgres { url, schema } => {
                let client = pg_client(url).await;
                client
                    .batch_execute(&pg_sql.replace("{s}", schema))
                    .await
                    .expect("tamper");
            }
        }
    }

    /// New handles on the same event and timer storage, as a restarted
    /// process (or another node) would open them; memory shares its maps.
    async fn reopen(&self) -> (Arc<dyn EventStore>, Arc<dyn TimerStore>) {
        match &self.kind {
            Kind::Memory => (self.store.clone(), self.timers.clone()),
            Kind::Sqlite(path) => {
                let store = SqliteStore::options()
                    .synchronous(Synchronous::Normal)
                    .codec(self.store.codec())
                    .open(path)
                    .expect("reopen sqlite");
                let timers = SqliteTimerStore::open(path).expect("reopen the sqlite timer store");
                (Arc::new(store), Arc::new(timers))
            }
            Kind::Postgres { url, schema } => {
                let store = PostgresStore::connect(url.clone())
                    .schema(schema.clone())
                    .codec(self.store.codec())
                    .pool_size(2)
                    .poll_interval(Duration::from_millis(200))
                    .await
                    .expect("reconnect to postgres");
                let timers = PostgresTimerStore::connect_in_schema(url, schema)
                    .await
                    .expect("reconnect the postgres timer store");
                (Arc::new(store), Arc::new(timers))
            }
        }
    }

    /// An app over this backend's events and timers, reading `clock`.
    fn timer_app(&self, clock: &ManualClock) -> App {
        App::builder()
            .shared_store(self.store.clone())
            .shared_timer_store(self.timers.clone())
            .clock(clock.clone())
            .build()
    }

    /// Drops the test's PostgreSQL schema.
    async fn finish(self) {
        let Backend {
            store,
            timers,
            consumers,
            kind,
            _dir,
        } = self;
        drop((store, timers, consumers));
        if let Kind::Postgres { url, schema } = kind {
            let client = pg_client(&url).await;
            client
                .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                .await
                .expect("drop the test schema");
        }
    }
}

async fn pg_client(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect to postgres");
    tokio::spawn(connection);
    client
}

fn new_event(codec: Codec, account: &str, amount: u64) -> NewEvent {
    NewEvent {
        event_type: "account.deposited".into(),
        schema_version: 1,
        codec,
        payload: codec
            .encode(&Deposited {
                account: account.into(),
                amount,
            })
            .expect("encode"),
        metadata: EventMetadata {
            event_id: Uuid::new_v4(),
            recorded_at: Timestamp::from_micros(1_700_000_000_000_000 + amount as i64),
            command_id: Uuid::new_v4(),
            causation_id: amount.is_multiple_of(2).then(Uuid::new_v4),
            correlation_id: Uuid::new_v4(),
        },
    }
}

fn request(stream_id: &str, expected: u64, events: Vec<NewEvent>) -> AppendRequest {
    AppendRequest {
        stream_type: "account".into(),
        stream_id: stream_id.into(),
        expected_version: expected,
        events,
    }
}

fn deposits(codec: Codec, account: &str, amounts: impl IntoIterator<Item = u64>) -> Vec<NewEvent> {
    amounts
        .into_iter()
        .map(|a| new_event(codec, account, a))
        .collect()
}

/// Asserts `err` is a version conflict on account stream `stream_id` with these versions.
#[track_caller]
fn assert_conflict(err: &StoreError, stream_id: &str, expected: u64, actual: u64) {
    match err {
        StoreError::Conflict {
            stream_type,
            stream_id: id,
            expected: e,
            actual: a,
        } => {
            assert_eq!(
                (stream_type.as_str(), id.as_str()),
                ("account", stream_id),
                "{err}"
            );
            assert_eq!((*e, *a), (expected, actual), "{err}");
        }
        other => panic!("expected a conflict on account/{stream_id}, got {other}"),
    }
}

fn decode(event: &factum::RecordedEvent) -> Deposited {
    event
        .codec
        .decode(&event.payload)
        .expect("decode a stored payload")
}

// ---------------------------------------------------------------- the cases

async fn append_then_read_back(b: &Backend) {
    let store = &b.store;
    let codec = store.codec();
    let written = deposits(codec, "alice", [10, 20, 30]);
    let appended = store.append(request("alice", 0, written.clone())).await.unwrap();
    assert_eq!(
        (appended.version, appended.first_position, appended.last_position),
        (3, 1, 3)
    );
    let appended = store
        .append(request("bob", 0, deposits(codec, "bob", [5, 6])))
        .await
        .unwrap();
    assert_eq!(
        (appended.version, appended.first_position, appended.last_position),
        (2, 4, 5)
    );

    let read = store.read_stream("account", "alice", 1, 100).await.unwrap();
    assert_eq!(read.iter().map(|e| e.version).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(read.iter().map(|e| e.position).collect::<Vec<_>>(), [1, 2, 3]);
    for (stored, sent) in read.iter().zip(&written) {
        assert_eq!(stored.stream_type, "account");
        assert_eq!(stored.stream_id, "alice");
        assert_eq!(stored.event_type, sent.event_type);
        assert_eq!(stored.schema_version, 1);
        assert_eq!(stored.codec, codec);
        assert_eq!(stored.metadata, sent.metadata);
        assert_eq!(
            decode(stored),
            sent.codec.decode::<Deposited>(&sent.payload).unwrap()
        );
    }
    let middle = store.read_stream("account", "alice", 2, 1).await.unwrap();
    assert_eq!(middle.iter().map(|e| e.version).collect::<Vec<_>>(), [2]);
    assert!(
        store
            .read_stream("account", "alice", 4, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .read_stream("account", "nobody", 1, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.stream_version("account", "alice").await.unwrap(), 3);
    assert_eq!(store.stream_version("account", "nobody").await.unwrap(), 0);
    assert_eq!(store.head().await.unwrap(), 5);
    let all = store.read_all(1, 100).await.unwrap();
    assert_eq!(
        all.iter().map(|e| e.position).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    let tail = store.read_all(4, 1).await.unwrap();
    assert_eq!(
        tail.iter()
            .map(|e| (e.stream_id.as_str(), e.version))
            .collect::<Vec<_>>(),
        [("bob", 1)]
    );
}

async fn a_stale_expected_version_conflicts_and_writes_nothing(b: &Backend) {
    let store = &b.store;
    let codec = store.codec();
    store
        .append(request("carol", 0, deposits(codec, "carol", [1, 2])))
        .await
        .unwrap();
    for expected in [0, 1, 5] {
        let err = store
            .append(request("carol", expected, deposits(codec, "carol", [99])))
            .await
            .unwrap_err();
        assert_conflict(&err, "carol", expected, 2);
    }
    assert_eq!(store.stream_version("account", "carol").await.unwrap(), 2);
    assert_eq!(store.head().await.unwrap(), 2);
    assert_eq!(store.read_all(1, 100).await.unwrap().len(), 2);
}

async fn concurrent_writers_on_one_stream_lose_and_duplicate_nothing(b: &Backend) {
    const WRITERS: u64 = 8;
    const APPENDS: u64 = 200;
    let codec = b.store.codec();
    let mut tasks = Vec::new();
    for writer in 0..WRITERS {
        let store = b.store.clone();
        tasks.push(tokio::spawn(async move {
            let mut expected = 0;
            for seq in 0..APPENDS {
                loop {
                    let events = vec![new_event(codec, "hot", writer * 1_000_000 + seq)];
                    match store.append(request("hot", expected, events)).await {
                        Ok(appended) => {
                            expected = appended.version;
                            break;
                        }
                        Err(StoreError::Conflict { actual, .. }) => expected = actual,
                        Err(other) => panic!("writer {writer}: {other}"),
                    }
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let events = b
        .store
        .read_stream("account", "hot", 1, usize::MAX)
        .await
        .unwrap();
    let n = WRITERS * APPENDS;
    assert_eq!(
        events.iter().map(|e| e.version).collect::<Vec<_>>(),
        (1..=n).collect::<Vec<_>>()
    );
    let amounts: BTreeSet<u64> = events.iter().map(|e| decode(e).amount).collect();
    assert_eq!(amounts.len() as u64, n, "an event was duplicated");
    for writer in 0..WRITERS {
        for seq in 0..APPENDS {
            assert!(
                amounts.contains(&(writer * 1_000_000 + seq)),
                "lost {writer}/{seq}"
            );
        }
    }
}

async fn concurrent_writers_on_many_streams_keep_positions_gap_free(b: &Backend) {
    const WRITERS: usize = 8;
    const APPENDS: u64 = 50;
    let codec = b.store.codec();
    let mut tasks = Vec::new();
    for writer in 0..WRITERS {
        let store = b.store.clone();
        tasks.push(tokio::spawn(async move {
            let id = format!("w{writer}");
            let mut version = 0;
            for seq in 0..APPENDS {
                let events = deposits(codec, &id, (0..1 + seq % 3).map(|k| seq * 10 + k));
                version = store.append(request(&id, version, events)).await.unwrap().version;
            }
            version
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await.unwrap();
    }
    let all = b.store.read_all(1, usize::MAX).await.unwrap();
    assert_eq!(
        all.iter().map(|e| e.position).collect::<Vec<_>>(),
        (1..=total).collect::<Vec<_>>()
    );
    let mut versions: HashMap<String, Vec<u64>> = HashMap::new();
    for e in &all {
        versions.entry(e.stream_id.clone()).or_default().push(e.version);
    }
    assert_eq!(versions.len(), WRITERS);
    for (stream, v) in versions {
        assert_eq!(
            v,
            (1..=v.len() as u64).collect::<Vec<_>>(),
            "stream {stream} is not contiguous"
        );
    }
    assert_eq!(b.store.head().await.unwrap(), total);
}

async fn read_all_is_ordered_and_a_subscription_sees_later_appends(b: &Backend) {
    let store = b.store.clone();
    let codec = store.codec();
    store
        .append(request("dave", 0, deposits(codec, "dave", [1, 2])))
        .await
        .unwrap();
    store
        .append(request("erin", 0, deposits(codec, "erin", [3])))
        .await
        .unwrap();

    let mut sub = Subscription::new(store.clone(), 1);
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(sub.next().await.unwrap());
    }
    assert_eq!(seen.iter().map(|e| e.position).collect::<Vec<_>>(), [1, 2, 3]);

    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            for i in 0..5u64 {
                tokio::time::sleep(Duration::from_millis(20)).await;
                store
                    .append(request("frank", i, deposits(codec, "frank", [100 + i])))
                    .await
                    .unwrap();
            }
        })
    };
    for expected_position in 4..=8 {
        let event = tokio::time::timeout(Duration::from_secs(10), sub.next())
            .await
            .expect("the subscription saw the append")
            .unwrap();
        assert_eq!(event.position, expected_position);
        assert_eq!(event.stream_id, "frank");
        assert_eq!(decode(&event).amount, 100 + expected_position - 4);
    }
    writer.await.unwrap();
    assert_eq!(sub.next_position(), 9);
}

async fn the_newest_snapshot_wins(b: &Backend) {
    let store = &b.store;
    let codec = store.codec();
    assert!(store.load_snapshot("account", "gina").await.unwrap().is_none());
    let snapshot = |version: u64| Snapshot {
        stream_type: "account".into(),
        stream_id: "gina".into(),
        version,
        codec,
        payload: codec.encode(&(version * 100)).unwrap(),
    };
    store.save_snapshot(snapshot(5)).await.unwrap();
    assert_eq!(
        store.load_snapshot("account", "gina").await.unwrap(),
        Some(snapshot(5))
    );
    store.save_snapshot(snapshot(10)).await.unwrap();
    store.save_snapshot(snapshot(7)).await.unwrap();
    let loaded = store.load_snapshot("account", "gina").await.unwrap().unwrap();
    assert_eq!(loaded, snapshot(10));
    assert_eq!(loaded.codec.decode::<u64>(&loaded.payload).unwrap(), 1000);
    assert!(store.load_snapshot("account", "other").await.unwrap().is_none());
}

async fn an_empty_append_checks_the_version_and_writes_nothing(b: &Backend) {
    let store = &b.store;
    let codec = store.codec();
    let appended = store.append(request("hank", 0, vec![])).await.unwrap();
    assert_eq!(
        (appended.version, appended.first_position, appended.last_position),
        (0, 0, 0)
    );
    store
        .append(request("hank", 0, deposits(codec, "hank", [1, 2])))
        .await
        .unwrap();
    let appended = store.append(request("hank", 2, vec![])).await.unwrap();
    assert_eq!(
        (appended.version, appended.first_position, appended.last_position),
        (2, 0, 0)
    );
    assert!(matches!(
        store.append(request("hank", 1, vec![])).await,
        Err(StoreError::Conflict {
            expected: 1,
            actual: 2,
            ..
        })
    ));
    assert_eq!(store.head().await.unwrap(), 2);
}

async fn an_invalid_append_is_refused(b: &Backend) {
    let store = &b.store;
    let codec = store.codec();
    let err = store
        .append(request("", 0, deposits(codec, "x", [1])))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid { .. }), "{err}");
    let mut nameless = deposits(codec, "x", [1]);
    nameless[0].event_type = "".into();
    let err = store.append(request("ivan", 0, nameless)).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Invalid { ref stream_id, .. } if stream_id == "ivan"),
        "{err}"
    );
    assert_eq!(store.head().await.unwrap(), 0);
}

/// Ids PostgreSQL cannot hold (a NUL; a few KiB, past its btree row limit)
/// are refused by every backend alike, before anything is sent, naming the
/// limit; a huge id is shown cut, with its length, never whole.
async fn ids_no_store_can_hold_are_refused_naming_the_limit(b: &Backend) {
    let store = &b.store;
    let codec = store.codec();
    let err = store
        .append(request("nul\0id", 0, deposits(codec, "x", [1])))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid { .. }), "{err}");
    assert!(err.to_string().contains("NUL"), "{err}");

    let longest = "i".repeat(factum::store::MAX_STREAM_ID_BYTES);
    store
        .append(request(&longest, 0, deposits(codec, "x", [1])))
        .await
        .expect("an id of exactly the limit is stored");
    assert_eq!(
        store.read_stream("account", &longest, 1, 10).await.unwrap().len(),
        1
    );

    let huge = "h".repeat(1 << 20);
    let err = store
        .append(request(&huge, 0, deposits(codec, "x", [1])))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Invalid { stream_id, .. } if *stream_id == huge),
        "the error keeps the id itself"
    );
    let message = err.to_string();
    assert!(message.contains("1024 bytes"), "{message}");
    assert!(message.contains("(1048576 bytes)"), "{message}");
    assert!(
        message.len() < 400,
        "the message is short: {} bytes",
        message.len()
    );

    let mut odd_type = deposits(codec, "x", [1]);
    odd_type[0].event_type = "account.\0deposited".into();
    let err = store.append(request("ivan", 0, odd_type)).await.unwrap_err();
    assert!(matches!(err, StoreError::Invalid { .. }), "{err}");
    assert!(err.to_string().contains("NUL"), "{err}");
    assert_eq!(
        store.head().await.unwrap(),
        1,
        "only the id at the limit was stored"
    );
}

async fn an_append_already_committed_is_acknowledged_not_a_conflict(b: &Backend) {
    if matches!(b.kind, Kind::Memory) {
        println!("the memory store answers every append at once; nothing to retry");
        return;
    }
    let store = &b.store;
    let codec = store.codec();
    store
        .append(request("other", 0, deposits(codec, "other", [1])))
        .await
        .unwrap();
    let events = deposits(codec, "rita", [1, 2]);
    let first = store.append(request("rita", 0, events.clone())).await.unwrap();
    // The same append again (its answer lost, say): the events are there
    // with this request's ids, so it committed — acknowledged, not a
    // conflict that would make the caller run its command a second time.
    let again = store.append(request("rita", 0, events.clone())).await.unwrap();
    assert_eq!(
        (again.version, again.first_position, again.last_position),
        (first.version, first.first_position, first.last_position)
    );
    assert_eq!(
        (first.version, first.first_position, first.last_position),
        (2, 2, 3)
    );
    assert!(
        !first.acknowledged && again.acknowledged,
        "only the repeat is an acknowledgement"
    );
    assert_eq!(store.stream_version("account", "rita").await.unwrap(), 2);
    assert_eq!(store.head().await.unwrap(), 3);

    // Other events at the same expected version: a real conflict.
    let err = store
        .append(request("rita", 0, deposits(codec, "rita", [1, 2])))
        .await
        .unwrap_err();
    assert_conflict(&err, "rita", 0, 2);
    // Only some of the events the same: a conflict too.
    let mut mixed = events.clone();
    mixed[1] = new_event(codec, "rita", 2);
    let err = store.append(request("rita", 0, mixed)).await.unwrap_err();
    assert_conflict(&err, "rita", 0, 2);
    // The same events where the stream is not exactly one append further: a conflict.
    let err = store
        .append(request("rita", 1, events.clone()))
        .await
        .unwrap_err();
    assert_conflict(&err, "rita", 1, 2);
    assert_eq!(store.read_all(1, 100).await.unwrap().len(), 3);
}

/// The events a command committed are found by its id, per stream (one
/// command id fanned out to two streams finds each stream's own), in version
/// order; an id that committed nothing finds nothing.
async fn a_commands_events_are_found_by_its_id(b: &Backend) {
    let store = &b.store;
    let codec = store.codec();
    let with_command = |mut events: Vec<NewEvent>, command: Uuid| {
        for e in &mut events {
            e.metadata.command_id = command;
        }
        events
    };
    let (fanned, other) = (Uuid::new_v4(), Uuid::new_v4());
    store
        .append(request(
            "ann",
            0,
            with_command(deposits(codec, "ann", [1]), other),
        ))
        .await
        .unwrap();
    store
        .append(request(
            "ann",
            1,
            with_command(deposits(codec, "ann", [2, 3]), fanned),
        ))
        .await
        .unwrap();
    store
        .append(request(
            "bob",
            0,
            with_command(deposits(codec, "bob", [4]), fanned),
        ))
        .await
        .unwrap();
    let ann = store.command_events("account", "ann", fanned).await.unwrap();
    assert_eq!(
        ann.iter()
            .map(|e| (e.version, decode(e).amount))
            .collect::<Vec<_>>(),
        vec![(2, 2), (3, 3)]
    );
    assert!(
        ann.iter()
            .all(|e| e.metadata.command_id == fanned && e.stream_id == "ann")
    );
    let bob = store.command_events("account", "bob", fanned).await.unwrap();
    assert_eq!(
        bob.iter().map(|e| (e.version, e.position)).collect::<Vec<_>>(),
        vec![(1, 4)]
    );
    assert_eq!(
        store.command_events("account", "ann", other).await.unwrap().len(),
        1
    );
    assert!(
        store
            .command_events("account", "bob", other)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .command_events("account", "ann", Uuid::new_v4())
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .command_events("account", "nobody", fanned)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn a_corrupted_record_names_its_stream_and_version(b: &Backend) {
    if matches!(b.kind, Kind::Memory) {
        println!("the memory store has no bytes to corrupt");
        return;
    }
    let store = &b.store;
    let codec = store.codec();
    store
        .append(request("good", 0, deposits(codec, "good", [1, 2])))
        .await
        .unwrap();
    store
        .append(request("bad", 0, deposits(codec, "bad", [1, 2, 3])))
        .await
        .unwrap();
    store
        .append(request("odd", 0, deposits(codec, "odd", [1])))
        .await
        .unwrap();

    // Payload bytes edited: the checksum no longer matches, the store itself
    // reports the record, naming stream, version and position.
    b.tamper(
        "UPDATE events SET payload = X'FF00FF' WHERE stream_id = 'bad' AND version = 2",
        "UPDATE {s}.events SET payload_json = CASE WHEN payload_json IS NULL THEN NULL ELSE '\"garbage\"'::jsonb END, \
         payload_bin = CASE WHEN payload_bin IS NULL THEN NULL ELSE '\\xff'::bytea END \
         WHERE stream_id = 'bad' AND version = 2",
    )
    .await;
    let err = store.read_stream("account", "bad", 2, 1).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Corrupt { stream_id, version: 2, position: 4, reason, .. }
            if stream_id == "bad" && reason.contains("checksum")),
        "{err}"
    );
    // Loaded as an entity: an error naming the stream and version, no panic.
    let app = app_on(b);
    let err = app.entity::<Account>("bad").state().await.unwrap_err();
    assert!(
        matches!(&err, factum::LoadError::Store(StoreError::Corrupt { stream_id, version: 2, .. }) if stream_id == "bad"),
        "{err}"
    );
    // Other streams still load, on the same app and on a fresh one.
    assert_eq!(app.entity::<Account>("good").state().await.unwrap().balance, 3);
    assert_eq!(
        app_on(b).entity::<Account>("good").state().await.unwrap().balance,
        3
    );

    // The codec byte edited: the store itself reports the record as corrupt.
    b.tamper(
        "UPDATE events SET codec = 99 WHERE stream_id = 'bad' AND version = 3",
        "UPDATE {s}.events SET codec = 99 WHERE stream_id = 'bad' AND version = 3",
    )
    .await;
    let err = store.read_stream("account", "bad", 3, 10).await.unwrap_err();
    match &err {
        StoreError::Corrupt {
            stream_type,
            stream_id,
            version,
            reason,
            ..
        } => {
            assert_eq!(
                (stream_type.as_str(), stream_id.as_str(), *version),
                ("account", "bad", 3)
            );
            assert!(reason.contains("codec"), "{reason}");
        }
        other => panic!("expected Corrupt, got {other}"),
    }
    let message = err.to_string();
    assert!(
        message.contains("account/bad") && message.contains("version 3"),
        "{message}"
    );
    assert!(
        store.read_all(1, 100).await.is_err(),
        "the global feed reports the damage too"
    );

    // A column the schema requires, made unreadable.
    b.tamper(
        "UPDATE events SET event_type = X'FFFE' WHERE stream_id = 'odd' AND version = 1",
        "UPDATE {s}.events SET payload_json = NULL, payload_bin = NULL WHERE stream_id = 'odd' AND version = 1",
    )
    .await;
    let err = store.read_stream("account", "odd", 1, 10).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Corrupt { stream_id, version: 1, .. } if stream_id == "odd"),
        "{err}"
    );

    // Other streams still read.
    let good = store.read_stream("account", "good", 1, 10).await.unwrap();
    assert_eq!(
        good.iter().map(decode).map(|d| d.amount).collect::<Vec<_>>(),
        [1, 2]
    );
    // So does the undamaged start of the damaged stream.
    assert_eq!(store.read_stream("account", "bad", 1, 1).await.unwrap().len(), 1);
}

/// Every field a record holds is covered by its checksum: whichever is
/// edited behind the store's back (the codec switched from JSON to
/// Postcard, the type renamed, the time moved, the record moved to another
/// stream), reading it is `Corrupt` naming stream, version and position.
async fn a_record_edited_behind_the_stores_back_fails_its_checksum(b: &Backend) {
    if matches!(b.kind, Kind::Memory) {
        println!("the memory store has no bytes to corrupt");
        return;
    }
    let store = &b.store;
    let codec = store.codec();
    for id in ["c1", "c2", "c3", "c4"] {
        store
            .append(request(id, 0, deposits(codec, id, [1, 2])))
            .await
            .unwrap();
    }
    // Positions: c1 1-2, c2 3-4, c3 5-6, c4 7-8; each edit hits version 2.
    let edits: [(&str, &str, &str, u64); 4] = [
        (
            "c1",
            // The other codec, with bytes that decode as it.
            "UPDATE events SET codec = CASE codec WHEN 1 THEN 2 ELSE 1 END WHERE stream_id = 'c1' AND version = 2",
            "UPDATE {s}.events SET codec = CASE codec WHEN 1 THEN 2 ELSE 1 END, \
             payload_bin = CASE WHEN payload_json IS NULL THEN NULL ELSE convert_to(payload_json::text, 'UTF8') END, \
             payload_json = CASE WHEN payload_bin IS NULL THEN NULL ELSE '2'::jsonb END \
             WHERE stream_id = 'c1' AND version = 2",
            2,
        ),
        (
            "c2",
            "UPDATE events SET event_type = 'account.withdrawn' WHERE stream_id = 'c2' AND version = 2",
            "UPDATE {s}.events SET event_type = 'account.withdrawn' WHERE stream_id = 'c2' AND version = 2",
            4,
        ),
        (
            "c3",
            "UPDATE events SET recorded_at = 0 WHERE stream_id = 'c3' AND version = 2",
            "UPDATE {s}.events SET recorded_at = 0 WHERE stream_id = 'c3' AND version = 2",
            6,
        ),
        (
            "c4",
            "UPDATE events SET stream_id = 'c5' WHERE stream_id = 'c4' AND version = 2",
            "UPDATE {s}.events SET stream_id = 'c5' WHERE stream_id = 'c4' AND version = 2",
            8,
        ),
    ];
    for (id, sqlite_sql, pg_sql, position) in edits {
        b.tamper(sqlite_sql, pg_sql).await;
        let err = store.read_all(position, 1).await.unwrap_err();
        match &err {
            StoreError::Corrupt {
                version,
                position: at,
                reason,
                ..
            } => {
                assert_eq!((*version, *at), (2, position), "{id}: {err}");
                assert!(reason.contains("checksum"), "{id}: {reason}");
            }
            other => panic!("{id}: expected Corrupt, got {other}"),
        }
        assert!(err.to_string().contains(&format!("position {position}")), "{err}");
        // The record before it is sound.
        assert_eq!(store.read_all(position - 1, 1).await.unwrap().len(), 1, "{id}");
    }
    let err = store.read_stream("account", "c5", 1, 10).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Corrupt { stream_id, position: 8, .. } if stream_id == "c5"),
        "the moved record: {err}"
    );
}

/// A log written before factum kept checksums: its records have none, are
/// read as they are after the migration adds the column, and the records
/// appended after it are checked.
async fn records_stored_before_checksums_stay_readable(b: &Backend) {
    if matches!(b.kind, Kind::Memory) {
        println!("the memory store has no stored schema to migrate");
        return;
    }
    let store = &b.store;
    let codec = store.codec();
    store
        .append(request("old", 0, deposits(codec, "old", [1, 2])))
        .await
        .unwrap();
    // Back to the schema before checksums, as an older factum left it.
    b.tamper(
        "ALTER TABLE events DROP COLUMN checksum; DELETE FROM schema_version WHERE version = 4;",
        "ALTER TABLE {s}.events DROP COLUMN checksum; DELETE FROM {s}.schema_version WHERE version = 3;",
    )
    .await;
    let (reopened, _) = b.reopen().await;
    let old = reopened.read_stream("account", "old", 1, 10).await.unwrap();
    assert_eq!(
        old.iter().map(decode).map(|d| d.amount).collect::<Vec<_>>(),
        [1, 2]
    );
    reopened
        .append(request("old", 2, deposits(codec, "old", [3])))
        .await
        .unwrap();
    assert_eq!(
        reopened.read_stream("account", "old", 1, 10).await.unwrap().len(),
        3
    );
    // The new record carries a checksum: an edit of it is caught.
    b.tamper(
        "UPDATE events SET recorded_at = 0 WHERE stream_id = 'old' AND version = 3",
        "UPDATE {s}.events SET recorded_at = 0 WHERE stream_id = 'old' AND version = 3",
    )
    .await;
    let err = reopened.read_stream("account", "old", 1, 10).await.unwrap_err();
    assert!(
        matches!(
            &err,
            StoreError::Corrupt {
                version: 3,
                position: 3,
                ..
            }
        ),
        "{err}"
    );
}

/// An event over the store's size limit is refused before anything is
/// written, naming its size and the limit; one of exactly the limit is stored.
async fn an_event_over_the_size_limit_is_refused_naming_the_limit(b: &Backend) {
    let store = &b.store;
    let codec = store.codec();
    let limit = factum::store::DEFAULT_MAX_EVENT_BYTES;
    // A JSON string (valid for jsonb) of exactly `bytes` bytes, for either codec.
    let sized = |bytes: usize| {
        let mut e = new_event(codec, "big", 1);
        let mut payload = vec![b'x'; bytes];
        payload[0] = b'"';
        payload[bytes - 1] = b'"';
        e.payload = payload;
        e
    };
    let err = store
        .append(request("big", 0, vec![sized(limit + 1)]))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid { .. }), "{err}");
    let message = err.to_string();
    assert!(
        message.contains(&format!("{} bytes", limit + 1))
            && message.contains(&format!("limit of {limit} bytes")),
        "{message}"
    );
    assert_eq!(store.head().await.unwrap(), 0, "nothing written");
    store
        .append(request("big", 0, vec![sized(limit)]))
        .await
        .expect("an event of exactly the limit is stored");
    let read = store.read_stream("account", "big", 1, 1).await.unwrap();
    assert_eq!(read[0].payload.len(), limit);
}

// ------------------------------------------------------- entities on the store

/// The events the suite writes (`account.deposited`, `{account, amount}`), as
/// an entity reads them.
#[derive(factum::Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(name = "account.deposited")]
struct AccountDeposited {
    account: String,
    amount: u64,
}

#[derive(Debug, Clone)]
struct Deposit {
    amount: u64,
}

#[derive(Default, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Account {
    balance: u64,
}

#[factum::entity(name = "account", vis = "pub(crate)")]
impl Account {
    #[handle]
    fn deposit(&self, cmd: Deposit) -> AccountDeposited {
        AccountDeposited {
            account: String::new(),
            amount: cmd.amount,
        }
    }

    #[apply]
    fn deposited(&mut self, e: &AccountDeposited) {
        self.balance += e.amount;
    }
}

/// The ledger's first schema: amounts in a field named `cents`.
#[derive(factum::Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(name = "ledger.deposited", version = 1)]
struct DepositedV1 {
    cents: u64,
}

/// The current schema: the amount and its currency.
#[derive(factum::Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(name = "ledger.deposited", version = 2, upcast_from = DepositedV1)]
struct LedgerDeposited {
    amount: u64,
    currency: String,
}

impl From<DepositedV1> for LedgerDeposited {
    fn from(old: DepositedV1) -> Self {
        LedgerDeposited {
            amount: old.cents,
            currency: "EUR".into(),
        }
    }
}

#[derive(Debug, Clone)]
struct Credit {
    amount: u64,
}

#[derive(Default, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Ledger {
    total: u64,
    entries: u64,
}

#[factum::entity(name = "ledger", snapshot_every = 5, vis = "pub(crate)")]
impl Ledger {
    #[handle]
    fn credit(&self, cmd: Credit) -> LedgerDeposited {
        LedgerDeposited {
            amount: cmd.amount,
            currency: "EUR".into(),
        }
    }

    #[apply]
    fn deposited(&mut self, e: &LedgerDeposited) {
        self.total += e.amount;
        self.entries += 1;
    }
}

fn app_on(b: &Backend) -> factum::App {
    factum::App::builder().shared_store(b.store.clone()).build()
}

async fn payloads_of_an_old_schema_version_load_as_the_current_type(b: &Backend) {
    let codec = b.store.codec();
    let old: Vec<NewEvent> = [7u64, 8]
        .iter()
        .map(|&cents| NewEvent {
            event_type: "ledger.deposited".into(),
            schema_version: 1,
            codec,
            payload: codec.encode(&DepositedV1 { cents }).unwrap(),
            metadata: new_event(codec, "l-1", cents).metadata,
        })
        .collect();
    let request = AppendRequest {
        stream_type: "ledger".into(),
        stream_id: "l-1".into(),
        expected_version: 0,
        events: old,
    };
    b.store.append(request).await.unwrap();

    let ledger = app_on(b).entity::<Ledger>("l-1");
    ledger.send(Credit { amount: 10 }).await.unwrap();
    assert_eq!(
        ledger.state().await.unwrap(),
        Ledger {
            total: 25,
            entries: 3
        }
    );
    let history = ledger.history().await.unwrap();
    let amounts: Vec<(u64, String)> = history
        .iter()
        .map(|r| match &r.event {
            LedgerEvent::LedgerDeposited(e) => (e.amount, e.currency.clone()),
        })
        .collect();
    assert_eq!(
        amounts,
        [(7, "EUR".into()), (8, "EUR".into()), (10, "EUR".into())]
    );
    let stored = b.store.read_stream("ledger", "l-1", 1, 10).await.unwrap();
    let versions: Vec<u32> = stored.iter().map(|r| r.schema_version).collect();
    assert_eq!(
        versions,
        [1, 1, 2],
        "old records stay as written; new ones use the current schema"
    );
}

async fn an_entity_loads_from_its_snapshot_and_the_events_after_it(b: &Backend) {
    let ledger = app_on(b).entity::<Ledger>("l-2");
    for amount in 1..=12 {
        ledger.send(Credit { amount }).await.unwrap();
    }
    let snapshot = b
        .store
        .load_snapshot("ledger", "l-2")
        .await
        .unwrap()
        .expect("a snapshot");
    assert_eq!(snapshot.version, 10);
    assert_eq!(snapshot.codec, b.store.codec());
    let fresh = app_on(b).entity::<Ledger>("l-2");
    assert_eq!(
        fresh.state().await.unwrap(),
        Ledger {
            total: 78,
            entries: 12
        }
    );
    assert_eq!(fresh.version().await.unwrap(), 12);
}

// ---------------------------------------------------------------- timers

/// 2030-01-01T00:00:00Z: the virtual time every timer case starts at.
const T0: Timestamp = Timestamp::from_secs(1_893_456_000);

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// The labels of the ticks the meter `id` has counted, read from the log.
async fn ticks(store: &Arc<dyn EventStore>, id: &str) -> Vec<String> {
    let app = App::builder().shared_store(store.clone()).build();
    app.entity::<Meter>(id)
        .state()
        .await
        .expect("load the meter")
        .labels
}

async fn a_timer_fires_once_at_its_due_time_and_is_listed_until_then(b: &Backend) {
    let clock = ManualClock::new(T0);
    let app = b.timer_app(&clock);
    let timers = app.timers();
    let due = T0 + secs(60);
    timers
        .schedule::<Meter, _>("tick:m-1", "m-1", due, tick("first"))
        .await
        .unwrap();

    let pending = timers.pending().await.unwrap();
    assert_eq!(pending.len(), 1);
    let p = &pending[0];
    assert_eq!(
        (p.name.as_str(), p.entity_type.as_str(), p.entity_id.as_str()),
        ("tick:m-1", "meter", "m-1")
    );
    assert_eq!(
        (p.command_type.as_str(), p.due, p.scheduled_at),
        ("Tick", due, T0)
    );
    assert!(!p.blocked && p.attempts == 0 && p.last_error.is_none(), "{p:?}");
    assert_eq!(serde_json::from_str::<Tick>(&p.command).unwrap(), tick("first"));

    // One microsecond early: nothing fires.
    clock.advance(secs(60) - Duration::from_micros(1));
    timers.wait_idle().await.unwrap();
    assert!(ticks(&b.store, "m-1").await.is_empty());
    assert_eq!(timers.pending().await.unwrap().len(), 1);
    assert!(timers.recent_firings(10).await.unwrap().is_empty());

    clock.advance(Duration::from_micros(1));
    timers.wait_idle().await.unwrap();
    assert_eq!(ticks(&b.store, "m-1").await, ["first"]);
    assert!(timers.pending().await.unwrap().is_empty());
    let firings = timers.recent_firings(10).await.unwrap();
    assert_eq!(firings.len(), 1, "{firings:?}");
    let f = &firings[0];
    assert_eq!(
        (f.name.as_str(), f.entity_id.as_str(), f.due, f.fired_at),
        ("tick:m-1", "m-1", due, due)
    );
    let stored = b.store.read_stream("meter", "m-1", 1, 10).await.unwrap();
    assert_eq!(
        f.command_id, stored[0].metadata.command_id,
        "the firing's command id is the event's"
    );
    assert_eq!(
        f.outcome,
        FiringOutcome::Fired {
            version: 1,
            position: stored[0].position
        }
    );
    assert_eq!(
        stored[0].metadata.command_id, f.command_id,
        "sent with the timer's command id"
    );

    // Later moves of the clock fire nothing more.
    clock.advance(secs(3600));
    timers.wait_idle().await.unwrap();
    assert_eq!(ticks(&b.store, "m-1").await, ["first"]);
}

async fn a_timer_replaced_by_name_fires_once_with_the_new_command(b: &Backend) {
    let clock = ManualClock::new(T0);
    let app = b.timer_app(&clock);
    let timers = app.timers();
    timers
        .schedule::<Meter, _>("renew", "m-2", T0 + secs(10), tick("old"))
        .await
        .unwrap();
    timers
        .schedule::<Meter, _>("renew", "m-2", T0 + secs(20), tick("new"))
        .await
        .unwrap();
    let pending = timers.pending().await.unwrap();
    assert_eq!(pending.len(), 1, "one timer per name: {pending:?}");
    assert_eq!(pending[0].due, T0 + secs(20));

    clock.advance(secs(15));
    timers.wait_idle().await.unwrap();
    assert!(
        ticks(&b.store, "m-2").await.is_empty(),
        "the replaced due time passed: nothing fires"
    );
    clock.advance(secs(3600));
    timers.wait_idle().await.unwrap();
    assert_eq!(ticks(&b.store, "m-2").await, ["new"]);
    assert_eq!(timers.recent_firings(10).await.unwrap().len(), 1);
}

/// Given a timer that fired, when a timer is scheduled again under its name
/// and due time with another command, then it fires too: a new scheduling is
/// a new firing, not a duplicate the command side would answer with the old one.
async fn a_timer_scheduled_again_at_the_same_time_fires_again(b: &Backend) {
    let clock = ManualClock::new(T0);
    let app = b.timer_app(&clock);
    let timers = app.timers();
    let due = T0 + secs(10);
    timers
        .schedule::<Meter, _>("again", "m-6", due, tick("first"))
        .await
        .unwrap();
    clock.advance(secs(10));
    timers.wait_idle().await.unwrap();
    timers
        .schedule::<Meter, _>("again", "m-6", due, tick("second"))
        .await
        .unwrap();
    timers.wait_idle().await.unwrap();
    assert_eq!(ticks(&b.store, "m-6").await, ["first", "second"]);
    let firings = timers.recent_firings(10).await.unwrap();
    assert_eq!(firings.len(), 2, "{firings:?}");
    assert_ne!(firings[0].command_id, firings[1].command_id);
}

async fn a_cancelled_timer_never_fires(b: &Backend) {
    let clock = ManualClock::new(T0);
    let app = b.timer_app(&clock);
    let timers = app.timers();
    timers
        .schedule::<Meter, _>("doomed", "m-3", T0 + secs(5), tick("doomed"))
        .await
        .unwrap();
    timers
        .schedule::<Meter, _>("kept", "m-3", T0 + secs(6), tick("kept"))
        .await
        .unwrap();
    assert!(timers.cancel("doomed").await.unwrap(), "it was pending");
    assert!(!timers.cancel("doomed").await.unwrap(), "cancelled already");
    assert!(!timers.cancel("never-scheduled").await.unwrap());

    clock.advance(secs(86_400));
    timers.wait_idle().await.unwrap();
    assert_eq!(ticks(&b.store, "m-3").await, ["kept"]);
    let firings = timers.recent_firings(10).await.unwrap();
    assert_eq!(
        firings.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(),
        ["kept"]
    );
}

async fn a_rejected_timer_is_done_and_its_rejection_recorded(b: &Backend) {
    let clock = ManualClock::new(T0);
    let app = b.timer_app(&clock);
    let timers = app.timers();
    let refuse = Refuse {
        reason: "closed on sundays".into(),
    };
    timers
        .schedule::<Meter, _>("refused", "m-4", T0 + secs(1), refuse)
        .await
        .unwrap();
    clock.advance(secs(1));
    timers.wait_idle().await.unwrap();
    assert!(
        timers.pending().await.unwrap().is_empty(),
        "a rejected timer is done"
    );
    let firings = timers.recent_firings(10).await.unwrap();
    assert_eq!(firings.len(), 1);
    assert_eq!(firings[0].command_type, "Refuse");
    assert_eq!(
        firings[0].outcome,
        FiringOutcome::Rejected {
            message: "refused: closed on sundays".into()
        }
    );
    assert_eq!(b.store.stream_version("meter", "m-4").await.unwrap(), 0);
}

async fn an_undecodable_timer_is_reported_not_dropped_until_registered(b: &Backend) {
    // The process that scheduled it knew the command type; its clock never reaches the due time.
    let earlier = b.timer_app(&ManualClock::new(T0));
    earlier
        .timers()
        .schedule::<Meter, _>("orphan", "m-5", T0 + secs(30), tick("orphan"))
        .await
        .unwrap();
    drop(earlier);

    let (store, timer_store) = b.reopen().await;
    let clock = ManualClock::new(T0 + secs(60));
    let app = App::builder()
        .shared_store(store.clone())
        .shared_timer_store(timer_store)
        .clock(clock.clone())
        .build();
    let timers = app.timers();
    let err = timers.wait_idle().await.unwrap_err();
    match &err {
        TimerError::Undecodable {
            name,
            entity_type,
            command_type,
            error,
        } => {
            assert_eq!(
                (name.as_str(), entity_type.as_str(), command_type.as_str()),
                ("orphan", "meter", "Tick")
            );
            assert!(error.contains("register"), "{error}");
        }
        other => panic!("expected the orphan reported as undecodable, got {other}"),
    }
    let message = err.to_string();
    assert!(
        message.contains("orphan") && message.contains("meter") && message.contains("Tick"),
        "{message}"
    );
    let pending = timers.pending().await.unwrap();
    assert_eq!(pending.len(), 1, "still pending: {pending:?}");
    assert!(pending[0].blocked && pending[0].attempts >= 1, "{:?}", pending[0]);
    assert!(pending[0].last_error.as_deref().unwrap_or("").contains("Tick"));
    let firings = timers.recent_firings(10).await.unwrap();
    assert!(
        matches!(&firings[0].outcome, FiringOutcome::Failed { error } if error.contains("no decoder")),
        "{firings:?}"
    );
    assert!(
        app.timers()
            .status()
            .unwrap()
            .last_error
            .unwrap()
            .contains("orphan")
    );
    assert!(ticks(&store, "m-5").await.is_empty());

    timers.register::<Meter, Tick>().await.unwrap();
    timers.wait_idle().await.unwrap();
    assert_eq!(ticks(&store, "m-5").await, ["orphan"]);
    assert!(timers.pending().await.unwrap().is_empty());
}

async fn timers_scheduled_before_a_restart_fire_after_it(b: &Backend) {
    let earlier = b.timer_app(&ManualClock::new(T0));
    for i in 0..5 {
        earlier
            .timers()
            .schedule::<Meter, _>(
                &format!("r-{i}"),
                "m-6",
                T0 + secs(10 + i),
                tick(&format!("r-{i}")),
            )
            .await
            .unwrap();
    }
    drop(earlier);

    let (store, timer_store) = b.reopen().await;
    let clock = ManualClock::new(T0);
    let app = App::builder()
        .shared_store(store.clone())
        .shared_timer_store(timer_store)
        .clock(clock.clone())
        .timer::<Meter, Tick>()
        .build();
    assert_eq!(app.timers().pending().await.unwrap().len(), 5);
    clock.advance(secs(12));
    app.timers().wait_idle().await.unwrap();
    assert_eq!(ticks(&store, "m-6").await, ["r-0", "r-1", "r-2"]);
    clock.advance(secs(100));
    app.timers().wait_idle().await.unwrap();
    assert_eq!(ticks(&store, "m-6").await, ["r-0", "r-1", "r-2", "r-3", "r-4"]);
}

async fn ten_thousand_pending_timers_fire_within_one_virtual_second_each_once(b: &Backend) {
    const TIMERS: u64 = 10_000;
    const METERS: u64 = 100;
    let clock = ManualClock::new(T0);
    let app = b.timer_app(&clock);
    let timers = app.timers();
    let second = T0 + secs(3600);
    // Scheduled in an order unrelated to their due times: meter `i % METERS`,
    // due `second + (i * 7919 % TIMERS) * 100 µs`, all within one second.
    for i in 0..TIMERS {
        let slot = i * 7919 % TIMERS;
        let due = second + Duration::from_micros(slot * 100);
        timers
            .schedule::<Meter, _>(
                &format!("bulk-{i}"),
                &format!("m-{}", i % METERS),
                due,
                tick(&format!("{slot:05}")),
            )
            .await
            .unwrap();
    }
    assert_eq!(timers.pending().await.unwrap().len() as u64, TIMERS);
    clock.advance(secs(3601));
    timers.wait_idle().await.unwrap();
    assert!(timers.pending().await.unwrap().is_empty());
    let mut fired = 0;
    for m in 0..METERS {
        let labels = ticks(&b.store, &format!("m-{m}")).await;
        let mut sorted = labels.clone();
        sorted.sort();
        assert_eq!(labels, sorted, "meter m-{m}: its timers fired in due order");
        sorted.dedup();
        assert_eq!(sorted.len(), labels.len(), "meter m-{m}: no timer fired twice");
        fired += labels.len() as u64;
    }
    assert_eq!(fired, TIMERS, "every timer fired once");
    assert_eq!(
        timers.recent_firings(usize::MAX).await.unwrap().len(),
        factum::timer::KEPT_FIRINGS
    );
}

// ------------------------------------------------------- consumer stores

fn dead_letter(consumer: &str, position: u64, stream_id: &str, state: LetterState) -> DeadLetter {
    DeadLetter {
        consumer: consumer.to_owned(),
        position,
        stream_type: "account".to_owned(),
        stream_id: stream_id.to_owned(),
        version: position,
        event_type: "account.deposited".to_owned(),
        event_id: Uuid::from_u128(u128::from(position) + 1),
        state,
        attempts: 3,
        error: format!("refused at {position}"),
        reason: None,
        recorded_at: Timestamp::from_secs(10),
        updated_at: Timestamp::from_secs(10),
    }
}

async fn a_consumer_checkpoint_moves_by_compare_and_set_with_its_letters(b: &Backend) {
    let c = &b.consumers;
    assert_eq!(
        c.checkpoint("ledger").await.unwrap(),
        0,
        "a new consumer starts at 0"
    );
    let parked = dead_letter("ledger", 3, "a", LetterState::Parked);
    let held = dead_letter("ledger", 5, "a", LetterState::Held);
    c.commit("ledger", 0, 5, vec![parked.clone(), held.clone()])
        .await
        .unwrap();
    c.commit(
        "other",
        0,
        2,
        vec![dead_letter("other", 1, "z", LetterState::Skipped)],
    )
    .await
    .unwrap();
    assert_eq!(c.checkpoint("ledger").await.unwrap(), 5);

    // A runner that lost the lease commits from a stale checkpoint: refused, nothing written.
    let stale = c
        .commit(
            "ledger",
            0,
            9,
            vec![dead_letter("ledger", 8, "b", LetterState::Parked)],
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            stale,
            ConsumerStoreError::CheckpointMoved {
                expected: 0,
                found: 5,
                ..
            }
        ),
        "{stale}"
    );
    assert_eq!(c.checkpoint("ledger").await.unwrap(), 5);
    let all = c.letters("ledger", None, None, 100).await.unwrap();
    assert_eq!(
        all,
        vec![parked.clone(), held.clone()],
        "the refused commit's letter is not there"
    );
    assert_eq!(
        c.checkpoints().await.unwrap(),
        vec![("ledger".to_owned(), 5), ("other".to_owned(), 2)]
    );

    // Filters: by state, after a position, a limit.
    let only_held = c
        .letters("ledger", Some(&[LetterState::Held]), None, 100)
        .await
        .unwrap();
    assert_eq!(only_held, vec![held.clone()]);
    assert_eq!(
        c.letters("ledger", None, Some(3), 100).await.unwrap(),
        vec![held.clone()]
    );
    assert_eq!(
        c.letters("ledger", None, None, 1).await.unwrap(),
        vec![parked.clone()]
    );

    // An update checks the state it expects.
    let mut redrive = parked.clone();
    redrive.state = LetterState::Redrive;
    redrive.updated_at = Timestamp::from_secs(20);
    let moved = c.update(redrive.clone(), LetterState::Held).await.unwrap_err();
    assert!(
        matches!(
            moved,
            ConsumerStoreError::LetterMoved {
                found: LetterState::Parked,
                ..
            }
        ),
        "{moved}"
    );
    c.update(redrive.clone(), LetterState::Parked).await.unwrap();
    let mut discarded = held.clone();
    discarded.state = LetterState::Discarded;
    discarded.reason = Some("entered by hand".to_owned());
    c.update(discarded.clone(), LetterState::Held).await.unwrap();
    assert_eq!(
        c.letters("ledger", None, None, 100).await.unwrap(),
        vec![redrive, discarded]
    );
    let missing = c
        .update(
            dead_letter("ledger", 4, "a", LetterState::Parked),
            LetterState::Parked,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(missing, ConsumerStoreError::NoLetter { position: 4, .. }),
        "{missing}"
    );

    // The next batch moves on from where the last one left.
    c.commit("ledger", 5, 12, Vec::new()).await.unwrap();
    assert_eq!(c.checkpoint("ledger").await.unwrap(), 12);
    assert!(
        c.try_lease("ledger").await.unwrap().is_some(),
        "the first runner gets the lease"
    );
}

async fn a_damaged_dead_letter_is_reported_naming_its_row(b: &Backend) {
    if matches!(b.kind, Kind::Memory) {
        return; // nothing to damage behind the store's back
    }
    b.consumers
        .commit(
            "ledger",
            0,
            3,
            vec![dead_letter("ledger", 3, "a", LetterState::Parked)],
        )
        .await
        .unwrap();
    b.tamper(
        "UPDATE factum_dead_letters SET state = 'lost' WHERE position = 3",
        "UPDATE {s}.factum_dead_letters SET state = 'lost' WHERE position = 3",
    )
    .await;
    let error = b.consumers.letters("ledger", None, None, 10).await.unwrap_err();
    let text = error.to_string();
    assert!(
        text.contains("consumer ledger position 3") && text.contains("state"),
        "{text}"
    );
}

// ------------------------------------------------------- one test per pair

macro_rules! backend_tests {
    ($attr:tt $backend:ident: $($case:ident),* $(,)?) => {
        mod $backend {
            $(
                #$attr
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    if let Some(backend) = super::Backend::$backend().await {
                        super::$case(&backend).await;
                        backend.finish().await;
                    }
                }
            )*
        }
    };
}

/// Every case on every backend; the PostgreSQL ones are `ignored` (and say
/// so in the summary) in a build without `FACTUM_PG_URL`.
macro_rules! conformance {
    ($($backend:ident),* ; postgres: $($pg:ident),* ; $cases:tt) => {
        $( conformance!(@one [doc = "A conformance case."] $backend $cases); )*
        $( conformance!(@one [cfg_attr(not(factum_pg), ignore = "needs PostgreSQL: set FACTUM_PG_URL (see tests/README.md)")] $pg $cases); )*
    };
    (@one $attr:tt $backend:ident [$($case:ident),* $(,)?]) => {
        backend_tests!($attr $backend: $($case),*);
    };
}

conformance!(memory, sqlite, sqlite_postcard; postgres: postgres, postgres_postcard; [
    append_then_read_back,
    a_stale_expected_version_conflicts_and_writes_nothing,
    concurrent_writers_on_one_stream_lose_and_duplicate_nothing,
    concurrent_writers_on_many_streams_keep_positions_gap_free,
    read_all_is_ordered_and_a_subscription_sees_later_appends,
    the_newest_snapshot_wins,
    an_empty_append_checks_the_version_and_writes_nothing,
    an_invalid_append_is_refused,
    ids_no_store_can_hold_are_refused_naming_the_limit,
    an_append_already_committed_is_acknowledged_not_a_conflict,
    a_commands_events_are_found_by_its_id,
    a_corrupted_record_names_its_stream_and_version,
    a_record_edited_behind_the_stores_back_fails_its_checksum,
    records_stored_before_checksums_stay_readable,
    an_event_over_the_size_limit_is_refused_naming_the_limit,
    payloads_of_an_old_schema_version_load_as_the_current_type,
    an_entity_loads_from_its_snapshot_and_the_events_after_it,
    a_timer_fires_once_at_its_due_time_and_is_listed_until_then,
    a_timer_replaced_by_name_fires_once_with_the_new_command,
    a_timer_scheduled_again_at_the_same_time_fires_again,
    a_cancelled_timer_never_fires,
    a_rejected_timer_is_done_and_its_rejection_recorded,
    an_undecodable_timer_is_reported_not_dropped_until_registered,
    timers_scheduled_before_a_restart_fire_after_it,
    ten_thousand_pending_timers_fire_within_one_virtual_second_each_once,
    a_consumer_checkpoint_moves_by_compare_and_set_with_its_letters,
    a_damaged_dead_letter_is_reported_naming_its_row,
]);

// ------------------------------------------------------- backend specifics

#[tokio::test]
async fn sqlite_reopened_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.db");
    {
        let store = SqliteStore::open(&path).unwrap();
        store
            .append(request("jane", 0, deposits(Codec::Json, "jane", [1, 2])))
            .await
            .unwrap();
        store
            .append(request("kim", 0, deposits(Codec::Postcard, "kim", [3])))
            .await
            .unwrap();
        store
            .save_snapshot(Snapshot {
                stream_type: "account".into(),
                stream_id: "jane".into(),
                version: 2,
                codec: Codec::Json,
                payload: b"42".to_vec(),
            })
            .await
            .unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.head().await.unwrap(), 3);
    assert_eq!(*store.watch_head().borrow(), 3);
    let all = store.read_all(1, 10).await.unwrap();
    assert_eq!(
        all.iter().map(decode).map(|d| d.amount).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert_eq!(all[2].codec, Codec::Postcard);
    assert_eq!(
        store
            .load_snapshot("account", "jane")
            .await
            .unwrap()
            .unwrap()
            .payload,
        b"42"
    );
    // The writer picks up where the file ends.
    let appended = store
        .append(request("jane", 2, deposits(Codec::Json, "jane", [4])))
        .await
        .unwrap();
    assert_eq!((appended.version, appended.first_position), (3, 4));
}

#[tokio::test]
async fn sqlite_refuses_a_file_from_a_newer_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.db");
    drop(SqliteStore::open(&path).unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute("INSERT INTO schema_version (version) VALUES (99)", [])
        .unwrap();
    drop(conn);
    let err = SqliteStore::open(&path).err().expect("a newer schema is refused");
    let message = format!("{err}");
    assert!(
        message.contains("schema version 99") && message.contains("newer"),
        "{message}"
    );
}

#[cfg_attr(
    not(factum_pg),
    ignore = "needs PostgreSQL: set FACTUM_PG_URL (see tests/README.md)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_feed_is_gap_free_under_slow_concurrent_commits() {
    let Some(url) = pg_url() else { return };
    let schema = format!("t_{}", Uuid::new_v4().simple());
    // Two stores = two nodes: their batches race each other in the database,
    // and node A's also race each other (three in flight, one connection each).
    let node_a: Arc<dyn EventStore> = Arc::new(
        PostgresStore::connect(url.clone())
            .schema(schema.clone())
            .pool_size(4)
            .batches_in_flight(3)
            .await
            .unwrap(),
    );
    let node_b: Arc<dyn EventStore> = Arc::new(
        PostgresStore::connect(url.clone())
            .schema(schema.clone())
            .pool_size(4)
            .await
            .unwrap(),
    );

    // A third party holds a slow transaction open on the counter row now and
    // then, the way a slow append would, while the nodes keep appending.
    let slow = {
        let (url, schema) = (url.clone(), schema.clone());
        tokio::spawn(async move {
            let mut client = pg_client(&url).await;
            for _ in 0..5 {
                let tx = client.transaction().await.unwrap();
                tx.batch_execute(&format!(
                    "UPDATE {schema}.head SET position = position WHERE id = 1; SELECT pg_sleep(0.1)"
                ))
                .await
                .unwrap();
                tx.commit().await.unwrap();
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };

    const WRITERS: u64 = 16;
    const APPENDS: u64 = 60;
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let store = if w % 2 == 0 {
            node_a.clone()
        } else {
            node_b.clone()
        };
        writers.push(tokio::spawn(async move {
            let id = format!("g{w}");
            for v in 0..APPENDS {
                store
                    .append(request(&id, v, deposits(Codec::Json, &id, [v])))
                    .await
                    .unwrap();
            }
        }));
    }
    let total = WRITERS * APPENDS;
    // The reader tails with plain read_all calls, as a view would.
    let reader = {
        let store = node_a.clone();
        tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut next = 1;
            while (seen.len() as u64) < total {
                let batch = store.read_all(next, 37).await.unwrap();
                for e in batch {
                    assert_eq!(e.position, next, "the reader skipped or repeated a position");
                    next += 1;
                    seen.push(e.position);
                }
                tokio::task::yield_now().await;
            }
            seen
        })
    };
    for w in writers {
        w.await.unwrap();
    }
    slow.await.unwrap();
    let seen = tokio::time::timeout(Duration::from_secs(60), reader)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(seen, (1..=total).collect::<Vec<_>>());
    let all = node_b.read_all(1, usize::MAX).await.unwrap();
    assert_eq!(all.len() as u64, total);
    drop((node_a, node_b));
    pg_client(&url)
        .await
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .unwrap();
}

/// A node with several batches in flight, writers contending on a few
/// streams (so batches carry followers, and requests wait for a stream that
/// a batch in flight holds): every append is answered once, as appended or
/// as a conflict with the version it met, and the log holds exactly the
/// appended events, each stream's versions and the feed's positions without
/// a gap.
#[cfg_attr(
    not(factum_pg),
    ignore = "needs PostgreSQL: set FACTUM_PG_URL (see tests/README.md)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_batches_in_flight_answer_every_contended_append_once() {
    let Some(url) = pg_url() else { return };
    let schema = format!("t_{}", Uuid::new_v4().simple());
    let store: Arc<dyn EventStore> = Arc::new(
        PostgresStore::connect(url.clone())
            .schema(schema.clone())
            .pool_size(8)
            .batches_in_flight(4)
            .await
            .unwrap(),
    );
    const STREAMS: usize = 4;
    const WRITERS: usize = 24;
    const SUCCESSES: u64 = 15;
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let store = store.clone();
        writers.push(tokio::spawn(async move {
            let id = format!("s{}", w % STREAMS);
            let (mut expected, mut appended, mut conflicts) = (0, 0, 0u64);
            while appended < SUCCESSES {
                match store
                    .append(request(&id, expected, deposits(Codec::Json, &id, [w as u64])))
                    .await
                {
                    Ok(a) => {
                        assert_eq!(a.version, expected + 1, "writer {w} on {id}");
                        expected = a.version;
                        appended += 1;
                    }
                    Err(StoreError::Conflict { actual, .. }) => {
                        assert!(
                            actual > expected,
                            "a conflict at {actual} for expected {expected}"
                        );
                        expected = actual;
                        conflicts += 1;
                    }
                    Err(e) => panic!("writer {w} on {id}: {e}"),
                }
            }
            conflicts
        }));
    }
    let mut conflicts = 0;
    for w in writers {
        conflicts += w.await.unwrap();
    }
    assert!(
        conflicts > 0,
        "the writers never contended: the test proves nothing"
    );
    let total = WRITERS as u64 * SUCCESSES;
    let all = store.read_all(1, usize::MAX).await.unwrap();
    assert_eq!(
        all.iter().map(|e| e.position).collect::<Vec<_>>(),
        (1..=total).collect::<Vec<_>>()
    );
    let mut versions: HashMap<String, Vec<u64>> = HashMap::new();
    for e in &all {
        versions.entry(e.stream_id.clone()).or_default().push(e.version);
    }
    for (id, v) in &versions {
        assert_eq!(*v, (1..=v.len() as u64).collect::<Vec<_>>(), "stream {id}");
    }
    assert_eq!(versions.values().map(Vec::len).sum::<usize>() as u64, total);
    drop(store);
    pg_client(&url)
        .await
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .unwrap();
}

/// Gap safety at a known point, not by luck: an append is held open by the
/// test after its statement took position 1 and before its commit. A later
/// append (another node) must not become visible above the hole — it waits
/// for the held one — and once the held one commits, the feed is 1, 2 in
/// that order. Positions from a plain sequence (the later append commits at
/// 2 while 1 is still in flight) fail at the first read, every run.
#[cfg_attr(
    not(factum_pg),
    ignore = "needs PostgreSQL: set FACTUM_PG_URL (see tests/README.md)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_held_commit_hides_every_later_position() {
    let Some(url) = pg_url() else { return };
    let schema = format!("t_{}", Uuid::new_v4().simple());
    let node = |url: String, schema: String| async move {
        PostgresStore::connect(url).schema(schema).await.unwrap()
    };
    let node_a = node(url.clone(), schema.clone()).await;
    let node_b = Arc::new(node(url.clone(), schema.clone()).await);
    let observer = pg_client(&url).await;

    // Given an append held open after it took its position.
    let held = node_a
        .hold_append(request("held", 0, deposits(Codec::Json, "held", [1])))
        .await
        .unwrap();
    assert_eq!((held.first_position, held.last_position), (1, 1));

    // When another node appends: it either waits behind the held commit
    // (seen by the server: blocked by the held backend) or commits.
    let later = {
        let node_b = node_b.clone();
        tokio::spawn(async move {
            node_b
                .append(request("later", 0, deposits(Codec::Json, "later", [2])))
                .await
        })
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let blocked: i64 = observer
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))",
                &[&held.backend_pid],
            )
            .await
            .unwrap()
            .get(0);
        if blocked > 0 || later.is_finished() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the later append neither waited for the held commit nor finished within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    // Then a reader sees no position above the uncommitted one.
    let visible: Vec<u64> = node_b
        .read_all(1, usize::MAX)
        .await
        .unwrap()
        .iter()
        .map(|e| e.position)
        .collect();
    assert_eq!(
        visible,
        Vec::<u64>::new(),
        "positions {visible:?} are visible while position 1 is not committed: a reader \
         at this moment moves past 1 and never sees it"
    );
    assert!(
        !later.is_finished(),
        "the later append committed while an earlier position was in flight"
    );

    // And once the held append commits, the later one follows it, gap-free.
    held.commit().await.unwrap();
    let appended = tokio::time::timeout(Duration::from_secs(60), later)
        .await
        .expect("the later append finishes once the held one committed")
        .unwrap()
        .unwrap();
    assert_eq!((appended.first_position, appended.last_position), (2, 2));
    let feed: Vec<(u64, String)> = node_b
        .read_all(1, usize::MAX)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.position, e.stream_id))
        .collect();
    assert_eq!(feed, vec![(1, "held".to_owned()), (2, "later".to_owned())]);
    drop((node_a, node_b));
    observer
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .unwrap();
}

#[cfg_attr(
    not(factum_pg),
    ignore = "needs PostgreSQL: set FACTUM_PG_URL (see tests/README.md)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_watch_head_hears_other_nodes_appends() {
    let Some(url) = pg_url() else { return };
    let schema = format!("t_{}", Uuid::new_v4().simple());
    // A poll far slower than the timeout below: only NOTIFY can wake the watcher in time.
    let listener = PostgresStore::connect(url.clone())
        .schema(schema.clone())
        .poll_interval(Duration::from_secs(3600))
        .await
        .unwrap();
    let writer = PostgresStore::connect(url.clone())
        .schema(schema.clone())
        .await
        .unwrap();
    let mut head = listener.watch_head();
    assert_eq!(*head.borrow_and_update(), 0);
    writer
        .append(request("lea", 0, deposits(Codec::Json, "lea", [1, 2])))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(5), head.wait_for(|&h| h >= 2))
        .await
        .expect("the other node's append was notified")
        .unwrap();
    drop((listener, writer));
    pg_client(&url)
        .await
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .unwrap();
}

/// The listening connection terminated (`pg_terminate_backend`, as a
/// failover or an operator would): the store listens again on a fresh
/// connection, so another node's appends still wake its tails, not only its
/// slow poll.
#[cfg_attr(
    not(factum_pg),
    ignore = "needs PostgreSQL: set FACTUM_PG_URL (see tests/README.md)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_terminated_listener_listens_again() {
    let Some(url) = pg_url() else { return };
    let schema = format!("t_{}", Uuid::new_v4().simple());
    // A poll far slower than the bounds below: only a listener can wake the watcher in time.
    let listener = PostgresStore::connect(url.clone())
        .schema(schema.clone())
        .poll_interval(Duration::from_secs(3600))
        .await
        .unwrap();
    let admin = pg_client(&url).await;
    let listen_sql = format!("LISTEN factum_{schema}");
    let terminated: i64 = admin
        .query_one(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE query = $1 AND pid <> pg_backend_pid()) t",
            &[&listen_sql],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(terminated, 1, "the store's one listening backend was terminated");
    // Another node, opened after the termination.
    let writer = PostgresStore::connect(url.clone())
        .schema(schema.clone())
        .await
        .unwrap();

    let mut head = listener.watch_head();
    assert_eq!(*head.borrow_and_update(), 0);
    // Appended while the listener may still be reconnecting: the head read
    // after listening again finds it.
    let start = std::time::Instant::now();
    writer
        .append(request("lea", 0, deposits(Codec::Json, "lea", [1, 2])))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), head.wait_for(|&h| h >= 2))
        .await
        .expect("the append after the termination woke the tail long before the poll")
        .unwrap();
    eprintln!("woke {:?} after the first append", start.elapsed());
    // Listening again by now (the head is read only after LISTEN): the next
    // append is notified on the new connection.
    let start = std::time::Instant::now();
    writer
        .append(request("lea", 2, deposits(Codec::Json, "lea", [3])))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), head.wait_for(|&h| h >= 3))
        .await
        .expect("the next append was notified on the new listening connection")
        .unwrap();
    eprintln!("woke {:?} after the second append", start.elapsed());
    let listening: i64 = admin
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE query = $1",
            &[&listen_sql],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(listening, 2, "the first store listens again, beside the second");
    drop((listener, writer));
    admin
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .unwrap();
}

/// A second request for a stream in the same batch, at the same expected
/// version, follows the first; when the first fails for a reason that leaves
/// the stream where it was, the second must be tried, not refused with a
/// "conflict" whose expected and actual versions are the same.
#[cfg_attr(
    not(factum_pg),
    ignore = "needs PostgreSQL: set FACTUM_PG_URL (see tests/README.md)"
)]
#[tokio::test]
async fn postgres_a_request_behind_a_failed_one_is_tried_not_refused() {
    // Single-threaded, so both requests are queued before the writer runs.
    let Some(b) = Backend::postgres().await else {
        return;
    };
    let mut bad = new_event(Codec::Json, "nul", 1);
    // Valid JSON that jsonb refuses (22P05): the server rejects the statement.
    bad.payload = br#"{"account":"nul\u0000","amount":1}"#.to_vec();
    let good = new_event(Codec::Json, "nul", 2);
    let (first, second) = tokio::join!(
        b.store.append(request("nul", 0, vec![bad])),
        b.store.append(request("nul", 0, vec![good])),
    );
    let err = first.unwrap_err();
    assert!(matches!(err, StoreError::Backend { .. }), "{err}");
    // The server's reason is kept: its SQLSTATE through the source chain, its
    // words in the message.
    let server = std::iter::successors(Some(&err as &(dyn std::error::Error + 'static)), |e| e.source())
        .find_map(|e| e.downcast_ref::<tokio_postgres::Error>())
        .expect("a tokio_postgres error in the source chain");
    assert_eq!(
        server.code(),
        Some(&tokio_postgres::error::SqlState::UNTRANSLATABLE_CHARACTER)
    );
    let message = err.to_string();
    assert!(
        message.contains("22P05") && message.contains("Unicode escape"),
        "{message}"
    );
    assert!(message.contains("account/nul at version 0"), "{message}");
    let appended = second.expect("the second request is tried, and succeeds");
    assert_eq!(appended.version, 1);
    assert_eq!(b.store.stream_version("account", "nul").await.unwrap(), 1);
    b.finish().await;
}

/// Two stores on one file, as two processes would have: each must see the
/// other's commits, so a stale expectation is a `Conflict` with the true
/// version, never a constraint failure reported as `Backend`, and positions
/// stay gap-free.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_two_stores_on_one_file_conflict_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.db");
    let open = || {
        Arc::new(
            SqliteStore::options()
                .synchronous(Synchronous::Normal)
                .open(&path)
                .expect("open sqlite"),
        )
    };
    let (one, two) = (open(), open());

    // Alternating, one after the other.
    let c = Codec::Json;
    assert_eq!(
        one.append(request("shared", 0, deposits(c, "shared", [1])))
            .await
            .unwrap()
            .version,
        1
    );
    let err = two
        .append(request("shared", 0, deposits(c, "shared", [2])))
        .await
        .unwrap_err();
    assert_conflict(&err, "shared", 0, 1);
    let appended = two
        .append(request("shared", 1, deposits(c, "shared", [2])))
        .await
        .unwrap();
    assert_eq!((appended.version, appended.first_position), (2, 2));
    let err = one
        .append(request("shared", 1, deposits(c, "shared", [3])))
        .await
        .unwrap_err();
    assert_conflict(&err, "shared", 1, 2);
    let appended = one
        .append(request("own-1", 0, deposits(c, "own-1", [4])))
        .await
        .unwrap();
    assert_eq!(appended.first_position, 3);
    let appended = two
        .append(request("own-2", 0, deposits(c, "own-2", [5])))
        .await
        .unwrap();
    assert_eq!(appended.first_position, 4);

    // At the same time: each store's writer keeps taking the lock right
    // after the other's commit.
    let mut tasks = Vec::new();
    for (n, store) in [one.clone(), two.clone(), one.clone(), two.clone()]
        .into_iter()
        .enumerate()
    {
        tasks.push(tokio::spawn(async move {
            let own = format!("task-{n}");
            let mut own_version = 0;
            let mut written = 0u64;
            for i in 0..60u64 {
                let expected = store.stream_version("account", "shared").await.unwrap();
                match store
                    .append(request("shared", expected, deposits(c, "shared", [i])))
                    .await
                {
                    Ok(a) => {
                        assert_eq!(a.version, expected + 1);
                        written += 1;
                    }
                    Err(StoreError::Conflict {
                        expected: e, actual, ..
                    }) => {
                        assert!(
                            actual > e,
                            "a conflict must name a newer version: {e} vs {actual}"
                        );
                    }
                    Err(other) => panic!("shared stream: {other}"),
                }
                let a = store
                    .append(request(&own, own_version, deposits(c, &own, [i])))
                    .await
                    .unwrap_or_else(|e| panic!("own stream {own}: {e}"));
                own_version = a.version;
                written += 1;
            }
            written
        }));
    }
    let mut written = 4;
    for t in tasks {
        written += t.await.unwrap();
    }
    let all = one.read_all(1, 10_000).await.unwrap();
    let positions: Vec<u64> = all.iter().map(|e| e.position).collect();
    assert_eq!(
        positions,
        (1..=written).collect::<Vec<_>>(),
        "gap-free positions, each event once"
    );
    let shared: Vec<u64> = all
        .iter()
        .filter(|e| e.stream_id == "shared")
        .map(|e| e.version)
        .collect();
    assert_eq!(shared, (1..=shared.len() as u64).collect::<Vec<_>>());
}
