//! A workflow instance as an entity: its events (non-generic, so views and
//! consumers can follow them), its commands (start, signals, step results,
//! timer firings, cancel) and the pure decisions over them.
//!
//! Every command is decided against the instance's status, so a duplicate or
//! late one (a step result for an attempt already settled, a timer whose step
//! already ended) decides nothing: the instance itself is the de-duplication.

use std::marker::PhantomData;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Next, Status, StepOptions, Then, Workflow};
use crate::codec::{Codec, CodecError};
use crate::entity::{Context, Entity};
use crate::event::{DecodeError, Event, EventSet};
use crate::time::Timestamp;

/// The event types of every workflow's stream. Payloads that belong to the
/// workflow (its state, a step's input) are kept as JSON text, so the types
/// are the same for every workflow and any codec can carry them.
pub mod events {
    use serde::{Deserialize, Serialize};

    use crate::time::Timestamp;

    /// The instance started with this state.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub struct WorkflowStarted {
        /// The start command's type name.
        pub command: String,
        /// The state, as JSON.
        pub state: String,
    }

    /// A decision or a step recorded a new state.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub struct StateUpdated {
        /// The state, as JSON.
        pub state: String,
    }

    /// The instance entered a step; its first attempt starts now.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub struct StepEntered {
        /// The step's sequence number in the instance, from 1.
        pub seq: u64,
        /// The step.
        pub step: String,
        /// Its input, as JSON.
        pub input: String,
        /// The decision's time: the step's deterministic time (`ctx.now()`).
        pub at: Timestamp,
    }

    /// A step's attempt succeeded; the transition it chose follows in the same append.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub struct StepSucceeded {
        /// The step's sequence number.
        pub seq: u64,
        /// The step.
        pub step: String,
        /// The attempt, from 1.
        pub attempt: u32,
    }

    /// A step's attempt failed (an error, a panic, a timeout).
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub struct StepAttemptFailed {
        /// The step's sequence number.
        pub seq: u64,
        /// The step.
        pub step: String,
        /// The attempt, from 1.
        pub attempt: u32,
        /// What went wrong.
        pub error: String,
        /// True when the attempt ran out of time.
        pub timed_out: bool,
        /// True when another attempt follows; false when the retries are spent.
        pub retrying: bool,
        /// When a retry waits for its backoff: the time it is due.
        pub retry_at: Option<Timestamp>,
    }

    /// A retry's backoff is over: the attempt starts now.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub struct StepRetryStarted {
        /// The step's sequence number.
        pub seq: u64,
        /// The attempt, from 2.
        pub attempt: u32,
    }

    /// The instance waits for a signal, or for its timeout.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub struct Paused {
        /// The pause's sequence number (steps and pauses share the count).
        pub seq: u64,
        /// What happens when no signal comes in time.
        pub timeout: Option<super::PauseTimeout>,
    }

    /// A signal was accepted; its transition follows in the same append.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub struct SignalReceived {
        /// The pause it ended.
        pub seq: u64,
        /// The signal's command type name.
        pub signal: String,
    }

    /// No signal came in time; the timeout step is entered next.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub struct PauseTimedOut {
        /// The pause's sequence number.
        pub seq: u64,
    }

    /// The instance ended successfully.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub struct WorkflowEnded {}

    /// The instance failed.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub struct WorkflowFailed {
        /// Why.
        pub reason: String,
    }

    /// An operator cancelled the instance.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub struct WorkflowCancelled {
        /// Why.
        pub reason: String,
    }

    /// The instance started with a workflow-wide timeout: it is due then.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub struct DeadlineSet {
        /// When the workflow's timeout passes.
        pub due: Timestamp,
    }

    /// The workflow's timeout passed: its `on_timeout` step is entered at the
    /// next step boundary (at once when paused), or the instance fails.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub struct WorkflowTimedOut {
        /// The deadline that passed.
        pub due: Timestamp,
    }

    /// An operator cancelled an instance that declares a compensation
    /// (`on_cancel`): it is entered at the next step boundary (at once when
    /// paused), and the instance ends as cancelled when it ends.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub struct CancelRequested {
        /// Why.
        pub reason: String,
    }
}

use events::*;

/// What a pause does when no signal comes: enter `step` with `input` at `due`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PauseTimeout {
    /// When the pause times out.
    pub due: Timestamp,
    /// The step entered then.
    pub step: String,
    /// Its input, as JSON.
    pub input: String,
}

macro_rules! workflow_events {
    ($($ty:ident = $name:literal),* $(,)?) => {
        $(
            impl Event for $ty {
                const NAME: &'static str = $name;
                const VERSION: u32 = 1;

                fn decode_stored(schema_version: u32, codec: Codec, payload: &[u8]) -> Result<Self, DecodeError> {
                    if schema_version != 1 {
                        return Err(crate::event::unknown_version::<Self>(schema_version));
                    }
                    crate::event::decode_current(codec, payload)
                }
            }

            impl From<$ty> for WorkflowEvent {
                fn from(e: $ty) -> Self {
                    WorkflowEvent::$ty(e)
                }
            }
        )*

        /// Every event of a workflow instance's stream.
        #[derive(Clone, Debug, PartialEq)]
        #[allow(clippy::enum_variant_names)] // the variants are the event types' names
        pub enum WorkflowEvent {
            $(
                #[doc = concat!("[`events::", stringify!($ty), "`]")]
                $ty($ty),
            )*
        }

        impl EventSet for WorkflowEvent {
            const NAMES: &'static [&'static str] = &[$($name),*];

            fn name(&self) -> &'static str {
                match self {
                    $(WorkflowEvent::$ty(_) => $name,)*
                }
            }

            fn schema_version(&self) -> u32 {
                1
            }

            fn encode(&self, codec: Codec) -> Result<Vec<u8>, CodecError> {
                match self {
                    $(WorkflowEvent::$ty(e) => codec.encode(e),)*
                }
            }

            fn decode(name: &str, schema_version: u32, codec: Codec, payload: &[u8]) -> Result<Self, DecodeError> {
                match name {
                    $($name => <$ty as Event>::decode_stored(schema_version, codec, payload).map(WorkflowEvent::$ty),)*
                    other => Err(DecodeError::UnknownType {
                        event_type: other.to_owned(),
                        known: Self::NAMES,
                    }),
                }
            }

            fn as_any(&self) -> &dyn std::any::Any {
                match self {
                    $(WorkflowEvent::$ty(e) => e,)*
                }
            }
        }
    };
}

workflow_events! {
    WorkflowStarted = "factum.workflow.started",
    StateUpdated = "factum.workflow.state_updated",
    StepEntered = "factum.workflow.step_entered",
    StepSucceeded = "factum.workflow.step_succeeded",
    StepAttemptFailed = "factum.workflow.step_attempt_failed",
    StepRetryStarted = "factum.workflow.step_retry_started",
    Paused = "factum.workflow.paused",
    SignalReceived = "factum.workflow.signal_received",
    PauseTimedOut = "factum.workflow.pause_timed_out",
    WorkflowEnded = "factum.workflow.ended",
    WorkflowFailed = "factum.workflow.failed",
    WorkflowCancelled = "factum.workflow.cancelled",
    DeadlineSet = "factum.workflow.deadline_set",
    WorkflowTimedOut = "factum.workflow.timed_out",
    CancelRequested = "factum.workflow.cancel_requested",
}

/// A step attempt ran out of time: sent by the step's timeout timer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepTimedOut {
    /// The step's sequence number.
    pub seq: u64,
    /// The attempt.
    pub attempt: u32,
}

/// A retry's backoff is over: sent by the retry timer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryDue {
    /// The step's sequence number.
    pub seq: u64,
    /// The attempt that may start.
    pub attempt: u32,
}

/// A pause's time is up: sent by the pause timer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PauseExpired {
    /// The pause's sequence number.
    pub seq: u64,
}

/// The workflow's timeout passed: sent by the deadline timer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadlinePassed {
    /// The deadline ([`DeadlineSet::due`]).
    pub due: Timestamp,
}

/// The erased form of a [`Then`]: state and inputs as JSON.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Transition {
    state: Option<String>,
    next: ErasedNext,
}

#[derive(Clone, Debug, PartialEq)]
enum ErasedNext {
    Step {
        step: String,
        input: String,
    },
    Pause {
        timeout: Option<(Duration, String, String)>,
    },
    End,
    Fail(String),
}

impl<W: Workflow> Then<W> {
    /// Encodes the state and inputs; the error names what did not encode.
    pub(crate) fn erase(self) -> Result<Transition, String> {
        let state = match &self.state {
            Some(s) => {
                Some(serde_json::to_string(s).map_err(|e| format!("the new state does not encode: {e}"))?)
            }
            None => None,
        };
        let input = |step: &str, input: Result<String, String>| {
            input.map_err(|e| format!("the input of step `{step}` does not encode: {e}"))
        };
        let next = match self.next {
            Next::Step { step, input: i } => ErasedNext::Step {
                step: step.to_owned(),
                input: input(step, i)?,
            },
            Next::Pause { timeout: None } => ErasedNext::Pause { timeout: None },
            Next::Pause {
                timeout: Some((after, step, i)),
            } => ErasedNext::Pause {
                timeout: Some((after, step.to_owned(), input(step, i)?)),
            },
            Next::End => ErasedNext::End,
            Next::Fail(reason) => ErasedNext::Fail(reason),
        };
        Ok(Transition { state, next })
    }
}

/// A command to an instance. Users send the start command and signals through
/// [`WorkflowRef`](super::WorkflowRef); the runner and the timers send the rest.
#[derive(Clone, Debug)]
pub enum InstanceCommand<W: Workflow> {
    /// Start the instance.
    Start(W::Start),
    /// A signal to a paused instance.
    Signal(W::Signal),
    /// A step's attempt finished.
    #[doc(hidden)]
    Complete(Completion),
    /// A step's attempt ran out of time.
    TimedOut(StepTimedOut),
    /// A retry may start.
    RetryDue(RetryDue),
    /// A pause's time is up.
    PauseExpired(PauseExpired),
    /// An operator cancels the instance.
    Cancel(String),
    /// The workflow's timeout passed.
    DeadlinePassed(DeadlinePassed),
}

/// What one attempt of a step came to.
#[doc(hidden)]
#[derive(Clone, Debug)]
pub struct Completion {
    pub(crate) seq: u64,
    pub(crate) attempt: u32,
    pub(crate) outcome: Result<Transition, String>,
}

impl<W: Workflow> From<StepTimedOut> for InstanceCommand<W> {
    fn from(c: StepTimedOut) -> Self {
        InstanceCommand::TimedOut(c)
    }
}

impl<W: Workflow> From<RetryDue> for InstanceCommand<W> {
    fn from(c: RetryDue) -> Self {
        InstanceCommand::RetryDue(c)
    }
}

impl<W: Workflow> From<PauseExpired> for InstanceCommand<W> {
    fn from(c: PauseExpired) -> Self {
        InstanceCommand::PauseExpired(c)
    }
}

impl<W: Workflow> From<DeadlinePassed> for InstanceCommand<W> {
    fn from(c: DeadlinePassed) -> Self {
        InstanceCommand::DeadlinePassed(c)
    }
}

/// Why an instance refused a command.
#[derive(Debug, thiserror::Error)]
pub enum WorkflowRejection<E> {
    /// The workflow's own decision refused it.
    #[error("refused: {0}")]
    Refused(E),
    /// The instance was started before.
    #[error("workflow {workflow}/{id} is already started (it is {status})")]
    AlreadyStarted {
        /// The workflow.
        workflow: &'static str,
        /// The instance.
        id: String,
        /// Where it stands.
        status: Status,
    },
    /// A signal came while the instance does not wait for one.
    #[error(
        "workflow {workflow}/{id} does not accept signal `{signal}` now: it is {status}, and signals are taken while paused"
    )]
    NotAccepting {
        /// The workflow.
        workflow: &'static str,
        /// The instance.
        id: String,
        /// The signal's type.
        signal: &'static str,
        /// Where it stands.
        status: Status,
    },
    /// A cancel came for an instance that has ended, failed or was cancelled.
    #[error("workflow {workflow}/{id} is over ({status}): nothing to cancel")]
    Finished {
        /// The workflow.
        workflow: &'static str,
        /// The instance.
        id: String,
        /// Where it stands.
        status: Status,
    },
    /// A cancel came while the instance already heads for its final step
    /// (its timeout passed, or it was cancelled before, or its compensation runs).
    #[error("workflow {workflow}/{id} is already closing ({why}); it is {status}")]
    Closing {
        /// The workflow.
        workflow: &'static str,
        /// The instance.
        id: String,
        /// Why it is closing.
        why: String,
        /// Where it stands.
        status: Status,
    },
    /// A decision's new state or input does not encode as JSON.
    #[error("workflow {workflow}/{id}: {error}")]
    Encode {
        /// The workflow.
        workflow: &'static str,
        /// The instance.
        id: String,
        /// What did not encode.
        error: String,
    },
}

/// A workflow instance: the entity behind [`WorkflowRef`](super::WorkflowRef).
/// Its state is the workflow's state (once started) and where it stands.
#[derive(Clone, Debug)]
pub struct Instance<W> {
    pub(crate) core: Core,
    state: Option<W>,
    _w: PhantomData<fn() -> W>,
}

impl<W> Default for Instance<W> {
    fn default() -> Self {
        Instance {
            core: Core::default(),
            state: None,
            _w: PhantomData,
        }
    }
}

impl<W: Workflow> Instance<W> {
    /// The workflow's state; `None` before the start.
    pub fn state(&self) -> Option<&W> {
        self.state.as_ref()
    }

    /// Where the instance stands.
    pub fn status(&self) -> &Status {
        &self.core.status
    }

    /// A stored state that no longer decodes as `W` (the type changed
    /// incompatibly): the instance keeps the last state that did.
    pub fn state_error(&self) -> Option<&str> {
        self.core.state_error.as_deref()
    }

    /// When the workflow's timeout passes, while it still stands (set at the
    /// start of a workflow with `timeout`; gone once it passed).
    pub fn deadline(&self) -> Option<Timestamp> {
        self.core.deadline
    }

    /// Why the instance heads for its final step instead of its own next
    /// move: `"cancelled: <reason>"` or `"timed out"`; `None` otherwise.
    pub fn closing(&self) -> Option<String> {
        self.core
            .pending
            .as_ref()
            .or(self.core.diverted.as_ref())
            .map(|d| d.to_string())
    }
}

/// Why an instance leaves its own path for a final step.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Diversion {
    /// The workflow's timeout passed.
    Timeout,
    /// An operator cancelled it; the compensation runs.
    Cancel(String),
}

impl std::fmt::Display for Diversion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Diversion::Timeout => f.write_str("timed out"),
            Diversion::Cancel(reason) => write!(f, "cancelled: {reason}"),
        }
    }
}

/// Where an instance stands, without its typed state: what the runner's
/// index keeps for every instance of every workflow.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Core {
    pub(crate) status: Status,
    /// The last step or pause sequence number.
    pub(crate) seq: u64,
    /// The step in flight's input and time.
    pub(crate) input: String,
    pub(crate) entered_at: Timestamp,
    pub(crate) pause: Option<PauseTimeout>,
    pub(crate) state_error: Option<String>,
    /// The workflow's deadline, while it stands.
    pub(crate) deadline: Option<Timestamp>,
    /// A timeout or cancel waiting for the next step boundary.
    pub(crate) pending: Option<Diversion>,
    /// The timeout or cancel whose final step was entered.
    pub(crate) diverted: Option<Diversion>,
}

impl Default for Core {
    fn default() -> Self {
        Core {
            status: Status::NotStarted,
            seq: 0,
            input: String::new(),
            entered_at: Timestamp::from_secs(0),
            pause: None,
            state_error: None,
            deadline: None,
            pending: None,
            diverted: None,
        }
    }
}

impl Core {
    /// Folds one event into the status.
    pub(crate) fn apply(&mut self, event: &WorkflowEvent) {
        match event {
            WorkflowEvent::WorkflowStarted(_) | WorkflowEvent::StateUpdated(_) => {}
            WorkflowEvent::StepEntered(e) => {
                // The handler enters no other step while a diversion waits.
                if let Some(diversion) = self.pending.take() {
                    self.diverted = Some(diversion);
                }
                self.seq = e.seq;
                self.input = e.input.clone();
                self.entered_at = e.at;
                self.pause = None;
                self.status = Status::Running {
                    step: e.step.clone(),
                    seq: e.seq,
                    attempt: 1,
                    retry_at: None,
                };
            }
            WorkflowEvent::StepSucceeded(_)
            | WorkflowEvent::SignalReceived(_)
            | WorkflowEvent::PauseTimedOut(_) => {}
            WorkflowEvent::StepAttemptFailed(e) => {
                if e.retrying {
                    self.status = Status::Running {
                        step: e.step.clone(),
                        seq: e.seq,
                        attempt: e.attempt + 1,
                        retry_at: e.retry_at,
                    };
                }
            }
            WorkflowEvent::StepRetryStarted(e) => {
                if let Status::Running {
                    seq,
                    attempt,
                    retry_at,
                    ..
                } = &mut self.status
                    && *seq == e.seq
                    && *attempt == e.attempt
                {
                    *retry_at = None;
                }
            }
            WorkflowEvent::Paused(e) => {
                self.seq = e.seq;
                self.pause = e.timeout.clone();
                self.status = Status::Paused {
                    seq: e.seq,
                    timeout_at: e.timeout.as_ref().map(|t| t.due),
                };
            }
            WorkflowEvent::WorkflowEnded(_) => self.status = Status::Ended,
            WorkflowEvent::WorkflowFailed(e) => {
                self.status = Status::Failed {
                    reason: e.reason.clone(),
                }
            }
            WorkflowEvent::WorkflowCancelled(e) => {
                self.status = Status::Cancelled {
                    reason: e.reason.clone(),
                }
            }
            WorkflowEvent::DeadlineSet(e) => self.deadline = Some(e.due),
            WorkflowEvent::WorkflowTimedOut(_) => {
                self.deadline = None;
                self.pending = Some(Diversion::Timeout);
            }
            WorkflowEvent::CancelRequested(e) => self.pending = Some(Diversion::Cancel(e.reason.clone())),
        }
    }

    /// The step in flight and its attempt, when one is running (not waiting for a retry).
    pub(crate) fn runnable(&self) -> Option<(&str, u64, u32)> {
        match &self.status {
            Status::Running {
                step,
                seq,
                attempt,
                retry_at: None,
            } => Some((step, *seq, *attempt)),
            _ => None,
        }
    }
}

/// The delay before retry number `retry` (1 for the first): the backoff,
/// doubling, at most 64 times the backoff.
fn retry_delay(options: &StepOptions, retry: u32) -> Duration {
    options
        .backoff
        .saturating_mul(1u32 << retry.saturating_sub(1).min(6))
}

impl<W: Workflow> Instance<W> {
    fn rejection<E>(&self, ctx: &Context, error: String) -> WorkflowRejection<E> {
        WorkflowRejection::Encode {
            workflow: W::NAME,
            id: ctx.entity_id().to_owned(),
            error,
        }
    }

    /// The move a waiting diversion takes instead of a step or a pause:
    /// its final step, or failing when a timeout has none.
    fn diversion_move(diversion: &Diversion) -> ErasedNext {
        let options = W::workflow_options();
        let step = match diversion {
            Diversion::Timeout => options.on_timeout,
            Diversion::Cancel(_) => options.on_cancel,
        };
        match (step, diversion) {
            (Some(step), _) => ErasedNext::Step {
                step: step.to_owned(),
                input: "null".to_owned(),
            },
            (None, Diversion::Timeout) => ErasedNext::Fail(format!(
                "the workflow's timeout of {:?} passed",
                options.timeout.unwrap_or_default()
            )),
            // Not reached: a cancel waits for a boundary only with `on_cancel`.
            (None, Diversion::Cancel(reason)) => ErasedNext::Fail(format!("cancelled: {reason}")),
        }
    }

    /// The events of a transition from the current sequence number.
    fn transition(&self, t: Transition, ctx: &Context, out: &mut Vec<WorkflowEvent>) {
        if let Some(state) = t.state {
            out.push(StateUpdated { state }.into());
        }
        let next = match (&self.core.pending, t.next) {
            (Some(d), ErasedNext::Step { .. } | ErasedNext::Pause { .. }) => Self::diversion_move(d),
            (_, next) => next,
        };
        self.next_move(next, ctx, out);
    }

    /// The events of one move from the current sequence number.
    fn next_move(&self, next: ErasedNext, ctx: &Context, out: &mut Vec<WorkflowEvent>) {
        let seq = self.core.seq + 1;
        out.push(match next {
            ErasedNext::Step { step, input } => StepEntered {
                seq,
                step,
                input,
                at: ctx.now(),
            }
            .into(),
            ErasedNext::Pause { timeout } => Paused {
                seq,
                timeout: timeout.map(|(after, step, input)| PauseTimeout {
                    due: ctx.now() + after,
                    step,
                    input,
                }),
            }
            .into(),
            ErasedNext::End => match &self.core.diverted {
                // The compensation of a cancel ended: the instance is cancelled.
                Some(Diversion::Cancel(reason)) => WorkflowCancelled {
                    reason: reason.clone(),
                }
                .into(),
                _ => WorkflowEnded {}.into(),
            },
            ErasedNext::Fail(reason) => WorkflowFailed { reason }.into(),
        });
    }

    /// An attempt failed: retry (now or after the backoff), fail over, or fail.
    fn attempt_failed(
        &self,
        (step, seq, attempt): (&str, u64, u32),
        error: String,
        timed_out: bool,
        ctx: &Context,
        out: &mut Vec<WorkflowEvent>,
    ) {
        let options = W::step_options(step);
        let retrying = attempt <= options.max_retries;
        let delay = retry_delay(&options, attempt);
        let retry_at = (retrying && !delay.is_zero()).then(|| ctx.now() + delay);
        out.push(
            StepAttemptFailed {
                seq,
                step: step.to_owned(),
                attempt,
                error: error.clone(),
                timed_out,
                retrying,
                retry_at,
            }
            .into(),
        );
        if retrying {
            return;
        }
        match (options.failover, &self.core.pending) {
            // A waiting cancel or timeout takes the failover's place.
            (Some(_), Some(diversion)) => self.next_move(Self::diversion_move(diversion), ctx, out),
            (Some(failover), None) => out.push(
                StepEntered {
                    seq: seq + 1,
                    step: failover.to_owned(),
                    input: "null".to_owned(),
                    at: ctx.now(),
                }
                .into(),
            ),
            (None, _) => out.push(
                WorkflowFailed {
                    reason: format!(
                        "step `{step}` failed {} time{}: {error}",
                        attempt,
                        if attempt == 1 { "" } else { "s" }
                    ),
                }
                .into(),
            ),
        }
    }
}

impl<W: Workflow> Entity for Instance<W> {
    const NAME: &'static str = W::NAME;
    const SNAPSHOT_EVERY: u64 = 0;
    type Event = WorkflowEvent;
    type Command = InstanceCommand<W>;
    type Error = WorkflowRejection<W::Error>;

    fn handle(&self, command: Self::Command, ctx: &Context) -> Result<Vec<WorkflowEvent>, Self::Error> {
        let mut out = Vec::new();
        let status = &self.core.status;
        match command {
            InstanceCommand::Start(start) => {
                if *status != Status::NotStarted {
                    return Err(WorkflowRejection::AlreadyStarted {
                        workflow: W::NAME,
                        id: ctx.entity_id().to_owned(),
                        status: status.clone(),
                    });
                }
                let initial = W::default();
                let then = initial.start(start, ctx).map_err(WorkflowRejection::Refused)?;
                let t = then.erase().map_err(|e| self.rejection(ctx, e))?;
                let state = match &t.state {
                    Some(s) => s.clone(),
                    None => {
                        serde_json::to_string(&initial).map_err(|e| self.rejection(ctx, e.to_string()))?
                    }
                };
                out.push(
                    WorkflowStarted {
                        command: crate::timer::command_type_name::<W::Start>(),
                        state,
                    }
                    .into(),
                );
                if let Some(timeout) = W::workflow_options().timeout {
                    out.push(
                        DeadlineSet {
                            due: ctx.now() + timeout,
                        }
                        .into(),
                    );
                }
                self.transition(Transition { state: None, ..t }, ctx, &mut out);
            }
            InstanceCommand::Signal(signal) => {
                let Status::Paused { seq, .. } = status else {
                    return Err(WorkflowRejection::NotAccepting {
                        workflow: W::NAME,
                        id: ctx.entity_id().to_owned(),
                        signal: W::signal_name(&signal),
                        status: status.clone(),
                    });
                };
                let current = self.state.clone().unwrap_or_default();
                let name = W::signal_name(&signal);
                let then = current.signal(signal, ctx).map_err(WorkflowRejection::Refused)?;
                let t = then.erase().map_err(|e| self.rejection(ctx, e))?;
                out.push(
                    SignalReceived {
                        seq: *seq,
                        signal: name.to_owned(),
                    }
                    .into(),
                );
                self.transition(t, ctx, &mut out);
            }
            InstanceCommand::Complete(done) => {
                let Some((step, seq, attempt)) = self.core.runnable() else {
                    return Ok(out);
                };
                if (seq, attempt) != (done.seq, done.attempt) {
                    return Ok(out);
                }
                match done.outcome {
                    Ok(t) => {
                        out.push(
                            StepSucceeded {
                                seq,
                                step: step.to_owned(),
                                attempt,
                            }
                            .into(),
                        );
                        self.transition(t, ctx, &mut out);
                    }
                    Err(error) => self.attempt_failed((step, seq, attempt), error, false, ctx, &mut out),
                }
            }
            InstanceCommand::TimedOut(t) => {
                if let Some((step, seq, attempt)) = self.core.runnable()
                    && (seq, attempt) == (t.seq, t.attempt)
                {
                    let timeout = W::step_options(step).timeout.unwrap_or_default();
                    let error = format!("the attempt ran longer than its timeout of {timeout:?}");
                    self.attempt_failed((step, seq, attempt), error, true, ctx, &mut out);
                }
            }
            InstanceCommand::RetryDue(r) => {
                if let Status::Running {
                    seq,
                    attempt,
                    retry_at: Some(_),
                    ..
                } = status
                    && (*seq, *attempt) == (r.seq, r.attempt)
                {
                    out.push(
                        StepRetryStarted {
                            seq: r.seq,
                            attempt: r.attempt,
                        }
                        .into(),
                    );
                }
            }
            InstanceCommand::PauseExpired(p) => {
                if let (Status::Paused { seq, .. }, Some(timeout)) = (status, &self.core.pause)
                    && *seq == p.seq
                {
                    out.push(PauseTimedOut { seq: p.seq }.into());
                    out.push(
                        StepEntered {
                            seq: p.seq + 1,
                            step: timeout.step.clone(),
                            input: timeout.input.clone(),
                            at: ctx.now(),
                        }
                        .into(),
                    );
                }
            }
            InstanceCommand::Cancel(reason) => {
                if status.is_final() || *status == Status::NotStarted {
                    return Err(WorkflowRejection::Finished {
                        workflow: W::NAME,
                        id: ctx.entity_id().to_owned(),
                        status: status.clone(),
                    });
                }
                let Some(compensation) = W::workflow_options().on_cancel else {
                    out.push(WorkflowCancelled { reason }.into());
                    return Ok(out);
                };
                let closing = |why: String| WorkflowRejection::Closing {
                    workflow: W::NAME,
                    id: ctx.entity_id().to_owned(),
                    why,
                    status: status.clone(),
                };
                if let Some(d) = self.core.pending.as_ref().or(self.core.diverted.as_ref()) {
                    return Err(closing(d.to_string()));
                }
                if matches!(status, Status::Running { step, .. } if step == compensation) {
                    return Err(closing(format!("its compensation `{compensation}` runs")));
                }
                out.push(
                    CancelRequested {
                        reason: reason.clone(),
                    }
                    .into(),
                );
                if let Status::Paused { .. } = status {
                    // Nothing in flight: the compensation starts now.
                    self.next_move(Self::diversion_move(&Diversion::Cancel(reason)), ctx, &mut out);
                }
            }
            InstanceCommand::DeadlinePassed(d) => {
                if self.core.deadline != Some(d.due)
                    || status.is_final()
                    || self.core.pending.is_some()
                    || self.core.diverted.is_some()
                {
                    return Ok(out);
                }
                out.push(WorkflowTimedOut { due: d.due }.into());
                if let Status::Paused { .. } = status {
                    self.next_move(Self::diversion_move(&Diversion::Timeout), ctx, &mut out);
                }
            }
        }
        Ok(out)
    }

    fn apply(&mut self, event: &WorkflowEvent) {
        let state = match event {
            WorkflowEvent::WorkflowStarted(e) => Some(&e.state),
            WorkflowEvent::StateUpdated(e) => Some(&e.state),
            _ => None,
        };
        if let Some(state) = state {
            match serde_json::from_str::<W>(state) {
                Ok(s) => {
                    self.state = Some(s);
                    self.core.state_error = None;
                }
                Err(e) => {
                    self.core.state_error = Some(format!(
                        "a stored state of workflow {} does not decode as `{}`: {e}",
                        W::NAME,
                        std::any::type_name::<W>()
                    ))
                }
            }
        }
        self.core.apply(event);
    }
}
