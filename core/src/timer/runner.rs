//! The timer runner, a [`Process`] of the process layer: while it holds the
//! lease it sweeps the due timers (earliest first, 256 per store
//! transaction, entities in parallel and each entity's timers in due order),
//! sends each one's command, settles the batch, then sleeps until the next
//! due time, a clock move, a schedule earlier than what it sleeps toward, or
//! 500 ms (to re-check its lease and timers scheduled by other nodes).
//! [`Timers`] is the subsystem an app holds: its store, its decoders, the
//! runner's status.

use std::collections::HashMap;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::{Notify, watch};
use uuid::Uuid;

use super::backend::{After, Firing, FiringOutcome, Settlement, StoredTimer, TimerStore};
use super::memory::MemoryTimerStore;
use super::{MAX_NAME, MAX_PAYLOAD, TimerError, command_type_name, decoder_key};
use crate::command::{CommandError, Commands, SendOptions};
use crate::entity::Entity;
use crate::env::Env;
use crate::process::{FAILURES_BEFORE_WAIT_FAILS, Failure, Lease, Led, Process, Progress, Runners};
use crate::time::Timestamp;

/// The most timers one sweep reads and settles in one store transaction.
const SWEEP_BATCH: usize = 256;
/// The longest the runner sleeps before it re-checks its lease and the next
/// due time (timers scheduled on other nodes do not wake it).
const IDLE_WAIT: Duration = Duration::from_millis(500);
/// The first retry delay of a failing send; it doubles with the failure streak.
const FIRST_RETRY: Duration = Duration::from_millis(100);
/// The failure streak after which the retry delay stops doubling (25.6 s).
const MAX_RETRY_DOUBLINGS: u32 = 8;
/// What `sleeping_until` holds while the runner sweeps, or has nothing to
/// wait for: every schedule wakes it (again).
const AWAKE: i64 = i64::MAX;

/// Sends one stored timer's command, typed: the decoder of one (entity, command type).
trait Decoder: Send + Sync + 'static {
    /// The Rust command type, for the ambiguity check.
    fn rust_type(&self) -> &'static str;

    /// Decodes the stored command and sends it with `command_id`.
    fn fire<'a>(
        &'a self,
        commands: &'a Arc<Commands>,
        timer: &'a StoredTimer,
        command_id: Uuid,
    ) -> Pin<Box<dyn Future<Output = (FiringOutcome, After)> + Send + 'a>>;
}

struct Typed<E, C>(PhantomData<fn() -> (E, C)>);

impl<E, C> Decoder for Typed<E, C>
where
    E: Entity,
    C: Into<E::Command> + DeserializeOwned + Send + 'static,
{
    fn rust_type(&self) -> &'static str {
        std::any::type_name::<C>()
    }

    fn fire<'a>(
        &'a self,
        commands: &'a Arc<Commands>,
        timer: &'a StoredTimer,
        command_id: Uuid,
    ) -> Pin<Box<dyn Future<Output = (FiringOutcome, After)> + Send + 'a>> {
        Box::pin(async move {
            let command: C = match serde_json::from_slice(&timer.payload) {
                Ok(c) => c,
                Err(e) => {
                    let error = format!(
                        "the stored command does not decode as `{}` for entity {}/{}: {e}; \
                         make the type read it (serde defaults) or cancel the timer",
                        std::any::type_name::<C>(),
                        timer.entity_type,
                        timer.entity_id
                    );
                    return (FiringOutcome::Failed { error }, After::Block);
                }
            };
            let options = SendOptions {
                command_id: Some(command_id),
                ..SendOptions::default()
            };
            match commands
                .entity::<E>(&timer.entity_id)
                .send_with(command, options)
                .await
            {
                Ok(done) => (
                    FiringOutcome::Fired {
                        version: done.version,
                        position: done.position,
                    },
                    After::Done,
                ),
                Err(CommandError::Rejected(rejection)) => (
                    FiringOutcome::Rejected {
                        message: rejection.to_string(),
                    },
                    After::Done,
                ),
                Err(other) => (
                    FiringOutcome::Failed {
                        error: other.to_string(),
                    },
                    After::Retry,
                ),
            }
        })
    }
}

type Registration = Box<dyn FnOnce(&Decoders) + Send>;

/// How an app keeps its timers ([`AppBuilder::timer_store`](crate::AppBuilder::timer_store)).
#[derive(Default)]
pub(crate) struct TimerSettings {
    pub(crate) store: Option<Arc<dyn TimerStore>>,
    pub(crate) registrations: Vec<Registration>,
    /// The simulation's fault plan, when the test kit runs one.
    pub(crate) faults: Option<Arc<dyn crate::inject::Faults>>,
}

impl TimerSettings {
    /// Registers the decoder of `C` for `E` when the app is built.
    pub(crate) fn register<E, C>(&mut self)
    where
        E: Entity,
        C: Into<E::Command> + DeserializeOwned + Send + 'static,
    {
        self.registrations.push(Box::new(|decoders: &Decoders| {
            if let Err(error) = decoders.insert::<E, C>() {
                tracing::error!(%error, "registering a timer command type");
            }
        }));
    }
}

impl std::fmt::Debug for TimerSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimerSettings")
            .field("store", &self.store.as_ref().map(|s| s.backend()))
            .field("registrations", &self.registrations.len())
            .finish()
    }
}

/// The decoders of one entity, by command type name.
type EntityDecoders = HashMap<String, Arc<dyn Decoder>>;

/// Decoders by entity name, then command type name.
#[derive(Default)]
pub(crate) struct Decoders {
    map: RwLock<HashMap<&'static str, EntityDecoders>>,
}

impl Decoders {
    /// Registers `C` for `E`; true when it is new.
    fn insert<E, C>(&self) -> Result<bool, TimerError>
    where
        E: Entity,
        C: Into<E::Command> + DeserializeOwned + Send + 'static,
    {
        let (entity, command) = decoder_key::<E, C>();
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        let commands = map.entry(entity).or_default();
        if let Some(existing) = commands.get(&command) {
            let rust_type = std::any::type_name::<C>();
            return if existing.rust_type() == rust_type {
                Ok(false)
            } else {
                Err(TimerError::AmbiguousCommand {
                    entity_type: E::NAME,
                    command_type: command,
                    first: existing.rust_type(),
                    second: rust_type,
                })
            };
        }
        commands.insert(command, Arc::new(Typed::<E, C>(PhantomData)));
        Ok(true)
    }

    fn get(&self, entity: &str, command: &str) -> Option<Arc<dyn Decoder>> {
        let map = self.map.read().unwrap_or_else(|e| e.into_inner());
        map.get(entity)?.get(command).cloned()
    }
}

/// What the runner and the handles share.
struct Shared {
    env: Env,
    commands: Arc<Commands>,
    store: Arc<dyn TimerStore>,
    decoders: Decoders,
    progress: Progress,
    /// Wakes the runner: a schedule earlier than it sleeps toward, a registration.
    wake: Notify,
    /// The due time (µs) the runner sleeps toward; [`AWAKE`] while it sweeps.
    sleeping_until: AtomicI64,
    /// Counts the runner's sweeps (and a follower's refreshes), for `wait_idle`.
    sweeps: watch::Sender<u64>,
    faults: Option<Arc<dyn crate::inject::Faults>>,
}

/// A pending timer, as [`Timers::pending`] lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingTimer {
    /// The timer's name.
    pub name: String,
    /// The target entity's type name.
    pub entity_type: String,
    /// The target entity's id.
    pub entity_id: String,
    /// The command's type name.
    pub command_type: String,
    /// The command, as JSON text.
    pub command: String,
    /// When it is due.
    pub due: Timestamp,
    /// When it was scheduled (the clock's time).
    pub scheduled_at: Timestamp,
    /// Firings tried that did not complete.
    pub attempts: u32,
    /// Why the last try did not complete.
    pub last_error: Option<String>,
    /// True when it is due but nobody here can decode it (see [`TimerError::Undecodable`]).
    pub blocked: bool,
}

impl From<StoredTimer> for PendingTimer {
    fn from(t: StoredTimer) -> Self {
        PendingTimer {
            command: String::from_utf8_lossy(&t.payload).into_owned(),
            name: t.name,
            entity_type: t.entity_type,
            entity_id: t.entity_id,
            command_type: t.command_type,
            due: t.due,
            scheduled_at: t.scheduled_at,
            attempts: t.attempts,
            last_error: t.last_error,
            blocked: t.blocked,
        }
    }
}

/// Where the timer runner of this app stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimerStatus {
    /// True while this node runs the timers (holds the lease).
    pub runner: bool,
    /// The runner's current failure streak, if it is failing.
    pub failure: Option<Failure>,
    /// The last error the runner hit (a failed send, an undecodable timer).
    pub last_error: Option<String>,
    /// Everything due up to this time has been handled (µs since the epoch).
    pub handled_through: u64,
}

/// The timers of one app: schedule, cancel, list, and wait for them.
///
/// The runner starts with the app when it is built inside a tokio runtime,
/// otherwise on the first call here.
pub struct Timers {
    shared: Option<Arc<Shared>>,
    backend: &'static str,
    started: AtomicBool,
    /// The runners' tasks and their stop signal: dropped with the app, or
    /// stopped by [`App::shutdown`](crate::App::shutdown).
    runners: Runners,
}

impl std::fmt::Debug for Timers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Timers")
            .field("store", &self.shared.as_ref().map(|s| s.store.backend()))
            .finish_non_exhaustive()
    }
}

impl Timers {
    pub(crate) fn new(env: Env, commands: Arc<Commands>, settings: TimerSettings) -> Self {
        let backend = env.store().backend();
        // A memory log gets memory timers; a durable log needs a durable timer store.
        let store = settings.store.or_else(|| {
            (backend == "memory").then(|| Arc::new(MemoryTimerStore::new()) as Arc<dyn TimerStore>)
        });
        let shared = store.map(|store| {
            let shared = Shared {
                env,
                commands,
                store,
                decoders: Decoders::default(),
                progress: Progress::new(0),
                wake: Notify::new(),
                sleeping_until: AtomicI64::new(AWAKE),
                sweeps: watch::channel(0).0,
                faults: settings.faults,
            };
            for register in settings.registrations {
                register(&shared.decoders);
            }
            Arc::new(shared)
        });
        let timers = Timers {
            shared,
            backend,
            started: AtomicBool::new(false),
            runners: Runners::default(),
        };
        timers.start();
        timers
    }

    fn shared(&self) -> Result<&Arc<Shared>, TimerError> {
        let shared = self.shared.as_ref().ok_or(TimerError::NoStore {
            backend: self.backend,
        })?;
        self.start();
        Ok(shared)
    }

    /// Stops the runner (it exits between batches) and waits until it has;
    /// one started later in this app exits at once.
    pub(crate) async fn stop(&self) {
        self.runners.stop().await;
    }

    /// Spawns the runner once, when called inside a tokio runtime.
    fn start(&self) {
        let Some(shared) = &self.shared else { return };
        if tokio::runtime::Handle::try_current().is_err() || self.started.swap(true, Ordering::SeqCst) {
            return;
        }
        self.runners.spawn(Runner {
            shared: shared.clone(),
            alive: self.runners.alive(),
        });
    }

    /// Where the timers are kept, or [`TimerError::NoStore`].
    pub fn store(&self) -> Result<&Arc<dyn TimerStore>, TimerError> {
        Ok(&self.shared()?.store)
    }

    /// Lets this process fire stored timers of command `C` for entity `E`
    /// (scheduled by an earlier process), and unblocks those that were
    /// reported undecodable.
    pub async fn register<E, C>(&self) -> Result<(), TimerError>
    where
        E: Entity,
        C: Into<E::Command> + DeserializeOwned + Send + 'static,
    {
        let shared = self.shared()?;
        if shared.decoders.insert::<E, C>()? {
            let (entity, command) = decoder_key::<E, C>();
            shared
                .store
                .unblock(Some((entity, &command)))
                .await
                .map_err(TimerError::store(format!(
                    "unblocking the timers of {entity} command `{command}`"
                )))?;
            shared.wake.notify_one();
        }
        Ok(())
    }

    /// Schedules `command` for the entity `E` with id `entity_id` at `due`,
    /// under `name`: a pending timer of that name is replaced. Resolves once
    /// the timer is stored. A `due` in the past fires at once.
    ///
    /// Also registers `C` for `E` in this process ([`register`](Timers::register)).
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
        let shared = self.shared()?;
        check_name(name)?;
        let command_type = command_type_name::<C>();
        if entity_id.is_empty() {
            return Err(TimerError::InvalidEntityId {
                name: name.to_owned(),
                entity_type: E::NAME,
            });
        }
        let payload = serde_json::to_vec(&command).map_err(|source| TimerError::Encode {
            name: name.to_owned(),
            entity_type: E::NAME,
            command_type: command_type.clone(),
            source,
        })?;
        if payload.len() > MAX_PAYLOAD {
            return Err(TimerError::TooLarge {
                name: name.to_owned(),
                entity_type: E::NAME,
                command_type,
                size: payload.len(),
                limit: MAX_PAYLOAD,
            });
        }
        shared.decoders.insert::<E, C>()?;
        let timer = StoredTimer {
            name: name.to_owned(),
            entity_type: E::NAME.to_owned(),
            entity_id: entity_id.to_owned(),
            command_type,
            due,
            payload,
            schedule_id: Uuid::new_v4(),
            scheduled_at: shared.env.clock().now(),
            attempts: 0,
            last_error: None,
            blocked: false,
        };
        shared
            .store
            .schedule(timer)
            .await
            .map_err(TimerError::store(format!("scheduling timer `{name}`")))?;
        if due.as_micros() < shared.sleeping_until.load(Ordering::SeqCst) {
            shared.wake.notify_one();
        }
        Ok(())
    }

    /// Cancels the pending timer `name`; true if there was one. A firing
    /// already under way is not recalled.
    pub async fn cancel(&self, name: &str) -> Result<bool, TimerError> {
        self.shared()?
            .store
            .cancel(name)
            .await
            .map_err(TimerError::store(format!("cancelling timer `{name}`")))
    }

    /// Every pending timer, earliest first: name, target, command, due time,
    /// and for one that could not fire yet, its attempts and last error.
    pub async fn pending(&self) -> Result<Vec<PendingTimer>, TimerError> {
        let mut out: Vec<PendingTimer> = Vec::new();
        loop {
            let after = out.last().map(|t| (t.due, t.name.clone()));
            let page = self
                .pending_page(after.as_ref().map(|(due, name)| (*due, name.as_str())), 4096)
                .await?;
            let full = page.len() == 4096;
            out.extend(page);
            if !full {
                return Ok(out);
            }
        }
    }

    /// At most `limit` pending timers, earliest first, after `(due, name)` when given.
    pub async fn pending_page(
        &self,
        after: Option<(Timestamp, &str)>,
        limit: usize,
    ) -> Result<Vec<PendingTimer>, TimerError> {
        let page = self
            .shared()?
            .store
            .pending(after, limit)
            .await
            .map_err(TimerError::store("listing pending timers"))?;
        Ok(page.into_iter().map(PendingTimer::from).collect())
    }

    /// The newest firings, newest first, at most `limit` (the store keeps the
    /// last [`KEPT_FIRINGS`](super::KEPT_FIRINGS)): what each came to —
    /// fired (version and position), rejected (the message), failed (the error).
    pub async fn recent_firings(&self, limit: usize) -> Result<Vec<Firing>, TimerError> {
        self.shared()?
            .store
            .recent_firings(limit)
            .await
            .map_err(TimerError::store("listing recent firings"))
    }

    /// A handle that resolves once this node's runner has stopped (after the app is dropped).
    pub(crate) fn stopped(&self) -> impl Future<Output = ()> + Send + 'static {
        let shared = self
            .shared
            .clone()
            .filter(|_| self.started.load(Ordering::SeqCst));
        async move {
            if let Some(shared) = shared {
                shared.progress.wait_stopped().await;
            }
        }
    }

    /// Where the runner stands on this node.
    pub fn status(&self) -> Result<TimerStatus, TimerError> {
        let progress = &self.shared()?.progress;
        Ok(TimerStatus {
            runner: progress.is_runner(),
            failure: progress.failure(),
            last_error: progress.last_error(),
            handled_through: progress.checkpoint(),
        })
    }

    /// Waits until every timer due by the clock's time now has fired (or was
    /// rejected): for tests with a [`ManualClock`](crate::ManualClock), after
    /// advancing it. Never sleeps on time: it wakes on the runner's sweeps.
    ///
    /// Fails with [`TimerError::Undecodable`] naming a due timer nobody can
    /// decode (it stays pending), and with [`TimerError::Failing`] once the
    /// runner failed [`FAILURES_BEFORE_WAIT_FAILS`] times in a row on a due
    /// timer, the last of them while this call waited.
    pub async fn wait_idle(&self) -> Result<(), TimerError> {
        let shared = self.shared()?;
        let target = shared.env.clock().now();
        let mut sweeps = shared.sweeps.subscribe();
        // A streak from before this call may be over (the store recovered):
        // give up only on a failure seen while waiting.
        let streak_before = shared.progress.failure().map_or(0, |f| f.attempts);
        loop {
            sweeps.borrow_and_update();
            // One read answers both "is anything due left?" and "is it blocked?":
            // two reads could straddle a runner restart that unblocks the timer.
            let earliest = shared
                .store
                .pending(None, 1)
                .await
                .map_err(TimerError::store("reading the earliest pending timer"))?;
            let first = match earliest.into_iter().next() {
                Some(t) if t.due <= target => t,
                _ => return Ok(()),
            };
            if first.blocked {
                return Err(TimerError::Undecodable {
                    error: first.last_error.unwrap_or_default(),
                    name: first.name,
                    entity_type: first.entity_type,
                    command_type: first.command_type,
                });
            }
            if let Some(f) = shared.progress.failure()
                && f.attempts >= FAILURES_BEFORE_WAIT_FAILS
                && f.attempts > streak_before
            {
                return Err(TimerError::Failing {
                    name: first.name,
                    attempts: f.attempts,
                    error: f.error,
                });
            }
            if sweeps.changed().await.is_err() {
                return Err(TimerError::Stopped);
            }
        }
    }
}

fn check_name(name: &str) -> Result<(), TimerError> {
    let reason = if name.is_empty() {
        "a timer name is 1 or more bytes".to_owned()
    } else if name.len() > MAX_NAME {
        format!(
            "{} bytes, more than the {MAX_NAME} a timer name may have",
            name.len()
        )
    } else {
        return Ok(());
    };
    Err(TimerError::InvalidName {
        name: name.chars().take(64).collect(),
        reason,
    })
}

/// What the runner has handled through: everything due at or before it.
fn handled_through(now: Timestamp, next_due: Option<Timestamp>) -> u64 {
    let through = match next_due {
        Some(due) if due <= now => due.as_micros().saturating_sub(1),
        _ => now.as_micros(),
    };
    u64::try_from(through).unwrap_or(0)
}

/// How long a failing runner waits before retrying: doubles with the streak.
fn retry_delay(progress: &Progress) -> Duration {
    let streak = progress.failure().map_or(1, |f| f.attempts.max(1));
    FIRST_RETRY * (1u32 << (streak - 1).min(MAX_RETRY_DOUBLINGS))
}

/// The timer runner, driven by the process layer's supervisor.
struct Runner {
    shared: Arc<Shared>,
    alive: watch::Receiver<()>,
}

#[async_trait]
impl Process for Runner {
    type Error = TimerError;

    fn name(&self) -> &'static str {
        "timers"
    }

    fn progress(&self) -> &Progress {
        &self.shared.progress
    }

    fn is_closed(&self) -> bool {
        self.alive.has_changed().is_err()
    }

    async fn hold_off(&mut self) -> Result<Option<String>, TimerError> {
        Ok(None)
    }

    async fn try_lease(&mut self) -> Result<Option<Box<dyn Lease>>, TimerError> {
        self.shared
            .store
            .try_lease()
            .await
            .map_err(TimerError::store("taking the timer runner's lease"))
    }

    async fn lead(&mut self, lease: &dyn Lease) -> Result<Led, TimerError> {
        let shared = self.shared.clone();
        // A new runner may decode what the last one could not.
        shared
            .store
            .unblock(None)
            .await
            .map_err(TimerError::store("unblocking timers for a new runner"))?;
        let mut moves = shared.env.clock().moves();
        loop {
            if self.is_closed() {
                return Ok(Led::Exit);
            }
            if lease.is_lost() {
                return Ok(Led::LeaseLost);
            }
            shared.sleeping_until.store(AWAKE, Ordering::SeqCst);
            if let Some(moves) = moves.as_mut() {
                moves.borrow_and_update();
            }
            let now = shared.env.clock().now();
            let failure = sweep(&shared, now).await?;
            let next = shared
                .store
                .next_due()
                .await
                .map_err(TimerError::store("reading the next due time"))?;
            shared.progress.publish(handled_through(now, next));
            let mut wait = IDLE_WAIT;
            let failing = failure.is_some();
            match failure {
                Some(error) => {
                    shared.progress.failed(&error);
                    wait = wait.max(retry_delay(&shared.progress));
                }
                None => shared.progress.progressed(),
            }
            shared.sweeps.send_modify(|n| *n = n.wrapping_add(1));
            if let Some(next) = next {
                // A schedule from now on compares its due time with this (and
                // one that committed before the read above is in `next`).
                shared.sleeping_until.store(next.as_micros(), Ordering::SeqCst);
                let now = shared.env.clock().now();
                if next <= now && !failing {
                    // Scheduled during the sweep and already due: sweep again now.
                    continue;
                }
                if next > now && moves.is_none() {
                    // A clock that moves by itself: sleep until the next timer is due.
                    wait = wait.min(next.since(now));
                }
            }
            let moved = async {
                match moves.as_mut() {
                    Some(m) => {
                        if m.changed().await.is_err() {
                            std::future::pending::<()>().await;
                        }
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = shared.wake.notified() => {}
                _ = moved => {}
                _ = tokio::time::sleep(wait) => {}
                _ = self.alive.changed() => return Ok(Led::Exit),
            }
        }
    }

    /// Another node runs the timers: publish how far the store says they are handled.
    async fn follow(&mut self) -> Result<(), TimerError> {
        let shared = &self.shared;
        let now = shared.env.clock().now();
        let next = shared
            .store
            .next_due()
            .await
            .map_err(TimerError::store("reading the next due time"))?;
        shared.progress.publish(handled_through(now, next));
        shared.sweeps.send_modify(|n| *n = n.wrapping_add(1));
        Ok(())
    }
}

/// Fires every timer due at `now`, batch by batch. Returns the last error
/// when some firing failed (those timers stay pending, to be retried).
async fn sweep(shared: &Arc<Shared>, now: Timestamp) -> Result<Option<String>, TimerError> {
    let mut after: Option<(Timestamp, String)> = None;
    let mut failure = None;
    loop {
        let batch = shared
            .store
            .due(now, after.as_ref().map(|(d, n)| (*d, n.as_str())), SWEEP_BATCH)
            .await
            .map_err(TimerError::store("reading the due timers"))?;
        let full = batch.len() == SWEEP_BATCH;
        let Some(last) = batch.last() else { break };
        after = Some((last.due, last.name.clone()));
        let settled = fire_batch(shared, batch).await;
        for s in &settled {
            if let FiringOutcome::Failed { error } = &s.firing.outcome {
                if s.after == After::Block {
                    shared
                        .progress
                        .set_last_error(format!("timer `{}`: {error}", s.firing.name));
                } else {
                    failure = Some(format!("timer `{}`: {error}", s.firing.name));
                }
            }
        }
        shared
            .store
            .settle(settled)
            .await
            .map_err(TimerError::store("recording firings"))?;
        if !full {
            break;
        }
    }
    Ok(failure)
}

/// Fires a batch: each entity's timers one after the other in due order,
/// different entities at the same time.
async fn fire_batch(shared: &Arc<Shared>, batch: Vec<StoredTimer>) -> Vec<Settlement> {
    let mut groups: Vec<Vec<StoredTimer>> = Vec::new();
    let mut index: HashMap<(String, String), usize> = HashMap::new();
    for timer in batch {
        let key = (timer.entity_type.clone(), timer.entity_id.clone());
        let i = *index.entry(key).or_insert_with(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        groups[i].push(timer);
    }
    let mut tasks = tokio::task::JoinSet::new();
    for (i, group) in groups.into_iter().enumerate() {
        let shared = shared.clone();
        tasks.spawn(async move {
            let mut out = Vec::with_capacity(group.len());
            for timer in group {
                out.push(fire_one(&shared, timer).await);
            }
            (i, out)
        });
    }
    let mut done = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(group) => done.push(group),
            // A panicking command handler: its timers stay pending (tried again next sweep).
            Err(error) => tracing::error!(%error, "a timer firing task panicked"),
        }
    }
    done.sort_unstable_by_key(|(i, _)| *i);
    done.into_iter().flat_map(|(_, out)| out).collect()
}

async fn fire_one(shared: &Shared, timer: StoredTimer) -> Settlement {
    let command_id = crate::ids::timer_command_id(&timer.name, timer.due, timer.schedule_id);
    let fired_at = shared.env.clock().now();
    let (outcome, after) = match shared.decoders.get(&timer.entity_type, &timer.command_type) {
        Some(decoder) => {
            let first = decoder.fire(&shared.commands, &timer, command_id).await;
            let site = crate::inject::Site::TimerFired { name: &timer.name };
            match crate::inject::at(shared.faults.as_ref(), site) {
                // Fired again before the firing is recorded, as after a crash
                // at this point: the same command id, so the store answers.
                crate::inject::Injection::Duplicate => {
                    decoder.fire(&shared.commands, &timer, command_id).await
                }
                _ => first,
            }
        }
        None => (
            FiringOutcome::Failed {
                error: format!(
                    "no decoder for command `{command}` of entity `{entity}` in this process: register it with \
                     `App::builder().timer::<E, {command}>()` or `app.timers().register::<E, {command}>()`, \
                     where E is the entity type named `{entity}`",
                    command = timer.command_type,
                    entity = timer.entity_type,
                ),
            },
            After::Block,
        ),
    };
    match &outcome {
        FiringOutcome::Fired { version, .. } => {
            tracing::debug!(timer = %timer.name, entity = %timer.entity_type, id = %timer.entity_id, version, "timer fired");
        }
        FiringOutcome::Rejected { message } => {
            tracing::info!(timer = %timer.name, entity = %timer.entity_type, id = %timer.entity_id, %message,
                "the timer's command was rejected; the timer is done");
        }
        FiringOutcome::Failed { error } => {
            tracing::warn!(timer = %timer.name, entity = %timer.entity_type, id = %timer.entity_id, %error,
                "the timer could not fire; it stays pending");
        }
    }
    Settlement {
        schedule_id: timer.schedule_id,
        firing: Firing {
            name: timer.name,
            entity_type: timer.entity_type,
            entity_id: timer.entity_id,
            command_type: timer.command_type,
            due: timer.due,
            fired_at,
            command_id,
            outcome,
        },
        after,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handled_through_stops_short_of_a_due_timer() {
        let now = Timestamp::from_micros(100);
        assert_eq!(handled_through(now, None), 100);
        assert_eq!(handled_through(now, Some(Timestamp::from_micros(500))), 100);
        assert_eq!(handled_through(now, Some(Timestamp::from_micros(40))), 39);
        assert_eq!(handled_through(Timestamp::from_micros(-5), None), 0);
    }

    #[test]
    fn the_retry_delay_doubles_with_the_streak_up_to_a_ceiling() {
        let progress = Progress::new(0);
        assert_eq!(retry_delay(&progress), FIRST_RETRY);
        progress.failed(&"down");
        progress.failed(&"down");
        progress.failed(&"down");
        assert_eq!(retry_delay(&progress), FIRST_RETRY * 4);
        for _ in 0..20 {
            progress.failed(&"down");
        }
        assert_eq!(retry_delay(&progress), Duration::from_millis(25_600));
    }

    #[test]
    fn names_are_checked() {
        assert!(check_name("fee:acc-1").is_ok());
        assert!(matches!(check_name(""), Err(TimerError::InvalidName { .. })));
        let long = "x".repeat(MAX_NAME + 1);
        let err = check_name(&long).unwrap_err();
        assert!(err.to_string().contains("257 bytes"), "{err}");
    }
}
