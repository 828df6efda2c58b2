//! Folding events into state: `f(state, event) = state'`, N times.
//!
//! `cargo bench -p factum --bench fold`. `fold/decoded` is the left fold alone
//! (design §5: ≥ 10 M events/s); `fold/decode+fold/<codec>` adds decoding the
//! stored payloads, the cost of loading an entity from a store minus the I/O.

// `criterion_group!` generates a public function without docs.
#![allow(missing_docs)]

mod common;

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use factum::{Codec, Entity, EventSet};

use common::{Account, AccountEvent, history};

const N: usize = 10_000;

fn fold_decoded(c: &mut Criterion) {
    let events = history(N);
    let mut group = c.benchmark_group("fold");
    group.throughput(Throughput::Elements(N as u64));
    group.bench_function("decoded", |b| {
        b.iter(|| {
            let mut state = Account::default();
            for event in black_box(&events) {
                state.apply(event);
            }
            black_box(state)
        })
    });
    group.finish();
}

fn decode_and_fold(c: &mut Criterion) {
    let events = history(N);
    let mut group = c.benchmark_group("fold/decode+fold");
    group.throughput(Throughput::Elements(N as u64));
    for (codec, name) in [(Codec::Json, "json"), (Codec::Postcard, "postcard")] {
        let stored: Vec<(&'static str, Vec<u8>)> = events
            .iter()
            .map(|e| (e.name(), e.encode(codec).expect("bench events encode")))
            .collect();
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| {
                let mut state = Account::default();
                for (event_type, payload) in &stored {
                    let event =
                        AccountEvent::decode(event_type, 1, codec, payload).expect("bench events decode");
                    state.apply(&event);
                }
                black_box(state)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, fold_decoded, decode_and_fold);
criterion_main!(benches);
