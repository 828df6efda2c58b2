//! The bank, scripted: open accounts, move money, get refused, and print each
//! account's audit trail. Runs on a SQLite file (the embedded default), so a
//! second run continues where the first left off.
//!
//! The fraud check (a consumer) freezes an account that moves too much out at
//! once, and, when NATS is reachable (`FACTUM_NATS_URL`, default
//! `nats://127.0.0.1:4222`), every account event is published to JetStream.
//!
//! `cargo run -p factum-examples --bin bank [-- path/to/bank.db]`

use factum::prelude::*;
use factum::{EntityRef, EventSet};
use factum_examples::bank::{
    Account, AccountError, AccountSummary, Close, Deposit, Open, TransferIn, TransferOut, Withdraw, dollars,
    money,
};
use factum_examples::fraud::FraudCheck;
use factum_examples::progress::catch_up_with_progress;

type Step = Result<factum::Committed<Account>, CommandError<AccountError>>;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).unwrap_or_else(|| "bank.db".to_owned());
    let app = App::open(&path).await?;
    let head = app.store().head().await?;
    println!("factum bank on {path} ({} events already in the log)\n", head);
    // Views live in memory here: each start folds the whole log again, behind a progress bar.
    app.start_views().await?;
    catch_up_with_progress(&app.view::<AccountSummary>(), head).await?;

    let ada = app.entity::<Account>("acc-ada");
    let grace = app.entity::<Account>("acc-grace");

    report(
        "open Ada's account",
        &ada,
        ada.send(Open { owner: "Ada".into() }).await,
    );
    report(
        "open Grace's account",
        &grace,
        grace
            .send(Open {
                owner: "Grace".into(),
            })
            .await,
    );
    report(
        "deposit 100.00 to Ada",
        &ada,
        ada.send(Deposit { amount: dollars(100) }).await,
    );
    report(
        "deposit 50.00 to Grace",
        &grace,
        grace.send(Deposit { amount: dollars(50) }).await,
    );
    report(
        "withdraw 30.00 from Ada",
        &ada,
        ada.send(Withdraw { amount: dollars(30) }).await,
    );
    report(
        "withdraw 1000.00 from Grace",
        &grace,
        grace
            .send(Withdraw {
                amount: dollars(1000),
            })
            .await,
    );
    report("deposit 0.00 to Ada", &ada, ada.send(Deposit { amount: 0 }).await);
    // A transfer is two commands on two entities; the transfer workflow makes it
    // durable. Both carry one correlation id, and the credit names the debit as
    // its cause, so `factum trace` shows them as one transaction.
    let transfer = Uuid::new_v4();
    let out = ada
        .send_with(
            TransferOut {
                to: grace.id().into(),
                amount: dollars(25),
            },
            SendOptions {
                command_id: Some(transfer),
                correlation_id: Some(transfer),
                ..SendOptions::default()
            },
        )
        .await;
    let debited = out.is_ok();
    report("transfer 25.00 from Ada (debit)", &ada, out);
    if debited {
        let credit = grace
            .send_with(
                TransferIn {
                    from: ada.id().into(),
                    amount: dollars(25),
                },
                SendOptions {
                    causation_id: Some(transfer),
                    correlation_id: Some(transfer),
                    ..SendOptions::default()
                },
            )
            .await;
        report("transfer 25.00 to Grace (credit)", &grace, credit);
    }
    report("close Grace's account", &grace, grace.send(Close).await);

    // The fraud check, a consumer: moving more than 500.00 out at once freezes the account.
    let fraud = app.consumers().start(FraudCheck { limit: dollars(500) }).await?;
    let mallory = app.entity::<Account>("acc-mallory");
    report(
        "open Mallory's account",
        &mallory,
        mallory
            .send(Open {
                owner: "Mallory".into(),
            })
            .await,
    );
    report(
        "deposit 2000.00 to Mallory",
        &mallory,
        mallory
            .send(Deposit {
                amount: dollars(2000),
            })
            .await,
    );
    report(
        "withdraw 800.00 from Mallory",
        &mallory,
        mallory.send(Withdraw { amount: dollars(800) }).await,
    );
    fraud.wait_idle().await?; // the consumer has seen the withdrawal (and frozen the account)
    report(
        "withdraw 10.00 from Mallory",
        &mallory,
        mallory.send(Withdraw { amount: dollars(10) }).await,
    );

    for account in [&ada, &grace, &mallory] {
        print_audit_trail(account).await?;
    }
    print_summary(&app).await?;
    let status = fraud.status().await?;
    println!(
        "\nfraud_check consumer: checkpoint {}, lag {} events, {} handled by this run, dead letters {:?}",
        status.checkpoint, status.lag_events, status.handled, status.letters
    );
    publish(&app).await
}

/// Publishes every account event to the JetStream stream `BANK` (subjects
/// `account.<event>.<account id>`) when NATS is reachable; the log is the
/// outbox, so a run without NATS loses nothing: the next one publishes it.
async fn publish(app: &App) -> Result<(), Box<dyn std::error::Error>> {
    use factum::nats::async_nats::{self, jetstream};
    let url = std::env::var("FACTUM_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned());
    let client = match async_nats::connect(url.as_str()).await {
        Ok(client) => client,
        Err(e) => {
            println!("\nNATS at {url} is not reachable ({e}): nothing published; the next run publishes it");
            return Ok(());
        }
    };
    jetstream::new(client.clone())
        .get_or_create_stream(jetstream::stream::Config {
            name: "BANK".to_owned(),
            subjects: vec!["account.>".to_owned()],
            ..Default::default()
        })
        .await?;
    let head = app.store().head().await?;
    let producer = factum::nats::Producer::new("bank_feed", "BANK")
        .stream_types(["account"])
        .per_entity()
        .start(app, client)
        .await?;
    if let Err(e) = producer.wait_for(head).await {
        // A stream filled from another bank.db, say: say so, keep what is stored.
        println!("\nnot published to JetStream stream BANK: {e}");
        return Ok(());
    }
    println!(
        "\npublished the log up to position {} to JetStream stream BANK at {url}; \
         `cargo run -p factum-examples --bin notifier` prints it",
        producer.checkpoint()
    );
    Ok(())
}

/// The `account_summary` view after the script: read-your-writes first (wait
/// until the view has folded the log's head), then O(1) reads and the owner index.
async fn print_summary(app: &App) -> Result<(), Box<dyn std::error::Error>> {
    let summary = app.view::<AccountSummary>();
    summary.wait_for(app.store().head().await?).await?;
    println!("\naccount_summary view (checkpoint {}):", summary.checkpoint());
    println!(
        "  {:<10}  {:<6}  {:>9}  {:>8}  {:>11}  state",
        "account", "owner", "balance", "deposits", "withdrawals"
    );
    let mut cursor = None;
    loop {
        let page = summary.list(cursor.as_deref(), 100).await?;
        for (id, row) in &page.rows {
            println!(
                "  {id:<10}  {:<6}  {:>9}  {:>8}  {:>11}  {}",
                row.owner,
                money(row.balance),
                row.deposits,
                row.withdrawals,
                if row.closed { "closed" } else { "open" }
            );
        }
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    for owner in ["Ada", "Grace"] {
        let accounts: Vec<String> = summary
            .find_by_owner(owner)
            .await?
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        println!("  accounts_by_owner({owner}): {accounts:?}");
    }
    Ok(())
}

fn report(what: &str, account: &EntityRef<Account>, step: Step) {
    match step {
        Ok(done) => println!(
            "{what:<34} ok       {} now at version {}",
            account.id(),
            done.version
        ),
        Err(CommandError::Rejected(why)) => println!("{what:<34} refused  {why}"),
        Err(other) => println!("{what:<34} FAILED   {other}"),
    }
}

async fn print_audit_trail(account: &EntityRef<Account>) -> Result<(), Box<dyn std::error::Error>> {
    println!("\naudit trail of {}:", account.id());
    println!("  {:>7}  {:<27}  {:<24}  data", "version", "recorded at", "event");
    for record in account.history().await? {
        let data = String::from_utf8(record.event.encode(Codec::Json)?)?;
        println!(
            "  {:>7}  {:<27}  {:<24}  {data}",
            record.version,
            record.metadata.recorded_at.to_string(),
            record.event.name()
        );
    }
    let state = account.state().await?;
    println!(
        "  state: owner {}, number {}, balance {}, {}",
        state.owner,
        state.number,
        money(state.balance),
        if state.closed {
            "closed"
        } else if state.open {
            "open"
        } else {
            "never opened"
        }
    );
    Ok(())
}
