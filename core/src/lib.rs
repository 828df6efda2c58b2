//! factum: event sourcing for Rust. See the README (rendered below) for the
//! tour; the modules are named for the talk's building blocks.
#![doc = include_str!("../../README.md")]
#![forbid(unsafe_code)]

pub mod codec;
pub mod entity;
pub mod event;
pub mod fault;
pub mod rules;
pub mod runtime;
pub mod store;
pub mod testkit;
pub mod time;
pub mod view;

pub use codec::{Codec, CodecError};
pub use entity::{Context, Entity};
pub use event::{DecodeError, Event, EventSet, IntoEvents};

pub use runtime::{App, AppBuilder, CommandError, Committed, EntityRef, LoadError, Recorded, SendOptions};
#[cfg(feature = "postgres")]
pub use store::PostgresStore;
pub use store::{EventStore, MemoryStore, RecordedEvent, SqliteStore};
pub use time::{Clock, ManualClock, SystemClock, Timestamp};
/// Command, event and correlation ids.
pub use uuid::Uuid;
pub use view::{EventMeta, View, ViewError, ViewHandle, ViewOp};

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
pub use factum_macros::entity;
/// Turns an inherent impl block of a row type into a [`View`]: `#[on]` handlers fold events into rows.
pub use factum_macros::view;

/// The names most programs need: `use factum::prelude::*;`.
pub mod prelude {
    pub use crate::{
        App, Codec, CommandError, Committed, Context, Entity, EntityRef, Event, EventMeta, EventSet,
        ManualClock, Recorded, SendOptions, SqliteStore, Timestamp, Uuid, ViewOp, entity, view,
    };
}

/// Items generated code refers to. Not part of the public API: no stability promise.
#[doc(hidden)]
pub mod __private {
    pub use crate::entity::EntityRegistration;
    pub use crate::event::{EventRegistration, const_str_eq, decode_current, unknown_version};
    pub use crate::view::{IntoViewOp, ViewRegistration};
    pub use inventory;
    pub use serde;
}
