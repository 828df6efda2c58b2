//! A load tool and a correctness check in one: the bank workload, from many
//! writers at once, against a chosen store; then the stored log is folded
//! again by a fresh app and must give the balances the accepted commands imply.
//!
//! ```text
//! cargo run --release -p factum-examples --bin loadgen -- \
//!     --store memory|sqlite|postgres --writers N --entities M --seconds S \
//!     [--codec json|postcard] [--path file.db] [--pg-url URL]
//! ```
//!
//! It opens M accounts, then N tokio tasks send deposits and withdrawals to
//! random accounts for S seconds (withdrawals up to more than a typical
//! balance, so a share is rejected), shows a progress bar, and prints one line:
//!
//! `loadgen store=sqlite writers=64 entities=1000 commands=... events=...
//! rejected=... secs=... events_per_sec=... p50_us=... p99_us=...`
//!
//! Exits 1 if the stored log does not fold to the expected balances, 2 on bad
//! arguments.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use factum::prelude::*;
use factum::sqlite::SqliteStore;
use factum::store::EventStore;
use factum::{EntityRef, EventSet, MemoryStore, PostgresStore};
use factum_examples::bank::{Account, AccountError, Deposit, Open, Withdraw};
use indicatif::{ProgressBar, ProgressStyle};

/// What the command line asked for.
#[derive(Debug)]
struct Args {
    store: StoreKind,
    writers: usize,
    entities: usize,
    seconds: f64,
    codec: Codec,
    path: Option<String>,
    pg_url: String,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum StoreKind {
    Memory,
    Sqlite,
    Postgres,
}

impl StoreKind {
    fn name(self) -> &'static str {
        match self {
            StoreKind::Memory => "memory",
            StoreKind::Sqlite => "sqlite",
            StoreKind::Postgres => "postgres",
        }
    }
}

const USAGE: &str = "usage: loadgen --store memory|sqlite|postgres --writers N --entities M --seconds S \
[--codec json|postcard] [--path file.db] [--pg-url URL]";

/// Parses the command line by hand: seven flags do not justify a parser
/// dependency, and every error names the flag it is about.
fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut store = None;
    let mut writers = None;
    let mut entities = None;
    let mut seconds = None;
    let mut codec = Codec::Json;
    let mut path = None;
    let mut pg_url = "postgres://postgres@127.0.0.1:5432/test".to_owned();
    while let Some(flag) = args.next() {
        if flag == "-h" || flag == "--help" {
            return Err(USAGE.to_owned());
        }
        let (name, inline) = match flag.split_once('=') {
            Some((name, value)) => (name.to_owned(), Some(value.to_owned())),
            None => (flag.clone(), None),
        };
        let mut value = || -> Result<String, String> {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{name} needs a value\n{USAGE}"))
        };
        match name.as_str() {
            "--store" => {
                store = Some(match value()?.as_str() {
                    "memory" => StoreKind::Memory,
                    "sqlite" => StoreKind::Sqlite,
                    "postgres" => StoreKind::Postgres,
                    other => {
                        return Err(format!(
                            "--store must be memory, sqlite or postgres, not {other:?}"
                        ));
                    }
                })
            }
            "--writers" => writers = Some(positive("--writers", &value()?)?),
            "--entities" => entities = Some(positive("--entities", &value()?)?),
            "--seconds" => {
                let text = value()?;
                match text.parse::<f64>() {
                    Ok(s) if s > 0.0 && s.is_finite() => seconds = Some(s),
                    _ => return Err(format!("--seconds must be a number above zero, not {text:?}")),
                }
            }
            "--codec" => {
                codec = match value()?.as_str() {
                    "json" => Codec::Json,
                    "postcard" => Codec::Postcard,
                    other => return Err(format!("--codec must be json or postcard, not {other:?}")),
                }
            }
            "--path" => path = Some(value()?),
            "--pg-url" => pg_url = value()?,
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    let missing = |flag: &str| format!("{flag} is required\n{USAGE}");
    Ok(Args {
        store: store.ok_or_else(|| missing("--store"))?,
        writers: writers.ok_or_else(|| missing("--writers"))?,
        entities: entities.ok_or_else(|| missing("--entities"))?,
        seconds: seconds.ok_or_else(|| missing("--seconds"))?,
        codec,
        path,
        pg_url,
    })
}

fn positive(flag: &str, text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("{flag} must be a whole number above zero, not {text:?}")),
    }
}

/// The store of this run, and how to open it again for the check.
struct Opened {
    store: Arc<dyn EventStore>,
    kind: Reopen,
}

enum Reopen {
    /// A memory store exists only in this process: the check shares it.
    Memory,
    /// The check opens the file again (a second store, its own connections).
    Sqlite {
        path: PathBuf,
        /// Created by this run in the temp directory, so removed after it.
        temporary: bool,
    },
    /// The check connects again to the run's own schema, dropped afterwards.
    Postgres { url: String, schema: String },
}

async fn open_store(args: &Args) -> Result<Opened, String> {
    match args.store {
        StoreKind::Memory => Ok(Opened {
            store: Arc::new(MemoryStore::new()),
            kind: Reopen::Memory,
        }),
        StoreKind::Sqlite => {
            let (path, temporary) = match &args.path {
                Some(path) => (PathBuf::from(path), false),
                None => (
                    std::env::temp_dir().join(format!(
                        "factum-loadgen-{}-{}.db",
                        std::process::id(),
                        unique()
                    )),
                    true,
                ),
            };
            if path.exists() {
                return Err(format!(
                    "--path {}: the file exists; loadgen checks balances from an empty log, so give a new file",
                    path.display()
                ));
            }
            let store = SqliteStore::options()
                .codec(args.codec)
                .open(&path)
                .map_err(|e| format!("--path {}: {e}", path.display()))?;
            Ok(Opened {
                store: Arc::new(store),
                kind: Reopen::Sqlite { path, temporary },
            })
        }
        StoreKind::Postgres => {
            // A schema per run: the check reads an empty log plus this run, and
            // runs never see each other's events.
            let schema = format!("loadgen_{}_{}", std::process::id(), unique());
            let store = PostgresStore::connect(args.pg_url.clone())
                .schema(schema.clone())
                .codec(args.codec)
                .await
                .map_err(|e| format!("--pg-url {}: {e}", args.pg_url))?;
            Ok(Opened {
                store: Arc::new(store),
                kind: Reopen::Postgres {
                    url: args.pg_url.clone(),
                    schema,
                },
            })
        }
    }
}

/// Distinguishes runs started in the same second by the same pid.
fn unique() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// Opens the run's data again as a separate store, after the run's store is dropped.
async fn reopen_store(
    kind: &Reopen,
    run_store: Arc<dyn EventStore>,
    args: &Args,
) -> Result<Arc<dyn EventStore>, String> {
    match kind {
        Reopen::Memory => Ok(run_store),
        Reopen::Sqlite { path, .. } => {
            drop(run_store);
            let store = SqliteStore::options()
                .codec(args.codec)
                .open(path)
                .map_err(|e| format!("reopening {}: {e}", path.display()))?;
            Ok(Arc::new(store))
        }
        Reopen::Postgres { url, schema } => {
            drop(run_store);
            let store = PostgresStore::connect(url.clone())
                .schema(schema.clone())
                .codec(args.codec)
                .await
                .map_err(|e| format!("reconnecting to {url} schema {schema}: {e}"))?;
            Ok(Arc::new(store))
        }
    }
}

/// Removes what the run created: the temporary SQLite file, the PostgreSQL schema.
async fn clean_up(kind: &Reopen) {
    match kind {
        Reopen::Memory => {}
        Reopen::Sqlite { path, temporary } => {
            if *temporary {
                for suffix in ["", "-wal", "-shm"] {
                    let mut file = path.clone().into_os_string();
                    file.push(suffix);
                    let _ = std::fs::remove_file(file);
                }
            }
        }
        Reopen::Postgres { url, schema } => {
            let dropped = async {
                let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
                let connection = tokio::spawn(connection);
                client
                    .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                    .await?;
                drop(client);
                let _ = connection.await;
                Ok::<_, tokio_postgres::Error>(())
            };
            if let Err(e) = dropped.await {
                eprintln!("loadgen: could not drop schema {schema} (drop it by hand): {e}");
            }
        }
    }
}

/// A small, fast generator for the workload's choices (splitmix64): the
/// workload needs spread, not cryptographic quality, and one per task avoids
/// sharing a generator between writers.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, bound: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(bound)) >> 64) as u64
    }
}

/// What one writer did.
#[derive(Default)]
struct Tally {
    commands: u64,
    events: u64,
    rejected: u64,
    failed: u64,
    first_failure: Option<String>,
    latencies_ns: Vec<u64>,
}

/// Balances implied by the accepted commands, per account. Deposits and
/// withdrawals commute, so concurrent writers can add their effects in any order.
struct Expected {
    credits: Vec<AtomicU64>,
    debits: Vec<AtomicU64>,
}

impl Expected {
    fn balance(&self, i: usize) -> u64 {
        self.credits[i].load(Ordering::Relaxed) - self.debits[i].load(Ordering::Relaxed)
    }
}

fn account_id(i: usize) -> String {
    format!("acc-{i:06}")
}

async fn writer(
    accounts: Arc<Vec<EntityRef<Account>>>,
    expected: Arc<Expected>,
    stop: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
    seed: u64,
) -> Tally {
    let mut rng = Rng(seed);
    let mut tally = Tally::default();
    while !stop.load(Ordering::Relaxed) {
        let i = rng.below(accounts.len() as u64) as usize;
        let deposit = rng.below(2) == 0;
        // Withdrawals reach past what deposits bring on average, so some are refused.
        let amount = 1 + rng.below(if deposit { 1_000 } else { 1_500 });
        let start = Instant::now();
        let result = if deposit {
            accounts[i].send(Deposit { amount }).await
        } else {
            accounts[i].send(Withdraw { amount }).await
        };
        tally.latencies_ns.push(start.elapsed().as_nanos() as u64);
        tally.commands += 1;
        match result {
            Ok(committed) => {
                tally.events += committed.events.len() as u64;
                let side = if deposit {
                    &expected.credits
                } else {
                    &expected.debits
                };
                side[i].fetch_add(amount, Ordering::Relaxed);
            }
            Err(CommandError::Rejected(AccountError::Insufficient { .. })) => tally.rejected += 1,
            Err(e) => {
                tally.failed += 1;
                if tally.first_failure.is_none() {
                    tally.first_failure = Some(format!("{}: {e}", accounts[i].id()));
                }
            }
        }
        done.fetch_add(1, Ordering::Relaxed);
    }
    tally
}

fn percentile_us(sorted_ns: &[u64], p: f64) -> f64 {
    if sorted_ns.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * (sorted_ns.len() - 1) as f64).round() as usize;
    sorted_ns[rank.min(sorted_ns.len() - 1)] as f64 / 1_000.0
}

/// Folds the whole stored log into accounts, with a fresh app over the store
/// reopened, and compares every account with what the accepted commands imply.
async fn check(
    store: Arc<dyn EventStore>,
    args: &Args,
    expected: &Expected,
    expected_events: u64,
) -> Result<(), String> {
    // 1. The global log, folded by hand: every event, in commit order.
    let mut folded: HashMap<String, Account> = HashMap::new();
    let mut position = 1;
    let mut seen = 0u64;
    loop {
        let page = store
            .read_all(position, 10_000)
            .await
            .map_err(|e| format!("reading the log from position {position}: {e}"))?;
        let Some(last) = page.last() else { break };
        position = last.position + 1;
        for record in &page {
            if record.stream_type != <Account as Entity>::NAME {
                continue;
            }
            let event = <Account as Entity>::Event::decode(
                &record.event_type,
                record.schema_version,
                record.codec,
                &record.payload,
            )
            .map_err(|e| format!("event at position {}: {e}", record.position))?;
            folded.entry(record.stream_id.clone()).or_default().apply(&event);
            seen += 1;
        }
    }
    if seen != expected_events {
        return Err(format!(
            "the log holds {seen} account events, the run committed {expected_events}"
        ));
    }
    // 2. Each account through a fresh app (snapshot + tail, as a restart would load it).
    let app = App::builder().shared_store(store).codec(args.codec).build();
    for i in 0..args.entities {
        let id = account_id(i);
        let want = expected.balance(i);
        let from_log = folded.get(&id).map_or(0, |a| a.balance);
        let state = app
            .entity::<Account>(&id)
            .state()
            .await
            .map_err(|e| format!("loading {id}: {e}"))?;
        if from_log != want || state.balance != want || !state.open {
            return Err(format!(
                "{id}: expected balance {want}, the folded log gives {from_log}, a fresh app loads {} (open: {})",
                state.balance, state.open
            ));
        }
    }
    Ok(())
}

async fn run(args: Args) -> Result<(), String> {
    let Opened { store, kind } = open_store(&args).await?;
    // Whatever happens in the run, the temp file or the schema goes afterwards.
    let result = load_and_check(store, &kind, &args).await;
    clean_up(&kind).await;
    result
}

async fn load_and_check(store: Arc<dyn EventStore>, kind: &Reopen, args: &Args) -> Result<(), String> {
    let app = App::builder()
        .shared_store(store.clone())
        .codec(args.codec)
        .cache_capacity(args.entities.max(1))
        .build();

    let accounts: Vec<EntityRef<Account>> = (0..args.entities).map(|i| app.entity(account_id(i))).collect();
    for account in &accounts {
        account
            .send(Open {
                owner: format!("owner of {}", account.id()),
            })
            .await
            .map_err(|e| format!("opening {}: {e}", account.id()))?;
    }
    let accounts = Arc::new(accounts);
    let expected = Arc::new(Expected {
        credits: (0..args.entities).map(|_| AtomicU64::new(0)).collect(),
        debits: (0..args.entities).map(|_| AtomicU64::new(0)).collect(),
    });
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));

    let bar = ProgressBar::new((args.seconds * 10.0).ceil() as u64);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:40} {msg}")
            .map_err(|e| format!("progress bar template: {e}"))?,
    );
    let start = Instant::now();
    let tasks: Vec<_> = (0..args.writers)
        .map(|w| {
            tokio::spawn(writer(
                accounts.clone(),
                expected.clone(),
                stop.clone(),
                done.clone(),
                0x5EED_0000 + w as u64,
            ))
        })
        .collect();
    let deadline = start + Duration::from_secs_f64(args.seconds);
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100).min(deadline - Instant::now())).await;
        let n = done.load(Ordering::Relaxed);
        let secs = start.elapsed().as_secs_f64();
        bar.set_position((secs * 10.0) as u64);
        bar.set_message(format!("{n} commands, {:.0}/s", n as f64 / secs));
    }
    stop.store(true, Ordering::Relaxed);
    let mut total = Tally::default();
    for task in tasks {
        let tally = task.await.map_err(|e| format!("a writer task failed: {e}"))?;
        total.commands += tally.commands;
        total.events += tally.events;
        total.rejected += tally.rejected;
        total.failed += tally.failed;
        total.first_failure = total.first_failure.or(tally.first_failure);
        total.latencies_ns.extend(tally.latencies_ns);
    }
    let secs = start.elapsed().as_secs_f64();
    bar.finish_and_clear();
    total.latencies_ns.sort_unstable();

    println!(
        "loadgen store={} writers={} entities={} commands={} events={} rejected={} secs={:.2} events_per_sec={:.0} p50_us={:.1} p99_us={:.1}",
        args.store.name(),
        args.writers,
        args.entities,
        total.commands,
        total.events,
        total.rejected,
        secs,
        total.events as f64 / secs,
        percentile_us(&total.latencies_ns, 50.0),
        percentile_us(&total.latencies_ns, 99.0),
    );
    if total.failed > 0 {
        return Err(format!(
            "{} commands failed for reasons other than a rejection; the first: {}",
            total.failed,
            total.first_failure.unwrap_or_default()
        ));
    }

    drop(accounts);
    drop(app);
    let fresh = reopen_store(kind, store, args).await?;
    check(fresh, args, &expected, args.entities as u64 + total.events).await?;
    eprintln!(
        "loadgen: check passed: the stored log folds to the expected balance of all {} accounts",
        args.entities
    );
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) => {
            eprintln!("loadgen: {message}");
            return ExitCode::from(2);
        }
    };
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("loadgen: FAILED: {message}");
            ExitCode::from(1)
        }
    }
}
