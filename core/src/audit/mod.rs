//! The audit trail, time travel and what-if: answers to the talk's "how did
//! we get here?" over any [`EventStore`], for a CLI (`factum-cli`) or a
//! service that offers the same answers over HTTP.
//!
//! | question | call |
//! |---|---|
//! | *how* did we get here | [`Audit::history`]: every event of a stream with its metadata, decoded (upcast to the current version) |
//! | *why* is the state this way, *when* did it become so | [`Audit::blame`]: the events that changed one field, with the value before and after and the command |
//! | what was it then | [`Audit::state`] at a version or a time, folded by the entity's own `apply`; [`Audit::diff`] between two versions |
//! | what belongs together | [`Audit::trace`]: every event sharing a correlation id, across streams, as a tree by causation |
//! | what if | [`Audit::what_if`]: fork an entity in memory at a version and run hypothetical commands through its real handlers |
//! | regenerate state with new logic | [`rebuild_view`], [`diff_view`], [`swap_view`]: the blue/green rebuild, with a look before the swap |
//!
//! Contracts:
//! - **Nothing is written**, except by the three view calls (which write view
//!   tables, never events). [`Audit`] only reads the store; a what-if fork
//!   lives in memory and is dropped. Over `SqliteStore::open_read_only` the
//!   store itself refuses writes, which is how the CLI proves it.
//! - **Streaming.** Streams are read page by page ([`PAGE`] events); a fold
//!   keeps one state, `history` yields one event at a time. `streams` and
//!   `trace` scan the global log once, keeping one summary per stream and
//!   the matching events respectively — never the whole log.
//! - **Nothing skipped silently.** An event that does not decode fails a fold
//!   with [`AuditError::Decode`] naming stream and version; in `history` it is
//!   shown with its error and its raw payload.
//! - Entities, events and views are found by the names the store keeps,
//!   through the registries `#[entity]`, `#[derive(Event)]` and `#[view]`
//!   fill: a tool sees the types linked into its own binary.
//!
//! What-if needs the command types to be `serde::Deserialize` (to read them
//! from JSON) and time travel the state to be `Serialize`: derive them. An
//! entity whose commands are not serde types compiles as before; only
//! `what_if` on such a command fails, with [`AuditError::CommandNotDeserialize`]
//! saying what to derive, and [`catalogue`] marks which commands can be read.

mod json;
mod registry;
mod views;

pub use json::{FieldChange, JsonPath, cell, diff as diff_json};
pub use registry::{
    Audited, CommandDecoder, DecidedEvent, DeserializeProbe, EntityAudit, EventDecoder, NoDeserializeProbe,
    NoSerializeProbe, Probe, SerializeProbe, entities, entity, event_decoder, event_decoders,
};
pub use views::{RowChange, RowDiff, TableSummary, ViewDiff, diff_view, rebuild_view, swap_view};

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::entity::Context;
use crate::event::DecodeError;
use crate::store::{EventStore, RecordedEvent, StoreError};
use crate::time::Timestamp;
use registry::{Decision, Fold};

/// Events per read of a stream or of the log.
pub const PAGE: usize = 1024;

/// Reports how far a scan got: `(done, total)`, in events or positions.
pub type OnProgress = Arc<dyn Fn(u64, u64) + Send + Sync>;

/// What an audit call can fail with; each variant names the stream, version
/// or name it is about.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// Reading the store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No entity of that stream type is linked into this program.
    #[error("no entity has the stream type `{stream_type}` in this program (it knows {known:?})")]
    UnknownEntity {
        /// The name asked for.
        stream_type: String,
        /// The stream types it knows.
        known: Vec<&'static str>,
    },
    /// The stream has no events.
    #[error("stream {stream_type}/{stream_id} has no events")]
    NoStream {
        /// The stream type.
        stream_type: String,
        /// The stream id.
        stream_id: String,
    },
    /// A version past the stream's end was asked for.
    #[error("stream {stream_type}/{stream_id} is at version {version}; there is no version {asked}")]
    VersionBeyond {
        /// The stream type.
        stream_type: String,
        /// The stream id.
        stream_id: String,
        /// The version asked for.
        asked: u64,
        /// The stream's version.
        version: u64,
    },
    /// A range whose start is after its end.
    #[error("versions {from}..{to} are in the wrong order: the first must not be after the second")]
    BadRange {
        /// The first version.
        from: u64,
        /// The second version.
        to: u64,
    },
    /// The stream skips a version (a damaged store).
    #[error("stream {stream_type}/{stream_id}: expected version {expected}, found {found}")]
    Gap {
        /// The stream type.
        stream_type: &'static str,
        /// The stream id.
        stream_id: String,
        /// The version due.
        expected: u64,
        /// The version read.
        found: u64,
    },
    /// A stored event does not decode as the entity's event.
    #[error("stream {stream_type}/{stream_id} version {version}: {source}")]
    Decode {
        /// The stream type.
        stream_type: &'static str,
        /// The stream id.
        stream_id: String,
        /// The event's version.
        version: u64,
        /// Why.
        #[source]
        source: DecodeError,
    },
    /// The entity's `apply` panicked on an event.
    #[error(
        "stream {stream_type}/{stream_id} version {version}: `apply` panicked on `{event_type}`: {message}"
    )]
    ApplyPanicked {
        /// The stream type.
        stream_type: &'static str,
        /// The stream id.
        stream_id: String,
        /// The event's version.
        version: u64,
        /// The event's type name.
        event_type: String,
        /// The panic's message.
        message: String,
    },
    /// The state type is not `Serialize`, so it cannot be shown or compared.
    #[error(
        "the state of entity `{stream_type}` ({rust_type}) is not `serde::Serialize`: derive it to show, diff and blame the state"
    )]
    StateNotSerialize {
        /// The stream type.
        stream_type: &'static str,
        /// The Rust type.
        rust_type: &'static str,
    },
    /// The state (or a decided event) did not encode as JSON.
    #[error("entity `{stream_type}` at version {version}: {reason}")]
    StateEncode {
        /// The stream type.
        stream_type: &'static str,
        /// The version.
        version: u64,
        /// What the encoder said.
        reason: String,
    },
    /// What-if named a command the entity has no handler for.
    #[error("entity `{stream_type}` has no command `{command}` (its commands are {known:?})")]
    UnknownCommand {
        /// The stream type.
        stream_type: &'static str,
        /// The name given.
        command: String,
        /// The command type names.
        known: &'static [&'static str],
    },
    /// What-if named a command type that is not `Deserialize`.
    #[error(
        "command `{command}` of entity `{stream_type}` cannot be read from JSON: add `#[derive(serde::Deserialize)]` to `{command}` to run it in a what-if"
    )]
    CommandNotDeserialize {
        /// The stream type.
        stream_type: &'static str,
        /// The command type name.
        command: String,
    },
    /// The command's JSON does not decode as its type.
    #[error("command `{command}` of entity `{stream_type}`: the JSON does not decode: {reason}")]
    CommandJson {
        /// The stream type.
        stream_type: &'static str,
        /// The command type name.
        command: String,
        /// serde's message.
        reason: String,
    },
    /// A handler panicked on a hypothetical command.
    #[error(
        "stream {stream_type}/{stream_id} at version {version}: the handler of `{command}` panicked: {message}"
    )]
    HandlerPanicked {
        /// The stream type.
        stream_type: &'static str,
        /// The stream id.
        stream_id: String,
        /// The version it decided at.
        version: u64,
        /// The command type name.
        command: String,
        /// The panic's message.
        message: String,
    },
    /// A path that does not parse.
    #[error("invalid path `{path}`: {reason}")]
    InvalidPath {
        /// The path as given.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A path that no state of the stream ever had.
    #[error("no state of stream {stream_type}/{stream_id} has a field `{path}` (its fields are {fields:?})")]
    NoSuchField {
        /// The stream type.
        stream_type: String,
        /// The stream id.
        stream_id: String,
        /// The path.
        path: String,
        /// The top-level fields of the last state.
        fields: Vec<String>,
    },
    /// No view of that name is linked into this program.
    #[error("no view is named `{name}` in this program (it knows {known:?})")]
    UnknownView {
        /// The name asked for.
        name: String,
        /// The views it knows.
        known: Vec<&'static str>,
    },
    /// A view operation failed.
    #[error(transparent)]
    View(#[from] crate::view::ViewError),
    /// The view's storage failed.
    #[error("view {view}: {source}")]
    ViewStore {
        /// The view.
        view: String,
        /// The storage error.
        #[source]
        source: crate::view::ViewStoreError,
    },
    /// A view has no table of the kind needed.
    #[error("view {view}: {reason}")]
    NoTable {
        /// The view.
        view: String,
        /// What is missing and what to run first.
        reason: String,
    },
    /// A view row is not JSON.
    #[error("view {view}: row `{key}` of table {table} is not JSON: {reason}")]
    Row {
        /// The view.
        view: String,
        /// The table.
        table: String,
        /// The row key.
        key: String,
        /// The parser's message.
        reason: String,
    },
}

/// A point in a stream's history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum At {
    /// After the stream's last event.
    Latest,
    /// After this version (0: before the first event).
    Version(u64),
    /// After the last event recorded at or before this time.
    Time(Timestamp),
}

/// One stored event, decoded for reading.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HistoryEntry {
    /// Version within the stream.
    pub version: u64,
    /// Position in the global log.
    pub position: u64,
    /// The stream type.
    pub stream_type: String,
    /// The stream id.
    pub stream_id: String,
    /// The event's stable type name.
    pub event_type: String,
    /// The schema version it was stored with.
    pub stored_version: u32,
    /// The version it was decoded (upcast) to, when a type of its name is linked in.
    pub current_version: Option<u32>,
    /// When the command that produced it ran.
    pub recorded_at: Timestamp,
    /// The event's id.
    pub event_id: Uuid,
    /// The command that produced it.
    pub command_id: Uuid,
    /// What caused that command, if recorded.
    pub causation_id: Option<Uuid>,
    /// The business transaction.
    pub correlation_id: Uuid,
    /// The event as JSON: decoded and upcast, or the stored JSON when it could not be.
    pub payload: Value,
    /// Why it was not decoded, when it was not.
    pub error: Option<String>,
}

impl HistoryEntry {
    /// Decodes `record` for reading; never fails (a failure is recorded in `error`).
    pub fn of(record: &RecordedEvent) -> Self {
        let (payload, current_version, error) = match event_decoder(&record.event_type) {
            Some(decoder) => match decoder.decode(record.schema_version, record.codec, &record.payload) {
                Ok(value) => (value, Some(decoder.version), None),
                Err(e) => (raw(record), None, Some(e.to_string())),
            },
            None => (
                raw(record),
                None,
                Some(format!(
                    "no event type named `{}` is linked into this program; the payload is shown as stored",
                    record.event_type
                )),
            ),
        };
        HistoryEntry {
            version: record.version,
            position: record.position,
            stream_type: record.stream_type.clone(),
            stream_id: record.stream_id.clone(),
            event_type: record.event_type.clone(),
            stored_version: record.schema_version,
            current_version,
            recorded_at: record.metadata.recorded_at,
            event_id: record.metadata.event_id,
            command_id: record.metadata.command_id,
            causation_id: record.metadata.causation_id,
            correlation_id: record.metadata.correlation_id,
            payload,
            error,
        }
    }
}

/// The stored payload as JSON when it is JSON, else its length.
fn raw(record: &RecordedEvent) -> Value {
    serde_json::from_slice(&record.payload)
        .unwrap_or_else(|_| Value::String(format!("<{} bytes, {:?}>", record.payload.len(), record.codec)))
}

/// A stream's events one at a time, read page by page.
pub struct History {
    records: Records,
}

impl History {
    /// The next event, or `None` after the last one asked for.
    pub async fn next(&mut self) -> Result<Option<HistoryEntry>, AuditError> {
        Ok(self.records.next().await?.map(|r| HistoryEntry::of(&r)))
    }

    /// The stream's version when the read began (the total, for a progress bar).
    pub fn stream_version(&self) -> u64 {
        self.records.head
    }
}

/// Reads one stream in pages from a version up to a last one.
struct Records {
    store: Arc<dyn EventStore>,
    stream_type: String,
    stream_id: String,
    next: u64,
    last: u64,
    head: u64,
    buffer: VecDeque<RecordedEvent>,
}

impl Records {
    async fn next(&mut self) -> Result<Option<RecordedEvent>, StoreError> {
        if self.buffer.is_empty() && self.next <= self.last {
            let want = usize::try_from(self.last - self.next + 1).map_or(PAGE, |n| n.min(PAGE));
            let page = self
                .store
                .read_stream(&self.stream_type, &self.stream_id, self.next, want)
                .await?;
            match page.last() {
                Some(last) => self.next = last.version + 1,
                None => self.next = self.last + 1,
            }
            self.buffer.extend(page);
        }
        Ok(self.buffer.pop_front().filter(|r| r.version <= self.last))
    }
}

/// An entity's state at a point of its history.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StateAt {
    /// The stream type.
    pub stream_type: String,
    /// The stream id.
    pub stream_id: String,
    /// The version the state includes (0: before the first event).
    pub version: u64,
    /// The stream's current version.
    pub stream_version: u64,
    /// When the last event included was recorded (`None` at version 0).
    pub recorded_at: Option<Timestamp>,
    /// The version of the stored snapshot the fold started from, if it used one.
    pub from_snapshot: Option<u64>,
    /// The state, as JSON.
    pub state: Value,
}

/// How a state changed between two versions.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Diff {
    /// The state at the first version.
    pub from: StateAt,
    /// The state at the second.
    pub to: StateAt,
    /// The events between them (after `from`, up to and including `to`).
    pub events: Vec<HistoryEntry>,
    /// Every field that differs.
    pub changes: Vec<FieldChange>,
}

/// One event that changed a field.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BlameEntry {
    /// The event.
    pub event: HistoryEntry,
    /// The field's value before it (`None`: absent).
    pub before: Option<Value>,
    /// The field's value after it (`None`: absent).
    pub after: Option<Value>,
}

/// Why and when a field has its value.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Blame {
    /// The stream type.
    pub stream_type: String,
    /// The stream id.
    pub stream_id: String,
    /// The field.
    pub path: String,
    /// Its value now (`None`: absent).
    pub current: Option<Value>,
    /// Every event that changed it, in order.
    pub changes: Vec<BlameEntry>,
    /// How many events were folded.
    pub events_folded: u64,
}

/// What [`Audit::blame_each`] found, besides the changes it handed out.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BlameSummary {
    /// The stream type.
    pub stream_type: String,
    /// The stream id.
    pub stream_id: String,
    /// The field.
    pub path: String,
    /// Its value now (`None`: absent).
    pub current: Option<Value>,
    /// How many events changed it.
    pub changed: u64,
    /// How many events were folded.
    pub events_folded: u64,
}

/// One event of a trace.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TraceNode {
    /// The command that produced these events.
    pub command_id: Uuid,
    /// What caused the command (an event or command id), if recorded.
    pub causation_id: Option<Uuid>,
    /// True when the cause is not part of this trace (another correlation, or a message outside the log).
    pub cause_outside: bool,
    /// The command's events, in order.
    pub events: Vec<HistoryEntry>,
    /// The commands these events (or this command) caused.
    pub children: Vec<TraceNode>,
}

/// Everything one business transaction caused.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Trace {
    /// The correlation id.
    pub correlation_id: Uuid,
    /// How many events share it.
    pub events: usize,
    /// The streams they are in, as `type/id`, in order of first appearance.
    pub streams: Vec<String>,
    /// The commands, as a tree by causation.
    pub roots: Vec<TraceNode>,
    /// How many events of the log were scanned.
    pub scanned: u64,
}

/// A hypothetical command and what it would do.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WhatIfStep {
    /// The command type's name.
    pub command: String,
    /// The command as given.
    pub input: Value,
    /// The version it was decided at.
    pub at_version: u64,
    /// `accepted` or `rejected`.
    pub outcome: &'static str,
    /// The events it would write (empty when rejected).
    pub events: Vec<DecidedEvent>,
    /// Why it was refused, when it was.
    pub rejection: Option<String>,
}

/// A what-if: an entity forked at a version, hypothetical commands run on the fork.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WhatIf {
    /// The state the fork started from.
    pub base: StateAt,
    /// Each command, in order, against the fork as the earlier ones left it.
    pub steps: Vec<WhatIfStep>,
    /// The fork's version at the end.
    pub version: u64,
    /// The fork's state at the end.
    pub state: Value,
    /// Always false: a what-if writes nothing.
    pub written: bool,
}

/// One stream of the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StreamSummary {
    /// The stream type.
    pub stream_type: String,
    /// The stream id.
    pub stream_id: String,
    /// Its version (its last event's).
    pub version: u64,
    /// How many events it has.
    pub events: u64,
    /// When its first event was recorded.
    pub first_recorded_at: Timestamp,
    /// When its last event was recorded.
    pub last_recorded_at: Timestamp,
}

/// The audit answers over one store. Cheap to clone.
#[derive(Clone)]
pub struct Audit {
    store: Arc<dyn EventStore>,
    progress: Option<OnProgress>,
    snapshots: bool,
}

impl std::fmt::Debug for Audit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Audit")
            .field("store", &self.store.backend())
            .field("snapshots", &self.snapshots)
            .finish_non_exhaustive()
    }
}

/// The command id of the `index`-th hypothetical command: fixed, so a
/// what-if decides the same each time (it seeds the handler's random numbers).
fn what_if_command_id(index: usize) -> Uuid {
    // "what-if!" in ASCII, then the index.
    Uuid::from_u64_pair(0x7768_6174_2d69_6621, index as u64)
}

impl Audit {
    /// The audit over `store`: reads only.
    pub fn new(store: Arc<dyn EventStore>) -> Self {
        Audit {
            store,
            progress: None,
            snapshots: true,
        }
    }

    /// Reports the progress of long folds and scans to `progress`.
    pub fn with_progress(mut self, progress: OnProgress) -> Self {
        self.progress = Some(progress);
        self
    }

    /// Whether [`state`](Audit::state) may start from a stored snapshot (the
    /// default). Off, every state is folded from the first event, which is
    /// what to compare against after changing `apply`.
    pub fn use_snapshots(mut self, yes: bool) -> Self {
        self.snapshots = yes;
        self
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.store
    }

    fn report(&self, done: u64, total: u64) {
        if let Some(p) = &self.progress {
            p(done, total);
        }
    }

    async fn version_of(&self, stream_type: &str, stream_id: &str) -> Result<u64, AuditError> {
        let version = self.store.stream_version(stream_type, stream_id).await?;
        if version == 0 {
            return Err(AuditError::NoStream {
                stream_type: stream_type.to_owned(),
                stream_id: stream_id.to_owned(),
            });
        }
        Ok(version)
    }

    fn records(&self, stream_type: &str, stream_id: &str, from: u64, last: u64, head: u64) -> Records {
        Records {
            store: self.store.clone(),
            stream_type: stream_type.to_owned(),
            stream_id: stream_id.to_owned(),
            next: from.max(1),
            last,
            head,
            buffer: VecDeque::new(),
        }
    }

    /// The events of a stream from version `from` to `to` (inclusive; the
    /// whole stream by default), one at a time.
    pub async fn history(
        &self,
        stream_type: &str,
        stream_id: &str,
        from: Option<u64>,
        to: Option<u64>,
    ) -> Result<History, AuditError> {
        let head = self.version_of(stream_type, stream_id).await?;
        let (from, to) = (from.unwrap_or(1), to.unwrap_or(head));
        if from > to {
            return Err(AuditError::BadRange { from, to });
        }
        Ok(History {
            records: self.records(stream_type, stream_id, from, to, head),
        })
    }

    /// The state of an entity at a version, at a time, or now: folded by the
    /// entity's own `apply`.
    pub async fn state(&self, stream_type: &str, stream_id: &str, at: At) -> Result<StateAt, AuditError> {
        let entity = entity(stream_type)?;
        let head = self.version_of(stream_type, stream_id).await?;
        let mut fold = entity.fold();
        let (at_version, snapshot) = self.fold_to(&mut *fold, stream_id, head, at).await?;
        self.state_of(&*fold, stream_id, head, at_version, snapshot)
    }

    fn state_of(
        &self,
        fold: &dyn Fold,
        stream_id: &str,
        head: u64,
        recorded_at: Option<Timestamp>,
        from_snapshot: Option<u64>,
    ) -> Result<StateAt, AuditError> {
        Ok(StateAt {
            stream_type: fold.stream_type().to_owned(),
            stream_id: stream_id.to_owned(),
            version: fold.version(),
            stream_version: head,
            recorded_at,
            from_snapshot,
            state: fold.state()?,
        })
    }

    /// Folds `fold` from where it is up to `at`; returns when the last folded
    /// event was recorded, and the snapshot version it started from.
    async fn fold_to(
        &self,
        fold: &mut dyn Fold,
        stream_id: &str,
        head: u64,
        at: At,
    ) -> Result<(Option<Timestamp>, Option<u64>), AuditError> {
        let stream_type = fold.stream_type();
        let last = match at {
            At::Latest | At::Time(_) => head,
            At::Version(v) if v > head => {
                return Err(AuditError::VersionBeyond {
                    stream_type: stream_type.to_owned(),
                    stream_id: stream_id.to_owned(),
                    asked: v,
                    version: head,
                });
            }
            At::Version(v) => v,
        };
        let mut snapshot = None;
        let mut recorded_at = None;
        if self.snapshots
            && fold.version() == 0
            && !matches!(at, At::Time(_))
            && let Some(snap) = self.store.load_snapshot(stream_type, stream_id).await?
            && snap.version <= last
            && snap.version > 0
            && fold.restore(&snap)
        {
            snapshot = Some(snap.version);
            let at_snap = self
                .store
                .read_stream(stream_type, stream_id, snap.version, 1)
                .await?;
            recorded_at = at_snap.first().map(|r| r.metadata.recorded_at);
        }
        let mut records = self.records(stream_type, stream_id, fold.version() + 1, last, head);
        while let Some(record) = records.next().await? {
            if let At::Time(t) = at
                && record.metadata.recorded_at > t
            {
                break;
            }
            fold.apply(&record)?;
            recorded_at = Some(record.metadata.recorded_at);
            if record.version % PAGE as u64 == 0 {
                self.report(record.version, last);
            }
        }
        Ok((recorded_at, snapshot))
    }

    /// How the state changed from version `from` to version `to`, field by
    /// field, with the events in between.
    pub async fn diff(
        &self,
        stream_type: &str,
        stream_id: &str,
        from: u64,
        to: u64,
    ) -> Result<Diff, AuditError> {
        if from > to {
            return Err(AuditError::BadRange { from, to });
        }
        let entity = entity(stream_type)?;
        let head = self.version_of(stream_type, stream_id).await?;
        let mut fold = entity.fold();
        // One pass: no snapshot, so the first state is a real fold to `from`.
        let quiet = Audit {
            snapshots: false,
            ..self.clone()
        };
        let (at, _) = quiet
            .fold_to(&mut *fold, stream_id, head, At::Version(from))
            .await?;
        let before = self.state_of(&*fold, stream_id, head, at, None)?;
        let mut events = Vec::new();
        let mut records = self.records(stream_type, stream_id, from + 1, to, head);
        let mut at = before.recorded_at;
        if to > head {
            return Err(AuditError::VersionBeyond {
                stream_type: stream_type.to_owned(),
                stream_id: stream_id.to_owned(),
                asked: to,
                version: head,
            });
        }
        while let Some(record) = records.next().await? {
            fold.apply(&record)?;
            at = Some(record.metadata.recorded_at);
            events.push(HistoryEntry::of(&record));
        }
        let after = self.state_of(&*fold, stream_id, head, at, None)?;
        let changes = json::diff(&before.state, &after.state);
        Ok(Diff {
            from: before,
            to: after,
            events,
            changes,
        })
    }

    /// Every event that changed the field at `path` of the state, with the
    /// value before and after it and the command that caused it. Collects
    /// the changes; [`blame_each`](Audit::blame_each) streams them instead.
    pub async fn blame(&self, stream_type: &str, stream_id: &str, path: &str) -> Result<Blame, AuditError> {
        let mut changes = Vec::new();
        let summary = self
            .blame_each::<AuditError>(stream_type, stream_id, path, |change| {
                changes.push(change);
                Ok(())
            })
            .await?;
        Ok(Blame {
            stream_type: summary.stream_type,
            stream_id: summary.stream_id,
            path: summary.path,
            current: summary.current,
            changes,
            events_folded: summary.events_folded,
        })
    }

    /// [`blame`](Audit::blame), handing each change to `on_change` as the
    /// fold reaches it, so a field that changed with every one of a million
    /// events costs one state in memory, not a million changes. An error from
    /// `on_change` (the caller's own type, which audit errors convert into)
    /// stops the fold and is returned. A path no state ever had
    /// fails with [`AuditError::NoSuchField`] after the fold, having handed
    /// out no change.
    pub async fn blame_each<E: From<AuditError>>(
        &self,
        stream_type: &str,
        stream_id: &str,
        path: &str,
        mut on_change: impl FnMut(BlameEntry) -> Result<(), E>,
    ) -> Result<BlameSummary, E> {
        let path = JsonPath::parse(path)?;
        let entity = entity(stream_type)?;
        let head = self.version_of(stream_type, stream_id).await?;
        let mut fold = entity.fold();
        let mut value = path.get(&fold.state()?).cloned();
        let mut seen = value.is_some();
        let mut changed = 0;
        let mut records = self.records(stream_type, stream_id, 1, head, head);
        let mut last_state = Value::Null;
        while let Some(record) = records.next().await.map_err(AuditError::from)? {
            fold.apply(&record)?;
            let state = fold.state()?;
            let now = path.get(&state).cloned();
            seen |= now.is_some();
            if now != value {
                changed += 1;
                on_change(BlameEntry {
                    event: HistoryEntry::of(&record),
                    before: value.take(),
                    after: now.clone(),
                })?;
            }
            value = now;
            last_state = state;
            if record.version % PAGE as u64 == 0 {
                self.report(record.version, head);
            }
        }
        if !seen {
            let mut fields: Vec<String> = last_state
                .as_object()
                .map(|o| o.keys().cloned().collect())
                .unwrap_or_default();
            fields.sort();
            return Err(AuditError::NoSuchField {
                stream_type: stream_type.to_owned(),
                stream_id: stream_id.to_owned(),
                path: path.as_str().to_owned(),
                fields,
            }
            .into());
        }
        Ok(BlameSummary {
            stream_type: stream_type.to_owned(),
            stream_id: stream_id.to_owned(),
            path: path.as_str().to_owned(),
            current: value,
            changed,
            events_folded: fold.version(),
        })
    }

    /// Every event sharing `correlation_id`, across streams, in log order, as
    /// a tree of commands by causation. Scans the log once.
    pub async fn trace(&self, correlation_id: Uuid) -> Result<Trace, AuditError> {
        let head = self.store.head().await?;
        let mut found = Vec::new();
        let mut next = 1;
        let mut scanned = 0;
        while next <= head {
            let page = self.store.read_all(next, PAGE * 4).await?;
            let Some(last) = page.last() else { break };
            next = last.position + 1;
            scanned += page.len() as u64;
            found.extend(
                page.iter()
                    .filter(|r| r.position <= head && r.metadata.correlation_id == correlation_id)
                    .map(HistoryEntry::of),
            );
            self.report(last.position.min(head), head);
        }
        let mut streams: Vec<String> = Vec::new();
        for e in &found {
            let name = format!("{}/{}", e.stream_type, e.stream_id);
            if !streams.contains(&name) {
                streams.push(name);
            }
        }
        let events = found.len();
        Ok(Trace {
            correlation_id,
            events,
            streams,
            roots: causation_tree(found),
            scanned,
        })
    }

    /// Forks the entity at version `at` (now by default) in memory and runs
    /// `commands` — `(command type name, JSON)` — through its real handlers,
    /// each against the fork as the earlier ones left it, at time `now`.
    /// Returns the events each would write, or its rejection, and the state at
    /// the end. Nothing is written.
    pub async fn what_if(
        &self,
        stream_type: &str,
        stream_id: &str,
        at: Option<u64>,
        commands: &[(String, String)],
        now: Timestamp,
    ) -> Result<WhatIf, AuditError> {
        let entity = entity(stream_type)?;
        let head = self.version_of(stream_type, stream_id).await?;
        let mut fold = entity.fold();
        let point = at.map_or(At::Latest, At::Version);
        let (recorded_at, snapshot) = self.fold_to(&mut *fold, stream_id, head, point).await?;
        let base = self.state_of(&*fold, stream_id, head, recorded_at, snapshot)?;
        let mut steps = Vec::with_capacity(commands.len());
        for (i, (command, json)) in commands.iter().enumerate() {
            let at_version = fold.version();
            let ctx = Context::new(what_if_command_id(i), now, stream_id, at_version);
            let input = serde_json::from_str(json).unwrap_or_else(|_| Value::String(json.clone()));
            let step = match fold.decide(stream_id, command, json, &ctx)? {
                Decision::Accepted(events) => WhatIfStep {
                    command: command.clone(),
                    input,
                    at_version,
                    outcome: "accepted",
                    events,
                    rejection: None,
                },
                Decision::Rejected(why) => WhatIfStep {
                    command: command.clone(),
                    input,
                    at_version,
                    outcome: "rejected",
                    events: Vec::new(),
                    rejection: Some(why),
                },
            };
            steps.push(step);
        }
        Ok(WhatIf {
            base,
            steps,
            version: fold.version(),
            state: fold.state()?,
            written: false,
        })
    }

    /// Every stream (of type `stream_type` when given) with its version, event
    /// count and first and last recorded-at, sorted by type and id. Scans the
    /// log once, keeping one summary per stream.
    pub async fn streams(&self, stream_type: Option<&str>) -> Result<Vec<StreamSummary>, AuditError> {
        let head = self.store.head().await?;
        let mut streams: HashMap<(String, String), StreamSummary> = HashMap::new();
        let mut next = 1;
        while next <= head {
            let page = self.store.read_all(next, PAGE * 4).await?;
            let Some(last) = page.last() else { break };
            next = last.position + 1;
            for r in page.iter().filter(|r| r.position <= head) {
                if stream_type.is_some_and(|t| t != r.stream_type) {
                    continue;
                }
                let at = r.metadata.recorded_at;
                match streams.get_mut(&(r.stream_type.clone(), r.stream_id.clone())) {
                    Some(s) => {
                        s.version = s.version.max(r.version);
                        s.events += 1;
                        s.first_recorded_at = s.first_recorded_at.min(at);
                        s.last_recorded_at = s.last_recorded_at.max(at);
                    }
                    None => {
                        streams.insert(
                            (r.stream_type.clone(), r.stream_id.clone()),
                            StreamSummary {
                                stream_type: r.stream_type.clone(),
                                stream_id: r.stream_id.clone(),
                                version: r.version,
                                events: 1,
                                first_recorded_at: at,
                                last_recorded_at: at,
                            },
                        );
                    }
                }
            }
            self.report(last.position.min(head), head);
        }
        let mut out: Vec<StreamSummary> = streams.into_values().collect();
        out.sort_by(|a, b| (&a.stream_type, &a.stream_id).cmp(&(&b.stream_type, &b.stream_id)));
        Ok(out)
    }
}

/// Groups events by command and hangs each command under what caused it: an
/// event of the trace (by event id) or another command of it (by command id).
fn causation_tree(events: Vec<HistoryEntry>) -> Vec<TraceNode> {
    let mut order: Vec<Uuid> = Vec::new();
    let mut nodes: HashMap<Uuid, TraceNode> = HashMap::new();
    let mut owner_of_event: HashMap<Uuid, Uuid> = HashMap::new();
    for e in events {
        owner_of_event.insert(e.event_id, e.command_id);
        let node = nodes.entry(e.command_id).or_insert_with(|| {
            order.push(e.command_id);
            TraceNode {
                command_id: e.command_id,
                causation_id: e.causation_id,
                cause_outside: false,
                events: Vec::new(),
                children: Vec::new(),
            }
        });
        node.events.push(e);
    }
    // A command's parent: the command owning the causing event, or the causing command.
    let index: HashMap<Uuid, usize> = order.iter().enumerate().map(|(i, id)| (*id, i)).collect();
    let mut parent: HashMap<Uuid, Uuid> = HashMap::new();
    for id in &order {
        let Some(node) = nodes.get_mut(id) else { continue };
        let Some(cause) = node.causation_id else { continue };
        let by = owner_of_event
            .get(&cause)
            .copied()
            .or(index.contains_key(&cause).then_some(cause));
        match by {
            // Only an earlier command can be a cause: no cycle from damaged ids.
            Some(p) if p != *id && index[&p] < index[id] => {
                parent.insert(*id, p);
            }
            _ => node.cause_outside = true,
        }
    }
    // Attach children from the last command back, so each subtree is complete when moved.
    for id in order.iter().rev() {
        if let Some(p) = parent.get(id)
            && nodes.contains_key(p)
            && let Some(child) = nodes.remove(id)
            && let Some(parent_node) = nodes.get_mut(p)
        {
            parent_node.children.insert(0, child);
        }
    }
    order.iter().filter_map(|id| nodes.remove(id)).collect()
}

/// Every registered event, entity and view: what a tool over this program can read.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Catalogue {
    /// Event types by stable name.
    pub events: Vec<CatalogueEvent>,
    /// Entities by stream type.
    pub entities: Vec<CatalogueEntity>,
    /// Views by name.
    pub views: Vec<CatalogueView>,
}

/// An event name and its versions.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CatalogueEvent {
    /// The stable name.
    pub name: String,
    /// The version written now.
    pub version: u32,
    /// Every version with a type, lowest first, as `(version, Rust type)`.
    pub versions: Vec<(u32, String)>,
    /// The upcast chain, e.g. `1 → 2`.
    pub upcast: String,
}

/// An entity's events and commands.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CatalogueEntity {
    /// The stream type.
    pub name: String,
    /// The Rust type.
    pub rust_type: String,
    /// The events it applies.
    pub events: Vec<String>,
    /// Its command types, with whether what-if can read them (`Deserialize`).
    pub commands: Vec<(String, bool)>,
}

/// A view and the events it folds.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CatalogueView {
    /// The view name.
    pub name: String,
    /// The version of its logic.
    pub version: u32,
    /// The Rust row type.
    pub rust_type: String,
    /// The events it folds.
    pub events: Vec<String>,
    /// Its indexes.
    pub indexes: Vec<String>,
}

/// The catalogue of this program: every event type, entity and view linked in.
pub fn catalogue() -> Catalogue {
    let mut by_name: HashMap<&'static str, Vec<&'static crate::event::EventRegistration>> = HashMap::new();
    for r in crate::event::catalogue() {
        by_name.entry(r.name).or_default().push(r);
    }
    let mut events: Vec<CatalogueEvent> = by_name
        .into_iter()
        .map(|(name, mut regs)| {
            regs.sort_by_key(|r| r.version);
            let version = regs.last().map_or(0, |r| r.version);
            // The chain from the current version down its `upcast_from` links.
            let mut chain = vec![version];
            let mut at = regs.last().copied();
            while let Some(r) = at.and_then(|r| r.upcast_from) {
                chain.push(r);
                at = regs.iter().copied().find(|x| x.version == r);
            }
            chain.reverse();
            CatalogueEvent {
                name: name.to_owned(),
                version,
                versions: regs.iter().map(|r| (r.version, r.path())).collect(),
                upcast: chain.iter().map(u32::to_string).collect::<Vec<_>>().join(" → "),
            }
        })
        .collect();
    events.sort_by(|a, b| a.name.cmp(&b.name));
    let mut entities: Vec<CatalogueEntity> = registry::entities()
        .map(|e| CatalogueEntity {
            name: e.name.to_owned(),
            rust_type: e.rust_type.to_owned(),
            events: e.events.iter().map(|s| (*s).to_owned()).collect(),
            commands: e
                .commands
                .iter()
                .map(|c| ((*c).to_owned(), e.command_is_deserializable(c)))
                .collect(),
        })
        .collect();
    entities.sort_by(|a, b| a.name.cmp(&b.name));
    let mut views: Vec<CatalogueView> = crate::view::registered()
        .map(|v| CatalogueView {
            name: v.name.to_owned(),
            version: v.version,
            rust_type: v.rust_type.to_owned(),
            events: v.event_types.iter().map(|s| (*s).to_owned()).collect(),
            indexes: v.indexes.iter().map(|s| (*s).to_owned()).collect(),
        })
        .collect();
    views.sort_by(|a, b| a.name.cmp(&b.name));
    Catalogue {
        events,
        entities,
        views,
    }
}
