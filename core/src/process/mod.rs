//! Following the log: everything that reads the global log from a checkpoint
//! and acts on it (views today; consumers, producers, timers and workflows
//! next) stands on this layer instead of copying it.
//!
//! What it gives a process:
//! - **One active runner across nodes** ([`Lease`]): a process that cannot
//!   get the lease follows the one that has it, and tries again every second,
//!   so it takes over within about a second when the runner's node dies.
//! - **One tail mechanism** ([`Tail`]): read batches after a checkpoint, then
//!   wait for the store's head to move (or a short idle timeout), never a poll loop.
//! - **Retries with a failure streak** ([`Progress`]): a runner that fails is
//!   retried every second; [`Progress::wait_for`] gives up with the error once
//!   the runner failed [`FAILURES_BEFORE_WAIT_FAILS`] times in a row without
//!   its checkpoint moving, instead of hanging on a poison event.
//! - **Progress and lag** for readers: the checkpoint as a watch, whether this
//!   node runs the process, the last error, `head - checkpoint`.
//!
//! What stays with the process: *what* it does with a batch, and how its
//! checkpoint commits with its effects (a view commits rows and checkpoint in
//! one transaction; that atomicity is the view's, not this layer's).

mod runners;
mod supervisor;
mod tail;

pub(crate) use runners::Runners;
pub(crate) use supervisor::{Led, Process, supervise};
pub use tail::{Batch, Subscription, Tail};

use std::fmt;
use std::sync::Mutex;

use tokio::sync::watch;

/// Proof that this node runs a process; dropping it lets another node take over.
pub trait Lease: Send + Sync + 'static {
    /// True once the lease is gone (its connection dropped): stop writing.
    fn is_lost(&self) -> bool;
}

/// A lease that cannot be lost: one process owns the store (memory, SQLite).
#[derive(Debug)]
pub(crate) struct LocalLease;

impl Lease for LocalLease {
    fn is_lost(&self) -> bool {
        false
    }
}

/// How many consecutive runner failures without progress make
/// [`Progress::wait_for`] give up instead of waiting on.
pub const FAILURES_BEFORE_WAIT_FAILS: u32 = 3;

/// The runner's current streak of failures at one checkpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// Where the runner is stuck.
    pub checkpoint: u64,
    /// Consecutive failures without the checkpoint moving.
    pub attempts: u32,
    /// The last error.
    pub error: String,
}

/// Why [`Progress::wait_for`] returned before the position was reached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WaitError {
    /// The runner stopped (its app is gone).
    Stopped,
    /// The runner failed [`FAILURES_BEFORE_WAIT_FAILS`] times in a row at one checkpoint.
    Failing(Failure),
}

/// Where one process stands, shared by its runner and its readers.
pub struct Progress {
    checkpoint: watch::Sender<u64>,
    stopped: watch::Sender<bool>,
    runner: watch::Sender<bool>,
    /// Set once this node has tried for the lease and knows whether it runs
    /// the process or follows another node: before that, `is_runner` false
    /// means nothing.
    role_known: watch::Sender<bool>,
    last_error: Mutex<Option<String>>,
    failure: watch::Sender<Option<Failure>>,
}

impl fmt::Debug for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Progress")
            .field("checkpoint", &self.checkpoint())
            .field("runner", &self.is_runner())
            .field("failure", &*self.failure.borrow())
            .finish_non_exhaustive()
    }
}

impl Progress {
    /// A process at `checkpoint`, not (yet) the runner, with no error.
    pub fn new(checkpoint: u64) -> Self {
        Progress {
            checkpoint: watch::channel(checkpoint).0,
            stopped: watch::channel(false).0,
            runner: watch::channel(false).0,
            role_known: watch::channel(false).0,
            last_error: Mutex::new(None),
            failure: watch::channel(None).0,
        }
    }

    /// The last global position the process has handled.
    pub fn checkpoint(&self) -> u64 {
        *self.checkpoint.borrow()
    }

    /// How far the process is behind `head` (the store's head position).
    pub fn lag(&self, head: u64) -> u64 {
        head.saturating_sub(self.checkpoint())
    }

    /// Moves the published checkpoint forward (never back); a move ends the failure streak.
    pub fn publish(&self, position: u64) {
        let moved = self.checkpoint.send_if_modified(|c| {
            if position > *c {
                *c = position;
                true
            } else {
                false
            }
        });
        if moved {
            self.progressed();
        }
    }

    /// Ends the runner's failure streak: it moved.
    pub fn progressed(&self) {
        self.failure.send_if_modified(|f| f.take().is_some());
    }

    /// Counts a runner failure: one more in the streak if the checkpoint has
    /// not moved since the last one, else the first of a new streak. Also the
    /// [`last_error`](Progress::last_error).
    pub fn failed(&self, error: &dyn fmt::Display) {
        let error = error.to_string();
        self.set_last_error(error.clone());
        let checkpoint = self.checkpoint();
        self.failure.send_modify(|f| {
            let attempts = match f {
                Some(f) if f.checkpoint == checkpoint => f.attempts.saturating_add(1),
                _ => 1,
            };
            *f = Some(Failure {
                checkpoint,
                attempts,
                error,
            });
        });
    }

    /// The current failure streak, if the runner is failing.
    pub fn failure(&self) -> Option<Failure> {
        self.failure.borrow().clone()
    }

    /// Records a message for health checks without counting a failure.
    pub fn set_last_error(&self, message: String) {
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(message);
    }

    /// The last error the runner hit (it retries after each), if any.
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// True while this node runs the process (holds its lease).
    pub fn is_runner(&self) -> bool {
        *self.runner.borrow()
    }

    pub(crate) fn set_runner(&self, runner: bool) {
        self.runner.send_replace(runner);
    }

    /// Records that this node knows its role (it took the lease, found
    /// another node holding it, or holds off for a newer binary).
    pub(crate) fn set_role_known(&self) {
        self.role_known
            .send_if_modified(|known| !std::mem::replace(known, true));
    }

    /// Waits until this node knows whether it runs the process, so that
    /// [`is_runner`](Progress::is_runner) is an answer and not a guess made
    /// before the first lease attempt.
    pub(crate) async fn wait_role_known(&self) -> Result<(), WaitError> {
        let mut known = self.role_known.subscribe();
        let mut stopped = self.stopped.subscribe();
        loop {
            if *known.borrow_and_update() {
                return Ok(());
            }
            if *stopped.borrow_and_update() {
                return Err(WaitError::Stopped);
            }
            tokio::select! {
                r = known.changed() => if r.is_err() { return Err(WaitError::Stopped) },
                r = stopped.changed() => if r.is_err() { return Err(WaitError::Stopped) },
            }
        }
    }

    pub(crate) fn stop(&self) {
        self.stopped.send_replace(true);
    }

    /// Resolves once the process has stopped.
    pub(crate) async fn wait_stopped(&self) {
        let mut stopped = self.stopped.subscribe();
        // An error means the sender is gone: stopped too.
        let _ = stopped.wait_for(|s| *s).await;
    }

    /// Waits until the process has handled the log up to `position`.
    ///
    /// Gives up with [`WaitError::Failing`] once this node's runner has failed
    /// [`FAILURES_BEFORE_WAIT_FAILS`] times in a row without moving the
    /// checkpoint, and with [`WaitError::Stopped`] when the runner stopped.
    /// A streak that was already that long when the wait began is not taken
    /// as the answer: the wait looks at the runner's next attempt (the cause
    /// may have been repaired meanwhile), so it answers from the current state
    /// within one retry.
    pub async fn wait_for(&self, position: u64) -> Result<(), WaitError> {
        let mut rx = self.checkpoint.subscribe();
        let mut stopped = self.stopped.subscribe();
        let mut failure = self.failure.subscribe();
        let before = failure.borrow().as_ref().map(|f| (f.checkpoint, f.attempts));
        loop {
            let checkpoint = *rx.borrow_and_update();
            if checkpoint >= position {
                return Ok(());
            }
            if *stopped.borrow_and_update() {
                return Err(WaitError::Stopped);
            }
            if let Some(f) = failure.borrow_and_update().as_ref()
                && f.attempts >= FAILURES_BEFORE_WAIT_FAILS
                && f.checkpoint == checkpoint
                && before.is_none_or(|(at, attempts)| at != f.checkpoint || f.attempts > attempts)
            {
                return Err(WaitError::Failing(f.clone()));
            }
            tokio::select! {
                r = rx.changed() => if r.is_err() { return Err(WaitError::Stopped) },
                r = stopped.changed() => if r.is_err() { return Err(WaitError::Stopped) },
                r = failure.changed() => if r.is_err() { return Err(WaitError::Stopped) },
            }
        }
    }
}
