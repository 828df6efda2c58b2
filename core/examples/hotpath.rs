//! A small release binary for profiling the cached-command hot path under
//! `perf stat` / `perf record` / `valgrind --tool=callgrind`, where criterion's
//! own machinery would blur the picture.
//!
//! `cargo run --release -p factum --example hotpath -- [commands] [json|postcard]`
//! prints ns per command; divide `perf stat -e instructions:u` by the command
//! count for a figure that other builds on the machine do not disturb.

#[path = "../benches/common/mod.rs"]
mod common;

use std::time::Instant;

use factum::{App, Codec, MemoryStore};

use common::{Account, Deposit, Withdraw};

fn main() {
    let mut args = std::env::args().skip(1);
    let commands: u64 = match args.next() {
        None => 1_000_000,
        Some(n) => n.parse().unwrap_or_else(|_| {
            eprintln!("hotpath: the command count must be a whole number, got {n:?}");
            std::process::exit(2)
        }),
    };
    let codec = match args.next().as_deref() {
        None | Some("json") => Codec::Json,
        Some("postcard") => Codec::Postcard,
        Some(other) => {
            eprintln!("hotpath: the codec must be json or postcard, got {other:?}");
            std::process::exit(2)
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime");
    let app = App::builder().store(MemoryStore::new()).codec(codec).build();
    let account = app.entity::<Account>("acc-1");
    let elapsed = rt.block_on(async {
        let start = Instant::now();
        for i in 0..commands {
            let result = if i % 2 == 0 {
                account.send(Deposit { amount: 100 }).await
            } else {
                account.send(Withdraw { amount: 50 }).await
            };
            if let Err(e) = result {
                eprintln!("hotpath: command {i} failed: {e}");
                std::process::exit(1)
            }
        }
        start.elapsed()
    });
    let ns = elapsed.as_nanos() as f64 / commands as f64;
    println!(
        "hotpath codec={codec:?} commands={commands} ns_per_command={ns:.0} commands_per_sec={:.0}",
        1e9 / ns
    );
}
