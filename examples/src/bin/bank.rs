//! The bank, scripted: open accounts, move money, get refused, and print each
//! account's audit trail. Runs on a SQLite file (the embedded default), so a
//! second run continues where the first left off.
//!
//! `cargo run -p factum-examples --bin bank [-- path/to/bank.db]`

use factum::prelude::*;
use factum::{EntityRef, EventSet};
use factum_examples::bank::{
    Account, AccountError, AccountSummary, Close, Deposit, Open, TransferIn, TransferOut, Withdraw, dollars,
    money,
};
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

    for account in [&ada, &grace] {
        print_audit_trail(account).await?;
    }
    print_summary(&app).await?;
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
