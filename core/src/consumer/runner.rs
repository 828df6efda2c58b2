//! The consumer runner, a [`Process`] of the process layer: while it holds a
//! consumer's lease it reads the log after the checkpoint, runs the batch's
//! handlers (streams in parallel, each stream in order, retries with
//! backoff), commits the checkpoint with the batch's dead letters, and runs
//! the letters operators asked to redrive and the held ones nothing blocks
//! any more. [`Consumers`] is the subsystem an app holds; [`ConsumerHandle`]
//! one consumer's status and dead letters.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::{Notify, watch};

use super::backend::{ConsumerStore, ConsumerStoreError, DeadLetter, LetterState};
use super::memory::MemoryConsumerStore;
use super::{Consumer, ConsumerContext, ConsumerError, Handled, is_valid_consumer_name, registered};
use crate::command::Commands;
use crate::env::Env;
use crate::process::{Failure, Lease, Led, Process, Progress, Runners, Tail, WaitError};
use crate::store::RecordedEvent;
use crate::time::Timestamp;
use crate::timer::Timers;
use crate::unwind::Guarded;

/// The longest a runner waits for new events before it re-checks its lease
/// and the dead letters operators may have asked to redrive on another node.
const IDLE_WAIT: Duration = Duration::from_millis(500);
/// The longest wait between two runs of a failing handler.
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// The most open letters one redrive pass reads.
const SCAN_LIMIT: usize = 10_000;
/// How far back [`ConsumerStatus::rate`] looks.
const RATE_WINDOW: Duration = Duration::from_secs(10);

/// How an app keeps its consumers ([`AppBuilder::consumer_store`](crate::AppBuilder::consumer_store)).
pub(crate) struct ConsumerSettings {
    pub(crate) store: Option<Arc<dyn ConsumerStore>>,
    pub(crate) batch: usize,
}

impl Default for ConsumerSettings {
    fn default() -> Self {
        ConsumerSettings {
            store: None,
            batch: 256,
        }
    }
}

impl std::fmt::Debug for ConsumerSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsumerSettings")
            .field("store", &self.store.as_ref().map(|s| s.backend()))
            .field("batch", &self.batch)
            .finish()
    }
}

/// The consumers of one app: where their checkpoints and dead letters live,
/// and the ones running.
pub struct Consumers {
    env: Env,
    commands: Arc<Commands>,
    timers: Arc<Timers>,
    store: Option<Arc<dyn ConsumerStore>>,
    batch: usize,
    running: Mutex<HashMap<&'static str, Arc<Shared>>>,
    /// The runners' tasks and their stop signal: dropped with the app, or
    /// stopped by [`App::shutdown`](crate::App::shutdown).
    runners: Runners,
}

impl std::fmt::Debug for Consumers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumers")
            .field("store", &self.store.as_ref().map(|s| s.backend()))
            .field("running", &self.names())
            .finish_non_exhaustive()
    }
}

impl Consumers {
    pub(crate) fn new(
        env: Env,
        commands: Arc<Commands>,
        timers: Arc<Timers>,
        settings: ConsumerSettings,
    ) -> Self {
        let backend = env.store().backend();
        // A memory log gets memory checkpoints; a durable log needs a durable store.
        let store = settings.store.or_else(|| {
            (backend == "memory").then(|| Arc::new(MemoryConsumerStore::new()) as Arc<dyn ConsumerStore>)
        });
        Consumers {
            env,
            commands,
            timers,
            store,
            batch: settings.batch.max(1),
            running: Mutex::new(HashMap::new()),
            runners: Runners::default(),
        }
    }

    /// Stops every consumer's runner (each exits between batches, its
    /// checkpoint committed) and waits until they have.
    pub(crate) async fn stop(&self) {
        self.runners.stop().await;
    }

    /// Where checkpoints and dead letters are kept, or [`ConsumerError::NoStore`].
    pub fn store(&self) -> Result<&Arc<dyn ConsumerStore>, ConsumerError> {
        self.store.as_ref().ok_or(ConsumerError::NoStore {
            backend: self.env.store().backend(),
        })
    }

    /// The names of the running consumers, sorted.
    pub fn names(&self) -> Vec<&'static str> {
        let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let mut names: Vec<_> = running.keys().copied().collect();
        names.sort_unstable();
        names
    }

    /// The running consumer `name`.
    pub fn get(&self, name: &str) -> Result<ConsumerHandle, ConsumerError> {
        let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        running
            .get(name)
            .map(|shared| ConsumerHandle {
                shared: shared.clone(),
            })
            .ok_or_else(|| ConsumerError::Unknown {
                name: name.to_owned(),
            })
    }

    /// Starts `consumer` from its stored checkpoint (the start of the log for
    /// a new one) and returns its handle. Must be called inside a tokio
    /// runtime. Starting a consumer of the same type again returns the
    /// running one's handle; another type under the same name is refused.
    pub async fn start<C: Consumer>(&self, consumer: C) -> Result<ConsumerHandle, ConsumerError> {
        crate::event::check_catalogue()?;
        let rust_type = std::any::type_name::<C>();
        if !is_valid_consumer_name(C::NAME) {
            return Err(ConsumerError::InvalidName {
                name: C::NAME.to_owned(),
            });
        }
        if let Some(other) =
            registered().find(|r| r.name == C::NAME && !r.rust_type.ends_with(short(rust_type)))
        {
            return Err(ConsumerError::DuplicateName {
                name: C::NAME,
                first: other.rust_type,
                second: rust_type,
            });
        }
        if let Some(found) = self.running_as(C::NAME, rust_type) {
            return found;
        }
        let store = self.store()?.clone();
        let checkpoint = store
            .checkpoint(C::NAME)
            .await
            .map_err(ConsumerError::storage(C::NAME))?;
        let shared = Arc::new(Shared {
            name: C::NAME,
            rust_type,
            store: store.clone(),
            env: self.env.clone(),
            progress: Progress::new(checkpoint),
            wake: Notify::new(),
            scans: watch::channel(0).0,
            stats: Mutex::new(Stats::default()),
            handled: AtomicU64::new(0),
        });
        {
            let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(found) = running_as(&running, C::NAME, rust_type) {
                return found;
            }
            running.insert(C::NAME, shared.clone());
        }
        let runner = Runner {
            consumer: Arc::new(consumer),
            shared: shared.clone(),
            tail: Tail::new(self.env.store().clone(), self.batch),
            commands: self.commands.clone(),
            timers: self.timers.clone(),
            alive: self.runners.alive(),
            open: HashSet::new(),
        };
        self.runners.spawn(runner);
        Ok(ConsumerHandle { shared })
    }

    fn running_as(
        &self,
        name: &'static str,
        rust_type: &'static str,
    ) -> Option<Result<ConsumerHandle, ConsumerError>> {
        running_as(
            &self.running.lock().unwrap_or_else(|e| e.into_inner()),
            name,
            rust_type,
        )
    }
}

/// The type's name without its module path, to compare with a registration.
fn short(rust_type: &str) -> &str {
    rust_type.rsplit("::").next().unwrap_or(rust_type)
}

fn running_as(
    running: &HashMap<&'static str, Arc<Shared>>,
    name: &'static str,
    rust_type: &'static str,
) -> Option<Result<ConsumerHandle, ConsumerError>> {
    let shared = running.get(name)?;
    Some(if shared.rust_type == rust_type {
        Ok(ConsumerHandle {
            shared: shared.clone(),
        })
    } else {
        Err(ConsumerError::DuplicateName {
            name,
            first: shared.rust_type,
            second: rust_type,
        })
    })
}

/// What a consumer's runner and its handles share.
struct Shared {
    name: &'static str,
    rust_type: &'static str,
    store: Arc<dyn ConsumerStore>,
    env: Env,
    progress: Progress,
    /// Wakes the runner: an operator changed a letter.
    wake: Notify,
    /// Counts the runner's redrive passes, for [`ConsumerHandle::wait_idle`].
    scans: watch::Sender<u64>,
    stats: Mutex<Stats>,
    /// Events handled by this process's runner (letters included).
    handled: AtomicU64,
}

/// Recent batches, for the rate.
#[derive(Default)]
struct Stats {
    recent: VecDeque<(Instant, u64)>,
}

impl Stats {
    fn record(&mut self, handled: u64) {
        let now = Instant::now();
        self.recent.push_back((now, handled));
        while self
            .recent
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) > RATE_WINDOW)
        {
            self.recent.pop_front();
        }
    }

    fn rate(&self) -> f64 {
        let now = Instant::now();
        let total: u64 = self
            .recent
            .iter()
            .filter(|(at, _)| now.duration_since(*at) <= RATE_WINDOW)
            .map(|(_, n)| n)
            .sum();
        total as f64 / RATE_WINDOW.as_secs_f64()
    }
}

/// Where one consumer stands.
#[derive(Clone, Debug, PartialEq)]
pub struct ConsumerStatus {
    /// The consumer's name.
    pub name: &'static str,
    /// The last global position it handled.
    pub checkpoint: u64,
    /// The store's head position.
    pub head: u64,
    /// Events committed after the checkpoint (`head - checkpoint`).
    pub lag_events: u64,
    /// How long ago the oldest unhandled event was recorded (0 when caught up).
    pub lag_seconds: f64,
    /// Events per second handled by this node over the last 10 s.
    pub rate: f64,
    /// Events this node's runner handled since it started.
    pub handled: u64,
    /// True while this node runs the consumer (holds its lease).
    pub runner: bool,
    /// Dead letters by state, every state listed (0 when none).
    pub letters: Vec<(LetterState, u64)>,
    /// The runner's failure streak, if it is failing.
    pub failure: Option<Failure>,
    /// The last error a handler or the runner hit.
    pub last_error: Option<String>,
}

/// One running consumer: its status, its dead letters, and what operators do with them.
#[derive(Clone)]
pub struct ConsumerHandle {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for ConsumerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsumerHandle")
            .field("name", &self.shared.name)
            .field("progress", &self.shared.progress)
            .finish()
    }
}

impl ConsumerHandle {
    /// The consumer's name.
    pub fn name(&self) -> &'static str {
        self.shared.name
    }

    /// The last global position the consumer handled.
    pub fn checkpoint(&self) -> u64 {
        self.shared.progress.checkpoint()
    }

    /// Waits until the consumer has handled the log up to `position` (moved
    /// its checkpoint there; events it parked or held count as handled).
    /// Fails with [`ConsumerError::Failing`] once this node's runner failed
    /// [`FAILURES_BEFORE_WAIT_FAILS`](crate::process::FAILURES_BEFORE_WAIT_FAILS) times in a row at one checkpoint.
    pub async fn wait_for(&self, position: u64) -> Result<(), ConsumerError> {
        let consumer = self.shared.name;
        self.shared
            .progress
            .wait_for(position)
            .await
            .map_err(|e| match e {
                WaitError::Stopped => ConsumerError::Stopped { consumer },
                WaitError::Failing(failure) => ConsumerError::Failing { consumer, failure },
            })
    }

    /// Waits until everything committed by now is handled, and (when this
    /// node runs the consumer) the letters asked to redrive, and the held ones
    /// nothing blocks, have run. Never sleeps on time: it wakes on the runner.
    pub async fn wait_idle(&self) -> Result<(), ConsumerError> {
        let head = self
            .shared
            .env
            .store()
            .head()
            .await
            .map_err(|source| ConsumerError::Log {
                consumer: self.shared.name,
                position: 0,
                source,
            })?;
        self.wait_for(head).await?;
        // Right after a start the first lease attempt may not have been made:
        // "not the runner" then would skip the redrive pass this node is about to run.
        if self.shared.progress.wait_role_known().await.is_err() {
            return Err(ConsumerError::Stopped {
                consumer: self.shared.name,
            });
        }
        if self.shared.progress.is_runner() {
            // A pass that began before this call may have missed a change made just
            // before it: wait for one that began after.
            let mut scans = self.shared.scans.subscribe();
            let start = *scans.borrow_and_update();
            while *scans.borrow_and_update() < start + 2 {
                // Each wake is one pass sooner than the runner's idle bound.
                self.shared.wake.notify_one();
                if scans.changed().await.is_err() {
                    return Err(ConsumerError::Stopped {
                        consumer: self.shared.name,
                    });
                }
            }
        }
        Ok(())
    }

    /// The consumer's dead letters in position order, only those in `states` when given.
    pub async fn dead_letters(
        &self,
        states: Option<&[LetterState]>,
    ) -> Result<Vec<DeadLetter>, ConsumerError> {
        super::operate::dead_letters(&*self.shared.store, self.shared.name, states).await
    }

    /// Asks the runner to run the parked event at `position` again (its
    /// commands keep their ids, so what already committed is not repeated).
    /// Returns once the request is stored; [`wait_idle`](ConsumerHandle::wait_idle) waits for the run.
    pub async fn redrive(&self, position: u64) -> Result<(), ConsumerError> {
        let now = self.shared.env.clock().now();
        super::operate::redrive(&*self.shared.store, self.shared.name, position, now).await?;
        self.shared.wake.notify_one();
        Ok(())
    }

    /// Asks for every parked event to run again; returns how many.
    pub async fn redrive_all(&self) -> Result<usize, ConsumerError> {
        let now = self.shared.env.clock().now();
        let count = super::operate::redrive_all(&*self.shared.store, self.shared.name, now).await?;
        self.shared.wake.notify_one();
        Ok(count)
    }

    /// Gives up the parked or held event at `position`, for `reason` (kept
    /// with the letter). Events held behind it then run.
    pub async fn discard(&self, position: u64, reason: &str) -> Result<(), ConsumerError> {
        let now = self.shared.env.clock().now();
        super::operate::discard(&*self.shared.store, self.shared.name, position, reason, now).await?;
        self.shared.wake.notify_one();
        Ok(())
    }

    /// Where the consumer stands: checkpoint, lag in events and seconds,
    /// rate, letters by state, failures.
    pub async fn status(&self) -> Result<ConsumerStatus, ConsumerError> {
        let shared = &self.shared;
        let log = |source| ConsumerError::Log {
            consumer: shared.name,
            position: 0,
            source,
        };
        let checkpoint = shared.progress.checkpoint();
        let head = shared.env.store().head().await.map_err(log)?;
        let lag_seconds = if head > checkpoint {
            let next = shared
                .env
                .store()
                .read_all(checkpoint + 1, 1)
                .await
                .map_err(log)?;
            next.first().map_or(0.0, |e| {
                shared
                    .env
                    .clock()
                    .now()
                    .since(e.metadata.recorded_at)
                    .as_secs_f64()
            })
        } else {
            0.0
        };
        let mut counts: HashMap<LetterState, u64> = HashMap::new();
        for letter in self.dead_letters(None).await? {
            *counts.entry(letter.state).or_default() += 1;
        }
        Ok(ConsumerStatus {
            name: shared.name,
            checkpoint,
            head,
            lag_events: head.saturating_sub(checkpoint),
            lag_seconds,
            rate: shared.stats.lock().unwrap_or_else(|e| e.into_inner()).rate(),
            handled: shared.handled.load(Ordering::Relaxed),
            runner: shared.progress.is_runner(),
            letters: LetterState::ALL
                .into_iter()
                .map(|s| (s, counts.get(&s).copied().unwrap_or(0)))
                .collect(),
            failure: shared.progress.failure(),
            last_error: shared.progress.last_error(),
        })
    }
}

/// One consumer's runner, driven by the process layer's supervisor.
struct Runner<C: Consumer> {
    consumer: Arc<C>,
    shared: Arc<Shared>,
    tail: Tail,
    commands: Arc<Commands>,
    timers: Arc<Timers>,
    alive: watch::Receiver<()>,
    /// Streams with an open letter (parked, held, redrive): later events of
    /// these are held too, unless the consumer is order-independent.
    open: HashSet<(String, String)>,
}

#[async_trait]
impl<C: Consumer> Process for Runner<C> {
    type Error = ConsumerError;

    fn name(&self) -> &'static str {
        C::NAME
    }

    fn progress(&self) -> &Progress {
        &self.shared.progress
    }

    fn is_closed(&self) -> bool {
        self.alive.has_changed().is_err()
    }

    async fn hold_off(&mut self) -> Result<Option<String>, ConsumerError> {
        Ok(None)
    }

    async fn try_lease(&mut self) -> Result<Option<Box<dyn Lease>>, ConsumerError> {
        self.shared
            .store
            .try_lease(C::NAME)
            .await
            .map_err(ConsumerError::storage(C::NAME))
    }

    async fn lead(&mut self, lease: &dyn Lease) -> Result<Led, ConsumerError> {
        Runner::lead(self, lease).await
    }

    /// Another node runs the consumer: follow its checkpoint.
    async fn follow(&mut self) -> Result<(), ConsumerError> {
        let checkpoint = self
            .shared
            .store
            .checkpoint(C::NAME)
            .await
            .map_err(ConsumerError::storage(C::NAME))?;
        self.shared.progress.publish(checkpoint);
        Ok(())
    }
}

/// What became of one event's handler runs.
enum Outcome {
    Done,
    Skipped(String),
    Parked(String),
}

impl<C: Consumer> Runner<C> {
    fn storage(&self) -> impl FnOnce(ConsumerStoreError) -> ConsumerError {
        ConsumerError::storage(C::NAME)
    }

    async fn lead(&mut self, lease: &dyn Lease) -> Result<Led, ConsumerError> {
        let mut checkpoint = self
            .shared
            .store
            .checkpoint(C::NAME)
            .await
            .map_err(self.storage())?;
        self.shared.progress.publish(checkpoint);
        let mut scan = true;
        loop {
            if lease.is_lost() {
                return Ok(Led::LeaseLost);
            }
            if self.alive.has_changed().is_err() {
                return Ok(Led::Exit);
            }
            if scan {
                self.redrive_pass().await?;
                self.shared.scans.send_modify(|n| *n += 1);
                scan = false;
            }
            // A corrupt record of a type this consumer does not handle is stepped over.
            let batch = self
                .tail
                .read_for(checkpoint, |event_type| C::EVENT_TYPES.contains(&event_type))
                .await
                .map_err(|source| ConsumerError::Log {
                    consumer: C::NAME,
                    position: checkpoint + 1,
                    source,
                })?;
            let (records, to) = (batch.events, batch.through);
            if to == checkpoint {
                tokio::select! {
                    waited = self.tail.wait(IDLE_WAIT) => waited.map_err(|source| ConsumerError::Log {
                        consumer: C::NAME,
                        position: checkpoint + 1,
                        source,
                    })?,
                    () = self.shared.wake.notified() => {}
                    _ = self.alive.changed() => return Ok(Led::Exit),
                }
                // New events, an operator's request, or the idle bound (a request
                // made on another node): look at the letters again.
                scan = true;
                continue;
            }
            let (letters, handled) = self.run_batch(records).await?;
            let parked = letters.iter().filter(|l| l.state == LetterState::Parked).count();
            crate::fault::point("consumer.commit.before")
                .map_err(|f| ConsumerError::storage(C::NAME)(f.into()))?;
            match self.shared.store.commit(C::NAME, checkpoint, to, letters).await {
                Ok(()) => checkpoint = to,
                Err(ConsumerStoreError::CheckpointMoved { found, .. }) => {
                    // Another runner got there first: its effects stand (and ours are
                    // de-duplicated commands); continue from where it is.
                    tracing::warn!(
                        consumer = C::NAME,
                        expected = checkpoint,
                        found,
                        "checkpoint moved under us"
                    );
                    checkpoint = found;
                    scan = true;
                    continue;
                }
                Err(e) => return Err(ConsumerError::storage(C::NAME)(e)),
            }
            crate::fault::point("consumer.commit.after")
                .map_err(|f| ConsumerError::storage(C::NAME)(f.into()))?;
            self.shared.handled.fetch_add(handled, Ordering::Relaxed);
            self.shared
                .stats
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .record(handled);
            tracing::debug!(
                consumer = C::NAME,
                checkpoint,
                handled,
                parked,
                "consumer batch committed"
            );
            self.shared.progress.publish(checkpoint);
            self.shared.progress.progressed();
        }
    }

    /// Runs the handlers of one batch; returns the letters to record with its
    /// checkpoint and how many events were handled.
    async fn run_batch(
        &mut self,
        records: Vec<RecordedEvent>,
    ) -> Result<(Vec<DeadLetter>, u64), ConsumerError> {
        let mut streams: Vec<((String, String), Vec<RecordedEvent>)> = Vec::new();
        let mut index: HashMap<(String, String), usize> = HashMap::new();
        for record in records {
            if !C::EVENT_TYPES.contains(&record.event_type.as_str()) {
                continue;
            }
            let key = (record.stream_type.clone(), record.stream_id.clone());
            match index.get(&key) {
                Some(&i) => streams[i].1.push(record),
                None => {
                    index.insert(key.clone(), streams.len());
                    streams.push((key, vec![record]));
                }
            }
        }
        let now = self.shared.env.clock().now();
        let mut letters = Vec::new();
        let mut handled = 0;
        let mut tasks = tokio::task::JoinSet::new();
        for (key, events) in streams {
            handled += events.len() as u64;
            if !C::ORDER_INDEPENDENT && self.open.contains(&key) {
                for record in events {
                    letters.push(held(
                        C::NAME,
                        &record,
                        now,
                        "an earlier event of its stream is a dead letter",
                    ));
                }
                continue;
            }
            let runner = self.context_parts();
            tasks.spawn(async move {
                let mut letters = Vec::new();
                let mut blocked: Option<u64> = None;
                for record in events {
                    if let Some(behind) = blocked {
                        letters.push(held(
                            C::NAME,
                            &record,
                            now,
                            &format!("waits behind the parked event at position {behind}"),
                        ));
                        continue;
                    }
                    let (outcome, attempts) = runner.run(&record, 0).await;
                    match outcome {
                        Outcome::Done => {}
                        Outcome::Skipped(reason) => letters.push(letter(
                            C::NAME,
                            &record,
                            LetterState::Skipped,
                            attempts,
                            reason,
                            now,
                        )),
                        Outcome::Parked(error) => {
                            tracing::warn!(
                                consumer = C::NAME,
                                position = record.position,
                                stream_type = %record.stream_type,
                                stream_id = %record.stream_id,
                                version = record.version,
                                event_type = %record.event_type,
                                attempts,
                                %error,
                                "event parked as a dead letter"
                            );
                            if !C::ORDER_INDEPENDENT {
                                blocked = Some(record.position);
                            }
                            letters.push(letter(
                                C::NAME,
                                &record,
                                LetterState::Parked,
                                attempts,
                                error,
                                now,
                            ));
                        }
                    }
                }
                letters
            });
        }
        while let Some(done) = tasks.join_next().await {
            match done {
                Ok(more) => letters.extend(more),
                Err(e) => {
                    return Err(ConsumerError::Storage {
                        consumer: C::NAME.to_owned(),
                        source: ConsumerStoreError::Corrupt {
                            backend: "runner",
                            detail: format!("a handler task ended abnormally: {e}"),
                        },
                    });
                }
            }
        }
        for l in &letters {
            if !C::ORDER_INDEPENDENT && l.state.is_open() {
                self.open.insert((l.stream_type.clone(), l.stream_id.clone()));
            }
        }
        if let Some(last) = letters.iter().find(|l| l.state == LetterState::Parked) {
            self.shared.progress.set_last_error(format!(
                "consumer {}: parked the event at position {} ({}/{} version {}): {}",
                C::NAME,
                last.position,
                last.stream_type,
                last.stream_id,
                last.version,
                last.error
            ));
        }
        letters.sort_by_key(|l| l.position);
        Ok((letters, handled))
    }

    fn context_parts(&self) -> Handler<C> {
        Handler {
            consumer: self.consumer.clone(),
            commands: self.commands.clone(),
            timers: self.timers.clone(),
            env: self.shared.env.clone(),
        }
    }

    /// Runs the open letters that may run: those asked to redrive, and the
    /// held ones with nothing open before them in their stream (all of them
    /// in position order per stream). Refreshes the set of blocked streams.
    async fn redrive_pass(&mut self) -> Result<(), ConsumerError> {
        let open_states = [LetterState::Parked, LetterState::Held, LetterState::Redrive];
        let letters = self
            .shared
            .store
            .letters(C::NAME, Some(&open_states), None, SCAN_LIMIT)
            .await
            .map_err(self.storage())?;
        let mut streams: Vec<((String, String), Vec<DeadLetter>)> = Vec::new();
        for l in letters {
            let key = (l.stream_type.clone(), l.stream_id.clone());
            match streams.iter_mut().find(|(k, _)| *k == key) {
                Some((_, v)) => v.push(l),
                None => streams.push((key, vec![l])),
            }
        }
        self.open.clear();
        let handler = self.context_parts();
        for (key, letters) in streams {
            // Order-dependent: nothing runs behind a letter that stays open.
            let mut blocked = false;
            let mut still_open = false;
            for mut l in letters {
                let runnable = match l.state {
                    LetterState::Redrive => C::ORDER_INDEPENDENT || !blocked,
                    LetterState::Held => !blocked,
                    _ => false,
                };
                if !runnable {
                    still_open = true;
                    blocked |= !C::ORDER_INDEPENDENT;
                    continue;
                }
                let record = self.read_event(&l).await?;
                let expected = l.state;
                let (outcome, attempts) = handler.run(&record, l.attempts).await;
                l.attempts = attempts;
                l.updated_at = self.shared.env.clock().now();
                match outcome {
                    Outcome::Done => {
                        l.state = LetterState::Resolved;
                        tracing::info!(consumer = C::NAME, position = l.position, "dead letter resolved");
                    }
                    Outcome::Skipped(reason) => {
                        l.state = LetterState::Skipped;
                        l.error = reason;
                    }
                    Outcome::Parked(error) => {
                        l.state = LetterState::Parked;
                        l.error = error;
                        still_open = true;
                        blocked |= !C::ORDER_INDEPENDENT;
                    }
                }
                self.shared.handled.fetch_add(1, Ordering::Relaxed);
                match self.shared.store.update(l, expected).await {
                    Ok(()) => {}
                    // An operator changed it meanwhile (a discard): theirs stands.
                    Err(ConsumerStoreError::LetterMoved { .. } | ConsumerStoreError::NoLetter { .. }) => {}
                    Err(e) => return Err(ConsumerError::storage(C::NAME)(e)),
                }
            }
            if still_open {
                self.open.insert(key);
            }
        }
        Ok(())
    }

    /// The event a letter is of, checked against the letter.
    async fn read_event(&self, letter: &DeadLetter) -> Result<RecordedEvent, ConsumerError> {
        let log = |source| ConsumerError::Log {
            consumer: C::NAME,
            position: letter.position,
            source,
        };
        let found = self
            .shared
            .env
            .store()
            .read_all(letter.position, 1)
            .await
            .map_err(log)?
            .into_iter()
            .next()
            .filter(|r| r.position == letter.position && r.metadata.event_id == letter.event_id);
        found.ok_or_else(|| {
            ConsumerError::storage(C::NAME)(ConsumerStoreError::Corrupt {
                backend: self.shared.store.backend(),
                detail: format!(
                    "consumer {}: the dead letter at position {} names event {}, which the log does not hold there",
                    C::NAME, letter.position, letter.event_id
                ),
            })
        })
    }
}

/// What a handler run needs, cloned into each stream's task.
struct Handler<C> {
    consumer: Arc<C>,
    commands: Arc<Commands>,
    timers: Arc<Timers>,
    env: Env,
}

impl<C: Consumer> Handler<C> {
    /// Runs the handler on `record` until it is done, skipped, or parked
    /// (after [`Consumer::MAX_ATTEMPTS`] runs); returns what came of it and
    /// the letter's runs in all, `attempts_before` included.
    async fn run(&self, record: &RecordedEvent, attempts_before: u32) -> (Outcome, u32) {
        let max = C::MAX_ATTEMPTS.max(1);
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            let total = attempts_before.saturating_add(attempt);
            let mut ctx = ConsumerContext {
                consumer: C::NAME,
                record: record.clone(),
                attempt: total,
                sends: 0,
                commands: self.commands.clone(),
                timers: self.timers.clone(),
                clock: self.env.clock().clone(),
            };
            let handled = match Guarded::new(self.consumer.handle(&mut ctx)).await {
                Ok(handled) => handled,
                Err(message) => Handled::Retry(format!("the handler panicked: {message}")),
            };
            match handled {
                Handled::Done => return (Outcome::Done, total),
                Handled::Skip(reason) => {
                    tracing::info!(consumer = C::NAME, position = record.position, %reason, "event skipped by its handler");
                    return (Outcome::Skipped(reason), total);
                }
                Handled::Park(error) => return (Outcome::Parked(error), total),
                Handled::Retry(error) if attempt >= max => return (Outcome::Parked(error), total),
                Handled::Retry(error) => {
                    tracing::debug!(consumer = C::NAME, position = record.position, attempt, %error, "handler failed; retrying");
                    let doublings = (attempt - 1).min(16);
                    let wait = C::BACKOFF.saturating_mul(1 << doublings).min(MAX_BACKOFF);
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }
}

fn letter(
    consumer: &str,
    record: &RecordedEvent,
    state: LetterState,
    attempts: u32,
    error: String,
    now: Timestamp,
) -> DeadLetter {
    DeadLetter {
        consumer: consumer.to_owned(),
        position: record.position,
        stream_type: record.stream_type.clone(),
        stream_id: record.stream_id.clone(),
        version: record.version,
        event_type: record.event_type.clone(),
        event_id: record.metadata.event_id,
        state,
        attempts,
        error,
        reason: None,
        recorded_at: now,
        updated_at: now,
    }
}

fn held(consumer: &str, record: &RecordedEvent, now: Timestamp, why: &str) -> DeadLetter {
    letter(consumer, record, LetterState::Held, 0, why.to_owned(), now)
}
