//! Consumer checkpoints and dead letters in PostgreSQL, in the events'
//! schema: `factum_consumer_checkpoints` and `factum_dead_letters`, with the
//! same columns as SQLite's. A checkpoint moves by compare-and-set
//! (`SELECT … FOR UPDATE`) in one transaction with the batch's letters.
//!
//! Several nodes share the tables; one runs each consumer: the runner holds a
//! session-level advisory lock keyed by the schema and the consumer's name
//! (see `postgres::lease`), taken over within about a second when its node dies.

use std::sync::Arc;

use async_trait::async_trait;
use uuid::Uuid;

use super::lease::{self, Conn};
use crate::consumer::backend::{LETTER_COLUMNS, LetterRow};
use crate::consumer::{ConsumerStore, ConsumerStoreError, DeadLetter, LetterState};
use crate::process::Lease;
use crate::sql::int;

const BACKEND: &str = "postgres";

const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS factum_consumer_checkpoints (
        consumer text   PRIMARY KEY,
        position bigint NOT NULL
    );
    CREATE TABLE IF NOT EXISTS factum_dead_letters (
        consumer    text    NOT NULL,
        position    bigint  NOT NULL,
        stream_type text    NOT NULL,
        stream_id   text    NOT NULL,
        version     bigint  NOT NULL,
        event_type  text    NOT NULL,
        event_id    uuid    NOT NULL,
        state       text    NOT NULL,
        attempts    integer NOT NULL,
        error       text    NOT NULL,
        reason      text,
        recorded_at bigint  NOT NULL,
        updated_at  bigint  NOT NULL,
        PRIMARY KEY (consumer, position)
    );";

/// A [`ConsumerStore`] in a PostgreSQL schema (the one the events are in).
#[derive(Clone)]
pub struct PostgresConsumerStore {
    inner: Arc<Inner>,
}

struct Inner {
    url: String,
    schema: String,
    conn: tokio::sync::Mutex<Conn>,
}

impl std::fmt::Debug for PostgresConsumerStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresConsumerStore")
            .field("schema", &self.inner.schema)
            .finish_non_exhaustive()
    }
}

fn err(context: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> ConsumerStoreError {
    let context = context.into();
    move |e| {
        // tokio-postgres displays a server error as "db error"; the message is in its source.
        let context = match e.as_db_error() {
            Some(db) => format!("{context} ({}: {})", db.code().code(), db.message()),
            None => context,
        };
        ConsumerStoreError::backend(BACKEND, context, e)
    }
}

fn letter_of(r: &tokio_postgres::Row) -> Result<DeadLetter, ConsumerStoreError> {
    let get = || err("reading a dead-letter row");
    let event_id: Uuid = r.try_get(6).map_err(get())?;
    let attempts: i32 = r.try_get(8).map_err(get())?;
    LetterRow {
        consumer: r.try_get(0).map_err(get())?,
        position: r.try_get(1).map_err(get())?,
        stream_type: r.try_get(2).map_err(get())?,
        stream_id: r.try_get(3).map_err(get())?,
        version: r.try_get(4).map_err(get())?,
        event_type: r.try_get(5).map_err(get())?,
        event_id: event_id.as_bytes().to_vec(),
        state: r.try_get(7).map_err(get())?,
        attempts: i64::from(attempts),
        error: r.try_get(9).map_err(get())?,
        reason: r.try_get(10).map_err(get())?,
        recorded_at: r.try_get(11).map_err(get())?,
        updated_at: r.try_get(12).map_err(get())?,
    }
    .check(BACKEND)
}

fn checkpoint_of(consumer: &str, stored: Option<i64>) -> Result<u64, ConsumerStoreError> {
    stored.map_or(Ok(0), |p| {
        u64::try_from(p).map_err(|_| {
            ConsumerStoreError::corrupt(
                BACKEND,
                format!("factum_consumer_checkpoints, consumer {consumer}: negative position {p}"),
            )
        })
    })
}

const UPSERT_LETTER: &str =
    "INSERT INTO factum_dead_letters (consumer, position, stream_type, stream_id, version, \
     event_type, event_id, state, attempts, error, reason, recorded_at, updated_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
     ON CONFLICT (consumer, position) DO UPDATE SET state = excluded.state, attempts = excluded.attempts,
         error = excluded.error, reason = excluded.reason, updated_at = excluded.updated_at";

async fn upsert(tx: &tokio_postgres::Transaction<'_>, l: &DeadLetter) -> Result<u64, tokio_postgres::Error> {
    let attempts = i32::try_from(l.attempts).unwrap_or(i32::MAX);
    tx.execute(
        UPSERT_LETTER,
        &[
            &l.consumer,
            &int(l.position),
            &l.stream_type,
            &l.stream_id,
            &int(l.version),
            &l.event_type,
            &l.event_id,
            &l.state.as_str(),
            &attempts,
            &l.error,
            &l.reason,
            &l.recorded_at.as_micros(),
            &l.updated_at.as_micros(),
        ],
    )
    .await
}

impl PostgresConsumerStore {
    /// Connects to `url` and creates the consumer tables if needed in the
    /// schema `factum`, where a [`PostgresStore`](super::PostgresStore) keeps its events by default.
    pub async fn connect(url: &str) -> Result<Self, ConsumerStoreError> {
        Self::connect_in_schema(url, "factum").await
    }

    /// Like [`connect`](Self::connect), with the tables in `schema` (created
    /// if needed): the schema of the app's [`PostgresStore`](super::PostgresStore).
    pub async fn connect_in_schema(url: &str, schema: &str) -> Result<Self, ConsumerStoreError> {
        let conn = lease::open_in_schema(url, schema, "consumers", SCHEMA)
            .await
            .map_err(|(context, e)| err(context)(e))?;
        Ok(PostgresConsumerStore {
            inner: Arc::new(Inner {
                url: url.to_owned(),
                schema: schema.to_owned(),
                conn: tokio::sync::Mutex::new(conn),
            }),
        })
    }

    /// The schema the tables are in.
    pub fn schema(&self) -> &str {
        &self.inner.schema
    }

    /// The connection, reconnected first if it was lost.
    async fn conn(&self) -> Result<tokio::sync::MutexGuard<'_, Conn>, ConsumerStoreError> {
        let mut conn = self.inner.conn.lock().await;
        lease::ensure_connected(&mut conn, &self.inner.url, &self.inner.schema)
            .await
            .map_err(err("reconnecting"))?;
        Ok(conn)
    }
}

#[async_trait]
impl ConsumerStore for PostgresConsumerStore {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    async fn checkpoint(&self, consumer: &str) -> Result<u64, ConsumerStoreError> {
        let conn = self.conn().await?;
        let row = conn
            .client
            .query_opt(
                "SELECT position FROM factum_consumer_checkpoints WHERE consumer = $1",
                &[&consumer],
            )
            .await
            .map_err(err(format!("reading the checkpoint of consumer {consumer}")))?;
        let stored = row
            .map(|r| r.try_get::<_, i64>(0))
            .transpose()
            .map_err(err("reading a checkpoint row"))?;
        checkpoint_of(consumer, stored)
    }

    async fn checkpoints(&self) -> Result<Vec<(String, u64)>, ConsumerStoreError> {
        let conn = self.conn().await?;
        let rows = conn
            .client
            .query(
                "SELECT consumer, position FROM factum_consumer_checkpoints ORDER BY consumer COLLATE \"C\"",
                &[],
            )
            .await
            .map_err(err("listing consumer checkpoints"))?;
        rows.iter()
            .map(|r| {
                let name: String = r.try_get(0).map_err(err("reading a checkpoint row"))?;
                let p: i64 = r.try_get(1).map_err(err("reading a checkpoint row"))?;
                let p = checkpoint_of(&name, Some(p))?;
                Ok((name, p))
            })
            .collect()
    }

    async fn commit(
        &self,
        consumer: &str,
        from: u64,
        to: u64,
        letters: Vec<DeadLetter>,
    ) -> Result<(), ConsumerStoreError> {
        let context = format!("committing consumer {consumer} from {from} to {to}");
        let mut conn = self.conn().await?;
        let tx = conn.client.transaction().await.map_err(err(&context))?;
        // Create the row first so two runners serialise on its lock.
        tx.execute(
            "INSERT INTO factum_consumer_checkpoints (consumer, position) VALUES ($1, 0) ON CONFLICT DO NOTHING",
            &[&consumer],
        )
        .await
        .map_err(err(&context))?;
        let found: i64 = tx
            .query_one(
                "SELECT position FROM factum_consumer_checkpoints WHERE consumer = $1 FOR UPDATE",
                &[&consumer],
            )
            .await
            .and_then(|r| r.try_get(0))
            .map_err(err(&context))?;
        let found = checkpoint_of(consumer, Some(found))?;
        if found != from {
            return Err(ConsumerStoreError::CheckpointMoved {
                consumer: consumer.to_owned(),
                expected: from,
                found,
            });
        }
        tx.execute(
            "UPDATE factum_consumer_checkpoints SET position = $2 WHERE consumer = $1",
            &[&consumer, &int(to)],
        )
        .await
        .map_err(err(&context))?;
        for letter in &letters {
            upsert(&tx, letter).await.map_err(err(format!(
                "recording the dead letter of consumer {consumer} at position {}",
                letter.position
            )))?;
        }
        tx.commit().await.map_err(err(&context))
    }

    async fn update(&self, letter: DeadLetter, expected: LetterState) -> Result<(), ConsumerStoreError> {
        let context = format!(
            "updating the dead letter of consumer {} at position {}",
            letter.consumer, letter.position
        );
        let mut conn = self.conn().await?;
        let tx = conn.client.transaction().await.map_err(err(&context))?;
        let found = tx
            .query_opt(
                "SELECT state FROM factum_dead_letters WHERE consumer = $1 AND position = $2 FOR UPDATE",
                &[&letter.consumer, &int(letter.position)],
            )
            .await
            .map_err(err(&context))?;
        let Some(found) = found else {
            return Err(ConsumerStoreError::NoLetter {
                consumer: letter.consumer,
                position: letter.position,
            });
        };
        let found: String = found.try_get(0).map_err(err(&context))?;
        let found = LetterState::parse(&found).ok_or_else(|| {
            ConsumerStoreError::corrupt(
                BACKEND,
                format!(
                    "factum_dead_letters, consumer {} position {}: column state {found:?} is not a letter state",
                    letter.consumer, letter.position
                ),
            )
        })?;
        if found != expected {
            return Err(ConsumerStoreError::LetterMoved {
                consumer: letter.consumer,
                position: letter.position,
                expected,
                found,
            });
        }
        upsert(&tx, &letter).await.map_err(err(&context))?;
        tx.commit().await.map_err(err(&context))
    }

    async fn letters(
        &self,
        consumer: &str,
        states: Option<&[LetterState]>,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, ConsumerStoreError> {
        let states: Option<Vec<&'static str>> = states.map(|s| s.iter().map(|s| s.as_str()).collect());
        let after = after.map_or(-1, int);
        let limit = int(limit as u64);
        let conn = self.conn().await?;
        let rows = conn
            .client
            .query(
                &format!(
                    "SELECT {LETTER_COLUMNS} FROM factum_dead_letters
                     WHERE consumer = $1 AND position > $2 AND ($3::text[] IS NULL OR state = ANY($3))
                     ORDER BY position LIMIT $4"
                ),
                &[&consumer, &after, &states, &limit],
            )
            .await
            .map_err(err(format!("listing the dead letters of consumer {consumer}")))?;
        rows.iter().map(letter_of).collect()
    }

    async fn try_lease(&self, consumer: &str) -> Result<Option<Box<dyn Lease>>, ConsumerStoreError> {
        let key = format!("{}/{consumer}", self.inner.schema);
        lease::try_lease(
            &self.inner.url,
            Some(&self.inner.schema),
            lease::CONSUMER_LOCKS,
            &key,
        )
        .await
        .map_err(err(format!("taking the runner lock of consumer {consumer}")))
    }
}
