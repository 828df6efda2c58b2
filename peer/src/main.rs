//! The bank workload on factum and on two peers, cqrs-es 0.5 and esrs 0.18,
//! in one run, on the same kind of store: commands per second for each and
//! the ratios factum/peer.
//!
//! ```text
//! cargo run --release --manifest-path peer/Cargo.toml -- \
//!     [--store memory|postgres|both] [--peer cqrs-es|esrs|both] [--writers N] [--entities M] \
//!     [--seconds S] [--pg-url URL] > /dev/null
//! ```
//!
//! Results go to stderr: cqrs-es's `MemStore` prints two lines to stdout for
//! every command it runs (that cost is part of what it measures, but nobody
//! wants to read them). Defaults: both stores, both peers, 16 writers, 1000
//! accounts, 5 s. esrs has no in-memory store, so it runs on PostgreSQL only.
//!
//! The workload is loadgen's (examples/src/bin/loadgen.rs): open M accounts,
//! then N tokio tasks send deposits and withdrawals to random accounts, with
//! withdrawals up to more than a typical balance so a share is rejected.
//! factum runs the bank of `examples/src/bank.rs`; the cqrs-es aggregate below
//! has the same commands, events, rules and JSON payloads.
//!
//! - memory: factum's `MemoryStore` against cqrs-es's `MemStore`.
//! - postgres: factum's `PostgresStore` against postgres-es's
//!   `PersistedEventStore` (event-sourced: it loads the aggregate's events for
//!   each command; a conflict on the sequence key is retried, as factum retries
//!   a version conflict). Each side gets a fresh schema, dropped afterwards.
//!   esrs's `PgStore` (`postgres-es/src/esrs_bank.rs`) loads and folds the
//!   account's events per command too, and retries a lost sequence number
//!   the same way. Both peers run in a child binary started by this one, one
//!   child per peer (see `postgres-es/Cargo.toml`: sqlx and factum's rusqlite
//!   cannot share a lock); each child checks every stored balance and the
//!   event count against the accepted commands and fails the run if one
//!   differs.
#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::sync::Arc;

use factum::prelude::*;
use factum::{EntityRef, MemoryStore, PostgresStore};
use factum_examples::bank;

mod cqrs_bank;
mod workload;

use workload::{Bank, Outcome, Tally, account_id, workload};

/// factum: one cached entity handle per account.
struct FactumBank {
    accounts: Vec<EntityRef<bank::Account>>,
}

impl FactumBank {
    fn new(app: &App, entities: usize) -> Self {
        FactumBank {
            accounts: (0..entities).map(|i| app.entity(account_id(i))).collect(),
        }
    }
}

fn factum_outcome<T>(result: Result<T, CommandError<bank::AccountError>>) -> Outcome {
    match result {
        Ok(_) => Outcome::Accepted,
        Err(CommandError::Rejected(_)) => Outcome::Rejected,
        Err(e) => Outcome::Failed(e.to_string()),
    }
}

impl Bank for FactumBank {
    async fn open(&self, account: usize) -> Outcome {
        let owner = format!("owner of {}", account_id(account));
        factum_outcome(self.accounts[account].send(bank::Open { owner }).await)
    }
    async fn deposit(&self, account: usize, amount: u64) -> Outcome {
        factum_outcome(self.accounts[account].send(bank::Deposit { amount }).await)
    }
    async fn withdraw(&self, account: usize, amount: u64) -> Outcome {
        factum_outcome(self.accounts[account].send(bank::Withdraw { amount }).await)
    }
}

#[derive(Debug)]
struct Args {
    memory: bool,
    postgres: bool,
    cqrs_es: bool,
    esrs: bool,
    writers: usize,
    entities: usize,
    seconds: f64,
    pg_url: String,
}

const USAGE: &str = "usage: factum-peer [--store memory|postgres|both] [--peer cqrs-es|esrs|both] \
[--writers N] [--entities M] [--seconds S] [--pg-url URL]";

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut parsed = Args {
        memory: true,
        postgres: true,
        cqrs_es: true,
        esrs: true,
        writers: 16,
        entities: 1_000,
        seconds: 5.0,
        pg_url: "postgres://postgres@127.0.0.1:5432/test".to_owned(),
    };
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))
        };
        match flag.as_str() {
            "--store" => {
                (parsed.memory, parsed.postgres) = match value()?.as_str() {
                    "memory" => (true, false),
                    "postgres" => (false, true),
                    "both" => (true, true),
                    other => return Err(format!("--store must be memory, postgres or both, not {other:?}")),
                }
            }
            "--peer" => {
                (parsed.cqrs_es, parsed.esrs) = match value()?.as_str() {
                    "cqrs-es" => (true, false),
                    "esrs" => (false, true),
                    "both" => (true, true),
                    other => return Err(format!("--peer must be cqrs-es, esrs or both, not {other:?}")),
                }
            }
            "--writers" => parsed.writers = positive("--writers", &value()?)?,
            "--entities" => parsed.entities = positive("--entities", &value()?)?,
            "--seconds" => {
                let text = value()?;
                parsed.seconds = match text.parse::<f64>() {
                    Ok(s) if s > 0.0 && s.is_finite() => s,
                    _ => return Err(format!("--seconds must be a number above zero, not {text:?}")),
                }
            }
            "--pg-url" => parsed.pg_url = value()?,
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    if parsed.memory && !parsed.postgres && !parsed.cqrs_es {
        return Err(
            "--store memory --peer esrs: esrs has no in-memory store; use --store postgres".to_owned(),
        );
    }
    Ok(parsed)
}

fn positive(flag: &str, text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("{flag} must be a whole number above zero, not {text:?}")),
    }
}

/// Prints each side's line, then the run's line with every ratio
/// factum/peer; fails on the first side that had a failed command.
fn report(store: &str, args: &Args, factum: &Tally, peers: &[(&str, Tally)]) -> Result<(), String> {
    let sides = std::iter::once(("factum", factum)).chain(peers.iter().map(|(name, tally)| (*name, tally)));
    for (name, tally) in sides {
        eprintln!(
            "peer   {name:8} store={store} commands={} rejected={} failed={} secs={:.2} commands_per_sec={:.0}",
            tally.commands,
            tally.rejected,
            tally.failed,
            tally.secs,
            tally.per_sec()
        );
        if let Some(e) = &tally.first_failure {
            return Err(format!(
                "{name} on {store}: {} commands failed; the first: {e}",
                tally.failed
            ));
        }
    }
    let mut line = format!(
        "peer store={store} writers={} entities={} secs={} factum_commands_per_sec={:.0}",
        args.writers,
        args.entities,
        args.seconds,
        factum.per_sec()
    );
    for (name, tally) in peers {
        let key = name.replace('-', "_");
        line += &format!(" {key}_commands_per_sec={:.0}", tally.per_sec());
    }
    for (name, tally) in peers {
        let key = name.replace('-', "_");
        line += &format!(" ratio_{key}={:.1}", factum.per_sec() / tally.per_sec());
    }
    eprintln!("{line}");
    Ok(())
}

async fn memory(args: &Args) -> Result<(), String> {
    let app = App::new(MemoryStore::new());
    let factum = workload(
        Arc::new(FactumBank::new(&app, args.entities)),
        args.entities,
        args.writers,
        args.seconds,
    )
    .await?;
    drop(app);
    let peer = workload(
        Arc::new(cqrs_bank::CqrsBank::memory(args.entities)),
        args.entities,
        args.writers,
        args.seconds,
    )
    .await?;
    report("memory", args, &factum, &[("cqrs-es", peer)])
}

async fn postgres(args: &Args) -> Result<(), String> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let run = format!("{}_{nanos}", std::process::id());
    let factum_schema = format!("peer_factum_{run}");
    let result = async {
        let store = PostgresStore::connect(args.pg_url.clone())
            .schema(factum_schema.clone())
            .await
            .map_err(|e| format!("--pg-url {}: {e}", args.pg_url))?;
        let app = App::new(store);
        let factum = workload(
            Arc::new(FactumBank::new(&app, args.entities)),
            args.entities,
            args.writers,
            args.seconds,
        )
        .await?;
        drop(app);
        let mut peers = Vec::new();
        if args.cqrs_es {
            peers.push((
                "cqrs-es",
                peer_child(args, "cqrs-es", &format!("peer_cqrs_{run}")).await?,
            ));
        }
        if args.esrs {
            peers.push((
                "esrs",
                peer_child(args, "esrs", &format!("peer_esrs_{run}")).await?,
            ));
        }
        report("postgres", args, &factum, &peers)
    }
    .await;
    drop_schema(&args.pg_url, &factum_schema).await;
    result
}

/// Runs one peer's PostgreSQL side in its own binary (see
/// `postgres-es/Cargo.toml` for why it cannot link into this one), built and
/// started through cargo, and reads its result line.
async fn peer_child(args: &Args, peer: &str, schema: &str) -> Result<Tally, String> {
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/postgres-es/Cargo.toml");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = tokio::process::Command::new(cargo)
        .args(["run", "--release", "--manifest-path", manifest, "--"])
        .args(["--peer", peer])
        .args(["--writers", &args.writers.to_string()])
        .args(["--entities", &args.entities.to_string()])
        .args(["--seconds", &args.seconds.to_string()])
        .args(["--pg-url", &args.pg_url, "--schema", schema])
        .stderr(std::process::Stdio::inherit())
        .output()
        .await
        .map_err(|e| format!("starting the {peer} child through cargo: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "the {peer} child failed ({}); its stderr is above",
            output.status
        ));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let prefix = format!("{peer} ");
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with(&prefix))
        .ok_or_else(|| format!("the {peer} child ({}) printed no result line", output.status))?;
    let mut tally = Tally::default();
    let mut checked = None;
    for field in line.split_whitespace().skip(1) {
        let (key, value) = field.split_once('=').unwrap_or((field, ""));
        let bad = || format!("the {peer} child printed {line:?}");
        match key {
            "commands" => tally.commands = value.parse().map_err(|_| bad())?,
            "rejected" => tally.rejected = value.parse().map_err(|_| bad())?,
            "failed" => tally.failed = value.parse().map_err(|_| bad())?,
            "secs" => tally.secs = value.parse().map_err(|_| bad())?,
            "checked" => checked = Some(value.parse::<usize>().map_err(|_| bad())?),
            _ => {}
        }
    }
    if checked != Some(args.entities) {
        return Err(format!(
            "the {peer} child checked {checked:?} of {} accounts: {line:?}",
            args.entities
        ));
    }
    if tally.failed > 0 {
        tally.first_failure = Some("see the child's stderr above".to_owned());
    }
    Ok(tally)
}

/// Drops factum's schema of this run, reporting but not failing on errors.
async fn drop_schema(url: &str, schema: &str) {
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
        eprintln!("factum-peer: could not drop schema {schema} (drop it by hand): {e}");
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) => {
            eprintln!("factum-peer: {message}");
            return ExitCode::from(2);
        }
    };
    let mut failed = false;
    if args.memory && !args.cqrs_es {
        eprintln!("factum-peer: no memory run: esrs has no in-memory store");
    } else if args.memory {
        if let Err(message) = memory(&args).await {
            eprintln!("factum-peer: FAILED: {message}");
            failed = true;
        }
    }
    if args.postgres {
        if let Err(message) = postgres(&args).await {
            eprintln!("factum-peer: FAILED: {message}");
            failed = true;
        }
    }
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
