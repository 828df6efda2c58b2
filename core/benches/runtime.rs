//! A command on a cached entity through [`App`] on a [`MemoryStore`]: handle,
//! encode, append, apply — the runtime's hot path without I/O.
//!
//! `cargo bench -p factum --bench runtime`. One core: a current-thread tokio
//! runtime, one entity handle kept across commands (design §5: ≥ 1 M commands/s).
//! Every command commits one event (deposits and withdrawals of half as much,
//! alternating, so the balance always covers the withdrawal).

// `criterion_group!` generates a public function without docs.
#![allow(missing_docs)]

mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use factum::{App, Codec, MemoryStore};

use common::{Account, Deposit, Withdraw};

fn cached_command(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime");
    let mut group = c.benchmark_group("runtime/cached_command");
    group.throughput(Throughput::Elements(1));
    for (codec, name) in [(Codec::Json, "json"), (Codec::Postcard, "postcard")] {
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter_custom(|iters| {
                // A fresh store per sample keeps the log (and its reallocation) small.
                let app = App::builder().store(MemoryStore::new()).codec(codec).build();
                let account = app.entity::<Account>("acc-1");
                rt.block_on(async {
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
                })
            })
        });
    }
    group.finish();
}

fn rejected_command(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime");
    let mut group = c.benchmark_group("runtime/rejected_command");
    group.throughput(Throughput::Elements(1));
    group.bench_function("json", |b| {
        b.iter_custom(|iters| {
            let app = App::builder().store(MemoryStore::new()).build();
            let account = app.entity::<Account>("acc-1");
            rt.block_on(async {
                account
                    .send(Deposit { amount: 1 })
                    .await
                    .expect("warm-up deposit");
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(
                        account
                            .send(Withdraw { amount: 1_000 })
                            .await
                            .expect_err("overdraft"),
                    );
                }
                start.elapsed()
            })
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5));
    targets = cached_command, rejected_command
}
criterion_main!(benches);
