//! View catch-up throughput: fold a log of N events into a fresh view, into
//! memory, SQLite and PostgreSQL (the last only with `FACTUM_PG_URL`, else a
//! skip notice). Targets (design §5): ≥ 1 M events/s in memory, ≥ 100 k/s into SQLite.
//!
//! `cargo bench -p factum --bench views [--features postgres]`
#![allow(missing_docs)] // criterion_group! generates an undocumented function

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use factum::Uuid;
use factum::prelude::*;
use factum::sqlite::SqliteViewStore;
use factum::store::{AppendRequest, EventMetadata, EventStore, MemoryStore, NewEvent};
use factum::view::{MemoryViewStore, ViewStore};
use serde::{Deserialize, Serialize};

const EVENTS: u64 = 200_000;
const STREAMS: u64 = 1_000;

/// An amount scored on a stream.
#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "bench.scored")]
pub struct Scored {
    amount: u64,
}

/// An event of another type the view skips by name.
#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "bench.noise")]
pub struct Noise {
    note: String,
}

/// Count and sum per stream.
#[derive(Default, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Tally {
    count: u64,
    sum: u64,
}

#[view(name = "bench_tally")]
impl Tally {
    #[on]
    fn scored(&mut self, e: &Scored) {
        self.count += 1;
        self.sum += e.amount;
    }
}

/// `EVENTS` events over `STREAMS` streams, one in ten of a type the view skips.
async fn log(codec: Codec) -> Arc<dyn EventStore> {
    let store = MemoryStore::new();
    let per_append = 100;
    let mut i = 0u64;
    for round in 0..EVENTS / STREAMS / per_append {
        for s in 0..STREAMS {
            let events = (0..per_append)
                .map(|_| {
                    i += 1;
                    let (event_type, payload) = if i.is_multiple_of(10) {
                        ("bench.noise", codec.encode(&Noise { note: "x".repeat(16) }))
                    } else {
                        ("bench.scored", codec.encode(&Scored { amount: i % 1000 }))
                    };
                    NewEvent {
                        event_type: event_type.into(),
                        schema_version: 1,
                        codec,
                        payload: payload.expect("encode"),
                        metadata: EventMetadata {
                            event_id: Uuid::from_u128(u128::from(i)),
                            recorded_at: Timestamp::from_secs(1_767_225_600),
                            command_id: Uuid::from_u128(u128::from(i)),
                            causation_id: None,
                            correlation_id: Uuid::from_u128(u128::from(i)),
                        },
                    }
                })
                .collect();
            store
                .append(AppendRequest {
                    stream_type: "bench".into(),
                    stream_id: format!("s{s}").into(),
                    expected_version: round * per_append,
                    events,
                })
                .await
                .expect("append");
        }
    }
    Arc::new(store)
}

/// Starts the view on a fresh view store and waits until it has folded the whole log.
async fn catch_up(log: Arc<dyn EventStore>, views: Arc<dyn ViewStore>) -> Duration {
    let app = App::builder().shared_store(log).shared_view_store(views).build();
    let started = Instant::now();
    app.start_view::<Tally>().await.expect("start");
    app.view::<Tally>().wait_for(EVENTS).await.expect("catch up");
    started.elapsed()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("view_catch_up");
    group.throughput(Throughput::Elements(EVENTS));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));

    for codec in [Codec::Json, Codec::Postcard] {
        let log = rt.block_on(log(codec));
        group.bench_function(format!("memory/{codec:?}"), |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| rt.block_on(catch_up(log.clone(), Arc::new(MemoryViewStore::new()))))
                    .sum()
            })
        });
        group.bench_function(format!("sqlite/{codec:?}"), |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| {
                        let dir = tempfile::tempdir().expect("tempdir");
                        let views = SqliteViewStore::open(dir.path().join("views.db")).expect("open");
                        rt.block_on(catch_up(log.clone(), Arc::new(views)))
                    })
                    .sum()
            })
        });
        #[cfg(feature = "postgres")]
        match std::env::var("FACTUM_PG_URL") {
            Ok(url) if !url.is_empty() => {
                let mut n = 0u32;
                group.bench_function(format!("postgres/{codec:?}"), |b| {
                    b.iter_custom(|iters| {
                        (0..iters)
                            .map(|_| {
                                n += 1;
                                let schema = format!("factum_bench_views_{}_{n}", std::process::id());
                                let views = rt
                                    .block_on(factum::postgres::PostgresViewStore::connect_in_schema(
                                        &url, &schema,
                                    ))
                                    .expect("connect");
                                let took = rt.block_on(catch_up(log.clone(), Arc::new(views)));
                                rt.block_on(drop_schema(&url, &schema));
                                took
                            })
                            .sum()
                    })
                });
            }
            _ => eprintln!("skipping view_catch_up/postgres: set FACTUM_PG_URL to run it"),
        }
    }
    // The realistic embedded case: the log in a SQLite file, the view in the same file.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("log.db");
    let sqlite_log: Arc<dyn EventStore> = {
        let _guard = rt.enter();
        let store = factum::sqlite::SqliteStore::options()
            .synchronous(factum::sqlite::Synchronous::Off)
            .open(&path)
            .expect("sqlite log");
        let source = rt.block_on(log(Codec::Json));
        rt.block_on(copy(&*source, &store));
        Arc::new(store)
    };
    let mut n = 0u32;
    group.bench_function("sqlite_log_to_sqlite_view/Json", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    n += 1;
                    // A fresh view each time: a new file beside the log would not share
                    // its page cache, so the view goes into the log's own file under a new name.
                    let views = SqliteViewStore::open(&path).expect("open");
                    let took = rt.block_on(catch_up(sqlite_log.clone(), Arc::new(views)));
                    rt.block_on(reset_sqlite_views(&path));
                    took
                })
                .sum()
        })
    });
    #[cfg(not(feature = "postgres"))]
    eprintln!("skipping view_catch_up/postgres: build with --features postgres and set FACTUM_PG_URL");
    group.finish();
}

/// Copies a log stream by stream, 100 events per append, keeping positions in order.
async fn copy(from: &dyn EventStore, to: &dyn EventStore) {
    let mut next = 1;
    loop {
        let page = from.read_all(next, 100).await.expect("read");
        let Some(last) = page.last() else { return };
        next = last.position + 1;
        for r in page {
            to.append(AppendRequest {
                stream_type: r.stream_type.into(),
                stream_id: r.stream_id.into(),
                expected_version: r.version - 1,
                events: vec![NewEvent {
                    event_type: r.event_type.into(),
                    schema_version: r.schema_version,
                    codec: r.codec,
                    payload: r.payload,
                    metadata: r.metadata,
                }],
            })
            .await
            .expect("append");
        }
    }
}

/// Forgets the bench view's tables in a SQLite file, so the next run starts from 0.
async fn reset_sqlite_views(path: &std::path::Path) {
    let conn = rusqlite::Connection::open(path).expect("open");
    conn.busy_timeout(Duration::from_secs(10)).expect("busy timeout");
    conn.execute_batch(
        "DROP TABLE IF EXISTS fv_bench_tally_v1_b0; DROP TABLE IF EXISTS fv_bench_tally_v1_b0_ix;
         DELETE FROM factum_view_tables WHERE view = 'bench_tally';",
    )
    .expect("reset");
}

#[cfg(feature = "postgres")]
async fn drop_schema(url: &str, schema: &str) {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    client
        .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .await
        .expect("drop schema");
}

criterion_group!(benches, bench);
criterion_main!(benches);
