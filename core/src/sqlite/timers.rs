//! Timers in a SQLite file: `factum_timers` (one row per pending timer, keyed
//! by name, with an index on `(blocked, due, name)` so the due ones are a
//! range scan) and `factum_timer_firings` (the newest firings).
//!
//! The tables belong in the events file ([`AppBuilder::sqlite`](crate::AppBuilder::sqlite)
//! puts them there): at `synchronous=FULL`, because a timer, unlike a view
//! row, cannot be rebuilt from the log, and in the file that is backed up
//! with the events. This store has its own connections; its writes wait for
//! the event writer's transactions (and the other way round) through
//! SQLite's busy timeout. One process runs the timers of a file (a local lease).
//!
//! Schedules and cancels are written in groups: each is queued, and whoever
//! takes the writer connection next writes everything queued by then in one
//! transaction (one savepoint per operation, so one failing operation fails
//! alone), answering each caller after the commit. A caller still returns
//! only once its write is durable; what is saved is the fsync per write —
//! a workflow's timed step schedules its timeout and cancels it, two synced
//! transactions of their own each before this, with 1,024 steps in flight.

use std::path::Path;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use super::conn::{Connections, Joining};
use async_trait::async_trait;
use rusqlite::{Connection, TransactionBehavior, params};
use uuid::Uuid;

use crate::process::{Lease, LocalLease};
use crate::time::Timestamp;
use crate::timer::{
    After, Firing, FiringOutcome, KEPT_FIRINGS, Settlement, StoredTimer, TimerStore, TimerStoreError,
};

const BACKEND: &str = "sqlite";

const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS factum_timers (
        name         TEXT    PRIMARY KEY,
        entity_type  TEXT    NOT NULL,
        entity_id    TEXT    NOT NULL,
        command_type TEXT    NOT NULL,
        due          INTEGER NOT NULL,
        payload      TEXT    NOT NULL,
        schedule_id  BLOB    NOT NULL,
        scheduled_at INTEGER NOT NULL,
        attempts     INTEGER NOT NULL DEFAULT 0,
        last_error   TEXT,
        blocked      INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX IF NOT EXISTS factum_timers_due ON factum_timers (blocked, due, name);
    CREATE TABLE IF NOT EXISTS factum_timer_firings (
        seq          INTEGER PRIMARY KEY,
        name         TEXT    NOT NULL,
        entity_type  TEXT    NOT NULL,
        entity_id    TEXT    NOT NULL,
        command_type TEXT    NOT NULL,
        due          INTEGER NOT NULL,
        fired_at     INTEGER NOT NULL,
        command_id   BLOB    NOT NULL,
        outcome      TEXT    NOT NULL,
        version      INTEGER NOT NULL,
        position     INTEGER NOT NULL,
        message      TEXT
    );";

const TIMER_COLUMNS: &str = "name, entity_type, entity_id, command_type, due, payload, schedule_id, \
     scheduled_at, attempts, last_error, blocked";

/// A [`TimerStore`] in a SQLite file (the events file, normally).
#[derive(Clone)]
pub struct SqliteTimerStore {
    inner: Arc<Connections>,
    /// Schedules and cancels waiting for the next group write.
    queue: Arc<Mutex<Vec<Queued>>>,
}

/// A schedule or a cancel waiting in the queue.
enum Write {
    Schedule { timer: StoredTimer, payload: String },
    Cancel { name: String },
}

struct Queued {
    write: Write,
    /// The cancel's answer (whether there was a timer); `false` for a schedule.
    reply: oneshot::Sender<Result<bool, TimerStoreError>>,
}

/// Writes every queued operation in one transaction and answers each after
/// the commit (a failed commit fails them all).
fn write_queued(c: &mut Connection, queue: &Mutex<Vec<Queued>>) {
    let batch = std::mem::take(&mut *queue.lock().unwrap_or_else(|e| e.into_inner()));
    if batch.is_empty() {
        return;
    }
    let tx = match c.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => {
            let message = e.to_string();
            for q in batch {
                let _ = q
                    .reply
                    .send(Err(shared_failure("starting a timer write", &message)));
            }
            return;
        }
    };
    let mut tx = tx;
    let mut answers = Vec::with_capacity(batch.len());
    for q in &batch {
        let answer = match tx.savepoint() {
            Ok(mut sp) => {
                let done = apply(&sp, &q.write);
                let kept = match &done {
                    Ok(_) => sp
                        .commit()
                        .map_err(err(format!("writing timer `{}`", q.write.name()))),
                    Err(_) => sp
                        .rollback()
                        .map_err(err(format!("undoing timer `{}`", q.write.name()))),
                };
                kept.and(done)
            }
            Err(e) => Err(TimerStoreError::backend(
                BACKEND,
                format!("writing timer `{}`", q.write.name()),
                e,
            )),
        };
        answers.push(answer);
    }
    match tx.commit() {
        Ok(()) => {
            for (q, answer) in batch.into_iter().zip(answers) {
                let _ = q.reply.send(answer);
            }
        }
        Err(e) => {
            let message = e.to_string();
            for q in batch {
                let _ = q
                    .reply
                    .send(Err(shared_failure("committing timer writes", &message)));
            }
        }
    }
}

/// One failure shared by every operation of a group (the error is not `Clone`).
fn shared_failure(context: &str, message: &str) -> TimerStoreError {
    TimerStoreError::backend(BACKEND, context, std::io::Error::other(message.to_owned()))
}

impl Write {
    fn name(&self) -> &str {
        match self {
            Write::Schedule { timer, .. } => &timer.name,
            Write::Cancel { name } => name,
        }
    }
}

/// One queued operation, inside the group's transaction.
fn apply(c: &Connection, write: &Write) -> Result<bool, TimerStoreError> {
    match write {
        Write::Schedule { timer, payload } => {
            c.prepare_cached(&format!(
                "INSERT OR REPLACE INTO factum_timers ({TIMER_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
            ))
            .and_then(|mut s| {
                s.execute(params![
                    timer.name,
                    timer.entity_type,
                    timer.entity_id,
                    timer.command_type,
                    timer.due.as_micros(),
                    payload,
                    timer.schedule_id.as_bytes().as_slice(),
                    timer.scheduled_at.as_micros(),
                    i64::from(timer.attempts),
                    timer.last_error,
                    timer.blocked,
                ])
            })
            .map_err(err(format!("scheduling timer `{}`", timer.name)))?;
            Ok(false)
        }
        Write::Cancel { name } => {
            let n = c
                .prepare_cached("DELETE FROM factum_timers WHERE name = ?1")
                .and_then(|mut s| s.execute([name]))
                .map_err(err(format!("cancelling timer `{name}`")))?;
            Ok(n > 0)
        }
    }
}

impl std::fmt::Debug for SqliteTimerStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteTimerStore")
            .field("path", &self.inner.path())
            .finish()
    }
}

fn err(context: impl Into<String>) -> impl FnOnce(rusqlite::Error) -> TimerStoreError {
    let context = context.into();
    move |e| TimerStoreError::backend(BACKEND, context, e)
}

impl SqliteTimerStore {
    /// Opens (creating if needed) the timer tables in the SQLite file at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, TimerStoreError> {
        let inner = Connections::open(path.as_ref(), "FULL", SCHEMA, |context, e| {
            TimerStoreError::backend(BACKEND, context, e)
        })?;
        Ok(SqliteTimerStore {
            inner: Arc::new(inner),
            queue: Arc::new(Mutex::new(Vec::new())),
        })
    }

    /// Queues `write` and has it written with whatever else is queued when
    /// the writer connection is next free; resolves after its commit.
    async fn grouped(&self, write: Write) -> Result<bool, TimerStoreError> {
        let name = write.name().to_owned();
        let (reply, answer) = oneshot::channel();
        self.queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Queued { write, reply });
        let queue = self.queue.clone();
        // This caller's turn at the writer writes its own operation, unless a
        // caller before it already took it into its group.
        self.with(true, move |c| {
            write_queued(c, &queue);
            Ok(())
        })
        .await?;
        answer.await.map_err(|_| {
            shared_failure(
                &format!("writing timer `{name}`"),
                "the group write ended without an answer",
            )
        })?
    }

    /// The file.
    pub fn path(&self) -> &Path {
        self.inner.path()
    }

    async fn with<T: Send + 'static>(
        &self,
        write: bool,
        f: impl FnOnce(&mut Connection) -> Result<T, TimerStoreError> + Send + 'static,
    ) -> Result<T, TimerStoreError> {
        self.inner.with(write, f).await
    }
}

/// A stored integer that must not be negative, or a corruption naming the row.
fn unsigned(stored: i64, table: &str, row: &str, column: &str) -> Result<u64, TimerStoreError> {
    u64::try_from(stored).map_err(|_| {
        TimerStoreError::corrupt(
            BACKEND,
            format!("{table}, {row}: column {column} is negative ({stored})"),
        )
    })
}

fn uuid(bytes: &[u8], table: &str, row: &str, column: &str) -> Result<Uuid, TimerStoreError> {
    Uuid::from_slice(bytes).map_err(|_| {
        TimerStoreError::corrupt(
            BACKEND,
            format!("{table}, {row}: column {column} is not a 16-byte id"),
        )
    })
}

/// A `u64` as SQLite stores it; the ones timers store stay far below 2^63.
fn int(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// The raw columns of a timer row, checked once read.
struct TimerRow {
    name: String,
    entity_type: String,
    entity_id: String,
    command_type: String,
    due: i64,
    payload: String,
    schedule_id: Vec<u8>,
    scheduled_at: i64,
    attempts: i64,
    last_error: Option<String>,
    blocked: bool,
}

fn timer_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TimerRow> {
    Ok(TimerRow {
        name: r.get(0)?,
        entity_type: r.get(1)?,
        entity_id: r.get(2)?,
        command_type: r.get(3)?,
        due: r.get(4)?,
        payload: r.get(5)?,
        schedule_id: r.get(6)?,
        scheduled_at: r.get(7)?,
        attempts: r.get(8)?,
        last_error: r.get(9)?,
        blocked: r.get(10)?,
    })
}

impl TimerRow {
    fn check(self) -> Result<StoredTimer, TimerStoreError> {
        let row = format!("timer `{}`", self.name);
        let attempts = unsigned(self.attempts, "factum_timers", &row, "attempts")?;
        Ok(StoredTimer {
            schedule_id: uuid(&self.schedule_id, "factum_timers", &row, "schedule_id")?,
            attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
            name: self.name,
            entity_type: self.entity_type,
            entity_id: self.entity_id,
            command_type: self.command_type,
            due: Timestamp::from_micros(self.due),
            payload: self.payload.into_bytes(),
            scheduled_at: Timestamp::from_micros(self.scheduled_at),
            last_error: self.last_error,
            blocked: self.blocked,
        })
    }
}

fn payload_text(timer: &StoredTimer) -> Result<String, TimerStoreError> {
    String::from_utf8(timer.payload.clone()).map_err(|_| {
        TimerStoreError::corrupt(
            BACKEND,
            format!("timer `{}`: the command is not UTF-8 JSON", timer.name),
        )
    })
}

#[async_trait]
impl TimerStore for SqliteTimerStore {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    async fn schedule(&self, timer: StoredTimer) -> Result<(), TimerStoreError> {
        let payload = payload_text(&timer)?;
        self.grouped(Write::Schedule { timer, payload }).await.map(|_| ())
    }

    async fn cancel(&self, name: &str) -> Result<bool, TimerStoreError> {
        self.grouped(Write::Cancel {
            name: name.to_owned(),
        })
        .await
    }

    async fn due(
        &self,
        now: Timestamp,
        after: Option<(Timestamp, &str)>,
        limit: usize,
    ) -> Result<Vec<StoredTimer>, TimerStoreError> {
        let (after_due, after_name) = match after {
            Some((due, name)) => (due.as_micros(), Some(name.to_owned())),
            None => (i64::MIN, None),
        };
        let limit = int(limit as u64);
        self.with(false, move |c| {
            let mut stmt = c
                .prepare_cached(&format!(
                    "SELECT {TIMER_COLUMNS} FROM factum_timers
                     WHERE blocked = 0 AND due <= ?1 AND (?3 IS NULL OR (due, name) > (?2, ?3))
                     ORDER BY due, name LIMIT ?4"
                ))
                .map_err(err("preparing the due query"))?;
            let rows = stmt
                .query_map(params![now.as_micros(), after_due, after_name, limit], timer_row)
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                .map_err(err("reading the due timers"))?;
            rows.into_iter().map(TimerRow::check).collect()
        })
        .await
    }

    async fn next_due(&self) -> Result<Option<Timestamp>, TimerStoreError> {
        self.with(false, |c| {
            let due: Option<i64> = c
                .prepare_cached("SELECT min(due) FROM factum_timers WHERE blocked = 0")
                .and_then(|mut s| s.query_row([], |r| r.get(0)))
                .map_err(err("reading the next due time"))?;
            Ok(due.map(Timestamp::from_micros))
        })
        .await
    }

    async fn pending(
        &self,
        after: Option<(Timestamp, &str)>,
        limit: usize,
    ) -> Result<Vec<StoredTimer>, TimerStoreError> {
        let (after_due, after_name) = match after {
            Some((due, name)) => (due.as_micros(), Some(name.to_owned())),
            None => (i64::MIN, None),
        };
        let limit = int(limit as u64);
        self.with(false, move |c| {
            let mut stmt = c
                .prepare_cached(&format!(
                    "SELECT {TIMER_COLUMNS} FROM factum_timers
                     WHERE ?2 IS NULL OR (due, name) > (?1, ?2)
                     ORDER BY due, name LIMIT ?3"
                ))
                .map_err(err("preparing the pending query"))?;
            let rows = stmt
                .query_map(params![after_due, after_name, limit], timer_row)
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                .map_err(err("listing pending timers"))?;
            rows.into_iter().map(TimerRow::check).collect()
        })
        .await
    }

    async fn settle(&self, batch: Vec<Settlement>) -> Result<(), TimerStoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        self.with(true, move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(err("beginning to record firings"))?;
            {
                let mut done = tx
                    .prepare_cached("DELETE FROM factum_timers WHERE name = ?1 AND schedule_id = ?2")
                    .map_err(err("preparing a timer removal"))?;
                let mut again = tx
                    .prepare_cached(
                        "UPDATE factum_timers SET attempts = attempts + 1, last_error = ?3,
                             blocked = blocked OR ?4
                         WHERE name = ?1 AND schedule_id = ?2",
                    )
                    .map_err(err("preparing a timer update"))?;
                let mut record = tx
                    .prepare_cached(
                        "INSERT INTO factum_timer_firings (name, entity_type, entity_id, command_type, due,
                             fired_at, command_id, outcome, version, position, message)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                    )
                    .map_err(err("preparing a firing record"))?;
                for s in &batch {
                    let f = &s.firing;
                    let id = s.schedule_id.as_bytes().as_slice();
                    let context = || format!("recording the firing of timer `{}`", f.name);
                    match s.after {
                        After::Done => done.execute(params![f.name, id]),
                        After::Retry | After::Block => {
                            again.execute(params![f.name, id, f.outcome.message(), s.after == After::Block])
                        }
                    }
                    .map_err(err(context()))?;
                    let (version, position) = match f.outcome {
                        FiringOutcome::Fired { version, position } => (version, position),
                        _ => (0, 0),
                    };
                    record
                        .execute(params![
                            f.name,
                            f.entity_type,
                            f.entity_id,
                            f.command_type,
                            f.due.as_micros(),
                            f.fired_at.as_micros(),
                            f.command_id.as_bytes().as_slice(),
                            f.outcome.kind(),
                            int(version),
                            int(position),
                            f.outcome.message(),
                        ])
                        .map_err(err(context()))?;
                }
            }
            tx.execute(
                "DELETE FROM factum_timer_firings WHERE seq <= (SELECT max(seq) FROM factum_timer_firings) - ?1",
                [int(KEPT_FIRINGS as u64)],
            )
            .map_err(err("pruning old firings"))?;
            tx.commit().map_err(err("committing firings"))
        })
        .await
    }

    async fn unblock(&self, only: Option<(&str, &str)>) -> Result<(), TimerStoreError> {
        let only = only.map(|(e, c)| (e.to_owned(), c.to_owned()));
        self.with(true, move |c| {
            match &only {
                Some((entity, command)) => c.execute(
                    "UPDATE factum_timers SET blocked = 0
                     WHERE blocked = 1 AND entity_type = ?1 AND command_type = ?2",
                    params![entity, command],
                ),
                None => c.execute("UPDATE factum_timers SET blocked = 0 WHERE blocked = 1", []),
            }
            .map_err(err("unblocking timers"))?;
            Ok(())
        })
        .await
    }

    async fn recent_firings(&self, limit: usize) -> Result<Vec<Firing>, TimerStoreError> {
        let limit = int(limit as u64);
        self.with(false, move |c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT seq, name, entity_type, entity_id, command_type, due, fired_at, command_id,
                            outcome, version, position, message
                     FROM factum_timer_firings ORDER BY seq DESC LIMIT ?1",
                )
                .map_err(err("preparing the firings query"))?;
            let rows = stmt
                .query_map([limit], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, String>(4)?,
                        r.get::<_, i64>(5)?,
                        r.get::<_, i64>(6)?,
                        r.get::<_, Vec<u8>>(7)?,
                        r.get::<_, String>(8)?,
                        r.get::<_, i64>(9)?,
                        r.get::<_, i64>(10)?,
                        r.get::<_, Option<String>>(11)?,
                    ))
                })
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                .map_err(err("listing recent firings"))?;
            rows.into_iter()
                .map(
                    |(
                        seq,
                        name,
                        entity_type,
                        entity_id,
                        command_type,
                        due,
                        fired_at,
                        command_id,
                        kind,
                        version,
                        position,
                        message,
                    )| {
                        let row = format!("firing {seq} of timer `{name}`");
                        let table = "factum_timer_firings";
                        let version = unsigned(version, table, &row, "version")?;
                        let position = unsigned(position, table, &row, "position")?;
                        let outcome = FiringOutcome::from_columns(&kind, version, position, message)
                            .ok_or_else(|| {
                                TimerStoreError::corrupt(
                                    BACKEND,
                                    format!("{table}, {row}: unknown outcome `{kind}`"),
                                )
                            })?;
                        Ok(Firing {
                            command_id: uuid(&command_id, table, &row, "command_id")?,
                            name,
                            entity_type,
                            entity_id,
                            command_type,
                            due: Timestamp::from_micros(due),
                            fired_at: Timestamp::from_micros(fired_at),
                            outcome,
                        })
                    },
                )
                .collect()
        })
        .await
    }

    async fn try_lease(&self) -> Result<Option<Box<dyn Lease>>, TimerStoreError> {
        Ok(Some(Box::new(LocalLease)))
    }

    async fn try_process_lease(&self, _process: &str) -> Result<Option<Box<dyn Lease>>, TimerStoreError> {
        Ok(Some(Box::new(LocalLease)))
    }
}

impl From<Joining> for TimerStoreError {
    fn from(j: Joining) -> Self {
        TimerStoreError::backend(BACKEND, "joining a blocking task", j.0)
    }
}
