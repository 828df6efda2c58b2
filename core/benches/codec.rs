//! Encoding and decoding one event payload with each codec.
//!
//! `cargo bench -p factum --bench codec`. Each iteration encodes (or decodes) a
//! batch of events through [`EventSet`], the path the runtime takes, so the
//! figures are events per second.

// `criterion_group!` generates a public function without docs.
#![allow(missing_docs)]

mod common;

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use factum::{Codec, EventSet};

use common::{AccountEvent, history};

const BATCH: usize = 1_000;
const CODECS: [(Codec, &str); 2] = [(Codec::Json, "json"), (Codec::Postcard, "postcard")];

fn encode(c: &mut Criterion) {
    let events = history(BATCH);
    let mut group = c.benchmark_group("codec/encode");
    group.throughput(Throughput::Elements(BATCH as u64));
    for (codec, name) in CODECS {
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| {
                for event in &events {
                    black_box(event.encode(codec).expect("bench events encode"));
                }
            })
        });
    }
    group.finish();
}

fn decode(c: &mut Criterion) {
    let events = history(BATCH);
    let mut group = c.benchmark_group("codec/decode");
    group.throughput(Throughput::Elements(BATCH as u64));
    for (codec, name) in CODECS {
        let stored: Vec<(&'static str, Vec<u8>)> = events
            .iter()
            .map(|e| (e.name(), e.encode(codec).expect("bench events encode")))
            .collect();
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| {
                for (event_type, payload) in &stored {
                    black_box(
                        AccountEvent::decode(event_type, 1, codec, payload).expect("bench events decode"),
                    );
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, encode, decode);
criterion_main!(benches);
