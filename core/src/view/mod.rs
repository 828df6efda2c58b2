//! Views: left folds of the event log into rows shaped for readers, read in
//! O(1) by key (design §2 "Views").
//!
//! What a view promises:
//! - **Exactly once over the log.** A runner reads the global log from the
//!   view's checkpoint in batches, folds each batch into the rows it touches
//!   (each touched row is loaded once, gets all its events, is written once)
//!   and commits the changed rows *and* the new checkpoint in one transaction.
//!   After any crash the view resumes at its stored checkpoint: no event is
//!   skipped and none is applied twice. The commit is also a compare-and-set on
//!   the checkpoint, so even two runners that overlap (a network partition, a
//!   stale process) cannot apply a batch twice.
//! - **Read-your-writes.** [`ViewReader::wait_for`] resolves once the view has
//!   folded a given global position, e.g. [`Committed::position`](crate::Committed).
//!   It does not hang on a runner that cannot move: when the runner of this
//!   process fails [`FAILURES_BEFORE_WAIT_FAILS`] times in a row without the
//!   checkpoint moving (a poison event that does not decode, a broken table),
//!   `wait_for` returns [`ViewError::Failing`] with the runner's error. The
//!   runner itself keeps retrying every second and recovers by itself once
//!   the cause is fixed.
//! - **O(1) reads.** [`ViewReader::get`] is a hash lookup (memory) or a
//!   primary-key read (SQLite, PostgreSQL); `#[view(index = [field])]` adds a
//!   generated `find_by_<field>`; [`ViewReader::list`] pages in key order.
//! - **Blue/green rebuilds.** Bumping `#[view(version = …)]`, or calling
//!   [`App::rebuild_view`], builds a new table beside the live one from
//!   position 0 and swaps atomically once it has caught up; queries are served
//!   by the old table until then. During a version bump the old rows are read
//!   with the new row type, so keep the row type able to read them (serde
//!   defaults) or expect row decode errors from queries until the swap.
//! - **Rolling deploys.** A process whose view version is *older* than the
//!   active table's (the newer binary already swapped its version in) never
//!   builds nor takes over the view: it logs a warning naming both versions,
//!   serves the newer table and follows its checkpoint. Its queries work while
//!   its row type decodes the newer rows, and fail with
//!   [`ViewError::NewerRow`] otherwise.
//! - **One runner per view across processes** on PostgreSQL (a session-level
//!   advisory lock on a dedicated connection); other processes serve queries
//!   from the shared tables and take over within about a second when the
//!   runner's process dies.
//!
//! Writing a view:
//! ```
//! # use factum::prelude::*;
//! # use factum::view::{EventMeta, ViewOp};
//! # use serde::{Deserialize, Serialize};
//! # #[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)] pub struct Opened { pub owner: String }
//! # #[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)] pub struct Deposited { pub amount: u64 }
//! # #[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)] pub struct Closed {}
//! # #[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
//! # pub struct TransferredOut { pub to: String, pub amount: u64 }
//! #[derive(Default, Clone, Debug, PartialEq, Serialize, Deserialize)]
//! pub struct AccountSummary { owner: String, balance: u64, deposits: u32 }
//!
//! #[view(name = "account_summary", version = 1, index = [owner])]
//! impl AccountSummary {
//!     #[on] fn opened(&mut self, e: &Opened, meta: &EventMeta) { self.owner = e.owner.clone() }
//!     #[on] fn deposited(&mut self, e: &Deposited) { self.balance += e.amount; self.deposits += 1 }
//!     #[on] fn closed(&mut self, _e: &Closed) -> ViewOp { ViewOp::Delete }
//!     #[on(key = e.to.clone())] fn credited(&mut self, e: &TransferredOut) { self.balance += e.amount }
//! }
//! ```
//! A handler returns `()` (keep the row) or a [`ViewOp`]: `ViewOp::Delete`
//! removes the row (a later event for the key starts again from `Default`).
//! Rows are keyed by the event's stream id unless `#[on(key = …)]` says
//! otherwise; the key expression sees the handler's event and meta
//! parameters (also under the names `e` and `meta`) and yields anything
//! `ToString`. Handler bodies obey the rules: no clock (use
//! `meta.recorded_at`), no randomness, no side effects.

mod memory;
#[cfg(feature = "postgres")]
mod postgres;
mod runner;
mod sqlite;

pub use memory::MemoryViewStore;
#[cfg(feature = "postgres")]
pub use postgres::PostgresViewStore;
pub use sqlite::SqliteViewStore;

use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;
use std::ops::Deref;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::{broadcast, watch};
use uuid::Uuid;

use crate::codec::{Codec, CodecError};
use crate::event::DecodeError;
use crate::runtime::App;
use crate::store::{RecordedEvent, StoreError};
use crate::time::Timestamp;

pub(crate) use runner::Registry;

/// Where and when an event happened, as a view handler sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventMeta<'a> {
    /// Position in the global log.
    pub position: u64,
    /// The entity type name.
    pub stream_type: &'a str,
    /// The entity id: the default row key.
    pub stream_id: &'a str,
    /// Version within the stream.
    pub version: u64,
    /// The event's id.
    pub event_id: Uuid,
    /// When the command that produced the event ran (use this, never the clock).
    pub recorded_at: Timestamp,
    /// The command that produced the event.
    pub command_id: Uuid,
    /// The message that caused the command, if any.
    pub causation_id: Option<Uuid>,
    /// The business transaction.
    pub correlation_id: Uuid,
}

impl<'a> EventMeta<'a> {
    /// The meta of a stored record.
    pub fn of(record: &'a RecordedEvent) -> Self {
        EventMeta {
            position: record.position,
            stream_type: &record.stream_type,
            stream_id: &record.stream_id,
            version: record.version,
            event_id: record.metadata.event_id,
            recorded_at: record.metadata.recorded_at,
            command_id: record.metadata.command_id,
            causation_id: record.metadata.causation_id,
            correlation_id: record.metadata.correlation_id,
        }
    }
}

/// What a view handler does with its row after folding an event.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ViewOp {
    /// Keep the row (what a handler returning `()` means).
    #[default]
    Keep,
    /// Remove the row. A later event for the same key starts from `Default`.
    Delete,
}

/// What a view handler may return: `()` or a [`ViewOp`].
pub trait IntoViewOp {
    /// The operation.
    fn into_view_op(self) -> ViewOp;
}

impl IntoViewOp for () {
    fn into_view_op(self) -> ViewOp {
        ViewOp::Keep
    }
}

impl IntoViewOp for ViewOp {
    fn into_view_op(self) -> ViewOp {
        self
    }
}

/// A view's row type and its fold. Implemented by `#[view]`; the runtime does the rest.
pub trait View: Default + Clone + fmt::Debug + Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The view's stable name (its tables are named for it): `[a-z][a-z0-9_]{0,39}`
    /// ([`is_valid_view_name`]); a view with another name fails to start.
    const NAME: &'static str;
    /// The version of the view's logic; bumping it rebuilds the view beside the live one.
    const VERSION: u32;
    /// The names of the event types the view folds.
    const EVENT_TYPES: &'static [&'static str];
    /// The row fields with a generated `find_by_<field>`.
    const INDEXES: &'static [&'static str];
    /// A decoded event bound to the handler that folds it.
    type Routed: Send + 'static;
    /// The generated query methods (`find_by_<field>`), reached through [`ViewHandle`].
    type Queries: From<ViewReader<Self>> + Deref<Target = ViewReader<Self>> + Send + Sync + 'static;

    /// Decodes `record` if the view handles its type (types it does not handle
    /// are skipped by name, without decoding) and pushes one `(row key, event)`
    /// per handler it goes to.
    fn route(
        record: &RecordedEvent,
        meta: &EventMeta<'_>,
        out: &mut Vec<(String, Self::Routed)>,
    ) -> Result<(), DecodeError>;

    /// Folds one routed event into this row.
    fn apply(&mut self, event: Self::Routed, meta: &EventMeta<'_>) -> ViewOp;

    /// The row's value for each index in [`INDEXES`](View::INDEXES), in order.
    fn index_values(&self) -> Vec<(&'static str, String)>;
}

/// The codec rows are stored with: JSON, so tables stay readable in the database.
pub(crate) const ROW_CODEC: Codec = Codec::Json;

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

/// The longest view name: table names stay short enough for every backend
/// (PostgreSQL cuts identifiers at 63 bytes).
pub const MAX_VIEW_NAME: usize = 40;

/// True when `name` is a valid view name: `[a-z][a-z0-9_]{0,39}`. Distinct
/// valid names give distinct table names on every backend.
///
/// The one statement of the rule: `#[view]` calls it in a const assert on the
/// name it generates (so an invalid name is a compile error on the user's
/// tokens), and the view stores call it before naming a table.
pub const fn is_valid_view_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() > MAX_VIEW_NAME || !bytes[0].is_ascii_lowercase() {
        return false;
    }
    let mut i = 1;
    while i < bytes.len() {
        let b = bytes[i];
        if !(b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
            return false;
        }
        i += 1;
    }
    true
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
    /// Applies the row changes and moves the checkpoint, all or nothing.
    async fn commit(&self, commit: Commit) -> Result<(), ViewStoreError>;
}

/// Proof that this process runs a view; dropping it lets another process take over.
pub trait Lease: Send + Sync + 'static {
    /// True once the lease is gone (its connection dropped): stop writing.
    fn is_lost(&self) -> bool;
}

/// A lease that cannot be lost: one process owns the store.
#[derive(Debug)]
pub(crate) struct LocalLease;

impl Lease for LocalLease {
    fn is_lost(&self) -> bool {
        false
    }
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

/// What can go wrong with a view.
#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    /// Reading the event log failed.
    #[error("view {view}: reading the log from position {position}: {source}")]
    Log {
        /// The view.
        view: &'static str,
        /// Where the read started.
        position: u64,
        /// The store's error.
        #[source]
        source: StoreError,
    },
    /// The view's storage failed.
    #[error("view {view}: {source}")]
    Storage {
        /// The view.
        view: &'static str,
        /// The storage error.
        #[source]
        source: ViewStoreError,
    },
    /// A stored event does not decode as the type the view expects.
    #[error("view {view}: event `{event_type}` at position {position} does not decode: {source}")]
    Decode {
        /// The view.
        view: &'static str,
        /// The event's position.
        position: u64,
        /// The event's type name.
        event_type: String,
        /// Why.
        #[source]
        source: DecodeError,
    },
    /// A row does not encode or decode (the row type changed incompatibly?).
    #[error("view {view}: row `{key}`: {source}")]
    Row {
        /// The view.
        view: &'static str,
        /// The row key.
        key: String,
        /// The codec's error.
        #[source]
        source: CodecError,
    },
    /// Two view types registered the same name.
    #[error("two views are named `{name}`: {first} and {second}; view names must be unique")]
    DuplicateName {
        /// The name.
        name: &'static str,
        /// One Rust type.
        first: &'static str,
        /// The other.
        second: &'static str,
    },
    /// The view was not started on this app (`app.start_views()`).
    #[error("view {view} is not running on this app; call `app.start_views().await` first")]
    NotRunning {
        /// The view.
        view: &'static str,
    },
    /// No view of that name is running.
    #[error("no view named `{name}` is running")]
    Unknown {
        /// The name asked for.
        name: String,
    },
    /// The view's runner stopped.
    #[error("view {view}: the runner stopped")]
    Stopped {
        /// The view.
        view: &'static str,
    },
    /// [`ViewReader::wait_for`] gave up: the runner failed repeatedly without
    /// moving the checkpoint (it keeps retrying in the background).
    #[error(
        "view {view}: cannot reach position {position}: the runner failed {attempts} times in a row at checkpoint {checkpoint}: {error}"
    )]
    Failing {
        /// The view.
        view: &'static str,
        /// The position waited for.
        position: u64,
        /// Where the view is stuck.
        checkpoint: u64,
        /// Consecutive failures without progress.
        attempts: u32,
        /// The runner's last error.
        error: String,
    },
    /// A row of a table built by a newer version of the view (a newer binary
    /// is deployed) does not decode as this binary's row type.
    #[error(
        "view {view}: row `{key}` of the active table (version {table_version}, built by a newer binary) does not decode as this binary's version {version}: {source}"
    )]
    NewerRow {
        /// The view.
        view: &'static str,
        /// The row key.
        key: String,
        /// The version of the table served.
        table_version: u32,
        /// This binary's version of the view.
        version: u32,
        /// The codec's error.
        #[source]
        source: CodecError,
    },
}

/// How many consecutive runner failures without progress make
/// [`ViewReader::wait_for`] return [`ViewError::Failing`] instead of waiting on.
pub const FAILURES_BEFORE_WAIT_FAILS: u32 = 3;

/// The runner's current streak of failures at one checkpoint.
#[derive(Clone, Debug)]
pub(crate) struct Failure {
    pub(crate) checkpoint: u64,
    pub(crate) attempts: u32,
    pub(crate) error: String,
}

/// A registered view type, collected from every `#[view]` linked into the binary.
#[doc(hidden)]
pub struct ViewRegistration {
    /// The view name.
    pub name: &'static str,
    /// The logic version.
    pub version: u32,
    /// The Rust type, for messages.
    pub rust_type: &'static str,
    /// Starts the view on an app.
    pub start: fn(&App) -> runner::StartFuture<'_>,
}

impl ViewRegistration {
    /// The registration of `V`.
    pub const fn of<V: View>(rust_type: &'static str) -> Self {
        ViewRegistration {
            name: V::NAME,
            version: V::VERSION,
            rust_type,
            start: runner::start_erased::<V>,
        }
    }
}

impl fmt::Debug for ViewRegistration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ViewRegistration")
            .field("name", &self.name)
            .field("version", &self.version)
            .field("rust_type", &self.rust_type)
            .finish()
    }
}

inventory::collect!(ViewRegistration);

/// Every view linked into this program, in no particular order.
pub fn registered() -> impl Iterator<Item = &'static ViewRegistration> {
    inventory::iter::<ViewRegistration>.into_iter()
}

/// A change to one row, as the live stream of a view delivers it.
#[derive(Clone, Debug, PartialEq)]
pub struct RowChange<V> {
    /// The row key.
    pub key: String,
    /// The row after the change; `None` when it was deleted.
    pub row: Option<V>,
    /// The checkpoint the change committed with.
    pub position: u64,
}

/// The state of a view shared by its runner and its readers.
pub(crate) struct Shared<V: View> {
    pub(crate) serving: std::sync::RwLock<Arc<dyn ViewTable>>,
    pub(crate) checkpoint: watch::Sender<u64>,
    pub(crate) changes: broadcast::Sender<RowChange<V>>,
    pub(crate) stopped: watch::Sender<bool>,
    pub(crate) runner: watch::Sender<bool>,
    pub(crate) last_error: Mutex<Option<String>>,
    /// Failures of the runner since it last made progress.
    pub(crate) failure: watch::Sender<Option<Failure>>,
}

impl<V: View> Shared<V> {
    pub(crate) fn serving(&self) -> Arc<dyn ViewTable> {
        self.serving.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Moves the published checkpoint forward (never back).
    pub(crate) fn publish(&self, position: u64) {
        let moved = self.checkpoint.send_if_modified(|c| {
            if position > *c {
                *c = position;
                true
            } else {
                false
            }
        });
        if moved {
            self.progressed();
        }
    }

    /// Ends the runner's failure streak: it moved.
    pub(crate) fn progressed(&self) {
        self.failure.send_if_modified(|f| f.take().is_some());
    }

    /// Counts a runner failure: one more in the streak if the checkpoint has
    /// not moved since the last one, else the first of a new streak.
    pub(crate) fn failed(&self, error: &ViewError) {
        let checkpoint = *self.checkpoint.borrow();
        self.failure.send_modify(|f| {
            let attempts = match f {
                Some(f) if f.checkpoint == checkpoint => f.attempts.saturating_add(1),
                _ => 1,
            };
            *f = Some(Failure {
                checkpoint,
                attempts,
                error: error.to_string(),
            });
        });
    }
}

/// Reads one view. Cheap to clone.
pub struct ViewReader<V: View> {
    shared: Option<Arc<Shared<V>>>,
}

impl<V: View> Clone for ViewReader<V> {
    fn clone(&self) -> Self {
        ViewReader {
            shared: self.shared.clone(),
        }
    }
}

impl<V: View> fmt::Debug for ViewReader<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ViewReader")
            .field("view", &V::NAME)
            .field("running", &self.shared.is_some())
            .finish()
    }
}

fn decode_row<V: View>(table: &TableId, key: &str, bytes: &[u8]) -> Result<V, ViewError> {
    ROW_CODEC.decode(bytes).map_err(|source| {
        if table.version > V::VERSION {
            ViewError::NewerRow {
                view: V::NAME,
                key: key.to_owned(),
                table_version: table.version,
                version: V::VERSION,
                source,
            }
        } else {
            ViewError::Row {
                view: V::NAME,
                key: key.to_owned(),
                source,
            }
        }
    })
}

impl<V: View> ViewReader<V> {
    fn shared(&self) -> Result<&Arc<Shared<V>>, ViewError> {
        self.shared
            .as_ref()
            .ok_or(ViewError::NotRunning { view: V::NAME })
    }

    fn storage(e: ViewStoreError) -> ViewError {
        ViewError::Storage {
            view: V::NAME,
            source: e,
        }
    }

    /// The row with this key, if any. O(1).
    pub async fn get(&self, key: impl AsRef<str>) -> Result<Option<V>, ViewError> {
        let key = key.as_ref();
        let table = self.shared()?.serving();
        match table.get(key).await.map_err(Self::storage)? {
            Some(bytes) => decode_row::<V>(table.id(), key, &bytes).map(Some),
            None => Ok(None),
        }
    }

    /// Rows whose indexed field `index` renders as `value`, in key order.
    /// Generated `find_by_<field>` methods call this.
    pub async fn find_by(&self, index: &str, value: &str) -> Result<Vec<(String, V)>, ViewError> {
        let table = self.shared()?.serving();
        let rows = table
            .find(index, value, usize::MAX)
            .await
            .map_err(Self::storage)?;
        rows.into_iter()
            .map(|(k, bytes)| decode_row::<V>(table.id(), &k, &bytes).map(|row| (k, row)))
            .collect()
    }

    /// One page of rows in key order: at most `limit` rows with keys after
    /// `cursor` (from the start when `None`). Pass the page's
    /// [`next`](Page::next) as the cursor of the next call.
    pub async fn list(&self, cursor: Option<&str>, limit: usize) -> Result<Page<V>, ViewError> {
        let table = self.shared()?.serving();
        let rows = table.list(cursor, limit).await.map_err(Self::storage)?;
        let rows = rows
            .into_iter()
            .map(|(k, bytes)| decode_row::<V>(table.id(), &k, &bytes).map(|row| (k, row)))
            .collect::<Result<Vec<_>, _>>()?;
        let next = if rows.len() == limit && limit > 0 {
            rows.last().map(|(k, _)| k.clone())
        } else {
            None
        };
        Ok(Page { rows, next })
    }

    /// The last global position folded into the rows queries read.
    pub fn checkpoint(&self) -> u64 {
        self.shared.as_ref().map_or(0, |s| *s.checkpoint.borrow())
    }

    /// Waits until the view has folded the log up to `position` (read-your-writes:
    /// pass the [`Committed::position`](crate::Committed) of a command).
    ///
    /// Fails with [`ViewError::Failing`], carrying the runner's error, once
    /// this process's runner has failed [`FAILURES_BEFORE_WAIT_FAILS`] times
    /// in a row without moving the checkpoint (retries are a second apart, so
    /// within a few seconds), e.g. on an event that does not decode. The
    /// runner keeps retrying; a later `wait_for` succeeds once it moves again.
    /// In a process that only follows another process's runner, `wait_for`
    /// cannot see that runner's errors: bound it with a timeout there.
    pub async fn wait_for(&self, position: u64) -> Result<(), ViewError> {
        let shared = self.shared()?;
        let mut rx = shared.checkpoint.subscribe();
        let mut stopped = shared.stopped.subscribe();
        let mut failure = shared.failure.subscribe();
        loop {
            let checkpoint = *rx.borrow_and_update();
            if checkpoint >= position {
                return Ok(());
            }
            if *stopped.borrow_and_update() {
                return Err(ViewError::Stopped { view: V::NAME });
            }
            if let Some(f) = failure.borrow_and_update().as_ref()
                && f.attempts >= FAILURES_BEFORE_WAIT_FAILS
                && f.checkpoint == checkpoint
            {
                return Err(ViewError::Failing {
                    view: V::NAME,
                    position,
                    checkpoint,
                    attempts: f.attempts,
                    error: f.error.clone(),
                });
            }
            tokio::select! {
                r = rx.changed() => if r.is_err() { return Err(ViewError::Stopped { view: V::NAME }) },
                r = stopped.changed() => if r.is_err() { return Err(ViewError::Stopped { view: V::NAME }) },
                r = failure.changed() => if r.is_err() { return Err(ViewError::Stopped { view: V::NAME }) },
            }
        }
    }

    /// A live stream of every row change of the view, from now on.
    pub fn changes(&self) -> Result<RowChanges<V>, ViewError> {
        Ok(RowChanges {
            rx: self.shared()?.changes.subscribe(),
            key: None,
        })
    }

    /// A live stream of the changes of one row, from now on.
    pub fn changes_of(&self, key: impl Into<String>) -> Result<RowChanges<V>, ViewError> {
        Ok(RowChanges {
            rx: self.shared()?.changes.subscribe(),
            key: Some(key.into()),
        })
    }

    /// True while this process runs the view (holds its lease); false while
    /// another process does and this one only serves queries.
    pub fn is_runner(&self) -> bool {
        self.shared.as_ref().is_some_and(|s| *s.runner.borrow())
    }

    /// The last error the view's runner hit (it retries after each), if any:
    /// for health checks and logs.
    pub fn last_error(&self) -> Option<String> {
        let shared = self.shared.as_ref()?;
        shared
            .last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The physical table queries are served from now.
    pub fn serving_table(&self) -> Option<TableId> {
        self.shared.as_ref().map(|s| s.serving().id().clone())
    }
}

/// One page of [`ViewReader::list`].
#[derive(Clone, Debug, PartialEq)]
pub struct Page<V> {
    /// The rows, in key order.
    pub rows: Vec<(String, V)>,
    /// The cursor of the next page; `None` on the last page.
    pub next: Option<String>,
}

/// A live stream of row changes (a `tokio::sync::broadcast` receiver, filtered).
pub struct RowChanges<V> {
    rx: broadcast::Receiver<RowChange<V>>,
    key: Option<String>,
}

impl<V: Clone> RowChanges<V> {
    /// The next change; `Err(Lagged(n))` when the reader fell behind and `n`
    /// changes were dropped (re-read the rows with `get`), `Err(Closed)` when
    /// the view stopped.
    pub async fn next(&mut self) -> Result<RowChange<V>, broadcast::error::RecvError> {
        loop {
            let change = self.rx.recv().await?;
            if self.key.as_deref().is_none_or(|k| k == change.key) {
                return Ok(change);
            }
        }
    }
}

impl<V> fmt::Debug for RowChanges<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RowChanges")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// A view of an [`App`]: [`ViewReader`]'s queries plus the generated
/// `find_by_<field>` methods, both reached through `Deref`.
pub struct ViewHandle<V: View> {
    queries: V::Queries,
    _row: PhantomData<fn() -> V>,
}

impl<V: View> Deref for ViewHandle<V> {
    type Target = V::Queries;
    fn deref(&self) -> &V::Queries {
        &self.queries
    }
}

impl<V: View> Clone for ViewHandle<V> {
    fn clone(&self) -> Self {
        ViewHandle::from_reader((*self.queries).clone())
    }
}

impl<V: View> fmt::Debug for ViewHandle<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.queries, f)
    }
}

impl<V: View> ViewHandle<V> {
    fn from_reader(reader: ViewReader<V>) -> Self {
        ViewHandle {
            queries: V::Queries::from(reader),
            _row: PhantomData,
        }
    }

    /// The plain reader (no generated methods).
    pub fn reader(&self) -> ViewReader<V> {
        (*self.queries).clone()
    }
}

impl App {
    /// The view `V`. Its queries fail with [`ViewError::NotRunning`] until the
    /// view is started ([`App::start_views`] or [`App::start_view`]).
    pub fn view<V: View>(&self) -> ViewHandle<V> {
        let shared = self
            .views()
            .shared(V::NAME)
            .and_then(|s| s.downcast::<Shared<V>>().ok());
        ViewHandle::from_reader(ViewReader { shared })
    }

    /// Discovers every view linked into the program and starts its runner.
    /// Fails on two views with one name. Views already started are left alone.
    pub async fn start_views(&self) -> Result<Vec<&'static str>, ViewError> {
        let mut seen: HashMap<&'static str, &'static str> = HashMap::new();
        let regs: Vec<&'static ViewRegistration> = registered().collect();
        for reg in &regs {
            if let Some(first) = seen.insert(reg.name, reg.rust_type) {
                let (first, second) = if first <= reg.rust_type {
                    (first, reg.rust_type)
                } else {
                    (reg.rust_type, first)
                };
                return Err(ViewError::DuplicateName {
                    name: reg.name,
                    first,
                    second,
                });
            }
        }
        let mut names = Vec::new();
        for reg in regs {
            (reg.start)(self).await?;
            names.push(reg.name);
        }
        names.sort_unstable();
        Ok(names)
    }

    /// Starts the runner of one view (no-op if it runs already).
    pub async fn start_view<V: View>(&self) -> Result<(), ViewError> {
        runner::start::<V>(self).await
    }

    /// The names of the views running on this app.
    pub fn running_views(&self) -> Vec<&'static str> {
        self.views().names()
    }

    /// Rebuilds the view `name` from position 0 beside the live table and swaps
    /// when it has caught up; resolves after the swap. Queries are answered by
    /// the old table meanwhile.
    pub async fn rebuild_view(&self, name: &str) -> Result<(), ViewError> {
        self.views().rebuild(name).await
    }
}

/// Type-erased access to a running view, for the registry.
pub(crate) struct RunningView {
    pub(crate) rust_type: &'static str,
    pub(crate) shared: Arc<dyn Any + Send + Sync>,
    pub(crate) control: tokio::sync::mpsc::UnboundedSender<runner::Control>,
}

pub(crate) type RunningMap = Mutex<HashMap<&'static str, RunningView>>;
