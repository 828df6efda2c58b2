//! Pending timers must not slow commands down: a command on a cached entity
//! with 0 and with 10,000 timers pending (due in a year, the runner running
//! and waiting), on memory and on SQLite (timers in the events file).
//!
//! `cargo bench -p factum --bench timers`. One core: a current-thread tokio
//! runtime, which also drives the timer runner. Compare the two lines of each
//! group: the design target is "no difference beyond noise".

// `criterion_group!` generates a public function without docs.
#![allow(missing_docs)]

mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use factum::sqlite::{SqliteStore, SqliteTimerStore, Synchronous};
use factum::{App, ManualClock, MemoryStore, Timestamp};

use common::{Account, Deposit, Withdraw};

const PENDING: [u64; 2] = [0, 10_000];
const T0: Timestamp = Timestamp::from_secs(1_893_456_000);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime")
}

/// Schedules `n` timers for other accounts, due in a year, and lets the runner settle.
async fn pend(app: &App, n: u64) {
    let due = T0 + Duration::from_secs(365 * 86_400);
    for i in 0..n {
        app.timers()
            .schedule::<Account, _>(
                &format!("fee:{i}"),
                &format!("other-{i}"),
                due,
                Withdraw { amount: 1 },
            )
            .await
            .expect("schedule a pending timer");
    }
    app.timers().wait_idle().await.expect("the runner settles");
    assert_eq!(app.timers().pending().await.expect("pending").len() as u64, n);
}

/// `iters` commands on one cached account, alternating deposits and withdrawals.
async fn commands(app: &App, iters: u64) -> Duration {
    let account = app.entity::<Account>("acc-1");
    account
        .send(Deposit { amount: 1 })
        .await
        .expect("warm-up deposit");
    let start = Instant::now();
    for i in 0..iters {
        let committed = if i % 2 == 0 {
            account.send(Deposit { amount: 100 }).await
        } else {
            account.send(Withdraw { amount: 50 }).await
        };
        black_box(committed.expect("bench commands commit"));
    }
    start.elapsed()
}

fn memory(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("timers/memory_cached_command");
    group.throughput(Throughput::Elements(1));
    for n in PENDING {
        // Built inside the runtime, so the timer runner runs beside the commands.
        let app = rt.block_on(async {
            let app = App::builder()
                .store(MemoryStore::new())
                .clock(ManualClock::new(T0))
                .build();
            pend(&app, n).await;
            app
        });
        group.bench_function(BenchmarkId::new("pending", n), |b| {
            b.iter_custom(|iters| rt.block_on(commands(&app, iters)))
        });
    }
    group.finish();
}

fn sqlite(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("timers/sqlite_command");
    group.throughput(Throughput::Elements(1));
    group.sample_size(20);
    for n in PENDING {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("events.db");
        let app = rt.block_on(async {
            // NORMAL: the figure is the command path, not the disk's fsync rate.
            let store = SqliteStore::options()
                .synchronous(Synchronous::Normal)
                .open(&path)
                .expect("open sqlite");
            let app = App::builder()
                .store(store)
                .timer_store(SqliteTimerStore::open(&path).expect("open the timer table"))
                .clock(ManualClock::new(T0))
                .build();
            pend(&app, n).await;
            app
        });
        group.bench_function(BenchmarkId::new("pending", n), |b| {
            b.iter_custom(|iters| rt.block_on(commands(&app, iters)))
        });
        drop(app);
        drop(dir);
    }
    group.finish();
}

criterion_group!(benches, memory, sqlite);
criterion_main!(benches);
