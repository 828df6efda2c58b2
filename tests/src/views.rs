//! Views over hand-written events for the view tests: a tally per stream (a
//! count and a sum, so a skipped or doubled event shows), a tally per amount
//! digit (a key other than the stream id), and row deletion.

use factum::prelude::*;
use factum::store::{AppendRequest, EventMetadata, EventStore, NewEvent};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Implements `factum::Event` by hand (the derive lives on another branch).
macro_rules! handwritten_event {
    ($ty:ident, $name:literal) => {
        impl factum::Event for $ty {
            const NAME: &'static str = $name;
            const VERSION: u32 = 1;
            fn decode_stored(
                schema_version: u32,
                codec: factum::Codec,
                payload: &[u8],
            ) -> Result<Self, factum::DecodeError> {
                if schema_version == Self::VERSION {
                    factum::__private::decode_current::<Self>(codec, payload)
                } else {
                    Err(factum::__private::unknown_version::<Self>(schema_version))
                }
            }
        }
    };
}

/// An amount was scored on a stream.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Scored {
    /// How much.
    pub amount: u64,
}
handwritten_event!(Scored, "test.scored");

/// The stream's tally was cleared.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Cleared {}
handwritten_event!(Cleared, "test.cleared");

/// An event no test view handles.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ignored {
    /// Noise.
    pub note: String,
}
handwritten_event!(Ignored, "test.ignored");

/// One row per stream: how many `Scored`, their sum, and the last position.
#[derive(Default, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    /// Number of `Scored` events folded.
    pub count: u64,
    /// Sum of their amounts.
    pub sum: u64,
    /// `"even"` or `"odd"`: the parity of `sum` (an indexed field).
    pub parity: String,
    /// When the last event was recorded.
    pub last_at: Timestamp,
}

#[view(name = "test_tally", version = 1, index = [parity])]
impl Tally {
    #[on]
    fn scored(&mut self, e: &Scored, meta: &EventMeta) {
        self.count += 1;
        self.sum += e.amount;
        self.parity = if self.sum.is_multiple_of(2) { "even" } else { "odd" }.to_owned();
        self.last_at = meta.recorded_at;
    }

    #[on]
    fn cleared(&mut self, _e: &Cleared) -> ViewOp {
        ViewOp::Delete
    }
}

/// One row per last digit of the amount, over all streams.
#[derive(Default, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ByDigit {
    /// Number of `Scored` events with this digit.
    pub count: u64,
    /// Sum of their amounts.
    pub sum: u64,
}

#[view(name = "test_by_digit")]
impl ByDigit {
    #[on(key = e.amount % 10)]
    fn scored(&mut self, e: &Scored) {
        self.count += 1;
        self.sum += e.amount;
    }
}

/// Appends one event to `stream` at `expected_version`; returns its position.
pub async fn append<E: factum::Event>(
    store: &dyn EventStore,
    stream: &str,
    expected_version: u64,
    event: &E,
) -> u64 {
    append_many(store, stream, expected_version, std::slice::from_ref(event)).await
}

/// Appends events to `stream` at `expected_version`; returns the last position.
pub async fn append_many<E: factum::Event>(
    store: &dyn EventStore,
    stream: &str,
    expected_version: u64,
    events: &[E],
) -> u64 {
    let events = events
        .iter()
        .map(|event| NewEvent {
            event_type: E::NAME.into(),
            schema_version: E::VERSION,
            codec: Codec::Json,
            payload: Codec::Json.encode(event).expect("test events encode"),
            metadata: EventMetadata {
                event_id: uuid::Uuid::new_v4(),
                recorded_at: Timestamp::from_secs(1_767_225_600),
                command_id: uuid::Uuid::new_v4(),
                causation_id: None,
                correlation_id: uuid::Uuid::new_v4(),
            },
        })
        .collect();
    store
        .append(AppendRequest {
            stream_type: "test".into(),
            stream_id: stream.into(),
            expected_version,
            events,
        })
        .await
        .expect("append")
        .last_position
}

/// The deterministic log of the crash tests: event `i` (from 0) scores
/// `amount(i)` on stream `s{i % streams}`.
pub fn amount(i: u64) -> u64 {
    (i.wrapping_mul(7919) % 1000) + 1
}

/// Writes the deterministic log of `n` events over `streams` streams, in
/// batches of `per_append` events per stream append.
pub async fn write_log(store: &dyn EventStore, n: u64, streams: u64) {
    let mut versions = vec![0u64; streams as usize];
    for i in 0..n {
        let s = (i % streams) as usize;
        append(
            store,
            &format!("s{s}"),
            versions[s],
            &Scored { amount: amount(i) },
        )
        .await;
        versions[s] += 1;
    }
}

/// How many streams the crash tests' log spreads over.
pub const CHILD_STREAMS: u64 = 1000;

/// Writes `n` events (`n` a multiple of `streams * 100`) over `streams`
/// streams, 100 events per append, so a durable store takes it in seconds.
pub async fn write_log_in_chunks(store: &dyn EventStore, n: u64, streams: u64) {
    let rounds = n / streams / 100;
    let mut i = 0;
    for round in 0..rounds {
        for s in 0..streams {
            let events: Vec<Scored> = (0..100)
                .map(|_| {
                    i += 1;
                    Scored { amount: amount(i) }
                })
                .collect();
            append_many(store, &format!("s{s}"), round * 100, &events).await;
        }
    }
}

/// A fresh fold of every `Scored` in `store`: (count, sum) per stream.
pub async fn fold_log(store: &dyn EventStore) -> BTreeMap<String, (u64, u64)> {
    let mut out: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut from = 1;
    loop {
        let page = store.read_all(from, 4096).await.expect("read the log");
        let Some(last) = page.last() else { return out };
        from = last.position + 1;
        for record in page
            .iter()
            .filter(|r| r.event_type == <Scored as factum::Event>::NAME)
        {
            let e: Scored = Codec::Json.decode(&record.payload).expect("decode");
            let row = out.entry(record.stream_id.clone()).or_default();
            row.0 += 1;
            row.1 += e.amount;
        }
    }
}

/// What the tally view must contain after folding that log: a fresh fold.
pub fn expected_tallies(n: u64, streams: u64) -> BTreeMap<String, (u64, u64)> {
    let mut out: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for i in 0..n {
        let row = out.entry(format!("s{}", i % streams)).or_default();
        row.0 += 1;
        row.1 += amount(i);
    }
    out
}
