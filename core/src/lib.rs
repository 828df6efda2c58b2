//! factum: event sourcing for Rust. See the README (rendered below) for the
//! tour; the modules are named for the talk's building blocks.
#![doc = include_str!("../../README.md")]
#![forbid(unsafe_code)]

pub mod codec;
pub mod entity;
pub mod event;
pub mod runtime;
pub mod store;
pub mod testkit;
pub mod time;
pub mod view;

pub use codec::{Codec, CodecError};
pub use entity::{Context, Entity};
pub use event::{DecodeError, Event, EventSet, IntoEvents};

pub use runtime::{App, AppBuilder, CommandError, Committed, EntityRef, LoadError, Recorded, SendOptions};
pub use store::{EventStore, MemoryStore, RecordedEvent};
pub use time::{Clock, ManualClock, SystemClock, Timestamp};
pub use view::{EventMeta, View, ViewError, ViewHandle, ViewOp};

/// Derives [`Event`] for a struct: `#[event(name = "…", version = N, upcast_from = Type)]`.
pub use factum_macros::Event;
/// Turns an inherent impl block into an [`Entity`]: `#[handle]` and `#[apply]` methods.
pub use factum_macros::entity;
/// Turns an inherent impl block of a row type into a [`View`]: `#[on]` handlers fold events into rows.
pub use factum_macros::view;

/// The names most programs need: `use factum::prelude::*;`.
pub mod prelude {
    pub use crate::{App, Codec, CommandError, Context, Entity, Event, EventMeta, EventSet, Timestamp, ViewOp, entity, view};
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
