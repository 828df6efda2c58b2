//! Entities: state rebuilt by folding events, and commands decided against it.
//!
//! `f(state, event) = state'` is [`Entity::apply`]; `f(state, command) =
//! {events}` is [`Entity::handle`]. `#[entity]` implements both from a plain
//! impl block; the runtime persists what `handle` decides and only then applies.

use std::cell::Cell;
use std::fmt::Debug;
use std::sync::Arc;

use uuid::Uuid;

use crate::codec::{Codec, CodecError};
use crate::event::EventSet;
use crate::store::Snapshot;
use crate::time::Timestamp;

/// A consistency boundary: one stream of events, one state. Implemented by `#[entity]`.
pub trait Entity: Default + Clone + Debug + Send + Sync + 'static {
    /// The stream type name stored with every event (`#[entity(name = …)]`).
    const NAME: &'static str;
    /// Store a snapshot every this many events (0: never; `#[entity(snapshot_every = …)]`).
    const SNAPSHOT_EVERY: u64;
    /// What a snapshot of this entity means, as the program declares it
    /// (`#[entity(snapshot_version = …)]`, 0 when absent). A stored snapshot
    /// written under another version is ignored and the state rebuilt from
    /// events: bump it when the state type or the meaning of its fields
    /// changes in a way `apply`'s own code does not show.
    const SNAPSHOT_VERSION: u32 = 0;
    /// A fingerprint of the `#[apply]` methods' code (their tokens, so
    /// formatting and comments do not count), computed by `#[entity]`. A
    /// snapshot written by other apply code is ignored like one of another
    /// [`SNAPSHOT_VERSION`](Entity::SNAPSHOT_VERSION). It cannot see helper
    /// functions `apply` calls, nor the state type: bump the version for those.
    const SNAPSHOT_FINGERPRINT: u64 = 0;
    /// The generated event enum.
    type Event: EventSet;
    /// The generated command enum.
    type Command: Clone + Debug + Send + 'static;
    /// What a rejected command returns. `Infallible` when no handler can reject.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Decides what happened: the events a command produces, or its rejection.
    /// Pure: the same state, command and context give the same answer.
    fn handle(&self, command: Self::Command, ctx: &Context) -> Result<Vec<Self::Event>, Self::Error>;

    /// Folds one event into the state. Never fails, never has side effects.
    fn apply(&mut self, event: &Self::Event);

    /// Encodes the state as a snapshot, when the entity declares `snapshot_every`.
    fn encode_snapshot(&self, codec: Codec) -> Option<Result<Vec<u8>, CodecError>> {
        let _ = codec;
        None
    }

    /// Decodes a snapshot, when the entity declares `snapshot_every`.
    fn decode_snapshot(codec: Codec, bytes: &[u8]) -> Option<Result<Self, CodecError>> {
        let _ = (codec, bytes);
        None
    }
}

/// What every stored snapshot payload starts with: a mark, then the
/// entity's [`SNAPSHOT_VERSION`](Entity::SNAPSHOT_VERSION) and
/// [`SNAPSHOT_FINGERPRINT`](Entity::SNAPSHOT_FINGERPRINT) (little-endian),
/// then (since the second mark) a CRC32C of the snapshot, then the state in
/// the snapshot's codec. Kept in the payload, so the stores' tables did not
/// change.
const SNAPSHOT_MARK: [u8; 2] = [0xFA, 0xC8];
/// The first mark: no checksum. Such snapshots stay readable, unchecked.
const SNAPSHOT_MARK_UNCHECKED: [u8; 2] = [0xFA, 0xC7];
const STAMP_LEN: usize = SNAPSHOT_MARK.len() + 4 + 8;
const SNAPSHOT_HEADER: usize = STAMP_LEN + 4;

/// The CRC32C a sealed snapshot carries: over where it belongs (stream type
/// and id, length-prefixed, and the version it includes), its codec, its
/// stamp and its state, so a torn or zeroed payload, or a snapshot row moved
/// to another stream or version, does not pass.
fn snapshot_checksum(snapshot: &Snapshot, stamp: &[u8], body: &[u8]) -> u32 {
    let mut crc = crc32c::crc32c(&(snapshot.stream_type.len() as u64).to_le_bytes());
    for part in [
        snapshot.stream_type.as_bytes(),
        &(snapshot.stream_id.len() as u64).to_le_bytes(),
        snapshot.stream_id.as_bytes(),
        &snapshot.version.to_le_bytes(),
        &[snapshot.codec.id()],
        stamp,
        body,
    ] {
        crc = crc32c::crc32c_append(crc, part);
    }
    crc
}

/// Who wrote a stored snapshot: the version and fingerprint in its header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SnapshotStamp {
    pub version: u32,
    pub fingerprint: u64,
}

impl SnapshotStamp {
    /// This program's stamp for `E`.
    pub(crate) fn of<E: Entity>() -> Self {
        SnapshotStamp {
            version: E::SNAPSHOT_VERSION,
            fingerprint: E::SNAPSHOT_FINGERPRINT,
        }
    }
}

impl std::fmt::Display for SnapshotStamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "snapshot_version {}, apply fingerprint {:016x}",
            self.version, self.fingerprint
        )
    }
}

/// A stored snapshot as this program reads it.
#[derive(Debug)]
pub(crate) enum SnapshotRead<E> {
    /// Written under this program's stamp, and it decodes.
    State(E),
    /// Written by other logic (`None`: before snapshots carried a stamp).
    Stale(Option<SnapshotStamp>),
    /// The stamp matches but the state does not decode.
    Undecodable(CodecError),
    /// The payload fails its checksum: torn, zeroed or tampered with.
    Corrupt(String),
    /// The entity keeps no snapshots.
    Unused,
}

/// Seals the snapshot of `state` into `snapshot.payload`: this program's
/// stamp, the checksum, then the state; `None` when the entity keeps no
/// snapshots. `snapshot` says where it belongs (its payload is replaced).
pub(crate) fn seal_snapshot<E: Entity>(
    state: &E,
    mut snapshot: Snapshot,
) -> Option<Result<Snapshot, CodecError>> {
    let body = match state.encode_snapshot(snapshot.codec)? {
        Ok(body) => body,
        Err(error) => return Some(Err(error)),
    };
    let stamp = SnapshotStamp::of::<E>();
    let mut payload = Vec::with_capacity(SNAPSHOT_HEADER + body.len());
    payload.extend_from_slice(&SNAPSHOT_MARK);
    payload.extend_from_slice(&stamp.version.to_le_bytes());
    payload.extend_from_slice(&stamp.fingerprint.to_le_bytes());
    let crc = snapshot_checksum(&snapshot, &payload, &body);
    payload.extend_from_slice(&crc.to_le_bytes());
    payload.extend_from_slice(&body);
    snapshot.payload = payload;
    Some(Ok(snapshot))
}

/// Reads a snapshot written by [`seal_snapshot`]: its state only when it
/// passes its checksum and was written under this program's stamp.
pub(crate) fn open_snapshot<E: Entity>(snapshot: &Snapshot) -> SnapshotRead<E> {
    if E::SNAPSHOT_EVERY == 0 {
        return SnapshotRead::Unused;
    }
    let payload = &snapshot.payload;
    let Some((stamp, body)) = (match payload.get(..SNAPSHOT_MARK.len()) {
        Some(mark) if mark == SNAPSHOT_MARK => {
            let Some(stored) = payload.get(STAMP_LEN..SNAPSHOT_HEADER) else {
                return SnapshotRead::Corrupt(format!(
                    "the payload is {} bytes, shorter than its {SNAPSHOT_HEADER}-byte header",
                    payload.len()
                ));
            };
            let stored = u32::from_le_bytes([stored[0], stored[1], stored[2], stored[3]]);
            let body = &payload[SNAPSHOT_HEADER..];
            let computed = snapshot_checksum(snapshot, &payload[..STAMP_LEN], body);
            if stored != computed {
                return SnapshotRead::Corrupt(format!(
                    "checksum mismatch: stored {stored:08x}, computed {computed:08x} over {} bytes",
                    payload.len()
                ));
            }
            read_stamp(payload).map(|stamp| (stamp, body))
        }
        Some(mark) if mark == SNAPSHOT_MARK_UNCHECKED => {
            read_stamp(payload).map(|stamp| (stamp, payload.get(STAMP_LEN..).unwrap_or_default()))
        }
        _ => None,
    }) else {
        return SnapshotRead::Stale(None);
    };
    if stamp != SnapshotStamp::of::<E>() {
        return SnapshotRead::Stale(Some(stamp));
    }
    match E::decode_snapshot(snapshot.codec, body) {
        Some(Ok(state)) => SnapshotRead::State(state),
        Some(Err(error)) => SnapshotRead::Undecodable(error),
        None => SnapshotRead::Unused,
    }
}

/// The stamp after either mark (the caller checked which).
fn read_stamp(payload: &[u8]) -> Option<SnapshotStamp> {
    let rest = payload.get(SNAPSHOT_MARK.len()..STAMP_LEN)?;
    let (version, fingerprint) = rest.split_at(4);
    Some(SnapshotStamp {
        version: u32::from_le_bytes(version.try_into().ok()?),
        fingerprint: u64::from_le_bytes(fingerprint.try_into().ok()?),
    })
}

/// An entity type linked into this program (entered by `#[entity]`).
#[derive(Debug)]
pub struct EntityRegistration {
    /// The stream type name.
    pub name: &'static str,
    /// The Rust type.
    pub rust_type: &'static str,
    /// The names of the events it applies.
    pub events: &'static [&'static str],
}

inventory::collect!(EntityRegistration);

/// Every entity type linked into this program.
pub fn registry() -> impl Iterator<Item = &'static EntityRegistration> {
    inventory::iter::<EntityRegistration>.into_iter()
}

/// What a command handler may know besides state and command.
///
/// Everything here is fixed before the handler runs, so deciding the same
/// command against the same state again (a retry, a test, a replay of the
/// decision) gives the same events: the time is read once by the runtime, and
/// the random numbers come from a generator seeded with the command id, the
/// entity id and the version the command is decided at. One command id sent to
/// two entities (a fan-out) draws different numbers in each.
#[derive(Debug, Clone)]
pub struct Context {
    command_id: Uuid,
    correlation_id: Uuid,
    now: Timestamp,
    entity_id: Arc<str>,
    version: u64,
    /// The generator's state; `None` until the handler draws its first
    /// number, so a handler that draws none never pays for the seed's hash
    /// of the entity id (~50 instructions per command, callgrind).
    rng: Cell<Option<u64>>,
}

impl Context {
    /// A context for one command. The runtime and the test kit build these; a
    /// user needs this only to call a handler by hand.
    pub fn new(command_id: Uuid, now: Timestamp, entity_id: impl Into<Arc<str>>, version: u64) -> Self {
        Context {
            command_id,
            correlation_id: command_id,
            now,
            entity_id: entity_id.into(),
            version,
            rng: Cell::new(None),
        }
    }

    /// The same context with another correlation id (the command that started a chain).
    pub fn with_correlation_id(mut self, correlation_id: Uuid) -> Self {
        self.correlation_id = correlation_id;
        self
    }

    /// The id of the command being handled.
    pub fn command_id(&self) -> Uuid {
        self.command_id
    }

    /// The id shared by every command and event of one business transaction.
    pub fn correlation_id(&self) -> Uuid {
        self.correlation_id
    }

    /// The time of this command, read once by the runtime before the handler ran.
    pub fn now(&self) -> Timestamp {
        self.now
    }

    /// [`now`](Context::now) as a `jiff::Timestamp` (feature `jiff`), for
    /// calendar arithmetic in a handler: `ctx.now_jiff().to_zoned(TimeZone::UTC).date()`.
    /// The runtime's clock is always within jiff's years -9999..=9999; a manual
    /// clock set beyond them saturates at jiff's bound.
    #[cfg(feature = "jiff")]
    pub fn now_jiff(&self) -> jiff::Timestamp {
        self.now.to_jiff().unwrap_or(if self.now.as_micros() < 0 {
            jiff::Timestamp::MIN
        } else {
            jiff::Timestamp::MAX
        })
    }

    /// The id of the entity handling the command.
    pub fn entity_id(&self) -> &str {
        &self.entity_id
    }

    /// The entity's version before this command: the number of events applied.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// A pseudo-random number, deterministic for this command, entity and version (splitmix64).
    pub fn random_u64(&self) -> u64 {
        let mut state = self
            .rng
            .get()
            .unwrap_or_else(|| crate::ids::context_seed(self.command_id, &self.entity_id, self.version));
        let next = crate::ids::splitmix_next(&mut state);
        self.rng.set(Some(state));
        next
    }

    /// A pseudo-random number in `0..bound` (`bound` > 0), deterministic like [`random_u64`](Context::random_u64).
    pub fn random_below(&self, bound: u64) -> u64 {
        assert!(bound > 0, "random_below needs a bound above zero");
        // Lemire's multiply-shift; the bias is below 2^-64 * bound, negligible here.
        ((u128::from(self.random_u64()) * u128::from(bound)) >> 64) as u64
    }

    /// A version-4-shaped UUID, deterministic like [`random_u64`](Context::random_u64).
    pub fn uuid(&self) -> Uuid {
        let bytes = (u128::from(self.random_u64()) << 64 | u128::from(self.random_u64())).to_be_bytes();
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    }
}
