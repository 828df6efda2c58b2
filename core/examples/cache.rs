//! What a cached entity costs in memory, and what the entity cache does at
//! its capacity: resident memory per cached entity (the slope between two
//! counts of cached entities, so fixed costs cancel), then commands on working
//! sets below, at and above the capacity, with the loads from the store each
//! command needed (counted by a store wrapper) and the resident memory after.
//!
//! `cargo run --release -p factum --example cache [capacity]` (default
//! 10,000). The events go to a SQLite file (`synchronous=OFF`) so the log's
//! size stays out of the process's memory; SQLite's own page cache is bounded.
#![forbid(unsafe_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use factum::prelude::*;
use factum::sqlite::{SqliteStore, Synchronous};
use factum::store::{AppendNow, AppendRequest, Appended, EventStore, RecordedEvent, Snapshot, StoreError};
use tokio::sync::watch;

/// Money in.
#[derive(Clone, Debug)]
pub struct Credit {
    amount: u64,
}

/// Money came in.
#[derive(Event, serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq)]
#[event(name = "cache_example.credited")]
pub struct Credited {
    amount: u64,
}

/// A small entity: the per-entity cost is then mostly the runtime's own.
#[derive(Default, Clone, Debug, PartialEq)]
pub struct Ledger {
    balance: u64,
}

#[entity(name = "ledger")]
impl Ledger {
    #[handle]
    fn credit(&self, cmd: Credit) -> Credited {
        Credited { amount: cmd.amount }
    }
    #[apply]
    fn credited(&mut self, e: &Credited) {
        self.balance += e.amount;
    }
}

/// A store that counts the stream reads going through it: each is a load of
/// an entity that was not cached (or was evicted).
#[derive(Clone)]
struct Counting {
    inner: SqliteStore,
    reads: Arc<AtomicU64>,
}

#[async_trait::async_trait]
impl EventStore for Counting {
    async fn append(&self, request: AppendRequest) -> Result<Appended, StoreError> {
        self.inner.append(request).await
    }
    fn append_now(&self, request: AppendRequest) -> AppendNow {
        self.inner.append_now(request)
    }
    async fn read_stream(
        &self,
        stream_type: &str,
        stream_id: &str,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        self.inner
            .read_stream(stream_type, stream_id, from_version, limit)
            .await
    }
    async fn command_events(
        &self,
        stream_type: &str,
        stream_id: &str,
        command_id: factum::Uuid,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner
            .command_events(stream_type, stream_id, command_id)
            .await
    }
    async fn read_all(&self, from_position: u64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.read_all(from_position, limit).await
    }
    async fn stream_version(&self, stream_type: &str, stream_id: &str) -> Result<u64, StoreError> {
        self.inner.stream_version(stream_type, stream_id).await
    }
    async fn head(&self) -> Result<u64, StoreError> {
        self.inner.head().await
    }
    fn watch_head(&self) -> watch::Receiver<u64> {
        self.inner.watch_head()
    }
    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<(), StoreError> {
        self.inner.save_snapshot(snapshot).await
    }
    async fn load_snapshot(
        &self,
        stream_type: &str,
        stream_id: &str,
    ) -> Result<Option<Snapshot>, StoreError> {
        self.inner.load_snapshot(stream_type, stream_id).await
    }
    fn codec(&self) -> factum::Codec {
        self.inner.codec()
    }
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
}

/// This process's resident memory, from `/proc/self/status` (Linux).
fn resident_bytes() -> Result<u64, String> {
    let status =
        std::fs::read_to_string("/proc/self/status").map_err(|e| format!("/proc/self/status: {e}"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .ok_or("/proc/self/status has no VmRSS line (not Linux?)")?;
    let kib: u64 = line
        .trim_start_matches("VmRSS:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .map_err(|e| format!("VmRSS {line:?}: {e}"))?;
    Ok(kib * 1024)
}

const WRITERS: u64 = 16;

/// Sends one credit to each entity `from..to`, from [`WRITERS`] tasks.
async fn touch(app: &App, from: u64, to: u64) {
    let tasks: Vec<_> = (0..WRITERS)
        .map(|w| {
            let app = app.clone();
            tokio::spawn(async move {
                let mut i = from + w;
                while i < to {
                    app.entity::<Ledger>(format!("l{i}"))
                        .send(Credit { amount: 1 })
                        .await
                        .expect("a credit commits");
                    i += WRITERS;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("a writer task");
    }
}

/// Random credits over entities `0..working_set` for `secs`; commands sent.
async fn random_credits(app: &App, working_set: u64, secs: u64) -> u64 {
    let sent = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + Duration::from_secs(secs);
    let tasks: Vec<_> = (0..WRITERS)
        .map(|w| {
            let app = app.clone();
            let sent = sent.clone();
            tokio::spawn(async move {
                let mut x = 0x9e37_79b9_7f4a_7c15_u64 ^ (w + 1);
                while Instant::now() < until {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    app.entity::<Ledger>(format!("l{}", x % working_set))
                        .send(Credit { amount: 1 })
                        .await
                        .expect("a credit commits");
                    sent.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("a writer task");
    }
    sent.load(Ordering::Relaxed)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let capacity: u64 = match std::env::args().nth(1) {
        Some(arg) => arg.parse().map_err(|e| format!("capacity {arg:?}: {e}"))?,
        None => 10_000,
    };
    let dir = tempfile::tempdir()?;
    let open = |name: &str| -> Result<Counting, StoreError> {
        Ok(Counting {
            inner: SqliteStore::options()
                .synchronous(Synchronous::Off)
                .open(dir.path().join(name))?,
            reads: Arc::new(AtomicU64::new(0)),
        })
    };

    // Memory: 100 k, then 200 k entities cached in a cache that holds them all.
    const STEP: u64 = 100_000;
    let app = App::builder()
        .store(open("memory.db")?)
        .cache_capacity(4 * STEP as usize)
        .build();
    touch(&app, 0, STEP).await;
    let first = resident_bytes()?;
    touch(&app, STEP, 2 * STEP).await;
    let second = resident_bytes()?;
    println!(
        "cache memory entities={} rss_mib={:.1} then entities={} rss_mib={:.1} bytes_per_cached_entity={}",
        STEP,
        first as f64 / (1 << 20) as f64,
        2 * STEP,
        second as f64 / (1 << 20) as f64,
        second.saturating_sub(first) / STEP,
    );
    drop(app);

    // At capacity: working sets around it, each on a fresh app and file.
    for working_set in [capacity / 2, capacity, 2 * capacity, 10 * capacity] {
        let store = open(&format!("ws{working_set}.db"))?;
        let reads = store.reads.clone();
        let app = App::builder()
            .store(store)
            .cache_capacity(capacity as usize)
            .build();
        touch(&app, 0, working_set).await;
        let before = reads.load(Ordering::Relaxed);
        let start = Instant::now();
        let sent = random_credits(&app, working_set, 5).await;
        let secs = start.elapsed().as_secs_f64();
        let loads = reads.load(Ordering::Relaxed) - before;
        println!(
            "cache capacity={capacity} working_set={working_set} commands={sent} commands_per_sec={:.0} loads_per_command={:.3} rss_mib={:.1}",
            sent as f64 / secs,
            loads as f64 / sent.max(1) as f64,
            resident_bytes()? as f64 / (1 << 20) as f64,
        );
    }
    Ok(())
}
