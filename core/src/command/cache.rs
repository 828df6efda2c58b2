//! The entity cache: one slot per hot entity, holding its state and version
//! behind an async lock, so commands to one entity run one at a time.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::entity::Entity;

/// Every entity type's cached slots, bounded per type.
pub(crate) struct Cache {
    capacity: usize,
    by_type: Mutex<HashMap<TypeId, EntityCache>>,
}

/// One entity type's cached slots by id; each value is an `Arc<Slot<E>>`.
type EntityCache = HashMap<Arc<str>, Arc<dyn Any + Send + Sync>>;

pub(crate) struct Slot<E> {
    pub(crate) id: Arc<str>,
    pub(crate) loaded: tokio::sync::Mutex<Loaded<E>>,
}

pub(crate) struct Loaded<E> {
    pub(crate) state: E,
    pub(crate) version: u64,
    /// False until loaded, and after anything that may have left the cache behind the store.
    pub(crate) fresh: bool,
}

impl Cache {
    pub(crate) fn new(capacity: usize) -> Self {
        Cache {
            capacity: capacity.max(1),
            by_type: Mutex::new(HashMap::new()),
        }
    }

    /// The slot of entity `id` of type `E`, created empty (not yet loaded) if missing.
    pub(crate) fn slot<E: Entity>(&self, id: &str) -> Arc<Slot<E>> {
        let mut cache = self.by_type.lock().unwrap_or_else(|e| e.into_inner());
        let by_id = cache.entry(TypeId::of::<E>()).or_default();
        if let Some(slot) = by_id.get(id).and_then(|s| s.clone().downcast::<Slot<E>>().ok()) {
            return slot;
        }
        evict_idle(by_id, self.capacity);
        let id: Arc<str> = Arc::from(id);
        let slot = Arc::new(Slot::<E> {
            id: id.clone(),
            loaded: tokio::sync::Mutex::new(Loaded {
                state: E::default(),
                version: 0,
                fresh: false,
            }),
        });
        by_id.insert(id, slot.clone());
        slot
    }
}

/// At capacity, drops idle entities (no handle or command holds them) until a
/// quarter of the room is free; their state reloads from the store on next use.
/// The map's iteration order is random, so this is random eviction: cheap, and
/// unlike dropping every idle entity it leaves most hot entities cached.
fn evict_idle(by_id: &mut EntityCache, capacity: usize) {
    if by_id.len() < capacity {
        return;
    }
    let mut excess = by_id.len() + 1 - (capacity - capacity / 4);
    by_id.retain(|_, slot| {
        if excess > 0 && Arc::strong_count(slot) == 1 {
            excess -= 1;
            false
        } else {
            true
        }
    });
}
