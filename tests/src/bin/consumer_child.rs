//! A process that runs the bank's fraud check on a SQLite file, for the
//! consumer kill test: it is killed at a fault point of the consumer's commit
//! (`FACTUM_FAULT=consumer.commit.before=abort@2`), then run again.
//!
//! `consumer_child seed <file> <accounts>`: opens that many accounts, each
//! with a deposit and a withdrawal above the fraud limit; prints `seeded <head>`.
//! `consumer_child run <file>`: runs the fraud check (batches of 8 events)
//! until it has handled the whole log; prints `idle <checkpoint>`.

use std::io::Write;

use factum::App;
use factum_examples::bank::{Account, Deposit, Open, Withdraw};
use factum_examples::fraud::FraudCheck;

/// The fraud check's limit in the kill test: every seeded withdrawal is above it.
pub const LIMIT: u64 = 100_000;

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: consumer_child seed <file> <accounts> | run <file>";
    match (args.first().map(String::as_str), args.get(1)) {
        (Some("seed"), Some(path)) => {
            let accounts: usize = args.get(2).ok_or(usage)?.parse()?;
            let app = App::open(path).await?;
            for i in 0..accounts {
                let account = app.entity::<Account>(format!("acc-{i:03}"));
                account
                    .send(Open {
                        owner: format!("owner {i}"),
                    })
                    .await?;
                account.send(Deposit { amount: 500_000 }).await?;
                account.send(Withdraw { amount: 200_000 }).await?;
            }
            say(&format!("seeded {}", app.store().head().await?));
            Ok(())
        }
        (Some("run"), Some(path)) => {
            let app = App::builder().sqlite(path)?.consumer_batch(8).build();
            let fraud = app.consumers().start(FraudCheck { limit: LIMIT }).await?;
            let head = app.store().head().await?;
            fraud.wait_for(head).await?;
            say(&format!("idle {}", fraud.checkpoint()));
            Ok(())
        }
        _ => Err(usage.into()),
    }
}
