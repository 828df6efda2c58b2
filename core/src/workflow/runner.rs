//! The workflow runner, a [`Process`] of the process layer: every node
//! follows the log into an index of instances (workflow, id → status); the
//! node holding the lease also drives them — it runs each runnable step's
//! attempt as a task (at most [`STEPS_IN_FLIGHT`] at once), and arms the
//! timers of retries and pauses. [`Workflows`] is the subsystem an app holds.
//!
//! The runner is driven by the events, never by its own memory: after a
//! restart (or when it takes the lease over) it reads the log, and every
//! instance that is in a step gets the step run again; one that waits for a
//! retry or a pause's timeout gets its timer armed again (scheduling under the
//! same name replaces it; the instance ignores a firing that is late).

use std::collections::HashMap;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{Semaphore, watch};
use tokio::task::AbortHandle;

use super::context::StepContext;
use super::instance::{
    Completion, Core, DeadlinePassed, Instance, InstanceCommand, PauseExpired, RetryDue, StepTimedOut,
    WorkflowEvent,
};
use super::{Status, StatusKind, StepRef, Workflow, WorkflowRejection};
use crate::command::{CommandError, Commands, Committed, LoadError, Recorded, SendOptions};
use crate::env::Env;
use crate::event::{DecodeError, EventSet};
use crate::inject::{self, Faults, Injection, Site};
use crate::process::{Failure, Lease, Led, Process, Progress, Runners, Tail, WaitError};
use crate::store::{RecordedEvent, StoreError};
use crate::time::Timestamp;
use crate::timer::{TimerError, Timers};

/// The most step attempts one node runs at the same time; the others wait
/// for a slot (they are not lost: their instances stay in their step).
pub const STEPS_IN_FLIGHT: usize = 1024;
/// How many events the runner reads per batch.
const BATCH: usize = 4096;
/// How long the runner waits on the log's head before it re-checks its lease.
const IDLE_WAIT: Duration = Duration::from_millis(500);
/// The first delay before a step's result is sent again after a store
/// failure; it doubles up to [`MAX_RESEND_DELAY`].
const FIRST_RESEND_DELAY: Duration = Duration::from_millis(50);
const MAX_RESEND_DELAY: Duration = Duration::from_secs(5);

/// What the runner failed on (it retries after each, from the process layer).
#[derive(Debug, thiserror::Error)]
pub enum WorkflowRunnerError {
    /// Reading the log failed.
    #[error("workflows: reading the log: {0}")]
    Store(#[from] StoreError),
    /// An event of a workflow stream does not decode.
    #[error("workflow stream {stream_type}/{stream_id} version {version} (position {position}): {source}")]
    Decode {
        /// The workflow.
        stream_type: String,
        /// The instance.
        stream_id: String,
        /// The event's version.
        version: u64,
        /// Its position.
        position: u64,
        /// The decoder's error.
        #[source]
        source: DecodeError,
    },
    /// Arming a timer, or taking the lease from the timer store, failed.
    #[error("workflows: {0}")]
    Timer(#[from] TimerError),
}

/// Why a wait on an instance ended without an answer.
#[derive(Debug, thiserror::Error)]
pub enum WorkflowWaitError {
    /// The runner stopped (its app is gone).
    #[error("the workflow runner stopped")]
    Stopped,
    /// The runner failed repeatedly without getting further through the log.
    #[error("the workflow runner is failing at position {} ({} times): {}", .0.checkpoint, .0.attempts, .0.error)]
    Failing(Failure),
    /// Reading the log's head failed.
    #[error("workflows: {0}")]
    Store(#[from] StoreError),
}

impl From<WaitError> for WorkflowWaitError {
    fn from(e: WaitError) -> Self {
        match e {
            WaitError::Stopped => WorkflowWaitError::Stopped,
            WaitError::Failing(f) => WorkflowWaitError::Failing(f),
        }
    }
}

/// An instance as [`Workflows::list`] shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceInfo {
    /// The workflow's name.
    pub workflow: &'static str,
    /// The instance id.
    pub id: String,
    /// Where it stands.
    pub status: Status,
}

/// One attempt of one step, as [`WorkflowRef::steps`] lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepRecord {
    /// The step's sequence number in the instance.
    pub seq: u64,
    /// The step.
    pub step: String,
    /// The attempt, from 1.
    pub attempt: u32,
    /// `None` when it succeeded; else what went wrong.
    pub error: Option<String>,
    /// True when the attempt ran out of time.
    pub timed_out: bool,
    /// When its outcome was recorded.
    pub at: Timestamp,
}

impl StepRecord {
    /// `withdraw`, `deposit failed`, `deposit timed out`: for asserting the
    /// sequence of steps in a test.
    pub fn short(&self) -> String {
        match (&self.error, self.timed_out) {
            (None, _) => self.step.clone(),
            (Some(_), true) => format!("{} timed out", self.step),
            (Some(_), false) => format!("{} failed", self.step),
        }
    }
}

/// A timer the runner arms for an instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Arm {
    Retry { seq: u64, attempt: u32, due: Timestamp },
    Pause { seq: u64, due: Timestamp },
    Deadline { due: Timestamp },
}

/// The name of an instance's timer of one kind.
fn timer_name(workflow: &str, id: &str, kind: &str) -> String {
    format!("workflow:{workflow}:{id}:{kind}")
}

/// Drives the instances of one workflow type, erased.
pub(crate) trait Driver: Send + Sync + 'static {
    /// Runs one attempt of the step in flight as a task.
    /// `recording` is set once the attempt's outcome is being recorded.
    fn spawn_attempt(
        &self,
        shared: &Arc<Shared>,
        id: &str,
        seq: u64,
        attempt: u32,
        recording: Arc<AtomicBool>,
    ) -> AbortHandle;

    /// Schedules a retry's or a pause's timer.
    fn arm<'a>(
        &'a self,
        shared: &'a Shared,
        id: &'a str,
        arm: Arm,
    ) -> Pin<Box<dyn Future<Output = Result<(), TimerError>> + Send + 'a>>;
}

struct Typed<W>(PhantomData<fn() -> W>);

/// The driver of `W`, for its registration.
pub(crate) fn driver<W: Workflow>() -> Arc<dyn Driver> {
    Arc::new(Typed::<W>(PhantomData))
}

impl<W: Workflow> Driver for Typed<W> {
    fn spawn_attempt(
        &self,
        shared: &Arc<Shared>,
        id: &str,
        seq: u64,
        attempt: u32,
        recording: Arc<AtomicBool>,
    ) -> AbortHandle {
        let shared = shared.clone();
        let id = id.to_owned();
        tokio::spawn(async move { run_attempt::<W>(shared, id, seq, attempt, recording).await })
            .abort_handle()
    }

    fn arm<'a>(
        &'a self,
        shared: &'a Shared,
        id: &'a str,
        arm: Arm,
    ) -> Pin<Box<dyn Future<Output = Result<(), TimerError>> + Send + 'a>> {
        Box::pin(async move {
            match arm {
                Arm::Retry { seq, attempt, due } => {
                    let name = timer_name(W::NAME, id, "retry");
                    shared
                        .timers
                        .schedule::<Instance<W>, _>(&name, id, due, RetryDue { seq, attempt })
                        .await
                }
                Arm::Pause { seq, due } => {
                    let name = timer_name(W::NAME, id, "pause");
                    shared
                        .timers
                        .schedule::<Instance<W>, _>(&name, id, due, PauseExpired { seq })
                        .await
                }
                Arm::Deadline { due } => {
                    let name = timer_name(W::NAME, id, "deadline");
                    shared
                        .timers
                        .schedule::<Instance<W>, _>(&name, id, due, DeadlinePassed { due })
                        .await
                }
            }
        })
    }
}

/// One attempt of the step in flight of instance `id`: checks that it is
/// still the one to run, arms its timeout, runs it (or its injected
/// failure), and records the outcome, trying again on store failures.
async fn run_attempt<W: Workflow>(
    shared: Arc<Shared>,
    id: String,
    seq: u64,
    attempt: u32,
    recording: Arc<AtomicBool>,
) {
    let Ok(_permit) = shared.slots.clone().acquire_owned().await else {
        return;
    };
    let entity = shared.commands.entity::<Instance<W>>(&id);
    let mut delay = FIRST_RESEND_DELAY;
    let instance = loop {
        match entity.state().await {
            Ok(instance) => break instance,
            Err(error) => {
                tracing::warn!(workflow = W::NAME, %id, %error, "loading a workflow instance failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(MAX_RESEND_DELAY);
            }
        }
    };
    let Some((step, s, a)) = instance.core.runnable() else {
        return;
    };
    if (s, a) != (seq, attempt) {
        return;
    }
    let step = step.to_owned();
    let options = W::step_options(&step);
    let timeout_name = timer_name(W::NAME, &id, "timeout");
    if let Some(timeout) = options.timeout {
        let due = shared.env.clock().now() + timeout;
        if let Err(error) = shared
            .timers
            .schedule::<Instance<W>, _>(&timeout_name, &id, due, StepTimedOut { seq, attempt })
            .await
        {
            // The attempt runs without its limit rather than not at all.
            tracing::error!(workflow = W::NAME, %id, %step, %error, "arming a step's timeout failed");
        }
    }
    let site = inject::Attempt {
        workflow: W::NAME,
        id: &id,
        step: &step,
        seq,
        attempt,
    };
    let start = inject::at(shared.faults.as_ref(), Site::StepStart(site));
    if start == Injection::Crash {
        return inject::halt().await;
    }
    let run_once = || async {
        let state = instance.state().cloned().unwrap_or_default();
        let ctx = StepContext {
            workflow: W::NAME,
            id: Arc::from(id.as_str()),
            step: step.clone(),
            seq,
            attempt,
            now: instance.core.entered_at,
            commands: shared.commands.clone(),
            timers: shared.timers.clone(),
            calls: AtomicU64::new(0),
            correlation_id: crate::ids::workflow_command_id(W::NAME, &id, "", 0, 0),
            faults: shared.faults.clone(),
        };
        let run = state.run_step(&step, &ctx, &instance.core.input);
        match crate::unwind::Guarded::new(run).await {
            Ok(Ok(then)) => then.erase(),
            Ok(Err(error)) => Err(error),
            Err(panic) => Err(format!("the step panicked: {panic}")),
        }
    };
    let mut outcome = if shared.injected(W::NAME, &id, &step, attempt) {
        Err(format!("injected failure of step `{step}`, attempt {attempt}"))
    } else if start == Injection::Fail {
        Err(format!(
            "simulated failure of step `{step}` before it ran, attempt {attempt}"
        ))
    } else {
        run_once().await
    };
    // The step's effects happened; its result is not recorded yet.
    let _ = crate::fault::point("workflow.step.after");
    match inject::at(shared.faults.as_ref(), Site::StepAfter(site)) {
        Injection::Crash => return inject::halt().await,
        // A re-delivery: the step runs again, and the second run's result is recorded.
        Injection::Duplicate if outcome.is_ok() => outcome = run_once().await,
        Injection::Fail if outcome.is_ok() => {
            outcome = Err(format!(
                "simulated failure of step `{step}` after its effects, attempt {attempt}"
            ))
        }
        _ => {}
    }
    // From here on the task finishes on its own: stopping it mid-send would
    // only leave the result to be recorded by a re-run.
    recording.store(true, Ordering::SeqCst);
    let completion = Completion {
        seq,
        attempt,
        outcome,
    };
    let mut delay = FIRST_RESEND_DELAY;
    loop {
        match entity
            .send_with(
                InstanceCommand::Complete(completion.clone()),
                SendOptions::default(),
            )
            .await
        {
            Ok(_) => break,
            Err(CommandError::Rejected(rejection)) => {
                tracing::error!(workflow = W::NAME, %id, %rejection, "a step's result was refused");
                break;
            }
            Err(error) => {
                tracing::warn!(workflow = W::NAME, %id, %step, %error, "recording a step's result failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(MAX_RESEND_DELAY);
            }
        }
    }
    shared.steps_run.fetch_add(1, Ordering::Relaxed);
    if options.timeout.is_some()
        && let Err(error) = shared.timers.cancel(&timeout_name).await
    {
        // A timeout left pending fires later and is ignored by the instance.
        tracing::warn!(workflow = W::NAME, %id, %error, "cancelling a step's timeout failed");
    }
}

/// A failure a test injects: step `step` of `workflow` fails on `attempt`
/// (of every instance, or of instance `id`).
#[derive(Clone, Debug)]
struct Injected {
    workflow: &'static str,
    id: Option<String>,
    step: &'static str,
    attempt: u32,
}

/// A running attempt, or the last one started, of one instance.
struct Task {
    seq: u64,
    attempt: u32,
    handle: AbortHandle,
    /// Set once the attempt records its outcome: it is not stopped then.
    recording: Arc<AtomicBool>,
}

impl Task {
    /// Stops the attempt unless it is recording its outcome (which the
    /// instance ignores if it is late).
    fn stop(&self) {
        if !self.recording.load(Ordering::SeqCst) {
            self.handle.abort();
        }
    }
}

type Key = (&'static str, String);

/// What the runner, the handles and the index share.
pub(crate) struct Shared {
    env: Env,
    commands: Arc<Commands>,
    timers: Arc<Timers>,
    drivers: RwLock<HashMap<&'static str, Arc<dyn Driver>>>,
    /// Workflow → instance id → where it stands, as of `progress.checkpoint()`.
    index: RwLock<HashMap<&'static str, HashMap<String, Core>>>,
    progress: Progress,
    injected: Mutex<Vec<Injected>>,
    tasks: Mutex<HashMap<Key, Task>>,
    armed: Mutex<HashMap<Key, Arm>>,
    /// The deadline timers armed, beside the retry or pause one.
    deadlines: Mutex<HashMap<Key, Timestamp>>,
    slots: Arc<Semaphore>,
    steps_run: AtomicU64,
    /// The simulation's fault plan, when the test kit runs one.
    faults: Option<Arc<dyn Faults>>,
}

impl Shared {
    fn injected(&self, workflow: &str, id: &str, step: &str, attempt: u32) -> bool {
        let injected = self.injected.lock().unwrap_or_else(|e| e.into_inner());
        injected.iter().any(|i| {
            i.workflow == workflow
                && i.step == step
                && i.attempt == attempt
                && i.id.as_deref().is_none_or(|only| only == id)
        })
    }

    fn driver(&self, workflow: &str) -> Option<Arc<dyn Driver>> {
        self.drivers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(workflow)
            .cloned()
    }

    fn workflow_name(&self, stream_type: &str) -> Option<&'static str> {
        self.drivers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get_key_value(stream_type)
            .map(|(k, _)| *k)
    }

    fn core(&self, workflow: &str, id: &str) -> Option<Core> {
        let index = self.index.read().unwrap_or_else(|e| e.into_inner());
        index.get(workflow)?.get(id).cloned()
    }

    fn abort_all(&self) {
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        for (_, task) in tasks.drain() {
            task.handle.abort();
        }
        self.armed.lock().unwrap_or_else(|e| e.into_inner()).clear();
        self.deadlines.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// Folds a batch into the index; returns the instances it touched, in order.
    fn index_batch(&self, batch: &[RecordedEvent]) -> Result<Vec<Key>, WorkflowRunnerError> {
        let mut touched: Vec<Key> = Vec::new();
        let mut index = self.index.write().unwrap_or_else(|e| e.into_inner());
        for record in batch {
            let Some(workflow) = self.workflow_name(&record.stream_type) else {
                continue;
            };
            let event = WorkflowEvent::decode(
                &record.event_type,
                record.schema_version,
                record.codec,
                &record.payload,
            )
            .map_err(|source| WorkflowRunnerError::Decode {
                stream_type: record.stream_type.clone(),
                stream_id: record.stream_id.clone(),
                version: record.version,
                position: record.position,
                source,
            })?;
            index
                .entry(workflow)
                .or_default()
                .entry(record.stream_id.clone())
                .or_default()
                .apply(&event);
            let key = (workflow, record.stream_id.clone());
            if touched.last() != Some(&key) {
                touched.push(key);
            }
        }
        touched.dedup();
        Ok(touched)
    }

    /// Brings instance `key` where its status says: its attempt running, its
    /// timer armed, or nothing running once it is over.
    async fn reconcile(self: &Arc<Self>, key: &Key) -> Result<(), TimerError> {
        let Some(core) = self.core(key.0, &key.1) else {
            return Ok(());
        };
        let Some(driver) = self.driver(key.0) else {
            return Ok(());
        };
        let runnable = core.runnable().map(|(_, seq, attempt)| (seq, attempt));
        {
            let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
            match (tasks.get(key), runnable) {
                (Some(task), Some(now)) if (task.seq, task.attempt) == now => {}
                (existing, Some((seq, attempt))) => {
                    if let Some(old) = existing {
                        old.stop();
                    }
                    let recording = Arc::new(AtomicBool::new(false));
                    let handle = driver.spawn_attempt(self, &key.1, seq, attempt, recording.clone());
                    tasks.insert(
                        key.clone(),
                        Task {
                            seq,
                            attempt,
                            handle,
                            recording,
                        },
                    );
                }
                (Some(_), None) => {
                    // The attempt was settled (or timed out): stop it if it still runs.
                    if let Some(old) = tasks.remove(key) {
                        old.stop();
                    }
                }
                (None, None) => {}
            }
        }
        let arm = match &core.status {
            Status::Running {
                seq,
                attempt,
                retry_at: Some(due),
                ..
            } => Some(Arm::Retry {
                seq: *seq,
                attempt: *attempt,
                due: *due,
            }),
            Status::Paused {
                seq,
                timeout_at: Some(due),
            } => Some(Arm::Pause { seq: *seq, due: *due }),
            _ => None,
        };
        match arm {
            Some(arm) => {
                let already = self.armed.lock().unwrap_or_else(|e| e.into_inner()).get(key) == Some(&arm);
                if !already {
                    driver.arm(self, &key.1, arm).await?;
                    self.armed
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(key.clone(), arm);
                }
            }
            None => {
                self.armed.lock().unwrap_or_else(|e| e.into_inner()).remove(key);
            }
        }
        // The workflow's deadline, while it can still take effect.
        let deadline = core
            .deadline
            .filter(|_| !core.status.is_final() && core.pending.is_none() && core.diverted.is_none());
        match deadline {
            Some(due) => {
                let already = self.deadlines.lock().unwrap_or_else(|e| e.into_inner()).get(key) == Some(&due);
                if !already {
                    driver.arm(self, &key.1, Arm::Deadline { due }).await?;
                    self.deadlines
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(key.clone(), due);
                }
            }
            None => {
                self.deadlines
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(key);
            }
        }
        Ok(())
    }
}

/// The workflows of one app: handles on instances, the index, the test kit's
/// injected failures.
///
/// The runner starts with the app when it is built inside a tokio runtime
/// and the program links a `#[workflow]` in (so instances left in flight by
/// an earlier process resume at once), otherwise on the first call here.
pub struct Workflows {
    shared: Arc<Shared>,
    started: AtomicBool,
    /// The runners' tasks and their stop signal: dropped with the app, or
    /// stopped by [`App::shutdown`](crate::App::shutdown).
    runners: Runners,
}

impl std::fmt::Debug for Workflows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workflows")
            .field("progress", &self.shared.progress)
            .finish_non_exhaustive()
    }
}

impl Workflows {
    pub(crate) fn new(
        env: Env,
        commands: Arc<Commands>,
        timers: Arc<Timers>,
        faults: Option<Arc<dyn Faults>>,
    ) -> Self {
        let drivers: HashMap<&'static str, Arc<dyn Driver>> =
            super::registered().map(|r| (r.name, (r.driver)())).collect();
        // A program with no workflow linked in, or an app without a timer
        // store (which workflows need), starts the runner on first use instead.
        let eager = !drivers.is_empty() && timers.store().is_ok();
        let workflows = Workflows {
            shared: Arc::new(Shared {
                env,
                commands,
                timers,
                drivers: RwLock::new(drivers),
                index: RwLock::new(HashMap::new()),
                progress: Progress::new(0),
                injected: Mutex::new(Vec::new()),
                tasks: Mutex::new(HashMap::new()),
                armed: Mutex::new(HashMap::new()),
                deadlines: Mutex::new(HashMap::new()),
                slots: Arc::new(Semaphore::new(STEPS_IN_FLIGHT)),
                steps_run: AtomicU64::new(0),
                faults,
            }),
            started: AtomicBool::new(false),
            runners: Runners::default(),
        };
        if eager {
            workflows.start();
        }
        workflows
    }

    /// Stops the runner (it exits between batches) and waits until it has;
    /// one started later in this app exits at once.
    pub(crate) async fn stop(&self) {
        self.runners.stop().await;
    }

    /// Spawns the runner once, when called inside a tokio runtime.
    fn start(&self) {
        if tokio::runtime::Handle::try_current().is_err() || self.started.swap(true, Ordering::SeqCst) {
            return;
        }
        let tail = Tail::new(self.shared.env.store().clone(), BATCH);
        self.runners.spawn(Runner {
            shared: self.shared.clone(),
            alive: self.runners.alive(),
            tail,
            checkpoint: 0,
        });
    }

    /// The instance `id` of workflow `W` (cheap; nothing is read until used).
    pub fn get<W: Workflow>(&self, id: &str) -> WorkflowRef<W> {
        self.start();
        self.shared
            .drivers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(W::NAME)
            .or_insert_with(driver::<W>);
        WorkflowRef {
            entity: self.shared.commands.entity::<Instance<W>>(id),
            shared: self.shared.clone(),
        }
    }

    /// Every instance (of every workflow linked in) whose status is of
    /// `kind` (all when `None`), by workflow and id, as of the log's head when
    /// called: waits until this node's index has caught up with it.
    pub async fn list(&self, kind: Option<StatusKind>) -> Result<Vec<InstanceInfo>, WorkflowWaitError> {
        self.start();
        let head = self.shared.env.store().head().await?;
        self.shared.progress.wait_for(head).await?;
        let index = self.shared.index.read().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<InstanceInfo> = index
            .iter()
            .flat_map(|(workflow, instances)| {
                instances.iter().map(|(id, core)| InstanceInfo {
                    workflow,
                    id: id.clone(),
                    status: core.status.clone(),
                })
            })
            .filter(|i| kind.is_none_or(|k| i.status.kind() == k))
            .collect();
        out.sort_by(|a, b| (a.workflow, &a.id).cmp(&(b.workflow, &b.id)));
        Ok(out)
    }

    /// Test kit: every instance's step `step` fails on attempt `attempt`
    /// (from 1), without running, as if it had returned an error.
    pub fn fail_step<W: Workflow, I>(&self, step: StepRef<W, I>, attempt: u32) {
        self.inject(W::NAME, None, step.name(), attempt);
    }

    /// Test kit: step `step` of instance `id` fails on attempt `attempt`.
    pub fn fail_step_of<W: Workflow, I>(&self, id: &str, step: StepRef<W, I>, attempt: u32) {
        self.inject(W::NAME, Some(id.to_owned()), step.name(), attempt);
    }

    fn inject(&self, workflow: &'static str, id: Option<String>, step: &'static str, attempt: u32) {
        self.shared
            .injected
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Injected {
                workflow,
                id,
                step,
                attempt,
            });
    }

    /// How many step attempts this node has run and recorded.
    pub fn steps_run(&self) -> u64 {
        self.shared.steps_run.load(Ordering::Relaxed)
    }

    /// True while this node runs the workflows (holds the lease).
    pub fn is_runner(&self) -> bool {
        self.shared.progress.is_runner()
    }

    /// The position of the log this node's index has read through.
    pub fn checkpoint(&self) -> u64 {
        self.shared.progress.checkpoint()
    }

    /// Waits until no instance has an attempt to run, as of the log's head
    /// (the simulation's moment to check invariants or move the time): every
    /// one is paused, over, or waits for a retry's timer.
    pub(crate) async fn wait_quiet(&self) -> Result<(), WorkflowWaitError> {
        self.start();
        let head = self.shared.env.store().head().await?;
        self.shared.progress.wait_for(head).await?;
        loop {
            let checkpoint = self.shared.progress.checkpoint();
            let busy = {
                let index = self.shared.index.read().unwrap_or_else(|e| e.into_inner());
                index.values().any(|m| m.values().any(|c| c.runnable().is_some()))
            };
            if !busy {
                return Ok(());
            }
            self.shared.progress.wait_for(checkpoint + 1).await?;
        }
    }

    /// The simulation's crash: stops every attempt this node runs, at once.
    pub(crate) fn halt(&self) {
        self.shared.abort_all();
    }

    /// A handle that resolves once this node's runner has stopped (after the app is dropped).
    pub(crate) fn stopped(&self) -> impl Future<Output = ()> + Send + 'static {
        let shared = self.shared.clone();
        let started = self.started.load(Ordering::SeqCst);
        async move {
            if started {
                shared.progress.wait_stopped().await;
            }
        }
    }
}

/// A handle on one workflow instance: start it, signal it, read it, wait for it.
pub struct WorkflowRef<W: Workflow> {
    entity: crate::EntityRef<Instance<W>>,
    shared: Arc<Shared>,
}

impl<W: Workflow> Clone for WorkflowRef<W> {
    fn clone(&self) -> Self {
        WorkflowRef {
            entity: self.entity.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<W: Workflow> std::fmt::Debug for WorkflowRef<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WorkflowRef({}/{})", W::NAME, self.entity.id())
    }
}

/// What a command to an instance fails with: the command side's error, whose
/// rejection is a [`WorkflowRejection`].
pub type InstanceError<W> = CommandError<WorkflowRejection<<W as Workflow>::Error>>;

impl<W: Workflow> WorkflowRef<W> {
    /// The instance id.
    pub fn id(&self) -> &str {
        self.entity.id()
    }

    /// The entity behind the instance, for `send_with` (an idempotent start
    /// under a chosen command id) and its history.
    pub fn entity(&self) -> &crate::EntityRef<Instance<W>> {
        &self.entity
    }

    /// Starts the instance: runs the start decision on the default state and
    /// records its state and first move. Refused with
    /// [`WorkflowRejection::AlreadyStarted`] the second time, and with
    /// [`WorkflowRejection::Refused`] when the decision refuses.
    pub async fn start(
        &self,
        command: impl Into<W::Start>,
    ) -> Result<Committed<Instance<W>>, InstanceError<W>> {
        self.entity.send(InstanceCommand::Start(command.into())).await
    }

    /// Sends a signal to the paused instance. Refused with
    /// [`WorkflowRejection::NotAccepting`] when it is not paused (not
    /// started, in a step, over), and with [`WorkflowRejection::Refused`] when
    /// the signal's decision refuses.
    ///
    /// The instance's steps may run on another node, whose events this
    /// node's cached instance has not seen (the command side reloads only on
    /// a conflict, and a refusal writes nothing): the instance is caught up
    /// with the store first, so the status a signal is judged by is the
    /// stored one.
    pub async fn signal(
        &self,
        signal: impl Into<W::Signal>,
    ) -> Result<Committed<Instance<W>>, InstanceError<W>> {
        self.entity.version().await?;
        self.entity.send(InstanceCommand::Signal(signal.into())).await
    }

    /// Cancels the instance: it ends as [`Status::Cancelled`]. Without a
    /// compensation, at once: a step running now is stopped and its late
    /// result ignored. With `#[workflow(on_cancel = step)]`, the compensation
    /// step is entered at the next step boundary (at once when paused) and the
    /// instance is cancelled when it ends. Refused with
    /// [`WorkflowRejection::Finished`] once it is over, and with
    /// [`WorkflowRejection::Closing`] while it already heads for a final step.
    pub async fn cancel(
        &self,
        reason: impl Into<String>,
    ) -> Result<Committed<Instance<W>>, InstanceError<W>> {
        // Caught up first, as for a signal: "already over" must be the store's answer.
        self.entity.version().await?;
        self.entity.send(InstanceCommand::Cancel(reason.into())).await
    }

    /// The workflow's state (`None` before the start), read from the store.
    pub async fn state(&self) -> Result<Option<W>, LoadError> {
        Ok(self.entity.state().await?.state().cloned())
    }

    /// Where the instance stands, read from the store.
    pub async fn status(&self) -> Result<Status, LoadError> {
        Ok(self.entity.state().await?.status().clone())
    }

    /// When the workflow's timeout passes, while it still stands, read from the store.
    pub async fn deadline(&self) -> Result<Option<Timestamp>, LoadError> {
        Ok(self.entity.state().await?.deadline())
    }

    /// Every event of the instance, with versions, positions and metadata.
    pub async fn history(&self) -> Result<Vec<Recorded<WorkflowEvent>>, LoadError> {
        self.entity.history().await
    }

    /// Every step attempt that came to an outcome, in order.
    pub async fn steps(&self) -> Result<Vec<StepRecord>, LoadError> {
        let mut out = Vec::new();
        for recorded in self.history().await? {
            let at = recorded.metadata.recorded_at;
            match recorded.event {
                WorkflowEvent::StepSucceeded(e) => out.push(StepRecord {
                    seq: e.seq,
                    step: e.step,
                    attempt: e.attempt,
                    error: None,
                    timed_out: false,
                    at,
                }),
                WorkflowEvent::StepAttemptFailed(e) => out.push(StepRecord {
                    seq: e.seq,
                    step: e.step,
                    attempt: e.attempt,
                    error: Some(e.error),
                    timed_out: e.timed_out,
                    at,
                }),
                _ => {}
            }
        }
        Ok(out)
    }

    /// The instance's path in short form, for asserting it in a test: each
    /// step attempt ([`StepRecord::short`]), and `paused`, `signal Accept`,
    /// `pause timed out`, `timed out` (the workflow's timeout), `cancel
    /// requested` (a compensation follows), `cancelled` where those happened:
    /// `["withdraw", "paused", "signal Accept", "deposit"]`.
    pub async fn trail(&self) -> Result<Vec<String>, LoadError> {
        let mut out = Vec::new();
        for recorded in self.history().await? {
            match recorded.event {
                WorkflowEvent::StepSucceeded(e) => out.push(e.step),
                WorkflowEvent::StepAttemptFailed(e) if e.timed_out => {
                    out.push(format!("{} timed out", e.step))
                }
                WorkflowEvent::StepAttemptFailed(e) => out.push(format!("{} failed", e.step)),
                WorkflowEvent::Paused(_) => out.push("paused".to_owned()),
                WorkflowEvent::SignalReceived(e) => out.push(format!("signal {}", e.signal)),
                WorkflowEvent::PauseTimedOut(_) => out.push("pause timed out".to_owned()),
                WorkflowEvent::WorkflowCancelled(_) => out.push("cancelled".to_owned()),
                WorkflowEvent::WorkflowTimedOut(_) => out.push("timed out".to_owned()),
                WorkflowEvent::CancelRequested(_) => out.push("cancel requested".to_owned()),
                _ => {}
            }
        }
        Ok(out)
    }

    /// Waits until the instance's status satisfies `done`, as this node's
    /// index sees it (it follows the log), and returns that status. The index
    /// is first brought up to the log's head at the call, so what committed
    /// before (a start, a timer's firing) is seen.
    pub async fn wait_until(&self, done: impl Fn(&Status) -> bool) -> Result<Status, WorkflowWaitError> {
        Ok(self.wait_core(|core| done(&core.status)).await?.status)
    }

    /// [`wait_until`](Self::wait_until) on everything the index keeps of the instance.
    pub(crate) async fn wait_core(&self, done: impl Fn(&Core) -> bool) -> Result<Core, WorkflowWaitError> {
        let head = self.shared.env.store().head().await?;
        self.shared.progress.wait_for(head).await?;
        loop {
            let checkpoint = self.shared.progress.checkpoint();
            let core = self.shared.core(W::NAME, self.entity.id()).unwrap_or_default();
            if done(&core) {
                return Ok(core);
            }
            self.shared.progress.wait_for(checkpoint + 1).await?;
        }
    }

    /// Waits until the instance has ended, failed or been cancelled.
    pub async fn wait_for_end(&self) -> Result<Status, WorkflowWaitError> {
        self.wait_until(Status::is_final).await
    }

    /// Waits until no attempt of the instance is running: it is paused, over,
    /// or waits for a retry's backoff. With virtual time, the moment to
    /// advance the clock.
    pub async fn wait_settled(&self) -> Result<Status, WorkflowWaitError> {
        self.wait_until(|s| !matches!(s, Status::Running { retry_at: None, .. }) && *s != Status::NotStarted)
            .await
    }

    /// Waits until the instance is paused (waiting for a signal).
    pub async fn wait_paused(&self) -> Result<Status, WorkflowWaitError> {
        self.wait_until(|s| matches!(s, Status::Paused { .. }) || s.is_final())
            .await
    }
}

/// The runner, driven by the process layer's supervisor.
struct Runner {
    shared: Arc<Shared>,
    alive: watch::Receiver<()>,
    tail: Tail,
    /// The position the index has read through.
    checkpoint: u64,
}

impl Runner {
    /// Reads one batch into the index; the instances it touched (none at the head).
    async fn read_batch(&mut self) -> Result<Option<Vec<Key>>, WorkflowRunnerError> {
        let batch = self.tail.read_after(self.checkpoint).await?;
        let Some(last) = batch.last() else {
            return Ok(None);
        };
        let last = last.position;
        let touched = self.shared.index_batch(&batch)?;
        self.checkpoint = last;
        self.shared.progress.publish(last);
        Ok(Some(touched))
    }
}

#[async_trait]
impl Process for Runner {
    type Error = WorkflowRunnerError;

    fn name(&self) -> &'static str {
        "workflows"
    }

    fn progress(&self) -> &Progress {
        &self.shared.progress
    }

    fn is_closed(&self) -> bool {
        self.alive.has_changed().is_err()
    }

    async fn hold_off(&mut self) -> Result<Option<String>, WorkflowRunnerError> {
        Ok(None)
    }

    async fn try_lease(&mut self) -> Result<Option<Box<dyn Lease>>, WorkflowRunnerError> {
        let store = self.shared.timers.store()?;
        store.try_process_lease("workflows").await.map_err(|source| {
            WorkflowRunnerError::Timer(TimerError::Store {
                context: "taking the workflow runner's lease".to_owned(),
                source,
            })
        })
    }

    async fn lead(&mut self, lease: &dyn Lease) -> Result<Led, WorkflowRunnerError> {
        let shared = self.shared.clone();
        // Whatever ran before this lease is not ours to trust: start afresh.
        shared.abort_all();
        let result = async {
            while self.read_batch().await?.is_some() {}
            self.shared.progress.progressed();
            let keys: Vec<Key> = {
                let index = shared.index.read().unwrap_or_else(|e| e.into_inner());
                index
                    .iter()
                    .flat_map(|(w, m)| {
                        m.iter()
                            .filter(|(_, c)| !c.status.is_final())
                            .map(|(id, _)| (*w, id.clone()))
                    })
                    .collect()
            };
            for key in &keys {
                shared.reconcile(key).await?;
            }
            loop {
                if self.alive.has_changed().is_err() {
                    return Ok(Led::Exit);
                }
                if lease.is_lost() {
                    return Ok(Led::LeaseLost);
                }
                match self.read_batch().await? {
                    Some(touched) => {
                        for key in &touched {
                            shared.reconcile(key).await?;
                        }
                        self.shared.progress.progressed();
                    }
                    None => {
                        tokio::select! {
                            r = self.tail.wait(IDLE_WAIT) => r?,
                            _ = self.alive.changed() => return Ok(Led::Exit),
                        }
                    }
                }
            }
        }
        .await;
        shared.abort_all();
        result
    }

    /// Another node runs the workflows: keep this node's index current.
    async fn follow(&mut self) -> Result<(), WorkflowRunnerError> {
        self.shared.abort_all();
        while self.read_batch().await?.is_some() {}
        Ok(())
    }
}
