//! Consumers: code that reacts to events with side effects — sending commands
//! to entities, scheduling timers, calling the outside world (design §2
//! "Consumers and producers"). Where a view folds and an entity decides, a
//! consumer *does*.
//!
//! What a consumer promises:
//! - **At least once, in log order per stream.** A runner reads the global
//!   log from the consumer's checkpoint in batches (a process of the process
//!   layer, like views and timers), runs the handlers of one batch — streams
//!   in parallel, each stream's events one after the other — and only then
//!   moves the checkpoint, in one transaction with the batch's dead letters.
//!   A process that dies mid-batch runs the batch's handlers again after the
//!   restart.
//! - **Commands once.** [`ConsumerContext::send`] sends with a command id
//!   derived from the consumer's name, the event's id and the send's place in
//!   the handler ([`consumer_command_id`](crate::ids::consumer_command_id)),
//!   so a redelivered event re-sends the same ids and the store's
//!   de-duplication answers them with the first outcome: the effect happens
//!   once. This holds while a handler sends the same commands in the same
//!   order for the same event (decide from the event, not from a clock or a
//!   counter); a different command under a re-sent id fails with
//!   [`CommandError::CommandIdReused`](crate::CommandError::CommandIdReused) instead of acting twice. For outside
//!   calls, [`ConsumerContext::idempotency_key`] is stable across redeliveries.
//! - **Failures never block and never vanish.** A handler's `Err` (or a
//!   panic, or [`Handled::Retry`]) is retried with backoff — [`Consumer::BACKOFF`]
//!   doubling up to 10 s — until [`Consumer::MAX_ATTEMPTS`]; then the event
//!   is *parked* in a [`DeadLetter`] (consumer, stream, version, position,
//!   event type, error, attempts, times) in the same transaction as the
//!   checkpoint, and the consumer moves on. [`Handled::Skip`] records the
//!   event as skipped with the handler's reason; [`Handled::Park`] parks it at
//!   once. An event that does not decode is parked at once with the decode error.
//! - **Order per stream, by default.** Later events of a stream with a parked
//!   event are *held* behind it (recorded as dead letters in state
//!   [`LetterState::Held`]), because a consumer that reacts to `Closed`
//!   before the `Opened` it failed on acts on a state that never was. Once
//!   the parked event is redriven successfully or discarded, the held ones run
//!   by themselves, in order. A consumer whose handling of one event does not
//!   depend on the earlier ones says `#[consumer(order_independent)]`: then
//!   only the failing event is parked.
//! - **Operators see and act**: [`ConsumerHandle::dead_letters`] lists,
//!   [`redrive`](ConsumerHandle::redrive) / [`redrive_all`](ConsumerHandle::redrive_all)
//!   run parked events again (their commands still de-duplicated), and
//!   [`discard`](ConsumerHandle::discard) gives one up with a reason; each
//!   is recorded, nothing is deleted. [`ConsumerHandle::status`] gives the
//!   checkpoint, lag in events and seconds, rate and letter counts.
//! - **One runner across nodes** on PostgreSQL (an advisory lock per
//!   consumer), taken over within about a second when its node dies; memory
//!   and SQLite have one process per store.
//!
//! Writing one:
//! ```rust,standalone_crate
//! # use factum::prelude::*;
//! # use serde::{Deserialize, Serialize};
//! # #[derive(Clone, Debug)] pub struct Freeze { pub reason: String }
//! # #[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)] pub struct Withdrawn { pub amount: u64 }
//! # #[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)] pub struct Frozen { pub reason: String }
//! # #[derive(Default, Clone, Debug)] pub struct Account { frozen: bool }
//! # #[entity] impl Account {
//! #     #[handle] fn freeze(&self, cmd: Freeze) -> Frozen { Frozen { reason: cmd.reason } }
//! #     #[apply] fn frozen(&mut self, _e: &Frozen) { self.frozen = true }
//! # }
//! /// Freezes an account that withdraws more than the limit at once.
//! pub struct FraudCheck { pub limit: u64 }
//!
//! #[consumer(name = "fraud_check", max_attempts = 5)]
//! impl FraudCheck {
//!     #[on]
//!     async fn withdrawn(&self, e: &Withdrawn, ctx: &mut ConsumerContext) -> Result<(), CommandError<std::convert::Infallible>> {
//!         if e.amount > self.limit {
//!             let account = ctx.stream_id().to_owned();
//!             ctx.send::<Account>(&account, Freeze { reason: format!("withdrew {}", e.amount) }).await?;
//!         }
//!         Ok(())
//!     }
//! }
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let app = App::in_memory();
//! let fraud = app.consumers().start(FraudCheck { limit: 1_000 }).await?;
//! fraud.wait_idle().await?; // every event committed so far is handled
//! # Ok(()) }
//! ```
//! A handler is an `async fn(&self, e: &Event)`, optionally with
//! `ctx: &mut ConsumerContext` after the event, returning `()`, a
//! [`Handled`], or a `Result` of either whose `Err` (anything `Display`) is
//! retried. Side effects are allowed here: this is where they belong.

pub(crate) mod backend;
mod memory;
pub mod operate;
mod runner;

pub use backend::{ConsumerStore, ConsumerStoreError, DeadLetter, LetterState};
pub use memory::MemoryConsumerStore;
pub(crate) use runner::ConsumerSettings;
pub use runner::{ConsumerHandle, ConsumerStatus, Consumers};

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;

use crate::command::{CommandError, Commands, Committed, EntityRef, SendOptions};
use crate::entity::Entity;
use crate::event::CatalogueError;
use crate::process::Failure;
use crate::store::{RecordedEvent, StoreError};
use crate::time::{Clock, Timestamp};
use crate::timer::{TimerError, Timers};
use crate::view::EventMeta;

/// What a handler decided about one event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Handled {
    /// Handled; go on.
    Done,
    /// Try again after the backoff (counts as a failed attempt; parked after
    /// [`Consumer::MAX_ATTEMPTS`]).
    Retry(String),
    /// Do not handle it, for this reason: recorded as a skipped dead letter
    /// ([`LetterState::Skipped`]), never silently dropped. Later events of
    /// the stream go on.
    Skip(String),
    /// Park it now, for this reason, without more attempts.
    Park(String),
}

/// What a consumer handler may return: `()`, [`Handled`], or a `Result` of
/// either whose error (anything `Display`) means "retry".
pub trait IntoHandled {
    /// The decision.
    fn into_handled(self) -> Handled;
}

impl IntoHandled for () {
    fn into_handled(self) -> Handled {
        Handled::Done
    }
}

impl IntoHandled for Handled {
    fn into_handled(self) -> Handled {
        self
    }
}

impl<T: IntoHandled, E: fmt::Display> IntoHandled for Result<T, E> {
    fn into_handled(self) -> Handled {
        match self {
            Ok(t) => t.into_handled(),
            Err(e) => Handled::Retry(e.to_string()),
        }
    }
}

/// The future a consumer's generated dispatch returns.
pub type HandleFuture<'a> = Pin<Box<dyn Future<Output = Handled> + Send + 'a>>;

/// A consumer: its name, the events it handles and their dispatch.
/// Implemented by `#[consumer]`; the runtime does the rest.
pub trait Consumer: Send + Sync + 'static {
    /// The consumer's stable name: its checkpoint and dead letters are kept
    /// under it (1 to [`MAX_NAME`] bytes of `[a-z0-9_.-]`, starting with a letter).
    const NAME: &'static str;
    /// The stored names of the event types it handles; others pass unhandled.
    const EVENT_TYPES: &'static [&'static str];
    /// Handler runs per event before it is parked (at least 1).
    const MAX_ATTEMPTS: u32 = 5;
    /// The wait before the second run; it doubles per run, up to 10 s.
    const BACKOFF: Duration = Duration::from_millis(100);
    /// True when handling an event does not depend on the earlier events of
    /// its stream having been handled: a parked event then holds nothing back.
    const ORDER_INDEPENDENT: bool = false;

    /// Decodes the event in `ctx` (its type is one of [`EVENT_TYPES`](Consumer::EVENT_TYPES))
    /// and runs its handler.
    fn handle<'a>(&'a self, ctx: &'a mut ConsumerContext) -> HandleFuture<'a>;
}

/// The longest consumer name, in bytes.
pub const MAX_NAME: usize = 64;

/// Whether `name` may name a consumer: 1 to [`MAX_NAME`] bytes of lowercase
/// ASCII letters, digits, `_`, `.` and `-`, starting with a letter.
pub const fn is_valid_consumer_name(name: &str) -> bool {
    let b = name.as_bytes();
    if b.is_empty() || b.len() > MAX_NAME || !b[0].is_ascii_lowercase() {
        return false;
    }
    let mut i = 1;
    while i < b.len() {
        let c = b[i];
        if !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_' || c == b'.' || c == b'-') {
            return false;
        }
        i += 1;
    }
    true
}

/// What a consumer's handler gets beside the event: where the event is, its
/// attempt, and the app's command side and timers, wired for idempotency.
pub struct ConsumerContext {
    consumer: &'static str,
    record: RecordedEvent,
    attempt: u32,
    sends: u64,
    commands: Arc<Commands>,
    timers: Arc<Timers>,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for ConsumerContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConsumerContext")
            .field("consumer", &self.consumer)
            .field("position", &self.record.position)
            .field(
                "stream",
                &format_args!("{}/{}", self.record.stream_type, self.record.stream_id),
            )
            .field("attempt", &self.attempt)
            .finish_non_exhaustive()
    }
}

impl ConsumerContext {
    /// The consumer's name.
    pub fn consumer(&self) -> &'static str {
        self.consumer
    }

    /// The event being handled, as stored.
    pub fn record(&self) -> &RecordedEvent {
        &self.record
    }

    /// Where and when the event happened.
    pub fn meta(&self) -> EventMeta<'_> {
        EventMeta::of(&self.record)
    }

    /// The event's stream id (the entity id).
    pub fn stream_id(&self) -> &str {
        &self.record.stream_id
    }

    /// Which run of the handler on this event this is: 1 the first time,
    /// higher on retries and redrives.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// A key for outside calls that is the same on every delivery of this
    /// event to this consumer (and differs per consumer and event): pass it
    /// as the idempotency key of a payment API, a message id, …
    pub fn idempotency_key(&self) -> Uuid {
        crate::ids::consumer_command_id(self.consumer, self.record.metadata.event_id, u64::MAX)
    }

    /// The command id the next [`send`](ConsumerContext::send) will use; taking
    /// it moves on to the next. For a handler that sends through its own path.
    pub fn next_command_id(&mut self) -> Uuid {
        let id = crate::ids::consumer_command_id(self.consumer, self.record.metadata.event_id, self.sends);
        self.sends += 1;
        id
    }

    /// The options of the next send: its derived command id, caused by this
    /// event, in the event's business transaction (its correlation id).
    fn next_options(&mut self) -> SendOptions {
        SendOptions {
            command_id: Some(self.next_command_id()),
            causation_id: Some(self.record.metadata.event_id),
            correlation_id: Some(self.record.metadata.correlation_id),
        }
    }

    /// Sends `command` to the entity `E` with this id, idempotently: its
    /// command id is derived from this event and the send's place in the
    /// handler, so a redelivery re-sends the same id and gets the first outcome.
    pub async fn send<E: Entity>(
        &mut self,
        entity_id: &str,
        command: impl Into<E::Command>,
    ) -> Result<Committed<E>, CommandError<E::Error>> {
        let options = self.next_options();
        self.commands
            .entity::<E>(entity_id)
            .send_with(command, options)
            .await
    }

    /// The entity `E` with this id, to read its state (send through
    /// [`send`](ConsumerContext::send), which keeps the effect once).
    pub fn entity<E: Entity>(&self, entity_id: &str) -> EntityRef<E> {
        self.commands.entity::<E>(entity_id)
    }

    /// Schedules a timer (replaced by name, so a redelivery schedules the same
    /// timer again instead of a second one); see [`Timers::schedule`].
    pub async fn schedule<E, C>(
        &self,
        name: &str,
        entity_id: &str,
        due: Timestamp,
        command: C,
    ) -> Result<(), TimerError>
    where
        E: Entity,
        C: Into<E::Command> + serde::Serialize + serde::de::DeserializeOwned + Send + 'static,
    {
        self.timers.schedule::<E, C>(name, entity_id, due, command).await
    }

    /// Cancels the timer `name`; see [`Timers::cancel`].
    pub async fn cancel_timer(&self, name: &str) -> Result<bool, TimerError> {
        self.timers.cancel(name).await
    }

    /// The app clock's time now (consumers may read it; handlers of entities and views may not).
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }
}

/// What can go wrong with a consumer.
#[derive(Debug, thiserror::Error)]
pub enum ConsumerError {
    /// The event store is durable but no consumer store was configured:
    /// checkpoints kept in memory would make every restart handle the whole log again.
    #[error(
        "no consumer store is configured for the {backend} event store, and checkpoints kept in memory \
         would not survive a restart; configure one beside the events, e.g. `App::builder().sqlite(path)` \
         (which keeps them in the events file) or `.consumer_store(PostgresConsumerStore::connect_in_schema(url, schema).await?)`"
    )]
    NoStore {
        /// The event store's backend.
        backend: &'static str,
    },
    /// The name breaks the rule of [`is_valid_consumer_name`].
    #[error(
        "consumer name {name:?} is invalid: 1 to {MAX_NAME} bytes of lowercase ASCII letters, digits, `_`, `.` and `-`, starting with a letter"
    )]
    InvalidName {
        /// The name.
        name: String,
    },
    /// Two consumer types share a name, so they would share a checkpoint.
    #[error(
        "two consumers are named `{name}`: {first} and {second}; give one another `#[consumer(name = …)]`"
    )]
    DuplicateName {
        /// The shared name.
        name: &'static str,
        /// One Rust type.
        first: &'static str,
        /// The other.
        second: &'static str,
    },
    /// Two event types share a stored name and version.
    #[error(transparent)]
    Catalogue(#[from] CatalogueError),
    /// The consumer store failed.
    #[error("consumer {consumer}: {source}")]
    Storage {
        /// The consumer.
        consumer: String,
        /// The store's error.
        #[source]
        source: ConsumerStoreError,
    },
    /// Reading the log failed.
    #[error("consumer {consumer}: reading the log at position {position}: {source}")]
    Log {
        /// The consumer.
        consumer: &'static str,
        /// Where it read.
        position: u64,
        /// The store's error.
        #[source]
        source: StoreError,
    },
    /// No consumer of that name runs in this app.
    #[error("no consumer named `{name}` runs in this app")]
    Unknown {
        /// The name asked for.
        name: String,
    },
    /// A dead letter is not in a state that allows the operation.
    #[error(
        "consumer {consumer}: the dead letter at position {position} is {state}, so it cannot be {action}"
    )]
    LetterState {
        /// The consumer.
        consumer: String,
        /// The letter's position.
        position: u64,
        /// Its state.
        state: LetterState,
        /// What was asked.
        action: &'static str,
    },
    /// A discard needs a reason.
    #[error("consumer {consumer}: discarding the dead letter at position {position} needs a reason")]
    NoReason {
        /// The consumer.
        consumer: String,
        /// The letter's position.
        position: u64,
    },
    /// The runner failed repeatedly without moving its checkpoint (it keeps retrying).
    #[error("consumer {consumer} is failing at checkpoint {}: {} attempts, last error: {}", .failure.checkpoint, .failure.attempts, .failure.error)]
    Failing {
        /// The consumer.
        consumer: &'static str,
        /// The failure streak.
        failure: Failure,
    },
    /// The runner stopped (its app is gone).
    #[error("consumer {consumer}: the runner stopped")]
    Stopped {
        /// The consumer.
        consumer: &'static str,
    },
}

impl ConsumerError {
    fn storage(consumer: &str) -> impl FnOnce(ConsumerStoreError) -> ConsumerError + '_ {
        move |source| ConsumerError::Storage {
            consumer: consumer.to_owned(),
            source,
        }
    }
}

/// A consumer type linked into the program, as `#[consumer]` registers it (for
/// the catalogue and the duplicate-name check).
#[derive(Debug)]
pub struct ConsumerRegistration {
    /// The consumer's name.
    pub name: &'static str,
    /// The Rust type, with its module path.
    pub rust_type: &'static str,
    /// The stored names of the events it handles.
    pub event_types: &'static [&'static str],
}

impl ConsumerRegistration {
    #[doc(hidden)]
    pub const fn of<C: Consumer>(rust_type: &'static str) -> Self {
        ConsumerRegistration {
            name: C::NAME,
            rust_type,
            event_types: C::EVENT_TYPES,
        }
    }
}

inventory::collect!(ConsumerRegistration);

/// Every consumer type linked into the program.
pub fn registered() -> impl Iterator<Item = &'static ConsumerRegistration> {
    inventory::iter::<ConsumerRegistration>.into_iter()
}
