//! A load tool and a correctness check in one: the bank workload, from many
//! writers at once, against a chosen store; then the stored log is folded
//! again by a fresh app and must give the balances the accepted commands imply.
//!
//! ```text
//! cargo run --release -p factum-examples --bin loadgen -- \
//!     --store memory|sqlite|postgres --writers N --entities M --seconds S \
//!     [--codec json|postcard] [--path file.db] [--pg-url URL] [--pg-schema NAME] \
//!     [--prefill-events E --prefill-streams K] [--reuse] [--cold-loads C]
//! loadgen --fill-only --store sqlite|postgres (--path file.db | --pg-schema NAME) \
//!     --prefill-events E --prefill-streams K
//! loadgen --catch-up --store sqlite|postgres (--path file.db | --pg-schema NAME) --prefill-streams K
//! ```
//!
//! It opens M accounts, then N tokio tasks send deposits and withdrawals to
//! random accounts for S seconds (withdrawals up to more than a typical
//! balance, so a share is rejected), shows a progress bar, and prints one line:
//!
//! `loadgen store=sqlite writers=64 entities=1000 commands=... events=...
//! rejected=... secs=... events_per_sec=... p50_us=... p99_us=... stored=...
//! streams=... cold_loads=... cold_p50_us=... cold_p99_us=...`
//!
//! where `stored` counts the events in the store before the run, `streams` the
//! pre-filled streams, and `cold_*` the time to load an entity that is in no
//! cache (one at a time, before the timed run, through an app of its own).
//!
//! **Cost at scale.** `--prefill-events E --prefill-streams K` fill an empty
//! store before the timed run with K bank accounts (`acc-0000000` …), E events
//! in all (one `Opened`, then deposits and withdrawals of half the deposit
//! before), written through the store's public `append` in large concurrent
//! rounds, interleaved (event r of every account in a block of 10,000, then
//! event r + 1), so an account's events lie far apart in the log as they would
//! after months of traffic. Every record is a valid, checksummed bank event.
//! SQLite fills with `synchronous=OFF` and reopens at the default for the run;
//! PostgreSQL fills with `synchronous_commit=off` on its sessions. The run's M
//! accounts are then M of the filled ones, spread evenly over them.
//!
//! A store named on the command line (`--path`, `--pg-schema`) is kept after
//! the run (`--fill-only` fills one and stops); `--reuse` runs on one that
//! already holds events (give the same `--prefill-streams`, which loadgen
//! checks against it), so one fill serves several timed runs. The check then covers the run: every event after the
//! head the run started at must be a run account's, their count must match,
//! and each run account, folded from its whole stream and loaded by a fresh
//! app, must hold the balance it was loaded with plus the accepted commands'
//! effects. On an empty store that is the whole log, as before.
//!
//! `--catch-up` runs no writers: it starts the bank's `account_summary` view
//! over a stored log on a new SQLite view file, times it to the head, and
//! prints events/s and the process's peak resident memory (`VmHWM`).
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
use factum::sqlite::{SqliteViewStore, Synchronous};
use factum::store::EventStore;
use factum::store::{AppendRequest, EventMetadata, NewEvent};
use factum::{EntityRef, EventSet, MemoryStore, PostgresStore, RecordedEvent, Timestamp, Uuid};
use factum_examples::bank::{
    Account, AccountError, AccountEvent, AccountSummary, Deposit, Deposited, Open, Opened as AccountOpened,
    Withdraw, Withdrawn,
};
use futures_util::future::join_all;
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
    pg_schema: Option<String>,
    prefill_events: u64,
    prefill_streams: u64,
    reuse: bool,
    cold_loads: usize,
    catch_up: bool,
    fill_only: bool,
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
[--codec json|postcard] [--path file.db] [--pg-url URL] [--pg-schema NAME] \
[--prefill-events E --prefill-streams K] [--reuse] [--cold-loads C]\n\
       loadgen --fill-only --store sqlite|postgres (--path file.db | --pg-schema NAME) --prefill-events E --prefill-streams K\n\
       loadgen --catch-up --store sqlite|postgres (--path file.db | --pg-schema NAME) --prefill-streams K";

/// Parses the command line by hand: a dozen flags do not justify a parser
/// dependency, and every error names the flag it is about.
fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut store = None;
    let mut writers = None;
    let mut entities = None;
    let mut seconds = None;
    let mut codec = Codec::Json;
    let mut path = None;
    let mut pg_url = "postgres://postgres@127.0.0.1:5432/test".to_owned();
    let mut pg_schema = None;
    let mut prefill_events = None;
    let mut prefill_streams = None;
    let mut reuse = false;
    let mut cold_loads = 1_000;
    let mut catch_up = false;
    let mut fill_only = false;
    while let Some(flag) = args.next() {
        if flag == "-h" || flag == "--help" {
            return Err(USAGE.to_owned());
        }
        if flag == "--reuse" {
            reuse = true;
            continue;
        }
        if flag == "--catch-up" {
            catch_up = true;
            continue;
        }
        if flag == "--fill-only" {
            fill_only = true;
            continue;
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
            "--pg-schema" => pg_schema = Some(value()?),
            "--prefill-events" => prefill_events = Some(positive("--prefill-events", &value()?)? as u64),
            "--prefill-streams" => prefill_streams = Some(positive("--prefill-streams", &value()?)? as u64),
            "--cold-loads" => {
                let text = value()?;
                cold_loads = text
                    .parse::<usize>()
                    .map_err(|_| format!("--cold-loads must be a whole number, not {text:?}"))?;
            }
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    let missing = |flag: &str| format!("{flag} is required\n{USAGE}");
    let store = store.ok_or_else(|| missing("--store"))?;
    if catch_up {
        let named = match store {
            StoreKind::Memory => {
                return Err("--catch-up needs a stored log: --store sqlite or postgres".to_owned());
            }
            StoreKind::Sqlite => path.is_some(),
            StoreKind::Postgres => pg_schema.is_some(),
        };
        if !named || prefill_streams.is_none() {
            return Err(format!(
                "--catch-up runs over a filled store: give its --path (SQLite) or --pg-schema (PostgreSQL) and its --prefill-streams\n{USAGE}"
            ));
        }
        reuse = true;
    }
    if fill_only && (prefill_events.is_none() || (path.is_none() && pg_schema.is_none()) || catch_up || reuse)
    {
        return Err(format!(
            "--fill-only fills a new store and keeps it: give --prefill-events, --prefill-streams and \
             --path (SQLite) or --pg-schema (PostgreSQL), without --reuse or --catch-up\n{USAGE}"
        ));
    }
    if prefill_events.is_some() != prefill_streams.is_some() && !(catch_up || reuse) {
        return Err(
            "--prefill-events and --prefill-streams go together (--prefill-streams alone describes a filled store \
             given with --reuse)"
                .to_owned(),
        );
    }
    let prefill_streams = prefill_streams.unwrap_or(0);
    let prefill_events = prefill_events.unwrap_or(0);
    if prefill_events > 0 && prefill_events < prefill_streams {
        return Err(format!(
            "--prefill-events {prefill_events} is fewer than --prefill-streams {prefill_streams}: every stream gets at least its Opened event"
        ));
    }
    if store == StoreKind::Memory && (prefill_streams > 0 || reuse || pg_schema.is_some() || path.is_some()) {
        return Err("--store memory keeps nothing: --path, --pg-schema, --reuse and --prefill-* are for sqlite and postgres".to_owned());
    }
    if reuse && path.is_none() && pg_schema.is_none() {
        return Err(
            "--reuse needs the store to run on: --path (SQLite) or --pg-schema (PostgreSQL)".to_owned(),
        );
    }
    let (writers, entities, seconds) = if catch_up || fill_only {
        (1, 1, 1.0)
    } else {
        (
            writers.ok_or_else(|| missing("--writers"))?,
            entities.ok_or_else(|| missing("--entities"))?,
            seconds.ok_or_else(|| missing("--seconds"))?,
        )
    };
    if prefill_streams > 0 && entities as u64 > prefill_streams {
        return Err(format!(
            "--entities {entities} is more than --prefill-streams {prefill_streams}: the run's accounts are filled ones"
        ));
    }
    Ok(Args {
        store,
        writers,
        entities,
        seconds,
        codec,
        path,
        pg_url,
        pg_schema,
        prefill_events,
        prefill_streams,
        reuse,
        cold_loads,
        catch_up,
        fill_only,
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
    /// The check connects again to the run's schema: its own, dropped
    /// afterwards, or the one `--pg-schema` named, kept.
    Postgres {
        url: String,
        schema: String,
        temporary: bool,
    },
}

fn open_sqlite(
    path: &PathBuf,
    codec: Codec,
    synchronous: Synchronous,
) -> Result<Arc<dyn EventStore>, String> {
    let store = SqliteStore::options()
        .codec(codec)
        .synchronous(synchronous)
        .open(path)
        .map_err(|e| format!("--path {}: {e}", path.display()))?;
    Ok(Arc::new(store))
}

async fn open_postgres(url: &str, schema: &str, codec: Codec) -> Result<Arc<dyn EventStore>, String> {
    open_postgres_with(PostgresStore::connect(url.to_owned()), url, schema, codec).await
}

async fn open_postgres_with(
    options: factum::postgres::PostgresOptions,
    url: &str,
    schema: &str,
    codec: Codec,
) -> Result<Arc<dyn EventStore>, String> {
    let store = options
        .schema(schema.to_owned())
        .codec(codec)
        .await
        .map_err(|e| format!("--pg-url {url} schema {schema}: {e}"))?;
    Ok(Arc::new(store))
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
            if path.exists() && !args.reuse {
                return Err(format!(
                    "--path {}: the file exists; give --reuse to run on what it holds (a file filled by loadgen \
                     --prefill-streams), or a new file",
                    path.display()
                ));
            }
            if !path.exists() && args.reuse && args.catch_up {
                return Err(format!(
                    "--path {}: no such file to catch up over",
                    path.display()
                ));
            }
            Ok(Opened {
                store: open_sqlite(&path, args.codec, Synchronous::Full)?,
                kind: Reopen::Sqlite { path, temporary },
            })
        }
        StoreKind::Postgres => {
            // By default a schema per run: the check reads an empty log plus
            // this run, and runs never see each other's events.
            let (schema, temporary) = match &args.pg_schema {
                Some(schema) => (schema.clone(), false),
                None => (format!("loadgen_{}_{}", std::process::id(), unique()), true),
            };
            Ok(Opened {
                store: open_postgres(&args.pg_url, &schema, args.codec).await?,
                kind: Reopen::Postgres {
                    url: args.pg_url.clone(),
                    schema,
                    temporary,
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
            open_sqlite(path, args.codec, Synchronous::Full)
        }
        Reopen::Postgres { url, schema, .. } => {
            drop(run_store);
            open_postgres(url, schema, args.codec).await
        }
    }
}

/// Removes what the run created: the temporary SQLite file, the PostgreSQL
/// schema of its own. A store named on the command line stays.
async fn clean_up(kind: &Reopen) {
    match kind {
        Reopen::Memory => {}
        Reopen::Sqlite { path, temporary } => {
            if *temporary {
                remove_sqlite(path);
            }
        }
        Reopen::Postgres {
            url,
            schema,
            temporary,
        } => {
            if !*temporary {
                return;
            }
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

/// Removes a SQLite file and its WAL and shared-memory files.
fn remove_sqlite(path: &std::path::Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut file = path.to_path_buf().into_os_string();
        file.push(suffix);
        let _ = std::fs::remove_file(file);
    }
}

/// How many events the fill gives stream `i`: an equal share, the remainder
/// one each to the first streams.
fn fill_share(args: &Args, i: u64) -> u64 {
    let share = args.prefill_events / args.prefill_streams;
    share + u64::from(i < args.prefill_events % args.prefill_streams)
}

/// The deposit the fill makes as event `j` (odd) of stream `i`, in cents.
fn fill_deposit(i: u64, j: u64) -> u64 {
    1_000 + (i.wrapping_mul(31).wrapping_add(j.wrapping_mul(17))) % 9_000
}

/// Event `j` of filled stream `i`: opened, then deposits alternating with
/// withdrawals of half the deposit before, so the balance never goes below zero.
fn fill_event(i: u64, j: u64) -> AccountEvent {
    if j == 0 {
        AccountEvent::Opened(AccountOpened {
            owner: format!("owner of {}", account_id(i as usize)),
            number: 10_000_000 + (i % 90_000_000) as u32,
        })
    } else if j % 2 == 1 {
        AccountEvent::Deposited(Deposited {
            amount: fill_deposit(i, j),
        })
    } else {
        AccountEvent::Withdrawn(Withdrawn {
            amount: fill_deposit(i, j - 1) / 2,
            at: fill_time(i, j),
        })
    }
}

/// A recorded time for the fill's events: a day in 2026, spread by stream and event.
fn fill_time(i: u64, j: u64) -> Timestamp {
    Timestamp::from_micros(1_780_000_000_000_000 + (i.wrapping_mul(1_000) + j) as i64 % 86_400_000_000)
}

/// The append of event `j` to filled stream `i`, with ids of its own
/// (`0xF111…` event, `0xF112…` command: deterministic, unique per event).
fn fill_request(i: u64, j: u64, codec: Codec) -> Result<AppendRequest, String> {
    let event = fill_event(i, j);
    let payload = event
        .encode(codec)
        .map_err(|e| format!("encoding fill event {j} of {}: {e}", account_id(i as usize)))?;
    let command_id = Uuid::from_u64_pair(0xF112_0000_0000_0000 | i, j);
    Ok(AppendRequest {
        stream_type: <Account as Entity>::NAME.into(),
        stream_id: account_id(i as usize).into(),
        expected_version: j,
        events: vec![NewEvent {
            event_type: event.name().into(),
            schema_version: event.schema_version(),
            codec,
            payload,
            metadata: EventMetadata {
                event_id: Uuid::from_u64_pair(0xF111_0000_0000_0000 | i, j),
                recorded_at: fill_time(i, j),
                command_id,
                causation_id: None,
                correlation_id: command_id,
            },
        }],
    })
}

/// Streams filled together: event r of each, then event r + 1 of each.
const FILL_BLOCK: u64 = 10_000;

/// Fills an empty store with `--prefill-events` over `--prefill-streams`.
async fn fill(store: &Arc<dyn EventStore>, args: &Args) -> Result<(), String> {
    let bar = ProgressBar::new(args.prefill_events);
    bar.set_style(
        ProgressStyle::with_template("fill {bar:40} {pos}/{len} events, {per_sec}, eta {eta}")
            .map_err(|e| format!("progress bar template: {e}"))?,
    );
    let start = Instant::now();
    let mut first = 0;
    while first < args.prefill_streams {
        let end = (first + FILL_BLOCK).min(args.prefill_streams);
        // The block's first stream has the largest share.
        for j in 0..fill_share(args, first) {
            let requests = (first..end)
                .filter(|&i| fill_share(args, i) > j)
                .map(|i| fill_request(i, j, args.codec))
                .collect::<Result<Vec<_>, _>>()?;
            let n = requests.len() as u64;
            for result in join_all(requests.into_iter().map(|request| store.append(request))).await {
                result.map_err(|e| format!("filling the store: {e}"))?;
            }
            bar.inc(n);
        }
        first = end;
    }
    bar.finish_and_clear();
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "loadgen: filled {} events over {} streams in {secs:.1} s ({:.0} events/s)",
        args.prefill_events,
        args.prefill_streams,
        args.prefill_events as f64 / secs
    );
    Ok(())
}

/// Makes the store ready for the run: fills an empty one when asked, checks
/// that a reused one is what `--prefill-streams` says. Returns the store to
/// run on and the number of events it holds.
async fn prepare(
    store: Arc<dyn EventStore>,
    kind: &Reopen,
    args: &Args,
) -> Result<(Arc<dyn EventStore>, u64), String> {
    let head = store
        .head()
        .await
        .map_err(|e| format!("reading the store's head: {e}"))?;
    if head == 0 && args.catch_up {
        return Err("--catch-up: the store is empty".to_owned());
    }
    if head > 0 {
        if !args.reuse {
            return Err(format!(
                "the store already holds {head} events; give --reuse to run on them (with the --prefill-streams it was filled with)"
            ));
        }
        if args.prefill_streams == 0 {
            return Err(format!(
                "--reuse: the store holds {head} events; give the --prefill-streams it was filled with, \
                 so loadgen knows its accounts"
            ));
        }
        let version = |i: u64| {
            let store = store.clone();
            async move {
                store
                    .stream_version(<Account as Entity>::NAME, &account_id(i as usize))
                    .await
                    .map_err(|e| format!("reading {}: {e}", account_id(i as usize)))
            }
        };
        let last = args.prefill_streams - 1;
        if version(last).await? == 0 || version(args.prefill_streams).await? != 0 {
            return Err(format!(
                "--reuse: the store was not filled with --prefill-streams {} ({} and not {} should exist)",
                args.prefill_streams,
                account_id(last as usize),
                account_id(args.prefill_streams as usize)
            ));
        }
        if head < args.prefill_events {
            return Err(format!(
                "--reuse: the store holds {head} events, fewer than --prefill-events {}",
                args.prefill_events
            ));
        }
        return Ok((store, head));
    }
    if args.prefill_streams == 0 {
        return Ok((store, 0));
    }
    // The fill's durability is not the measured figure: it runs unsynced,
    // and the run reopens the store at the default.
    let store = match kind {
        Reopen::Memory => return Err("--store memory cannot be pre-filled".to_owned()),
        Reopen::Sqlite { path, .. } => {
            drop(store);
            let unsynced = open_sqlite(path, args.codec, Synchronous::Off)?;
            fill(&unsynced, args).await?;
            drop(unsynced);
            open_sqlite(path, args.codec, Synchronous::Full)?
        }
        Reopen::Postgres { url, schema, .. } => {
            drop(store);
            let separator = if url.contains('?') { '&' } else { '?' };
            let unsynced_url = format!("{url}{separator}options=-c%20synchronous_commit%3Doff");
            let options = PostgresStore::connect(unsynced_url.clone());
            let unsynced = open_postgres_with(options, &unsynced_url, schema, args.codec).await?;
            fill(&unsynced, args).await?;
            drop(unsynced);
            open_postgres(url, schema, args.codec).await?
        }
    };
    let head = store
        .head()
        .await
        .map_err(|e| format!("reading the store's head after the fill: {e}"))?;
    Ok((store, head))
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

/// Balances implied by the accepted commands, per account: the balance it
/// was loaded with (zero for an account the run opened), plus what was
/// credited, minus what was debited. Deposits and withdrawals commute, so
/// concurrent writers can add their effects in any order.
struct Expected {
    base: Vec<u64>,
    credits: Vec<AtomicU64>,
    debits: Vec<AtomicU64>,
}

impl Expected {
    fn balance(&self, i: usize) -> u64 {
        (self.base[i] + self.credits[i].load(Ordering::Relaxed)) - self.debits[i].load(Ordering::Relaxed)
    }
}

fn account_id(i: usize) -> String {
    format!("acc-{i:07}")
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

/// The run's accounts: what they are called, where the run began.
struct Run {
    /// The accounts' ids, by the index the writers draw.
    ids: Vec<String>,
    /// Their states when the run began (default for the ones it opened).
    base: Vec<Account>,
    /// The head before the run wrote anything.
    start_head: u64,
}

/// Checks the run against the stored log, with a fresh app over the store
/// reopened: (1) every event after the run's start is one of its accounts',
/// as many as it committed, and folded onto each account's state at the
/// start they give the expected balance; (2) each account folded from its
/// whole stream by hand, and (3) loaded by a fresh app (snapshot + tail, as a
/// restart would), hold that balance too. On an empty store (1) is the whole log.
async fn check(
    store: Arc<dyn EventStore>,
    args: &Args,
    run: &Run,
    expected: &Expected,
    expected_events: u64,
) -> Result<(), String> {
    let index: HashMap<&str, usize> = run
        .ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    let decode = |record: &RecordedEvent| {
        <Account as Entity>::Event::decode(
            &record.event_type,
            record.schema_version,
            record.codec,
            &record.payload,
        )
        .map_err(|e| format!("event at position {}: {e}", record.position))
    };
    // 1. The global log after the start, folded by hand, in commit order.
    let mut folded = run.base.clone();
    let mut position = run.start_head + 1;
    let mut seen = 0u64;
    loop {
        let page = store
            .read_all(position, 10_000)
            .await
            .map_err(|e| format!("reading the log from position {position}: {e}"))?;
        let Some(last) = page.last() else { break };
        position = last.position + 1;
        for record in &page {
            let account = match index.get(record.stream_id.as_str()) {
                Some(&i) if record.stream_type == <Account as Entity>::NAME => i,
                _ => {
                    return Err(format!(
                        "the event at position {} is on stream {}/{}, not one of the run's accounts",
                        record.position, record.stream_type, record.stream_id
                    ));
                }
            };
            folded[account].apply(&decode(record)?);
            seen += 1;
        }
    }
    if seen != expected_events {
        return Err(format!(
            "the log holds {seen} events after position {}, the run committed {expected_events}",
            run.start_head
        ));
    }
    let app = App::builder()
        .shared_store(store.clone())
        .codec(args.codec)
        .build();
    for (i, id) in run.ids.iter().enumerate() {
        let want = expected.balance(i);
        // 2. The whole stream, by hand.
        let mut whole = Account::default();
        let mut from = 1;
        loop {
            let page = store
                .read_stream(<Account as Entity>::NAME, id, from, 10_000)
                .await
                .map_err(|e| format!("reading {id} from version {from}: {e}"))?;
            let Some(last) = page.last() else { break };
            from = last.version + 1;
            for record in &page {
                whole.apply(&decode(record)?);
            }
        }
        // 3. A fresh app.
        let state = app
            .entity::<Account>(id)
            .state()
            .await
            .map_err(|e| format!("loading {id}: {e}"))?;
        if folded[i].balance != want || whole.balance != want || state.balance != want || !state.open {
            return Err(format!(
                "{id}: expected balance {want}, the log since the start folds to {}, the whole stream to {}, \
                 a fresh app loads {} (open: {})",
                folded[i].balance, whole.balance, state.balance, state.open
            ));
        }
    }
    Ok(())
}

async fn run(args: Args) -> Result<(), String> {
    let Opened { store, kind } = open_store(&args).await?;
    // Whatever happens in the run, the temp file or the schema goes afterwards.
    let result = match prepare(store, &kind, &args).await {
        Ok((store, stored)) if args.catch_up => catch_up(store, &kind, &args, stored).await,
        Ok((_, stored)) if args.fill_only => {
            eprintln!("loadgen: --fill-only: the store holds {stored} events, kept for --reuse");
            Ok(())
        }
        Ok((store, stored)) => load_and_check(store, &kind, &args, stored).await,
        Err(e) => Err(e),
    };
    clean_up(&kind).await;
    result
}

/// Loads entities that are in no cache, one at a time, through an app of
/// their own: up to `--cold-loads` distinct ones drawn from `candidates`
/// accounts (`id_of` names the n-th). Returns the sorted latencies.
async fn cold_loads(
    store: &Arc<dyn EventStore>,
    args: &Args,
    candidates: u64,
    id_of: impl Fn(u64) -> String,
) -> Result<Vec<u64>, String> {
    let count = (args.cold_loads as u64).min(candidates);
    let app = App::builder()
        .shared_store(store.clone())
        .codec(args.codec)
        .cache_capacity(count.max(1) as usize)
        .build();
    let mut rng = Rng(0xC01D_0000);
    let mut drawn = std::collections::HashSet::new();
    let mut latencies = Vec::with_capacity(count as usize);
    while (drawn.len() as u64) < count {
        let n = rng.below(candidates);
        if !drawn.insert(n) {
            continue;
        }
        let id = id_of(n);
        let start = Instant::now();
        let state = app
            .entity::<Account>(&id)
            .state()
            .await
            .map_err(|e| format!("cold load of {id}: {e}"))?;
        latencies.push(start.elapsed().as_nanos() as u64);
        if !state.open {
            return Err(format!("cold load of {id}: the account is not open"));
        }
    }
    latencies.sort_unstable();
    Ok(latencies)
}

async fn load_and_check(
    store: Arc<dyn EventStore>,
    kind: &Reopen,
    args: &Args,
    stored: u64,
) -> Result<(), String> {
    let app = App::builder()
        .shared_store(store.clone())
        .codec(args.codec)
        .cache_capacity(args.entities.max(1))
        .build();

    // On a filled store the run's accounts are filled ones, spread evenly
    // over them, loaded (and cached) before the clock starts; otherwise the
    // run opens its own.
    let ids: Vec<String> = if args.prefill_streams > 0 {
        let step = args.prefill_streams / args.entities as u64;
        (0..args.entities as u64)
            .map(|i| account_id((i * step) as usize))
            .collect()
    } else {
        (0..args.entities).map(account_id).collect()
    };
    let accounts: Vec<EntityRef<Account>> = ids.iter().map(|id| app.entity(id)).collect();
    let mut base = Vec::with_capacity(accounts.len());
    let mut opened = 0u64;
    for account in &accounts {
        if args.prefill_streams > 0 {
            let state = account
                .state()
                .await
                .map_err(|e| format!("loading {}: {e}", account.id()))?;
            if !state.open {
                return Err(format!("{}: a filled account is not open", account.id()));
            }
            base.push(state);
        } else {
            account
                .send(Open {
                    owner: format!("owner of {}", account.id()),
                })
                .await
                .map_err(|e| format!("opening {}: {e}", account.id()))?;
            base.push(Account::default());
            opened += 1;
        }
    }
    let run = Run {
        ids,
        base,
        start_head: stored,
    };

    let cold = if args.prefill_streams > 0 {
        cold_loads(&store, args, args.prefill_streams, |n| account_id(n as usize)).await?
    } else {
        cold_loads(&store, args, args.entities as u64, |n| account_id(n as usize)).await?
    };

    let accounts = Arc::new(accounts);
    let expected = Arc::new(Expected {
        base: run.base.iter().map(|a| a.balance).collect(),
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
        "loadgen store={} writers={} entities={} commands={} events={} rejected={} secs={:.2} events_per_sec={:.0} p50_us={:.1} p99_us={:.1} \
         stored={stored} streams={} cold_loads={} cold_p50_us={:.1} cold_p99_us={:.1}",
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
        args.prefill_streams,
        cold.len(),
        percentile_us(&cold, 50.0),
        percentile_us(&cold, 99.0),
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
    check(fresh, args, &run, &expected, opened + total.events).await?;
    eprintln!(
        "loadgen: check passed: the stored log folds to the expected balance of all {} accounts",
        args.entities
    );
    Ok(())
}

/// The process's peak resident memory so far, in KiB (`VmHWM` in /proc/self/status).
fn peak_rss_kib() -> Result<u64, String> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| format!("reading /proc/self/status: {e}"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| "/proc/self/status has no readable VmHWM line".to_owned())
}

/// Starts the `account_summary` view over the stored log on a new SQLite
/// view file, times it to the head, then compares a sample of its rows with
/// the accounts a fresh app loads.
async fn catch_up(store: Arc<dyn EventStore>, kind: &Reopen, args: &Args, head: u64) -> Result<(), String> {
    let view_path = match kind {
        Reopen::Sqlite { path, .. } => {
            let mut file = path.clone().into_os_string();
            file.push(format!(".catch-up-{}.db", std::process::id()));
            PathBuf::from(file)
        }
        _ => std::env::temp_dir().join(format!(
            "factum-loadgen-catch-up-{}-{}.db",
            std::process::id(),
            unique()
        )),
    };
    let result = async {
        let views = SqliteViewStore::open(&view_path)
            .map_err(|e| format!("view file {}: {e}", view_path.display()))?;
        let app = App::builder()
            .shared_store(store.clone())
            .codec(args.codec)
            .view_store(views)
            .build();
        let before = peak_rss_kib()?;
        let start = Instant::now();
        app.start_view::<AccountSummary>()
            .await
            .map_err(|e| format!("starting the account_summary view: {e}"))?;
        app.wait_for_views(head)
            .await
            .map_err(|e| format!("catching the account_summary view up to {head}: {e}"))?;
        let secs = start.elapsed().as_secs_f64();
        let peak = peak_rss_kib()?;
        println!(
            "loadgen catch-up store={} events={head} secs={secs:.2} events_per_sec={:.0} peak_rss_mib={:.0} \
             rss_before_mib={:.0}",
            args.store.name(),
            head as f64 / secs,
            peak as f64 / 1024.0,
            before as f64 / 1024.0,
        );
        let summaries = app.view::<AccountSummary>();
        let mut rng = Rng(0x5A3F_0000);
        for _ in 0..100 {
            let id = account_id(rng.below(args.prefill_streams) as usize);
            let row = summaries
                .get(&id)
                .await
                .map_err(|e| format!("reading the view row of {id}: {e}"))?;
            let state = app
                .entity::<Account>(&id)
                .state()
                .await
                .map_err(|e| format!("loading {id}: {e}"))?;
            let balance = row.as_ref().map(|r| r.balance);
            if balance != Some(state.balance) {
                return Err(format!(
                    "{id}: the view gives balance {balance:?}, the entity {}",
                    state.balance
                ));
            }
        }
        eprintln!("loadgen: check passed: 100 sampled view rows match the accounts' balances");
        Ok(())
    }
    .await;
    remove_sqlite(&view_path);
    result
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
