//! View tables in PostgreSQL: one table per view, version and build (`key TEXT
//! PRIMARY KEY, row TEXT` holding the row as JSON), an index table beside it,
//! and the checkpoints in `factum_view_tables`, updated in the same
//! transaction as the rows (with a compare-and-set on the old checkpoint).
//!
//! Several processes share the tables; exactly one runs each view. The runner
//! holds a session-level `pg_try_advisory_lock` on a dedicated connection: if
//! its process dies the connection drops and the server frees the lock, and
//! another process, retrying every second, takes over from the stored checkpoint.

use std::ops::Bound;
use std::sync::Arc;

use async_trait::async_trait;

use super::lease::{self, Conn, quote_ident};
use crate::process::Lease;
use crate::view::backend::{
    Commit, IndexedRow, RangeBuilder, TableId, TableInfo, TableState, ViewStore, ViewStoreError, ViewTable,
    check_view_name,
};

const BACKEND: &str = "postgres";
/// The advisory lock that serialises DDL (two processes creating one table).
const DDL_LOCK: i64 = 0x6661_6374_6464_6c00;

/// A [`ViewStore`] in a PostgreSQL database (optionally in its own schema).
#[derive(Clone)]
pub struct PostgresViewStore {
    inner: Arc<Inner>,
}

struct Inner {
    url: String,
    schema: Option<String>,
    writer: tokio::sync::Mutex<Conn>,
    reader: Conn,
}

impl std::fmt::Debug for PostgresViewStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresViewStore")
            .field("schema", &self.inner.schema)
            .finish_non_exhaustive()
    }
}

fn err(context: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> ViewStoreError {
    let context = context.into();
    move |e| {
        // tokio-postgres displays a server error as "db error"; the message is in its source.
        let context = match e.as_db_error() {
            Some(db) => format!("{context} ({}: {})", db.code().code(), db.message()),
            None => context,
        };
        ViewStoreError::backend(BACKEND, context, e)
    }
}

async fn connect(url: &str, schema: Option<&str>) -> Result<Conn, ViewStoreError> {
    lease::connect(url, schema).await.map_err(err("connecting"))
}

/// The longest identifier PostgreSQL keeps whole; longer ones are cut silently.
const MAX_IDENT: usize = 63;

/// `fv_<view>_v<version>_b<build>`. Only valid view names (`[a-z][a-z0-9_]{0,39}`)
/// are accepted, and the longest derived identifier (`…_ix_key`) must fit in
/// 63 bytes, so PostgreSQL neither folds nor truncates it into another view's table.
fn table_name(id: &TableId) -> Result<String, ViewStoreError> {
    check_view_name(&id.view)?;
    let name = format!("fv_{}_v{}_b{}", id.view, id.version, id.build);
    if name.len() + "_ix_key".len() > MAX_IDENT {
        return Err(ViewStoreError::backend(
            BACKEND,
            format!("table {id}"),
            std::io::Error::other(format!(
                "table name `{name}_ix_key` is longer than PostgreSQL's {MAX_IDENT} bytes; use a shorter view name"
            )),
        ));
    }
    Ok(name)
}

/// A stored checkpoint as a position (see [`ViewStoreError::checkpoint`]).
fn position(id: &TableId, stored: i64) -> Result<u64, ViewStoreError> {
    ViewStoreError::checkpoint(BACKEND, id, stored)
}

/// A position as PostgreSQL stores it (`BIGINT`).
fn stored_position(id: &TableId, position: u64) -> Result<i64, ViewStoreError> {
    i64::try_from(position).map_err(|_| {
        ViewStoreError::corrupt(
            BACKEND,
            &id.view,
            format!("table {id}: checkpoint {position} does not fit a BIGINT"),
        )
    })
}

/// A table's version and build as PostgreSQL stores them (`INTEGER`).
fn stored_id(id: &TableId) -> Result<(i32, i32), ViewStoreError> {
    match (i32::try_from(id.version), i32::try_from(id.build)) {
        (Ok(version), Ok(build)) => Ok((version, build)),
        _ => Err(ViewStoreError::corrupt(
            BACKEND,
            &id.view,
            format!("table {id}: version or build does not fit an INTEGER"),
        )),
    }
}

/// A stored version and build; negative ones mean the table list was edited or corrupted.
fn read_id(view: &str, version: i32, build: i32) -> Result<TableId, ViewStoreError> {
    match (u32::try_from(version), u32::try_from(build)) {
        (Ok(version), Ok(build)) => Ok(TableId {
            view: view.to_owned(),
            version,
            build,
        }),
        _ => Err(ViewStoreError::corrupt(
            BACKEND,
            view,
            format!("factum_view_tables lists version {version} build {build}, which is negative"),
        )),
    }
}

impl PostgresViewStore {
    /// Connects to `url` (`postgres://user@host:port/db`) and creates the
    /// checkpoint table if needed, in the connection's default schema.
    pub async fn connect(url: &str) -> Result<Self, ViewStoreError> {
        Self::open(url, None).await
    }

    /// Like [`connect`](Self::connect), with every table in `schema` (created if needed).
    pub async fn connect_in_schema(url: &str, schema: &str) -> Result<Self, ViewStoreError> {
        Self::open(url, Some(schema)).await
    }

    async fn open(url: &str, schema: Option<&str>) -> Result<Self, ViewStoreError> {
        let mut setup = connect(url, None).await?;
        let tx = setup.client.transaction().await.map_err(err("beginning setup"))?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&DDL_LOCK])
            .await
            .map_err(err("locking for setup"))?;
        if let Some(schema) = schema {
            tx.batch_execute(&format!(
                "CREATE SCHEMA IF NOT EXISTS {0}; SET LOCAL search_path TO {0}",
                quote_ident(schema)
            ))
            .await
            .map_err(err(format!("creating schema {schema}")))?;
        }
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS factum_view_tables (
                view TEXT NOT NULL, version INTEGER NOT NULL, build INTEGER NOT NULL,
                state TEXT NOT NULL, position BIGINT NOT NULL,
                PRIMARY KEY (view, version, build))",
        )
        .await
        .map_err(err("creating factum_view_tables"))?;
        tx.commit().await.map_err(err("committing setup"))?;
        drop(setup);
        let writer = connect(url, schema).await?;
        let reader = connect(url, schema).await?;
        Ok(PostgresViewStore {
            inner: Arc::new(Inner {
                url: url.to_owned(),
                schema: schema.map(str::to_owned),
                writer: tokio::sync::Mutex::new(writer),
                reader,
            }),
        })
    }
}

struct PgTable {
    id: TableId,
    inner: Arc<Inner>,
    rows: String,
    ix: String,
}

/// PostgreSQL's n-th numbered parameter.
fn placeholder(n: usize) -> String {
    format!("${n}")
}

fn row_bytes(row: &tokio_postgres::Row, i: usize) -> Result<Vec<u8>, ViewStoreError> {
    let text: String = row.try_get(i).map_err(err("reading a row column"))?;
    Ok(text.into_bytes())
}

fn utf8<'a>(id: &TableId, key: &str, bytes: &'a [u8]) -> Result<&'a str, ViewStoreError> {
    std::str::from_utf8(bytes).map_err(|e| {
        ViewStoreError::backend(BACKEND, format!("table {id}: row `{key}` is not UTF-8 JSON"), e)
    })
}

async fn position_of(
    client: &impl tokio_postgres::GenericClient,
    id: &TableId,
) -> Result<Option<u64>, ViewStoreError> {
    let (version, build) = stored_id(id)?;
    let row = client
        .query_opt(
            "SELECT position FROM factum_view_tables WHERE view = $1 AND version = $2 AND build = $3",
            &[&id.view, &version, &build],
        )
        .await
        .map_err(err(format!("reading the checkpoint of {id}")))?;
    match row {
        Some(r) => {
            let stored: i64 = r
                .try_get(0)
                .map_err(err(format!("reading the checkpoint of {id}")))?;
            position(id, stored).map(Some)
        }
        None => Ok(None),
    }
}

#[async_trait]
impl ViewTable for PgTable {
    fn id(&self) -> &TableId {
        &self.id
    }

    async fn checkpoint(&self) -> Result<u64, ViewStoreError> {
        position_of(&self.inner.reader.client, &self.id)
            .await?
            .ok_or_else(|| ViewStoreError::NoTable {
                table: self.id.clone(),
            })
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, ViewStoreError> {
        let row = self
            .inner
            .reader
            .client
            .query_opt(&format!("SELECT row FROM {} WHERE key = $1", self.rows), &[&key])
            .await
            .map_err(err(format!("reading row `{key}` of {}", self.id)))?;
        row.map(|r| row_bytes(&r, 0)).transpose()
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, ViewStoreError> {
        let rows = self
            .inner
            .reader
            .client
            .query(
                &format!("SELECT key, row FROM {} WHERE key = ANY($1)", self.rows),
                &[&keys],
            )
            .await
            .map_err(err(format!("reading rows of {}", self.id)))?;
        let mut found = std::collections::HashMap::with_capacity(rows.len());
        for r in rows {
            let key: String = r.try_get(0).map_err(err("reading a key"))?;
            found.insert(key, row_bytes(&r, 1)?);
        }
        Ok(keys.iter().map(|k| found.remove(k)).collect())
    }

    async fn find(
        &self,
        index: &str,
        value: &str,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, ViewStoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self
            .inner
            .reader
            .client
            .query(
                &format!(
                    "SELECT r.key, r.row FROM {} i JOIN {} r ON r.key = i.key
                     WHERE i.name = $1 AND i.value = $2 ORDER BY i.key LIMIT $3",
                    self.ix, self.rows
                ),
                &[&index, &value, &limit],
            )
            .await
            .map_err(err(format!("finding rows by {index} = {value} in {}", self.id)))?;
        rows.iter()
            .map(|r| Ok((r.try_get(0).map_err(err("reading a key"))?, row_bytes(r, 1)?)))
            .collect()
    }

    async fn range(
        &self,
        from: Bound<&str>,
        to: Bound<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, ViewStoreError> {
        // Keys are `COLLATE "C"` (byte order, the primary key's own order).
        let (range, next) = RangeBuilder::new(placeholder, 1, "")
            .bounds("key", from, to)
            .finish();
        let sql = format!(
            "SELECT key, row FROM {} WHERE true{} ORDER BY key COLLATE \"C\" LIMIT {}",
            self.rows,
            range.conditions,
            placeholder(next)
        );
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = range
            .params
            .iter()
            .map(|p| p as &(dyn tokio_postgres::types::ToSql + Sync))
            .collect();
        params.push(&limit);
        let rows = self
            .inner
            .reader
            .client
            .query(&sql, &params)
            .await
            .map_err(err(format!("reading a key range of {}", self.id)))?;
        rows.iter()
            .map(|r| Ok((r.try_get(0).map_err(err("reading a key"))?, row_bytes(r, 1)?)))
            .collect()
    }

    async fn find_range(
        &self,
        index: &str,
        from: Bound<&str>,
        to: Bound<&str>,
        after: Option<(&str, &str)>,
        limit: usize,
    ) -> Result<Vec<IndexedRow>, ViewStoreError> {
        // Index values compare as bytes, like SQLite's and memory's (tables
        // created before range queries have a `value` column in the
        // database's collation: the explicit collation keeps them right).
        let (range, next) = RangeBuilder::new(placeholder, 2, " COLLATE \"C\"")
            .bounds("i.value", from, to)
            .after("i.value", "i.key", after)
            .finish();
        let sql = format!(
            "SELECT i.value, r.key, r.row FROM {} i JOIN {} r ON r.key = i.key
             WHERE i.name = $1{} ORDER BY i.value COLLATE \"C\", i.key COLLATE \"C\" LIMIT {}",
            self.ix,
            self.rows,
            range.conditions,
            placeholder(next)
        );
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = vec![&index];
        params.extend(
            range
                .params
                .iter()
                .map(|p| p as &(dyn tokio_postgres::types::ToSql + Sync)),
        );
        params.push(&limit);
        let rows = self
            .inner
            .reader
            .client
            .query(&sql, &params)
            .await
            .map_err(err(format!("reading a range of index {index} in {}", self.id)))?;
        rows.iter()
            .map(|r| {
                Ok(IndexedRow {
                    value: r.try_get(0).map_err(err("reading an index value"))?,
                    key: r.try_get(1).map_err(err("reading a key"))?,
                    row: row_bytes(r, 2)?,
                })
            })
            .collect()
    }

    async fn list(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, ViewStoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self
            .inner
            .reader
            .client
            .query(
                &format!(
                    "SELECT key, row FROM {} WHERE $1::text IS NULL OR key > $1 ORDER BY key COLLATE \"C\" LIMIT $2",
                    self.rows
                ),
                &[&after, &limit],
            )
            .await
            .map_err(err(format!("listing rows of {}", self.id)))?;
        rows.iter()
            .map(|r| Ok((r.try_get(0).map_err(err("reading a key"))?, row_bytes(r, 1)?)))
            .collect()
    }

    async fn commit(&self, commit: Commit) -> Result<(), ViewStoreError> {
        let mut conn = self.inner.writer.lock().await;
        let tx = conn
            .client
            .transaction()
            .await
            .map_err(err("beginning a commit"))?;
        let id = &self.id;
        let (version, build) = stored_id(id)?;
        let (to, from) = (stored_position(id, commit.to)?, stored_position(id, commit.from)?);
        let moved = tx
            .execute(
                "UPDATE factum_view_tables SET position = $1
                 WHERE view = $2 AND version = $3 AND build = $4 AND position = $5",
                &[&to, &id.view, &version, &build, &from],
            )
            .await
            .map_err(err("moving the checkpoint"))?;
        if moved == 0 {
            return Err(match position_of(&tx, id).await? {
                Some(found) => ViewStoreError::CheckpointMoved {
                    table: id.clone(),
                    expected: commit.from,
                    found,
                },
                None => ViewStoreError::NoTable { table: id.clone() },
            });
        }
        let (mut put_keys, mut put_rows, mut del_keys) = (Vec::new(), Vec::new(), Vec::new());
        let (mut ix_names, mut ix_values, mut ix_keys) = (Vec::new(), Vec::new(), Vec::new());
        let mut indexed = false;
        for write in &commit.rows {
            indexed |= !write.indexes.is_empty();
            match &write.row {
                Some(row) => {
                    put_keys.push(write.key.as_str());
                    put_rows.push(utf8(id, &write.key, row)?);
                    for (name, value) in &write.indexes {
                        ix_names.push(*name);
                        ix_values.push(value.as_str());
                        ix_keys.push(write.key.as_str());
                    }
                }
                None => del_keys.push(write.key.as_str()),
            }
        }
        if !put_keys.is_empty() {
            tx.execute(
                &format!(
                    "INSERT INTO {} (key, row) SELECT * FROM unnest($1::text[], $2::text[])
                     ON CONFLICT (key) DO UPDATE SET row = excluded.row",
                    self.rows
                ),
                &[&put_keys, &put_rows],
            )
            .await
            .map_err(err(format!("writing rows of {id}")))?;
        }
        if !del_keys.is_empty() {
            tx.execute(
                &format!("DELETE FROM {} WHERE key = ANY($1)", self.rows),
                &[&del_keys],
            )
            .await
            .map_err(err(format!("deleting rows of {id}")))?;
        }
        if indexed || !del_keys.is_empty() {
            let all: Vec<&str> = commit.rows.iter().map(|w| w.key.as_str()).collect();
            tx.execute(&format!("DELETE FROM {} WHERE key = ANY($1)", self.ix), &[&all])
                .await
                .map_err(err(format!("unindexing rows of {id}")))?;
        }
        if !ix_keys.is_empty() {
            tx.execute(
                &format!(
                    "INSERT INTO {} (name, value, key) SELECT * FROM unnest($1::text[], $2::text[], $3::text[])",
                    self.ix
                ),
                &[&ix_names, &ix_values, &ix_keys],
            )
            .await
            .map_err(err(format!("indexing rows of {id}")))?;
        }
        crate::fault::point("view.commit.inside")?;
        tx.commit().await.map_err(err(format!("committing to {id}")))
    }
}

#[async_trait]
impl ViewStore for PostgresViewStore {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    async fn tables(&self, view: &str) -> Result<Vec<TableInfo>, ViewStoreError> {
        let rows = self
            .inner
            .reader
            .client
            .query(
                "SELECT version, build, state, position FROM factum_view_tables WHERE view = $1 ORDER BY version, build",
                &[&view],
            )
            .await
            .map_err(err(format!("listing the tables of view {view}")))?;
        let mut out = Vec::new();
        for r in rows {
            let version: i32 = r.try_get(0).map_err(err("reading a version"))?;
            let build: i32 = r.try_get(1).map_err(err("reading a build"))?;
            let state: String = r.try_get(2).map_err(err("reading a state"))?;
            let stored: i64 = r.try_get(3).map_err(err("reading a position"))?;
            if let Some(state) = TableState::parse(&state) {
                let id = read_id(view, version, build)?;
                let position = position(&id, stored)?;
                out.push(TableInfo { id, state, position });
            }
        }
        Ok(out)
    }

    async fn open(
        &self,
        id: &TableId,
        _indexes: &[&'static str],
        state: TableState,
    ) -> Result<Arc<dyn ViewTable>, ViewStoreError> {
        let name = table_name(id)?;
        let (stored_version, stored_build) = stored_id(id)?;
        let (rows, ix) = (quote_ident(&name), quote_ident(&format!("{name}_ix")));
        let table = Arc::new(PgTable {
            id: id.clone(),
            inner: self.inner.clone(),
            rows: rows.clone(),
            ix: ix.clone(),
        });
        // A registered table exists (it is registered in the transaction that creates
        // it). Skipping the DDL then matters: `CREATE INDEX IF NOT EXISTS` locks the
        // table even when the index exists, which deadlocks with the runner's commits.
        if position_of(&self.inner.reader.client, id).await?.is_some() {
            return Ok(table);
        }
        let mut conn = self.inner.writer.lock().await;
        let tx = conn
            .client
            .transaction()
            .await
            .map_err(err("beginning a table creation"))?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&DDL_LOCK])
            .await
            .map_err(err("locking for a table creation"))?;
        tx.batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS {rows} (key TEXT COLLATE \"C\" PRIMARY KEY, row TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS {ix} (name TEXT NOT NULL, value TEXT COLLATE \"C\" NOT NULL, key TEXT COLLATE \"C\" NOT NULL,
                PRIMARY KEY (name, value, key));
             CREATE INDEX IF NOT EXISTS {} ON {ix} (key);",
            quote_ident(&format!("{name}_ix_key"))
        ))
        .await
        .map_err(err(format!("creating table {id}")))?;
        tx.execute(
            "INSERT INTO factum_view_tables (view, version, build, state, position) VALUES ($1, $2, $3, $4, 0)
             ON CONFLICT DO NOTHING",
            &[&id.view, &stored_version, &stored_build, &state.as_str()],
        )
        .await
        .map_err(err(format!("registering table {id}")))?;
        tx.commit().await.map_err(err("committing a table creation"))?;
        Ok(table)
    }

    async fn activate(&self, id: &TableId) -> Result<(), ViewStoreError> {
        let mut conn = self.inner.writer.lock().await;
        let tx = conn.client.transaction().await.map_err(err("beginning a swap"))?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&DDL_LOCK])
            .await
            .map_err(err("locking for a swap"))?;
        drop_retired_in(&tx, &id.view).await?;
        let (version, build) = stored_id(id)?;
        tx.execute(
            "UPDATE factum_view_tables SET state = 'retired' WHERE view = $1 AND NOT (version = $2 AND build = $3)",
            &[&id.view, &version, &build],
        )
        .await
        .map_err(err("retiring the old tables"))?;
        let n = tx
            .execute(
                "UPDATE factum_view_tables SET state = 'active' WHERE view = $1 AND version = $2 AND build = $3",
                &[&id.view, &version, &build],
            )
            .await
            .map_err(err(format!("activating table {id}")))?;
        if n == 0 {
            return Err(ViewStoreError::NoTable { table: id.clone() });
        }
        tx.commit().await.map_err(err("committing a swap"))
    }

    async fn drop_retired(&self, view: &str) -> Result<(), ViewStoreError> {
        let mut conn = self.inner.writer.lock().await;
        let tx = conn.client.transaction().await.map_err(err("beginning a drop"))?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&DDL_LOCK])
            .await
            .map_err(err("locking for a drop"))?;
        drop_retired_in(&tx, view).await?;
        tx.commit().await.map_err(err("committing a drop"))
    }

    async fn try_lease(&self, view: &str) -> Result<Option<Box<dyn Lease>>, ViewStoreError> {
        lease::try_lease(
            &self.inner.url,
            self.inner.schema.as_deref(),
            lease::VIEW_LOCKS,
            view,
        )
        .await
        .map_err(err(format!("taking the runner lock of view {view}")))
    }
}

async fn drop_retired_in(tx: &tokio_postgres::Transaction<'_>, view: &str) -> Result<(), ViewStoreError> {
    let retired = tx
        .query(
            "SELECT version, build FROM factum_view_tables WHERE view = $1 AND state = 'retired'",
            &[&view],
        )
        .await
        .map_err(err("listing retired tables"))?;
    for r in retired {
        let version: i32 = r.try_get(0).map_err(err("reading a version"))?;
        let build: i32 = r.try_get(1).map_err(err("reading a build"))?;
        let other = read_id(view, version, build)?;
        let name = table_name(&other)?;
        tx.batch_execute(&format!(
            "DROP TABLE IF EXISTS {}; DROP TABLE IF EXISTS {};",
            quote_ident(&name),
            quote_ident(&format!("{name}_ix"))
        ))
        .await
        .map_err(err(format!("dropping table {other}")))?;
        tx.execute(
            "DELETE FROM factum_view_tables WHERE view = $1 AND version = $2 AND build = $3",
            &[&view, &version, &build],
        )
        .await
        .map_err(err(format!("dropping table {other}")))?;
    }
    Ok(())
}
