//! Workflows: long-running processes as code (design §2 "Workflows"),
//! event-sourced and driven by the process layer.
//!
//! A workflow is a state type with an `#[workflow]` impl block. Two kinds of
//! code are kept apart:
//! - **decisions** — the start command (`#[start]`) and the signals
//!   (`#[signal]`) — are pure, take `&self`, and obey the rules of `factum::rules`
//!   like `#[handle]`: no clock, no randomness, no side effects;
//! - **steps** (`#[step]`, `async`) do the work: call entities through their
//!   [`StepContext`], call outside services. Each returns the next move, a
//!   [`Then`]: [`to`](Then::to) another step with its input,
//!   [`pause`](Then::pause) until a signal (or [`pause_for`](Then::pause_for)
//!   a time, then a step), [`end`](Then::end) or [`fail`](Then::fail).
//!
//! What an instance promises:
//! - **An instance is an entity.** Its stream type is the workflow's name, its
//!   id the instance id; its commands are the start command, the signals, the
//!   steps' results and the timers' firings ([`Instance`]), so the command
//!   side's guarantees hold for it: one writer at a time, optimistic
//!   concurrency across nodes, `history()`, and views following its events
//!   ([`WorkflowEvent`]: non-generic event types a `#[view]` can `#[on]`).
//! - **Resumes at the step in flight.** A step's result is recorded before
//!   the next step is entered. A process that dies while a step runs re-runs
//!   that step after the restart (at least once). The entity calls a step
//!   makes through [`StepContext::send`] carry the command id
//!   [`workflow_command_id`](crate::ids::workflow_command_id)`(workflow, id, step, seq, call)`
//!   — the step's sequence number, not the attempt — so the store's
//!   de-duplication gives each call its effect once across re-runs and retries.
//!   That holds when a re-run makes the same calls in the same order with the
//!   same commands (a different command under the id is refused with
//!   `CommandIdReused`, never applied twice).
//! - **Time is the durable timers'.** A step's timeout, the delay before a
//!   retry and a pause's timeout are [timers](crate::timer) that send a
//!   command to the instance; with a [`ManualClock`](crate::ManualClock) they
//!   fire when the clock is advanced. A late timer (its step already done) is a no-op.
//! - **Retries and failover.** A step that returns `Err`, panics or times out
//!   is tried again up to `max_retries` times, `backoff` apart (doubling);
//!   then the instance enters its `failover` step, or fails.
//! - **One runner across nodes** (the process layer's lease: an advisory lock
//!   on PostgreSQL, a local lease on memory and SQLite). Every node follows
//!   the log to keep its [index](Workflows::list) of instances; the runner
//!   also runs their steps.
//!
//! - **A workflow-wide timeout and a compensation on cancel**
//!   (`#[workflow(timeout = "15m", on_timeout = release, on_cancel = refund)]`)
//!   take effect at a step boundary, never in the middle of a step: a paused
//!   instance enters its final step at once; one in a step (running, or
//!   waiting for a retry) finishes that step first — bounded by the step's
//!   own timeout — and then enters the final step instead of the move the
//!   step chose. So the final step starts from a state that says which steps
//!   had their effect. A step's own `end` or `fail` is honoured (the
//!   cancel or timeout came too late to change anything). A cancelled
//!   instance whose compensation ends is [`Status::Cancelled`]. Without
//!   `on_cancel`, a cancel ends the instance at once (a step in flight is
//!   stopped); without `on_timeout`, the timeout fails it.
//!
//! The test kit drives workflows on virtual time
//! ([`VirtualTime::settle`](../testkit/struct.VirtualTime.html#method.settle)), injects
//! step failures ([`Workflows::fail_step`]), and runs a whole app under
//! seeded crashes, duplicate deliveries and failures with invariants checked
//! throughout ([`testkit::simulate`](../testkit/fn.simulate.html)).
//!
//! Limits of this version: the runner (and every node's index) reads the log
//! from its start when the process starts, so startup time grows with the
//! log; a signal is accepted only while the instance is paused; a step with
//! no timeout of its own can hold off the workflow's timeout for as long as it
//! runs.

mod context;
mod instance;
mod runner;

pub use context::StepContext;
pub use instance::{
    DeadlinePassed, Instance, InstanceCommand, PauseExpired, PauseTimeout, RetryDue, StepTimedOut,
    WorkflowEvent, WorkflowRejection, events,
};
pub use runner::{
    InstanceError, InstanceInfo, STEPS_IN_FLIGHT, StepRecord, WorkflowRef, WorkflowRunnerError,
    WorkflowWaitError, Workflows,
};

use std::fmt::Debug;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::entity::Context;

/// A long-running process: its state type and the code `#[workflow]` generates for it.
pub trait Workflow: Default + Clone + Debug + Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The workflow's name: the stream type of its instances (`#[workflow(name = …)]`).
    const NAME: &'static str;
    /// The names of its steps.
    const STEPS: &'static [&'static str];
    /// The start command (the `#[start]` method's command type).
    type Start: Clone + Debug + Send + Sync + 'static;
    /// The generated enum of the signal commands (one variant per `#[signal]`).
    type Signal: Clone + Debug + Send + Sync + 'static;
    /// What a refused start or signal returns.
    type Error: std::error::Error + Send + Sync + 'static;

    /// The start decision, on the default state.
    fn start(&self, command: Self::Start, ctx: &Context) -> Result<Then<Self>, Self::Error>;

    /// A signal's decision, on the paused instance's state.
    fn signal(&self, signal: Self::Signal, ctx: &Context) -> Result<Then<Self>, Self::Error>;

    /// The command type name of a signal (`Accept`), for errors and events.
    fn signal_name(signal: &Self::Signal) -> &'static str;

    /// The options of step `step` (defaults for an unknown name).
    fn step_options(step: &str) -> StepOptions;

    /// The workflow-wide options (`#[workflow(timeout = …, on_timeout = …, on_cancel = …)]`).
    fn workflow_options() -> WorkflowOptions {
        WorkflowOptions::default()
    }

    /// Runs step `step` with its JSON-encoded input. `Err` is a failed attempt.
    fn run_step<'a>(
        &'a self,
        step: &'a str,
        ctx: &'a StepContext,
        input: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<Then<Self>, String>> + Send + 'a>>;
}

/// Per-step options, from `#[step(timeout = "30s", max_retries = 3, backoff = "1s", failover = refund)]`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StepOptions {
    /// How long one attempt may run before it counts as failed (none: no limit).
    pub timeout: Option<Duration>,
    /// How many times a failed step is tried again (0: once in all).
    pub max_retries: u32,
    /// The delay before the first retry; each later one doubles it (up to 64×).
    pub backoff: Duration,
    /// The step entered (with input `()`) once the retries are spent; none: the instance fails.
    pub failover: Option<&'static str>,
}

/// Workflow-wide options, from
/// `#[workflow(timeout = "15m", on_timeout = release, on_cancel = refund)]`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WorkflowOptions {
    /// How long an instance may run, from its start, before it enters its
    /// `on_timeout` step (at the next step boundary) or fails.
    pub timeout: Option<Duration>,
    /// The step (input `()`) entered once the timeout passed; none: the instance fails.
    pub on_timeout: Option<&'static str>,
    /// The compensation (input `()`) a cancel runs; none: a cancel ends the instance at once.
    pub on_cancel: Option<&'static str>,
}

/// A step of workflow `W` taking input `I`: what `Self::deposit` names in a
/// `#[workflow]` block, so a transition's target is checked by the compiler.
pub struct StepRef<W, I> {
    name: &'static str,
    _types: PhantomData<fn() -> (W, I)>,
}

impl<W, I> StepRef<W, I> {
    /// Generated by `#[workflow]`; not for users.
    #[doc(hidden)]
    pub const fn new(name: &'static str) -> Self {
        StepRef {
            name,
            _types: PhantomData,
        }
    }

    /// The step's name.
    pub const fn name(&self) -> &'static str {
        self.name
    }
}

impl<W, I> Clone for StepRef<W, I> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<W, I> Copy for StepRef<W, I> {}

impl<W, I> Debug for StepRef<W, I> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StepRef({})", self.name)
    }
}

/// The next move of an instance, returned by its decisions and steps,
/// optionally with a new state ([`with_state`](Then::with_state)).
#[derive(Clone, Debug)]
pub struct Then<W> {
    state: Option<W>,
    next: Next,
}

#[derive(Clone, Debug)]
enum Next {
    Step {
        step: &'static str,
        input: Result<String, String>,
    },
    Pause {
        timeout: Option<(Duration, &'static str, Result<String, String>)>,
    },
    End,
    Fail(String),
}

fn encode_input<I: Serialize>(input: &I) -> Result<String, String> {
    serde_json::to_string(input).map_err(|e| e.to_string())
}

impl<W> Then<W> {
    /// Enter `step` with `input`.
    pub fn to<I: Serialize>(step: StepRef<W, I>, input: I) -> Self {
        Then {
            state: None,
            next: Next::Step {
                step: step.name,
                input: encode_input(&input),
            },
        }
    }

    /// Pause until a signal comes (no timeout).
    pub fn pause() -> Self {
        Then {
            state: None,
            next: Next::Pause { timeout: None },
        }
    }

    /// Pause until a signal comes, or for `timeout`, then enter `step` with `input`.
    pub fn pause_for<I: Serialize>(timeout: Duration, step: StepRef<W, I>, input: I) -> Self {
        Then {
            state: None,
            next: Next::Pause {
                timeout: Some((timeout, step.name, encode_input(&input))),
            },
        }
    }

    /// End the instance: it succeeded.
    pub fn end() -> Self {
        Then {
            state: None,
            next: Next::End,
        }
    }

    /// End the instance as failed, with a reason.
    pub fn fail(reason: impl Into<String>) -> Self {
        Then {
            state: None,
            next: Next::Fail(reason.into()),
        }
    }

    /// The same move, recording `state` as the instance's new state first.
    pub fn with_state(mut self, state: W) -> Self {
        self.state = Some(state);
        self
    }
}

/// Where an instance stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub enum Status {
    /// Not started (no events).
    NotStarted,
    /// In a step: `attempt` is running, or waits for its retry time (`retry_at`).
    Running {
        /// The step.
        step: String,
        /// The step's sequence number in this instance (from 1).
        seq: u64,
        /// The attempt (from 1).
        attempt: u32,
        /// When a retry waits for its backoff: the time it is due.
        retry_at: Option<crate::Timestamp>,
    },
    /// Waiting for a signal.
    Paused {
        /// The pause's sequence number.
        seq: u64,
        /// When the pause times out, if it does.
        timeout_at: Option<crate::Timestamp>,
    },
    /// Ended successfully.
    Ended,
    /// Failed: a step's retries were spent without a failover, or a step chose to fail.
    Failed {
        /// Why.
        reason: String,
    },
    /// Cancelled by an operator.
    Cancelled {
        /// Why.
        reason: String,
    },
}

impl Status {
    /// The status without its details, for [`Workflows::list`].
    pub fn kind(&self) -> StatusKind {
        match self {
            Status::NotStarted => StatusKind::NotStarted,
            Status::Running { .. } => StatusKind::Running,
            Status::Paused { .. } => StatusKind::Paused,
            Status::Ended => StatusKind::Ended,
            Status::Failed { .. } => StatusKind::Failed,
            Status::Cancelled { .. } => StatusKind::Cancelled,
        }
    }

    /// True once nothing more will happen to the instance.
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            Status::Ended | Status::Failed { .. } | Status::Cancelled { .. }
        )
    }
}

/// [`Status`] without its details.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StatusKind {
    /// Not started.
    NotStarted,
    /// In a step.
    Running,
    /// Waiting for a signal.
    Paused,
    /// Ended successfully.
    Ended,
    /// Failed.
    Failed,
    /// Cancelled.
    Cancelled,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Status::NotStarted => f.write_str("not started"),
            Status::Running {
                step, seq, attempt, ..
            } => {
                write!(f, "running step `{step}` (seq {seq}, attempt {attempt})")
            }
            Status::Paused { seq, .. } => write!(f, "paused (seq {seq})"),
            Status::Ended => f.write_str("ended"),
            Status::Failed { reason } => write!(f, "failed: {reason}"),
            Status::Cancelled { reason } => write!(f, "cancelled: {reason}"),
        }
    }
}

/// A workflow linked into this program (entered by `#[workflow]`): how the
/// runner drives its instances without knowing its type.
#[doc(hidden)]
pub struct WorkflowRegistration {
    /// The workflow's name.
    pub name: &'static str,
    pub(crate) driver: fn() -> std::sync::Arc<dyn runner::Driver>,
    pub(crate) register_timers: fn(&mut crate::timer::TimerSettings),
}

impl WorkflowRegistration {
    /// The registration of `W`.
    pub const fn of<W: Workflow>() -> Self {
        WorkflowRegistration {
            name: W::NAME,
            driver: runner::driver::<W>,
            register_timers: register_timers::<W>,
        }
    }
}

fn register_timers<W: Workflow>(settings: &mut crate::timer::TimerSettings) {
    settings.register::<Instance<W>, StepTimedOut>();
    settings.register::<Instance<W>, RetryDue>();
    settings.register::<Instance<W>, PauseExpired>();
    settings.register::<Instance<W>, DeadlinePassed>();
}

inventory::collect!(WorkflowRegistration);

/// Every workflow linked into this program.
pub(crate) fn registered() -> impl Iterator<Item = &'static WorkflowRegistration> {
    inventory::iter::<WorkflowRegistration>.into_iter()
}

/// The decision's result as `Then`, for the generated dispatch: a decision
/// may return `Then<W>` or `Result<Then<W>, E>`.
#[doc(hidden)]
pub trait IntoDecision<W, E> {
    /// The decision's result.
    fn into_decision(self) -> Result<Then<W>, E>;
}

impl<W, E> IntoDecision<W, E> for Then<W> {
    fn into_decision(self) -> Result<Then<W>, E> {
        Ok(self)
    }
}

impl<W, E, F: Into<E>> IntoDecision<W, E> for Result<Then<W>, F> {
    fn into_decision(self) -> Result<Then<W>, E> {
        self.map_err(Into::into)
    }
}

/// A step's result as `Then` or an error message, for the generated dispatch:
/// a step may return `Then<W>` or `Result<Then<W>, E>` with `E: Display`.
#[doc(hidden)]
pub trait IntoStepResult<W> {
    /// The step's result.
    fn into_step_result(self) -> Result<Then<W>, String>;
}

impl<W> IntoStepResult<W> for Then<W> {
    fn into_step_result(self) -> Result<Then<W>, String> {
        Ok(self)
    }
}

impl<W, E: std::fmt::Display> IntoStepResult<W> for Result<Then<W>, E> {
    fn into_step_result(self) -> Result<Then<W>, String> {
        self.map_err(|e| e.to_string())
    }
}

/// A step input decoded from its stored JSON, for the generated dispatch.
#[doc(hidden)]
pub fn decode_input<I: DeserializeOwned>(step: &str, input: &str) -> Result<I, String> {
    serde_json::from_str(input).map_err(|e| {
        format!(
            "the input of step `{step}` does not decode as `{}`: {e}",
            std::any::type_name::<I>()
        )
    })
}
