//! What a running step may use: who it is (workflow, instance, step, sequence
//! number, attempt), its deterministic time, entity calls under derived
//! command ids, and timers.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::command::{CommandError, Commands, Committed, SendOptions};
use crate::entity::Entity;
use crate::inject::{self, Faults, Injection, Site};
use crate::time::Timestamp;
use crate::timer::{TimerError, Timers};

/// The context of one attempt of one step.
///
/// Entity calls through [`send`](StepContext::send) carry the command id
/// [`workflow_command_id`](crate::ids::workflow_command_id)`(workflow, id,
/// step, seq, n)` for the step's `n`-th call, the same in every attempt and
/// after a restart, so a re-run step has each call's effect once — provided
/// it makes the same calls in the same order.
pub struct StepContext {
    pub(crate) workflow: &'static str,
    pub(crate) id: Arc<str>,
    pub(crate) step: String,
    pub(crate) seq: u64,
    pub(crate) attempt: u32,
    pub(crate) now: Timestamp,
    pub(crate) commands: Arc<Commands>,
    pub(crate) timers: Arc<Timers>,
    pub(crate) calls: AtomicU64,
    pub(crate) correlation_id: Uuid,
    /// The simulation's fault plan, when the test kit runs one.
    pub(crate) faults: Option<Arc<dyn Faults>>,
}

impl std::fmt::Debug for StepContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StepContext")
            .field("workflow", &self.workflow)
            .field("id", &self.id)
            .field("step", &self.step)
            .field("seq", &self.seq)
            .field("attempt", &self.attempt)
            .finish_non_exhaustive()
    }
}

impl StepContext {
    /// The workflow's name.
    pub fn workflow(&self) -> &'static str {
        self.workflow
    }

    /// The instance id.
    pub fn workflow_id(&self) -> &str {
        &self.id
    }

    /// The step's name.
    pub fn step(&self) -> &str {
        &self.step
    }

    /// The step's sequence number in the instance, from 1: the same in every attempt.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// This attempt, from 1.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The step's time: when the instance entered the step, the same in
    /// every attempt and after a restart.
    pub fn now(&self) -> Timestamp {
        self.now
    }

    /// The command id of this step's next call, and counts it: for an
    /// outside service's idempotency key, derived like the entity calls'.
    pub fn next_command_id(&self) -> Uuid {
        let call = self.calls.fetch_add(1, Ordering::SeqCst);
        crate::ids::workflow_command_id(self.workflow, &self.id, &self.step, self.seq, call)
    }

    /// Sends `command` to the entity `E` with id `entity_id`, under this
    /// step's next derived command id (the instance's correlation id, caused
    /// by the instance): a re-sent call returns the first call's outcome.
    pub async fn send<E: Entity>(
        &self,
        entity_id: &str,
        command: impl Into<E::Command>,
    ) -> Result<Committed<E>, CommandError<E::Error>> {
        let call = self.calls.load(Ordering::SeqCst);
        let command_id = self.next_command_id();
        let options = SendOptions {
            command_id: Some(command_id),
            causation_id: None,
            correlation_id: Some(self.correlation_id),
        };
        let entity = self.commands.entity::<E>(entity_id);
        let command = command.into();
        // Only a simulation re-sends a call: keep the command for it then.
        let duplicate = self.faults.is_some().then(|| command.clone());
        let answer = entity.send_with(command, options).await;
        let site = inject::Attempt {
            workflow: self.workflow,
            id: &self.id,
            step: &self.step,
            seq: self.seq,
            attempt: self.attempt,
        };
        match (
            inject::at(self.faults.as_ref(), Site::StepCall(site, call)),
            duplicate,
        ) {
            (Injection::Crash, _) => {
                inject::halt().await;
                answer
            }
            // Re-sent under the same id: the store answers with the first call's outcome.
            (Injection::Duplicate, Some(command)) => entity.send_with(command, options).await,
            _ => answer,
        }
    }

    /// Schedules a durable timer (see [`Timers::schedule`]).
    pub async fn schedule<E, C>(
        &self,
        name: &str,
        entity_id: &str,
        due: Timestamp,
        command: C,
    ) -> Result<(), TimerError>
    where
        E: Entity,
        C: Into<E::Command> + Serialize + DeserializeOwned + Send + 'static,
    {
        self.timers.schedule::<E, C>(name, entity_id, due, command).await
    }
}
