//! The event log: append-only streams with optimistic concurrency, one global
//! order over all of them, and snapshots beside it.
//!
//! There is no update and no delete of an event in this API, by design: events
//! are facts. Every backend passes the same conformance suite (`tests/`).
//! The backends: [`MemoryStore`] here, the SQLite and PostgreSQL stores in
//! their backend modules (`sqlite`, `postgres`); following the log's tail is
//! the process layer's (`process`).

#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) mod checksum;
mod memory;

pub use memory::MemoryStore;

use std::borrow::Cow;
use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::watch;
use uuid::Uuid;

use crate::codec::Codec;
use crate::time::Timestamp;

/// Who caused an event, and when it was recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventMetadata {
    /// Unique per event; derived from the command id and the event's index, so
    /// a retried command writes the same ids.
    pub event_id: Uuid,
    /// The command's time (`ctx.now()`), read once before the handler ran.
    pub recorded_at: Timestamp,
    /// The command that produced the event.
    pub command_id: Uuid,
    /// The message that caused the command (an event id or a command id), if any.
    pub causation_id: Option<Uuid>,
    /// The business transaction the event belongs to.
    pub correlation_id: Uuid,
}

/// An event ready to append: already encoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewEvent {
    /// The event's stable type name: borrowed from the code for the events
    /// commands write (`"bank.deposited".into()`), owned for one read back
    /// from elsewhere (`record.event_type.into()`), so the command path
    /// allocates no name.
    pub event_type: Cow<'static, str>,
    /// The schema version of the payload.
    pub schema_version: u32,
    /// The codec that wrote `payload`.
    pub codec: Codec,
    /// The encoded event.
    pub payload: Vec<u8>,
    /// Ids and time.
    pub metadata: EventMetadata,
}

/// One append: events for one stream, valid only if the stream is at
/// `expected_version` (0 for a stream that does not exist yet).
///
/// The names cost the command path no allocation: the entity type name is
/// the code's (`Cow::Borrowed` of `Entity::NAME`), the id the entity cache's
/// shared `Arc<str>`. `"bank_account".into()` and `"acc-1".into()` (or a
/// `String`'s `.into()`) build them by hand.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppendRequest {
    /// The entity type name.
    pub stream_type: Cow<'static, str>,
    /// The entity id.
    pub stream_id: Arc<str>,
    /// The version the writer decided against.
    pub expected_version: u64,
    /// The events, in order; versions `expected_version + 1 ..`.
    pub events: Vec<NewEvent>,
}

/// Where an append landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Appended {
    /// The stream's version after the append.
    pub version: u64,
    /// The global position of the first event appended (0 when none were).
    pub first_position: u64,
    /// The global position of the last event appended (0 when none were).
    pub last_position: u64,
    /// True when nothing new was written: the stream already held exactly
    /// these events (same event ids), committed by an earlier attempt of this
    /// append whose answer was lost, or by another node deciding the same
    /// command id. The positions are the stored events'.
    pub acknowledged: bool,
}

/// What [`EventStore::append_now`] did with a request.
#[derive(Debug)]
pub enum AppendNow {
    /// The store appended (or refused) at once: the same answer
    /// [`append`](EventStore::append) would have given.
    Done(Result<Appended, StoreError>),
    /// The store must wait to append; nothing was done. Pass the request to
    /// [`append`](EventStore::append).
    Wait(AppendRequest),
}

/// An event as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedEvent {
    /// Position in the global log, from 1, gap-free in the order readers see.
    pub position: u64,
    /// The entity type name.
    pub stream_type: String,
    /// The entity id.
    pub stream_id: String,
    /// Version within the stream, from 1, contiguous.
    pub version: u64,
    /// The event's stable type name.
    pub event_type: String,
    /// The schema version of the payload.
    pub schema_version: u32,
    /// The codec that wrote `payload`.
    pub codec: Codec,
    /// The encoded event.
    pub payload: Vec<u8>,
    /// Ids and time.
    pub metadata: EventMetadata,
}

/// An entity's state at a version, encoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// The entity type name.
    pub stream_type: String,
    /// The entity id.
    pub stream_id: String,
    /// The stream version the state includes.
    pub version: u64,
    /// The codec that wrote `payload`.
    pub codec: Codec,
    /// The encoded state.
    pub payload: Vec<u8>,
}

/// What a store operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another writer appended first.
    #[error(
        "version conflict on stream {stream_type}/{}: expected version {expected}, but the stream is at {actual}",
        shown(stream_id)
    )]
    Conflict {
        /// The entity type name.
        stream_type: String,
        /// The entity id.
        stream_id: String,
        /// The version the writer expected.
        expected: u64,
        /// The version the stream is at.
        actual: u64,
    },
    /// The request itself is malformed (empty stream id, empty event type …).
    #[error(
        "invalid append to stream {}/{}: {reason}",
        shown(stream_type),
        shown(stream_id)
    )]
    Invalid {
        /// The entity type name.
        stream_type: String,
        /// The entity id.
        stream_id: String,
        /// What is wrong.
        reason: String,
    },
    /// A stored record cannot be read back: its checksum does not match its
    /// fields (a torn write, damaged storage, an edited column), or a column
    /// holds what factum never writes (an unknown codec id, a NULL, a
    /// malformed id). Its text fields are boxed `str`s so that every error
    /// holding a `StoreError` stays small.
    #[error(
        "stored event {}/{} version {version} at position {position} is corrupt: {reason}",
        shown(stream_type),
        shown(stream_id)
    )]
    Corrupt {
        /// The entity type name (`<unreadable>` when that column is damaged).
        stream_type: String,
        /// The entity id (`<unreadable>` when that column is damaged).
        stream_id: String,
        /// The stream version of the record (0 when unreadable).
        version: u64,
        /// The record's global position (0 when unreadable, and for a snapshot).
        position: u64,
        /// The record's event type, when that column could be read; a
        /// reader that does not handle this type steps over the record (the
        /// type may itself be what was damaged: a checksum cannot say which
        /// field was).
        event_type: Option<Box<str>>,
        /// What is wrong.
        reason: Box<str>,
    },
    /// A stored value outside what factum writes (a negative position,
    /// version or checkpoint): the table was edited or damaged.
    #[error("{backend} store: table {table}, {row}: corrupt value: {reason}")]
    CorruptTable {
        /// Which store.
        backend: &'static str,
        /// The table.
        table: &'static str,
        /// Which row (or aggregate) held the value.
        row: String,
        /// What is wrong.
        reason: String,
    },
    /// The backend failed (I/O, connection, SQL).
    #[error("{backend} store: {context}: {source}")]
    Backend {
        /// Which store.
        backend: &'static str,
        /// What the store was doing.
        context: String,
        /// The backend's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The store was opened read-only (`SqliteStore::open_read_only`): it
    /// refuses every write before touching storage.
    #[error("{backend} store at {location} is opened read-only; nothing is written")]
    ReadOnly {
        /// Which store.
        backend: &'static str,
        /// Where it is (a file path).
        location: String,
    },
    /// The store was closed or its writer stopped.
    #[error("{backend} store is closed")]
    Closed {
        /// Which store.
        backend: &'static str,
    },
}

/// A failure injected by a test at a fault point (only with the `fault-points` feature).
impl From<crate::fault::Fault> for StoreError {
    fn from(fault: crate::fault::Fault) -> Self {
        StoreError::Backend {
            backend: "factum::fault",
            context: "an injected failure".to_owned(),
            source: Box::new(fault),
        }
    }
}

impl StoreError {
    /// The conflict of `request` with a stream found at `actual`.
    pub(crate) fn conflict(request: &AppendRequest, actual: u64) -> Self {
        StoreError::Conflict {
            stream_type: request.stream_type.to_string(),
            stream_id: request.stream_id.to_string(),
            expected: request.expected_version,
            actual,
        }
    }

    /// A failure of `backend` while doing `context`.
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    pub(crate) fn backend(
        backend: &'static str,
        context: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        StoreError::Backend {
            backend,
            context: context.into(),
            source: source.into(),
        }
    }
}

/// An append-only event log. All methods are safe to call concurrently.
#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// Appends `request.events` if the stream is at `request.expected_version`;
    /// otherwise fails with [`StoreError::Conflict`] and writes nothing.
    ///
    /// The SQL stores acknowledge an append that already committed: when the
    /// stream's events after `expected_version` are exactly this request's
    /// (same event ids, which are deterministic per command), the answer is
    /// `Ok`, not a conflict. A `Conflict` always has `actual != expected`.
    /// When the outcome is unknown (the connection was lost, perhaps after
    /// the commit) the answer is [`StoreError::Backend`], never `Conflict`.
    async fn append(&self, request: AppendRequest) -> Result<Appended, StoreError>;

    /// [`append`](EventStore::append), finished at once by a store that needs
    /// to wait on nothing for it (no I/O, no other task): the caller then
    /// allocates no boxed future, which was ~170 instructions of the ~3,600
    /// a cached command costs on `MemoryStore` (callgrind). The default hands
    /// the request back ([`AppendNow::Wait`]) for the caller to `append`; a
    /// store that answers here must append exactly as `append` would
    /// (`MemoryStore` runs the same code for both).
    fn append_now(&self, request: AppendRequest) -> AppendNow {
        AppendNow::Wait(request)
    }

    /// Events of one stream with `version >= from_version`, at most `limit`, in version order.
    async fn read_stream(
        &self,
        stream_type: &str,
        stream_id: &str,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// The events command `command_id` committed to this stream, in version
    /// order (empty when it committed none): how a re-sent command finds its
    /// original outcome. PostgreSQL and memory answer from an index on the
    /// command id; SQLite reads the stream through its version index (an
    /// index on random command ids cost ~40 % of its append throughput); this
    /// default scans the stream page by page, for stores that have neither.
    async fn command_events(
        &self,
        stream_type: &str,
        stream_id: &str,
        command_id: Uuid,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let mut out = Vec::new();
        let mut from = 1;
        loop {
            let page = self.read_stream(stream_type, stream_id, from, 4096).await?;
            let Some(last) = page.last() else { return Ok(out) };
            from = last.version + 1;
            out.extend(page.into_iter().filter(|e| e.metadata.command_id == command_id));
        }
    }

    /// Events of all streams with `position >= from_position`, at most `limit`,
    /// in position order. Never returns an event past a gap that a commit still
    /// in flight could fill (the feed is gap-safe).
    async fn read_all(&self, from_position: u64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError>;

    /// The current version of a stream (0 if it has no events).
    async fn stream_version(&self, stream_type: &str, stream_id: &str) -> Result<u64, StoreError>;

    /// The highest position [`read_all`](EventStore::read_all) can return now.
    async fn head(&self) -> Result<u64, StoreError>;

    /// A watch of [`head`](EventStore::head), updated after every commit this
    /// store learns of; tail-followers wait on it instead of polling.
    fn watch_head(&self) -> watch::Receiver<u64>;

    /// Stores a snapshot, replacing an older one of the same stream.
    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<(), StoreError>;

    /// The latest snapshot of a stream, if any.
    async fn load_snapshot(&self, stream_type: &str, stream_id: &str)
    -> Result<Option<Snapshot>, StoreError>;

    /// The codec new events and snapshots should be encoded with; each record
    /// still names its own codec, so changing it never breaks old records.
    fn codec(&self) -> Codec {
        Codec::Json
    }

    /// A short name for messages ("memory", "sqlite", "postgres").
    fn backend(&self) -> &'static str;
}

/// The longest stream type (entity type name) every backend accepts, in bytes.
pub const MAX_STREAM_TYPE_BYTES: usize = 255;

/// The longest stream (entity) id every backend accepts, in bytes.
/// PostgreSQL indexes `(stream_type, stream_id, version)` in one btree whose
/// rows may not exceed 2704 bytes: the two limits together stay below that,
/// so an id SQLite accepts today is one PostgreSQL accepts after a move.
pub const MAX_STREAM_ID_BYTES: usize = 1024;

/// The longest event type name every backend accepts, in bytes.
pub const MAX_EVENT_TYPE_BYTES: usize = 255;

/// The largest event payload a store accepts unless configured otherwise
/// (`max_event_bytes` on each store's options), in bytes: 4 MiB. Of the order
/// of Kafka's 1 MiB message default; an event is a fact, not a file: a large
/// document belongs in blob storage, with its address in the event.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 4 << 20;

/// Why a stream name is refused by every backend, if it is: the rule
/// [`validate_append`] applies, checked early by commands and loads so an
/// invalid id fails before a handler runs. PostgreSQL text holds no NUL, and
/// the lengths are [`MAX_STREAM_TYPE_BYTES`] and [`MAX_STREAM_ID_BYTES`]; the
/// same rule on every backend, so a log can move between them.
pub(crate) fn validate_stream(stream_type: &str, stream_id: &str) -> Result<(), &'static str> {
    if stream_type.is_empty() {
        return Err("the stream type is empty");
    }
    if stream_id.is_empty() {
        return Err("the stream id is empty");
    }
    if stream_type.len() > MAX_STREAM_TYPE_BYTES {
        return Err("the stream type is longer than 255 bytes, the most every store accepts");
    }
    if stream_id.len() > MAX_STREAM_ID_BYTES {
        return Err("the stream id is longer than 1024 bytes, the most every store accepts");
    }
    if has_nul(stream_type) {
        return Err("the stream type contains a NUL character, which PostgreSQL text cannot hold");
    }
    if has_nul(stream_id) {
        return Err("the stream id contains a NUL character, which PostgreSQL text cannot hold");
    }
    Ok(())
}

/// Whether `text` holds a NUL byte. Every append checks three names: with
/// `str::contains('\0')` that cost ~280 instructions per command (callgrind,
/// `memchr`'s set-up three times), a byte loop ~150; eight bytes at a time
/// with the zero-byte test of a word (`(w - 0x01…) & !w & 0x80…`) ~40.
fn has_nul(text: &str) -> bool {
    const LOW: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let words = text.as_bytes().chunks_exact(8);
    let tail = words.remainder();
    words
        .map(|w| u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]))
        .any(|w| w.wrapping_sub(LOW) & !w & HIGH != 0)
        || tail.contains(&0)
}

/// An id or name as error messages show it: whole up to 64 bytes, else its
/// start and its length, so a 1 MiB id never ends up in a log line.
pub(crate) fn shown(id: &str) -> Shown<'_> {
    Shown(id)
}

/// See [`shown`].
pub(crate) struct Shown<'a>(&'a str);

/// Past this many bytes an id in a message is cut (at a character boundary).
const SHOWN_BYTES: usize = 64;

impl std::fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.len() <= SHOWN_BYTES {
            return f.write_str(self.0);
        }
        let mut end = SHOWN_BYTES;
        while !self.0.is_char_boundary(end) {
            end -= 1;
        }
        write!(f, "{}… ({} bytes)", &self.0[..end], self.0.len())
    }
}

impl std::fmt::Debug for Shown<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.len() <= SHOWN_BYTES {
            return write!(f, "{:?}", self.0);
        }
        let mut end = SHOWN_BYTES;
        while !self.0.is_char_boundary(end) {
            end -= 1;
        }
        write!(f, "{:?}… ({} bytes)", &self.0[..end], self.0.len())
    }
}

/// Checks what every backend must refuse before touching storage; events
/// whose payload is over `max_event_bytes` among it.
#[cfg_attr(
    not(any(feature = "sqlite", feature = "postgres")),
    allow(
        dead_code,
        reason = "the durable backends call it; the memory store checks per part"
    )
)]
pub(crate) fn validate_append(request: &AppendRequest, max_event_bytes: usize) -> Result<(), StoreError> {
    if let Err(reason) = validate_stream(&request.stream_type, &request.stream_id) {
        return Err(invalid_append(request, reason));
    }
    validate_events(request, max_event_bytes)
}

/// The part of [`validate_append`] about the events, for a store that knows
/// the stream's names are valid already because it holds that stream
/// (`MemoryStore` finds streams by their exact names).
pub(crate) fn validate_events(request: &AppendRequest, max_event_bytes: usize) -> Result<(), StoreError> {
    for (i, e) in request.events.iter().enumerate() {
        if e.payload.len() > max_event_bytes {
            return Err(invalid_append(
                request,
                &format!(
                    "event {} ({}) has a payload of {} bytes, over this store's limit of {max_event_bytes} bytes \
                     (max_event_bytes; {DEFAULT_MAX_EVENT_BYTES} by default)",
                    i + 1,
                    shown(&e.event_type),
                    e.payload.len()
                ),
            ));
        }
        let why = if e.event_type.is_empty() {
            "has an empty type name"
        } else if e.event_type.len() > MAX_EVENT_TYPE_BYTES {
            "has a type name longer than 255 bytes, the most every store accepts"
        } else if has_nul(&e.event_type) {
            "has a NUL character in its type name, which PostgreSQL text cannot hold"
        } else {
            continue;
        };
        return Err(invalid_append(
            request,
            &format!("event {} of the append {why}", i + 1),
        ));
    }
    Ok(())
}

/// The refusal of `request` for `reason`.
pub(crate) fn invalid_append(request: &AppendRequest, reason: &str) -> StoreError {
    StoreError::Invalid {
        stream_type: request.stream_type.to_string(),
        stream_id: request.stream_id.to_string(),
        reason: reason.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::StoreError;

    /// Every error that wraps a `StoreError` (views, consumers, audit) is
    /// returned by value; past 128 bytes each of them is a large `Err`.
    #[test]
    fn a_nul_is_found_at_every_place_of_a_name() {
        for len in 1..40 {
            assert!(!super::has_nul(&"a".repeat(len)), "no NUL in {len} bytes");
            assert!(
                !super::has_nul(&"\u{80}\u{ff}".repeat(len)),
                "high bytes are not NUL"
            );
            for at in 0..len {
                let mut bytes = vec![b'x'; len];
                bytes[at] = 0;
                let text = String::from_utf8(bytes).expect("ASCII");
                assert!(super::has_nul(&text), "NUL at {at} of {len} bytes");
            }
        }
        assert!(!super::has_nul(""));
    }

    #[test]
    fn a_store_error_stays_small() {
        let size = std::mem::size_of::<StoreError>();
        assert!(size <= 96, "StoreError is {size} bytes");
    }
}
