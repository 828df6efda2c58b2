//! Store throughput: durable appends (one writer, 64 group-committed writers,
//! PostgreSQL with 16 writers) and loading a 10,000-event stream (SQLite and
//! PostgreSQL), next to the machine's raw fsync rate that bounds one-writer
//! durable appends.
//!
//! `cargo bench -p factum --features postgres --bench store`
//! (PostgreSQL runs only when `FACTUM_PG_URL` is set).
#![allow(missing_docs, reason = "criterion_group! generates an undocumented pub fn")]

use std::hint::black_box;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use factum::sqlite::{SqliteStore, Synchronous};
use factum::store::{AppendRequest, EventMetadata, EventStore, NewEvent, Snapshot};
use factum::{Codec, Timestamp};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[cfg(feature = "postgres")]
mod pg;

#[derive(Serialize, Deserialize)]
struct Deposited {
    account: String,
    amount: u64,
}

fn event(codec: Codec, amount: u64) -> NewEvent {
    NewEvent {
        event_type: "account.deposited".into(),
        schema_version: 1,
        codec,
        payload: codec
            .encode(&Deposited {
                account: "acc-000042".into(),
                amount,
            })
            .unwrap(),
        // Derived ids, as the runtime derives them from the command id: a
        // random v4 per id would put three getrandom calls on every event.
        metadata: EventMetadata {
            event_id: Uuid::from_u128(u128::from(amount) << 64 | 1),
            recorded_at: Timestamp::from_micros(1_700_000_000_000_000),
            command_id: Uuid::from_u128(u128::from(amount) << 64 | 2),
            causation_id: None,
            correlation_id: Uuid::from_u128(u128::from(amount) << 64 | 3),
        },
    }
}

fn one(stream_id: String, expected: u64, codec: Codec) -> AppendRequest {
    several(stream_id, expected, 1, codec)
}

fn several(stream_id: String, expected: u64, count: u64, codec: Codec) -> AppendRequest {
    AppendRequest {
        stream_type: "account".into(),
        stream_id: stream_id.into(),
        expected_version: expected,
        events: (0..count).map(|i| event(codec, expected + i)).collect(),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The machine's durable-write rate: 4 KiB write + fdatasync, as a WAL commit
/// does — appending (the file grows, so metadata is flushed too) and
/// overwriting one block (as SQLite does once its WAL is reset and reused).
fn fsync_rate(c: &mut Criterion) {
    use std::io::{Seek, SeekFrom};
    let dir = tempfile::tempdir().unwrap();
    let page = [7u8; 4096];
    let mut g = c.benchmark_group("fsync");
    g.sample_size(10).measurement_time(Duration::from_secs(4));
    g.throughput(Throughput::Elements(1));
    let mut growing = std::fs::File::create(dir.path().join("growing")).unwrap();
    g.bench_function("append_4k_fdatasync", |b| {
        b.iter(|| {
            growing.write_all(&page).unwrap();
            growing.sync_data().unwrap();
        })
    });
    let mut fixed = std::fs::File::create(dir.path().join("fixed")).unwrap();
    fixed.write_all(&page).unwrap();
    fixed.sync_all().unwrap();
    g.bench_function("overwrite_4k_fdatasync", |b| {
        b.iter(|| {
            fixed.seek(SeekFrom::Start(0)).unwrap();
            fixed.write_all(&page).unwrap();
            fixed.sync_data().unwrap();
        })
    });
    g.finish();
}

fn sqlite_append(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::options()
        .synchronous(Synchronous::Full)
        .open(dir.path().join("append.db"))
        .unwrap();
    let mut g = c.benchmark_group("sqlite_append_full");
    g.sample_size(10).measurement_time(Duration::from_secs(5));

    g.throughput(Throughput::Elements(1));
    let version = AtomicU64::new(0);
    g.bench_function("one_writer_one_event_per_commit", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let v = version.load(Ordering::Relaxed);
                    store.append(one("single".into(), v, Codec::Json)).await.unwrap();
                    version.store(v + 1, Ordering::Relaxed);
                }
                start.elapsed()
            })
        })
    });

    const WRITERS: u64 = 64;
    const PER_WRITER: u64 = 50;
    g.throughput(Throughput::Elements(WRITERS * PER_WRITER));
    let round = AtomicU64::new(0);
    g.bench_function("64_writers_group_commit", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let r = round.fetch_add(1, Ordering::Relaxed);
                    total += concurrent_appends(Arc::new(store.clone()), WRITERS, PER_WRITER, 1, r).await;
                }
                total
            })
        })
    });
    g.finish();
}

/// `writers` tasks, each appending `per_writer` commits of `events` events to its own stream.
async fn concurrent_appends(
    store: Arc<dyn EventStore>,
    writers: u64,
    per_writer: u64,
    events: u64,
    round: u64,
) -> Duration {
    let start = Instant::now();
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                let id = format!("r{round}-w{w}");
                for v in 0..per_writer {
                    store
                        .append(several(id.clone(), v * events, events, Codec::Json))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    start.elapsed()
}

#[cfg(feature = "postgres")]
fn postgres_append(c: &mut Criterion) {
    let rt = runtime();
    pg::with_store("append", &rt, |store| append_16_writers(c, &rt, store));
}

#[cfg(feature = "postgres")]
fn append_16_writers(c: &mut Criterion, rt: &tokio::runtime::Runtime, store: &factum::PostgresStore) {
    const WRITERS: u64 = 16;
    const PER_WRITER: u64 = 100;
    let mut g = c.benchmark_group("postgres_append");
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    g.throughput(Throughput::Elements(WRITERS * PER_WRITER));
    let round = AtomicU64::new(0);
    g.bench_function("16_writers", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let r = round.fetch_add(1, Ordering::Relaxed);
                    total += concurrent_appends(Arc::new(store.clone()), WRITERS, PER_WRITER, 1, r).await;
                }
                total
            })
        })
    });
    // The same writers when each command emits ten events.
    g.throughput(Throughput::Elements(WRITERS * PER_WRITER * 10));
    g.bench_function("16_writers_10_events_per_append", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let r = round.fetch_add(1, Ordering::Relaxed);
                    total += concurrent_appends(Arc::new(store.clone()), WRITERS, PER_WRITER, 10, r).await;
                }
                total
            })
        })
    });
    g.finish();
}

#[cfg(not(feature = "postgres"))]
fn postgres_append(_: &mut Criterion) {
    println!("skipping the postgres bench: built without the `postgres` feature");
}

/// Loading a 10,000-event stream and decoding every payload, as an entity load does.
fn sqlite_load(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::options()
        .synchronous(Synchronous::Off)
        .open(dir.path().join("load.db"))
        .unwrap();
    load_10k(c, "sqlite_load_10k", &rt, &store);
}

/// The same load from PostgreSQL, where every JSON record read is checked
/// against its checksum through the canonical form (`jsonb` rewrites the
/// text), unlike SQLite, which hands back the bytes written.
#[cfg(feature = "postgres")]
fn postgres_load(c: &mut Criterion) {
    let rt = runtime();
    pg::with_store("load", &rt, |store| load_10k(c, "postgres_load_10k", &rt, store));
}

#[cfg(not(feature = "postgres"))]
fn postgres_load(_: &mut Criterion) {
    println!("skipping the postgres load bench: built without the `postgres` feature");
}

/// Fills one 10,000-event stream per codec with a snapshot at 9,900, then
/// times reading it whole and from the snapshot on.
fn load_10k(c: &mut Criterion, group: &str, rt: &tokio::runtime::Runtime, store: &impl EventStore) {
    const EVENTS: u64 = 10_000;
    rt.block_on(async {
        for codec in [Codec::Json, Codec::Postcard] {
            let id = format!("{codec:?}");
            for chunk in 0..EVENTS / 1000 {
                let events = (0..1000).map(|i| event(codec, chunk * 1000 + i)).collect();
                store
                    .append(AppendRequest {
                        stream_type: "account".into(),
                        stream_id: id.clone().into(),
                        expected_version: chunk * 1000,
                        events,
                    })
                    .await
                    .unwrap();
            }
            store
                .save_snapshot(Snapshot {
                    stream_type: "account".into(),
                    stream_id: id.clone(),
                    version: EVENTS - 100,
                    codec,
                    payload: codec.encode(&(EVENTS - 100)).unwrap(),
                })
                .await
                .unwrap();
        }
    });
    let mut g = c.benchmark_group(group);
    g.sample_size(10).measurement_time(Duration::from_secs(4));
    g.throughput(Throughput::Elements(EVENTS));
    for codec in [Codec::Json, Codec::Postcard] {
        let id = format!("{codec:?}");
        g.bench_function(format!("{id}_from_scratch"), |b| {
            b.iter(|| {
                rt.block_on(async {
                    let events = store.read_stream("account", &id, 1, usize::MAX).await.unwrap();
                    let mut sum = 0;
                    for e in &events {
                        sum += e.codec.decode::<Deposited>(&e.payload).unwrap().amount;
                    }
                    black_box(sum)
                })
            })
        });
        g.bench_function(format!("{id}_with_snapshot_at_9900"), |b| {
            b.iter(|| {
                rt.block_on(async {
                    let snap = store.load_snapshot("account", &id).await.unwrap().unwrap();
                    let mut sum = snap.codec.decode::<u64>(&snap.payload).unwrap();
                    let events = store
                        .read_stream("account", &id, snap.version + 1, usize::MAX)
                        .await
                        .unwrap();
                    for e in &events {
                        sum += e.codec.decode::<Deposited>(&e.payload).unwrap().amount;
                    }
                    black_box(sum)
                })
            })
        });
    }
    g.finish();
}

criterion_group!(
    benches,
    fsync_rate,
    sqlite_append,
    postgres_append,
    sqlite_load,
    postgres_load
);
criterion_main!(benches);
