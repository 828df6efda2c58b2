//! The storage-backend interface of consumers: what a consumer store keeps (a
//! checkpoint per consumer, the dead letters) and does (move a checkpoint by
//! compare-and-set together with the batch's dead letters, in one
//! transaction; update one letter; lease the one runner), for the memory,
//! SQLite and PostgreSQL backends. The letter lifecycle (what parks, what
//! waits, what a redrive runs) is the runner's, written once; a store only
//! keeps rows. Users meet the types, not the trait: see [`Consumers`](super::Consumers).

use std::fmt;

use async_trait::async_trait;
use uuid::Uuid;

use crate::process::Lease;
use crate::time::Timestamp;

/// Where a dead letter stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LetterState {
    /// The handler failed on it [`max_attempts`](super::Consumer::MAX_ATTEMPTS)
    /// times (or parked it): it waits for an operator to redrive or discard it.
    Parked,
    /// It came after a parked event of the same stream and waits behind it
    /// (streams are handled in order unless the consumer is order-independent).
    /// It runs by itself once nothing unresolved is before it.
    Held,
    /// An operator asked for it to run again; the runner takes it next.
    Redrive,
    /// It ran successfully after being parked or held.
    Resolved,
    /// An operator gave it up, with a reason.
    Discarded,
    /// The handler chose to skip it, with a reason (recorded, never silent).
    Skipped,
}

impl LetterState {
    /// Every state, in the order listings group them.
    pub const ALL: [LetterState; 6] = [
        LetterState::Parked,
        LetterState::Held,
        LetterState::Redrive,
        LetterState::Resolved,
        LetterState::Discarded,
        LetterState::Skipped,
    ];

    /// The state as stored: `parked`, `held`, `redrive`, `resolved`, `discarded`, `skipped`.
    pub fn as_str(self) -> &'static str {
        match self {
            LetterState::Parked => "parked",
            LetterState::Held => "held",
            LetterState::Redrive => "redrive",
            LetterState::Resolved => "resolved",
            LetterState::Discarded => "discarded",
            LetterState::Skipped => "skipped",
        }
    }

    /// The state a stored name stands for.
    pub fn parse(stored: &str) -> Option<Self> {
        LetterState::ALL.into_iter().find(|s| s.as_str() == stored)
    }

    /// True while the letter still has to run (parked, held, or asked to
    /// redrive): its stream waits behind it, unless the consumer is order-independent.
    pub fn is_open(self) -> bool {
        matches!(
            self,
            LetterState::Parked | LetterState::Held | LetterState::Redrive
        )
    }
}

impl fmt::Display for LetterState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An event a consumer could not (or chose not to) handle in log order, as recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadLetter {
    /// The consumer's name.
    pub consumer: String,
    /// The event's global position (with the consumer, the letter's key).
    pub position: u64,
    /// The event's stream type.
    pub stream_type: String,
    /// The event's stream id.
    pub stream_id: String,
    /// The event's version in its stream.
    pub version: u64,
    /// The event's stored type name.
    pub event_type: String,
    /// The event's id.
    pub event_id: Uuid,
    /// Where it stands.
    pub state: LetterState,
    /// Handler runs tried on it so far.
    pub attempts: u32,
    /// The last error, the handler's reason for parking or skipping, or (held)
    /// the position it waits behind.
    pub error: String,
    /// The operator's reason, for a discarded letter.
    pub reason: Option<String>,
    /// When it was first recorded (the clock's time).
    pub recorded_at: Timestamp,
    /// When its state last changed.
    pub updated_at: Timestamp,
}

/// A failure of consumer storage.
#[derive(Debug, thiserror::Error)]
pub enum ConsumerStoreError {
    /// The checkpoint is not where the runner expected: another runner moved
    /// it (it held the lease before). Nothing of the commit was applied.
    #[error("consumer {consumer}: the checkpoint moved: expected {expected}, found {found}")]
    CheckpointMoved {
        /// The consumer.
        consumer: String,
        /// The checkpoint the commit started from.
        expected: u64,
        /// The stored checkpoint.
        found: u64,
    },
    /// No dead letter of that consumer at that position.
    #[error("consumer {consumer}: no dead letter at position {position}")]
    NoLetter {
        /// The consumer.
        consumer: String,
        /// The position asked for.
        position: u64,
    },
    /// The letter is no longer in the state the update expected (someone
    /// else changed it first). Nothing was changed.
    #[error(
        "consumer {consumer}: the dead letter at position {position} is {found}, not {expected} as expected"
    )]
    LetterMoved {
        /// The consumer.
        consumer: String,
        /// The letter's position.
        position: u64,
        /// The state the update expected.
        expected: LetterState,
        /// The state found.
        found: LetterState,
    },
    /// A stored value is not one factum writes (an edited or damaged row).
    #[error("{backend} consumer store: {detail}")]
    Corrupt {
        /// Which store.
        backend: &'static str,
        /// What is wrong, naming the row.
        detail: String,
    },
    /// The backend failed.
    #[error("{backend} consumer store: {context}: {source}")]
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

impl From<crate::fault::Fault> for ConsumerStoreError {
    fn from(fault: crate::fault::Fault) -> Self {
        ConsumerStoreError::Backend {
            backend: "fault",
            context: "a fault point".to_owned(),
            source: Box::new(fault),
        }
    }
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
impl ConsumerStoreError {
    pub(crate) fn backend(
        backend: &'static str,
        context: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        ConsumerStoreError::Backend {
            backend,
            context: context.into(),
            source: Box::new(source),
        }
    }

    pub(crate) fn corrupt(backend: &'static str, detail: impl Into<String>) -> Self {
        ConsumerStoreError::Corrupt {
            backend,
            detail: detail.into(),
        }
    }
}

/// Where consumers keep their checkpoints and dead letters: beside the events.
#[async_trait]
pub trait ConsumerStore: Send + Sync + 'static {
    /// A short name for messages ("memory", "sqlite", "postgres").
    fn backend(&self) -> &'static str;

    /// The consumer's checkpoint: the last global position it handled (0 for a new one).
    async fn checkpoint(&self, consumer: &str) -> Result<u64, ConsumerStoreError>;

    /// Every consumer with a stored checkpoint, by name.
    async fn checkpoints(&self) -> Result<Vec<(String, u64)>, ConsumerStoreError>;

    /// Moves the checkpoint from `from` to `to` and records `letters` (a
    /// letter at a position already recorded replaces it), all or nothing.
    /// Fails with [`ConsumerStoreError::CheckpointMoved`] when the stored
    /// checkpoint is not `from`, changing nothing.
    async fn commit(
        &self,
        consumer: &str,
        from: u64,
        to: u64,
        letters: Vec<DeadLetter>,
    ) -> Result<(), ConsumerStoreError>;

    /// Replaces the recorded letter at `letter.position` (state, attempts,
    /// error, reason, updated-at) if it is still in state `expected`:
    /// [`ConsumerStoreError::LetterMoved`] when it is not, and
    /// [`ConsumerStoreError::NoLetter`] when there is none.
    async fn update(&self, letter: DeadLetter, expected: LetterState) -> Result<(), ConsumerStoreError>;

    /// The consumer's letters in position order, only those in `states` when
    /// given, after `after` (a position) when given, at most `limit`.
    async fn letters(
        &self,
        consumer: &str,
        states: Option<&[LetterState]>,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, ConsumerStoreError>;

    /// Tries to become the one runner of `consumer`; `None` while another process is.
    async fn try_lease(&self, consumer: &str) -> Result<Option<Box<dyn Lease>>, ConsumerStoreError>;
}

/// The columns of a dead-letter row as SQL returns them, checked into a
/// [`DeadLetter`] once, for both SQL backends.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) struct LetterRow {
    pub(crate) consumer: String,
    pub(crate) position: i64,
    pub(crate) stream_type: String,
    pub(crate) stream_id: String,
    pub(crate) version: i64,
    pub(crate) event_type: String,
    pub(crate) event_id: Vec<u8>,
    pub(crate) state: String,
    pub(crate) attempts: i64,
    pub(crate) error: String,
    pub(crate) reason: Option<String>,
    pub(crate) recorded_at: i64,
    pub(crate) updated_at: i64,
}

/// The dead-letter columns in the order [`LetterRow`] reads them.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) const LETTER_COLUMNS: &str = "consumer, position, stream_type, stream_id, version, event_type, \
     event_id, state, attempts, error, reason, recorded_at, updated_at";

#[cfg(any(feature = "sqlite", feature = "postgres"))]
impl LetterRow {
    /// The letter, or a corruption naming the row and the column.
    pub(crate) fn check(self, backend: &'static str) -> Result<DeadLetter, ConsumerStoreError> {
        let row = format!("consumer {} position {}", self.consumer, self.position);
        let bad = |column: &str, what: &str| {
            ConsumerStoreError::corrupt(
                backend,
                format!("factum_dead_letters, {row}: column {column} {what}"),
            )
        };
        let unsigned = |v: i64, column: &str| u64::try_from(v).map_err(|_| bad(column, "is negative"));
        Ok(DeadLetter {
            position: unsigned(self.position, "position")?,
            version: unsigned(self.version, "version")?,
            event_id: Uuid::from_slice(&self.event_id).map_err(|_| bad("event_id", "is not a 16-byte id"))?,
            state: LetterState::parse(&self.state).ok_or_else(|| bad("state", "is not a letter state"))?,
            attempts: u32::try_from(unsigned(self.attempts, "attempts")?).unwrap_or(u32::MAX),
            consumer: self.consumer,
            stream_type: self.stream_type,
            stream_id: self.stream_id,
            event_type: self.event_type,
            error: self.error,
            reason: self.reason,
            recorded_at: Timestamp::from_micros(self.recorded_at),
            updated_at: Timestamp::from_micros(self.updated_at),
        })
    }
}
