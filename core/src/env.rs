//! What every subsystem shares: the event store, the clock, and the codec new
//! records are written with. Subsystems depend on this, never on `App`.

use std::fmt;
use std::sync::Arc;

use crate::codec::Codec;
use crate::store::EventStore;
use crate::time::Clock;

/// The store, clock and codec of one app. Cloning is cheap and shares them.
#[derive(Clone)]
pub struct Env {
    store: Arc<dyn EventStore>,
    clock: Arc<dyn Clock>,
    codec: Codec,
}

impl Env {
    /// An environment over `store`, reading time from `clock`, writing new
    /// events and snapshots with `codec`.
    pub fn new(store: Arc<dyn EventStore>, clock: Arc<dyn Clock>, codec: Codec) -> Self {
        Env { store, clock, codec }
    }

    /// The event store.
    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.store
    }

    /// The clock commands (and timers) read their time from.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The codec new records are written with.
    pub fn codec(&self) -> Codec {
        self.codec
    }
}

impl fmt::Debug for Env {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Env")
            .field("store", &self.store.backend())
            .field("codec", &self.codec)
            .finish_non_exhaustive()
    }
}
