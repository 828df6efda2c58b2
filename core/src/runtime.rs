//! The runtime: sends commands to entities and keeps hot entities in memory.
//!
//! A command on a cached entity is: handle, append, apply. Commands to one
//! entity run one at a time within a process; a version conflict with another
//! writer (another process, or another `App` on the same store) reloads the
//! entity and re-runs the command, which is safe because handlers are pure.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use tracing::Instrument;
use uuid::Uuid;

use crate::codec::{Codec, CodecError};
use crate::entity::{Context, Entity};
use crate::event::{DecodeError, EventSet};
use crate::store::{
    AppendRequest, EventMetadata, EventStore, MemoryStore, NewEvent, RecordedEvent, Snapshot, StoreError,
};
use crate::time::{Clock, SystemClock, Timestamp};
use crate::view::{MemoryViewStore, ViewStore};

/// How many events one read of a stream fetches while loading an entity.
const LOAD_PAGE: usize = 4096;

/// A running factum application: a store, a clock, and the cache of hot entities.
/// Cloning is cheap and shares everything.
#[derive(Clone)]
pub struct App {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn EventStore>,
    codec: Codec,
    clock: Arc<dyn Clock>,
    max_attempts: u32,
    cache_capacity: usize,
    cache: Mutex<HashMap<TypeId, EntityCache>>,
    views: crate::view::Registry,
}

/// One entity type's cached slots by id; each value is an `Arc<Slot<E>>`.
type EntityCache = HashMap<Arc<str>, Arc<dyn Any + Send + Sync>>;

/// Configures an [`App`]. Start with [`App::builder`].
pub struct AppBuilder {
    store: Option<Arc<dyn EventStore>>,
    codec: Option<Codec>,
    clock: Arc<dyn Clock>,
    max_attempts: u32,
    cache_capacity: usize,
    view_store: Option<Arc<dyn ViewStore>>,
    view_batch: usize,
}

impl AppBuilder {
    /// Where views keep their rows and checkpoints (default: a [`MemoryViewStore`]).
    pub fn view_store(mut self, store: impl ViewStore) -> Self {
        self.view_store = Some(Arc::new(store));
        self
    }

    /// The view store, already shared.
    pub fn shared_view_store(mut self, store: Arc<dyn ViewStore>) -> Self {
        self.view_store = Some(store);
        self
    }

    /// How many events a view folds per transaction (default 4096).
    pub fn view_batch(mut self, events: usize) -> Self {
        self.view_batch = events.max(1);
        self
    }

    /// The event store (default: a [`MemoryStore`]).
    pub fn store(mut self, store: impl EventStore) -> Self {
        self.store = Some(Arc::new(store));
        self
    }

    /// The event store: the SQLite file at `path` (created if missing), with
    /// the default options. `App::builder().clock(c).sqlite("bank.db")?.build()`.
    pub fn sqlite(self, path: impl AsRef<std::path::Path>) -> Result<Self, StoreError> {
        Ok(self.store(crate::store::SqliteStore::open(path)?))
    }

    /// The event store, already shared.
    pub fn shared_store(mut self, store: Arc<dyn EventStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// The codec new events and snapshots are written with (default: the
    /// store's, [`EventStore::codec`]). Stored records always decode with the
    /// codec that wrote them.
    pub fn codec(mut self, codec: Codec) -> Self {
        self.codec = Some(codec);
        self
    }

    /// The clock commands read their time from (default: the wall clock).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// How often a command is tried when other writers keep winning (default 16).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// How many entities stay cached, per entity type, before idle ones are
    /// dropped (default 100,000).
    pub fn cache_capacity(mut self, entities: usize) -> Self {
        self.cache_capacity = entities.max(1);
        self
    }

    /// The app.
    pub fn build(self) -> App {
        let store = self.store.unwrap_or_else(|| Arc::new(MemoryStore::new()));
        App {
            inner: Arc::new(Inner {
                codec: self.codec.unwrap_or_else(|| store.codec()),
                store,
                clock: self.clock,
                max_attempts: self.max_attempts,
                cache_capacity: self.cache_capacity,
                cache: Mutex::new(HashMap::new()),
                views: crate::view::Registry::new(
                    self.view_store
                        .unwrap_or_else(|| Arc::new(MemoryViewStore::new())),
                    self.view_batch,
                ),
            }),
        }
    }
}

impl fmt::Debug for App {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("App")
            .field("store", &self.inner.store.backend())
            .field("codec", &self.inner.codec)
            .finish_non_exhaustive()
    }
}

impl App {
    /// A builder. Without a store it builds over memory (like [`App::in_memory`]);
    /// applications use [`App::open`] or [`AppBuilder::sqlite`] for the SQLite default.
    pub fn builder() -> AppBuilder {
        AppBuilder {
            store: None,
            codec: None,
            clock: Arc::new(SystemClock),
            max_attempts: 16,
            cache_capacity: 100_000,
            view_store: None,
            view_batch: 4096,
        }
    }

    /// An app over a fresh [`MemoryStore`]: for tests and examples that need no disk.
    pub fn in_memory() -> App {
        App::builder().build()
    }

    /// An app over the SQLite file at `path` (created if missing): the embedded
    /// default, durable (`synchronous=FULL`), one file. For other SQLite options
    /// build a [`SqliteStore`](crate::store::SqliteStore) and use [`App::new`].
    pub async fn open(path: impl AsRef<std::path::Path>) -> Result<App, StoreError> {
        let path = path.as_ref().to_owned();
        let store = tokio::task::spawn_blocking(move || crate::store::SqliteStore::open(path))
            .await
            .map_err(|e| StoreError::Backend {
                backend: "sqlite",
                context: "opening the store".to_owned(),
                source: Box::new(e),
            })??;
        Ok(App::new(store))
    }

    /// An app over `store` with the other defaults. To choose the clock, the
    /// codec or the cache size as well, use the builder:
    ///
    /// ```no_run
    /// # async fn f() -> Result<(), factum::store::StoreError> {
    /// use factum::prelude::*;
    /// let clock = ManualClock::new(Timestamp::parse("2030-01-01T00:00:00Z").unwrap());
    /// let app = App::builder().clock(clock.clone()).sqlite("library.db")?.build();
    /// clock.advance(std::time::Duration::from_secs(22 * 86_400)); // the next command is 22 days later
    /// # Ok(()) }
    /// ```
    pub fn new(store: impl EventStore) -> App {
        App::builder().store(store).build()
    }

    /// The store this app writes to.
    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.inner.store
    }

    pub(crate) fn views(&self) -> &crate::view::Registry {
        &self.inner.views
    }

    /// Where this app's views keep their rows.
    pub fn view_store(&self) -> &Arc<dyn ViewStore> {
        self.inner.views.store()
    }

    /// The entity of type `E` with this id. Cheap; the entity is loaded on first use
    /// and stays cached. Keep the returned handle to skip the cache lookup.
    pub fn entity<E: Entity>(&self, id: impl AsRef<str>) -> EntityRef<E> {
        let id = id.as_ref();
        let slot = self.slot::<E>(id);
        EntityRef {
            app: self.clone(),
            id: slot.id.clone(),
            slot,
        }
    }

    fn slot<E: Entity>(&self, id: &str) -> Arc<Slot<E>> {
        let mut cache = self.inner.cache.lock().unwrap_or_else(|e| e.into_inner());
        let by_id = cache.entry(TypeId::of::<E>()).or_default();
        if let Some(slot) = by_id.get(id).and_then(|s| s.clone().downcast::<Slot<E>>().ok()) {
            return slot;
        }
        evict_idle(by_id, self.inner.cache_capacity);
        let id: Arc<str> = Arc::from(id);
        let slot = Arc::new(Slot::<E> {
            id: id.clone(),
            loaded: tokio::sync::Mutex::new(Loaded {
                state: E::default(),
                version: 0,
                fresh: false,
            }),
        });
        by_id.insert(id, slot.clone());
        slot
    }
}

/// At capacity, drops idle entities (no handle or command holds them) until a
/// quarter of the room is free; their state reloads from the store on next use.
/// The map's iteration order is random, so this is random eviction: cheap, and
/// unlike dropping every idle entity it leaves most hot entities cached.
fn evict_idle(by_id: &mut EntityCache, capacity: usize) {
    if by_id.len() < capacity {
        return;
    }
    let mut excess = by_id.len() + 1 - (capacity - capacity / 4);
    by_id.retain(|_, slot| {
        if excess > 0 && Arc::strong_count(slot) == 1 {
            excess -= 1;
            false
        } else {
            true
        }
    });
}

struct Slot<E> {
    id: Arc<str>,
    loaded: tokio::sync::Mutex<Loaded<E>>,
}

struct Loaded<E> {
    state: E,
    version: u64,
    /// False until loaded, and after anything that may have left the cache behind the store.
    fresh: bool,
}

/// A handle on one entity. Commands sent through it run one at a time.
pub struct EntityRef<E: Entity> {
    app: App,
    id: Arc<str>,
    slot: Arc<Slot<E>>,
}

impl<E: Entity> Clone for EntityRef<E> {
    fn clone(&self) -> Self {
        EntityRef {
            app: self.app.clone(),
            id: self.id.clone(),
            slot: self.slot.clone(),
        }
    }
}

impl<E: Entity> fmt::Debug for EntityRef<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EntityRef({}/{})", E::NAME, self.id)
    }
}

/// Options for one command: its id and its place in a chain of messages.
#[derive(Clone, Copy, Debug, Default)]
pub struct SendOptions {
    /// The command id (default: a new random id). With the entity id and
    /// version it seeds the command's random numbers, so the same command id
    /// against the same state decides the same. (A re-sent command that was
    /// already committed is decided again: there is no de-duplication yet.)
    pub command_id: Option<Uuid>,
    /// The message that caused this command.
    pub causation_id: Option<Uuid>,
    /// The business transaction (default: the command id).
    pub correlation_id: Option<Uuid>,
}

/// What a command committed.
pub struct Committed<E: Entity> {
    /// The events the command produced, as applied.
    pub events: Vec<E::Event>,
    /// The entity's version after the command.
    pub version: u64,
    /// The global position of the last event written, for read-your-writes
    /// waits on views (0 when the command produced no event).
    pub position: u64,
}

impl<E: Entity> fmt::Debug for Committed<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Committed")
            .field("events", &self.events)
            .field("version", &self.version)
            .field("position", &self.position)
            .finish()
    }
}

/// An event read back from an entity's stream, decoded, with its record.
#[derive(Clone, Debug, PartialEq)]
pub struct Recorded<Ev> {
    /// The decoded event.
    pub event: Ev,
    /// The stream version of the event.
    pub version: u64,
    /// The global position.
    pub position: u64,
    /// Ids and time.
    pub metadata: EventMetadata,
}

/// Why an entity could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored event does not decode as any event of this entity.
    #[error("stream {stream_type}/{stream_id} version {version}: {source}")]
    Decode {
        /// The entity type name.
        stream_type: &'static str,
        /// The entity id.
        stream_id: String,
        /// The stream version of the event.
        version: u64,
        /// Why it does not decode.
        #[source]
        source: DecodeError,
    },
    /// The store returned a stream with a hole in its versions.
    #[error(
        "stream {stream_type}/{stream_id}: expected version {expected}, the store returned version {found}"
    )]
    Gap {
        /// The entity type name.
        stream_type: &'static str,
        /// The entity id.
        stream_id: String,
        /// The version that should come next.
        expected: u64,
        /// The version that came.
        found: u64,
    },
}

/// Why a command did not commit.
#[derive(Debug, thiserror::Error)]
pub enum CommandError<R> {
    /// The entity rejected the command; nothing was stored.
    #[error("command rejected: {0}")]
    Rejected(R),
    /// The entity could not be loaded.
    #[error("loading the entity failed: {0}")]
    Load(#[from] LoadError),
    /// The store failed while appending. The append may or may not have
    /// committed; the entity reloads from the store on its next command.
    #[error("appending failed: {0}")]
    Store(StoreError),
    /// An event the handler produced could not be encoded.
    #[error("stream {stream_type}/{stream_id}: event `{event_type}` does not encode: {source}")]
    Encode {
        /// The entity type name.
        stream_type: &'static str,
        /// The entity id.
        stream_id: String,
        /// The event type name.
        event_type: &'static str,
        /// What the codec reported.
        #[source]
        source: CodecError,
    },
    /// Other writers kept appending to this entity's stream; every attempt conflicted.
    #[error("stream {stream_type}/{stream_id}: {attempts} attempts all lost to concurrent writers")]
    Contention {
        /// The entity type name.
        stream_type: &'static str,
        /// The entity id.
        stream_id: String,
        /// How many times the command ran.
        attempts: u32,
    },
}

impl<R> CommandError<R> {
    /// The rejection, if the entity rejected the command.
    pub fn rejection(&self) -> Option<&R> {
        match self {
            CommandError::Rejected(r) => Some(r),
            _ => None,
        }
    }

    /// The rejection, if the entity rejected the command: for
    /// `assert_eq!(err.into_rejection(), Some(AccountError::Closed))`.
    pub fn into_rejection(self) -> Option<R> {
        match self {
            CommandError::Rejected(r) => Some(r),
            _ => None,
        }
    }
}

impl<E: Entity> EntityRef<E> {
    /// The entity id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Handles `command`: decides, appends, applies. Returns the committed
    /// events, or the rejection (nothing is stored for a rejection).
    pub async fn send(&self, command: impl Into<E::Command>) -> Result<Committed<E>, CommandError<E::Error>> {
        self.send_with(command, SendOptions::default()).await
    }

    /// [`send`](EntityRef::send) with a chosen command id and causation.
    pub async fn send_with(
        &self,
        command: impl Into<E::Command>,
        options: SendOptions,
    ) -> Result<Committed<E>, CommandError<E::Error>> {
        let command = command.into();
        let command_id = options.command_id.unwrap_or_else(Uuid::new_v4);
        let span = tracing::debug_span!("command", entity = E::NAME, id = %self.id, %command_id);
        self.run(command, command_id, options).instrument(span).await
    }

    async fn run(
        &self,
        command: E::Command,
        command_id: Uuid,
        options: SendOptions,
    ) -> Result<Committed<E>, CommandError<E::Error>> {
        let inner = &self.app.inner;
        let now = inner.clock.now();
        let correlation_id = options.correlation_id.unwrap_or(command_id);
        let mut slot = self.slot.loaded.lock().await;
        if !slot.fresh {
            self.catch_up(&mut slot, true).await?;
        }
        for attempt in 1..=inner.max_attempts {
            let ctx = Context::new(command_id, now, self.id.clone(), slot.version)
                .with_correlation_id(correlation_id);
            let events = slot
                .state
                .handle(command.clone(), &ctx)
                .map_err(CommandError::Rejected)?;
            if events.is_empty() {
                return Ok(Committed {
                    events,
                    version: slot.version,
                    position: 0,
                });
            }
            let request = AppendRequest {
                stream_type: E::NAME.to_owned(),
                stream_id: String::from(&*self.id),
                expected_version: slot.version,
                events: self.encode(&events, command_id, now, options.causation_id, correlation_id)?,
            };
            match inner.store.append(request).await {
                Ok(appended) => {
                    let before = slot.version;
                    // Marked stale while applying: a panicking `apply` leaves a reload behind, not a wrong state.
                    slot.fresh = false;
                    for event in &events {
                        slot.state.apply(event);
                    }
                    slot.version = appended.version;
                    slot.fresh = true;
                    self.maybe_snapshot(&slot, before).await;
                    return Ok(Committed {
                        events,
                        version: appended.version,
                        position: appended.last_position,
                    });
                }
                Err(StoreError::Conflict { actual, .. }) => {
                    tracing::debug!(
                        attempt,
                        expected = slot.version,
                        actual,
                        "version conflict, reloading"
                    );
                    if attempt > 1 {
                        // The writer that won keeps its cache warm and wins again
                        // while the loser reloads; a jittered pause breaks the streak.
                        tokio::time::sleep(conflict_backoff(command_id, attempt)).await;
                    }
                    self.catch_up(&mut slot, false).await?;
                }
                Err(e) => {
                    slot.fresh = false;
                    return Err(CommandError::Store(e));
                }
            }
        }
        Err(CommandError::Contention {
            stream_type: E::NAME,
            stream_id: String::from(&*self.id),
            attempts: inner.max_attempts,
        })
    }

    fn encode(
        &self,
        events: &[E::Event],
        command_id: Uuid,
        now: Timestamp,
        causation_id: Option<Uuid>,
        correlation_id: Uuid,
    ) -> Result<Vec<NewEvent>, CommandError<E::Error>> {
        let codec = self.app.inner.codec;
        events
            .iter()
            .enumerate()
            .map(|(index, event)| {
                let payload = event.encode(codec).map_err(|source| CommandError::Encode {
                    stream_type: E::NAME,
                    stream_id: String::from(&*self.id),
                    event_type: event.name(),
                    source,
                })?;
                Ok(NewEvent {
                    event_type: event.name().to_owned(),
                    schema_version: event.schema_version(),
                    codec,
                    payload,
                    metadata: EventMetadata {
                        event_id: event_id(command_id, index as u64),
                        recorded_at: now,
                        command_id,
                        causation_id,
                        correlation_id,
                    },
                })
            })
            .collect()
    }

    /// Brings the cached state up to the store: from a snapshot and the events
    /// after it when `from_scratch`, else from the cached version on.
    async fn catch_up(&self, slot: &mut Loaded<E>, from_scratch: bool) -> Result<(), LoadError> {
        let store = &self.app.inner.store;
        // Stale until the end: a failed read or a panicking `apply` part-way
        // leaves a reload from scratch behind, never a half-applied state.
        slot.fresh = false;
        if from_scratch {
            slot.state = E::default();
            slot.version = 0;
            if E::SNAPSHOT_EVERY > 0 {
                self.restore_snapshot(slot).await?;
            }
        }
        loop {
            let page = store
                .read_stream(E::NAME, &self.id, slot.version + 1, LOAD_PAGE)
                .await?;
            let full = page.len() == LOAD_PAGE;
            for record in &page {
                let event = self.decode(record, slot.version + 1)?;
                slot.state.apply(&event);
                slot.version = record.version;
            }
            if !full {
                break;
            }
        }
        slot.fresh = true;
        Ok(())
    }

    async fn restore_snapshot(&self, slot: &mut Loaded<E>) -> Result<(), LoadError> {
        let Some(snapshot) = self.app.inner.store.load_snapshot(E::NAME, &self.id).await? else {
            return Ok(());
        };
        match E::decode_snapshot(snapshot.codec, &snapshot.payload) {
            Some(Ok(state)) => {
                slot.state = state;
                slot.version = snapshot.version;
            }
            Some(Err(error)) => tracing::warn!(
                entity = E::NAME,
                id = %self.id,
                version = snapshot.version,
                %error,
                "snapshot no longer decodes (the state type changed?); rebuilding from events"
            ),
            None => {}
        }
        Ok(())
    }

    fn decode(&self, record: &RecordedEvent, expected: u64) -> Result<E::Event, LoadError> {
        if record.version != expected {
            return Err(LoadError::Gap {
                stream_type: E::NAME,
                stream_id: String::from(&*self.id),
                expected,
                found: record.version,
            });
        }
        E::Event::decode(
            &record.event_type,
            record.schema_version,
            record.codec,
            &record.payload,
        )
        .map_err(|source| LoadError::Decode {
            stream_type: E::NAME,
            stream_id: String::from(&*self.id),
            version: record.version,
            source,
        })
    }

    /// Stores a snapshot when the version just crossed a multiple of
    /// `snapshot_every`. A failure is logged, never the command's failure.
    async fn maybe_snapshot(&self, slot: &Loaded<E>, before: u64) {
        let every = E::SNAPSHOT_EVERY;
        if every == 0 || slot.version / every == before / every {
            return;
        }
        let codec = self.app.inner.codec;
        let payload = match slot.state.encode_snapshot(codec) {
            Some(Ok(payload)) => payload,
            Some(Err(error)) => {
                tracing::warn!(entity = E::NAME, id = %self.id, %error, "snapshot does not encode; skipped");
                return;
            }
            None => return,
        };
        let snapshot = Snapshot {
            stream_type: E::NAME.to_owned(),
            stream_id: String::from(&*self.id),
            version: slot.version,
            codec,
            payload,
        };
        if let Err(error) = self.app.inner.store.save_snapshot(snapshot).await {
            tracing::warn!(entity = E::NAME, id = %self.id, %error, "saving a snapshot failed");
        }
    }

    /// The current state, brought up to date with the store first.
    pub async fn state(&self) -> Result<E, LoadError> {
        let mut slot = self.slot.loaded.lock().await;
        let from_scratch = !slot.fresh;
        self.catch_up(&mut slot, from_scratch).await?;
        Ok(slot.state.clone())
    }

    /// The current version (number of events), brought up to date with the store first.
    pub async fn version(&self) -> Result<u64, LoadError> {
        let mut slot = self.slot.loaded.lock().await;
        let from_scratch = !slot.fresh;
        self.catch_up(&mut slot, from_scratch).await?;
        Ok(slot.version)
    }

    /// Every event of this entity, decoded, with versions, positions and metadata:
    /// the audit trail.
    pub async fn history(&self) -> Result<Vec<Recorded<E::Event>>, LoadError> {
        let store = &self.app.inner.store;
        let mut out = Vec::new();
        loop {
            let next = out.len() as u64 + 1;
            let page = store.read_stream(E::NAME, &self.id, next, LOAD_PAGE).await?;
            let full = page.len() == LOAD_PAGE;
            for record in page {
                let event = self.decode(&record, out.len() as u64 + 1)?;
                out.push(Recorded {
                    event,
                    version: record.version,
                    position: record.position,
                    metadata: record.metadata,
                });
            }
            if !full {
                return Ok(out);
            }
        }
    }
}

/// How long to wait before the `attempt`-th try of a command that keeps
/// losing to other writers: up to 100 µs × 2^attempt (at most ~50 ms),
/// spread by a hash of the command id so competing commands pull apart.
fn conflict_backoff(command_id: Uuid, attempt: u32) -> std::time::Duration {
    let ceiling_us = 100u64 << attempt.min(9);
    let (_, lo) = command_id.as_u64_pair();
    std::time::Duration::from_micros(mix64(lo ^ u64::from(attempt)) % ceiling_us)
}

/// The id of the `index`-th event of a command: a hash of the two, so a retried
/// command writes the same event ids.
fn event_id(command_id: Uuid, index: u64) -> Uuid {
    let (hi, lo) = command_id.as_u64_pair();
    let a = mix64(hi ^ mix64(index));
    let b = mix64(lo.wrapping_add(index.wrapping_mul(0x9E37_79B9_7F4A_7C15)) ^ a);
    uuid::Builder::from_random_bytes((u128::from(a) << 64 | u128::from(b)).to_be_bytes()).into_uuid()
}

fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
