//! Given / when / then for entities, with a fixed clock and seed; views
//! folded from given events; virtual time for timers and workflows
//! ([`VirtualTime`]); and the whole-app [simulation](simulate), with
//! crashes, duplicate deliveries and step failures on a seeded schedule.
//!
//! ```
//! # use factum::prelude::*;
//! # use serde::{Deserialize, Serialize};
//! # #[derive(Clone, Debug)] pub struct Deposit { pub amount: u64 }
//! # #[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
//! # pub struct Opened { pub owner: String }
//! # #[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
//! # pub struct Deposited { pub amount: u64 }
//! # #[derive(Default, Clone, Debug, PartialEq)] pub struct Account { balance: u64 }
//! # #[entity] impl Account {
//! #     #[handle] fn deposit(&self, cmd: Deposit) -> Deposited { Deposited { amount: cmd.amount } }
//! #     #[apply] fn opened(&mut self, _e: &Opened) {}
//! #     #[apply] fn deposited(&mut self, e: &Deposited) { self.balance += e.amount }
//! # }
//! use factum::testkit::given;
//!
//! given::<Account>([Opened { owner: "ada".into() }.into()])
//!     .when(Deposit { amount: 10 })
//!     .then([Deposited { amount: 10 }.into()])
//!     .then_state(|account| assert_eq!(account.balance, 10));
//! ```
//!
//! Every scenario also checks determinism, the runtime backing of the rules the
//! macros cannot see (a clock read or a global counter hidden in a helper
//! function): the command is handled twice with the same context and must decide
//! the same, and all events are replayed onto a fresh state twice and must give
//! equal states after every event. So the test kit needs `PartialEq` on the state.
//!
//! [`check_event_lock`] keeps rule 1 across releases: it compares every
//! event's shape with a committed lock file (see the [`lock`] module).

pub mod lock;
mod simulation;

use std::collections::BTreeMap;
use std::fmt::Debug;

use uuid::Uuid;

use crate::codec::Codec;
use crate::entity::{Context, Entity};
use crate::event::Event;
use crate::store::{EventMetadata, RecordedEvent};
use crate::time::{ManualClock, Timestamp};
use crate::timer::{Firing, TimerError, Timers};
use crate::view::View;
use crate::workflow::{Status, Workflow, WorkflowRef};

pub use lock::{EventLockError, LockProblem, check_event_lock, update_event_lock};
pub use simulation::{
    Check, MAX_DRAIN_ADVANCES, Problem, Simulation, SimulationFailure, SimulationReport, Turn, simulate,
};

/// The time a scenario's command sees unless [`Scenario::at`] says otherwise:
/// 2026-01-01T00:00:00Z.
pub const DEFAULT_NOW: Timestamp = Timestamp::from_secs(1_767_225_600);

/// The command id (and so the random seed) a scenario uses unless
/// [`Scenario::command_id`] says otherwise.
pub const DEFAULT_COMMAND_ID: Uuid = Uuid::from_u128(0x0000_0000_0000_4000_8000_0000_0000_0001);

/// The entity id a scenario's command sees as `ctx.entity_id()` unless
/// [`Scenario::entity_id`] says otherwise.
pub const DEFAULT_ENTITY_ID: &str = "test-entity";

/// An entity with a history, about to receive a command.
///
/// The command sees [`DEFAULT_NOW`], [`DEFAULT_COMMAND_ID`] and
/// [`DEFAULT_ENTITY_ID`] unless the scenario sets them. Its `ctx.uuid()`,
/// `ctx.random_u64()` and `ctx.random_below(..)` are seeded by the command id,
/// the entity id and the entity's version (the history's length), exactly as
/// in the runtime, and each call moves to the next value. To assert an id the
/// handler generates, draw it from [`Scenario::context`], the same context
/// the handler gets:
///
/// ```
/// # use factum::prelude::*;
/// # use serde::{Deserialize, Serialize};
/// # #[derive(Clone, Debug)] pub struct Book { pub nights: u32 }
/// # #[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
/// # pub struct StayBooked { pub booking: Uuid, pub nights: u32 }
/// # #[derive(Default, Clone, Debug, PartialEq)] pub struct Guest { stays: u32 }
/// # #[entity] impl Guest {
/// #     #[handle] fn book(&self, cmd: Book, ctx: &Context) -> StayBooked { StayBooked { booking: ctx.uuid(), nights: cmd.nights } }
/// #     #[apply] fn booked(&mut self, _e: &StayBooked) { self.stays += 1 }
/// # }
/// use factum::testkit::given_nothing;
///
/// let scenario = given_nothing::<Guest>().entity_id("guest-7");
/// let booking = scenario.context().uuid(); // the first uuid the handler draws
/// scenario.when(Book { nights: 3 }).then([StayBooked { booking, nights: 3 }.into()]);
/// ```
#[must_use = "a scenario does nothing until `.when(..)` and `.then(..)`"]
pub struct Scenario<E: Entity> {
    history: Vec<E::Event>,
    now: Timestamp,
    command_id: Uuid,
    entity_id: String,
}

/// Starts a scenario: an entity that has already applied `events`.
///
/// Events are values of the entity's event enum: write `Deposited { .. }.into()`
/// in the array (the array's events may be of different types), or start with
/// [`given_nothing`] and add events one by one with [`Scenario::and`].
pub fn given<E: Entity>(events: impl IntoIterator<Item = E::Event>) -> Scenario<E> {
    Scenario {
        history: events.into_iter().collect(),
        now: DEFAULT_NOW,
        command_id: DEFAULT_COMMAND_ID,
        entity_id: DEFAULT_ENTITY_ID.to_owned(),
    }
}

/// Panics, with the names of both types, if two event types linked into this
/// test binary store one (name, version): put it in a `#[test]` so `cargo test`
/// catches what `App::start_views` would refuse.
///
/// ```rust,standalone_crate
/// // in a test file, under `#[test] fn event_names_are_unique()`:
/// factum::testkit::check_catalogue();
/// ```
#[track_caller]
pub fn check_catalogue() {
    if let Err(e) = crate::event::check_catalogue() {
        panic!("{e}");
    }
}

/// Starts a scenario with an entity that has no history.
pub fn given_nothing<E: Entity>() -> Scenario<E> {
    given(std::iter::empty())
}

impl<E: Entity + PartialEq> Scenario<E> {
    /// Adds one more event to the history.
    pub fn and(mut self, event: impl Into<E::Event>) -> Self {
        self.history.push(event.into());
        self
    }

    /// The time the command sees as `ctx.now()`.
    pub fn at(mut self, now: Timestamp) -> Self {
        self.now = now;
        self
    }

    /// The command id, which also seeds `ctx.random_u64()` and `ctx.uuid()`.
    pub fn command_id(mut self, id: Uuid) -> Self {
        self.command_id = id;
        self
    }

    /// The entity id the command sees as `ctx.entity_id()`.
    pub fn entity_id(mut self, id: impl Into<String>) -> Self {
        self.entity_id = id.into();
        self
    }

    /// A fresh copy of the context the command will see: its `uuid()` and
    /// `random_u64()` draw the same values, in the same order, as the handler's.
    pub fn context(&self) -> Context {
        Context::new(
            self.command_id,
            self.now,
            self.entity_id.as_str(),
            self.history.len() as u64,
        )
    }

    /// Handles `command` against the state the history folds to.
    #[must_use = "assert on the outcome with `.then(..)`, `.then_rejected(..)` or `.then_nothing()`"]
    #[track_caller]
    pub fn when(self, command: impl Into<E::Command>) -> Outcome<E> {
        let command = command.into();
        let state = replay_checked::<E>(&self.history, "the given events");
        let ctx = || self.context();
        let result = state.handle(command.clone(), &ctx());
        let again = state.handle(command.clone(), &ctx());
        let same = match (&result, &again) {
            (Ok(a), Ok(b)) => a == b,
            (Err(a), Err(b)) => format!("{a:?}") == format!("{b:?}"),
            _ => false,
        };
        if !same {
            panic!(
                "factum testkit: the handler is not deterministic: handling {command:?} twice with the same \
                 state and context decided differently.\n  first:  {result:?}\n  second: {again:?}\n\
                 A handler must depend only on the state, the command and `ctx` (a clock, random \
                 number or global read in a helper function is invisible to the compile-time check)."
            );
        }
        if let Ok(events) = &result {
            let all: Vec<E::Event> = self.history.iter().chain(events).cloned().collect();
            replay_checked::<E>(&all, "the given and the new events");
        }
        Outcome {
            history: self.history,
            command: format!("{command:?}"),
            state,
            result,
        }
    }
}

/// What a command decided in a scenario, to assert on.
pub struct Outcome<E: Entity> {
    history: Vec<E::Event>,
    command: String,
    state: E,
    result: Result<Vec<E::Event>, E::Error>,
}

impl<E: Entity + PartialEq> Outcome<E> {
    /// Asserts the command produced exactly `expected`, in order.
    #[track_caller]
    pub fn then(self, expected: impl IntoIterator<Item = E::Event>) -> Self {
        let expected: Vec<E::Event> = expected.into_iter().collect();
        match &self.result {
            Ok(actual) if *actual == expected => {}
            Ok(actual) => self.fail("other events than expected", &expected, &list(actual)),
            Err(error) => self.fail(
                "a rejection instead of events",
                &expected,
                &format!("rejected: {error:?}"),
            ),
        }
        self
    }

    /// Asserts the command produced no event and was not rejected.
    #[track_caller]
    pub fn then_nothing(self) -> Self {
        self.then(std::iter::empty())
    }

    /// Asserts the command was rejected with `expected`.
    #[track_caller]
    pub fn then_rejected(self, expected: E::Error) -> Self
    where
        E::Error: PartialEq,
    {
        match &self.result {
            Err(actual) if *actual == expected => {}
            Err(actual) => panic!(
                "factum testkit: the command was rejected, but not as expected\n{}  expected rejection: {expected:?}\n  actual rejection:   {actual:?}",
                self.header()
            ),
            Ok(events) => panic!(
                "factum testkit: the command was accepted, but a rejection was expected\n{}  expected rejection: {expected:?}\n  actual events:\n{}",
                self.header(),
                list(events)
            ),
        }
        self
    }

    /// Asserts the command was rejected, and lets `check` look at the rejection.
    #[track_caller]
    pub fn then_rejected_with(self, check: impl FnOnce(&E::Error)) -> Self {
        match &self.result {
            Err(actual) => check(actual),
            Ok(events) => panic!(
                "factum testkit: the command was accepted, but a rejection was expected\n{}  actual events:\n{}",
                self.header(),
                list(events)
            ),
        }
        self
    }

    /// Lets `check` look at the state after the new events were applied.
    #[track_caller]
    pub fn then_state(self, check: impl FnOnce(&E)) -> Self {
        check(&self.state_after());
        self
    }

    /// The events the command produced (empty when rejected).
    pub fn events(&self) -> Vec<E::Event> {
        self.result.as_ref().map(Clone::clone).unwrap_or_default()
    }

    /// The state after the command's events were applied (unchanged when rejected).
    pub fn state_after(&self) -> E {
        let mut state = self.state.clone();
        if let Ok(events) = &self.result {
            for event in events {
                state.apply(event);
            }
        }
        state
    }

    fn header(&self) -> String {
        format!(
            "  given: {} event(s){}\n  when:  {}\n",
            self.history.len(),
            if self.history.is_empty() {
                String::new()
            } else {
                format!("\n{}", list(&self.history))
            },
            self.command
        )
    }

    #[track_caller]
    fn fail(&self, what: &str, expected: &[E::Event], actual: &str) -> ! {
        panic!(
            "factum testkit: the command produced {what}\n{}  expected events:\n{}  actual:\n{actual}",
            self.header(),
            list(expected)
        )
    }
}

fn list<T: Debug>(items: &[T]) -> String {
    if items.is_empty() {
        return "    (none)\n".to_owned();
    }
    items
        .iter()
        .enumerate()
        .map(|(i, e)| format!("    {}. {e:?}\n", i + 1))
        .collect()
}

/// Replays `events` onto a fresh state twice and panics, naming the first event
/// after which the two states differ, if `apply` is not a pure function of the
/// state and the event. For users' own property tests.
#[track_caller]
pub fn assert_deterministic<E: Entity + PartialEq>(events: &[E::Event]) -> E {
    replay_checked::<E>(events, "the events")
}

#[track_caller]
fn replay_checked<E: Entity + PartialEq>(events: &[E::Event], what: &str) -> E {
    let (mut first, mut second) = (E::default(), E::default());
    for (i, event) in events.iter().enumerate() {
        first.apply(event);
        second.apply(event);
        if first != second {
            panic!(
                "factum testkit: replaying {what} twice gave different states after event {} of {}: {event:?}\n  \
                 first replay:  {first:?}\n  second replay: {second:?}\n\
                 An #[apply] method must depend only on the state and the event; this one reads something \
                 else (a global, a clock or a random number, perhaps through a helper function the \
                 compile-time check cannot see).",
                i + 1,
                events.len()
            );
        }
    }
    first
}

/// Starts a view scenario: `view::<V>().given("acc-1", Opened { … }).then_row("acc-1", expected)`.
///
/// Events are given as values with the stream id they belong to; each becomes a
/// stored record (JSON, positions from 1, recorded at [`DEFAULT_NOW`] unless
/// [`ViewScenario::at`] says otherwise) and is folded the way the runner folds
/// it. Every fold is done twice and must give equal rows (the determinism check).
pub fn view<V: View + PartialEq>() -> ViewScenario<V> {
    ViewScenario {
        records: Vec::new(),
        now: DEFAULT_NOW,
        _view: std::marker::PhantomData,
    }
}

/// Events given to a view, about to be checked against expected rows.
pub struct ViewScenario<V> {
    records: Vec<RecordedEvent>,
    now: Timestamp,
    _view: std::marker::PhantomData<fn() -> V>,
}

impl<V: View + PartialEq> ViewScenario<V> {
    /// The `recorded_at` of the events given after this call.
    pub fn at(mut self, now: Timestamp) -> Self {
        self.now = now;
        self
    }

    /// One more event, of the stream `stream_id` (stream type `"test"`).
    #[track_caller]
    #[must_use = "a view scenario does nothing until `.then_row(..)` or `.rows()`"]
    pub fn given<E: Event>(mut self, stream_id: &str, event: E) -> Self {
        let payload = match Codec::Json.encode(&event) {
            Ok(p) => p,
            Err(e) => panic!("factum testkit: the given event {event:?} does not encode: {e}"),
        };
        let position = self.records.len() as u64 + 1;
        let version = self.records.iter().filter(|r| r.stream_id == stream_id).count() as u64 + 1;
        let id = Uuid::from_u128(u128::from(position));
        self.records.push(RecordedEvent {
            position,
            stream_type: "test".to_owned(),
            stream_id: stream_id.to_owned(),
            version,
            event_type: E::NAME.to_owned(),
            schema_version: E::VERSION,
            codec: Codec::Json,
            payload,
            metadata: EventMetadata {
                event_id: id,
                recorded_at: self.now,
                command_id: id,
                causation_id: None,
                correlation_id: id,
            },
        });
        self
    }

    /// Every row after folding the given events, by key.
    #[track_caller]
    pub fn rows(&self) -> BTreeMap<String, V> {
        let first = fold_records::<V>(&self.records);
        let second = fold_records::<V>(&self.records);
        if first != second {
            panic!(
                "factum testkit: folding the same events twice into view `{}` gave different rows\n  \
                 first:  {first:?}\n  second: {second:?}\nAn #[on] handler must depend only on the row, \
                 the event and its meta.",
                V::NAME
            );
        }
        first
    }

    /// Asserts the row `key` equals `expected` after the given events.
    #[track_caller]
    pub fn then_row(self, key: &str, expected: V) -> Self {
        let rows = self.rows();
        match rows.get(key) {
            Some(actual) if *actual == expected => {}
            Some(actual) => panic!(
                "factum testkit: view `{}` row `{key}` differs\n  expected: {expected:?}\n  actual:   {actual:?}",
                V::NAME
            ),
            None => panic!(
                "factum testkit: view `{}` has no row `{key}`\n  expected: {expected:?}\n  rows: {:?}",
                V::NAME,
                rows.keys().collect::<Vec<_>>()
            ),
        }
        self
    }

    /// Asserts the view has no row `key` (never written, or deleted).
    #[track_caller]
    pub fn then_no_row(self, key: &str) -> Self {
        if let Some(row) = self.rows().get(key) {
            panic!("factum testkit: view `{}` has a row `{key}`: {row:?}", V::NAME);
        }
        self
    }
}

#[track_caller]
fn fold_records<V: View>(records: &[RecordedEvent]) -> BTreeMap<String, V> {
    crate::view::fold_records::<V>(records).unwrap_or_else(|e| panic!("factum testkit: {e}"))
}

/// Virtual time for timers: a [`ManualClock`] to build the app with, and an
/// [`advance`](VirtualTime::advance) that moves it and resolves once every
/// timer due by the new time has fired — no sleeping, no waiting on wall time.
///
/// ```
/// # use factum::prelude::*;
/// # use serde::{Deserialize, Serialize};
/// # #[derive(Clone, Debug, Serialize, Deserialize)] pub struct Expire;
/// # #[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)] pub struct Expired {}
/// # #[derive(Default, Clone, Debug)] pub struct Hold { expired: bool }
/// # #[entity] impl Hold {
/// #     #[handle] fn expire(&self, _cmd: Expire) -> Expired { Expired {} }
/// #     #[apply] fn expired(&mut self, _e: &Expired) { self.expired = true }
/// # }
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), factum::TimerError> {
/// use std::time::Duration;
/// use factum::testkit::VirtualTime;
///
/// let time = VirtualTime::at(factum::testkit::DEFAULT_NOW);
/// let app = App::builder().clock(time.clock()).build();
/// let due = time.now() + Duration::from_secs(15 * 60);
/// app.timers().schedule::<Hold, _>("expire:seat-7", "seat-7", due, Expire).await?;
///
/// assert!(time.advance(app.timers(), Duration::from_secs(14 * 60)).await?.is_empty());
/// let fired = time.advance(app.timers(), Duration::from_secs(60)).await?;
/// assert_eq!(fired.len(), 1);
/// assert_eq!(fired[0].name, "expire:seat-7");
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct VirtualTime {
    clock: ManualClock,
}

impl VirtualTime {
    /// Virtual time standing at `now`.
    pub fn at(now: Timestamp) -> Self {
        VirtualTime {
            clock: ManualClock::new(now),
        }
    }

    /// The clock to build the app with (`App::builder().clock(time.clock())`); clones share the time.
    pub fn clock(&self) -> ManualClock {
        self.clock.clone()
    }

    /// The virtual time now.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Moves the time forward by `by` and waits until every timer due by
    /// then has fired (or was rejected). Returns the firings recorded during
    /// the advance, oldest first. Fails as [`Timers::wait_idle`] does: on a
    /// due timer nobody can decode, or a runner that keeps failing.
    pub async fn advance(&self, timers: &Timers, by: std::time::Duration) -> Result<Vec<Firing>, TimerError> {
        let before = self.clock.now();
        let seen = timers.recent_firings(crate::timer::KEPT_FIRINGS).await?;
        self.clock.advance(by);
        timers.wait_idle().await?;
        let mut fired: Vec<Firing> = timers
            .recent_firings(crate::timer::KEPT_FIRINGS)
            .await?
            .into_iter()
            .filter(|f| f.fired_at > before || !seen.contains(f))
            .collect();
        fired.reverse();
        Ok(fired)
    }
    /// Drives one workflow instance on virtual time: waits until no attempt
    /// of it runs, then moves the time to its next retry, pause timeout or
    /// workflow timeout and waits for that to take effect, and again — until
    /// the instance is over, or paused with no timeout (waiting for a
    /// signal). Returns its status.
    ///
    /// A step that hangs is not advanced past: its timeout fires only when
    /// the time is moved beyond it ([`advance`](VirtualTime::advance)).
    pub async fn settle<W: Workflow>(
        &self,
        timers: &Timers,
        instance: &WorkflowRef<W>,
    ) -> Result<Status, SettleError> {
        for _ in 0..MAX_SETTLE_ADVANCES {
            let status = instance.wait_settled().await?;
            let own = match &status {
                _ if status.is_final() => return Ok(status),
                Status::Running {
                    retry_at: Some(due), ..
                } => Some(*due),
                Status::Paused {
                    timeout_at: Some(due),
                    ..
                } => Some(*due),
                _ => None,
            };
            // The index is at the log's head (`wait_settled`): its deadline is the stored one.
            let core = instance.wait_core(|_| true).await?;
            let deadline = core
                .deadline
                .filter(|_| core.pending.is_none() && core.diverted.is_none());
            let (due, is_deadline) = match (own, deadline) {
                (Some(own), Some(deadline)) if deadline < own => (deadline, true),
                (Some(own), _) => (own, false),
                (None, Some(deadline)) => (deadline, true),
                (None, None) => return Ok(status),
            };
            let now = self.clock.now();
            if due > now {
                self.advance(timers, due.since(now)).await?;
            } else {
                timers.wait_idle().await?;
            }
            if is_deadline {
                // A timeout in a step's retry changes no status: it waits for the boundary.
                instance
                    .wait_core(|c| c.deadline != Some(due) || c.status != status)
                    .await?;
            } else {
                instance.wait_until(|s| *s != status).await?;
            }
        }
        Err(SettleError::Endless {
            advances: MAX_SETTLE_ADVANCES,
        })
    }
}

/// How many timers [`VirtualTime::settle`] moves past before it gives up on an endless loop.
pub const MAX_SETTLE_ADVANCES: u32 = 10_000;

/// Why [`VirtualTime::settle`] stopped before the instance settled.
#[derive(Debug, thiserror::Error)]
pub enum SettleError {
    /// Firing a timer failed.
    #[error(transparent)]
    Timer(#[from] TimerError),
    /// Waiting on the instance failed.
    #[error(transparent)]
    Wait(#[from] crate::workflow::WorkflowWaitError),
    /// The instance kept scheduling retries or pauses.
    #[error("the instance still runs after {advances} advances of the virtual time")]
    Endless {
        /// How many.
        advances: u32,
    },
}
