//! The whole-app simulation: an app's entities, timers and workflows run
//! together on virtual time, driven by a seeded schedule of operations, with
//! crashes, duplicate deliveries and step failures injected, and the user's
//! invariants checked after every scheduling step.
//!
//! What a run promises:
//! - **Seeded.** The operations, their choices, the time advances and every
//!   fault come from the run's seed. A fault is decided by hashing the seed
//!   with the place it strikes (the instance, step, sequence number, attempt
//!   and call, or the timer, or the operation's command) and the app's
//!   incarnation, so it does not depend on the order tasks happen to run in.
//!   That order is the runtime's: run the simulation on a current-thread
//!   runtime (`#[tokio::test]`'s default), where it repeats in practice, and
//!   [`Simulation::seed`] with [`runs(1)`](Simulation::runs) replays a
//!   failing run's fault trace (`tests/tests/simulation.rs` checks the
//!   replay). It is not a proof: tokio's `select!` picks among ready
//!   branches at random, so two tasks racing at one instant may swap.
//! - **Crashes lose what a crash loses.** A crash strikes inside a step's
//!   attempt — before it runs, after any of its entity calls, or after its
//!   effects and before its result is recorded. The attempt stops there for
//!   good, every other attempt of the app is stopped, the app is dropped, and
//!   once its runners have stopped a new app is opened over the same event
//!   and timer stores: only what the stores kept survives.
//! - **Duplicates.** A step's call re-sent under its command id, a step run a
//!   second time after its effects (the second run's result is recorded), a
//!   timer's command sent twice under its id, an operation's command re-sent
//!   under its id ([`Turn::send`], [`Turn::start`], [`Turn::signal`]).
//! - **Failures.** A step's attempt fails before it runs or after its effects
//!   (as if the reply were lost), and the workflow's retries take over.
//! - **Invariants** ([`Simulation::invariant`]) are checked after the setup,
//!   after every operation and every time advance once the app is quiet (no
//!   step attempt to run, no timer due), and after the final drain, which
//!   moves the time to each pending timer until none is left; then the
//!   end checks ([`Simulation::at_end`]).
//!
//! What it does not cover: views and consumers are not started by the
//! simulation (an invariant may start and read them); the stores are the
//! memory ones, so a crash inside a store's write is not simulated (the
//! SQLite and PostgreSQL kill tests cover that); two nodes at once are not
//! simulated.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::watch;
use uuid::Uuid;

use crate::app::{App, AppBuilder};
use crate::command::{CommandError, Committed, SendOptions};
use crate::entity::Entity;
use crate::inject::{Attempt, Faults, Injection, Site};
use crate::store::{EventStore, MemoryStore};
use crate::timer::{MemoryTimerStore, TimerStore};
use crate::workflow::{Instance, InstanceCommand, InstanceError, Workflow};

use super::{DEFAULT_NOW, VirtualTime};

/// What a setup, an operation or an invariant returns: `Err` with any error
/// (`?` works on the app's errors; `Err(format!(..).into())` for a violation).
pub type Check = Result<(), Box<dyn std::error::Error + Send + Sync>>;

type BoxFuture = Pin<Box<dyn Future<Output = Check>>>;
type AppFn = Box<dyn Fn(App) -> BoxFuture>;
type TurnFn = Box<dyn Fn(Turn) -> BoxFuture>;
type BuildFn = Box<dyn Fn(AppBuilder) -> AppBuilder>;
type OpenFn = Box<dyn Fn(&App)>;

/// How many times the final drain moves the time before it gives up.
pub const MAX_DRAIN_ADVANCES: u32 = 10_000;

/// Starts a simulation; configure it, then [`run`](Simulation::run) it.
///
/// ```rust,standalone_crate
/// use std::time::Duration;
/// use factum::prelude::*;
/// use factum::testkit::{simulate, Turn};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Clone, Debug)] pub struct Add { pub n: u64 }
/// #[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)] pub struct Added { pub n: u64 }
/// #[derive(Default, Clone, Debug)] pub struct Counter { pub total: u64 }
/// #[entity] impl Counter {
///     #[handle] fn add(&self, c: Add) -> Added { Added { n: c.n } }
///     #[apply] fn added(&mut self, e: &Added) { self.total += e.n }
/// }
///
/// // Adds 1 to the counter `c`, as a workflow step.
/// #[derive(Clone, Debug)] pub struct Bump;
/// #[derive(Default, Clone, Debug, Serialize, Deserialize)] pub struct Bumper;
/// #[workflow(name = "bumper")] impl Bumper {
///     #[start] fn start(&self, _c: Bump) -> Then<Self> { Then::to(Self::bump, ()) }
///     #[step(max_retries = 5)]
///     async fn bump(&self, ctx: &StepContext) -> Result<Then<Self>, CommandError<std::convert::Infallible>> {
///         ctx.send::<Counter>("c", Add { n: 1 }).await?;
///         Ok(Then::end())
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let report = simulate()
///     .seed(1)
///     .runs(20)
///     .operations(5)
///     .crash_probability(0.1)
///     .duplicate_probability(0.2)
///     .operation("start a bumper", |turn: Turn| async move {
///         turn.start::<Bumper>(&format!("b{}", turn.number()), Bump).await?;
///         Ok(())
///     })
///     .invariant("the counter counts each bumper once", |app: App| async move {
///         let total = app.entity::<Counter>("c").state().await?.total;
///         let ended = app.workflows().list(Some(factum::workflow::StatusKind::Ended)).await?.len();
///         let started = app.workflows().list(None).await?.len();
///         if total < ended as u64 || total > started as u64 {
///             return Err(format!("{total} added for {ended} ended of {started} bumpers").into());
///         }
///         Ok(())
///     })
///     .run()
///     .await
///     .unwrap_or_else(|failure| panic!("{failure}"));
/// assert_eq!(report.runs, 20);
/// # }
/// ```
pub fn simulate() -> Simulation {
    Simulation {
        seed: 0,
        runs: 1,
        operations: 20,
        crash: 0.0,
        duplicate: 0.0,
        failure: 0.0,
        max_crashes: 10,
        time_step: Duration::from_secs(60),
        build: None,
        on_open: None,
        setup: None,
        ops: Vec::new(),
        invariants: Vec::new(),
        at_end: Vec::new(),
    }
}

/// A configured simulation (see [`simulate`]).
#[must_use = "a simulation does nothing until `.run().await`"]
pub struct Simulation {
    seed: u64,
    runs: u32,
    operations: u32,
    crash: f64,
    duplicate: f64,
    failure: f64,
    max_crashes: u32,
    time_step: Duration,
    build: Option<BuildFn>,
    on_open: Option<OpenFn>,
    setup: Option<AppFn>,
    ops: Vec<(&'static str, TurnFn)>,
    invariants: Vec<(&'static str, AppFn)>,
    at_end: Vec<(&'static str, AppFn)>,
}

impl Simulation {
    /// The first run's seed (default 0); run `k` uses `seed + k`. A failure
    /// names its seed: `.seed(s).runs(1)` replays it.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// How many runs, each on its own seed and fresh stores (default 1).
    pub fn runs(mut self, runs: u32) -> Self {
        self.runs = runs;
        self
    }

    /// How many operations each run performs (default 20).
    pub fn operations(mut self, operations: u32) -> Self {
        self.operations = operations;
        self
    }

    /// The chance of a crash at each site of a step's attempt: before it runs,
    /// after each entity call, after its effects (default 0).
    pub fn crash_probability(mut self, p: f64) -> Self {
        self.crash = p.clamp(0.0, 1.0);
        self
    }

    /// The chance of a duplicate delivery at each site: a step's call, a
    /// step's run, a timer's firing, an operation's command (default 0).
    pub fn duplicate_probability(mut self, p: f64) -> Self {
        self.duplicate = p.clamp(0.0, 1.0);
        self
    }

    /// The chance that a step's attempt fails before it runs, and again that
    /// it fails after its effects (default 0).
    pub fn failure_probability(mut self, p: f64) -> Self {
        self.failure = p.clamp(0.0, 1.0);
        self
    }

    /// The most crashes in one run (default 10), so every run ends.
    pub fn max_crashes(mut self, crashes: u32) -> Self {
        self.max_crashes = crashes;
        self
    }

    /// The largest advance of the virtual time between two operations
    /// (default 1 minute); each advance is drawn from the seed, half of them 0.
    pub fn time_step(mut self, step: Duration) -> Self {
        self.time_step = step;
        self
    }

    /// Configures each app the simulation opens (its timer registrations, say);
    /// the simulation sets the stores and the clock.
    pub fn build(mut self, build: impl Fn(AppBuilder) -> AppBuilder + 'static) -> Self {
        self.build = Some(Box::new(build));
        self
    }

    /// Runs on every app the simulation opens: the first of a run and each
    /// one after a crash (to hand it to a service the steps call, say). Keep
    /// no `App` beyond it: a crash drops the app, and one kept alive would
    /// keep its runners going beside the new app's.
    pub fn on_open(mut self, on_open: impl Fn(&App) + 'static) -> Self {
        self.on_open = Some(Box::new(on_open));
        self
    }

    /// Runs once at the start of each run, without faults (opening accounts, say).
    pub fn setup<F, Fut>(mut self, setup: F) -> Self
    where
        F: Fn(App) -> Fut + 'static,
        Fut: Future<Output = Check> + 'static,
    {
        self.setup = Some(Box::new(move |app| Box::pin(setup(app))));
        self
    }

    /// An operation the schedule picks from (each with the same chance). It
    /// gets a [`Turn`]: the app, a seeded random source, and sends whose
    /// duplicates the simulation injects. An `Err` fails the run.
    pub fn operation<F, Fut>(mut self, name: &'static str, operation: F) -> Self
    where
        F: Fn(Turn) -> Fut + 'static,
        Fut: Future<Output = Check> + 'static,
    {
        self.ops
            .push((name, Box::new(move |turn| Box::pin(operation(turn)))));
        self
    }

    /// A property that must hold whenever the app is quiet: after the setup,
    /// every operation, every time advance and the drain.
    pub fn invariant<F, Fut>(mut self, name: &'static str, check: F) -> Self
    where
        F: Fn(App) -> Fut + 'static,
        Fut: Future<Output = Check> + 'static,
    {
        self.invariants
            .push((name, Box::new(move |app| Box::pin(check(app)))));
        self
    }

    /// A property that must hold at the end of a run, once every timer has
    /// fired ("every transfer ends").
    pub fn at_end<F, Fut>(mut self, name: &'static str, check: F) -> Self
    where
        F: Fn(App) -> Fut + 'static,
        Fut: Future<Output = Check> + 'static,
    {
        self.at_end
            .push((name, Box::new(move |app| Box::pin(check(app)))));
        self
    }

    /// Runs every seed; stops at the first failing run.
    pub async fn run(self) -> Result<SimulationReport, SimulationFailure> {
        let mut report = SimulationReport::default();
        for k in 0..self.runs {
            let seed = self.seed.wrapping_add(u64::from(k));
            let mut run = Run::new(&self, seed);
            let result = run.go().await;
            let plan = run.plan.clone();
            drop(run);
            let state = plan.lock();
            match result {
                Ok(()) => {
                    report.runs += 1;
                    report.operations += u64::from(self.operations);
                    report.crashes += u64::from(state.crashes);
                    report.duplicates += state.duplicates;
                    report.failures += state.failures;
                }
                Err(problem) => {
                    return Err(SimulationFailure {
                        seed,
                        run: k + 1,
                        runs: self.runs,
                        problem,
                        trace: state.trace.clone(),
                    });
                }
            }
        }
        Ok(report)
    }
}

/// What the runs of a passing simulation did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SimulationReport {
    /// The runs, all passed.
    pub runs: u32,
    /// The operations performed.
    pub operations: u64,
    /// The crashes injected (each followed by a new app).
    pub crashes: u64,
    /// The duplicate deliveries injected.
    pub duplicates: u64,
    /// The step failures injected.
    pub failures: u64,
}

/// A failing run: its seed, what failed, and its schedule and faults.
#[derive(Clone, Debug)]
pub struct SimulationFailure {
    /// The run's seed: `.seed(seed).runs(1)` replays it.
    pub seed: u64,
    /// The run, from 1.
    pub run: u32,
    /// Of how many.
    pub runs: u32,
    /// What failed.
    pub problem: Problem,
    /// The run's schedule and faults, in order, up to the failure.
    pub trace: Vec<String>,
}

/// What failed in a run.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// An invariant (or an end check) did not hold.
    #[error("invariant `{name}` does not hold {when}: {message}")]
    Violated {
        /// The invariant's name.
        name: &'static str,
        /// When it was checked (`after operation 4 (transfer)`).
        when: String,
        /// Its error.
        message: String,
    },
    /// An operation (or the setup) returned an error.
    #[error("{what} failed: {message}")]
    Operation {
        /// `operation 4 (transfer)`, `the setup`.
        what: String,
        /// Its error.
        message: String,
    },
    /// The app could not be brought to a quiet state (a runner failing, timers undecodable).
    #[error("the app did not settle {when}: {message}")]
    Unsettled {
        /// When.
        when: String,
        /// Why.
        message: String,
    },
}

impl fmt::Display for SimulationFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "simulation failed on seed {} (run {} of {}): {}",
            self.seed, self.run, self.runs, self.problem
        )?;
        writeln!(
            f,
            "replay it with `.seed({}).runs(1)`; its schedule and faults:",
            self.seed
        )?;
        for (i, line) in self.trace.iter().enumerate() {
            writeln!(f, "  {:>4}. {line}", i + 1)?;
        }
        Ok(())
    }
}

impl std::error::Error for SimulationFailure {}

/// One operation's view of the run: the app, a seeded random source, and
/// sends under command ids derived from the seed, which the simulation may
/// deliver twice.
pub struct Turn {
    app: App,
    rng: Rng,
    number: u32,
    plan: Arc<Plan>,
    sends: std::sync::atomic::AtomicU64,
}

impl fmt::Debug for Turn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Turn")
            .field("number", &self.number)
            .finish_non_exhaustive()
    }
}

impl Turn {
    /// The app as it is now (a crash since the last operation opened a new one).
    pub fn app(&self) -> &App {
        &self.app
    }

    /// The operation's number in the run, from 0: unique, for ids.
    pub fn number(&self) -> u32 {
        self.number
    }

    /// A number in `0..n` from the seed (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.rng.below(n)
    }

    /// True with chance `p`, from the seed.
    pub fn chance(&mut self, p: f64) -> bool {
        self.rng.unit() < p
    }

    /// One of `items`, from the seed; `None` when there are none.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        let i = self.rng.below(items.len() as u64);
        items.get(usize::try_from(i).ok()?)
    }

    /// The command id of this operation's next send, and counts it.
    fn next_command_id(&self) -> (u64, Uuid) {
        let k = self.sends.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let high = hash(self.plan.seed, &format!("command {} {k}", self.number));
        let low = hash(
            self.plan.seed ^ 0x9e37_79b9_7f4a_7c15,
            &format!("command {} {k}", self.number),
        );
        (k, Uuid::from_u64_pair(high, low))
    }

    fn duplicate(&self, k: u64, what: &str) -> bool {
        self.plan
            .duplicate_command(&format!("{what} (send {k} of operation {})", self.number))
    }

    /// Sends `command` to entity `E` `id` under a command id derived from the
    /// seed; the simulation may send it twice under that id (the answer is
    /// the second send's, which the store gives from the first).
    pub async fn send<E: Entity>(
        &self,
        id: &str,
        command: impl Into<E::Command>,
    ) -> Result<Committed<E>, CommandError<E::Error>> {
        let (k, command_id) = self.next_command_id();
        let entity = self.app.entity::<E>(id);
        let options = SendOptions {
            command_id: Some(command_id),
            ..SendOptions::default()
        };
        let command = command.into();
        let first = entity.send_with(command.clone(), options).await;
        if self.duplicate(k, &format!("{}/{id} {command:?}", E::NAME)) {
            return entity.send_with(command, options).await;
        }
        first
    }

    /// Starts workflow `W`'s instance `id`, as [`send`](Turn::send) sends.
    pub async fn start<W: Workflow>(
        &self,
        id: &str,
        command: impl Into<W::Start>,
    ) -> Result<Committed<Instance<W>>, InstanceError<W>> {
        self.send::<Instance<W>>(id, InstanceCommand::Start(command.into()))
            .await
    }

    /// Signals workflow `W`'s instance `id`, as [`send`](Turn::send) sends
    /// (caught up with the store first, like [`WorkflowRef::signal`](crate::WorkflowRef::signal)).
    pub async fn signal<W: Workflow>(
        &self,
        id: &str,
        signal: impl Into<W::Signal>,
    ) -> Result<Committed<Instance<W>>, InstanceError<W>> {
        self.app.entity::<Instance<W>>(id).version().await?;
        self.send::<Instance<W>>(id, InstanceCommand::Signal(signal.into()))
            .await
    }
}

/// SplitMix64: small, seeded, the same on every platform.
#[derive(Clone, Debug)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.0)
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// FNV-1a of `text`, mixed with `seed`: a site's draw, independent of the order sites are reached in.
fn hash(seed: u64, text: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    mix(h ^ mix(seed))
}

fn unit(h: u64) -> f64 {
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// The run's fault plan and its record.
struct Plan {
    seed: u64,
    crash: f64,
    duplicate: f64,
    failure: f64,
    max_crashes: u32,
    state: Mutex<PlanState>,
    crashed: watch::Sender<bool>,
}

#[derive(Default)]
struct PlanState {
    enabled: bool,
    incarnation: u32,
    crashed: bool,
    crashes: u32,
    duplicates: u64,
    failures: u64,
    trace: Vec<String>,
}

impl Plan {
    fn lock(&self) -> MutexGuard<'_, PlanState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn note(&self, line: String) {
        self.lock().trace.push(line);
    }

    /// The draw of `kind` at `site` in the current incarnation.
    fn roll(&self, state: &PlanState, kind: &str, site: &str) -> f64 {
        unit(hash(self.seed, &format!("{kind} {} {site}", state.incarnation)))
    }

    fn duplicate_command(&self, what: &str) -> bool {
        let mut state = self.lock();
        if !state.enabled || self.roll(&state, "duplicate", what) >= self.duplicate {
            return false;
        }
        state.duplicates += 1;
        state
            .trace
            .push(format!("duplicate: re-sent {what} under its command id"));
        true
    }

    /// The fault at `site` for the app of `incarnation`.
    fn at(&self, incarnation: u32, site: &Site<'_>) -> Injection {
        let mut state = self.lock();
        if state.incarnation != incarnation || state.crashed {
            // The app is dead: nothing more of it reaches the store.
            return Injection::Crash;
        }
        if !state.enabled {
            return Injection::None;
        }
        let (place, crash, duplicate, failure) = match site {
            Site::StepStart(a) => (format!("{} before it ran", attempt(a)), true, false, true),
            Site::StepCall(a, call) => (format!("{} after its call {call}", attempt(a)), true, true, false),
            Site::StepAfter(a) => (
                format!("{} after its effects, before its result was recorded", attempt(a)),
                true,
                true,
                true,
            ),
            Site::TimerFired { name } => (format!("timer `{name}` fired"), false, true, false),
        };
        if crash && state.crashes < self.max_crashes && self.roll(&state, "crash", &place) < self.crash {
            state.crashed = true;
            state.crashes += 1;
            let line = format!("crash (app {}): {place}", state.incarnation);
            state.trace.push(line);
            self.crashed.send_replace(true);
            return Injection::Crash;
        }
        if duplicate && self.roll(&state, "duplicate", &place) < self.duplicate {
            state.duplicates += 1;
            state.trace.push(format!("duplicate: {place}, delivered again"));
            return Injection::Duplicate;
        }
        if failure && self.roll(&state, "failure", &place) < self.failure {
            state.failures += 1;
            state.trace.push(format!("failure: {place}, the attempt failed"));
            return Injection::Fail;
        }
        Injection::None
    }
}

fn attempt(a: &Attempt<'_>) -> String {
    format!(
        "{}/{} step `{}` (seq {}, attempt {})",
        a.workflow, a.id, a.step, a.seq, a.attempt
    )
}

/// The plan as one app sees it: an app of an older incarnation is dead.
struct AppFaults {
    plan: Arc<Plan>,
    incarnation: u32,
}

impl Faults for AppFaults {
    fn at(&self, site: &Site<'_>) -> Injection {
        self.plan.at(self.incarnation, site)
    }
}

/// One run: its stores, its time, its app.
struct Run<'s> {
    sim: &'s Simulation,
    plan: Arc<Plan>,
    rng: Rng,
    store: Arc<dyn EventStore>,
    timers: Arc<dyn TimerStore>,
    time: VirtualTime,
    app: Option<App>,
}

impl<'s> Run<'s> {
    fn new(sim: &'s Simulation, seed: u64) -> Self {
        let plan = Arc::new(Plan {
            seed,
            crash: sim.crash,
            duplicate: sim.duplicate,
            failure: sim.failure,
            max_crashes: sim.max_crashes,
            state: Mutex::new(PlanState::default()),
            crashed: watch::channel(false).0,
        });
        Run {
            sim,
            plan,
            rng: Rng(mix(seed)),
            store: Arc::new(MemoryStore::new()),
            timers: Arc::new(MemoryTimerStore::new()),
            time: VirtualTime::at(DEFAULT_NOW),
            app: None,
        }
    }

    /// Opens the app of the current incarnation over the run's stores.
    fn open(&mut self) -> App {
        let incarnation = self.plan.lock().incarnation;
        let mut builder = App::builder();
        if let Some(build) = &self.sim.build {
            builder = build(builder);
        }
        let app = builder
            .shared_store(self.store.clone())
            .shared_timer_store(self.timers.clone())
            .clock(self.time.clock())
            .faults(Arc::new(AppFaults {
                plan: self.plan.clone(),
                incarnation,
            }))
            .build();
        if let Some(on_open) = &self.sim.on_open {
            on_open(&app);
        }
        self.app = Some(app.clone());
        app
    }

    fn app(&mut self) -> App {
        match &self.app {
            Some(app) => app.clone(),
            None => self.open(),
        }
    }

    /// The crash: every attempt stopped, the app dropped, its runners awaited, a new app opened.
    async fn restart(&mut self) {
        if let Some(app) = self.app.take() {
            app.workflows().halt();
            let workflows = app.workflows().stopped();
            let timers = app.timers().stopped();
            drop(app);
            workflows.await;
            timers.await;
        }
        {
            let mut state = self.plan.lock();
            state.incarnation += 1;
            state.crashed = false;
            let line = format!("restart: app {} opened over the stores", state.incarnation);
            state.trace.push(line);
        }
        self.plan.crashed.send_replace(false);
        drop(self.open());
    }

    /// Waits until the app is quiet (no timer due, no step attempt to run),
    /// restarting it after each crash.
    async fn settle(&mut self, when: &str) -> Result<(), Problem> {
        loop {
            if *self.plan.crashed.borrow() {
                self.restart().await;
                continue;
            }
            let app = self.app();
            let mut crashed = self.plan.crashed.subscribe();
            let quiet = tokio::select! {
                biased;
                _ = crashed.wait_for(|c| *c) => None,
                r = quiet(&app) => Some(r),
            };
            drop(app);
            match quiet {
                None => continue,
                Some(Ok(())) if !*self.plan.crashed.borrow() => return Ok(()),
                Some(Ok(())) => continue,
                Some(Err(message)) => {
                    return Err(Problem::Unsettled {
                        when: when.to_owned(),
                        message,
                    });
                }
            }
        }
    }

    async fn check(&mut self, when: &str) -> Result<(), Problem> {
        self.settle(when).await?;
        for (name, check) in &self.sim.invariants {
            let app = self.app();
            if let Err(e) = check(app).await {
                return Err(Problem::Violated {
                    name,
                    when: when.to_owned(),
                    message: e.to_string(),
                });
            }
        }
        Ok(())
    }

    async fn advance(&mut self, by: Duration, when: &str) -> Result<(), Problem> {
        self.plan.note(format!("time +{}", human(by)));
        self.time.clock().advance(by);
        self.check(when).await
    }

    async fn go(&mut self) -> Result<(), Problem> {
        // No `App` is held across a scheduling step here: a crash must be able to drop it.
        self.plan.note("setup".to_owned());
        if let Some(setup) = &self.sim.setup
            && let Err(e) = setup(self.app()).await
        {
            return Err(Problem::Operation {
                what: "the setup".to_owned(),
                message: e.to_string(),
            });
        }
        self.check("after the setup").await?;
        self.plan.lock().enabled = true;
        for number in 0..self.sim.operations {
            if self.sim.ops.is_empty() {
                break;
            }
            let pick = self.rng.below(self.sim.ops.len() as u64) as usize;
            let (name, operation) = &self.sim.ops[pick];
            let when = format!("after operation {number} ({name})");
            self.plan.note(format!("operation {number}: {name}"));
            let turn = Turn {
                app: self.app(),
                rng: Rng(self.rng.next()),
                number,
                plan: self.plan.clone(),
                sends: std::sync::atomic::AtomicU64::new(0),
            };
            if let Err(e) = operation(turn).await {
                return Err(Problem::Operation {
                    what: format!("operation {number} ({name})"),
                    message: e.to_string(),
                });
            }
            self.check(&when).await?;
            let step = u64::try_from(self.sim.time_step.as_micros()).unwrap_or(u64::MAX);
            if step > 0 && self.rng.below(2) == 1 {
                let by = Duration::from_micros(1 + self.rng.below(step));
                self.advance(by, &format!("{when} and a time advance")).await?;
            }
        }
        self.drain().await?;
        for (name, check) in &self.sim.at_end {
            let app = self.app();
            if let Err(e) = check(app).await {
                return Err(Problem::Violated {
                    name,
                    when: "at the end".to_owned(),
                    message: e.to_string(),
                });
            }
        }
        Ok(())
    }

    /// Moves the time to each pending timer until none is left.
    async fn drain(&mut self) -> Result<(), Problem> {
        self.plan
            .note("drain: the time moves to each pending timer".to_owned());
        for _ in 0..MAX_DRAIN_ADVANCES {
            self.settle("in the drain").await?;
            let app = self.app();
            let next = app
                .timers()
                .pending_page(None, 1)
                .await
                .map_err(|e| Problem::Unsettled {
                    when: "in the drain".to_owned(),
                    message: e.to_string(),
                })?;
            drop(app);
            let Some(next) = next.into_iter().next() else {
                return self.check("after the drain").await;
            };
            let now = self.time.now();
            let by = if next.due > now {
                next.due.since(now)
            } else {
                Duration::ZERO
            };
            self.advance(by, "in the drain").await?;
        }
        Err(Problem::Unsettled {
            when: "in the drain".to_owned(),
            message: format!("timers still pending after {MAX_DRAIN_ADVANCES} advances"),
        })
    }
}

/// Waits until no timer is due and no step attempt is to run, as of one head of the log.
async fn quiet(app: &App) -> Result<(), String> {
    loop {
        let head = app.store().head().await.map_err(|e| e.to_string())?;
        app.timers().wait_idle().await.map_err(|e| e.to_string())?;
        app.workflows().wait_quiet().await.map_err(|e| e.to_string())?;
        if app.store().head().await.map_err(|e| e.to_string())? == head {
            return Ok(());
        }
    }
}

fn human(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 60.0 {
        format!("{:.1} min", s / 60.0)
    } else {
        format!("{s:.3} s")
    }
}
