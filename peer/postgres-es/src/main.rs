//! The bank workload on cqrs-es + postgres-es, for factum-peer (`../src/main.rs`),
//! which starts it and reads its last stdout line:
//! `cqrs-es commands=N rejected=N failed=N secs=F`.
//!
//! `factum-peer-postgres-es --writers N --entities M --seconds S --pg-url URL --schema NAME`
//! creates the postgres-es tables in the (new) schema, runs, and drops the schema.
#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::sync::Arc;

use cqrs_es::persist::PersistedEventStore;
use postgres_es::PostgresEventRepository;
use sqlx::postgres::PgPoolOptions;

#[path = "../../src/workload.rs"]
mod workload;

// The in-memory constructor is for the parent binary only.
#[allow(dead_code)]
#[path = "../../src/cqrs_bank.rs"]
mod cqrs_bank;

struct Args {
    writers: usize,
    entities: usize,
    seconds: f64,
    pg_url: String,
    schema: String,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let (mut writers, mut entities, mut seconds, mut pg_url, mut schema) = (None, None, None, None, None);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
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
        writers: writers.ok_or("--writers needs a whole number")?,
        entities: entities.ok_or("--entities needs a whole number")?,
        seconds: seconds.ok_or("--seconds needs a number")?,
        pg_url: pg_url.ok_or("--pg-url is required")?,
        schema,
    })
}

async fn run(args: &Args) -> Result<workload::Tally, String> {
    // 16 connections, as factum's PostgresStore opens by default.
    let pool = PgPoolOptions::new()
        .max_connections(16)
        .connect(&args.pg_url)
        .await
        .map_err(|e| format!("--pg-url {}: {e}", args.pg_url))?;
    let schema = &args.schema;
    // The tables of postgres-es's db/init.sql, in the run's own schema.
    let ddl = format!(
        "CREATE SCHEMA {schema};
         CREATE TABLE {schema}.events (
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
        .execute(&pool)
        .await
        .map_err(|e| format!("creating the postgres-es tables in {schema}: {e}"))?;
    let repo = PostgresEventRepository::new(pool.clone())
        .with_tables(&format!("{schema}.events"), &format!("{schema}.snapshots"));
    // Event-sourced: each command loads the aggregate's events, the
    // framework's default (postgres_cqrs) and the counterpart of a factum
    // entity that is not cached.
    let bank = cqrs_bank::CqrsBank::new(PersistedEventStore::new_event_store(repo), args.entities);
    let result = workload::workload(Arc::new(bank), args.entities, args.writers, args.seconds).await;
    if let Err(e) = sqlx::raw_sql(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .execute(&pool)
        .await
    {
        eprintln!("factum-peer-postgres-es: could not drop schema {schema}: {e}");
    }
    result
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
        Ok(tally) => {
            if let Some(e) = &tally.first_failure {
                eprintln!("factum-peer-postgres-es: first failure: {e}");
            }
            println!(
                "cqrs-es commands={} rejected={} failed={} secs={} commands_per_sec={:.0}",
                tally.commands,
                tally.rejected,
                tally.failed,
                tally.secs,
                tally.per_sec()
            );
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("factum-peer-postgres-es: {message}");
            ExitCode::from(1)
        }
    }
}
