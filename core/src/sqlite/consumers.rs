//! Consumer checkpoints and dead letters in a SQLite file:
//! `factum_consumer_checkpoints` (one row per consumer) and
//! `factum_dead_letters` (keyed by consumer and position).
//!
//! The tables belong in the events file ([`AppBuilder::sqlite`](crate::AppBuilder::sqlite)
//! puts them there), at `synchronous=FULL`: a lost checkpoint would make a
//! consumer repeat its side effects, and a lost dead letter would be an
//! event skipped silently. A checkpoint moves by compare-and-set in one
//! transaction with the batch's letters. One process runs the consumers of a
//! file (a local lease).

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::conn::{Connections, Joining};
use crate::consumer::backend::{LETTER_COLUMNS, LetterRow};
use crate::consumer::{ConsumerStore, ConsumerStoreError, DeadLetter, LetterState};
use crate::process::{Lease, LocalLease};
use crate::sql::int;

const BACKEND: &str = "sqlite";

const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS factum_consumer_checkpoints (
        consumer TEXT    PRIMARY KEY,
        position INTEGER NOT NULL
    );
    CREATE TABLE IF NOT EXISTS factum_dead_letters (
        consumer    TEXT    NOT NULL,
        position    INTEGER NOT NULL,
        stream_type TEXT    NOT NULL,
        stream_id   TEXT    NOT NULL,
        version     INTEGER NOT NULL,
        event_type  TEXT    NOT NULL,
        event_id    BLOB    NOT NULL,
        state       TEXT    NOT NULL,
        attempts    INTEGER NOT NULL,
        error       TEXT    NOT NULL,
        reason      TEXT,
        recorded_at INTEGER NOT NULL,
        updated_at  INTEGER NOT NULL,
        PRIMARY KEY (consumer, position)
    ) WITHOUT ROWID;";

/// A [`ConsumerStore`] in a SQLite file (the events file, normally).
#[derive(Clone)]
pub struct SqliteConsumerStore {
    inner: Arc<Connections>,
}

impl std::fmt::Debug for SqliteConsumerStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteConsumerStore")
            .field("path", &self.inner.path())
            .finish()
    }
}

fn err(context: impl Into<String>) -> impl FnOnce(rusqlite::Error) -> ConsumerStoreError {
    let context = context.into();
    move |e| ConsumerStoreError::backend(BACKEND, context, e)
}

fn letter_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<LetterRow> {
    Ok(LetterRow {
        consumer: r.get(0)?,
        position: r.get(1)?,
        stream_type: r.get(2)?,
        stream_id: r.get(3)?,
        version: r.get(4)?,
        event_type: r.get(5)?,
        event_id: r.get(6)?,
        state: r.get(7)?,
        attempts: r.get(8)?,
        error: r.get(9)?,
        reason: r.get(10)?,
        recorded_at: r.get(11)?,
        updated_at: r.get(12)?,
    })
}

impl SqliteConsumerStore {
    /// Opens (creating if needed) the consumer tables in the SQLite file at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, ConsumerStoreError> {
        let inner = Connections::open(path.as_ref(), "FULL", SCHEMA, |context, e| {
            ConsumerStoreError::backend(BACKEND, context, e)
        })?;
        Ok(SqliteConsumerStore {
            inner: Arc::new(inner),
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        self.inner.path()
    }

    async fn with<T: Send + 'static>(
        &self,
        write: bool,
        f: impl FnOnce(&mut Connection) -> Result<T, ConsumerStoreError> + Send + 'static,
    ) -> Result<T, ConsumerStoreError> {
        self.inner.with(write, f).await
    }
}

fn stored_checkpoint(c: &Connection, consumer: &str) -> Result<u64, ConsumerStoreError> {
    let stored: Option<i64> = c
        .prepare_cached("SELECT position FROM factum_consumer_checkpoints WHERE consumer = ?1")
        .and_then(|mut s| s.query_row([consumer], |r| r.get(0)).optional())
        .map_err(err(format!("reading the checkpoint of consumer {consumer}")))?;
    stored.map_or(Ok(0), |p| {
        u64::try_from(p).map_err(|_| {
            ConsumerStoreError::corrupt(
                BACKEND,
                format!("factum_consumer_checkpoints, consumer {consumer}: negative position {p}"),
            )
        })
    })
}

fn insert_letter(c: &Connection, l: &DeadLetter) -> rusqlite::Result<usize> {
    c.prepare_cached(&format!(
        "INSERT OR REPLACE INTO factum_dead_letters ({LETTER_COLUMNS})
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
    ))?
    .execute(params![
        l.consumer,
        int(l.position),
        l.stream_type,
        l.stream_id,
        int(l.version),
        l.event_type,
        l.event_id.as_bytes().as_slice(),
        l.state.as_str(),
        i64::from(l.attempts),
        l.error,
        l.reason,
        l.recorded_at.as_micros(),
        l.updated_at.as_micros(),
    ])
}

#[async_trait]
impl ConsumerStore for SqliteConsumerStore {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    async fn checkpoint(&self, consumer: &str) -> Result<u64, ConsumerStoreError> {
        let consumer = consumer.to_owned();
        self.with(false, move |c| stored_checkpoint(c, &consumer)).await
    }

    async fn checkpoints(&self) -> Result<Vec<(String, u64)>, ConsumerStoreError> {
        self.with(false, |c| {
            let rows: Vec<(String, i64)> = c
                .prepare_cached(
                    "SELECT consumer, position FROM factum_consumer_checkpoints ORDER BY consumer",
                )
                .and_then(|mut s| {
                    s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                        .collect::<Result<_, _>>()
                })
                .map_err(err("listing consumer checkpoints"))?;
            rows.into_iter()
                .map(|(name, p)| {
                    let p = u64::try_from(p).map_err(|_| {
                        ConsumerStoreError::corrupt(
                            BACKEND,
                            format!("factum_consumer_checkpoints, consumer {name}: negative position {p}"),
                        )
                    })?;
                    Ok((name, p))
                })
                .collect()
        })
        .await
    }

    async fn commit(
        &self,
        consumer: &str,
        from: u64,
        to: u64,
        letters: Vec<DeadLetter>,
    ) -> Result<(), ConsumerStoreError> {
        let consumer = consumer.to_owned();
        self.with(true, move |c| {
            let context = || format!("committing consumer {consumer} from {from} to {to}");
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(err(context()))?;
            let found = stored_checkpoint(&tx, &consumer)?;
            if found != from {
                return Err(ConsumerStoreError::CheckpointMoved {
                    consumer,
                    expected: from,
                    found,
                });
            }
            tx.prepare_cached(
                "INSERT INTO factum_consumer_checkpoints (consumer, position) VALUES (?1, ?2)
                 ON CONFLICT (consumer) DO UPDATE SET position = excluded.position",
            )
            .and_then(|mut s| s.execute(params![consumer, int(to)]))
            .map_err(err(context()))?;
            for letter in &letters {
                insert_letter(&tx, letter).map_err(err(format!(
                    "recording the dead letter of consumer {consumer} at position {}",
                    letter.position
                )))?;
            }
            tx.commit().map_err(err(context()))
        })
        .await
    }

    async fn update(&self, letter: DeadLetter, expected: LetterState) -> Result<(), ConsumerStoreError> {
        self.with(true, move |c| {
            let context = || {
                format!(
                    "updating the dead letter of consumer {} at position {}",
                    letter.consumer, letter.position
                )
            };
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(err(context()))?;
            let found: Option<String> = tx
                .prepare_cached("SELECT state FROM factum_dead_letters WHERE consumer = ?1 AND position = ?2")
                .and_then(|mut s| {
                    s.query_row(params![letter.consumer, int(letter.position)], |r| r.get(0))
                        .optional()
                })
                .map_err(err(context()))?;
            let Some(found) = found else {
                return Err(ConsumerStoreError::NoLetter {
                    consumer: letter.consumer,
                    position: letter.position,
                });
            };
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
            insert_letter(&tx, &letter).map_err(err(context()))?;
            tx.commit().map_err(err(context()))
        })
        .await
    }

    async fn letters(
        &self,
        consumer: &str,
        states: Option<&[LetterState]>,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, ConsumerStoreError> {
        let consumer = consumer.to_owned();
        let states: Option<Vec<&'static str>> = states.map(|s| s.iter().map(|s| s.as_str()).collect());
        let after = after.map_or(-1, int);
        let limit = int(limit as u64);
        self.with(false, move |c| {
            let filter = match &states {
                // The states are factum's own names, never user input.
                Some(states) => format!(
                    "AND state IN ({})",
                    states
                        .iter()
                        .map(|s| format!("'{s}'"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                None => String::new(),
            };
            let rows: Vec<LetterRow> = c
                .prepare_cached(&format!(
                    "SELECT {LETTER_COLUMNS} FROM factum_dead_letters
                     WHERE consumer = ?1 AND position > ?2 {filter} ORDER BY position LIMIT ?3"
                ))
                .and_then(|mut s| {
                    s.query_map(params![consumer, after, limit], letter_row)?
                        .collect::<Result<_, _>>()
                })
                .map_err(err(format!("listing the dead letters of consumer {consumer}")))?;
            rows.into_iter().map(|r| r.check(BACKEND)).collect()
        })
        .await
    }

    async fn try_lease(&self, _consumer: &str) -> Result<Option<Box<dyn Lease>>, ConsumerStoreError> {
        Ok(Some(Box::new(LocalLease)))
    }
}

impl From<Joining> for ConsumerStoreError {
    fn from(j: Joining) -> Self {
        ConsumerStoreError::backend(BACKEND, "running a consumer-store task", j.0)
    }
}
