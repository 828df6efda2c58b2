//! The storage-backend interface of views: what a view store must do (tables
//! with a checkpoint, an atomic commit of rows and checkpoint with a
//! compare-and-set, leases), for the memory, SQLite and PostgreSQL backends.

use std::fmt;
use std::ops::Bound;
use std::sync::Arc;

use async_trait::async_trait;

use super::is_valid_view_name;
use crate::process::Lease;

/// One physical table of a view: a version, and a build number that grows with
/// each on-demand rebuild of the same version.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TableId {
    /// The view's name.
    pub view: String,
    /// The view's logic version.
    pub version: u32,
    /// Which build of that version.
    pub build: u32,
}

impl fmt::Display for TableId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} v{} build {}", self.view, self.version, self.build)
    }
}

/// The role of a physical table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableState {
    /// Serves queries.
    Active,
    /// Being built beside the active one; not yet served.
    Building,
    /// Replaced by a swap; dropped after a grace period, so queries that
    /// picked it just before the swap still finish.
    Retired,
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
impl TableState {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            TableState::Active => "active",
            TableState::Building => "building",
            TableState::Retired => "retired",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(TableState::Active),
            "building" => Some(TableState::Building),
            "retired" => Some(TableState::Retired),
            _ => None,
        }
    }
}

/// A physical table and where it stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableInfo {
    /// Which table.
    pub id: TableId,
    /// Its role.
    pub state: TableState,
    /// Its checkpoint: the last global position folded into it.
    pub position: u64,
}

/// A row found through an index range: its index value, key and encoded row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexedRow {
    /// The row's value of the index.
    pub value: String,
    /// The row key.
    pub key: String,
    /// The encoded row.
    pub row: Vec<u8>,
}

/// One row change of a commit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowWrite {
    /// The row key.
    pub key: String,
    /// The encoded row, or `None` to delete it.
    pub row: Option<Vec<u8>>,
    /// The row's index values (empty for a delete).
    pub indexes: Vec<(&'static str, String)>,
}

/// The rows a batch changed and the checkpoint move, applied atomically.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Commit {
    /// The checkpoint the batch was folded on; the commit fails with
    /// [`ViewStoreError::CheckpointMoved`] if the table is elsewhere.
    pub from: u64,
    /// The new checkpoint.
    pub to: u64,
    /// The changed rows.
    pub rows: Vec<RowWrite>,
}

/// A failure of view storage.
#[derive(Debug, thiserror::Error)]
pub enum ViewStoreError {
    /// Another runner moved the checkpoint first; this batch was not applied.
    #[error("table {table}: checkpoint is at {found}, the batch was folded on {expected}")]
    CheckpointMoved {
        /// The table.
        table: TableId,
        /// The checkpoint the batch expected.
        expected: u64,
        /// The checkpoint found.
        found: u64,
    },
    /// The table does not exist (dropped by a swap in another process).
    #[error("table {table} does not exist")]
    NoTable {
        /// The table.
        table: TableId,
    },
    /// A stored value is out of range (a negative or hand-edited checkpoint,
    /// version or build): the view's storage is corrupt and needs repair.
    #[error("{backend} view store: view {view}: corrupt table: {detail}")]
    Corrupt {
        /// Which store.
        backend: &'static str,
        /// The view.
        view: String,
        /// What is wrong, naming the table.
        detail: String,
    },
    /// The view's name cannot name a table (only `[a-z][a-z0-9_]{0,39}` can).
    #[error(
        "view `{view}`: invalid view name; a view name is 1 to 40 characters of `a-z`, `0-9` and `_`, starting with a letter"
    )]
    InvalidName {
        /// The name.
        view: String,
    },
    /// The backend failed.
    #[error("{backend} view store: {context}: {source}")]
    Backend {
        /// Which store.
        backend: &'static str,
        /// What it was doing.
        context: String,
        /// The backend's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// The tighter of two lower bounds: where a page cursor (`b`) and a range's
/// start (`a`) both limit a query, the later one wins.
pub(crate) fn tighter_lower<'a>(a: Bound<&'a str>, b: Bound<&'a str>) -> Bound<&'a str> {
    fn start(bound: Bound<&str>) -> Option<&str> {
        match bound {
            Bound::Included(s) | Bound::Excluded(s) => Some(s),
            Bound::Unbounded => None,
        }
    }
    match (start(a), start(b)) {
        (None, _) => b,
        (_, None) => a,
        (Some(x), Some(y)) if x > y => a,
        (Some(x), Some(y)) if y > x => b,
        // The same start: excluding it is the tighter bound.
        _ => match a {
            Bound::Excluded(_) => a,
            _ => b,
        },
    }
}

/// The SQL conditions of a range query, written once for the SQLite and
/// PostgreSQL view stores: `AND column >= ?n …` for each bound (and, for an
/// index page, the `(value, key)` cursor), with the parameters in the order
/// their placeholders number them, from `first` on. `placeholder` spells the
/// n-th parameter (`?n`, `$n`); `bytes` makes a column compare as bytes
/// (`""` where it does already, ` COLLATE "C"` on PostgreSQL).
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) struct RangeSql<'a> {
    /// The conditions, each starting with ` AND `.
    pub conditions: String,
    /// The text parameters they name, in placeholder order.
    pub params: Vec<&'a str>,
}

/// Builds a [`RangeSql`].
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) struct RangeBuilder<'a> {
    placeholder: fn(usize) -> String,
    next: usize,
    bytes: &'static str,
    sql: RangeSql<'a>,
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
impl<'a> RangeBuilder<'a> {
    /// Placeholders numbered from `first`; `bytes` as in [`RangeSql`].
    pub(crate) fn new(placeholder: fn(usize) -> String, first: usize, bytes: &'static str) -> Self {
        RangeBuilder {
            placeholder,
            next: first,
            bytes,
            sql: RangeSql {
                conditions: String::new(),
                params: Vec::new(),
            },
        }
    }

    fn param(&mut self, value: &'a str) -> String {
        self.sql.params.push(value);
        let p = (self.placeholder)(self.next);
        self.next += 1;
        p
    }

    /// `column` within `from` and `to`.
    pub(crate) fn bounds(mut self, column: &str, from: Bound<&'a str>, to: Bound<&'a str>) -> Self {
        for (bound, inclusive, exclusive) in [(from, ">=", ">"), (to, "<=", "<")] {
            let (op, value) = match bound {
                Bound::Included(v) => (inclusive, v),
                Bound::Excluded(v) => (exclusive, v),
                Bound::Unbounded => continue,
            };
            let p = self.param(value);
            let bytes = self.bytes;
            self.sql
                .conditions
                .push_str(&format!(" AND {column}{bytes} {op} {p}"));
        }
        self
    }

    /// Rows after the cursor `(value, key)` in `(value_column, key_column)` order.
    pub(crate) fn after(
        mut self,
        value_column: &str,
        key_column: &str,
        after: Option<(&'a str, &'a str)>,
    ) -> Self {
        if let Some((value, key)) = after {
            let v = self.param(value);
            let k = self.param(key);
            let bytes = self.bytes;
            self.sql.conditions.push_str(&format!(
                " AND ({value_column}{bytes} > {v} OR ({value_column} = {v} AND {key_column}{bytes} > {k}))"
            ));
        }
        self
    }

    /// The conditions and their parameters; the next placeholder number.
    pub(crate) fn finish(self) -> (RangeSql<'a>, usize) {
        (self.sql, self.next)
    }
}

/// [`ViewStoreError::InvalidName`] unless `view` is a valid view name.
pub(crate) fn check_view_name(view: &str) -> Result<(), ViewStoreError> {
    if is_valid_view_name(view) {
        Ok(())
    } else {
        Err(ViewStoreError::InvalidName {
            view: view.to_owned(),
        })
    }
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
impl ViewStoreError {
    pub(crate) fn corrupt(backend: &'static str, view: &str, detail: impl Into<String>) -> Self {
        ViewStoreError::Corrupt {
            backend,
            view: view.to_owned(),
            detail: detail.into(),
        }
    }

    /// A checkpoint read back from a table's registry row as a position; a
    /// negative one means the row was edited or corrupted.
    pub(crate) fn checkpoint(backend: &'static str, id: &TableId, stored: i64) -> Result<u64, Self> {
        u64::try_from(stored).map_err(|_| {
            Self::corrupt(
                backend,
                &id.view,
                format!("table {id}: checkpoint {stored} in factum_view_tables is negative"),
            )
        })
    }

    pub(crate) fn backend(
        backend: &'static str,
        context: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        ViewStoreError::Backend {
            backend,
            context: context.into(),
            source: Box::new(source),
        }
    }
}

/// A failure injected by a test at a fault point (only with the `fault-points` feature).
impl From<crate::fault::Fault> for ViewStoreError {
    fn from(fault: crate::fault::Fault) -> Self {
        ViewStoreError::Backend {
            backend: "factum::fault",
            context: "an injected failure".to_owned(),
            source: Box::new(fault),
        }
    }
}

/// Rows of one physical table. Reads may run concurrently with a commit.
#[async_trait]
pub trait ViewTable: Send + Sync + 'static {
    /// Which table.
    fn id(&self) -> &TableId;
    /// The last global position folded into the table (0 when empty).
    async fn checkpoint(&self) -> Result<u64, ViewStoreError>;
    /// One encoded row.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, ViewStoreError>;
    /// Several encoded rows, in the order of `keys`.
    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, ViewStoreError>;
    /// Rows whose index `index` has `value`, in key order, at most `limit`.
    async fn find(
        &self,
        index: &str,
        value: &str,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, ViewStoreError>;
    /// Rows with key `> after` (all when `None`), in key order, at most `limit`.
    async fn list(&self, after: Option<&str>, limit: usize)
    -> Result<Vec<(String, Vec<u8>)>, ViewStoreError>;
    /// Rows with keys within `from` and `to`, in key order, at most `limit`.
    /// Keys compare as bytes (what `list` orders by) on every backend.
    async fn range(
        &self,
        from: Bound<&str>,
        to: Bound<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, ViewStoreError>;
    /// Rows whose index `index` has a value within `from` and `to`, in
    /// (value, key) order, after the row `after` names as `(value, key)` when
    /// given, at most `limit`; each with its index value. Values compare as
    /// bytes on every backend.
    async fn find_range(
        &self,
        index: &str,
        from: Bound<&str>,
        to: Bound<&str>,
        after: Option<(&str, &str)>,
        limit: usize,
    ) -> Result<Vec<IndexedRow>, ViewStoreError>;
    /// Applies the row changes and moves the checkpoint, all or nothing.
    async fn commit(&self, commit: Commit) -> Result<(), ViewStoreError>;
}

/// Where views keep their tables and checkpoints.
#[async_trait]
pub trait ViewStore: Send + Sync + 'static {
    /// A short name for messages ("memory", "sqlite", "postgres").
    fn backend(&self) -> &'static str;
    /// Every table of `view`, with its role and checkpoint.
    async fn tables(&self, view: &str) -> Result<Vec<TableInfo>, ViewStoreError>;
    /// Opens a table, creating it empty with `state` if it does not exist.
    async fn open(
        &self,
        id: &TableId,
        indexes: &[&'static str],
        state: TableState,
    ) -> Result<Arc<dyn ViewTable>, ViewStoreError>;
    /// Makes `id` the active table of its view and retires every other table
    /// of the view, in one transaction (dropping tables retired earlier).
    async fn activate(&self, id: &TableId) -> Result<(), ViewStoreError>;
    /// Drops the retired tables of `view`.
    async fn drop_retired(&self, view: &str) -> Result<(), ViewStoreError>;
    /// Tries to become the one runner of `view`; `None` when another process is.
    async fn try_lease(&self, view: &str) -> Result<Option<Box<dyn Lease>>, ViewStoreError>;
}
