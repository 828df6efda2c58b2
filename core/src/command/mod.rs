//! The command side: sends commands to entities and keeps hot entities in memory.
//!
//! A command on a cached entity is: handle, append, apply. Commands to one
//! entity run one at a time within a process; a version conflict with another
//! writer (another process, or another `App` on the same store) reloads the
//! entity and re-runs the command, which is safe because handlers are pure.

mod cache;
mod load;

use std::fmt;
use std::sync::Arc;

use tracing::Instrument;
use uuid::Uuid;

use crate::codec::CodecError;
use crate::entity::{Context, Entity};
use crate::env::Env;
use crate::event::{DecodeError, EventSet};
use crate::store::{AppendNow, AppendRequest, EventMetadata, NewEvent, StoreError};
use crate::time::Timestamp;

use cache::{Cache, Slot};

/// How many events one read of a stream fetches while loading an entity.
const LOAD_PAGE: usize = 4096;

/// The command side of an app: the environment, the cache of hot entities,
/// and how hard to try against concurrent writers.
pub(crate) struct Commands {
    env: Env,
    max_attempts: u32,
    cache: Cache,
}

impl Commands {
    pub(crate) fn new(env: Env, max_attempts: u32, cache_capacity: usize) -> Self {
        Commands {
            env,
            max_attempts: max_attempts.max(1),
            cache: Cache::new(cache_capacity),
        }
    }

    /// The entity of type `E` with this id; loaded on first use.
    pub(crate) fn entity<E: Entity>(self: &Arc<Self>, id: &str) -> EntityRef<E> {
        let slot = self.cache.slot::<E>(id);
        EntityRef {
            commands: self.clone(),
            id: slot.id.clone(),
            // Judged once here, not on every send: the check scanned the id
            // for NUL on each command (~120 instructions per command, callgrind).
            invalid: crate::store::validate_stream(E::NAME, id).err(),
            slot,
        }
    }
}

/// A handle on one entity. Commands sent through it run one at a time.
pub struct EntityRef<E: Entity> {
    commands: Arc<Commands>,
    id: Arc<str>,
    /// Why no store accepts this id, if none does (`validate_stream`).
    invalid: Option<&'static str>,
    slot: Arc<Slot<E>>,
}

impl<E: Entity> Clone for EntityRef<E> {
    fn clone(&self) -> Self {
        EntityRef {
            commands: self.commands.clone(),
            id: self.id.clone(),
            invalid: self.invalid,
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
    /// against the same state decides the same.
    ///
    /// A chosen command id makes the command idempotent, for ever: once it
    /// committed events to this entity, sending it again (after a timeout, a
    /// crash, a cache eviction, from another node) is not decided again but
    /// answered with the original outcome — the same events, version and
    /// position. The same id with a *different* command (another type, or
    /// other content) is refused with [`CommandError::CommandIdReused`].
    /// A rejection or a command that produced no event stores nothing, so
    /// re-sending one decides it again. The check costs one index lookup in
    /// the store per send with a chosen id; drawn ids skip it.
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

impl<E: Entity> Committed<E> {
    /// The first event of type `T` the command produced, if any: the way to
    /// get back a value the handler generated (an id, a computed total).
    ///
    /// ```
    /// use factum::prelude::*;
    /// use serde::{Deserialize, Serialize};
    ///
    /// #[derive(Clone, Debug)] pub struct Book { pub nights: u32 }
    /// #[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
    /// pub struct Booked { pub booking_id: String, pub nights: u32 }
    ///
    /// #[derive(Default, Clone, Debug, PartialEq)]
    /// pub struct Room { bookings: u32 }
    ///
    /// #[entity]
    /// impl Room {
    ///     #[handle] fn book(&self, cmd: Book, ctx: &Context) -> Booked {
    ///         Booked { booking_id: ctx.uuid().to_string(), nights: cmd.nights }
    ///     }
    ///     #[apply] fn booked(&mut self, _e: &Booked) { self.bookings += 1 }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let committed = App::in_memory().entity::<Room>("room-7").send(Book { nights: 2 }).await?;
    /// let booking_id = &committed.event::<Booked>().expect("book emits Booked").booking_id;
    /// assert_eq!(booking_id.len(), 36);
    /// # Ok(())
    /// # }
    /// ```
    pub fn event<T: crate::Event>(&self) -> Option<&T> {
        self.events_of::<T>().next()
    }

    /// Every event of type `T` the command produced, in order.
    pub fn events_of<T: crate::Event>(&self) -> impl Iterator<Item = &T> + '_ {
        self.events
            .iter()
            .filter_map(|event| event.as_any().downcast_ref::<T>())
    }
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
    /// The entity id is one no store accepts (empty, for one); nothing was read.
    #[error(
        "stream {stream_type}/{:?}: invalid entity id: {reason}",
        crate::store::shown(stream_id)
    )]
    InvalidId {
        /// The entity type name.
        stream_type: &'static str,
        /// The id as given.
        stream_id: String,
        /// Why it is refused.
        reason: &'static str,
    },
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
    /// An `#[apply]` panicked on a stored event: this binary cannot fold the
    /// entity past it (fix the `apply`, or upcast the event). Other entities
    /// are unaffected.
    #[error(
        "stream {stream_type}/{stream_id} version {version}: applying event `{event_type}` panicked: {message}"
    )]
    ApplyPanicked {
        /// The entity type name.
        stream_type: &'static str,
        /// The entity id.
        stream_id: String,
        /// The stream version of the event.
        version: u64,
        /// The event's type name.
        event_type: String,
        /// The panic's message.
        message: String,
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
    /// The entity id is one no store accepts (empty, for one): refused before
    /// the handler ran; nothing was decided or stored.
    #[error(
        "stream {stream_type}/{:?}: invalid entity id: {reason}",
        crate::store::shown(stream_id)
    )]
    InvalidId {
        /// The entity type name.
        stream_type: &'static str,
        /// The id as given.
        stream_id: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// The `#[handle]` method panicked: nothing was stored, and the entity
    /// stays usable (its state was only read).
    #[error("stream {stream_type}/{stream_id}: the command handler panicked: {message}")]
    HandlerPanicked {
        /// The entity type name.
        stream_type: &'static str,
        /// The entity id.
        stream_id: String,
        /// The panic's message.
        message: String,
    },
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
    /// The command id already committed a *different* command to this entity
    /// (another command type, or other content: see
    /// [`command_fingerprint`](crate::ids::command_fingerprint)). Nothing was decided or stored.
    #[error(
        "stream {stream_type}/{stream_id}: command id {command_id} already committed a different command; \
         a command id names one command"
    )]
    CommandIdReused {
        /// The entity type name.
        stream_type: &'static str,
        /// The entity id.
        stream_id: String,
        /// The reused command id.
        command_id: Uuid,
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
    /// Refuses an id no store accepts, before anything is read or decided.
    fn check_id(&self) -> Result<(), LoadError> {
        match self.invalid {
            None => Ok(()),
            Some(reason) => Err(LoadError::InvalidId {
                stream_type: E::NAME,
                stream_id: self.id.to_string(),
                reason,
            }),
        }
    }

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
        if let Some(reason) = self.invalid {
            return Err(CommandError::InvalidId {
                stream_type: E::NAME,
                stream_id: self.id.to_string(),
                reason,
            });
        }
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
        let commands = &*self.commands;
        let now = commands.env.clock().now();
        let correlation_id = options.correlation_id.unwrap_or(command_id);
        // Only a command id the caller chose can be sent again; a drawn one needs no check.
        let fingerprint = match options.command_id {
            Some(_) => crate::ids::command_fingerprint(&command),
            None => 0,
        };
        // An idle entity's lock is taken without building the `lock()` future
        // (~100 instructions per command through the semaphore's queue,
        // callgrind). Still first come, first served: a released permit goes
        // to the queued waiters before `try_lock` can see it.
        let mut slot = match self.slot.loaded.try_lock() {
            Ok(slot) => slot,
            Err(_) => self.slot.loaded.lock().await,
        };
        if !slot.fresh {
            self.catch_up(&mut slot, true).await?;
        }
        if fingerprint != 0
            && let Some(original) = self.original_outcome(&mut slot, command_id, fingerprint).await?
        {
            return Ok(original);
        }
        for attempt in 1..=commands.max_attempts {
            let ctx = Context::new(command_id, now, self.id.clone(), slot.version)
                .with_correlation_id(correlation_id);
            let state = &slot.state;
            let events = crate::unwind::guard(|| state.handle(command.clone(), &ctx))
                .map_err(|message| CommandError::HandlerPanicked {
                    stream_type: E::NAME,
                    stream_id: String::from(&*self.id),
                    message,
                })?
                .map_err(CommandError::Rejected)?;
            if events.is_empty() {
                return Ok(Committed {
                    events,
                    version: slot.version,
                    position: 0,
                });
            }
            let request = AppendRequest {
                stream_type: std::borrow::Cow::Borrowed(E::NAME),
                stream_id: self.id.clone(),
                expected_version: slot.version,
                events: self.encode(
                    &events,
                    (command_id, fingerprint),
                    now,
                    options.causation_id,
                    correlation_id,
                )?,
            };
            // Marked stale across the append: a send dropped while it waits (a
            // timeout, an aborted task) may have committed, and the next
            // command must not decide against the state from before it.
            slot.fresh = false;
            let store = commands.env.store();
            let appended = match store.append_now(request) {
                AppendNow::Done(appended) => appended,
                AppendNow::Wait(request) => store.append(request).await,
            };
            if matches!(appended, Err(StoreError::Conflict { .. })) {
                // Nothing was written: the cached state is as fresh as before (the
                // conflict branch catches it up from the store).
                slot.fresh = true;
            }
            match appended {
                Ok(appended) if appended.acknowledged => {
                    // The store already held this command's events (an earlier attempt
                    // whose answer was lost, or another node that decided the same
                    // command id first): what it holds is the outcome, not what we decided.
                    return match self.original_outcome(&mut slot, command_id, fingerprint).await? {
                        Some(original) => Ok(original),
                        None => {
                            slot.fresh = false;
                            Err(CommandError::Store(StoreError::Invalid {
                                stream_type: E::NAME.to_owned(),
                                stream_id: String::from(&*self.id),
                                reason: format!(
                                    "the store acknowledged command {command_id} as committed but holds none of its events"
                                ),
                            }))
                        }
                    };
                }
                Ok(appended) => {
                    let before = slot.version;
                    // Marked stale while applying: a panicking `apply` leaves a reload behind, not a wrong state.
                    slot.fresh = false;
                    for (event, version) in events.iter().zip(before + 1..) {
                        let state = &mut slot.state;
                        crate::unwind::guard(|| state.apply(event)).map_err(|message| {
                            // Committed, but this binary cannot fold it: every load says so
                            // (the slot stays stale), and the rest of the app goes on.
                            LoadError::ApplyPanicked {
                                stream_type: E::NAME,
                                stream_id: String::from(&*self.id),
                                version,
                                event_type: event.name().to_owned(),
                                message,
                            }
                        })?;
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
                    // The writer that won may have been this very command, sent by another node.
                    if fingerprint != 0
                        && let Some(original) =
                            self.original_outcome(&mut slot, command_id, fingerprint).await?
                    {
                        return Ok(original);
                    }
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
            attempts: commands.max_attempts,
        })
    }

    fn encode(
        &self,
        events: &[E::Event],
        (command_id, fingerprint): (Uuid, u64),
        now: Timestamp,
        causation_id: Option<Uuid>,
        correlation_id: Uuid,
    ) -> Result<Vec<NewEvent>, CommandError<E::Error>> {
        let codec = self.commands.env.codec();
        // Sized to the events up front: collecting through `Result` starts
        // from a size hint of 0 and allocates room for four `NewEvent`s.
        let mut out = Vec::with_capacity(events.len());
        for (index, event) in events.iter().enumerate() {
            let payload = event.encode(codec).map_err(|source| CommandError::Encode {
                stream_type: E::NAME,
                stream_id: String::from(&*self.id),
                event_type: event.name(),
                source,
            })?;
            out.push(NewEvent {
                event_type: std::borrow::Cow::Borrowed(event.name()),
                schema_version: event.schema_version(),
                codec,
                payload,
                metadata: EventMetadata {
                    event_id: crate::ids::command_event_id(command_id, fingerprint, index as u64),
                    recorded_at: now,
                    command_id,
                    causation_id,
                    correlation_id,
                },
            });
        }
        Ok(out)
    }

    /// The current state, brought up to date with the store first.
    pub async fn state(&self) -> Result<E, LoadError> {
        self.check_id()?;
        let mut slot = self.slot.loaded.lock().await;
        let from_scratch = !slot.fresh;
        self.catch_up(&mut slot, from_scratch).await?;
        Ok(slot.state.clone())
    }

    /// The current version (number of events), brought up to date with the store first.
    pub async fn version(&self) -> Result<u64, LoadError> {
        self.check_id()?;
        let mut slot = self.slot.loaded.lock().await;
        let from_scratch = !slot.fresh;
        self.catch_up(&mut slot, from_scratch).await?;
        Ok(slot.version)
    }

    /// Every event of this entity, decoded, with versions, positions and metadata:
    /// the audit trail.
    pub async fn history(&self) -> Result<Vec<Recorded<E::Event>>, LoadError> {
        self.check_id()?;
        let store = self.commands.env.store();
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
    std::time::Duration::from_micros(crate::ids::jitter(command_id, attempt, ceiling_us))
}
