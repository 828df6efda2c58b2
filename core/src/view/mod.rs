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
//!   generated `find_by_<field>`; [`ViewReader::list`] pages in key order,
//!   [`ViewReader::range`] pages through a key range and
//!   [`ViewReader::find_range`] through a range of an index's values, keys
//!   and values compared as bytes on every store.
//! - **Several rows per event.** `#[on(keys = …)]` folds the event into each
//!   distinct key the expression yields, once; the batch still loads and
//!   writes each touched row once, and commits them with the checkpoint.
//! - **Read-your-writes across views.** [`App::wait_for_views`](crate::App::wait_for_views)
//!   waits until every view started on the app has folded a position.
//! - **Blue/green rebuilds.** Bumping `#[view(version = …)]`, or calling
//!   [`App::rebuild_view`](crate::App::rebuild_view), builds a new table beside the live one from
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
//! A handler that updates a computed set of rows names them with
//! `#[on(keys = …)]`, any `IntoIterator` of `ToString` items; each distinct
//! key's row folds the event once (the event is decoded once and shared):
//! ```
//! # use factum::prelude::*;
//! # use serde::{Deserialize, Serialize};
//! # #[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
//! # pub struct Tagged { pub tags: Vec<String> }
//! #[derive(Default, Clone, Debug, PartialEq, Serialize, Deserialize)]
//! pub struct TagUses { uses: u32 }
//!
//! #[view(name = "tag_uses")]
//! impl TagUses {
//!     #[on(keys = e.tags.iter())]
//!     fn tagged(&mut self, _e: &Tagged) { self.uses += 1 }
//! }
//! ```
//! A handler returns `()` (keep the row) or a [`ViewOp`]: `ViewOp::Delete`
//! removes the row (a later event for the key starts again from `Default`).
//! Rows are keyed by the event's stream id unless `#[on(key = …)]` says
//! otherwise; the key expression sees the handler's event and meta
//! parameters (also under the names `e` and `meta`) and yields anything
//! `ToString`; a `keys` expression sees the same and yields an `IntoIterator`
//! of them. Handler bodies obey the rules: no clock (use
//! `meta.recorded_at`), no randomness, no side effects.

pub(crate) mod backend;
mod fold;
mod memory;
mod reader;
mod runner;
mod side;

/// Leases and the failure streak are the process layer's; re-exported for view users.
pub use crate::process::{FAILURES_BEFORE_WAIT_FAILS, Lease};
pub use backend::{
    Commit, IndexedRow, RowWrite, TableId, TableInfo, TableState, ViewStore, ViewStoreError, ViewTable,
};
pub(crate) use fold::fold_records;
pub use memory::MemoryViewStore;
pub use reader::{IndexCursor, IndexPage, Page, RowChange, RowChanges, ViewHandle, ViewReader};
pub use runner::{ViewSettings, Views};
pub(crate) use side::SideBuild;

use std::fmt;
use std::ops::Deref;

use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::codec::{Codec, CodecError};
use crate::event::DecodeError;
use crate::store::{RecordedEvent, StoreError};
use crate::time::Timestamp;

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
    /// A handler (or a key expression) of the view panicked on an event; the
    /// batch was not committed and the runner retries it like any failure.
    #[error(
        "view {view}: the handler for event `{event_type}` of stream {stream} version {version} (position {position}) panicked: {message}"
    )]
    Panicked {
        /// The view.
        view: &'static str,
        /// The event's type name.
        event_type: String,
        /// The event's stream, as `type/id`.
        stream: String,
        /// The event's stream version.
        version: u64,
        /// The event's position.
        position: u64,
        /// The panic's message.
        message: String,
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
    /// Two event types store one (name, version): no view starts until one is
    /// renamed (see [`check_catalogue`](crate::event::check_catalogue)).
    #[error(transparent)]
    Catalogue(#[from] crate::event::CatalogueError),
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
    /// [`ViewReader::find_by`] named an index the view does not declare.
    #[error("view {view} has no index `{index}` (it declares {known:?})")]
    UnknownIndex {
        /// The view.
        view: &'static str,
        /// The index asked for.
        index: String,
        /// The indexes the view declares.
        known: &'static [&'static str],
    },
    /// [`ViewReader::list`] was asked for pages of zero rows, which could
    /// never reach the end of the view.
    #[error("view {view}: a page must hold at least one row (limit 0)")]
    ZeroLimit {
        /// The view.
        view: &'static str,
    },
    /// Another process holds the view's lease (its runner is running), so a
    /// side build or swap from outside it would race that runner.
    #[error(
        "view {view}: another process runs this view; stop it before building or swapping a table from outside"
    )]
    Leased {
        /// The view.
        view: &'static str,
    },
    /// A swap was asked for, but no table of this version is being built.
    #[error(
        "view {view}: no table of version {version} is being built beside the live one; run a rebuild first"
    )]
    NoSideTable {
        /// The view.
        view: &'static str,
        /// The view's version in this program.
        version: u32,
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

/// A registered view type, collected from every `#[view]` linked into the binary.
#[doc(hidden)]
pub struct ViewRegistration {
    /// The view name.
    pub name: &'static str,
    /// The logic version.
    pub version: u32,
    /// The Rust type, for messages.
    pub rust_type: &'static str,
    /// Starts the view on an app's views.
    pub start: fn(&Views) -> runner::StartFuture<'_>,
    /// The names of the event types it folds.
    pub event_types: &'static [&'static str],
    /// The row fields with a generated `find_by_<field>`.
    pub indexes: &'static [&'static str],
    /// Builds (or, for a swap, finishes and activates) a table beside the live one.
    pub(crate) side: fn(SideBuild) -> side::SideFuture,
}

impl ViewRegistration {
    /// The registration of `V`.
    pub const fn of<V: View>(rust_type: &'static str) -> Self {
        ViewRegistration {
            name: V::NAME,
            version: V::VERSION,
            rust_type,
            start: runner::start_erased::<V>,
            event_types: V::EVENT_TYPES,
            indexes: V::INDEXES,
            side: side::side_erased::<V>,
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
