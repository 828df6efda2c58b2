//! Commands with timers pending, for instruction counts that other builds on
//! the machine do not disturb: `valgrind --tool=callgrind` (or `perf stat -e
//! instructions:u`) of two runs with different command counts, the
//! difference divided by the difference in commands, is the cost of one
//! command; compare it with 0 and with 10,000 timers pending.
//!
//! `cargo run --release -p factum --example timers_hotpath -- <commands> <pending> [memory|sqlite]`

#[path = "../benches/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use factum::sqlite::{SqliteStore, SqliteTimerStore, Synchronous};
use factum::{App, ManualClock, MemoryStore, Timestamp};

use common::{Account, Deposit, Withdraw};

fn arg(n: Option<String>, what: &str) -> u64 {
    match n {
        Some(n) => n.parse().unwrap_or_else(|_| {
            eprintln!("timers_hotpath: {what} must be a whole number, got {n:?}");
            std::process::exit(2)
        }),
        None => {
            eprintln!("usage: timers_hotpath <commands> <pending> [memory|sqlite]");
            std::process::exit(2)
        }
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let commands = arg(args.next(), "the command count");
    let pending = arg(args.next(), "the pending timer count");
    let backend = args.next().unwrap_or_else(|| "memory".to_owned());
    let dir = std::env::temp_dir().join(format!("factum-timers-hotpath-{}", std::process::id()));
    let t0 = Timestamp::from_secs(1_893_456_000);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime");
    let elapsed = rt.block_on(async {
        let builder = App::builder().clock(ManualClock::new(t0));
        let app = match backend.as_str() {
            "memory" => builder.store(MemoryStore::new()).build(),
            "sqlite" => {
                std::fs::create_dir_all(&dir).expect("a temporary directory");
                let path = dir.join("events.db");
                let store = SqliteStore::options()
                    .synchronous(Synchronous::Normal)
                    .open(&path)
                    .expect("open sqlite");
                let timers = SqliteTimerStore::open(&path).expect("open the timer table");
                builder.store(store).timer_store(timers).build()
            }
            other => {
                eprintln!("timers_hotpath: the store must be memory or sqlite, got {other:?}");
                std::process::exit(2)
            }
        };
        let due = t0 + Duration::from_secs(365 * 86_400);
        for i in 0..pending {
            app.timers()
                .schedule::<Account, _>(
                    &format!("fee:{i}"),
                    &format!("other-{i}"),
                    due,
                    Withdraw { amount: 1 },
                )
                .await
                .expect("schedule");
        }
        app.timers().wait_idle().await.expect("the runner settles");
        let account = app.entity::<Account>("acc-1");
        let start = Instant::now();
        for i in 0..commands {
            let result = if i % 2 == 0 {
                account.send(Deposit { amount: 100 }).await
            } else {
                account.send(Withdraw { amount: 50 }).await
            };
            if let Err(e) = result {
                eprintln!("timers_hotpath: command {i} failed: {e}");
                std::process::exit(1)
            }
        }
        start.elapsed()
    });
    let _ = std::fs::remove_dir_all(&dir);
    let ns = elapsed.as_nanos() as f64 / commands.max(1) as f64;
    println!("timers_hotpath store={backend} pending={pending} commands={commands} ns_per_command={ns:.0}");
}
