//! The storage-backend interface of timers: what a timer store must keep (the
//! pending timers by name, the recent firings) and do (replace by name, hand
//! out the due ones in due order, settle a batch of firings in one
//! transaction, lease the one runner), for the memory, SQLite and PostgreSQL
//! backends. Users meet none of this; they call [`Timers`](super::Timers).

use std::fmt;

use async_trait::async_trait;
use uuid::Uuid;

use crate::process::Lease;
use crate::time::Timestamp;

/// How many firings a store keeps for [`Timers::recent_firings`](super::Timers::recent_firings);
/// older ones are pruned when new ones are recorded.
pub const KEPT_FIRINGS: usize = 1000;

/// One pending timer, as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredTimer {
    /// The timer's name, unique per store.
    pub name: String,
    /// The target entity's type name ([`Entity::NAME`](crate::Entity::NAME)).
    pub entity_type: String,
    /// The target entity's id.
    pub entity_id: String,
    /// The command's type name (the Rust type's name without its module path).
    pub command_type: String,
    /// When the command is due.
    pub due: Timestamp,
    /// The command, as JSON.
    pub payload: Vec<u8>,
    /// Which scheduling under this name this is: a replace gives a new one, so
    /// settling a firing never removes the timer that replaced it.
    pub schedule_id: Uuid,
    /// The clock's time when it was scheduled.
    pub scheduled_at: Timestamp,
    /// Firings tried that did not complete (store failures, no decoder).
    pub attempts: u32,
    /// Why the last try did not complete.
    pub last_error: Option<String>,
    /// True when no runner so far could decode the command: it is not handed
    /// out as due again until a decoder is registered or a new runner starts.
    pub blocked: bool,
}

/// What one firing came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FiringOutcome {
    /// The command committed: the entity's version and the global position
    /// of its last event (both unchanged, position 0, when it produced none).
    Fired {
        /// The entity's version after the command.
        version: u64,
        /// The global position of the command's last event (0 when none).
        position: u64,
    },
    /// The entity rejected the command. The timer is done.
    Rejected {
        /// The rejection, as displayed.
        message: String,
    },
    /// The firing did not complete (the store failed, or nobody can decode
    /// the command). The timer stays pending and is tried again.
    Failed {
        /// What went wrong.
        error: String,
    },
}

impl FiringOutcome {
    /// The kind as stored: `fired`, `rejected` or `failed`.
    pub fn kind(&self) -> &'static str {
        match self {
            FiringOutcome::Fired { .. } => "fired",
            FiringOutcome::Rejected { .. } => "rejected",
            FiringOutcome::Failed { .. } => "failed",
        }
    }

    /// The message of a rejection or failure.
    pub fn message(&self) -> Option<&str> {
        match self {
            FiringOutcome::Fired { .. } => None,
            FiringOutcome::Rejected { message } => Some(message),
            FiringOutcome::Failed { error } => Some(error),
        }
    }

    /// Rebuilds an outcome from its stored columns; `None` for an unknown kind.
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    pub(crate) fn from_columns(
        kind: &str,
        version: u64,
        position: u64,
        message: Option<String>,
    ) -> Option<Self> {
        Some(match kind {
            "fired" => FiringOutcome::Fired { version, position },
            "rejected" => FiringOutcome::Rejected {
                message: message.unwrap_or_default(),
            },
            "failed" => FiringOutcome::Failed {
                error: message.unwrap_or_default(),
            },
            _ => return None,
        })
    }
}

/// One firing of a timer, as recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Firing {
    /// The timer's name.
    pub name: String,
    /// The target entity's type name.
    pub entity_type: String,
    /// The target entity's id.
    pub entity_id: String,
    /// The command's type name.
    pub command_type: String,
    /// When the timer was due.
    pub due: Timestamp,
    /// The clock's time when it fired.
    pub fired_at: Timestamp,
    /// The command id it was sent with ([`timer_command_id`](crate::ids::timer_command_id)).
    pub command_id: Uuid,
    /// What came of it.
    pub outcome: FiringOutcome,
}

/// What becomes of a timer once a firing of it is recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum After {
    /// Done (fired or rejected): the timer is removed, unless it was replaced meanwhile.
    Done,
    /// Try again later: the timer stays, one more attempt and the error noted.
    Retry,
    /// Nobody here can decode it: the timer stays, blocked, with the error noted.
    Block,
}

/// One firing to record, and what becomes of its timer, settled in one transaction with the rest of its batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settlement {
    /// The scheduling the firing was of ([`StoredTimer::schedule_id`]).
    pub schedule_id: Uuid,
    /// The firing.
    pub firing: Firing,
    /// What becomes of the timer.
    pub after: After,
}

/// A failure of timer storage.
#[derive(Debug, thiserror::Error)]
pub enum TimerStoreError {
    /// A stored value is not one factum writes (an edited or damaged row).
    #[error("{backend} timer store: {detail}")]
    Corrupt {
        /// Which store.
        backend: &'static str,
        /// What is wrong, naming the timer.
        detail: String,
    },
    /// The backend failed.
    #[error("{backend} timer store: {context}: {source}")]
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

#[cfg(any(feature = "sqlite", feature = "postgres"))]
impl TimerStoreError {
    pub(crate) fn backend(
        backend: &'static str,
        context: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        TimerStoreError::Backend {
            backend,
            context: context.into(),
            source: Box::new(source),
        }
    }

    pub(crate) fn corrupt(backend: &'static str, detail: impl Into<String>) -> Self {
        TimerStoreError::Corrupt {
            backend,
            detail: detail.into(),
        }
    }
}

/// Where timers are kept: beside the events, in the same store.
#[async_trait]
pub trait TimerStore: Send + Sync + 'static {
    /// A short name for messages ("memory", "sqlite", "postgres").
    fn backend(&self) -> &'static str;

    /// Stores `timer`, replacing the pending timer of the same name if any
    /// (attempts, error and block start afresh).
    async fn schedule(&self, timer: StoredTimer) -> Result<(), TimerStoreError>;

    /// Removes the pending timer `name`; true if there was one.
    async fn cancel(&self, name: &str) -> Result<bool, TimerStoreError>;

    /// The unblocked timers due at or before `now`, earliest first (then by
    /// name), at most `limit`, starting after `(due, name)` when given (a
    /// runner walks the due timers with this cursor, so one it could not
    /// settle is not handed out again in the same sweep).
    async fn due(
        &self,
        now: Timestamp,
        after: Option<(Timestamp, &str)>,
        limit: usize,
    ) -> Result<Vec<StoredTimer>, TimerStoreError>;

    /// The due time of the earliest unblocked timer.
    async fn next_due(&self) -> Result<Option<Timestamp>, TimerStoreError>;

    /// Pending timers, blocked ones included, earliest first (then by name),
    /// at most `limit`, starting after `(due, name)` when given.
    async fn pending(
        &self,
        after: Option<(Timestamp, &str)>,
        limit: usize,
    ) -> Result<Vec<StoredTimer>, TimerStoreError>;

    /// Records a batch of firings and what becomes of their timers, all or
    /// nothing, keeping the newest [`KEPT_FIRINGS`] firings.
    async fn settle(&self, batch: Vec<Settlement>) -> Result<(), TimerStoreError>;

    /// Unblocks the timers of one entity and command type (`Some`), or all
    /// of them (`None`), so they are handed out as due again.
    async fn unblock(&self, only: Option<(&str, &str)>) -> Result<(), TimerStoreError>;

    /// The newest recorded firings, newest first, at most `limit`.
    async fn recent_firings(&self, limit: usize) -> Result<Vec<Firing>, TimerStoreError>;

    /// Tries to become the one runner of this store's timers; `None` while
    /// another process is.
    async fn try_lease(&self) -> Result<Option<Box<dyn Lease>>, TimerStoreError>;

    /// Tries to become the one runner of another process that keeps its
    /// durable state beside these timers (the workflow runner: `process` is
    /// `"workflows"`); `None` while another process is. A lease of its own,
    /// apart from the timer runner's, so one node may run the timers and
    /// another the workflows.
    async fn try_process_lease(&self, process: &str) -> Result<Option<Box<dyn Lease>>, TimerStoreError>;
}

impl fmt::Display for FiringOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FiringOutcome::Fired { version, position } => {
                write!(f, "fired: version {version}, position {position}")
            }
            FiringOutcome::Rejected { message } => write!(f, "rejected: {message}"),
            FiringOutcome::Failed { error } => write!(f, "failed: {error}"),
        }
    }
}
