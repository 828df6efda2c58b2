//! The event log: append-only streams with optimistic concurrency, one global
//! order over all of them, and snapshots beside it.
//!
//! There is no update and no delete of an event in this API, by design: events
//! are facts. Every backend passes the same conformance suite (`tests/`).

mod memory;
#[cfg(feature = "postgres")]
mod postgres;
mod sqlite;

pub use memory::MemoryStore;
#[cfg(feature = "postgres")]
pub use postgres::{PostgresOptions, PostgresStore};
pub use sqlite::{SqliteOptions, SqliteStore, Synchronous};

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

/// One append: events for one stream, valid only if the stream is at
/// `expected_version` (0 for a stream that does not exist yet).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppendRequest {
    /// The entity type name.
    pub stream_type: String,
    /// The entity id.
    pub stream_id: String,
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
        "version conflict on stream {stream_type}/{stream_id}: expected version {expected}, but the stream is at {actual}"
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
    #[error("invalid append to stream {stream_type}/{stream_id}: {reason}")]
    Invalid {
        /// The entity type name.
        stream_type: String,
        /// The entity id.
        stream_id: String,
        /// What is wrong.
        reason: String,
    },
    /// A stored record cannot be read back (edited bytes, unknown codec id …).
    #[error("stored event {stream_type}/{stream_id} version {version} is corrupt: {reason}")]
    Corrupt {
        /// The entity type name.
        stream_type: String,
        /// The entity id.
        stream_id: String,
        /// The stream version of the record.
        version: u64,
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
    /// The store was closed or its writer stopped.
    #[error("{backend} store is closed")]
    Closed {
        /// Which store.
        backend: &'static str,
    },
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

    /// Events of one stream with `version >= from_version`, at most `limit`, in version order.
    async fn read_stream(
        &self,
        stream_type: &str,
        stream_id: &str,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

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

/// A follower of the global log: catches up from a position, then waits for new commits.
pub struct Subscription {
    store: Arc<dyn EventStore>,
    head: watch::Receiver<u64>,
    next_position: u64,
    buffer: std::collections::VecDeque<RecordedEvent>,
    batch: usize,
}

impl Subscription {
    /// Follows `store` from `from_position` (inclusive; 1 is the start of the log).
    pub fn new(store: Arc<dyn EventStore>, from_position: u64) -> Self {
        let head = store.watch_head();
        Subscription {
            store,
            head,
            next_position: from_position.max(1),
            buffer: Default::default(),
            batch: 1024,
        }
    }

    /// The position the next event will have at least.
    pub fn next_position(&self) -> u64 {
        self.next_position
    }

    /// The next event, waiting for one to be committed if the log is read to its end.
    pub async fn next(&mut self) -> Result<RecordedEvent, StoreError> {
        loop {
            if let Some(event) = self.buffer.pop_front() {
                self.next_position = event.position + 1;
                return Ok(event);
            }
            let batch = self.store.read_all(self.next_position, self.batch).await?;
            if !batch.is_empty() {
                self.buffer.extend(batch);
                continue;
            }
            let seen = *self.head.borrow_and_update();
            if seen >= self.next_position {
                continue;
            }
            if self.head.changed().await.is_err() {
                return Err(StoreError::Closed {
                    backend: self.store.backend(),
                });
            }
        }
    }

    /// Up to `max` events that are available now, without waiting.
    pub async fn next_batch(&mut self, max: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        let mut out: Vec<RecordedEvent> = self.buffer.drain(..self.buffer.len().min(max)).collect();
        if out.len() < max {
            let from = out.last().map_or(self.next_position, |e| e.position + 1);
            out.extend(self.store.read_all(from, max - out.len()).await?);
        }
        if let Some(last) = out.last() {
            self.next_position = last.position + 1;
        }
        Ok(out)
    }
}

/// Checks what every backend must refuse before touching storage.
pub(crate) fn validate_append(request: &AppendRequest) -> Result<(), StoreError> {
    let invalid = |reason: &str| StoreError::Invalid {
        stream_type: request.stream_type.clone(),
        stream_id: request.stream_id.clone(),
        reason: reason.to_owned(),
    };
    if request.stream_type.is_empty() {
        return Err(invalid("the stream type is empty"));
    }
    if request.stream_id.is_empty() {
        return Err(invalid("the stream id is empty"));
    }
    if let Some(i) = request.events.iter().position(|e| e.event_type.is_empty()) {
        return Err(invalid(&format!(
            "event {} of the append has an empty type name",
            i + 1
        )));
    }
    Ok(())
}

/// Puts a decoded row together, or names the damaged record as well as the
/// damage allows: the first unreadable column is the reason.
#[cfg_attr(
    not(feature = "postgres"),
    allow(dead_code, reason = "used by sqlite always, postgres by feature")
)]
pub(crate) fn assemble(
    stream_type: Result<String, String>,
    stream_id: Result<String, String>,
    version: Result<u64, String>,
    rest: Result<RecordedEvent, String>,
) -> Result<RecordedEvent, StoreError> {
    match (stream_type, stream_id, version, rest) {
        (Ok(stream_type), Ok(stream_id), Ok(version), Ok(event)) => Ok(RecordedEvent {
            stream_type,
            stream_id,
            version,
            ..event
        }),
        (stream_type, stream_id, version, rest) => {
            let reason = [
                stream_type.as_ref().err(),
                stream_id.as_ref().err(),
                version.as_ref().err(),
                rest.as_ref().err(),
            ]
            .into_iter()
            .flatten()
            .next()
            .cloned()
            .unwrap_or_default();
            Err(StoreError::Corrupt {
                stream_type: stream_type.unwrap_or_else(|_| "<unreadable>".into()),
                stream_id: stream_id.unwrap_or_else(|_| "<unreadable>".into()),
                version: version.unwrap_or(0),
                reason,
            })
        }
    }
}
