//! Timers in PostgreSQL, in the events' schema: `factum_timers` (one row per
//! pending timer, keyed by name, indexed on `(blocked, due, name)` so the due
//! ones are a range scan) and `factum_timer_firings` (the newest firings).
//! A batch of firings is settled in one transaction with one statement per
//! kind (`unnest` arrays), not one round trip per timer.
//!
//! Several nodes share the tables; one runs the timers: the runner holds a
//! session-level advisory lock keyed by the schema (see `postgres::lease`),
//! so the timers of two schemas on one database have a runner each.

use std::sync::Arc;

use async_trait::async_trait;
use uuid::Uuid;

use super::lease::{self, Conn};
use crate::process::Lease;
use crate::time::Timestamp;
use crate::timer::{
    After, Firing, FiringOutcome, KEPT_FIRINGS, Settlement, StoredTimer, TimerStore, TimerStoreError,
};

const BACKEND: &str = "postgres";

const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS factum_timers (
        name         text    PRIMARY KEY,
        entity_type  text    NOT NULL,
        entity_id    text    NOT NULL,
        command_type text    NOT NULL,
        due          bigint  NOT NULL,
        payload      text    NOT NULL,
        schedule_id  uuid    NOT NULL,
        scheduled_at bigint  NOT NULL,
        attempts     integer NOT NULL DEFAULT 0,
        last_error   text,
        blocked      boolean NOT NULL DEFAULT false
    );
    CREATE INDEX IF NOT EXISTS factum_timers_due ON factum_timers (blocked, due, name COLLATE \"C\");
    CREATE TABLE IF NOT EXISTS factum_timer_firings (
        seq          bigserial PRIMARY KEY,
        name         text    NOT NULL,
        entity_type  text    NOT NULL,
        entity_id    text    NOT NULL,
        command_type text    NOT NULL,
        due          bigint  NOT NULL,
        fired_at     bigint  NOT NULL,
        command_id   uuid    NOT NULL,
        outcome      text    NOT NULL,
        version      bigint  NOT NULL,
        position     bigint  NOT NULL,
        message      text
    );";

const TIMER_COLUMNS: &str = "name, entity_type, entity_id, command_type, due, payload, schedule_id, \
     scheduled_at, attempts, last_error, blocked";

/// A [`TimerStore`] in a PostgreSQL schema (the one the events are in).
#[derive(Clone)]
pub struct PostgresTimerStore {
    inner: Arc<Inner>,
}

struct Inner {
    url: String,
    schema: String,
    conn: tokio::sync::Mutex<Conn>,
}

impl std::fmt::Debug for PostgresTimerStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresTimerStore")
            .field("schema", &self.inner.schema)
            .finish_non_exhaustive()
    }
}

fn err(context: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> TimerStoreError {
    let context = context.into();
    move |e| {
        // tokio-postgres displays a server error as "db error"; the message is in its source.
        let context = match e.as_db_error() {
            Some(db) => format!("{context} ({}: {})", db.code().code(), db.message()),
            None => context,
        };
        TimerStoreError::backend(BACKEND, context, e)
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

fn int(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn timer_of(r: &tokio_postgres::Row) -> Result<StoredTimer, TimerStoreError> {
    let get = err("reading a timer row");
    let name: String = r.try_get(0).map_err(get)?;
    let column = |e| err(format!("reading timer `{name}`"))(e);
    let attempts: i32 = r.try_get(8).map_err(column)?;
    let row = format!("timer `{name}`");
    let attempts = unsigned(i64::from(attempts), "factum_timers", &row, "attempts")?;
    let payload: String = r.try_get(5).map_err(column)?;
    Ok(StoredTimer {
        entity_type: r.try_get(1).map_err(column)?,
        entity_id: r.try_get(2).map_err(column)?,
        command_type: r.try_get(3).map_err(column)?,
        due: Timestamp::from_micros(r.try_get(4).map_err(column)?),
        payload: payload.into_bytes(),
        schedule_id: r.try_get(6).map_err(column)?,
        scheduled_at: Timestamp::from_micros(r.try_get(7).map_err(column)?),
        attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
        last_error: r.try_get(9).map_err(column)?,
        blocked: r.try_get(10).map_err(column)?,
        name,
    })
}

impl PostgresTimerStore {
    /// Connects to `url` and creates the timer tables if needed in the schema
    /// `factum`, where a [`PostgresStore`](super::PostgresStore) keeps its events by default.
    pub async fn connect(url: &str) -> Result<Self, TimerStoreError> {
        Self::connect_in_schema(url, "factum").await
    }

    /// Like [`connect`](Self::connect), with the tables in `schema` (created
    /// if needed): the schema of the app's [`PostgresStore`](super::PostgresStore).
    pub async fn connect_in_schema(url: &str, schema: &str) -> Result<Self, TimerStoreError> {
        let conn = lease::open_in_schema(url, schema, "timers", SCHEMA)
            .await
            .map_err(|(context, e)| err(context)(e))?;
        Ok(PostgresTimerStore {
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
    async fn conn(&self) -> Result<tokio::sync::MutexGuard<'_, Conn>, TimerStoreError> {
        let mut conn = self.inner.conn.lock().await;
        lease::ensure_connected(&mut conn, &self.inner.url, &self.inner.schema)
            .await
            .map_err(err("reconnecting"))?;
        Ok(conn)
    }

    async fn query_timers(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
        context: &str,
    ) -> Result<Vec<StoredTimer>, TimerStoreError> {
        let conn = self.conn().await?;
        let rows = conn.client.query(sql, params).await.map_err(err(context))?;
        rows.iter().map(timer_of).collect()
    }
}

#[async_trait]
impl TimerStore for PostgresTimerStore {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    async fn schedule(&self, timer: StoredTimer) -> Result<(), TimerStoreError> {
        let payload = std::str::from_utf8(&timer.payload).map_err(|_| {
            TimerStoreError::corrupt(
                BACKEND,
                format!("timer `{}`: the command is not UTF-8 JSON", timer.name),
            )
        })?;
        let attempts = i32::try_from(timer.attempts).unwrap_or(i32::MAX);
        let conn = self.conn().await?;
        conn.client
            .execute(
                &format!(
                    "INSERT INTO factum_timers ({TIMER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                     ON CONFLICT (name) DO UPDATE SET entity_type = excluded.entity_type,
                         entity_id = excluded.entity_id, command_type = excluded.command_type,
                         due = excluded.due, payload = excluded.payload, schedule_id = excluded.schedule_id,
                         scheduled_at = excluded.scheduled_at, attempts = excluded.attempts,
                         last_error = excluded.last_error, blocked = excluded.blocked"
                ),
                &[
                    &timer.name,
                    &timer.entity_type,
                    &timer.entity_id,
                    &timer.command_type,
                    &timer.due.as_micros(),
                    &payload,
                    &timer.schedule_id,
                    &timer.scheduled_at.as_micros(),
                    &attempts,
                    &timer.last_error,
                    &timer.blocked,
                ],
            )
            .await
            .map_err(err(format!("scheduling timer `{}`", timer.name)))?;
        Ok(())
    }

    async fn cancel(&self, name: &str) -> Result<bool, TimerStoreError> {
        let conn = self.conn().await?;
        let n = conn
            .client
            .execute("DELETE FROM factum_timers WHERE name = $1", &[&name])
            .await
            .map_err(err(format!("cancelling timer `{name}`")))?;
        Ok(n > 0)
    }

    async fn due(
        &self,
        now: Timestamp,
        after: Option<(Timestamp, &str)>,
        limit: usize,
    ) -> Result<Vec<StoredTimer>, TimerStoreError> {
        let (after_due, after_name) = match after {
            Some((due, name)) => (due.as_micros(), Some(name)),
            None => (i64::MIN, None),
        };
        self.query_timers(
            &format!(
                "SELECT {TIMER_COLUMNS} FROM factum_timers
                 WHERE NOT blocked AND due <= $1 AND ($3::text IS NULL OR (due, name COLLATE \"C\") > ($2, $3::text))
                 ORDER BY due, name COLLATE \"C\" LIMIT $4"
            ),
            &[&now.as_micros(), &after_due, &after_name, &int(limit as u64)],
            "reading the due timers",
        )
        .await
    }

    async fn next_due(&self) -> Result<Option<Timestamp>, TimerStoreError> {
        let conn = self.conn().await?;
        let row = conn
            .client
            .query_one("SELECT min(due) FROM factum_timers WHERE NOT blocked", &[])
            .await
            .map_err(err("reading the next due time"))?;
        let due: Option<i64> = row.try_get(0).map_err(err("reading the next due time"))?;
        Ok(due.map(Timestamp::from_micros))
    }

    async fn pending(
        &self,
        after: Option<(Timestamp, &str)>,
        limit: usize,
    ) -> Result<Vec<StoredTimer>, TimerStoreError> {
        let (after_due, after_name) = match after {
            Some((due, name)) => (due.as_micros(), Some(name)),
            None => (i64::MIN, None),
        };
        self.query_timers(
            &format!(
                "SELECT {TIMER_COLUMNS} FROM factum_timers
                 WHERE $2::text IS NULL OR (due, name COLLATE \"C\") > ($1, $2::text)
                 ORDER BY due, name COLLATE \"C\" LIMIT $3"
            ),
            &[&after_due, &after_name, &int(limit as u64)],
            "listing pending timers",
        )
        .await
    }

    async fn settle(&self, batch: Vec<Settlement>) -> Result<(), TimerStoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let (mut done_names, mut done_ids) = (Vec::new(), Vec::new());
        let (mut again_names, mut again_ids, mut again_errors, mut again_block) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut f_name = Vec::with_capacity(batch.len());
        let mut f_entity_type = Vec::with_capacity(batch.len());
        let mut f_entity_id = Vec::with_capacity(batch.len());
        let mut f_command_type = Vec::with_capacity(batch.len());
        let mut f_due = Vec::with_capacity(batch.len());
        let mut f_fired_at = Vec::with_capacity(batch.len());
        let mut f_command_id: Vec<Uuid> = Vec::with_capacity(batch.len());
        let mut f_outcome = Vec::with_capacity(batch.len());
        let mut f_version = Vec::with_capacity(batch.len());
        let mut f_position = Vec::with_capacity(batch.len());
        let mut f_message: Vec<Option<&str>> = Vec::with_capacity(batch.len());
        for s in &batch {
            let f = &s.firing;
            match s.after {
                After::Done => {
                    done_names.push(f.name.as_str());
                    done_ids.push(s.schedule_id);
                }
                After::Retry | After::Block => {
                    again_names.push(f.name.as_str());
                    again_ids.push(s.schedule_id);
                    again_errors.push(f.outcome.message());
                    again_block.push(s.after == After::Block);
                }
            }
            let (version, position) = match f.outcome {
                FiringOutcome::Fired { version, position } => (version, position),
                _ => (0, 0),
            };
            f_name.push(f.name.as_str());
            f_entity_type.push(f.entity_type.as_str());
            f_entity_id.push(f.entity_id.as_str());
            f_command_type.push(f.command_type.as_str());
            f_due.push(f.due.as_micros());
            f_fired_at.push(f.fired_at.as_micros());
            f_command_id.push(f.command_id);
            f_outcome.push(f.outcome.kind());
            f_version.push(int(version));
            f_position.push(int(position));
            f_message.push(f.outcome.message());
        }
        let mut conn = self.conn().await?;
        let tx = conn
            .client
            .transaction()
            .await
            .map_err(err("beginning to record firings"))?;
        if !done_names.is_empty() {
            tx.execute(
                "DELETE FROM factum_timers t USING unnest($1::text[], $2::uuid[]) AS d(name, schedule_id)
                 WHERE t.name = d.name AND t.schedule_id = d.schedule_id",
                &[&done_names, &done_ids],
            )
            .await
            .map_err(err("removing fired timers"))?;
        }
        if !again_names.is_empty() {
            tx.execute(
                "UPDATE factum_timers t SET attempts = t.attempts + 1, last_error = u.error,
                     blocked = t.blocked OR u.block
                 FROM unnest($1::text[], $2::uuid[], $3::text[], $4::bool[]) AS u(name, schedule_id, error, block)
                 WHERE t.name = u.name AND t.schedule_id = u.schedule_id",
                &[&again_names, &again_ids, &again_errors, &again_block],
            )
            .await
            .map_err(err("noting failed firings"))?;
        }
        tx.execute(
            "INSERT INTO factum_timer_firings (name, entity_type, entity_id, command_type, due, fired_at,
                 command_id, outcome, version, position, message)
             SELECT name, entity_type, entity_id, command_type, due, fired_at, command_id, outcome, version,
                    position, message
             FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int8[], $6::int8[], $7::uuid[],
                         $8::text[], $9::int8[], $10::int8[], $11::text[])
                  WITH ORDINALITY AS f(name, entity_type, entity_id, command_type, due, fired_at, command_id,
                                       outcome, version, position, message, n)
             ORDER BY n",
            &[
                &f_name,
                &f_entity_type,
                &f_entity_id,
                &f_command_type,
                &f_due,
                &f_fired_at,
                &f_command_id,
                &f_outcome,
                &f_version,
                &f_position,
                &f_message,
            ],
        )
        .await
        .map_err(err("recording firings"))?;
        tx.execute(
            "DELETE FROM factum_timer_firings WHERE seq <= (SELECT max(seq) FROM factum_timer_firings) - $1",
            &[&int(KEPT_FIRINGS as u64)],
        )
        .await
        .map_err(err("pruning old firings"))?;
        tx.commit().await.map_err(err("committing firings"))
    }

    async fn unblock(&self, only: Option<(&str, &str)>) -> Result<(), TimerStoreError> {
        let conn = self.conn().await?;
        match only {
            Some((entity, command)) => {
                conn.client
                    .execute(
                        "UPDATE factum_timers SET blocked = false
                         WHERE blocked AND entity_type = $1 AND command_type = $2",
                        &[&entity, &command],
                    )
                    .await
            }
            None => {
                conn.client
                    .execute("UPDATE factum_timers SET blocked = false WHERE blocked", &[])
                    .await
            }
        }
        .map_err(err("unblocking timers"))?;
        Ok(())
    }

    async fn recent_firings(&self, limit: usize) -> Result<Vec<Firing>, TimerStoreError> {
        let conn = self.conn().await?;
        let rows = conn
            .client
            .query(
                "SELECT seq, name, entity_type, entity_id, command_type, due, fired_at, command_id,
                        outcome, version, position, message
                 FROM factum_timer_firings ORDER BY seq DESC LIMIT $1",
                &[&int(limit as u64)],
            )
            .await
            .map_err(err("listing recent firings"))?;
        let table = "factum_timer_firings";
        rows.iter()
            .map(|r| {
                let seq: i64 = r.try_get(0).map_err(err("reading a firing"))?;
                let column = |e| err(format!("reading firing {seq}"))(e);
                let name: String = r.try_get(1).map_err(column)?;
                let row = format!("firing {seq} of timer `{name}`");
                let kind: String = r.try_get(8).map_err(column)?;
                let version = unsigned(r.try_get(9).map_err(column)?, table, &row, "version")?;
                let position = unsigned(r.try_get(10).map_err(column)?, table, &row, "position")?;
                let message: Option<String> = r.try_get(11).map_err(column)?;
                let outcome =
                    FiringOutcome::from_columns(&kind, version, position, message).ok_or_else(|| {
                        TimerStoreError::corrupt(BACKEND, format!("{table}, {row}: unknown outcome `{kind}`"))
                    })?;
                Ok(Firing {
                    entity_type: r.try_get(2).map_err(column)?,
                    entity_id: r.try_get(3).map_err(column)?,
                    command_type: r.try_get(4).map_err(column)?,
                    due: Timestamp::from_micros(r.try_get(5).map_err(column)?),
                    fired_at: Timestamp::from_micros(r.try_get(6).map_err(column)?),
                    command_id: r.try_get(7).map_err(column)?,
                    name,
                    outcome,
                })
            })
            .collect()
    }

    async fn try_lease(&self) -> Result<Option<Box<dyn Lease>>, TimerStoreError> {
        lease::try_lease(
            &self.inner.url,
            Some(&self.inner.schema),
            lease::TIMER_LOCKS,
            &self.inner.schema,
        )
        .await
        .map_err(err(format!(
            "taking the timer runner's lock of schema {}",
            self.inner.schema
        )))
    }

    async fn try_process_lease(&self, process: &str) -> Result<Option<Box<dyn Lease>>, TimerStoreError> {
        lease::try_lease(
            &self.inner.url,
            Some(&self.inner.schema),
            lease::PROCESS_LOCKS,
            &format!("{}/{process}", self.inner.schema),
        )
        .await
        .map_err(err(format!(
            "taking the {process} runner's lock of schema {}",
            self.inner.schema
        )))
    }
}
