//! The embedded event store: one SQLite file in WAL mode, durable at
//! `synchronous=FULL` by default, with group commit.
//!
//! One writer thread owns the only write connection. Appends from any number of
//! tasks queue on a channel; the writer drains what is queued (up to a cap),
//! writes it in ONE transaction — each request under its own savepoint, so a
//! conflict in one stream fails only that request — commits once (one fsync for
//! the whole batch), then answers every caller. Positions are gap-free because
//! that one writer assigns them. Reads run on a small pool of read-only
//! connections and never wait for the writer (WAL readers see the last commit).
//!
//! [`SqliteStore::open_read_only`] opens a file for reading only (the audit
//! tools use it): no writer thread, no migration, every connection opened
//! `SQLITE_OPEN_READ_ONLY`, and appends and snapshots refused with
//! [`StoreError::ReadOnly`] before anything touches the file.
//!
//! The file is meant for one process: `watch_head` follows this store's own
//! commits. Another process writing the same file is detected (the writer
//! drops its caches) but its appends do not wake this store's subscribers.

use std::collections::HashMap;
use std::error::Error as StdError;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use async_trait::async_trait;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, params};
use tokio::sync::{oneshot, watch};
use uuid::Uuid;

use crate::codec::Codec;
use crate::sql;
use crate::store::{
    AppendRequest, Appended, EventMetadata, EventStore, RecordedEvent, Snapshot, StoreError, validate_append,
};
use crate::time::Timestamp;

const BACKEND: &str = "sqlite";

/// How long the writer waits for the rest of a group of callers it expects
/// (only after a batch of several): far below one fsync, so it pays for itself.
const GATHER_WINDOW: std::time::Duration = std::time::Duration::from_micros(200);

/// The schema this build writes. Migration `n` (1-based) takes a file from
/// schema `n - 1` to `n`; a file with a higher number was written by a newer
/// factum and is refused rather than misread.
const MIGRATIONS: &[&str] = &[
    // 1: the event log and the snapshots beside it.
    "CREATE TABLE events (
        position       INTEGER PRIMARY KEY,
        stream_type    TEXT    NOT NULL,
        stream_id      TEXT    NOT NULL,
        version        INTEGER NOT NULL,
        event_type     TEXT    NOT NULL,
        schema_version INTEGER NOT NULL,
        codec          INTEGER NOT NULL,
        payload        BLOB    NOT NULL,
        event_id       BLOB    NOT NULL,
        recorded_at    INTEGER NOT NULL,
        command_id     BLOB    NOT NULL,
        causation_id   BLOB,
        correlation_id BLOB    NOT NULL,
        UNIQUE (stream_type, stream_id, version)
    );
    CREATE TABLE snapshots (
        stream_type TEXT    NOT NULL,
        stream_id   TEXT    NOT NULL,
        version     INTEGER NOT NULL,
        codec       INTEGER NOT NULL,
        payload     BLOB    NOT NULL,
        PRIMARY KEY (stream_type, stream_id)
    );",
    // 2: finding a command's events, so a re-sent command id returns its original outcome.
    "CREATE INDEX events_by_command ON events (command_id);",
    // 3: no command-id index after all. Its random-key inserts cost about 40 %
    // of end-to-end append throughput (loadgen, 64 writers, FULL: ~31 k events/s
    // without it, ~18 k with it); a re-sent command's events are found through
    // the (stream_type, stream_id, version) index instead, reading its stream.
    "DROP INDEX IF EXISTS events_by_command;",
    // 4: a checksum per record (`crate::store::checksum`), checked on every
    // read. Records stored before it have none (NULL) and are read unchecked;
    // adding a nullable column rewrites nothing.
    "ALTER TABLE events ADD COLUMN checksum INTEGER;",
];

/// The first schema whose `events` rows carry a checksum (migration 4).
const CHECKSUM_SCHEMA: i64 = 4;

const EVENT_COLUMNS: &str = "position, stream_type, stream_id, version, event_type, schema_version, codec, \
     payload, event_id, recorded_at, command_id, causation_id, correlation_id, checksum";

/// [`EVENT_COLUMNS`] for a file opened read-only at a schema older than
/// [`CHECKSUM_SCHEMA`], which has no checksum column to read.
const EVENT_COLUMNS_UNCHECKED: &str = "position, stream_type, stream_id, version, event_type, schema_version, \
     codec, payload, event_id, recorded_at, command_id, causation_id, correlation_id, NULL";

/// How hard SQLite works to make a commit durable (`PRAGMA synchronous`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Synchronous {
    /// Every commit is on disk when `append` returns (an fsync per commit, shared
    /// by the whole group-commit batch). The default.
    #[default]
    Full,
    /// In WAL mode: consistent after a crash, but the last commits before a
    /// power loss may be lost. Not after a process crash.
    Normal,
    /// No fsync at all: a power loss can corrupt the file. For tests and bulk loads.
    Off,
}

impl Synchronous {
    fn pragma(self) -> &'static str {
        match self {
            Synchronous::Full => "FULL",
            Synchronous::Normal => "NORMAL",
            Synchronous::Off => "OFF",
        }
    }
}

/// Settings for [`SqliteStore`]; start with [`SqliteStore::options`].
#[derive(Clone, Debug)]
pub struct SqliteOptions {
    synchronous: Synchronous,
    codec: Codec,
    readers: usize,
    max_batch: usize,
    max_event_bytes: usize,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            synchronous: Synchronous::Full,
            codec: Codec::Json,
            readers: 4,
            max_batch: 1024,
            max_event_bytes: crate::store::DEFAULT_MAX_EVENT_BYTES,
        }
    }
}

impl SqliteOptions {
    /// Durability of a commit; [`Synchronous::Full`] by default.
    pub fn synchronous(mut self, synchronous: Synchronous) -> Self {
        self.synchronous = synchronous;
        self
    }

    /// The codec new events and snapshots are written with ([`EventStore::codec`]); JSON by default.
    pub fn codec(mut self, codec: Codec) -> Self {
        self.codec = codec;
        self
    }

    /// How many idle read connections to keep (4 by default; more are opened under load).
    pub fn readers(mut self, readers: usize) -> Self {
        self.readers = readers.max(1);
        self
    }

    /// The most append requests one group commit takes (1024 by default).
    pub fn max_batch(mut self, max_batch: usize) -> Self {
        self.max_batch = max_batch.max(1);
        self
    }

    /// The largest event payload an append may carry, in bytes
    /// ([`DEFAULT_MAX_EVENT_BYTES`](crate::store::DEFAULT_MAX_EVENT_BYTES),
    /// 4 MiB, by default); a larger one is refused with
    /// [`StoreError::Invalid`] naming its size and the limit.
    pub fn max_event_bytes(mut self, bytes: usize) -> Self {
        self.max_event_bytes = bytes;
        self
    }

    /// Opens (creating if needed) the store in the file at `path`, migrating its
    /// schema to this build's. Fails if the file was written by a newer schema.
    pub fn open(self, path: impl AsRef<Path>) -> Result<SqliteStore, StoreError> {
        SqliteStore::open_with(path.as_ref(), self)
    }
}

/// The SQLite [`EventStore`]. Cloning shares the same writer and readers.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

// Field order matters: `commands` is dropped before `writer`, so the writer
// thread sees the channel close, finishes its batch and exits, and dropping
// the last handle waits for that.
struct Inner {
    /// `None` when the store was opened read-only.
    commands: Option<mpsc::Sender<Command>>,
    readers: Mutex<Vec<Connection>>,
    path: PathBuf,
    options: SqliteOptions,
    head: Arc<watch::Sender<u64>>,
    /// The columns an event read selects ([`EVENT_COLUMNS`], or
    /// [`EVENT_COLUMNS_UNCHECKED`] for an old file opened read-only).
    columns: &'static str,
    _writer: WriterThread,
}

struct WriterThread(Option<JoinHandle<()>>);

impl Drop for WriterThread {
    fn drop(&mut self) {
        if let Some(handle) = self.0.take() {
            // The thread only exits through the closed channel; a panic in it
            // has already answered its callers with `Closed`.
            let _ = handle.join();
        }
    }
}

enum Command {
    Append {
        request: AppendRequest,
        reply: oneshot::Sender<Result<Appended, StoreError>>,
    },
    Snapshot {
        snapshot: Snapshot,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
}

fn backend_error(
    context: impl Into<String>,
    source: impl Into<Box<dyn StdError + Send + Sync>>,
) -> StoreError {
    StoreError::backend(BACKEND, context, source)
}

/// A failure while appending `request`, naming its stream and expected version.
fn append_error(request: &AppendRequest, context: &str, e: rusqlite::Error) -> StoreError {
    backend_error(
        format!(
            "{context} for stream {}/{} at version {}",
            crate::store::shown(&request.stream_type),
            crate::store::shown(&request.stream_id),
            request.expected_version
        ),
        e,
    )
}

/// A stored integer of table `events` as a position or version, or `CorruptTable`.
fn unsigned(stored: i64, row: impl FnOnce() -> String) -> Result<u64, StoreError> {
    crate::sql::unsigned(stored, BACKEND, "events", row)
}

impl SqliteStore {
    /// Opens the store in the file at `path` with the default options
    /// (`synchronous=FULL`, JSON).
    pub fn open(path: impl AsRef<Path>) -> Result<SqliteStore, StoreError> {
        SqliteOptions::default().open(path)
    }

    /// Options to open a store with: `SqliteStore::options().synchronous(..).codec(..).open(path)`.
    pub fn options() -> SqliteOptions {
        SqliteOptions::default()
    }

    /// The file this store writes.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Opens the existing store in the file at `path` for reading only: every
    /// connection is opened read-only by SQLite itself, the schema is not
    /// migrated, and [`append`](EventStore::append) and
    /// [`save_snapshot`](EventStore::save_snapshot) fail with
    /// [`StoreError::ReadOnly`]. Fails if the file does not exist, holds no
    /// factum event log, or was written by a newer schema. `watch_head` stays
    /// at the head read at open (this store sees no commits of its own).
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<SqliteStore, StoreError> {
        let path = path.as_ref();
        let shown = path.display().to_string();
        let mut inner = Inner {
            commands: None,
            readers: Mutex::new(Vec::new()),
            path: path.to_path_buf(),
            options: SqliteOptions::default(),
            head: Arc::new(watch::channel(0).0),
            columns: EVENT_COLUMNS,
            _writer: WriterThread(None),
        };
        let conn = inner.open_reader()?;
        let fail = |e: rusqlite::Error| backend_error(format!("reading the schema of {shown}"), e);
        let tables: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ('events', 'schema_version')",
                [],
                |r| r.get(0),
            )
            .map_err(fail)?;
        if tables != 2 {
            return Err(backend_error(
                format!("opening {shown} read-only"),
                "the file holds no factum event log (no `events` and `schema_version` tables)",
            ));
        }
        let current: i64 = conn
            .query_row("SELECT coalesce(max(version), 0) FROM schema_version", [], |r| {
                r.get(0)
            })
            .map_err(fail)?;
        let latest = MIGRATIONS.len() as i64;
        if current > latest {
            return Err(backend_error(
                format!("opening {shown} read-only"),
                format!(
                    "the file has schema version {current}, newer than the {latest} this build of factum \
                     knows; open it with a newer factum"
                ),
            ));
        }
        if current < CHECKSUM_SCHEMA {
            inner.columns = EVENT_COLUMNS_UNCHECKED;
        }
        let head = conn
            .query_row("SELECT coalesce(max(position), 0) FROM events", [], |r| {
                r.get::<_, i64>(0)
            })
            .map_err(|e| backend_error(format!("reading the head of {shown}"), e))?;
        inner
            .head
            .send_replace(unsigned(head, || "max(position)".to_owned())?);
        inner.put_reader(conn);
        Ok(SqliteStore {
            inner: Arc::new(inner),
        })
    }

    /// True when the store was opened with [`open_read_only`](SqliteStore::open_read_only).
    pub fn is_read_only(&self) -> bool {
        self.inner.commands.is_none()
    }

    fn open_with(path: &Path, options: SqliteOptions) -> Result<SqliteStore, StoreError> {
        let shown = path.display().to_string();
        let mut conn = Connection::open(path).map_err(|e| backend_error(format!("opening {shown}"), e))?;
        refuse_foreign(&conn, &shown)?;
        configure_writer(&conn, options.synchronous)
            .map_err(|e| backend_error(format!("configuring {shown}"), e))?;
        migrate(&mut conn, &shown)?;
        let head = conn
            .query_row("SELECT coalesce(max(position), 0) FROM events", [], |r| {
                r.get::<_, i64>(0)
            })
            .map_err(|e| backend_error(format!("reading the head of {shown}"), e))?;
        let head = unsigned(head, || "max(position)".to_owned())?;
        let head = Arc::new(watch::channel(head).0);
        let (commands, queue) = mpsc::channel();
        let writer = Writer {
            conn,
            queue,
            head: head.clone(),
            max_batch: options.max_batch,
            versions: HashMap::new(),
            next_position: None,
            data_version: None,
        };
        let handle = std::thread::Builder::new()
            .name("factum-sqlite-writer".into())
            .spawn(move || writer.run())
            .map_err(|e| backend_error("starting the writer thread", e))?;
        let store = SqliteStore {
            inner: Arc::new(Inner {
                commands: Some(commands),
                readers: Mutex::new(Vec::new()),
                path: path.to_path_buf(),
                options,
                head,
                columns: EVENT_COLUMNS,
                _writer: WriterThread(Some(handle)),
            }),
        };
        // Fail at open, not at the first read, if the file cannot be read.
        let conn = store.inner.open_reader()?;
        store.inner.put_reader(conn);
        Ok(store)
    }

    /// Runs `f` on a read connection on the blocking pool.
    async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let conn = inner.take_reader()?;
            let out = f(&conn);
            inner.put_reader(conn);
            out
        })
        .await
        .map_err(|e| backend_error("running a read", e))?
    }

    async fn send<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        let Some(commands) = &self.inner.commands else {
            return Err(StoreError::ReadOnly {
                backend: BACKEND,
                location: self.inner.path.display().to_string(),
            });
        };
        commands
            .send(make(reply))
            .map_err(|_| StoreError::Closed { backend: BACKEND })?;
        answer.await.map_err(|_| StoreError::Closed { backend: BACKEND })
    }
}

impl Inner {
    fn open_reader(&self) -> Result<Connection, StoreError> {
        let shown = self.path.display();
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI,
        )
        .map_err(|e| backend_error(format!("opening {shown} for reading"), e))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(|e| backend_error(format!("configuring a reader of {shown}"), e))?;
        conn.set_prepared_statement_cache_capacity(16);
        Ok(conn)
    }

    fn take_reader(&self) -> Result<Connection, StoreError> {
        let pooled = self.readers.lock().unwrap_or_else(|e| e.into_inner()).pop();
        match pooled {
            Some(conn) => Ok(conn),
            None => self.open_reader(),
        }
    }

    fn put_reader(&self, conn: Connection) {
        let mut pool = self.readers.lock().unwrap_or_else(|e| e.into_inner());
        if pool.len() < self.options.readers {
            pool.push(conn);
        }
    }
}

/// Refuses a file that holds some other program's `events` table, before
/// anything (WAL mode, a migration) changes a byte of it: only reads here.
/// A file that is not a database at all fails on the same read.
fn refuse_foreign(conn: &Connection, shown: &str) -> Result<(), StoreError> {
    let (events, schema_version): (i64, i64) = conn
        .query_row(
            "SELECT count(*) FILTER (WHERE name = 'events'), count(*) FILTER (WHERE name = 'schema_version') \
             FROM sqlite_master WHERE type = 'table'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .map_err(|e| backend_error(format!("reading the schema of {shown}"), e))?;
    if events > 0 && schema_version == 0 {
        return Err(backend_error(
            format!("opening {shown}"),
            "the file has an `events` table but no factum `schema_version` table: it is not a factum \
             event log (nothing in it was changed)",
        ));
    }
    Ok(())
}

fn configure_writer(
    conn: &Connection,
    synchronous: Synchronous,
) -> Result<(), Box<dyn StdError + Send + Sync>> {
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(format!("the file refused WAL mode (journal_mode is {mode})").into());
    }
    conn.execute_batch(&format!("PRAGMA synchronous = {};", synchronous.pragma()))?;
    conn.set_prepared_statement_cache_capacity(32);
    Ok(())
}

/// Brings the file's schema up to [`MIGRATIONS`], in one transaction.
fn migrate(conn: &mut Connection, shown: &str) -> Result<(), StoreError> {
    let fail = |e: rusqlite::Error| backend_error(format!("migrating the schema of {shown}"), e);
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(fail)?;
    tx.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        .map_err(fail)?;
    let current: i64 = tx
        .query_row("SELECT coalesce(max(version), 0) FROM schema_version", [], |r| {
            r.get(0)
        })
        .map_err(fail)?;
    let latest = MIGRATIONS.len() as i64;
    if current > latest {
        return Err(backend_error(
            format!("opening {shown}"),
            format!(
                "the file has schema version {current}, newer than the {latest} this build of factum \
                 knows; open it with a newer factum"
            ),
        ));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current.max(0) as usize) {
        tx.execute_batch(sql).map_err(fail)?;
        tx.execute("INSERT INTO schema_version (version) VALUES (?1)", [i as i64 + 1])
            .map_err(fail)?;
    }
    tx.commit().map_err(fail)
}

/// The writer thread's state: the write connection and what it knows of the file.
struct Writer {
    conn: Connection,
    queue: mpsc::Receiver<Command>,
    head: Arc<watch::Sender<u64>>,
    max_batch: usize,
    /// stream type → stream id → version, as committed. Saves a SELECT per
    /// append; dropped whenever another connection has written the file.
    versions: HashMap<String, HashMap<String, u64>>,
    next_position: Option<u64>,
    data_version: Option<i64>,
}

/// What one request of a batch will answer once the batch commits.
enum Outcome {
    Append(
        oneshot::Sender<Result<Appended, StoreError>>,
        Result<Appended, StoreError>,
    ),
    Snapshot(oneshot::Sender<Result<(), StoreError>>, Result<(), StoreError>),
}

impl Writer {
    fn run(mut self) {
        let mut last_batch = 1;
        while let Ok(first) = self.queue.recv() {
            let mut batch = vec![first];
            // The callers of the last batch were answered together and tend to
            // come back together: when there were several, give them a moment
            // to queue so they share the next fsync instead of splitting it.
            let expect = last_batch.min(self.max_batch);
            let deadline = std::time::Instant::now() + GATHER_WINDOW;
            while batch.len() < self.max_batch {
                match self.queue.try_recv() {
                    Ok(command) => batch.push(command),
                    Err(mpsc::TryRecvError::Disconnected) => break,
                    Err(mpsc::TryRecvError::Empty) => {
                        let now = std::time::Instant::now();
                        if batch.len() >= expect || now >= deadline {
                            break;
                        }
                        match self.queue.recv_timeout(deadline - now) {
                            Ok(command) => batch.push(command),
                            Err(_) => break,
                        }
                    }
                }
            }
            last_batch = batch.len();
            self.write_batch(batch);
        }
    }

    fn write_batch(&mut self, batch: Vec<Command>) {
        if let Err(e) = self
            .conn
            .prepare_cached("BEGIN IMMEDIATE")
            .and_then(|mut s| s.execute([]))
        {
            return fail_all(batch, || {
                backend_error("starting a transaction", clone_sqlite(&e))
            });
        }
        // Only now, with the write lock held, can no other process commit
        // until we do: checked before `BEGIN`, a commit in between would
        // leave the caches stale for this whole batch.
        if let Err(e) = self.forget_if_changed() {
            let _ = self.conn.execute_batch("ROLLBACK");
            return fail_all(batch, || {
                backend_error("checking the file for other writers", clone_sqlite(&e))
            });
        }
        let mut pending: HashMap<(String, String), u64> = HashMap::new();
        let mut outcomes = Vec::with_capacity(batch.len());
        for command in batch {
            match command {
                Command::Append { request, reply } => {
                    let result = self.append_one(&request, &mut pending);
                    outcomes.push(Outcome::Append(reply, result));
                }
                Command::Snapshot { snapshot, reply } => {
                    let result = self.save_snapshot(&snapshot);
                    outcomes.push(Outcome::Snapshot(reply, result));
                }
            }
        }
        let committed = self.conn.prepare_cached("COMMIT").and_then(|mut s| s.execute([]));
        if let Err(e) = committed {
            let _ = self.conn.execute_batch("ROLLBACK");
            self.versions.clear();
            self.next_position = None;
            for outcome in outcomes {
                let err = || backend_error("committing a batch", clone_sqlite(&e));
                match outcome {
                    Outcome::Append(reply, _) => drop(reply.send(Err(err()))),
                    Outcome::Snapshot(reply, _) => drop(reply.send(Err(err()))),
                }
            }
            return;
        }
        // Our own commit changes nothing `data_version` reports to us, but read
        // it now so the next batch compares against a fresh value.
        if self.forget_if_changed().is_err() {
            self.data_version = None;
        }
        // A bound on memory, not a correctness matter: a miss costs one SELECT.
        if self.versions.values().map(HashMap::len).sum::<usize>() > 100_000 {
            self.versions.clear();
        }
        for ((stream_type, stream_id), version) in pending {
            self.versions
                .entry(stream_type)
                .or_default()
                .insert(stream_id, version);
        }
        let mut head = None;
        for outcome in outcomes {
            match outcome {
                Outcome::Append(reply, result) => {
                    crate::fault::hit("append.after");
                    if let Ok(appended) = &result
                        && appended.last_position > 0
                    {
                        head = Some(appended.last_position);
                    }
                    let _ = reply.send(result);
                }
                Outcome::Snapshot(reply, result) => {
                    let _ = reply.send(result);
                }
            }
        }
        if let Some(head) = head {
            self.head.send_if_modified(|h| {
                let newer = head > *h;
                if newer {
                    *h = head;
                }
                newer
            });
        }
    }

    /// Drops the caches if another connection (another process) committed to the file.
    fn forget_if_changed(&mut self) -> rusqlite::Result<()> {
        let now: i64 = self
            .conn
            .prepare_cached("PRAGMA data_version")?
            .query_row([], |r| r.get(0))?;
        if self.data_version != Some(now) {
            self.versions.clear();
            self.next_position = None;
            self.data_version = Some(now);
        }
        Ok(())
    }

    fn current_version(
        &mut self,
        request: &AppendRequest,
        pending: &HashMap<(String, String), u64>,
    ) -> Result<u64, StoreError> {
        let key = (request.stream_type.to_string(), request.stream_id.to_string());
        if let Some(v) = pending.get(&key) {
            return Ok(*v);
        }
        if let Some(v) = self
            .versions
            .get(&*request.stream_type)
            .and_then(|s| s.get(&*request.stream_id))
        {
            return Ok(*v);
        }
        let v: i64 = self
            .conn
            .prepare_cached(
                "SELECT coalesce(max(version), 0) FROM events WHERE stream_type = ?1 AND stream_id = ?2",
            )
            .and_then(|mut s| s.query_row(params![request.stream_type, request.stream_id], |r| r.get(0)))
            .map_err(|e| append_error(request, "reading the stream version", e))?;
        unsigned(v, || {
            format!(
                "max(version) of stream {}/{}",
                request.stream_type, request.stream_id
            )
        })
    }

    fn next_position(&mut self) -> rusqlite::Result<u64> {
        if let Some(p) = self.next_position {
            return Ok(p);
        }
        let max: i64 = self
            .conn
            .prepare_cached("SELECT coalesce(max(position), 0) FROM events")?
            .query_row([], |r| r.get(0))?;
        // A negative head was never written by factum: the append fails naming
        // the value instead of numbering from a clamped head.
        let max = u64::try_from(max).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(0, max))?;
        let p = max + 1;
        self.next_position = Some(p);
        Ok(p)
    }

    fn append_one(
        &mut self,
        request: &AppendRequest,
        pending: &mut HashMap<(String, String), u64>,
    ) -> Result<Appended, StoreError> {
        let named = |context: &str, e: rusqlite::Error| append_error(request, context, e);
        let current = self.current_version(request, pending)?;
        if current != request.expected_version {
            return self.conflict_or_acknowledge(request, current);
        }
        if request.events.is_empty() {
            return Ok(Appended {
                version: current,
                first_position: 0,
                last_position: 0,
                acknowledged: false,
            });
        }
        match self.insert_request(request, current, pending) {
            // The caches disagreed with the file, though `data_version` said
            // nothing changed: a second line of defence, not the usual path.
            // Re-read both and try once more, or report what is really there.
            Err(e) if is_constraint_violation(&e) => {
                self.forget_stream(request);
                let actual = self.current_version(request, pending)?;
                if actual != request.expected_version {
                    return self.conflict_or_acknowledge(request, actual);
                }
                self.insert_request(request, actual, pending)
                    .map_err(|e| named("appending", e))
            }
            other => other.map_err(|e| named("appending", e)),
        }
    }

    /// Forgets what the caches say about `request`'s stream and the head.
    fn forget_stream(&mut self, request: &AppendRequest) {
        self.next_position = None;
        if let Some(streams) = self.versions.get_mut(&*request.stream_type) {
            streams.remove(&*request.stream_id);
        }
    }

    /// The stream is at `actual`, not at the expected version: acknowledged
    /// if the events there are this request's own (an earlier attempt whose
    /// answer was lost), else a conflict ([`sql::acknowledge`]).
    fn conflict_or_acknowledge(
        &mut self,
        request: &AppendRequest,
        actual: u64,
    ) -> Result<Appended, StoreError> {
        if !sql::may_have_committed(request, actual) {
            return Err(StoreError::conflict(request, actual));
        }
        let stored = self
            .conn
            .prepare_cached(
                "SELECT position, event_id FROM events WHERE stream_type = ?1 AND stream_id = ?2 \
                 AND version > ?3 AND version <= ?4 ORDER BY version",
            )
            .and_then(|mut stmt| {
                stmt.query_map(
                    params![
                        request.stream_type,
                        request.stream_id,
                        sql::int(request.expected_version),
                        sql::int(actual)
                    ],
                    |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)),
                )?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(|e| append_error(request, "reading the stream's events", e))?;
        let mut own = Vec::with_capacity(stored.len());
        for (position, id) in stored {
            let position = unsigned(position, || {
                format!("position of stream {}/{}", request.stream_type, request.stream_id)
            })?;
            // An id that is not 16 bytes is no event id of this request: a conflict, not a match.
            own.push((position, Uuid::from_slice(&id).unwrap_or(Uuid::nil())));
        }
        sql::acknowledge(request, actual, &own)
    }

    /// Inserts a non-empty request's events at `current + 1..`, all or nothing.
    fn insert_request(
        &mut self,
        request: &AppendRequest,
        current: u64,
        pending: &mut HashMap<(String, String), u64>,
    ) -> rusqlite::Result<Appended> {
        let first_position = self.next_position()?;
        // One INSERT is atomic on its own (SQLite undoes a failed statement);
        // only a multi-event request needs a savepoint to be all-or-nothing.
        let savepoint = request.events.len() > 1;
        if savepoint {
            self.conn
                .prepare_cached("SAVEPOINT factum_append")
                .and_then(|mut s| s.execute([]))?;
        }
        match self.insert_events(request, first_position) {
            Ok(()) => {
                if savepoint {
                    self.conn
                        .prepare_cached("RELEASE factum_append")
                        .and_then(|mut s| s.execute([]))?;
                }
                let count = request.events.len() as u64;
                let version = current + count;
                self.next_position = Some(first_position + count);
                pending.insert(
                    (request.stream_type.to_string(), request.stream_id.to_string()),
                    version,
                );
                Ok(Appended {
                    version,
                    first_position,
                    last_position: first_position + count - 1,
                    acknowledged: false,
                })
            }
            Err(e) => {
                // Whatever this request wrote goes; the batch's other requests stay.
                if savepoint {
                    let _ = self
                        .conn
                        .execute_batch("ROLLBACK TO factum_append; RELEASE factum_append");
                }
                // The head the insert assumed may be wrong (another process
                // wrote): re-read MAX(position) rather than collide again.
                self.next_position = None;
                Err(e)
            }
        }
    }

    fn insert_events(&mut self, request: &AppendRequest, first_position: u64) -> rusqlite::Result<()> {
        let mut stmt = self.conn.prepare_cached(
            "INSERT INTO events (position, stream_type, stream_id, version, event_type, schema_version, codec, \
             payload, event_id, recorded_at, command_id, causation_id, correlation_id, checksum) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        )?;
        for (i, event) in request.events.iter().enumerate() {
            let m = &event.metadata;
            let version = request.expected_version + i as u64 + 1;
            // The bytes are stored as given: no parse, so this cannot fail.
            let checksum = sql::checksum_of(request, version, event, sql::JsonKept::Bytes)
                .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
            stmt.execute(params![
                sql::int(first_position + i as u64),
                request.stream_type,
                request.stream_id,
                sql::int(version),
                event.event_type,
                i64::from(event.schema_version),
                i64::from(event.codec.id()),
                event.payload,
                m.event_id.as_bytes().as_slice(),
                m.recorded_at.as_micros(),
                m.command_id.as_bytes().as_slice(),
                m.causation_id.as_ref().map(|c| c.as_bytes().as_slice()),
                m.correlation_id.as_bytes().as_slice(),
                i64::from(checksum),
            ])?;
        }
        Ok(())
    }

    fn save_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO snapshots (stream_type, stream_id, version, codec, payload) \
                 VALUES (?1, ?2, ?3, ?4, ?5) \
                 ON CONFLICT (stream_type, stream_id) DO UPDATE SET \
                   version = excluded.version, codec = excluded.codec, payload = excluded.payload \
                 WHERE excluded.version > snapshots.version",
            )
            .and_then(|mut s| {
                s.execute(params![
                    snapshot.stream_type,
                    snapshot.stream_id,
                    sql::int(snapshot.version),
                    i64::from(snapshot.codec.id()),
                    snapshot.payload,
                ])
            })
            .map(drop)
            .map_err(|e| {
                backend_error(
                    format!(
                        "saving the snapshot of {}/{} at version {}",
                        snapshot.stream_type, snapshot.stream_id, snapshot.version
                    ),
                    e,
                )
            })
    }
}

/// A UNIQUE or PRIMARY KEY violation: a version or position already taken.
fn is_constraint_violation(e: &rusqlite::Error) -> bool {
    e.sqlite_error_code() == Some(rusqlite::ErrorCode::ConstraintViolation)
}

/// rusqlite errors are not `Clone`; a batch failure is reported to every caller.
fn clone_sqlite(e: &rusqlite::Error) -> String {
    e.to_string()
}

fn fail_all(batch: Vec<Command>, err: impl Fn() -> StoreError) {
    for command in batch {
        match command {
            Command::Append { reply, .. } => drop(reply.send(Err(err()))),
            Command::Snapshot { reply, .. } => drop(reply.send(Err(err()))),
        }
    }
}

/// Reads typed columns out of a stored row, naming the column when one is not
/// what the schema promises (an edited or damaged file).
struct Cols<'a, 'r>(&'a Row<'r>);

impl Cols<'_, '_> {
    fn value(&self, i: usize, name: &str) -> Result<ValueRef<'_>, String> {
        match self.0.get_ref(i) {
            Ok(ValueRef::Null) => Err(format!("column {name} is NULL")),
            Ok(v) => Ok(v),
            Err(e) => Err(format!("column {name}: {e}")),
        }
    }

    fn text(&self, i: usize, name: &str) -> Result<String, String> {
        match self.value(i, name)? {
            ValueRef::Text(b) => std::str::from_utf8(b)
                .map(str::to_owned)
                .map_err(|_| format!("column {name} is not valid UTF-8")),
            _ => Err(format!("column {name} is not text")),
        }
    }

    fn int(&self, i: usize, name: &str) -> Result<i64, String> {
        match self.value(i, name)? {
            ValueRef::Integer(n) => Ok(n),
            _ => Err(format!("column {name} is not an integer")),
        }
    }

    fn unsigned(&self, i: usize, name: &str) -> Result<u64, String> {
        let n = self.int(i, name)?;
        u64::try_from(n).map_err(|_| format!("column {name} is negative ({n})"))
    }

    fn bytes(&self, i: usize, name: &str) -> Result<Vec<u8>, String> {
        match self.value(i, name)? {
            ValueRef::Blob(b) | ValueRef::Text(b) => Ok(b.to_vec()),
            _ => Err(format!("column {name} is not a blob")),
        }
    }

    fn uuid(&self, i: usize, name: &str) -> Result<Uuid, String> {
        match self.value(i, name)? {
            ValueRef::Blob(b) => {
                Uuid::from_slice(b).map_err(|_| format!("column {name} is not a 16-byte id"))
            }
            _ => Err(format!("column {name} is not a blob")),
        }
    }

    fn optional_uuid(&self, i: usize, name: &str) -> Result<Option<Uuid>, String> {
        match self.0.get_ref(i) {
            Ok(ValueRef::Null) => Ok(None),
            _ => self.uuid(i, name).map(Some),
        }
    }

    fn codec(&self, i: usize) -> Result<Codec, String> {
        let id = self.int(i, "codec")?;
        u8::try_from(id)
            .ok()
            .and_then(Codec::from_id)
            .ok_or_else(|| format!("unknown codec id {id}"))
    }
}

/// Decodes one `events` row (columns in [`EVENT_COLUMNS`] order) and checks
/// it against its checksum.
fn event_from_row(row: &Row<'_>) -> Result<RecordedEvent, StoreError> {
    let c = Cols(row);
    let rest = (|| -> Result<RecordedEvent, String> {
        let schema_version = c.int(5, "schema_version")?;
        Ok(RecordedEvent {
            position: 0,
            stream_type: String::new(),
            stream_id: String::new(),
            version: 0,
            event_type: String::new(),
            schema_version: u32::try_from(schema_version)
                .map_err(|_| format!("column schema_version is out of range ({schema_version})"))?,
            codec: c.codec(6)?,
            payload: c.bytes(7, "payload")?,
            metadata: EventMetadata {
                event_id: c.uuid(8, "event_id")?,
                recorded_at: Timestamp::from_micros(c.int(9, "recorded_at")?),
                command_id: c.uuid(10, "command_id")?,
                causation_id: c.optional_uuid(11, "causation_id")?,
                correlation_id: c.uuid(12, "correlation_id")?,
            },
        })
    })();
    let checksum = match row.get_ref(13) {
        Ok(ValueRef::Null) => Ok(None),
        _ => c.int(13, "checksum").map(Some),
    }
    .and_then(crate::store::checksum::from_column);
    sql::assemble(
        sql::DecodedRow {
            position: c.unsigned(0, "position"),
            stream_type: c.text(1, "stream_type"),
            stream_id: c.text(2, "stream_id"),
            version: c.unsigned(3, "version"),
            event_type: c.text(4, "event_type"),
            checksum,
            rest,
        },
        sql::JsonKept::Bytes,
    )
}

fn query_events(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    limit: usize,
    context: impl Fn() -> String,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let mut stmt = conn
        .prepare_cached(sql)
        .map_err(|e| backend_error(context(), e))?;
    let mut rows = stmt.query(params).map_err(|e| backend_error(context(), e))?;
    let mut out = Vec::with_capacity(limit.min(4096));
    while let Some(row) = rows.next().map_err(|e| backend_error(context(), e))? {
        out.push(event_from_row(row)?);
    }
    Ok(out)
}

fn to_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

#[async_trait]
impl EventStore for SqliteStore {
    async fn append(&self, request: AppendRequest) -> Result<Appended, StoreError> {
        validate_append(&request, self.inner.options.max_event_bytes)?;
        crate::fault::point("append.before")?;
        if i64::try_from(
            request
                .expected_version
                .saturating_add(request.events.len() as u64),
        )
        .is_err()
        {
            return Err(StoreError::Invalid {
                stream_type: request.stream_type.into_owned(),
                stream_id: request.stream_id.to_string(),
                reason: "the version would exceed the largest SQLite integer".into(),
            });
        }
        self.send(|reply| Command::Append { request, reply }).await?
    }

    async fn read_stream(
        &self,
        stream_type: &str,
        stream_id: &str,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let (stream_type, stream_id) = (stream_type.to_owned(), stream_id.to_owned());
        let columns = self.inner.columns;
        self.read(move |conn| {
            let sql = format!(
                "SELECT {columns} FROM events WHERE stream_type = ?1 AND stream_id = ?2 \
                 AND version >= ?3 ORDER BY version LIMIT ?4"
            );
            query_events(
                conn,
                &sql,
                params![stream_type, stream_id, sql::int(from_version), to_limit(limit)],
                limit,
                || format!("reading stream {stream_type}/{stream_id} from version {from_version}"),
            )
        })
        .await
    }

    async fn command_events(
        &self,
        stream_type: &str,
        stream_id: &str,
        command_id: Uuid,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let (stream_type, stream_id) = (stream_type.to_owned(), stream_id.to_owned());
        let columns = self.inner.columns;
        self.read(move |conn| {
            let sql = format!(
                "SELECT {columns} FROM events WHERE command_id = ?1 AND stream_type = ?2 \
                 AND stream_id = ?3 ORDER BY version"
            );
            query_events(
                conn,
                &sql,
                params![command_id.as_bytes().as_slice(), stream_type, stream_id],
                16,
                || format!("reading the events of command {command_id} in stream {stream_type}/{stream_id}"),
            )
        })
        .await
    }

    async fn read_all(&self, from_position: u64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let columns = self.inner.columns;
        self.read(move |conn| {
            let sql = format!("SELECT {columns} FROM events WHERE position >= ?1 ORDER BY position LIMIT ?2");
            query_events(
                conn,
                &sql,
                params![sql::int(from_position), to_limit(limit)],
                limit,
                || format!("reading the log from position {from_position}"),
            )
        })
        .await
    }

    async fn stream_version(&self, stream_type: &str, stream_id: &str) -> Result<u64, StoreError> {
        let (stream_type, stream_id) = (stream_type.to_owned(), stream_id.to_owned());
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT coalesce(max(version), 0) FROM events WHERE stream_type = ?1 AND stream_id = ?2",
            )
            .and_then(|mut s| s.query_row(params![stream_type, stream_id], |r| r.get::<_, i64>(0)))
            .map_err(|e| {
                backend_error(
                    format!("reading the version of stream {stream_type}/{stream_id}"),
                    e,
                )
            })
            .and_then(|v| unsigned(v, || format!("max(version) of stream {stream_type}/{stream_id}")))
        })
        .await
    }

    async fn head(&self) -> Result<u64, StoreError> {
        self.read(|conn| {
            conn.prepare_cached("SELECT coalesce(max(position), 0) FROM events")
                .and_then(|mut s| s.query_row([], |r| r.get::<_, i64>(0)))
                .map_err(|e| backend_error("reading the head", e))
                .and_then(|v| unsigned(v, || "max(position)".to_owned()))
        })
        .await
    }

    fn watch_head(&self) -> watch::Receiver<u64> {
        self.inner.head.subscribe()
    }

    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<(), StoreError> {
        crate::fault::point("snapshot.save.before")?;
        if i64::try_from(snapshot.version).is_err() {
            return Err(StoreError::Invalid {
                stream_type: snapshot.stream_type,
                stream_id: snapshot.stream_id,
                reason: "the snapshot version exceeds the largest SQLite integer".into(),
            });
        }
        self.send(|reply| Command::Snapshot { snapshot, reply }).await?
    }

    async fn load_snapshot(
        &self,
        stream_type: &str,
        stream_id: &str,
    ) -> Result<Option<Snapshot>, StoreError> {
        let (stream_type, stream_id) = (stream_type.to_owned(), stream_id.to_owned());
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT version, codec, payload FROM snapshots WHERE stream_type = ?1 AND stream_id = ?2",
                )
                .map_err(|e| backend_error("reading a snapshot", e))?;
            let row = stmt
                .query_row(params![stream_type, stream_id], |row| {
                    let c = Cols(row);
                    let version = c.unsigned(0, "version");
                    let rest = c.codec(1).and_then(|codec| Ok((codec, c.bytes(2, "payload")?)));
                    Ok((version, rest))
                })
                .optional()
                .map_err(|e| {
                    backend_error(
                        format!("reading the snapshot of stream {stream_type}/{stream_id}"),
                        e,
                    )
                })?;
            let Some((version, rest)) = row else {
                return Ok(None);
            };
            let corrupt = |version: u64, reason: String| StoreError::Corrupt {
                stream_type: stream_type.clone(),
                stream_id: stream_id.clone(),
                version,
                position: 0,
                event_type: None,
                reason: format!("snapshot: {reason}").into_boxed_str(),
            };
            let version = version.map_err(|r| corrupt(0, r))?;
            let (codec, payload) = rest.map_err(|r| corrupt(version, r))?;
            Ok(Some(Snapshot {
                stream_type: stream_type.clone(),
                stream_id: stream_id.clone(),
                version,
                codec,
                payload,
            }))
        })
        .await
    }

    fn codec(&self) -> Codec {
        self.inner.options.codec
    }

    fn backend(&self) -> &'static str {
        BACKEND
    }
}
