//! How a cold entity load grows with its stream: one entity whose stream holds
//! 100, 10,000 or 1,000,000 events, loaded into a fresh [`App`] (nothing
//! cached), from its events alone and from a snapshot 100 events behind the
//! head (`snapshot_every = 100`, so the most a load reads after one).
//!
//! `cargo bench -p factum --features postgres --bench scale` (SQLite, and
//! PostgreSQL when `FACTUM_PG_URL` is set). The streams are filled through
//! the store's append in pages of 1,000 events, written as the runtime writes
//! them; the fill is not timed.
#![allow(missing_docs, reason = "criterion_group! generates an undocumented pub fn")]

use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use factum::prelude::*;
use factum::sqlite::{SqliteStore, Synchronous};
use factum::store::{AppendRequest, EventMetadata, EventStore, NewEvent};
use factum::{Codec, Uuid};
use serde::{Deserialize, Serialize};

#[cfg(feature = "postgres")]
mod pg;

/// Money in.
#[derive(Clone, Debug)]
pub struct Credit {
    amount: u64,
}

/// Money came in.
#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "scale.credited")]
pub struct Credited {
    amount: u64,
}

/// An account that never snapshots: every load folds its whole stream.
#[derive(Default, Clone, Debug, PartialEq)]
pub struct Plain {
    balance: u64,
}

#[entity(name = "scale_plain")]
impl Plain {
    #[handle]
    fn credit(&self, cmd: Credit) -> Credited {
        Credited { amount: cmd.amount }
    }
    #[apply]
    fn credited(&mut self, e: &Credited) {
        self.balance += e.amount;
    }
}

/// The same account with a snapshot every 100 events.
#[derive(Default, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Snapshotted {
    balance: u64,
}

#[entity(name = "scale_snapshotted", snapshot_every = 100)]
impl Snapshotted {
    #[handle]
    fn credit(&self, cmd: Credit) -> Credited {
        Credited { amount: cmd.amount }
    }
    #[apply]
    fn credited(&mut self, e: &Credited) {
        self.balance += e.amount;
    }
}

const SIZES: [u64; 3] = [100, 10_000, 1_000_000];
const PAGE: u64 = 1_000;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Appends events `from..to` (1-based versions) of the stream, one credit of
/// 1 each, in pages.
async fn fill(store: &impl EventStore, stream_type: &'static str, id: &str, from: u64, to: u64) {
    let mut version = from;
    while version <= to {
        let last = (version + PAGE - 1).min(to);
        let events = (version..=last)
            .map(|v| NewEvent {
                event_type: Credited::NAME.into(),
                schema_version: Credited::VERSION,
                codec: Codec::Json,
                payload: Codec::Json.encode(&Credited { amount: 1 }).unwrap(),
                metadata: EventMetadata {
                    event_id: Uuid::from_u128(u128::from(v) << 64 | 1),
                    recorded_at: Timestamp::from_micros(1_700_000_000_000_000),
                    command_id: Uuid::from_u128(u128::from(v) << 64 | 2),
                    causation_id: None,
                    correlation_id: Uuid::from_u128(u128::from(v) << 64 | 3),
                },
            })
            .collect();
        store
            .append(AppendRequest {
                stream_type: stream_type.into(),
                stream_id: id.to_owned().into(),
                expected_version: version - 1,
                events,
            })
            .await
            .unwrap();
        version = last + 1;
    }
}

/// Fills both entities' streams to `events`; the snapshotted one's snapshot
/// is taken by the runtime itself, by the command that crosses version
/// `events - 100`.
async fn prepare<S: EventStore + Clone>(store: &S, events: u64) {
    let id = format!("n{events}");
    fill(store, Plain::NAME, &id, 1, events).await;
    let app = App::builder().store(store.clone()).build();
    let snapshot_at = events - 100;
    if snapshot_at > 0 {
        fill(store, Snapshotted::NAME, &id, 1, snapshot_at - 1).await;
        app.entity::<Snapshotted>(id.clone())
            .send(Credit { amount: 1 })
            .await
            .unwrap();
    }
    fill(store, Snapshotted::NAME, &id, snapshot_at + 1, events).await;
}

/// A cold load: a fresh app (an empty cache) over the filled store, timed
/// from the call until the entity is loaded (its version back).
async fn cold_load<E: Entity>(store: &(impl EventStore + Clone), id: &str, events: u64) -> Duration {
    let app = App::builder().store(store.clone()).build();
    let entity = app.entity::<E>(id);
    let start = Instant::now();
    let version = entity.version().await.unwrap();
    let took = start.elapsed();
    assert_eq!(version, events, "{} {id}", E::NAME);
    took
}

fn load_by_size<S: EventStore + Clone>(
    c: &mut Criterion,
    group: &str,
    rt: &tokio::runtime::Runtime,
    store: &S,
) {
    for events in SIZES {
        rt.block_on(prepare(store, events));
    }
    let mut g = c.benchmark_group(group);
    g.sample_size(10).measurement_time(Duration::from_secs(3));
    for events in SIZES {
        let id = format!("n{events}");
        g.throughput(Throughput::Elements(events));
        g.bench_with_input(BenchmarkId::new("from_events", events), &events, |b, &events| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        total += cold_load::<Plain>(store, &id, events).await;
                    }
                    total
                })
            })
        });
        g.bench_with_input(
            BenchmarkId::new("from_snapshot", events),
            &events,
            |b, &events| {
                b.iter_custom(|iters| {
                    rt.block_on(async {
                        let mut total = Duration::ZERO;
                        for _ in 0..iters {
                            total += cold_load::<Snapshotted>(store, &id, events).await;
                        }
                        total
                    })
                })
            },
        );
    }
    g.finish();
}

fn sqlite(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::options()
        .synchronous(Synchronous::Off)
        .open(dir.path().join("scale.db"))
        .unwrap();
    load_by_size(c, "entity_load_sqlite", &rt, &store);
}

#[cfg(feature = "postgres")]
fn postgres(c: &mut Criterion) {
    let rt = runtime();
    pg::with_store("scale", &rt, |store| {
        load_by_size(c, "entity_load_postgres", &rt, store)
    });
}

#[cfg(not(feature = "postgres"))]
fn postgres(_: &mut Criterion) {
    println!("skipping the postgres scale bench: built without the `postgres` feature");
}

criterion_group!(benches, sqlite, postgres);
criterion_main!(benches);
