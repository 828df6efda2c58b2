//! View tables in a SQLite file: one table per view, version and build
//! (`key TEXT PRIMARY KEY, row TEXT` holding the row as JSON), an index table
//! beside it for `#[view(index = …)]` fields, and the checkpoints in
//! `factum_view_tables`, which every commit updates in the same transaction as
//! the rows. WAL with `synchronous=NORMAL`: a crash may lose the last commits
//! (the view refolds them from its checkpoint) but never splits rows from
//! their checkpoint.
//!
//! One process runs a SQLite view; the checkpoint compare-and-set still keeps
//! a second one from applying a batch twice.

use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;

use super::conn::{Connections, Joining};
use async_trait::async_trait;
use rusqlite::{OptionalExtension, TransactionBehavior, params};

use crate::process::{Lease, LocalLease};
use crate::view::backend::{
    Commit, IndexedRow, RangeBuilder, TableId, TableInfo, TableState, ViewStore, ViewStoreError, ViewTable,
    check_view_name,
};

const BACKEND: &str = "sqlite";

/// A [`ViewStore`] in a SQLite file (it may be the event store's file).
#[derive(Clone)]
pub struct SqliteViewStore {
    inner: Arc<Connections>,
}

impl std::fmt::Debug for SqliteViewStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteViewStore")
            .field("path", &self.inner.path())
            .finish()
    }
}

fn err(context: impl Into<String>) -> impl FnOnce(rusqlite::Error) -> ViewStoreError {
    let context = context.into();
    move |e| ViewStoreError::backend(BACKEND, context, e)
}

/// `fv_<view>_v<version>_b<build>`. Only valid view names (`[a-z][a-z0-9_]{0,39}`)
/// are accepted, so two views never share a table.
fn table_name(id: &TableId) -> Result<String, ViewStoreError> {
    check_view_name(&id.view)?;
    Ok(format!("fv_{}_v{}_b{}", id.view, id.version, id.build))
}

/// A stored checkpoint as a position (see [`ViewStoreError::checkpoint`]).
fn position(id: &TableId, stored: i64) -> Result<u64, ViewStoreError> {
    ViewStoreError::checkpoint(BACKEND, id, stored)
}

/// A position as SQLite stores it.
fn stored(id: &TableId, position: u64) -> Result<i64, ViewStoreError> {
    i64::try_from(position).map_err(|_| {
        ViewStoreError::corrupt(
            BACKEND,
            &id.view,
            format!("table {id}: checkpoint {position} does not fit a SQLite integer"),
        )
    })
}

/// The registry of view tables and their checkpoints.
const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS factum_view_tables (
    view TEXT NOT NULL, version INTEGER NOT NULL, build INTEGER NOT NULL,
    state TEXT NOT NULL, position INTEGER NOT NULL,
    PRIMARY KEY (view, version, build))";

impl SqliteViewStore {
    /// Opens (creating if needed) the view tables in the SQLite file at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, ViewStoreError> {
        let inner = Connections::open(path.as_ref(), "NORMAL", SCHEMA, |context, e| {
            ViewStoreError::backend(BACKEND, context, e)
        })?;
        Ok(SqliteViewStore {
            inner: Arc::new(inner),
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        self.inner.path()
    }
}

struct SqliteTable {
    id: TableId,
    inner: Arc<Connections>,
    rows: Arc<str>,
    ix: Arc<str>,
}

fn bytes(row: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<Vec<u8>> {
    Ok(row.get_ref(i)?.as_bytes()?.to_vec())
}

/// SQLite's n-th numbered parameter.
fn placeholder(n: usize) -> String {
    format!("?{n}")
}

/// A range query's text parameters, then its limit.
fn values(texts: &[&str], limit: usize) -> Vec<rusqlite::types::Value> {
    let mut out: Vec<rusqlite::types::Value> = texts
        .iter()
        .map(|t| rusqlite::types::Value::Text((*t).to_owned()))
        .collect();
    out.push(rusqlite::types::Value::Integer(
        i64::try_from(limit).unwrap_or(i64::MAX),
    ));
    out
}

fn text<'a>(id: &TableId, key: &str, row: &'a [u8]) -> Result<&'a str, ViewStoreError> {
    std::str::from_utf8(row).map_err(|e| {
        ViewStoreError::backend(BACKEND, format!("table {id}: row `{key}` is not UTF-8 JSON"), e)
    })
}

#[async_trait]
impl ViewTable for SqliteTable {
    fn id(&self) -> &TableId {
        &self.id
    }

    async fn checkpoint(&self) -> Result<u64, ViewStoreError> {
        let id = self.id.clone();
        self.inner
            .with(false, move |c| {
                let pos: Option<i64> = c
                    .query_row(
                        "SELECT position FROM factum_view_tables WHERE view=?1 AND version=?2 AND build=?3",
                        params![id.view, id.version, id.build],
                        |r| r.get(0),
                    )
                    .optional()
                    .map_err(err("reading a checkpoint"))?;
                match pos {
                    Some(p) => position(&id, p),
                    None => Err(ViewStoreError::NoTable { table: id }),
                }
            })
            .await
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, ViewStoreError> {
        let (rows, key) = (self.rows.clone(), key.to_owned());
        self.inner
            .with(false, move |c| {
                c.prepare_cached(&format!("SELECT row FROM \"{rows}\" WHERE key = ?1"))
                    .and_then(|mut s| s.query_row([&key], |r| bytes(r, 0)).optional())
                    .map_err(err(format!("reading row `{key}`")))
            })
            .await
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, ViewStoreError> {
        let (rows, keys) = (self.rows.clone(), keys.to_vec());
        self.inner
            .with(false, move |c| {
                let mut stmt = c
                    .prepare_cached(&format!("SELECT row FROM \"{rows}\" WHERE key = ?1"))
                    .map_err(err("preparing a row read"))?;
                keys.iter()
                    .map(|key| {
                        stmt.query_row([key], |r| bytes(r, 0))
                            .optional()
                            .map_err(err(format!("reading row `{key}`")))
                    })
                    .collect()
            })
            .await
    }

    async fn find(
        &self,
        index: &str,
        value: &str,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, ViewStoreError> {
        let (rows, ix) = (self.rows.clone(), self.ix.clone());
        let (index, value) = (index.to_owned(), value.to_owned());
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.inner
            .with(false, move |c| {
                let mut stmt = c
                    .prepare_cached(&format!(
                        "SELECT r.key, r.row FROM \"{ix}\" i JOIN \"{rows}\" r ON r.key = i.key
                         WHERE i.name = ?1 AND i.value = ?2 ORDER BY i.key LIMIT ?3"
                    ))
                    .map_err(err("preparing an index read"))?;
                let found = stmt
                    .query_map(params![index, value, limit], |r| Ok((r.get(0)?, bytes(r, 1)?)))
                    .and_then(|rows| rows.collect())
                    .map_err(err(format!("finding rows by {index} = {value}")))?;
                Ok(found)
            })
            .await
    }

    async fn list(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, ViewStoreError> {
        let rows = self.rows.clone();
        let after = after.map(str::to_owned);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.inner
            .with(false, move |c| {
                let sql = match after {
                    Some(_) => {
                        format!("SELECT key, row FROM \"{rows}\" WHERE key > ?1 ORDER BY key LIMIT ?2")
                    }
                    None => format!("SELECT key, row FROM \"{rows}\" WHERE ?1 IS NULL ORDER BY key LIMIT ?2"),
                };
                let mut stmt = c.prepare_cached(&sql).map_err(err("preparing a listing"))?;
                let found = stmt
                    .query_map(params![after, limit], |r| Ok((r.get(0)?, bytes(r, 1)?)))
                    .and_then(|rows| rows.collect())
                    .map_err(err("listing rows"))?;
                Ok(found)
            })
            .await
    }

    async fn range(
        &self,
        from: Bound<&str>,
        to: Bound<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, ViewStoreError> {
        let rows = self.rows.clone();
        // Keys are TEXT with SQLite's default BINARY collation: byte order.
        let (range, next) = RangeBuilder::new(placeholder, 1, "")
            .bounds("key", from, to)
            .finish();
        let sql = format!(
            "SELECT key, row FROM \"{rows}\" WHERE 1{} ORDER BY key LIMIT {}",
            range.conditions,
            placeholder(next)
        );
        let params = values(&range.params, limit);
        self.inner
            .with(false, move |c| {
                let mut stmt = c.prepare_cached(&sql).map_err(err("preparing a key range"))?;
                let found = stmt
                    .query_map(rusqlite::params_from_iter(params), |r| {
                        Ok((r.get(0)?, bytes(r, 1)?))
                    })
                    .and_then(|rows| rows.collect())
                    .map_err(err("reading a key range"))?;
                Ok(found)
            })
            .await
    }

    async fn find_range(
        &self,
        index: &str,
        from: Bound<&str>,
        to: Bound<&str>,
        after: Option<(&str, &str)>,
        limit: usize,
    ) -> Result<Vec<IndexedRow>, ViewStoreError> {
        let (rows, ix) = (self.rows.clone(), self.ix.clone());
        let (range, next) = RangeBuilder::new(placeholder, 2, "")
            .bounds("i.value", from, to)
            .after("i.value", "i.key", after)
            .finish();
        let sql = format!(
            "SELECT i.value, r.key, r.row FROM \"{ix}\" i JOIN \"{rows}\" r ON r.key = i.key
             WHERE i.name = ?1{} ORDER BY i.value, i.key LIMIT {}",
            range.conditions,
            placeholder(next)
        );
        let mut params = vec![rusqlite::types::Value::Text(index.to_owned())];
        params.extend(values(&range.params, limit));
        let index = index.to_owned();
        self.inner
            .with(false, move |c| {
                let mut stmt = c.prepare_cached(&sql).map_err(err("preparing an index range"))?;
                let found = stmt
                    .query_map(rusqlite::params_from_iter(params), |r| {
                        Ok(IndexedRow {
                            value: r.get(0)?,
                            key: r.get(1)?,
                            row: bytes(r, 2)?,
                        })
                    })
                    .and_then(|rows| rows.collect())
                    .map_err(err(format!("reading a range of index {index}")))?;
                Ok(found)
            })
            .await
    }

    async fn commit(&self, commit: Commit) -> Result<(), ViewStoreError> {
        let (id, rows, ix) = (self.id.clone(), self.rows.clone(), self.ix.clone());
        self.inner
            .with(true, move |c| {
                let tx = c
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(err("beginning a commit"))?;
                let (to, from) = (stored(&id, commit.to)?, stored(&id, commit.from)?);
                let moved = tx
                    .execute(
                        "UPDATE factum_view_tables SET position = ?1
                         WHERE view = ?2 AND version = ?3 AND build = ?4 AND position = ?5",
                        params![to, id.view, id.version, id.build, from],
                    )
                    .map_err(err("moving the checkpoint"))?;
                if moved == 0 {
                    let found: Option<i64> = tx
                        .query_row(
                            "SELECT position FROM factum_view_tables WHERE view=?1 AND version=?2 AND build=?3",
                            params![id.view, id.version, id.build],
                            |r| r.get(0),
                        )
                        .optional()
                        .map_err(err("reading a checkpoint"))?;
                    return Err(match found {
                        Some(found) => ViewStoreError::CheckpointMoved {
                            found: position(&id, found)?,
                            table: id,
                            expected: commit.from,
                        },
                        None => ViewStoreError::NoTable { table: id },
                    });
                }
                {
                    let mut upsert = tx
                        .prepare_cached(&format!(
                            "INSERT INTO \"{rows}\" (key, row) VALUES (?1, ?2)
                             ON CONFLICT (key) DO UPDATE SET row = excluded.row"
                        ))
                        .map_err(err("preparing an upsert"))?;
                    let mut delete = tx
                        .prepare_cached(&format!("DELETE FROM \"{rows}\" WHERE key = ?1"))
                        .map_err(err("preparing a delete"))?;
                    let mut unindex = tx
                        .prepare_cached(&format!("DELETE FROM \"{ix}\" WHERE key = ?1"))
                        .map_err(err("preparing an index delete"))?;
                    let mut index = tx
                        .prepare_cached(&format!("INSERT INTO \"{ix}\" (name, value, key) VALUES (?1, ?2, ?3)"))
                        .map_err(err("preparing an index insert"))?;
                    let indexed = commit.rows.iter().any(|w| !w.indexes.is_empty());
                    for write in &commit.rows {
                        if indexed {
                            unindex
                                .execute([&write.key])
                                .map_err(err(format!("table {id}: unindexing row `{}`", write.key)))?;
                        }
                        match &write.row {
                            Some(row) => {
                                upsert
                                    .execute(params![write.key, text(&id, &write.key, row)?])
                                    .map_err(err(format!("writing row `{}`", write.key)))?;
                                for (name, value) in &write.indexes {
                                    index
                                        .execute(params![name, value, write.key])
                                        .map_err(err(format!("indexing row `{}`", write.key)))?;
                                }
                            }
                            None => {
                                delete
                                    .execute([&write.key])
                                    .map_err(err(format!("deleting row `{}`", write.key)))?;
                                unindex
                                .execute([&write.key])
                                .map_err(err(format!("table {id}: unindexing row `{}`", write.key)))?;
                            }
                        }
                    }
                }
                crate::fault::point("view.commit.inside")?;
                tx.commit().map_err(err("committing"))
            })
            .await
    }
}

#[async_trait]
impl ViewStore for SqliteViewStore {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    async fn tables(&self, view: &str) -> Result<Vec<TableInfo>, ViewStoreError> {
        let view = view.to_owned();
        self.inner
            .with(false, move |c| {
                let mut stmt = c
                    .prepare_cached(
                        "SELECT version, build, state, position FROM factum_view_tables
                         WHERE view = ?1 ORDER BY version, build",
                    )
                    .map_err(err("preparing the table list"))?;
                let raw: Vec<(u32, u32, String, i64)> = stmt
                    .query_map([&view], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
                    .and_then(|rows| rows.collect())
                    .map_err(err("listing view tables"))?;
                let mut out = Vec::with_capacity(raw.len());
                for (version, build, state, stored) in raw {
                    let Some(state) = TableState::parse(&state) else {
                        continue;
                    };
                    let id = TableId {
                        view: view.clone(),
                        version,
                        build,
                    };
                    let position = position(&id, stored)?;
                    out.push(TableInfo { id, state, position });
                }
                Ok(out)
            })
            .await
    }

    async fn open(
        &self,
        id: &TableId,
        _indexes: &[&'static str],
        state: TableState,
    ) -> Result<Arc<dyn ViewTable>, ViewStoreError> {
        let name = table_name(id)?;
        let table = SqliteTable {
            id: id.clone(),
            inner: self.inner.clone(),
            rows: Arc::from(name.as_str()),
            ix: Arc::from(format!("{name}_ix").as_str()),
        };
        let id = id.clone();
        self.inner
            .with(true, move |c| {
                let tx = c
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(err("beginning a table creation"))?;
                tx.execute_batch(&format!(
                    "CREATE TABLE IF NOT EXISTS \"{name}\" (key TEXT PRIMARY KEY, row TEXT NOT NULL) WITHOUT ROWID;
                     CREATE TABLE IF NOT EXISTS \"{name}_ix\" (name TEXT NOT NULL, value TEXT NOT NULL,
                        key TEXT NOT NULL, PRIMARY KEY (name, value, key)) WITHOUT ROWID;
                     CREATE INDEX IF NOT EXISTS \"{name}_ix_key\" ON \"{name}_ix\" (key);"
                ))
                .map_err(err(format!("creating table {id}")))?;
                tx.execute(
                    "INSERT OR IGNORE INTO factum_view_tables (view, version, build, state, position)
                     VALUES (?1, ?2, ?3, ?4, 0)",
                    params![id.view, id.version, id.build, state.as_str()],
                )
                .map_err(err(format!("registering table {id}")))?;
                tx.commit().map_err(err("committing a table creation"))
            })
            .await?;
        Ok(Arc::new(table))
    }

    async fn activate(&self, id: &TableId) -> Result<(), ViewStoreError> {
        let id = id.clone();
        self.inner
            .with(true, move |c| {
                let tx = c
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(err("beginning a swap"))?;
                drop_retired_in(&tx, &id.view)?;
                tx.execute(
                    "UPDATE factum_view_tables SET state = 'retired' WHERE view = ?1 AND NOT (version = ?2 AND build = ?3)",
                    params![id.view, id.version, id.build],
                )
                .map_err(err("retiring the old tables"))?;
                let n = tx
                    .execute(
                        "UPDATE factum_view_tables SET state = 'active' WHERE view = ?1 AND version = ?2 AND build = ?3",
                        params![id.view, id.version, id.build],
                    )
                    .map_err(err(format!("activating table {id}")))?;
                if n == 0 {
                    return Err(ViewStoreError::NoTable { table: id });
                }
                tx.commit().map_err(err("committing a swap"))
            })
            .await
    }

    async fn drop_retired(&self, view: &str) -> Result<(), ViewStoreError> {
        let view = view.to_owned();
        self.inner
            .with(true, move |c| {
                let tx = c
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(err("beginning a drop"))?;
                drop_retired_in(&tx, &view)?;
                tx.commit().map_err(err("committing a drop"))
            })
            .await
    }

    async fn try_lease(&self, _view: &str) -> Result<Option<Box<dyn Lease>>, ViewStoreError> {
        Ok(Some(Box::new(LocalLease)))
    }
}

fn drop_retired_in(tx: &rusqlite::Transaction<'_>, view: &str) -> Result<(), ViewStoreError> {
    let retired: Vec<(u32, u32)> = {
        let mut stmt = tx
            .prepare("SELECT version, build FROM factum_view_tables WHERE view = ?1 AND state = 'retired'")
            .map_err(err("listing retired tables"))?;
        stmt.query_map([view], |r| Ok((r.get(0)?, r.get(1)?)))
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(err("listing retired tables"))?
    };
    for (version, build) in retired {
        let other = TableId {
            view: view.to_owned(),
            version,
            build,
        };
        let name = table_name(&other)?;
        tx.execute_batch(&format!(
            "DROP TABLE IF EXISTS \"{name}\"; DROP TABLE IF EXISTS \"{name}_ix\";"
        ))
        .map_err(err(format!("dropping table {other}")))?;
        tx.execute(
            "DELETE FROM factum_view_tables WHERE view = ?1 AND version = ?2 AND build = ?3",
            params![view, version, build],
        )
        .map_err(err(format!("dropping table {other}")))?;
    }
    Ok(())
}

impl From<Joining> for ViewStoreError {
    fn from(j: Joining) -> Self {
        ViewStoreError::backend(BACKEND, "joining a blocking task", j.0)
    }
}
