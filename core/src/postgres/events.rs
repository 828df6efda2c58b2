//! The shared event store for several app nodes: PostgreSQL (feature `postgres`).
//!
//! Optimistic concurrency is the database's: a unique
//! `(stream_type, stream_id, version)` constraint, plus a version check in the
//! same statement so nobody can append past a version they have not seen.
//!
//! # Gap-safe global feed: positions are assigned in commit order
//!
//! The classic hazard: transaction A takes position 10 from a sequence, B takes
//! 11 and commits first; a reader that sees 11 and moves on never sees 10. This
//! store does not use a sequence. Positions come from a one-row counter table
//! (`head`), incremented by the append statement itself: the row lock it takes
//! is held until commit, so the next appender can only read the counter after
//! the previous one has committed (and become visible — PostgreSQL publishes a
//! commit before it releases the transaction's locks). Hence positions are
//! handed out in commit order, a reader that sees position p already sees every
//! position below p, and `read_all` is a plain `position >= $1` scan. An aborted
//! append rolls the counter back with it, so positions are also gap-free.
//!
//! The price is that appends serialize on the counter from increment to commit.
//! Each node therefore batches: one writer task per store drains every queued
//! append into ONE statement (one round trip, one commit, one WAL flush for the
//! batch), so throughput scales with concurrency instead of being one commit
//! per event. The alternative — a sequence plus a reader filter on
//! `pg_current_xact_id() < pg_snapshot_xmin(pg_current_snapshot())` — lets
//! appends commit in parallel, but it is only gap-safe when the feed is ordered
//! by transaction id, not by position (a later transaction id can hold an
//! earlier position), and this store's contract is a gap-free `u64` position.
//!
//! # More than one batch in flight
//!
//! [`PostgresOptions::batches_in_flight`] lets the writer run several batch
//! statements at once, each on its own connection: the next one is already at
//! the server, past its version checks and waiting for the `head` row lock,
//! when the previous commit releases it. The counter still orders them, so
//! the argument above holds unchanged (it is the one that makes two nodes
//! safe). Two batches in flight never share a stream: a statement's snapshot
//! may predate the other batch's commit, so it would read the stream's old
//! version. The default is one: the lock is held through each commit's WAL
//! flush, so commits are one at a time whatever is in flight, and on the
//! measured machine splitting the waiting appends into more, smaller commits
//! cost more flushes than the overlapped round trips saved. What pays instead
//! is a bigger batch: before forming one the writer yields while appends keep
//! arriving (`Writer::gather`).
//!
//! # Payloads
//!
//! A JSON-codec payload is stored as `jsonb` (queryable in SQL; key order and
//! whitespace are PostgreSQL's on the way back, the value is the same), a
//! binary-codec payload as `bytea`; exactly one of `payload_json` /
//! `payload_bin` is set per row. Snapshots are stored as `bytea`.
//!
//! An append whose payloads reach 256 KiB (`LARGE_APPEND_BYTES`) is not
//! batched: it runs as its own statement on its own connection, so the
//! transfer of a large event never holds up the small appends of other
//! streams. Its statement still takes the `head` row lock for the time the
//! server needs to store its row, like every append.
//!
//! `watch_head` is fed by this node's own commits, by `LISTEN`/`NOTIFY` (a
//! statement trigger notifies on every append, from any node), and by a slow
//! poll in case a notification is lost. A listening connection that is lost
//! (terminated, a failover, a network blip) is replaced on a fresh connection,
//! at once and then with a doubling backoff (10 ms up to 5 s) while that fails,
//! and the head is read as soon as it listens again: other nodes' appends
//! keep waking this node's tails within a round trip, not at the poll.

use std::collections::{HashMap, HashSet};
use std::error::Error as StdError;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio_postgres::error::SqlState;
use tokio_postgres::{AsyncMessage, NoTls, Row};
use uuid::Uuid;

use crate::codec::Codec;
use crate::sql;
use crate::store::{
    AppendRequest, Appended, EventMetadata, EventStore, RecordedEvent, Snapshot, StoreError, validate_append,
};
use crate::time::Timestamp;

const BACKEND: &str = "postgres";

/// Schema migrations; `{s}` is the store's schema name. Migration `n` takes the
/// schema from version `n - 1` to `n`.
const MIGRATIONS: &[&str] = &[
    "
    CREATE TABLE {s}.events (
        position       bigint   PRIMARY KEY,
        stream_type    text     NOT NULL,
        stream_id      text     NOT NULL,
        version        bigint   NOT NULL,
        event_type     text     NOT NULL,
        schema_version bigint   NOT NULL,
        codec          smallint NOT NULL,
        payload_json   jsonb,
        payload_bin    bytea,
        event_id       uuid     NOT NULL,
        recorded_at    bigint   NOT NULL,
        command_id     uuid     NOT NULL,
        causation_id   uuid,
        correlation_id uuid     NOT NULL,
        UNIQUE (stream_type, stream_id, version)
    );
    CREATE TABLE {s}.head (
        id       integer PRIMARY KEY CHECK (id = 1),
        position bigint  NOT NULL
    );
    INSERT INTO {s}.head (id, position) VALUES (1, 0);
    CREATE TABLE {s}.snapshots (
        stream_type text     NOT NULL,
        stream_id   text     NOT NULL,
        version     bigint   NOT NULL,
        codec       smallint NOT NULL,
        payload     bytea    NOT NULL,
        PRIMARY KEY (stream_type, stream_id)
    );
    CREATE FUNCTION {s}.notify_append() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pg_notify('{channel}', '');
        RETURN NULL;
    END $$;
    CREATE TRIGGER notify_append AFTER INSERT ON {s}.events
        FOR EACH STATEMENT EXECUTE FUNCTION {s}.notify_append();
",
    "
    -- Finding a command's events, so a re-sent command id returns its original outcome.
    CREATE INDEX events_by_command ON {s}.events (command_id);
",
    "
    -- A checksum per record (`crate::store::checksum`), checked on every read.
    -- Records stored before it have none (NULL) and are read unchecked; adding
    -- a nullable column without a default rewrites no row.
    ALTER TABLE {s}.events ADD COLUMN checksum bigint;
",
];

/// One batch of appends, one statement. Parameters: per request ($1..$3) and
/// per event ($4..$16). See the module docs for why `head` assigns positions.
const APPEND_SQL: &str = "
WITH req AS MATERIALIZED (
    SELECT r.idx, r.stream_type, r.stream_id, r.expected,
           (SELECT coalesce(max(e.version), 0) FROM {s}.events e
             WHERE e.stream_type = r.stream_type AND e.stream_id = r.stream_id) AS actual
    FROM unnest($1::text[], $2::text[], $3::int8[]) WITH ORDINALITY AS r(stream_type, stream_id, expected, idx)
),
ev AS MATERIALIZED (
    SELECT row_number() OVER (ORDER BY u.req, u.ord) AS n, u.req,
           req.stream_type, req.stream_id, req.expected + u.ord AS version,
           u.event_type, u.schema_version, u.codec, u.payload_json, u.payload_bin,
           u.event_id, u.recorded_at, u.command_id, u.causation_id, u.correlation_id, u.checksum
    FROM unnest($4::int8[], $5::int8[], $6::text[], $7::int8[], $8::int2[], $9::text[], $10::bytea[],
                $11::uuid[], $12::int8[], $13::uuid[], $14::uuid[], $15::uuid[], $16::int8[])
         AS u(req, ord, event_type, schema_version, codec, payload_json, payload_bin,
              event_id, recorded_at, command_id, causation_id, correlation_id, checksum)
    JOIN req ON req.idx = u.req AND req.actual = req.expected
),
h AS (
    UPDATE {s}.head SET position = position + (SELECT count(*) FROM ev)
    WHERE id = 1 AND EXISTS (SELECT 1 FROM ev)
    RETURNING position - (SELECT count(*) FROM ev) AS base
),
ins AS (
    INSERT INTO {s}.events (position, stream_type, stream_id, version, event_type, schema_version, codec,
                            payload_json, payload_bin, event_id, recorded_at, command_id, causation_id,
                            correlation_id, checksum)
    SELECT h.base + ev.n, ev.stream_type, ev.stream_id, ev.version, ev.event_type, ev.schema_version,
           ev.codec, ev.payload_json::jsonb, ev.payload_bin, ev.event_id, ev.recorded_at, ev.command_id,
           ev.causation_id, ev.correlation_id, ev.checksum
    FROM ev CROSS JOIN h
)
-- Each request's first and last position from its events' numbers (the
-- INSERT above runs to completion whether or not this reads it), not by
-- scanning the inserted rows once per request, which grew with requests x
-- events per batch.
SELECT req.idx, req.actual, h.base + g.first_n, h.base + g.last_n
FROM req
LEFT JOIN (SELECT ev.req, min(ev.n) AS first_n, max(ev.n) AS last_n FROM ev GROUP BY ev.req) g ON g.req = req.idx
LEFT JOIN h ON true
ORDER BY req.idx";

/// From this many payload bytes on, an append does not join the batch
/// writer's statement but runs alone (see `append`): one 50 MB event in a
/// batch held every small append of that batch for its whole transfer (1.87 s
/// measured); below this, sharing a round trip and a commit is the gain.
const LARGE_APPEND_BYTES: usize = 256 << 10;

/// How many batches a node has in flight by default (see
/// [`PostgresOptions::batches_in_flight`]): one. Measured on the shared
/// 2-core machine (loadgen, 16 writers, interleaved runs), two in flight gave
/// 2.4–4.9 k events/s where one gave 4.0–9.9 k, four 1.4–2.5 k: the `head`
/// row lock is held through each commit's WAL flush, so commits stay one at
/// a time whatever is in flight, and a second batch only splits the waiting
/// appends into two commits (two flushes) instead of one.
const DEFAULT_IN_FLIGHT: usize = 1;

/// The most times the writer yields to let more appends arrive before it
/// forms a batch (see `Writer::gather`); the gain (1.5–2.6× in six pairs of
/// the runs above) comes from the first few.
const GATHER_YIELDS: usize = 8;

const EVENT_COLUMNS: &str = "position, stream_type, stream_id, version, event_type, schema_version, codec, \
     payload_json::text, payload_bin, event_id, recorded_at, command_id, causation_id, correlation_id, checksum";

fn backend_error(
    context: impl Into<String>,
    source: impl Into<Box<dyn StdError + Send + Sync>>,
) -> StoreError {
    StoreError::backend(BACKEND, context, source)
}

/// A stored integer of table `events` as a position or version, or `CorruptTable`.
fn unsigned(stored: i64, row: impl FnOnce() -> String) -> Result<u64, StoreError> {
    sql::unsigned(stored, BACKEND, "events", row)
}

/// Settings for [`PostgresStore`]; start with [`PostgresStore::connect`] and
/// `.await` it (or call [`open`](PostgresOptions::open)).
#[derive(Clone, Debug)]
pub struct PostgresOptions {
    url: String,
    schema: String,
    codec: Codec,
    pool_size: usize,
    max_batch: usize,
    in_flight: usize,
    poll_interval: Duration,
    max_event_bytes: usize,
}

impl PostgresOptions {
    /// The PostgreSQL schema the store's tables live in (`factum` by default),
    /// created if missing. Letters, digits and `_`, not starting with a digit.
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = schema.into();
        self
    }

    /// The codec new events and snapshots are written with; JSON by default.
    pub fn codec(mut self, codec: Codec) -> Self {
        self.codec = codec;
        self
    }

    /// The most connections the store opens (16 by default; one more listens for appends).
    pub fn pool_size(mut self, size: usize) -> Self {
        self.pool_size = size.max(2);
        self
    }

    /// The most append requests one batch statement takes (512 by default).
    pub fn max_batch(mut self, max_batch: usize) -> Self {
        self.max_batch = max_batch.max(1);
        self
    }

    /// The most batches this node has in flight at once, each a statement on
    /// a connection of its own (1 by default; at least 1). With one, a batch
    /// waits for the previous one's answer; with more, the next statement is
    /// already at the server, waiting for the `head` row lock, when the
    /// previous commit releases it. Positions stay gap-free either way (the
    /// lock orders the commits); more than one pays when commit round trips,
    /// not WAL flushes, bound the rate (a remote server with a fast disk).
    pub fn batches_in_flight(mut self, batches: usize) -> Self {
        self.in_flight = batches.max(1);
        self
    }

    /// The largest event payload an append may carry, in bytes
    /// ([`DEFAULT_MAX_EVENT_BYTES`](crate::store::DEFAULT_MAX_EVENT_BYTES),
    /// 4 MiB, by default); a larger one is refused with
    /// [`StoreError::Invalid`] naming its size and the limit, before it is sent.
    pub fn max_event_bytes(mut self, bytes: usize) -> Self {
        self.max_event_bytes = bytes;
        self
    }

    /// How often the head is polled in case a notification is lost (1 s by default).
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// Connects, creates or migrates the schema, and starts the writer and listener tasks.
    pub async fn open(self) -> Result<PostgresStore, StoreError> {
        PostgresStore::open_with(self).await
    }
}

impl IntoFuture for PostgresOptions {
    type Output = Result<PostgresStore, StoreError>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.open())
    }
}

/// The PostgreSQL [`EventStore`]. Cloning shares the pool and the writer.
#[derive(Clone)]
pub struct PostgresStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    schema: String,
    codec: Codec,
    commands: mpsc::UnboundedSender<Pending>,
    /// Appends of [`LARGE_APPEND_BYTES`] or more run here, on the caller's
    /// task and a connection of their own, never in the batch writer.
    large: Writer,
    max_event_bytes: usize,
    head: Arc<watch::Sender<u64>>,
    sql: Sql,
    _tasks: Vec<AbortOnDrop>,
}

/// An append whose transaction a test holds open: see
/// [`PostgresStore::hold_append`].
#[cfg(feature = "fault-points")]
#[doc(hidden)]
pub struct HeldAppend {
    client: Option<deadpool_postgres::Client>,
    /// The server process of the held transaction (for `pg_blocking_pids`).
    pub backend_pid: i32,
    /// The first position the held append took.
    pub first_position: u64,
    /// The last position the held append took.
    pub last_position: u64,
}

#[cfg(feature = "fault-points")]
impl HeldAppend {
    /// Commits the held append.
    pub async fn commit(mut self) -> Result<(), StoreError> {
        let Some(client) = self.client.take() else {
            return Ok(());
        };
        client
            .batch_execute("COMMIT")
            .await
            .map_err(|e| backend_error("committing a held append", e))
    }
}

#[cfg(feature = "fault-points")]
impl Drop for HeldAppend {
    fn drop(&mut self) {
        // Never back into the pool with a transaction open: closing the
        // connection rolls it back.
        if let Some(client) = self.client.take() {
            drop(deadpool_postgres::Object::take(client));
        }
    }
}

struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The statements, with the schema name filled in once.
struct Sql {
    append: String,
    read_stream: String,
    read_all: String,
    stream_version: String,
    head: String,
    save_snapshot: String,
    load_snapshot: String,
    stored_ids: String,
    command_events: String,
}

impl Sql {
    fn new(s: &str) -> Sql {
        Sql {
            append: APPEND_SQL.replace("{s}", s),
            read_stream: format!(
                "SELECT {EVENT_COLUMNS} FROM {s}.events WHERE stream_type = $1 AND stream_id = $2 \
                 AND version >= $3 ORDER BY version LIMIT $4"
            ),
            read_all: format!(
                "SELECT {EVENT_COLUMNS} FROM {s}.events WHERE position >= $1 ORDER BY position LIMIT $2"
            ),
            stream_version: format!(
                "SELECT coalesce(max(version), 0) FROM {s}.events WHERE stream_type = $1 AND stream_id = $2"
            ),
            head: format!("SELECT position FROM {s}.head WHERE id = 1"),
            save_snapshot: format!(
                "INSERT INTO {s}.snapshots AS old (stream_type, stream_id, version, codec, payload) \
                 VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (stream_type, stream_id) DO UPDATE SET \
                   version = excluded.version, codec = excluded.codec, payload = excluded.payload \
                 WHERE excluded.version > old.version"
            ),
            load_snapshot: format!(
                "SELECT version, codec, payload FROM {s}.snapshots WHERE stream_type = $1 AND stream_id = $2"
            ),
            command_events: format!(
                "SELECT {EVENT_COLUMNS} FROM {s}.events WHERE command_id = $1 AND stream_type = $2 \
                 AND stream_id = $3 ORDER BY version"
            ),
            stored_ids: format!(
                "SELECT position, event_id FROM {s}.events WHERE stream_type = $1 AND stream_id = $2 \
                 AND version > $3 AND version <= $4 ORDER BY version"
            ),
        }
    }
}

struct Pending {
    request: AppendRequest,
    /// Each event's checksum, computed by the caller's task (not the one
    /// writer's): a JSON payload's canonical form costs a parse.
    checksums: Vec<u32>,
    reply: oneshot::Sender<Result<Appended, StoreError>>,
}

fn valid_schema_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && name.len() <= 50
}

impl PostgresStore {
    /// Options for a store on the database at `url`
    /// (`postgres://user@host:port/db`); `.await` them to connect:
    /// `PostgresStore::connect(url).schema("app").await?`.
    pub fn connect(url: impl Into<String>) -> PostgresOptions {
        PostgresOptions {
            url: url.into(),
            schema: "factum".into(),
            codec: Codec::Json,
            pool_size: 16,
            max_batch: 512,
            in_flight: DEFAULT_IN_FLIGHT,
            poll_interval: Duration::from_secs(1),
            max_event_bytes: crate::store::DEFAULT_MAX_EVENT_BYTES,
        }
    }

    /// The schema the store's tables live in.
    pub fn schema(&self) -> &str {
        &self.inner.schema
    }

    async fn open_with(options: PostgresOptions) -> Result<PostgresStore, StoreError> {
        if !valid_schema_name(&options.schema) {
            return Err(backend_error(
                "connecting",
                format!(
                    "`{}` is not a usable schema name (lowercase letters, digits and `_`, at most 50)",
                    options.schema
                ),
            ));
        }
        let config = tokio_postgres::Config::from_str(&options.url)
            .map_err(|e| backend_error("parsing the connection URL", e))?;
        // The batch statement's plan depends on no parameter value (every
        // array is unnested whole), yet PostgreSQL plans it afresh for each
        // of its first five runs on a connection and keeps doing so whenever
        // its generic-plan estimate looks worse: 0.5–1.2 ms of server CPU for
        // a 16-request batch (EXPLAIN ANALYZE), paid while appends queue. The
        // store's other statements are single-index lookups whose generic
        // plan is their custom one.
        let mut pool_config = config.clone();
        let generic = "-c plan_cache_mode=force_generic_plan";
        let session_options = match pool_config.get_options() {
            Some(given) => format!("{given} {generic}"),
            None => generic.to_owned(),
        };
        pool_config.options(&session_options);
        let manager = Manager::from_config(
            pool_config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size)
            .build()
            .map_err(|e| backend_error("building the connection pool", e))?;
        let schema = options.schema.clone();
        let channel = format!("factum_{schema}");
        migrate(&pool, &schema, &channel).await?;
        let sql = Sql::new(&schema);

        let head_now = {
            let client = pool.get().await.map_err(|e| backend_error("connecting", e))?;
            let row = client
                .query_one(&sql.head, &[])
                .await
                .map_err(|e| backend_error("reading the head", e))?;
            unsigned(
                row.try_get::<_, i64>(0)
                    .map_err(|e| backend_error("reading the head", e))?,
                || "head".to_owned(),
            )?
        };
        let head = Arc::new(watch::channel(head_now).0);
        let (commands, queue) = mpsc::unbounded_channel();
        let writer = Writer {
            pool: pool.clone(),
            append_sql: sql.append.clone(),
            version_sql: sql.stream_version.clone(),
            stored_ids_sql: sql.stored_ids.clone(),
            head: head.clone(),
            max_batch: options.max_batch,
            in_flight: options.in_flight,
        };
        let large = writer.clone();
        let writer_task = tokio::spawn(writer.run(queue));
        let listening = start_listening(&config, &channel).await;
        let listener_task = tokio::spawn(listen(
            listening,
            config,
            channel,
            pool.clone(),
            sql.head.clone(),
            head.clone(),
            options.poll_interval,
        ));
        Ok(PostgresStore {
            inner: Arc::new(Inner {
                pool,
                schema,
                codec: options.codec,
                commands,
                large,
                max_event_bytes: options.max_event_bytes,
                head,
                sql,
                _tasks: vec![AbortOnDrop(writer_task), AbortOnDrop(listener_task)],
            }),
        })
    }

    /// Test support (feature `fault-points`): runs `request`'s append — the
    /// store's own batch statement — in a transaction that stays open until
    /// [`HeldAppend::commit`], so a test can hold a commit at a known point
    /// (positions taken, not yet committed) while later appends try to pass
    /// it. Dropping the hold closes its connection, which rolls it back.
    #[cfg(feature = "fault-points")]
    #[doc(hidden)]
    pub async fn hold_append(&self, request: AppendRequest) -> Result<HeldAppend, StoreError> {
        validate_append(&request, self.inner.max_event_bytes)?;
        let checksums = checksums_of(&request)?;
        let client = self.client().await?;
        let fail = |e: tokio_postgres::Error| backend_error_for(&request, e);
        client.batch_execute("BEGIN").await.map_err(fail)?;
        let backend_pid: i32 = client
            .query_one("SELECT pg_backend_pid()", &[])
            .await
            .and_then(|row| row.try_get(0))
            .map_err(fail)?;
        let pending = Pending {
            request,
            checksums,
            // Answered here, not through the writer.
            reply: oneshot::channel().0,
        };
        let outcome = Writer::execute_on(&client, &self.inner.sql.append, &[&pending])
            .await
            .map_err(|e| backend_error_for(&pending.request, e.failure()))?
            .pop()
            .ok_or_else(|| backend_error_for(&pending.request, "the append returned no row"))?;
        if outcome.actual != pending.request.expected_version {
            return Err(StoreError::conflict(&pending.request, outcome.actual));
        }
        let (first_position, last_position) = outcome.positions.unwrap_or((0, 0));
        Ok(HeldAppend {
            client: Some(client),
            backend_pid,
            first_position,
            last_position,
        })
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.inner
            .pool
            .get()
            .await
            .map_err(|e| backend_error("taking a connection from the pool", e))
    }

    async fn query_events(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
        context: impl Fn() -> String,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(sql)
            .await
            .map_err(|e| backend_error(context(), e))?;
        let rows = client
            .query(&stmt, params)
            .await
            .map_err(|e| backend_error(context(), e))?;
        rows.iter().map(event_from_row).collect()
    }
}

async fn migrate(pool: &Pool, schema: &str, channel: &str) -> Result<(), StoreError> {
    let fail = |e: tokio_postgres::Error| backend_error(format!("migrating schema {schema}"), e);
    let mut client = pool.get().await.map_err(|e| backend_error("connecting", e))?;
    let tx = client.transaction().await.map_err(fail)?;
    // Serializes nodes that start at the same time on the same schema.
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext('factum schema ' || $1))",
        &[&schema],
    )
    .await
    .map_err(fail)?;
    tx.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS {schema};
         CREATE TABLE IF NOT EXISTS {schema}.schema_version (version integer NOT NULL);"
    ))
    .await
    .map_err(fail)?;
    let current: i32 = tx
        .query_one(
            &format!("SELECT coalesce(max(version), 0) FROM {schema}.schema_version"),
            &[],
        )
        .await
        .and_then(|r| r.try_get(0))
        .map_err(fail)?;
    let latest = MIGRATIONS.len() as i32;
    if current > latest {
        return Err(backend_error(
            format!("opening schema {schema}"),
            format!(
                "the schema has version {current}, newer than the {latest} this build of factum knows; \
                 use a newer factum"
            ),
        ));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current.max(0) as usize) {
        tx.batch_execute(&sql.replace("{s}", schema).replace("{channel}", channel))
            .await
            .map_err(fail)?;
        tx.execute(
            &format!("INSERT INTO {schema}.schema_version (version) VALUES ($1)"),
            &[&(i as i32 + 1)],
        )
        .await
        .map_err(fail)?;
    }
    tx.commit().await.map_err(fail)
}

fn raise_head(head: &watch::Sender<u64>, to: u64) {
    head.send_if_modified(|h| {
        let newer = to > *h;
        if newer {
            *h = to;
        }
        newer
    });
}

/// A connection that has run `LISTEN` on the store's channel, and the
/// notifications it receives. Kept alive as long as the listener task.
struct Listening {
    _client: tokio_postgres::Client,
    _driver: AbortOnDrop,
    notified: mpsc::UnboundedReceiver<()>,
}

/// The first wait before listening again after the listening connection was
/// lost; it doubles after each failed attempt, up to [`RELISTEN_MAX`]. A
/// terminated backend (`pg_terminate_backend`, a failover) is usually
/// replaced by the first attempt, made at once.
const RELISTEN_FIRST: Duration = Duration::from_millis(10);
/// The longest wait between two attempts to listen again (the poll still
/// runs meanwhile, at its own interval).
const RELISTEN_MAX: Duration = Duration::from_secs(5);
/// How long one attempt to connect the listener may take before it counts
/// as failed, when the URL sets no `connect_timeout` of its own.
const LISTEN_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Opens a connection and runs `LISTEN` on it; `None` when either fails.
/// Best effort: without it the poll still finds other nodes' appends.
async fn start_listening(config: &tokio_postgres::Config, channel: &str) -> Option<Listening> {
    let mut config = config.clone();
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(LISTEN_CONNECT_TIMEOUT);
    }
    let (client, mut connection) = config.connect(NoTls).await.ok()?;
    let (notified_tx, notified) = mpsc::unbounded_channel::<()>();
    // Ends, closing `notified`, when the connection does (terminated, lost).
    let driver = AbortOnDrop(tokio::spawn(async move {
        while let Some(Ok(message)) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
            if matches!(message, AsyncMessage::Notification(_)) && notified_tx.send(()).is_err() {
                break;
            }
        }
    }));
    client.batch_execute(&format!("LISTEN {channel}")).await.ok()?;
    Some(Listening {
        _client: client,
        _driver: driver,
        notified,
    })
}

/// Follows other nodes' appends: notifications, plus a poll. The first
/// `LISTEN` runs before `open` returns (`listening`), so no append made after
/// `open` is missed. When the listening connection is lost, the task listens
/// again on a fresh connection (at once, then with a doubling backoff while
/// that fails) and reads the head right after, so appends notified while
/// nobody listened are not left to the slow poll.
async fn listen(
    listening: Option<Listening>,
    config: tokio_postgres::Config,
    channel: String,
    pool: Pool,
    head_sql: String,
    head: Arc<watch::Sender<u64>>,
    poll: Duration,
) {
    let mut listening = listening;
    let mut backoff = RELISTEN_FIRST;
    loop {
        match listening.as_mut() {
            Some(l) => {
                tokio::select! {
                    message = l.notified.recv() => {
                        if message.is_none() {
                            // The connection is gone: listen again at once.
                            listening = None;
                            backoff = RELISTEN_FIRST;
                            continue;
                        }
                    }
                    _ = tokio::time::sleep(poll) => {}
                }
            }
            None => match start_listening(&config, &channel).await {
                // Listening again; the head read below catches up on what
                // was appended while nobody listened.
                Some(l) => listening = Some(l),
                None => {
                    tokio::time::sleep(backoff.min(poll)).await;
                    backoff = (backoff * 2).min(RELISTEN_MAX);
                }
            },
        }
        let Ok(client) = pool.get().await else { continue };
        if let Ok(row) = client.query_one(&head_sql, &[]).await {
            // A negative head (a damaged counter) raises nothing; reads report it.
            if let Some(position) = row.try_get::<_, i64>(0).ok().and_then(|p| u64::try_from(p).ok()) {
                raise_head(&head, position);
            }
        }
    }
}

/// This node's appender: one statement per batch of queued appends.
#[derive(Clone)]
struct Writer {
    pool: Pool,
    append_sql: String,
    version_sql: String,
    stored_ids_sql: String,
    head: Arc<watch::Sender<u64>>,
    max_batch: usize,
    /// The most batches running at once, each on its own connection.
    in_flight: usize,
}

/// A stream's type and id.
/// (The request's own names: a borrowed type and the cache's `Arc` id, so keying costs no allocation.)
type StreamKey = (std::borrow::Cow<'static, str>, Arc<str>);

/// The appends one statement carries: one leader per stream, and the
/// requests that follow a leader (see [`Writer::form_batch`]).
struct Batch {
    leaders: Vec<Pending>,
    followers: Vec<(usize, Pending)>,
}

/// What the batch statement answered for one request.
struct RequestOutcome {
    actual: u64,
    positions: Option<(u64, u64)>,
}

impl Writer {
    /// Forms batches from the queue and keeps up to `in_flight` of them
    /// running at once, each on a connection of its own (see the module docs,
    /// "More than one batch in flight").
    async fn run(self, mut queue: mpsc::UnboundedReceiver<Pending>) {
        let writer = Arc::new(self);
        let mut deferred: Vec<Pending> = Vec::new();
        // The streams of the batches in flight, and which batch holds each.
        let mut busy: HashSet<StreamKey> = HashSet::new();
        let mut flights: HashMap<tokio::task::Id, Vec<StreamKey>> = HashMap::new();
        let mut running: JoinSet<Vec<Pending>> = JoinSet::new();
        let mut open = true;
        loop {
            while running.len() < writer.in_flight {
                writer.take_queued(&mut queue, &mut deferred, &mut open);
                if !deferred.is_empty() {
                    writer.gather(&mut queue, &mut deferred, &mut open).await;
                }
                let Some((batch, streams)) = writer.form_batch(&mut deferred, &busy) else {
                    break;
                };
                busy.extend(streams.iter().cloned());
                let w = writer.clone();
                let id = running.spawn(async move { w.commit(batch).await }).id();
                flights.insert(id, streams);
            }
            tokio::select! {
                done = running.join_next_with_id(), if !running.is_empty() => {
                    let (id, retry) = match done {
                        Some(Ok((id, retry))) => (id, retry),
                        // A batch task that panicked dropped its replies:
                        // its callers see `Closed`. Its streams are free again.
                        Some(Err(e)) => (e.id(), Vec::new()),
                        None => continue,
                    };
                    for stream in flights.remove(&id).unwrap_or_default() {
                        busy.remove(&stream);
                    }
                    deferred.splice(0..0, retry);
                }
                p = queue.recv(), if open && running.len() < writer.in_flight => match p {
                    Some(p) => deferred.push(p),
                    None => open = false,
                },
                else => return,
            }
        }
    }

    /// Lets the callers that are about to append do so before the batch is
    /// formed: yields to the runtime (up to [`GATHER_YIELDS`] times) while
    /// each yield brings more requests. The callers answered by the last batch
    /// send their next appends a few microseconds later; without this the
    /// batch leaves with the first of them and the rest wait a whole commit.
    /// No timer: a lone caller costs one yield.
    async fn gather(
        &self,
        queue: &mut mpsc::UnboundedReceiver<Pending>,
        deferred: &mut Vec<Pending>,
        open: &mut bool,
    ) {
        for _ in 0..GATHER_YIELDS {
            if deferred.len() >= self.max_batch {
                return;
            }
            tokio::task::yield_now().await;
            let before = deferred.len();
            self.take_queued(queue, deferred, open);
            if deferred.len() == before {
                return;
            }
        }
    }

    /// Moves what is queued now into `deferred`, up to a batch.
    fn take_queued(
        &self,
        queue: &mut mpsc::UnboundedReceiver<Pending>,
        deferred: &mut Vec<Pending>,
        open: &mut bool,
    ) {
        while *open && deferred.len() < self.max_batch {
            match queue.try_recv() {
                Ok(p) => deferred.push(p),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => *open = false,
            }
        }
    }

    /// The next batch from `deferred` (in queue order), leaving there what
    /// must wait; `None` when nothing can go now. One leader per stream per
    /// batch. A later request with the same expected version conflicts if the
    /// leader moved the stream (it appended, or found the stream elsewhere),
    /// so it follows the leader and is answered from its outcome; if the
    /// leader failed without moving the stream, the follower is tried in the
    /// next batch. Any other request for the stream waits a batch, and so does
    /// every request for a stream that a batch in flight holds: its statement's
    /// snapshot may be taken before that batch commits, and it would read the
    /// stream's old version (a false conflict, or a unique violation that
    /// costs the whole batch a one-by-one retry).
    fn form_batch(
        &self,
        deferred: &mut Vec<Pending>,
        busy: &HashSet<StreamKey>,
    ) -> Option<(Batch, Vec<StreamKey>)> {
        let mut leaders: Vec<Pending> = Vec::new();
        let mut followers: Vec<(usize, Pending)> = Vec::new();
        let mut by_stream: HashMap<StreamKey, usize> = HashMap::new();
        let mut next = Vec::new();
        for p in deferred.drain(..) {
            let key = (p.request.stream_type.clone(), p.request.stream_id.clone());
            if busy.contains(&key) {
                next.push(p);
                continue;
            }
            match by_stream.get(&key) {
                None if leaders.len() < self.max_batch => {
                    by_stream.insert(key, leaders.len());
                    leaders.push(p);
                }
                Some(&i) if leaders[i].request.expected_version == p.request.expected_version => {
                    followers.push((i, p));
                }
                _ => next.push(p),
            }
        }
        *deferred = next;
        if leaders.is_empty() {
            return None;
        }
        Some((Batch { leaders, followers }, by_stream.into_keys().collect()))
    }

    /// Runs one batch and answers its callers; returns the followers to try
    /// again, first in the next batch.
    async fn commit(&self, batch: Batch) -> Vec<Pending> {
        let Batch { leaders, followers } = batch;
        let results = self.append_batch(&leaders).await;
        let mut final_versions: Vec<Option<u64>> = Vec::with_capacity(leaders.len());
        let mut top = 0;
        for (p, result) in leaders.into_iter().zip(results) {
            // Only a version the store reported is known; after any other
            // failure the stream may be anywhere, including unmoved.
            final_versions.push(match &result {
                Ok(a) => Some(a.version),
                Err(StoreError::Conflict { actual, .. }) => Some(*actual),
                Err(_) => None,
            });
            if let Ok(a) = &result {
                top = top.max(a.last_position);
            }
            crate::fault::hit("append.after");
            let _ = p.reply.send(result);
        }
        let mut retry = Vec::new();
        for (leader, p) in followers {
            match final_versions.get(leader).copied().flatten() {
                Some(actual) if actual != p.request.expected_version => {
                    let _ = p.reply.send(Err(StoreError::conflict(&p.request, actual)));
                }
                // Never a conflict with expected == actual: the follower
                // may well succeed, so it goes first in the next batch.
                _ => retry.push(p),
            }
        }
        // Batches in flight answer in any order; the head only rises, and
        // a reader that follows it reads rows the server has committed
        // (positions are taken in commit order whichever answer comes first).
        if top > 0 {
            raise_head(&self.head, top);
        }
        retry
    }

    /// Appends distinct-stream requests in one statement. If the server
    /// refused the statement (so nothing of it committed), retries them one by
    /// one so only the request at fault fails; if the outcome is unknown (the
    /// connection was lost, perhaps after the commit), fails every request
    /// with `Backend`, never `Conflict`: a retry would find the batch's own
    /// events and a conflict would make the caller apply its command twice.
    async fn append_batch(&self, batch: &[Pending]) -> Vec<Result<Appended, StoreError>> {
        if batch.is_empty() {
            return Vec::new();
        }
        let requests: Vec<&AppendRequest> = batch.iter().map(|p| &p.request).collect();
        let pendings: Vec<&Pending> = batch.iter().collect();
        match self.execute(&pendings).await {
            Ok(outcomes) => {
                let mut out = Vec::with_capacity(batch.len());
                for (request, outcome) in requests.iter().zip(outcomes) {
                    out.push(self.answer(request, outcome).await);
                }
                out
            }
            // Another node won a race (unique violation), or one request's
            // data was refused (e.g. a `\u0000` jsonb cannot hold): the
            // statement rolled back, so retry one by one and only the request
            // at fault fails.
            Err(ExecError::Refused(_)) if batch.len() > 1 => {
                let mut out = Vec::with_capacity(batch.len());
                for p in batch {
                    out.push(self.append_alone(p).await);
                }
                out
            }
            Err(e) if e.is_unique_violation() => vec![self.append_alone(&batch[0]).await],
            Err(e) => {
                let failure = e.failure();
                requests
                    .iter()
                    .map(|r| backend_error_for(r, failure.clone()))
                    .map(Err)
                    .collect()
            }
        }
    }

    async fn append_alone(&self, pending: &Pending) -> Result<Appended, StoreError> {
        let request = &pending.request;
        for _ in 0..3 {
            match self.execute(&[pending]).await {
                Ok(mut outcomes) => match outcomes.pop() {
                    Some(o) => return self.answer(request, o).await,
                    None => return Err(backend_error_for(request, "the append returned no row")),
                },
                Err(e) if e.is_unique_violation() => {
                    // Someone else committed this version meanwhile: report what they left.
                    let actual = self.current_version(request).await?;
                    if actual != request.expected_version {
                        return self.conflict_or_acknowledge(request, actual).await;
                    }
                }
                Err(e) => return Err(backend_error_for(request, e.failure())),
            }
        }
        Err(backend_error_for(
            request,
            "the append kept colliding with other writers",
        ))
    }

    /// What the statement's row means for `request`.
    async fn answer(&self, request: &AppendRequest, outcome: RequestOutcome) -> Result<Appended, StoreError> {
        if outcome.actual != request.expected_version {
            return self.conflict_or_acknowledge(request, outcome.actual).await;
        }
        let (first_position, last_position) = outcome.positions.unwrap_or((0, 0));
        Ok(Appended {
            version: request.expected_version + request.events.len() as u64,
            first_position,
            last_position,
            acknowledged: false,
        })
    }

    /// The stream is at `actual`, not at the expected version. If it is
    /// exactly where this append would have left it and the events there are
    /// this request's own (event ids are deterministic per command), the
    /// append already committed — an earlier attempt whose answer was lost —
    /// and is acknowledged; anything else is a conflict.
    async fn conflict_or_acknowledge(
        &self,
        request: &AppendRequest,
        actual: u64,
    ) -> Result<Appended, StoreError> {
        if !sql::may_have_committed(request, actual) {
            return Err(StoreError::conflict(request, actual));
        }
        let client = self
            .pool
            .get()
            .await
            .map_err(|e| backend_error("taking a connection from the pool", e))?;
        let rows = client
            .query(
                &self.stored_ids_sql,
                &[
                    &request.stream_type,
                    &&*request.stream_id,
                    &sql::int(request.expected_version),
                    &sql::int(actual),
                ],
            )
            .await
            .map_err(|e| backend_error_for(request, e))?;
        let mut stored = Vec::with_capacity(rows.len());
        for row in &rows {
            let position: i64 = row.try_get(0).map_err(|e| backend_error_for(request, e))?;
            let id: Uuid = row.try_get(1).map_err(|e| backend_error_for(request, e))?;
            let position = unsigned(position, || {
                format!("position of stream {}/{}", request.stream_type, request.stream_id)
            })?;
            stored.push((position, id));
        }
        sql::acknowledge(request, actual, &stored)
    }

    async fn current_version(&self, request: &AppendRequest) -> Result<u64, StoreError> {
        let client = self
            .pool
            .get()
            .await
            .map_err(|e| backend_error("taking a connection from the pool", e))?;
        let row = client
            .query_one(&self.version_sql, &[&request.stream_type, &&*request.stream_id])
            .await
            .map_err(|e| backend_error_for(request, e))?;
        let v: i64 = row.try_get(0).map_err(|e| backend_error_for(request, e))?;
        unsigned(v, || {
            format!(
                "max(version) of stream {}/{}",
                request.stream_type, request.stream_id
            )
        })
    }

    async fn execute(&self, pendings: &[&Pending]) -> Result<Vec<RequestOutcome>, ExecError> {
        let client = self.pool.get().await.map_err(ExecError::unsent)?;
        Writer::execute_on(&client, &self.append_sql, pendings).await
    }

    /// Runs the batch statement on `client`: committed at once in the
    /// writer's autocommit session, or left open in a test's explicit
    /// transaction ([`PostgresStore::hold_append`]).
    async fn execute_on(
        client: &deadpool_postgres::Client,
        append_sql: &str,
        pendings: &[&Pending],
    ) -> Result<Vec<RequestOutcome>, ExecError> {
        let requests: Vec<&AppendRequest> = pendings.iter().map(|p| &p.request).collect();
        let stmt = client
            .prepare_cached(append_sql)
            .await
            .map_err(ExecError::unsent)?;
        let mut stream_types = Vec::with_capacity(requests.len());
        let mut stream_ids = Vec::with_capacity(requests.len());
        let mut expected = Vec::with_capacity(requests.len());
        let n: usize = requests.iter().map(|r| r.events.len()).sum();
        let mut req = Vec::with_capacity(n);
        let mut ord = Vec::with_capacity(n);
        let mut event_type = Vec::with_capacity(n);
        let mut schema_version = Vec::with_capacity(n);
        let mut codec = Vec::with_capacity(n);
        let mut payload_json: Vec<Option<&str>> = Vec::with_capacity(n);
        let mut payload_bin: Vec<Option<&[u8]>> = Vec::with_capacity(n);
        let mut event_id = Vec::with_capacity(n);
        let mut recorded_at = Vec::with_capacity(n);
        let mut command_id = Vec::with_capacity(n);
        let mut causation_id: Vec<Option<Uuid>> = Vec::with_capacity(n);
        let mut correlation_id = Vec::with_capacity(n);
        let mut checksum: Vec<i64> = Vec::with_capacity(n);
        for p in pendings {
            checksum.extend(p.checksums.iter().map(|&c| i64::from(c)));
        }
        for (i, r) in requests.iter().enumerate() {
            stream_types.push(&*r.stream_type);
            stream_ids.push(&*r.stream_id);
            expected.push(sql::int(r.expected_version));
            for (j, e) in r.events.iter().enumerate() {
                req.push(i as i64 + 1);
                ord.push(j as i64 + 1);
                event_type.push(&*e.event_type);
                schema_version.push(i64::from(e.schema_version));
                codec.push(i16::from(e.codec.id()));
                match e.codec {
                    // Checked to be UTF-8 JSON in `append`.
                    Codec::Json => {
                        payload_json.push(std::str::from_utf8(&e.payload).ok());
                        payload_bin.push(None);
                    }
                    Codec::Postcard => {
                        payload_json.push(None);
                        payload_bin.push(Some(e.payload.as_slice()));
                    }
                }
                event_id.push(e.metadata.event_id);
                recorded_at.push(e.metadata.recorded_at.as_micros());
                command_id.push(e.metadata.command_id);
                causation_id.push(e.metadata.causation_id);
                correlation_id.push(e.metadata.correlation_id);
            }
        }
        let rows = client
            .query(
                &stmt,
                &[
                    &stream_types,
                    &stream_ids,
                    &expected,
                    &req,
                    &ord,
                    &event_type,
                    &schema_version,
                    &codec,
                    &payload_json,
                    &payload_bin,
                    &event_id,
                    &recorded_at,
                    &command_id,
                    &causation_id,
                    &correlation_id,
                    &checksum,
                ],
            )
            .await
            .map_err(ExecError::from_statement)?;
        // From here on the statement has committed: a surprise is an unknown
        // outcome, never a refusal.
        if rows.len() != requests.len() {
            return Err(ExecError::unknown(format!(
                "the append answered {} rows for {} requests",
                rows.len(),
                requests.len()
            )));
        }
        rows.iter()
            .map(|row| {
                let unknown = |e: tokio_postgres::Error| {
                    ExecError::Unknown(Failure::new(
                        "the append's answer was unreadable",
                        Some(Arc::new(e)),
                    ))
                };
                // A negative version or position is an unknown outcome naming
                // it, never a clamped one.
                let unsigned = |column: &str, v: i64| {
                    u64::try_from(v).map_err(|_| {
                        ExecError::unknown(format!("the append answered a negative {column} ({v})"))
                    })
                };
                let actual: i64 = row.try_get(1).map_err(unknown)?;
                let first: Option<i64> = row.try_get(2).map_err(unknown)?;
                let last: Option<i64> = row.try_get(3).map_err(unknown)?;
                let positions = match first.zip(last) {
                    Some((f, l)) => Some((unsigned("position", f)?, unsigned("position", l)?)),
                    None => None,
                };
                Ok(RequestOutcome {
                    actual: unsigned("version", actual)?,
                    positions,
                })
            })
            .collect()
    }
}

/// Why a batch statement did not answer, by what it proves about the commit.
enum ExecError {
    /// The server refused the statement with an error: it rolled back and
    /// nothing of it committed.
    Refused(Arc<tokio_postgres::Error>),
    /// It failed before the statement was sent: nothing committed.
    Unsent(Failure),
    /// The outcome is unknown: the connection was lost (perhaps after the
    /// commit) or the answer was unreadable. It may have committed.
    Unknown(Failure),
}

impl ExecError {
    fn from_statement(e: tokio_postgres::Error) -> ExecError {
        // An ERROR-level report aborts the (implicit) transaction and leaves
        // the session usable. No report at all (I/O, closed connection), a
        // FATAL/PANIC one, a connection exception or "statement completion
        // unknown" say nothing certain about the commit.
        let refused = e.as_db_error().is_some_and(|db| {
            db.severity() == "ERROR"
                && !db.code().code().starts_with("08")
                && *db.code() != SqlState::T_R_STATEMENT_COMPLETION_UNKNOWN
        });
        if refused {
            ExecError::Refused(Arc::new(e))
        } else {
            ExecError::Unknown(Failure::new(
                "the append may or may not have committed",
                Some(Arc::new(e)),
            ))
        }
    }

    fn unsent(e: impl StdError + Send + Sync + 'static) -> ExecError {
        ExecError::Unsent(Failure::new("the append was not sent", Some(Arc::new(e))))
    }

    fn unknown(message: impl Into<String>) -> ExecError {
        ExecError::Unknown(Failure::new(message, None))
    }

    fn is_unique_violation(&self) -> bool {
        matches!(self, ExecError::Refused(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION))
    }

    /// What the caller of a failed append is told: the server's report kept
    /// as the source (SQLSTATE and message, reachable by downcasting to
    /// `tokio_postgres::Error`), never flattened into a string.
    fn failure(&self) -> Failure {
        match self {
            ExecError::Refused(e) => Failure::new("the server refused the append", Some(e.clone())),
            ExecError::Unsent(f) | ExecError::Unknown(f) => f.clone(),
        }
    }
}

/// A failed append as its callers see it: what it means for the append, and
/// the error behind it. One statement answers a whole batch, so one failure
/// is shared by every request of it (hence the `Arc`).
#[derive(Clone, Debug)]
struct Failure {
    meaning: String,
    source: Option<Arc<dyn StdError + Send + Sync>>,
}

impl Failure {
    fn new(meaning: impl Into<String>, source: Option<Arc<dyn StdError + Send + Sync>>) -> Failure {
        Failure {
            meaning: meaning.into(),
            source,
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.meaning)?;
        let Some(source) = &self.source else { return Ok(()) };
        // The server's own words and SQLSTATE, e.g. `ERROR 22021: invalid
        // byte sequence for encoding "UTF8": 0x00`, not tokio_postgres's
        // bare "db error".
        match source
            .downcast_ref::<tokio_postgres::Error>()
            .and_then(|e| e.as_db_error())
        {
            Some(db) => {
                write!(f, ": {} {}: {}", db.severity(), db.code().code(), db.message())?;
                match db.detail() {
                    Some(detail) => write!(f, " ({detail})"),
                    None => Ok(()),
                }
            }
            None => write!(f, ": {source}"),
        }
    }
}

impl StdError for Failure {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn StdError + 'static))
    }
}

/// A failure of the append of `request`, naming its stream and expected version.
/// Each event's checksum, computed by the caller's task (not the one
/// writer's). The canonical form parses a JSON payload: one that is not JSON,
/// which jsonb would refuse (failing the whole batch), is refused for this
/// request alone.
fn checksums_of(request: &AppendRequest) -> Result<Vec<u32>, StoreError> {
    let mut checksums = Vec::with_capacity(request.events.len());
    for (i, e) in request.events.iter().enumerate() {
        let version = request.expected_version + i as u64 + 1;
        match sql::checksum_of(request, version, e, sql::JsonKept::Value) {
            Ok(checksum) => checksums.push(checksum),
            Err(_) => {
                return Err(StoreError::Invalid {
                    stream_type: request.stream_type.to_string(),
                    stream_id: request.stream_id.to_string(),
                    reason: format!(
                        "event {} ({}) has a JSON codec but its payload is not JSON",
                        i + 1,
                        e.event_type
                    ),
                });
            }
        }
    }
    Ok(checksums)
}

fn backend_error_for(
    request: &AppendRequest,
    source: impl Into<Box<dyn StdError + Send + Sync>>,
) -> StoreError {
    backend_error(
        format!(
            "appending to stream {}/{} at version {}",
            crate::store::shown(&request.stream_type),
            crate::store::shown(&request.stream_id),
            request.expected_version
        ),
        source,
    )
}

/// Decodes one `events` row (columns in [`EVENT_COLUMNS`] order) and checks
/// it against its checksum; a column that is NULL where the schema forbids
/// it, or of the wrong type, is `Corrupt`.
fn event_from_row(row: &Row) -> Result<RecordedEvent, StoreError> {
    fn get<'a, T: tokio_postgres::types::FromSql<'a>>(
        row: &'a Row,
        i: usize,
        name: &str,
    ) -> Result<T, String> {
        row.try_get::<_, Option<T>>(i)
            .map_err(|e| format!("column {name}: {e}"))?
            .ok_or_else(|| format!("column {name} is NULL"))
    }
    let unsigned = |i: usize, name: &str| {
        get::<i64>(row, i, name)
            .and_then(|v| u64::try_from(v).map_err(|_| format!("column {name} is negative ({v})")))
    };
    let rest = (|| -> Result<RecordedEvent, String> {
        let schema_version = get::<i64>(row, 5, "schema_version")?;
        let codec_id = get::<i16>(row, 6, "codec")?;
        let codec = u8::try_from(codec_id)
            .ok()
            .and_then(Codec::from_id)
            .ok_or_else(|| format!("unknown codec id {codec_id}"))?;
        let payload = match codec {
            Codec::Json => get::<String>(row, 7, "payload_json")?.into_bytes(),
            Codec::Postcard => get::<Vec<u8>>(row, 8, "payload_bin")?,
        };
        Ok(RecordedEvent {
            position: 0,
            stream_type: String::new(),
            stream_id: String::new(),
            version: 0,
            event_type: String::new(),
            schema_version: u32::try_from(schema_version)
                .map_err(|_| format!("column schema_version is out of range ({schema_version})"))?,
            codec,
            payload,
            metadata: EventMetadata {
                event_id: get(row, 9, "event_id")?,
                recorded_at: Timestamp::from_micros(get(row, 10, "recorded_at")?),
                command_id: get(row, 11, "command_id")?,
                causation_id: row
                    .try_get::<_, Option<Uuid>>(12)
                    .map_err(|e| format!("column causation_id: {e}"))?,
                correlation_id: get(row, 13, "correlation_id")?,
            },
        })
    })();
    let checksum = row
        .try_get::<_, Option<i64>>(14)
        .map_err(|e| format!("column checksum: {e}"))
        .and_then(crate::store::checksum::from_column);
    sql::assemble(
        sql::DecodedRow {
            position: unsigned(0, "position"),
            stream_type: get(row, 1, "stream_type"),
            stream_id: get(row, 2, "stream_id"),
            version: unsigned(3, "version"),
            event_type: get(row, 4, "event_type"),
            checksum,
            rest,
        },
        sql::JsonKept::Value,
    )
}

#[async_trait]
impl EventStore for PostgresStore {
    async fn append(&self, request: AppendRequest) -> Result<Appended, StoreError> {
        validate_append(&request, self.inner.max_event_bytes)?;
        crate::fault::point("append.before")?;
        let invalid = |reason: String| StoreError::Invalid {
            stream_type: request.stream_type.to_string(),
            stream_id: request.stream_id.to_string(),
            reason,
        };
        if i64::try_from(
            request
                .expected_version
                .saturating_add(request.events.len() as u64),
        )
        .is_err()
        {
            return Err(invalid(
                "the version would exceed the largest PostgreSQL bigint".into(),
            ));
        }
        let checksums = checksums_of(&request)?;
        let payload_bytes: usize = request.events.iter().map(|e| e.payload.len()).sum();
        if payload_bytes >= LARGE_APPEND_BYTES {
            // Its own statement on its own connection: the batch writer, and
            // every small append queued in it, never waits for its transfer.
            crate::fault::point("append.large.before")?;
            let pending = Pending {
                request,
                checksums,
                // Answered here, not through the writer.
                reply: oneshot::channel().0,
            };
            let result = self.inner.large.append_alone(&pending).await;
            if let Ok(appended) = &result {
                raise_head(&self.inner.head, appended.last_position);
            }
            return result;
        }
        let (reply, answer) = oneshot::channel();
        self.inner
            .commands
            .send(Pending {
                request,
                checksums,
                reply,
            })
            .map_err(|_| StoreError::Closed { backend: BACKEND })?;
        answer
            .await
            .map_err(|_| StoreError::Closed { backend: BACKEND })?
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
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.query_events(
            &self.inner.sql.read_stream,
            &[&stream_type, &stream_id, &sql::int(from_version), &limit],
            || format!("reading stream {stream_type}/{stream_id} from version {from_version}"),
        )
        .await
    }

    async fn command_events(
        &self,
        stream_type: &str,
        stream_id: &str,
        command_id: Uuid,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.query_events(
            &self.inner.sql.command_events,
            &[&command_id, &stream_type, &stream_id],
            || format!("reading the events of command {command_id} in stream {stream_type}/{stream_id}"),
        )
        .await
    }

    async fn read_all(&self, from_position: u64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.query_events(
            &self.inner.sql.read_all,
            &[&sql::int(from_position), &limit],
            || format!("reading the log from position {from_position}"),
        )
        .await
    }

    async fn stream_version(&self, stream_type: &str, stream_id: &str) -> Result<u64, StoreError> {
        let context = || format!("reading the version of stream {stream_type}/{stream_id}");
        let client = self.client().await?;
        let row = client
            .query_one(&self.inner.sql.stream_version, &[&stream_type, &stream_id])
            .await
            .map_err(|e| backend_error(context(), e))?;
        let v: i64 = row.try_get(0).map_err(|e| backend_error(context(), e))?;
        unsigned(v, || format!("max(version) of stream {stream_type}/{stream_id}"))
    }

    async fn head(&self) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one(&self.inner.sql.head, &[])
            .await
            .map_err(|e| backend_error("reading the head", e))?;
        let v: i64 = row.try_get(0).map_err(|e| backend_error("reading the head", e))?;
        unsigned(v, || "head".to_owned())
    }

    fn watch_head(&self) -> watch::Receiver<u64> {
        self.inner.head.subscribe()
    }

    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<(), StoreError> {
        crate::fault::point("snapshot.save.before")?;
        let context = || {
            format!(
                "saving the snapshot of {}/{} at version {}",
                snapshot.stream_type, snapshot.stream_id, snapshot.version
            )
        };
        let client = self.client().await?;
        client
            .execute(
                &self.inner.sql.save_snapshot,
                &[
                    &snapshot.stream_type,
                    &snapshot.stream_id,
                    &sql::int(snapshot.version),
                    &i16::from(snapshot.codec.id()),
                    &snapshot.payload,
                ],
            )
            .await
            .map_err(|e| backend_error(context(), e))?;
        Ok(())
    }

    async fn load_snapshot(
        &self,
        stream_type: &str,
        stream_id: &str,
    ) -> Result<Option<Snapshot>, StoreError> {
        let context = || format!("reading the snapshot of stream {stream_type}/{stream_id}");
        let client = self.client().await?;
        let Some(row) = client
            .query_opt(&self.inner.sql.load_snapshot, &[&stream_type, &stream_id])
            .await
            .map_err(|e| backend_error(context(), e))?
        else {
            return Ok(None);
        };
        let corrupt = |version: u64, reason: String| StoreError::Corrupt {
            stream_type: stream_type.to_owned(),
            stream_id: stream_id.to_owned(),
            version,
            position: 0,
            event_type: None,
            reason: format!("snapshot: {reason}").into_boxed_str(),
        };
        let version: i64 = row.try_get(0).map_err(|e| corrupt(0, e.to_string()))?;
        let version =
            u64::try_from(version).map_err(|_| corrupt(0, format!("negative version {version}")))?;
        let codec_id: i16 = row.try_get(1).map_err(|e| corrupt(version, e.to_string()))?;
        let codec = u8::try_from(codec_id)
            .ok()
            .and_then(Codec::from_id)
            .ok_or_else(|| corrupt(version, format!("unknown codec id {codec_id}")))?;
        let payload: Vec<u8> = row.try_get(2).map_err(|e| corrupt(version, e.to_string()))?;
        Ok(Some(Snapshot {
            stream_type: stream_type.to_owned(),
            stream_id: stream_id.to_owned(),
            version,
            codec,
            payload,
        }))
    }

    fn codec(&self) -> Codec {
        self.inner.codec
    }

    fn backend(&self) -> &'static str {
        BACKEND
    }
}
