//! What the macros enter for the audit tools: every event type's decoder to
//! JSON (upcast to the current version), and every entity's fold, state as
//! JSON and command decoders, all type-erased so a tool can work by the
//! names the store keeps.
//!
//! Commands and states need serde only for the tools: `#[entity]` probes at
//! compile time whether a command type is `Deserialize` (and the state
//! `Serialize`) and records the answer, so an entity whose commands are not
//! serde types still compiles and only `what-if` on them says what to derive.

use std::marker::PhantomData;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::AuditError;
use crate::codec::Codec;
use crate::entity::{Context, Entity};
use crate::event::{DecodeError, Event, EventSet};
use crate::store::{RecordedEvent, Snapshot};

/// An event type entered by `#[derive(Event)]`, for decoding stored payloads
/// of its name without knowing its Rust type.
pub struct EventDecoder {
    /// The stable type name.
    pub name: &'static str,
    /// The schema version the type writes.
    pub version: u32,
    /// The Rust type.
    pub rust_type: &'static str,
    decode: fn(u32, Codec, &[u8]) -> Result<Value, DecodeError>,
}

impl EventDecoder {
    /// The decoder of `E`.
    pub const fn of<E: Event>(rust_type: &'static str) -> Self {
        EventDecoder {
            name: E::NAME,
            version: E::VERSION,
            rust_type,
            decode: decode_event_json::<E>,
        }
    }

    /// Decodes a payload stored at `schema_version` as this type's current
    /// version (upcasting older ones), as JSON.
    pub fn decode(&self, schema_version: u32, codec: Codec, payload: &[u8]) -> Result<Value, DecodeError> {
        (self.decode)(schema_version, codec, payload)
    }
}

impl std::fmt::Debug for EventDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventDecoder")
            .field("name", &self.name)
            .field("version", &self.version)
            .field("rust_type", &self.rust_type)
            .finish()
    }
}

fn decode_event_json<E: Event>(
    schema_version: u32,
    codec: Codec,
    payload: &[u8],
) -> Result<Value, DecodeError> {
    let event = E::decode_stored(schema_version, codec, payload)?;
    serde_json::to_value(&event).map_err(|e| DecodeError::Payload {
        event_type: E::NAME,
        schema_version: E::VERSION,
        source: crate::codec::CodecError {
            codec: Codec::Json,
            message: format!("the decoded event is not JSON: {e}"),
        },
    })
}

inventory::collect!(EventDecoder);

/// The decoder for events stored under `name`: the type of that name with the
/// highest version (the one older versions upcast to).
pub fn event_decoder(name: &str) -> Option<&'static EventDecoder> {
    inventory::iter::<EventDecoder>
        .into_iter()
        .filter(|d| d.name == name)
        .max_by_key(|d| d.version)
}

/// Every event decoder linked into the program.
pub fn event_decoders() -> impl Iterator<Item = &'static EventDecoder> {
    inventory::iter::<EventDecoder>.into_iter()
}

/// A command decoder found by the probe: the command type is `Deserialize`.
pub type CommandDecoder<C> = fn(&str) -> Result<C, String>;

/// What `#[entity]` implements for the audit tools. Not for users to implement.
#[doc(hidden)]
pub trait Audited: Entity {
    /// The command types' names (the `<Type>Command` variants), in handler order.
    const COMMANDS: &'static [&'static str];

    /// The state as JSON; `None` when the state type is not `Serialize`.
    fn state_json(&self) -> Option<Result<Value, String>>;

    /// The decoder of the command type `name`: `None` when the entity has no
    /// such command, `Some(None)` when the type is not `Deserialize`.
    fn command_decoder(name: &str) -> Option<Option<CommandDecoder<Self::Command>>>;
}

/// An entity type entered by `#[entity]`, type-erased for the audit tools.
pub struct EntityAudit {
    /// The stream type name.
    pub name: &'static str,
    /// The Rust type.
    pub rust_type: &'static str,
    /// The names of the events it applies.
    pub events: &'static [&'static str],
    /// The names of its command types.
    pub commands: &'static [&'static str],
    fresh: fn() -> Box<dyn Fold>,
    deserializable: fn(&str) -> bool,
}

impl EntityAudit {
    /// The entry of `E`.
    pub const fn of<E: Audited>(rust_type: &'static str) -> Self {
        EntityAudit {
            name: E::NAME,
            rust_type,
            events: <E::Event as EventSet>::NAMES,
            commands: E::COMMANDS,
            fresh: fresh::<E>,
            deserializable: deserializable::<E>,
        }
    }

    /// A fresh state (version 0) to fold events into.
    pub(crate) fn fold(&self) -> Box<dyn Fold> {
        (self.fresh)()
    }

    /// True when the command type `name` is `Deserialize`, so `what-if` can read it.
    pub fn command_is_deserializable(&self, name: &str) -> bool {
        (self.deserializable)(name)
    }
}

impl std::fmt::Debug for EntityAudit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EntityAudit")
            .field("name", &self.name)
            .field("rust_type", &self.rust_type)
            .field("events", &self.events)
            .field("commands", &self.commands)
            .finish()
    }
}

inventory::collect!(EntityAudit);

/// Every entity linked into the program, for the audit tools.
pub fn entities() -> impl Iterator<Item = &'static EntityAudit> {
    inventory::iter::<EntityAudit>.into_iter()
}

/// The entity whose stream type is `name`.
pub fn entity(name: &str) -> Result<&'static EntityAudit, AuditError> {
    entities().find(|e| e.name == name).ok_or_else(|| {
        let mut known: Vec<&'static str> = entities().map(|e| e.name).collect();
        known.sort_unstable();
        AuditError::UnknownEntity {
            stream_type: name.to_owned(),
            known,
        }
    })
}

fn fresh<E: Audited>() -> Box<dyn Fold> {
    Box::new(Erased::<E> {
        state: E::default(),
        version: 0,
    })
}

fn deserializable<E: Audited>(name: &str) -> bool {
    matches!(E::command_decoder(name), Some(Some(_)))
}

/// An event a hypothetical command decided, as JSON.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DecidedEvent {
    /// The event's stable type name.
    pub event_type: &'static str,
    /// The schema version it would be written with.
    pub schema_version: u32,
    /// The event, as JSON.
    pub payload: Value,
}

/// What a command decided against a forked state.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Decision {
    /// The events it would write (already applied to the fork).
    Accepted(Vec<DecidedEvent>),
    /// Its rejection, as the entity's error displays it.
    Rejected(String),
}

/// One entity's state, type-erased: folded from stored records, shown as
/// JSON, asked to decide hypothetical commands.
pub(crate) trait Fold: Send {
    /// The entity's stream type name.
    fn stream_type(&self) -> &'static str;
    /// The version folded so far.
    fn version(&self) -> u64;
    /// Decodes `record` and applies it; it must be the next version.
    fn apply(&mut self, record: &RecordedEvent) -> Result<(), AuditError>;
    /// Restores a stored snapshot; false when the entity keeps none, it was
    /// written by other apply logic, or it no longer decodes.
    fn restore(&mut self, snapshot: &Snapshot) -> bool;
    /// The state as JSON.
    fn state(&self) -> Result<Value, AuditError>;
    /// Decides `command` (its type name and JSON) through the entity's own
    /// handler and applies what it decided to this fork.
    fn decide(
        &mut self,
        stream_id: &str,
        command: &str,
        json: &str,
        ctx: &Context,
    ) -> Result<Decision, AuditError>;
}

struct Erased<E: Audited> {
    state: E,
    version: u64,
}

impl<E: Audited> Fold for Erased<E> {
    fn stream_type(&self) -> &'static str {
        E::NAME
    }

    fn version(&self) -> u64 {
        self.version
    }

    fn apply(&mut self, record: &RecordedEvent) -> Result<(), AuditError> {
        let expected = self.version + 1;
        if record.version != expected {
            return Err(AuditError::Gap {
                stream_type: E::NAME,
                stream_id: record.stream_id.clone(),
                expected,
                found: record.version,
            });
        }
        let event = E::Event::decode(
            &record.event_type,
            record.schema_version,
            record.codec,
            &record.payload,
        )
        .map_err(|source| AuditError::Decode {
            stream_type: E::NAME,
            stream_id: record.stream_id.clone(),
            version: record.version,
            source,
        })?;
        let state = &mut self.state;
        crate::unwind::guard(|| state.apply(&event)).map_err(|message| AuditError::ApplyPanicked {
            stream_type: E::NAME,
            stream_id: record.stream_id.clone(),
            version: record.version,
            event_type: record.event_type.clone(),
            message,
        })?;
        self.version = record.version;
        Ok(())
    }

    fn restore(&mut self, snapshot: &Snapshot) -> bool {
        // A snapshot of other apply logic would show a state these events do not give.
        match crate::entity::open_snapshot::<E>(snapshot) {
            crate::entity::SnapshotRead::State(state) => {
                self.state = state;
                self.version = snapshot.version;
                true
            }
            _ => false,
        }
    }

    fn state(&self) -> Result<Value, AuditError> {
        match self.state.state_json() {
            Some(Ok(value)) => Ok(value),
            Some(Err(reason)) => Err(AuditError::StateEncode {
                stream_type: E::NAME,
                version: self.version,
                reason,
            }),
            None => Err(AuditError::StateNotSerialize {
                stream_type: E::NAME,
                rust_type: std::any::type_name::<E>(),
            }),
        }
    }

    fn decide(
        &mut self,
        stream_id: &str,
        command: &str,
        json: &str,
        ctx: &Context,
    ) -> Result<Decision, AuditError> {
        let decoder = match E::command_decoder(command) {
            Some(Some(decoder)) => decoder,
            Some(None) => {
                return Err(AuditError::CommandNotDeserialize {
                    stream_type: E::NAME,
                    command: command.to_owned(),
                });
            }
            None => {
                return Err(AuditError::UnknownCommand {
                    stream_type: E::NAME,
                    command: command.to_owned(),
                    known: E::COMMANDS,
                });
            }
        };
        let cmd = decoder(json).map_err(|reason| AuditError::CommandJson {
            stream_type: E::NAME,
            command: command.to_owned(),
            reason,
        })?;
        let state = &self.state;
        let decided = crate::unwind::guard(|| state.handle(cmd, ctx)).map_err(|message| {
            AuditError::HandlerPanicked {
                stream_type: E::NAME,
                stream_id: stream_id.to_owned(),
                version: self.version,
                command: command.to_owned(),
                message,
            }
        })?;
        let events = match decided {
            Ok(events) => events,
            Err(rejection) => return Ok(Decision::Rejected(rejection.to_string())),
        };
        let mut out = Vec::with_capacity(events.len());
        for event in &events {
            let bytes = event
                .encode(Codec::Json)
                .map_err(|reason| AuditError::StateEncode {
                    stream_type: E::NAME,
                    version: self.version,
                    reason: format!("event `{}` does not encode: {reason}", event.name()),
                })?;
            let payload = serde_json::from_slice(&bytes).map_err(|e| AuditError::StateEncode {
                stream_type: E::NAME,
                version: self.version,
                reason: format!("event `{}` is not JSON: {e}", event.name()),
            })?;
            out.push(DecidedEvent {
                event_type: event.name(),
                schema_version: event.schema_version(),
                payload,
            });
            let state = &mut self.state;
            crate::unwind::guard(|| state.apply(event)).map_err(|message| AuditError::ApplyPanicked {
                stream_type: E::NAME,
                stream_id: stream_id.to_owned(),
                version: self.version + 1,
                event_type: event.name().to_owned(),
                message,
            })?;
            self.version += 1;
        }
        Ok(Decision::Accepted(out))
    }
}

/// The compile-time probe `#[entity]` uses: `(&&Probe::<T>::new()).…()`
/// resolves to the serde-using method when `T` implements the trait, and to
/// the fallback otherwise (method resolution tries `&&Probe` before `&Probe`).
#[doc(hidden)]
pub struct Probe<T>(PhantomData<T>);

impl<T> Probe<T> {
    /// The probe.
    pub const fn new() -> Self {
        Probe(PhantomData)
    }
}

impl<T> Default for Probe<T> {
    fn default() -> Self {
        Probe::new()
    }
}

/// The probe's answer for a `Deserialize` command type.
#[doc(hidden)]
pub trait DeserializeProbe<T> {
    /// The decoder into the command enum `C`.
    fn command_decoder<C: From<T>>(&self) -> Option<CommandDecoder<C>>;
}

impl<T: DeserializeOwned> DeserializeProbe<T> for &Probe<T> {
    fn command_decoder<C: From<T>>(&self) -> Option<CommandDecoder<C>> {
        Some(decode_command::<T, C>)
    }
}

/// The probe's answer for any other command type: no decoder.
#[doc(hidden)]
pub trait NoDeserializeProbe {
    /// No decoder.
    fn command_decoder<C>(&self) -> Option<CommandDecoder<C>> {
        None
    }
}

impl<T> NoDeserializeProbe for Probe<T> {}

fn decode_command<T: DeserializeOwned, C: From<T>>(json: &str) -> Result<C, String> {
    serde_json::from_str::<T>(json)
        .map(C::from)
        .map_err(|e| e.to_string())
}

/// The probe's answer for a `Serialize` state.
#[doc(hidden)]
pub trait SerializeProbe<T> {
    /// The state as JSON.
    fn state_json(&self, state: &T) -> Option<Result<Value, String>>;
}

impl<T: Serialize> SerializeProbe<T> for &Probe<T> {
    fn state_json(&self, state: &T) -> Option<Result<Value, String>> {
        Some(serde_json::to_value(state).map_err(|e| e.to_string()))
    }
}

/// The probe's answer for any other state: none.
#[doc(hidden)]
pub trait NoSerializeProbe<T> {
    /// None.
    fn state_json(&self, _state: &T) -> Option<Result<Value, String>> {
        None
    }
}

impl<T> NoSerializeProbe<T> for Probe<T> {}
