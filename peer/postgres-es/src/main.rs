//! The bank workload on a peer framework over PostgreSQL, for factum-peer
//! (`../src/main.rs`), which starts it and reads its last stdout line:
//! `<peer> commands=N rejected=N failed=N secs=F commands_per_sec=F checked=M`.
//!
//! `factum-peer-postgres-es --peer cqrs-es|esrs --writers N --entities M --seconds S --pg-url URL --schema NAME`
//! creates the peer's tables in the (new) schema, runs, checks every
//! account's stored balance against the accepted commands, and drops the
//! schema.
//!
//! - `cqrs-es`: cqrs-es 0.5 over postgres-es's `PersistedEventStore`.
//! - `esrs`: esrs 0.18 (`AggregateManager` over `PgStore`), see `esrs_bank.rs`.
//!
//! Both use sqlx 0.8, so both live in this one binary and lock.
#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::str::FromStr;
use std::sync::Arc;

use cqrs_es::persist::PersistedEventStore;
use cqrs_es::{AggregateContext, EventStore};
use esrs::store::postgres::PgStoreBuilder;
use postgres_es::PostgresEventRepository;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Pool, Postgres};

#[path = "../../src/workload.rs"]
mod workload;

// The in-memory constructor is for the parent binary only.
#[allow(dead_code)]
#[path = "../../src/cqrs_bank.rs"]
mod cqrs_bank;

mod esrs_bank;

#[derive(Clone, Copy, PartialEq)]
enum Peer {
    CqrsEs,
    Esrs,
}

impl Peer {
    fn name(self) -> &'static str {
        match self {
            Peer::CqrsEs => "cqrs-es",
            Peer::Esrs => "esrs",
        }
    }
}

struct Args {
    peer: Peer,
    writers: usize,
    entities: usize,
    seconds: f64,
    pg_url: String,
    schema: String,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let (mut peer, mut writers, mut entities, mut seconds, mut pg_url, mut schema) =
        (None, None, None, None, None, None);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--peer" => {
                peer = Some(match value.as_str() {
                    "cqrs-es" => Peer::CqrsEs,
                    "esrs" => Peer::Esrs,
                    other => return Err(format!("--peer must be cqrs-es or esrs, not {other:?}")),
                })
            }
            "--writers" => writers = value.parse().ok(),
            "--entities" => entities = value.parse().ok(),
            "--seconds" => seconds = value.parse().ok(),
            "--pg-url" => pg_url = Some(value),
            "--schema" => schema = Some(value),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let schema: String = schema.ok_or("--schema is required")?;
    if !schema
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        return Err(format!(
            "--schema {schema:?}: lowercase letters, digits and _ only"
        ));
    }
    Ok(Args {
        peer: peer.ok_or("--peer is required (cqrs-es or esrs)")?,
        writers: writers.ok_or("--writers needs a whole number")?,
        entities: entities.ok_or("--entities needs a whole number")?,
        seconds: seconds.ok_or("--seconds needs a number")?,
        pg_url: pg_url.ok_or("--pg-url is required")?,
        schema,
    })
}

/// Creates the schema, runs the peer, checks it, drops the schema.
async fn run(args: &Args) -> Result<(workload::Tally, usize), String> {
    let schema = &args.schema;
    // 16 connections, as factum's PostgresStore opens by default. esrs names
    // its table after the aggregate, unqualified: the run's schema goes
    // first on every connection's search_path.
    let options = PgConnectOptions::from_str(&args.pg_url)
        .map_err(|e| format!("--pg-url {}: {e}", args.pg_url))?
        .options([("search_path", schema.as_str())]);
    let pool = PgPoolOptions::new()
        .max_connections(16)
        .connect_with(options)
        .await
        .map_err(|e| format!("--pg-url {}: {e}", args.pg_url))?;
    // All 16 opened before the timed run, as a serving pool would be: sqlx
    // opens connections on demand, and 16 writers asking at once at the start
    // spent the first 1-2 s of the window connecting (a 1 s run stored 18
    // commands; warm, ~1,800).
    let mut warm = Vec::with_capacity(16);
    for _ in 0..16 {
        warm.push(
            pool.acquire()
                .await
                .map_err(|e| format!("--pg-url {}: opening the pool: {e}", args.pg_url))?,
        );
    }
    drop(warm);
    sqlx::raw_sql(&format!("CREATE SCHEMA {schema}"))
        .execute(&pool)
        .await
        .map_err(|e| format!("creating schema {schema}: {e}"))?;
    let result = match args.peer {
        Peer::CqrsEs => cqrs_es(args, &pool).await,
        Peer::Esrs => esrs(args, &pool).await,
    };
    if let Err(e) = sqlx::raw_sql(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .execute(&pool)
        .await
    {
        eprintln!("factum-peer-postgres-es: could not drop schema {schema}: {e}");
    }
    result
}

/// cqrs-es + postgres-es. Event-sourced: each command loads the aggregate's
/// events, the framework's default (postgres_cqrs) and the counterpart of a
/// factum entity that is not cached.
async fn cqrs_es(args: &Args, pool: &Pool<Postgres>) -> Result<(workload::Tally, usize), String> {
    let schema = &args.schema;
    // The tables of postgres-es's db/init.sql, in the run's own schema.
    let ddl = format!(
        "CREATE TABLE {schema}.events (
             aggregate_type text NOT NULL, aggregate_id text NOT NULL,
             sequence bigint CHECK (sequence >= 0) NOT NULL,
             event_type text NOT NULL, event_version text NOT NULL,
             payload json NOT NULL, metadata json NOT NULL,
             PRIMARY KEY (aggregate_type, aggregate_id, sequence));
         CREATE TABLE {schema}.snapshots (
             aggregate_type text NOT NULL, aggregate_id text NOT NULL,
             last_sequence bigint CHECK (last_sequence >= 0) NOT NULL,
             current_snapshot bigint CHECK (current_snapshot >= 0) NOT NULL,
             payload json NOT NULL,
             PRIMARY KEY (aggregate_type, aggregate_id, last_sequence));"
    );
    sqlx::raw_sql(&ddl)
        .execute(pool)
        .await
        .map_err(|e| format!("creating the postgres-es tables in {schema}: {e}"))?;
    let repo = || {
        PostgresEventRepository::new(pool.clone())
            .with_tables(&format!("{schema}.events"), &format!("{schema}.snapshots"))
    };
    let bank = cqrs_bank::CqrsBank::new(PersistedEventStore::new_event_store(repo()), args.entities);
    let tally = workload::workload(Arc::new(bank), args.entities, args.writers, args.seconds).await?;
    // The check: every account loaded through a new store over the same
    // tables (its events folded by cqrs-es), then the row count.
    let store = PersistedEventStore::<_, cqrs_bank::BankAccount>::new_event_store(repo());
    for (i, &expected) in tally.balances.iter().enumerate() {
        let id = workload::account_id(i);
        let mut context = store
            .load_aggregate(&id)
            .await
            .map_err(|e| format!("loading {id} for the check: {e}"))?;
        let account = context.aggregate();
        if !account.open || i64::try_from(account.balance) != Ok(expected) {
            return Err(format!(
                "{id}: stored balance {} (open: {}), the accepted commands imply {expected}",
                account.balance, account.open
            ));
        }
    }
    count_events(pool, &format!("{schema}.events"), &tally).await?;
    Ok((tally, args.entities))
}

/// esrs 0.18: `AggregateManager` over `PgStore`, optimistic (see esrs_bank.rs).
async fn esrs(args: &Args, pool: &Pool<Postgres>) -> Result<(workload::Tally, usize), String> {
    // try_build runs esrs's migrations: the table `account_events`, its
    // index and unique index, in the run's schema (first on the search_path).
    let store = PgStoreBuilder::<esrs_bank::BankAccount>::new(pool.clone())
        .try_build()
        .await
        .map_err(|e| format!("creating the esrs table in {}: {e}", args.schema))?;
    let bank = esrs_bank::EsrsBank::new(store.clone(), args.entities);
    let tally = workload::workload(Arc::new(bank), args.entities, args.writers, args.seconds).await?;
    esrs_bank::check(store, &tally.balances).await?;
    count_events(pool, &format!("{}.account_events", args.schema), &tally).await?;
    Ok((tally, args.entities))
}

/// One stored event per opened account and per accepted command, no more.
async fn count_events(pool: &Pool<Postgres>, table: &str, tally: &workload::Tally) -> Result<(), String> {
    let stored: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
        .fetch_one(pool)
        .await
        .map_err(|e| format!("counting the events in {table}: {e}"))?;
    // Each accepted command stores exactly one event.
    let accepted = tally.commands - tally.rejected - tally.failed;
    let expected = tally.balances.len() as u64 + accepted;
    if u64::try_from(stored) != Ok(expected) {
        return Err(format!(
            "{table} holds {stored} events; the opened accounts and accepted commands imply {expected}"
        ));
    }
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) => {
            eprintln!("factum-peer-postgres-es: {message}");
            return ExitCode::from(2);
        }
    };
    match run(&args).await {
        Ok((tally, checked)) => {
            if let Some(e) = &tally.first_failure {
                eprintln!("factum-peer-postgres-es: first failure: {e}");
            }
            println!(
                "{} commands={} rejected={} failed={} secs={} commands_per_sec={:.0} checked={checked}",
                args.peer.name(),
                tally.commands,
                tally.rejected,
                tally.failed,
                tally.secs,
                tally.per_sec()
            );
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("factum-peer-postgres-es: {} FAILED: {message}", args.peer.name());
            ExitCode::from(1)
        }
    }
}
