//! The child process of `tests/workflows_crash.rs` and
//! `tests/workflows_failover.rs`: on a SQLite file (or a PostgreSQL schema,
//! as one node of several), funds
//! a wallet (once, under a fixed command id) and starts transfers from it
//! (a transfer started before is refused as already started, and resumes),
//! then waits until every transfer has ended, printing `ended <id>` for each.
//! The test kills it at the fault point `workflow.step.after` — a step has
//! run (its wallet call committed), its result is not recorded — and runs it
//! again.
//!
//! `workflow_child <db> <transfers>` or `workflow_child --pg <url> <schema> <transfers>`

use std::process::ExitCode;

use factum::prelude::*;
use factum::workflow::WorkflowRejection;
use factum_examples::transfer::{Credit, StartTransfer, Transfer, Wallet};

/// Where the child keeps its log and timers.
enum Target {
    Sqlite(String),
    Postgres { url: String, schema: String },
}

async fn open(target: &Target) -> Result<App, Box<dyn std::error::Error>> {
    Ok(match target {
        Target::Sqlite(path) => App::open(path).await?,
        Target::Postgres { url, schema } => {
            let store = factum::PostgresStore::connect(url.clone())
                .schema(schema.clone())
                .pool_size(4)
                .poll_interval(std::time::Duration::from_millis(100))
                .open()
                .await?;
            let timers = factum::postgres::PostgresTimerStore::connect_in_schema(url, schema).await?;
            App::builder().store(store).timer_store(timers).build()
        }
    })
}

async fn run(target: &Target, transfers: usize) -> Result<(), Box<dyn std::error::Error>> {
    let app = open(target).await?;
    let funding = SendOptions {
        command_id: Some(Uuid::from_u128(0xf00d)),
        ..SendOptions::default()
    };
    app.entity::<Wallet>("ada")
        .send_with(
            Credit {
                amount: 1_000_000,
                reference: "opening balance".into(),
            },
            funding,
        )
        .await?;
    let mut started = Vec::new();
    for i in 0..transfers {
        let transfer = app.workflow::<Transfer>(format!("kill-{i}"));
        let start = StartTransfer {
            from: "ada".into(),
            to: "bob".into(),
            amount: 100 + i as u64,
        };
        match transfer.start(start).await {
            Ok(_) => {}
            Err(e) if matches!(e.rejection(), Some(WorkflowRejection::AlreadyStarted { .. })) => {}
            Err(e) => return Err(e.into()),
        }
        started.push(transfer);
    }
    for transfer in started {
        let status = transfer.wait_for_end().await?;
        println!("ended {} {status}", transfer.id());
    }
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (target, transfers) = match &args[..] {
        [flag, url, schema, n] if flag == "--pg" => (
            Target::Postgres {
                url: url.clone(),
                schema: schema.clone(),
            },
            n,
        ),
        [path, n] => (Target::Sqlite(path.clone()), n),
        _ => {
            eprintln!(
                "usage: workflow_child <db> <transfers> | workflow_child --pg <url> <schema> <transfers>"
            );
            return ExitCode::from(2);
        }
    };
    let Ok(transfers) = transfers.parse::<usize>() else {
        eprintln!("workflow_child: <transfers> is a number, not {transfers:?}");
        return ExitCode::from(2);
    };
    match run(&target, transfers).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("workflow_child: {e}");
            ExitCode::FAILURE
        }
    }
}
