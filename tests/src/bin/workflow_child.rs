//! The child process of `tests/workflows_crash.rs`: on a SQLite file, funds
//! a wallet (once, under a fixed command id) and starts transfers from it
//! (a transfer started before is refused as already started, and resumes),
//! then waits until every transfer has ended, printing `ended <id>` for each.
//! The test kills it at the fault point `workflow.step.after` — a step has
//! run (its wallet call committed), its result is not recorded — and runs it
//! again.
//!
//! `workflow_child <db> <transfers>`

use std::process::ExitCode;

use factum::prelude::*;
use factum::workflow::WorkflowRejection;
use factum_examples::transfer::{Credit, StartTransfer, Transfer, Wallet};

async fn run(path: &str, transfers: usize) -> Result<(), Box<dyn std::error::Error>> {
    let app = App::open(path).await?;
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
    let mut args = std::env::args().skip(1);
    let (Some(path), Some(Ok(transfers))) = (args.next(), args.next().map(|n| n.parse::<usize>())) else {
        eprintln!("usage: workflow_child <db> <transfers>");
        return ExitCode::from(2);
    };
    match run(&path, transfers).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("workflow_child: {e}");
            ExitCode::FAILURE
        }
    }
}
