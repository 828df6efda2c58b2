//! An event store in process memory, for tests and benchmarks.
//!
//! Same guarantees as the durable stores while the process lives: atomic
//! appends, optimistic concurrency, one gap-free global order.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use tokio::sync::watch;
use uuid::Uuid;

use super::{
    AppendNow, AppendRequest, Appended, EventMetadata, EventStore, RecordedEvent, Snapshot, StoreError,
    invalid_append, validate_events, validate_stream,
};
use crate::codec::Codec;

/// An in-memory [`EventStore`]. Cloning shares the same log.
#[derive(Clone)]
pub struct MemoryStore {
    inner: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    head: watch::Sender<u64>,
    max_event_bytes: usize,
}

#[derive(Default)]
struct State {
    log: Vec<Stored>,
    /// stream type → stream id → index into `streams`. Two hashes find a
    /// stream; the append then works on `streams[i]` without hashing again.
    index: HashMap<Arc<str>, HashMap<Arc<str>, usize, NameHasher>, NameHasher>,
    streams: Vec<Stream>,
    snapshots: HashMap<(String, String), Snapshot>,
}

struct Stream {
    /// Shared by every record of the stream, so they hold one allocation of the names.
    stream_type: Arc<str>,
    stream_id: Arc<str>,
    /// Indexes into `log`, in version order.
    events: Vec<usize>,
    /// Command id → the version of its first event in this stream.
    commands: HashMap<Uuid, u64, BuildUuidHasher>,
}

/// Hashes the stream names of the index. The ids come from outside (a
/// request's path, a message), so this is a keyed hash, but not SipHash:
/// SipHash-1-3 over a type name and an id cost ~350 instructions per command
/// (callgrind), foldhash's keyed fast hash a fraction of that. foldhash
/// draws its key per process, so a caller who never sees the hashes cannot
/// aim ids at one bucket; against one who can, its resistance is weaker than
/// SipHash's, which is acceptable for a store that lives in one process and
/// serves tests, benchmarks and demos (the durable stores index in SQL).
type NameHasher = foldhash::fast::RandomState;

/// Hashes a command id by folding its bytes: ids are random (v4) or derived
/// by a hash already, so SipHash's protection buys nothing here and cost
/// about 60 % of the index's price on the cached-command path (callgrind).
#[derive(Clone, Copy, Default)]
struct BuildUuidHasher;

impl std::hash::BuildHasher for BuildUuidHasher {
    type Hasher = UuidHasher;
    fn build_hasher(&self) -> UuidHasher {
        UuidHasher(0)
    }
}

struct UuidHasher(u64);

impl std::hash::Hasher for UuidHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_usize(&mut self, n: usize) {
        self.0 ^= n as u64;
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

impl State {
    fn stream(&self, stream_type: &str, stream_id: &str) -> Option<usize> {
        self.index.get(stream_type)?.get(stream_id).copied()
    }

    /// Registers an empty stream; the caller checked that it does not exist.
    fn create_stream(&mut self, stream_type: &str, stream_id: &Arc<str>) -> usize {
        let type_key = match self.index.get_key_value(stream_type) {
            Some((k, _)) => k.clone(),
            None => Arc::from(stream_type),
        };
        // The request's id is the entity cache's: shared, not copied.
        let id_key = stream_id.clone();
        let i = self.streams.len();
        self.streams.push(Stream {
            stream_type: type_key.clone(),
            stream_id: id_key.clone(),
            events: Vec::new(),
            commands: HashMap::default(),
        });
        self.index.entry(type_key).or_default().insert(id_key, i);
        i
    }
}

struct Stored {
    stream_type: Arc<str>,
    stream_id: Arc<str>,
    version: u64,
    event_type: Cow<'static, str>,
    schema_version: u32,
    codec: Codec,
    payload: Vec<u8>,
    metadata: EventMetadata,
}

impl Stored {
    fn to_recorded(&self, index: usize) -> RecordedEvent {
        RecordedEvent {
            position: index as u64 + 1,
            stream_type: self.stream_type.to_string(),
            stream_id: self.stream_id.to_string(),
            version: self.version,
            event_type: self.event_type.to_string(),
            schema_version: self.schema_version,
            codec: self.codec,
            payload: self.payload.clone(),
            metadata: self.metadata.clone(),
        }
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::with_max_event_bytes(super::DEFAULT_MAX_EVENT_BYTES)
    }

    /// An empty store that refuses events whose payload is over `bytes`
    /// ([`DEFAULT_MAX_EVENT_BYTES`](super::DEFAULT_MAX_EVENT_BYTES) for [`new`](MemoryStore::new)).
    pub fn with_max_event_bytes(bytes: usize) -> Self {
        MemoryStore {
            inner: Arc::new(Shared {
                state: Mutex::new(State::default()),
                head: watch::channel(0).0,
                max_event_bytes: bytes,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave a half-written append:
        // the log is only pushed to after every check passed.
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl MemoryStore {
    /// The append itself: nothing in it waits, so `append` and `append_now`
    /// both run it to the end on the caller's thread.
    fn append_here(&self, request: AppendRequest) -> Result<Appended, StoreError> {
        validate_events(&request, self.inner.max_event_bytes)?;
        crate::fault::point("append.before")?;
        let mut guard = self.lock();
        let state = &mut *guard;
        let existing = state.stream(&request.stream_type, &request.stream_id);
        // A stream found by these exact names was created under them, so they
        // passed this check then: only a new stream's names are scanned
        // (~100 instructions per cached command, callgrind).
        if existing.is_none()
            && let Err(reason) = validate_stream(&request.stream_type, &request.stream_id)
        {
            return Err(invalid_append(&request, reason));
        }
        let current = existing.map_or(0, |i| state.streams[i].events.len() as u64);
        if current != request.expected_version {
            return Err(StoreError::conflict(&request, current));
        }
        if request.events.is_empty() {
            return Ok(Appended {
                version: current,
                first_position: 0,
                last_position: 0,
                acknowledged: false,
            });
        }
        let i = match existing {
            Some(i) => i,
            None => state.create_stream(&request.stream_type, &request.stream_id),
        };
        let stream = &mut state.streams[i];
        let first_position = state.log.len() as u64 + 1;
        let mut version = current;
        for event in request.events {
            version += 1;
            stream
                .commands
                .entry(event.metadata.command_id)
                .or_insert(version);
            stream.events.push(state.log.len());
            state.log.push(Stored {
                stream_type: stream.stream_type.clone(),
                stream_id: stream.stream_id.clone(),
                version,
                event_type: event.event_type,
                schema_version: event.schema_version,
                codec: event.codec,
                payload: event.payload,
                metadata: event.metadata,
            });
        }
        let last_position = state.log.len() as u64;
        drop(guard);
        crate::fault::hit("append.after");
        // Waking the watchers costs a lock per waker slot even when nobody
        // watches, so notify only when a receiver exists. The count is read
        // under the watch's write lock: a receiver that borrowed the old value
        // before this write is already counted, and one that borrows after it
        // sees the new value.
        self.inner.head.send_if_modified(|head| {
            *head = last_position;
            self.inner.head.receiver_count() > 0
        });
        Ok(Appended {
            version,
            first_position,
            last_position,
            acknowledged: false,
        })
    }
}

#[async_trait]
impl EventStore for MemoryStore {
    async fn append(&self, request: AppendRequest) -> Result<Appended, StoreError> {
        self.append_here(request)
    }

    fn append_now(&self, request: AppendRequest) -> AppendNow {
        AppendNow::Done(self.append_here(request))
    }

    async fn command_events(
        &self,
        stream_type: &str,
        stream_id: &str,
        command_id: Uuid,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let state = self.lock();
        let Some(stream) = state.stream(stream_type, stream_id).map(|i| &state.streams[i]) else {
            return Ok(Vec::new());
        };
        let Some(&first) = stream.commands.get(&command_id) else {
            return Ok(Vec::new());
        };
        // The index finds the first event; any later ones of the same id follow it.
        Ok(stream.events[first as usize - 1..]
            .iter()
            .map(|&i| (i, &state.log[i]))
            .filter(|(_, s)| s.metadata.command_id == command_id)
            .map(|(i, s)| s.to_recorded(i))
            .collect())
    }

    async fn read_stream(
        &self,
        stream_type: &str,
        stream_id: &str,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let state = self.lock();
        let Some(i) = state.stream(stream_type, stream_id) else {
            return Ok(Vec::new());
        };
        let indexes = &state.streams[i].events;
        let skip = from_version.saturating_sub(1) as usize;
        Ok(indexes
            .iter()
            .skip(skip)
            .take(limit)
            .map(|&i| state.log[i].to_recorded(i))
            .collect())
    }

    async fn read_all(&self, from_position: u64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        let state = self.lock();
        let start = from_position.saturating_sub(1) as usize;
        Ok(state
            .log
            .iter()
            .enumerate()
            .skip(start)
            .take(limit)
            .map(|(i, s)| s.to_recorded(i))
            .collect())
    }

    async fn stream_version(&self, stream_type: &str, stream_id: &str) -> Result<u64, StoreError> {
        let state = self.lock();
        Ok(state
            .stream(stream_type, stream_id)
            .map_or(0, |i| state.streams[i].events.len() as u64))
    }

    async fn head(&self) -> Result<u64, StoreError> {
        Ok(self.lock().log.len() as u64)
    }

    fn watch_head(&self) -> watch::Receiver<u64> {
        self.inner.head.subscribe()
    }

    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<(), StoreError> {
        crate::fault::point("snapshot.save.before")?;
        let key = (snapshot.stream_type.clone(), snapshot.stream_id.clone());
        let mut state = self.lock();
        match state.snapshots.get(&key) {
            Some(old) if old.version >= snapshot.version => {}
            _ => {
                state.snapshots.insert(key, snapshot);
            }
        }
        Ok(())
    }

    async fn load_snapshot(
        &self,
        stream_type: &str,
        stream_id: &str,
    ) -> Result<Option<Snapshot>, StoreError> {
        let state = self.lock();
        Ok(state
            .snapshots
            .get(&(stream_type.to_owned(), stream_id.to_owned()))
            .cloned())
    }

    fn backend(&self) -> &'static str {
        "memory"
    }
}
