//! factum: event sourcing for Rust. See the README (rendered below) for the
//! tour; the modules are named for the talk's building blocks.
#![doc = include_str!("../../README.md")]
#![forbid(unsafe_code)]

mod app;
pub mod audit;
pub mod codec;
pub mod command;
pub mod consumer;
pub mod entity;
pub mod env;
pub mod event;
pub mod fault;
pub mod ids;
mod inject;
#[cfg(feature = "nats")]
pub mod nats;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod process;
pub mod rules;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql;
#[cfg(feature = "sqlite")]
pub mod sqlite;
pub mod store;
pub mod testkit;
pub mod time;
pub mod timer;
mod unwind;
pub mod view;
pub mod workflow;

pub use codec::{Codec, CodecError};
pub use entity::{Context, Entity};
pub use event::{DecodeError, Event, EventSet, IntoEvents};

pub use app::{App, AppBuilder};
pub use command::{CommandError, Committed, EntityRef, LoadError, Recorded, SendOptions};
pub use consumer::{Consumer, ConsumerContext, ConsumerError, Consumers, Handled};
pub use env::Env;
#[cfg(feature = "postgres")]
pub use postgres::PostgresStore;
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStore;
pub use store::{EventStore, MemoryStore, RecordedEvent};
pub use time::{Clock, ManualClock, SystemClock, Timestamp};
pub use timer::{TimerError, Timers};
/// Command, event and correlation ids.
pub use uuid::Uuid;
pub use view::{EventMeta, View, ViewError, ViewHandle, ViewOp, Views};
pub use workflow::{StepContext, Then, Workflow, WorkflowRef};

/// Derives [`Event`] for a struct and enters it in the [event catalogue](event::catalogue).
///
/// Attributes, all optional, in `#[event(…)]`:
///
/// | key | meaning | default |
/// |---|---|---|
/// | `name = "account.deposited"` | the stable type name the log stores; renaming the Rust type keeps it | the struct's name |
/// | `version = 2` | the schema version this type writes | 1 |
/// | `upcast_from = DepositedV1` | the previous version: older stored payloads decode as it, then convert with `From` | none |
/// | `fact = "…"` | why a name that sounds like a failure records a real fact | none |
///
/// The struct also needs `Serialize`, `Deserialize`, `Clone`, `Debug` and
/// `PartialEq`. Enums, unions and generic structs are rejected at compile
/// time. With `upcast_from`, the compiler checks that both versions share the
/// name and that the older one has the lower version.
///
/// The catalogue entry also records the event's wire shape as written: its
/// fields in order with their types, and the serde attributes that change the
/// encoding (`rename`, `rename_all`, `tag`, `flatten`, `skip…`, `default`,
/// `with`, …). [`testkit::check_event_lock`] compares it with a committed lock
/// file, so a released event cannot change shape without a version bump.
///
/// # The stored name
///
/// By default the log stores the struct's bare name (`Deposited`), not its
/// module path: a path would change whenever the type moves to another
/// module, and every event stored before the move would stop decoding. The
/// price is that two types of one name in different modules
/// (`room::Registered` and `guest::Registered`) would be stored alike, and a
/// view subscribed to one would fold the other's events. So two event types
/// with one (name, version) are refused: [`App::start_views`] and
/// [`App::start_view`] fail with [`ViewError::Catalogue`] naming both types
/// (the check is [`event::check_catalogue`]; call
/// [`testkit::check_catalogue`] in a `#[test]` to catch it in `cargo test`).
/// Give one of them, or every event of a larger program, an explicit
/// `name = "room.registered"`.
///
/// The name is the key of every stored event, so renaming has a cost:
/// - Renaming the *Rust type* is free if it keeps the stored text:
///   `#[event(name = "Registered")]` on `RoomRegistered`.
/// - Changing the *stored name* has no alias: events already stored under the
///   old name fail to decode ([`DecodeError::UnknownType`]). Keep a type with
///   the old name (and `#[apply]`/`#[on]` both), or keep the old name.
/// - Changing the *payload* is what `version` and `upcast_from` are for.
///
/// ```
/// use factum::prelude::*;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
/// #[event(name = "account.deposited")]
/// pub struct DepositedV1 { pub amount: u32 }
///
/// #[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
/// #[event(name = "account.deposited", version = 2, upcast_from = DepositedV1)]
/// pub struct Deposited { pub amount: u64 }
///
/// impl From<DepositedV1> for Deposited {
///     fn from(v1: DepositedV1) -> Self { Deposited { amount: v1.amount.into() } }
/// }
///
/// // A payload stored by version 1 loads as version 2.
/// let stored = Codec::Json.encode(&DepositedV1 { amount: 5 }).unwrap();
/// let loaded = Deposited::decode_stored(1, Codec::Json, &stored).unwrap();
/// assert_eq!(loaded, Deposited { amount: 5 });
/// assert_eq!((Deposited::NAME, Deposited::VERSION), ("account.deposited", 2));
/// ```
pub use factum_macros::Event;
/// Turns an inherent impl block into an [`Entity`]: `#[handle]` methods
/// decide events from commands, `#[apply]` methods fold events into state.
///
/// Arguments, all optional, in `#[entity(…)]`:
///
/// | key | meaning | default |
/// |---|---|---|
/// | `name = "account"` | the stream type name the log stores | the type's name in snake_case |
/// | `snapshot_every = 100` | snapshot the state every N events; the state must then be `Serialize + Deserialize` | 0 (never) |
/// | `events = AccountEvent` | the generated event enum's name | `<Type>Event` |
/// | `commands = AccountCommand` | the generated command enum's name | `<Type>Command` |
/// | `error = AccountError` | the entity's rejection type; every handler's error converts into it with `From` | the first fallible handler's error, else `Infallible` |
/// | `vis = "pub(crate)"` | visibility of the generated enums and `handle` | `pub` |
///
/// `impl Entity` names the generated enums, so `vis` must be at least as
/// visible as the entity type. The default `pub` suits both a library that
/// exports its entity and a binary or test crate whose types are private.
///
/// Methods (the method names are yours; dispatch goes by the command type):
///
/// - `#[handle] fn f(&self, cmd: C) -> R` or `fn f(&self, cmd: C, ctx: &Context) -> R`.
///   `R` is *events*, or `Result<events, E>` (written `Result<…, …>` with two
///   arguments, any path), where *events* is any of:
///   - one event type: `Deposited`;
///   - an `Option` of events, for "maybe": `Option<Fined>`;
///   - a tuple of events, in order, each itself any of these: `(Returned, Option<Fined>)`;
///   - the event enum in a `Vec`, for a computed list: `Vec<AccountEvent>`;
///   - `()` for nothing to do.
///
///   Each command type has exactly one handler. Handlers take `&self`: state
///   changes only through events.
/// - `#[apply] fn f(&mut self, e: &E)`, returning nothing. Each event type has
///   exactly one; the event types of the `#[apply]` methods are the entity's events.
/// - Other methods are left as written.
///
/// Generated: `enum <Type>Event` (one variant per event type, named after it;
/// `From` each event; [`EventSet`]; serde as the one-entry map
/// `{<stable name>: <event>}`), `enum <Type>Command` (one variant per command type; `From`
/// each command), the dispatch `fn handle(&self, <Type>Command, &Context) ->
/// Result<Vec<<Type>Event>, Error>`, `impl Entity`, and an entry in the
/// [entity registry](entity::registry). Structural mistakes are compile errors
/// that say what to write instead.
///
/// ```
/// use factum::prelude::*;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
/// pub struct Deposited { pub amount: u64 }
///
/// #[derive(Clone, Debug)]
/// pub struct Deposit { pub amount: u64 }
///
/// #[derive(Debug, PartialEq, thiserror::Error)]
/// pub enum AccountError {
///     #[error("a deposit must be above zero")]
///     Empty,
/// }
///
/// #[derive(Default, Clone, Debug)]
/// pub struct Account { balance: u64 }
///
/// #[entity(name = "account")]
/// impl Account {
///     #[handle]
///     fn deposit(&self, cmd: Deposit) -> Result<Deposited, AccountError> {
///         if cmd.amount == 0 {
///             return Err(AccountError::Empty);
///         }
///         Ok(Deposited { amount: cmd.amount })
///     }
///
///     #[apply]
///     fn deposited(&mut self, e: &Deposited) {
///         self.balance += e.amount;
///     }
/// }
///
/// let ctx = Context::new(Default::default(), Timestamp::from_secs(0), "acc-1", 0);
/// let mut account = Account::default();
/// let events = account.handle(Deposit { amount: 5 }.into(), &ctx).unwrap();
/// assert_eq!(events, vec![AccountEvent::Deposited(Deposited { amount: 5 })]);
/// for e in &events {
///     account.apply(e);
/// }
/// assert_eq!(account.balance, 5);
/// assert_eq!(account.handle(Deposit { amount: 0 }.into(), &ctx), Err(AccountError::Empty));
/// ```
pub use factum_macros::consumer;
pub use factum_macros::entity;
/// Turns an inherent impl block of a row type into a [`View`]: `#[on]`
/// methods fold events into rows, which readers get by key. What a running
/// view promises (exactly once over the log, read-your-writes, blue/green
/// rebuilds) is in the [`view`](mod@view) module docs.
///
/// Arguments, all optional, in `#[view(…)]`:
///
/// | key | meaning | default |
/// |---|---|---|
/// | `name = "account_balance"` | the view's stable name. It names the view's tables, so it is 1 to 40 of `a-z`, `0-9` and `_`, starting with a letter ([`view::is_valid_view_name`]); checked at compile time | the row type's name in snake_case (as for `#[entity]`: `HTTPStats` → `http_stats`) |
/// | `version = 2` | the version of the view's logic; bumping it rebuilds the view from the start of the log beside the live one, and swaps once caught up | 1 |
/// | `index = [owner, …]` | row fields that get a generated `find_by_<field>(value)` query; each field must be `ToString` | none |
///
/// Methods (the method names are yours; routing goes by the event type):
///
/// - `#[on] fn f(&mut self, e: &E)` or `fn f(&mut self, e: &E, meta: &EventMeta)`
///   folds one event of type `E` into the row keyed by the event's stream id.
///   [`EventMeta`] gives the event's position, stream, ids and `recorded_at`
///   (the time to use: a view never reads the clock).
/// - `#[on(key = expr)]` folds it into the row `expr` names instead: the
///   expression sees the event and the meta, as `e` and `meta` and under the
///   handler's own parameter names, and yields anything `ToString`. One event
///   type may go to several handlers with different keys (several rows); two
///   handlers of one event type with the same key are a compile error.
/// - A handler returns `()` (keep the row) or a [`ViewOp`]: `ViewOp::Delete`
///   removes the row, and a later event for the key starts again from `Default`.
/// - Other methods are left as written.
///
/// The row type needs `Default`, `Clone`, `Debug`, `Serialize` and
/// `Deserialize` (rows are stored as JSON). `#[on]` bodies obey the
/// [rules]: no clock, no randomness, no side effects. Generic views and
/// trait impls are rejected, and structural mistakes are compile errors that
/// say what to write instead.
///
/// Generated: `impl View` (routing by the stored event name, each event
/// decoded once), the queries [`ViewHandle`] derefs to, with one
/// `find_by_<field>` per index, and an entry in the
/// [view registry](view::registered) that [`App::start_views`] starts.
///
/// ```
/// use factum::prelude::*;
/// use factum::{View, testkit};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
/// pub struct Opened { pub owner: String }
/// #[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
/// pub struct Deposited { pub amount: u64 }
/// #[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
/// pub struct TransferredOut { pub to: String, pub amount: u64 }
/// #[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
/// pub struct Closed {}
///
/// #[derive(Default, Clone, Debug, PartialEq, Serialize, Deserialize)]
/// pub struct AccountBalance { owner: String, balance: u64, since: Timestamp }
///
/// #[view(name = "account_balance", version = 1, index = [owner])]
/// impl AccountBalance {
///     #[on]
///     fn opened(&mut self, e: &Opened, meta: &EventMeta) {
///         self.owner = e.owner.clone();
///         self.since = meta.recorded_at;
///     }
///
///     #[on]
///     fn deposited(&mut self, e: &Deposited) {
///         self.balance += e.amount;
///     }
///
///     // Credits the receiving account's row, not the sender's.
///     #[on(key = e.to.clone())]
///     fn credited(&mut self, e: &TransferredOut) {
///         self.balance += e.amount;
///     }
///
///     #[on]
///     fn closed(&mut self, _e: &Closed) -> ViewOp {
///         ViewOp::Delete
///     }
/// }
///
/// assert_eq!(<AccountBalance as View>::NAME, "account_balance");
/// testkit::view::<AccountBalance>()
///     .given("acc-1", Opened { owner: "ada".into() })
///     .given("acc-1", Deposited { amount: 5 })
///     .given("acc-2", TransferredOut { to: "acc-1".into(), amount: 3 })
///     .given("acc-2", Closed {})
///     .then_row(
///         "acc-1",
///         AccountBalance { owner: "ada".into(), balance: 8, since: testkit::DEFAULT_NOW },
///     )
///     .then_no_row("acc-2");
///
/// // In a running app (after `app.start_views()`): by key, and by index.
/// async fn read(app: &App) -> Result<(), factum::ViewError> {
///     let balances = app.view::<AccountBalance>();
///     let _ada: Option<AccountBalance> = balances.get("acc-1").await?;
///     let _hers: Vec<(String, AccountBalance)> = balances.find_by_owner("ada").await?;
///     Ok(())
/// }
/// ```
pub use factum_macros::view;
/// Turns an inherent impl block of a state type into a [`Workflow`]: a
/// long-running process whose instances are event-sourced and driven by the
/// runner (the contracts are in the [`workflow`](mod@workflow) module docs).
///
/// Arguments, all optional, in `#[workflow(…)]`:
///
/// | key | meaning | default |
/// |---|---|---|
/// | `name = "transfer"` | the stream type of its instances | the type's name in snake_case |
/// | `error = TransferError` | what a refused start or signal returns | the first fallible decision's error, else `Infallible` |
/// | `signals = TransferSignal` | the generated signal enum's name | `<Type>Signal` |
/// | `timeout = "15m"` | how long an instance may run from its start | no limit |
/// | `on_timeout = release` | the step (input `()`) entered once the timeout passed | the instance fails |
/// | `on_cancel = refund` | the compensation (input `()`) a cancel runs | a cancel ends it at once |
///
/// The timeout and a cancel take effect at a step boundary: a paused
/// instance enters its final step at once, one in a step finishes that step
/// first (see the [`workflow`](mod@workflow) module docs).
///
/// Methods:
///
/// - `#[start] fn f(&self, cmd: C) -> Then<Self>` (or `Result<Then<Self>, E>`,
///   optionally with `ctx: &Context` after the command): the start decision,
///   on the default state. Exactly one.
/// - `#[signal] fn f(&self, cmd: S) -> Then<Self>` (same forms): a paused
///   instance's decision on signal `S`. Decisions are pure: the
///   [rules](crate::rules) apply, and they cannot be `async`.
/// - `#[step(timeout = "30s", max_retries = 3, backoff = "1s", failover = other)]
///   async fn f(&self, ctx: &StepContext, input: I) -> Then<Self>` (or
///   `Result<Then<Self>, E>` with `E: Display`; the input is optional): does
///   the work. `Self::f` names the step in transitions (`Then::to(Self::f, input)`).
///
/// Checked at compile time, each a spanned error: a transition, failover,
/// `on_timeout` or `on_cancel` to something that is not a step (or to a step
/// that takes an input), `on_timeout` without `timeout`, a step nothing reaches, a step whose body
/// names no move (`Then::to`, `pause`, `pause_for`, `end`, `fail`), an
/// `async` decision, a step with `&mut self`, and the rules in decisions.
/// Transition targets are seen when written `Then::to(Self::step, …)` or
/// `Then::pause_for(…, Self::step, …)`; one held in a variable is typed by the
/// compiler but not followed by the reachability check.
///
/// The state type needs `Default` (the start decision runs on it), `Clone`,
/// `Debug`, `Serialize` and `Deserialize` (the state is recorded as JSON in
/// the instance's events); step inputs need `Serialize` and `Deserialize`.
///
/// Generated: the `Self::<step>` constants, `enum <Type>Signal` (one variant
/// per signal command type, `From` each), `impl Workflow`, and an entry in the
/// workflow registry the runner drives.
pub use factum_macros::workflow;

/// The names most programs need: `use factum::prelude::*;`.
pub mod prelude {
    #[cfg(feature = "sqlite")]
    pub use crate::SqliteStore;
    #[cfg(feature = "sqlite")]
    pub use crate::sqlite::SqliteViewStore;
    pub use crate::{
        App, Clock, Codec, CommandError, Committed, ConsumerContext, Context, Entity, EntityRef, Event,
        EventMeta, EventSet, Handled, LoadError, ManualClock, Recorded, SendOptions, StepContext, Then,
        Timestamp, Uuid, ViewOp, consumer, entity, view, workflow,
    };
}

/// Items generated code refers to. Not part of the public API: no stability promise.
#[doc(hidden)]
pub mod __private {
    pub use crate::audit::{
        Audited, CommandDecoder, DeserializeProbe, EntityAudit, EventDecoder, NoDeserializeProbe,
        NoSerializeProbe, Probe, SerializeProbe,
    };
    pub use crate::consumer::{ConsumerRegistration, HandleFuture, IntoHandled, is_valid_consumer_name};
    pub use crate::entity::EntityRegistration;
    pub use crate::event::{EventRegistration, FieldShape, const_str_eq, decode_current, unknown_version};
    pub use crate::view::{IntoViewOp, ViewRegistration, is_valid_view_name};
    pub use crate::workflow::{
        IntoDecision, IntoStepResult, StepOptions, StepRef, WorkflowOptions, WorkflowRegistration,
        decode_input,
    };
    pub use inventory;
    pub use serde;
    pub use serde_json;
}
