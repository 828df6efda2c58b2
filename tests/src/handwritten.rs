//! A counter entity implemented by hand against the `factum` traits.

use factum::{Codec, CodecError, Context, DecodeError, Entity, Event, EventSet};
use serde::{Deserialize, Serialize};

/// Added to the counter.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Added {
    /// How much.
    pub amount: u64,
}

impl Event for Added {
    const NAME: &'static str = "counter.added";
    const VERSION: u32 = 1;
    fn decode_stored(schema_version: u32, codec: Codec, payload: &[u8]) -> Result<Self, DecodeError> {
        if schema_version == Self::VERSION {
            factum::__private::decode_current::<Self>(codec, payload)
        } else {
            Err(factum::__private::unknown_version::<Self>(schema_version))
        }
    }
}

/// The counter's events.
#[derive(Clone, Debug, PartialEq)]
pub enum CounterEvent {
    /// See [`Added`].
    Added(Added),
}

impl EventSet for CounterEvent {
    const NAMES: &'static [&'static str] = &[Added::NAME];
    fn name(&self) -> &'static str {
        Added::NAME
    }
    fn schema_version(&self) -> u32 {
        Added::VERSION
    }
    fn as_any(&self) -> &dyn std::any::Any {
        match self {
            CounterEvent::Added(e) => e,
        }
    }
    fn encode(&self, codec: Codec) -> Result<Vec<u8>, CodecError> {
        match self {
            CounterEvent::Added(e) => codec.encode(e),
        }
    }
    fn decode(name: &str, schema_version: u32, codec: Codec, payload: &[u8]) -> Result<Self, DecodeError> {
        if name == Added::NAME {
            Added::decode_stored(schema_version, codec, payload).map(CounterEvent::Added)
        } else {
            Err(DecodeError::UnknownType {
                event_type: name.to_owned(),
                known: Self::NAMES,
            })
        }
    }
}

/// Add to the counter.
#[derive(Clone, Debug)]
pub struct Add {
    /// How much; zero is rejected.
    pub amount: u64,
}

/// Why the counter refuses.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum CounterError {
    /// Adding zero changes nothing.
    #[error("cannot add zero")]
    Zero,
}

/// A counter.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Counter {
    /// The sum of all additions.
    pub total: u64,
    /// How many additions.
    pub additions: u64,
}

impl Entity for Counter {
    const NAME: &'static str = "counter";
    const SNAPSHOT_EVERY: u64 = 0;
    type Event = CounterEvent;
    type Command = Add;
    type Error = CounterError;

    fn handle(&self, command: Add, _ctx: &Context) -> Result<Vec<CounterEvent>, CounterError> {
        if command.amount == 0 {
            return Err(CounterError::Zero);
        }
        Ok(vec![CounterEvent::Added(Added {
            amount: command.amount,
        })])
    }

    fn apply(&mut self, event: &CounterEvent) {
        match event {
            CounterEvent::Added(e) => {
                self.total += e.amount;
                self.additions += 1;
            }
        }
    }
}

impl From<Added> for CounterEvent {
    fn from(e: Added) -> Self {
        CounterEvent::Added(e)
    }
}
