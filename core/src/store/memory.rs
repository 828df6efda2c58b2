//! An event store in process memory, for tests and benchmarks.
//!
//! Same guarantees as the durable stores while the process lives: atomic
//! appends, optimistic concurrency, one gap-free global order.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use tokio::sync::watch;

use super::{
    AppendRequest, Appended, EventMetadata, EventStore, RecordedEvent, Snapshot, StoreError, validate_append,
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
}

#[derive(Default)]
struct State {
    log: Vec<Stored>,
    /// stream type → stream id → indexes into `log`, in version order.
    streams: HashMap<Arc<str>, HashMap<Arc<str>, Vec<usize>>>,
    snapshots: HashMap<(String, String), Snapshot>,
}

struct Stored {
    stream_type: Arc<str>,
    stream_id: Arc<str>,
    version: u64,
    event_type: String,
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
            event_type: self.event_type.clone(),
            schema_version: self.schema_version,
            codec: self.codec,
            payload: self.payload.clone(),
            metadata: self.metadata.clone(),
        }
    }
}

/// The map's own key for `key`, inserting an empty entry when it is new, so
/// every record of a stream shares one allocation of its name.
fn intern<V: Default>(map: &mut HashMap<Arc<str>, V>, key: &str) -> Arc<str> {
    if let Some((k, _)) = map.get_key_value(key) {
        return k.clone();
    }
    let k: Arc<str> = Arc::from(key);
    map.insert(k.clone(), V::default());
    k
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        MemoryStore {
            inner: Arc::new(Shared {
                state: Mutex::new(State::default()),
                head: watch::channel(0).0,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave a half-written append:
        // the log is only pushed to after every check passed.
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl EventStore for MemoryStore {
    async fn append(&self, request: AppendRequest) -> Result<Appended, StoreError> {
        validate_append(&request)?;
        let mut guard = self.lock();
        let state = &mut *guard;
        let current = state
            .streams
            .get(request.stream_type.as_str())
            .and_then(|s| s.get(request.stream_id.as_str()))
            .map_or(0, |v| v.len() as u64);
        if current != request.expected_version {
            return Err(StoreError::Conflict {
                stream_type: request.stream_type,
                stream_id: request.stream_id,
                expected: request.expected_version,
                actual: current,
            });
        }
        if request.events.is_empty() {
            return Ok(Appended {
                version: current,
                first_position: 0,
                last_position: 0,
            });
        }
        let stream_type = intern(&mut state.streams, &request.stream_type);
        let by_type = state.streams.get_mut(&stream_type).expect("interned above");
        let stream_id = intern(by_type, &request.stream_id);
        let indexes = by_type.get_mut(&stream_id).expect("interned above");
        let first_position = state.log.len() as u64 + 1;
        let mut version = current;
        for event in request.events {
            version += 1;
            indexes.push(state.log.len());
            state.log.push(Stored {
                stream_type: stream_type.clone(),
                stream_id: stream_id.clone(),
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
        self.inner.head.send_replace(last_position);
        Ok(Appended {
            version,
            first_position,
            last_position,
        })
    }

    async fn read_stream(
        &self,
        stream_type: &str,
        stream_id: &str,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let state = self.lock();
        let Some(indexes) = state.streams.get(stream_type).and_then(|s| s.get(stream_id)) else {
            return Ok(Vec::new());
        };
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
            .streams
            .get(stream_type)
            .and_then(|s| s.get(stream_id))
            .map_or(0, |v| v.len() as u64))
    }

    async fn head(&self) -> Result<u64, StoreError> {
        Ok(self.lock().log.len() as u64)
    }

    fn watch_head(&self) -> watch::Receiver<u64> {
        self.inner.head.subscribe()
    }

    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<(), StoreError> {
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
