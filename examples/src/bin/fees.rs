//! A monthly account fee as durable timers, over a simulated year: one timer
//! per month, named for the account and the month (scheduling again under a
//! name replaces the timer), fired by the app's timer runner as virtual time
//! passes. A month whose fee the balance cannot cover is rejected: the timer
//! is done and the rejection is its recorded outcome.
//!
//! `cargo run -p factum-examples --bin fees [-- path/to/fees.db]` (default: a
//! fresh temporary file; the timers live in the events file).

use std::time::Duration;

use factum::prelude::*;
use factum::timer::FiringOutcome;
use factum_examples::bank::{Account, Deposit, Open, Withdraw, dollars, money};

const MONTH: Duration = Duration::from_secs(30 * 86_400);

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = temp_dir()?;
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| dir.join("fees.db").display().to_string());
    let clock = ManualClock::new(Timestamp::parse("2030-01-01T00:00:00Z")?);
    let app = App::builder()
        .clock(clock.clone())
        .sqlite(&path)?
        // A restarted process fires the fees scheduled by an earlier one.
        .timer::<Account, Withdraw>()
        .build();
    println!("factum fees on {path}: a monthly fee of 4.00, by timer\n");

    let ada = app.entity::<Account>("acc-ada");
    ada.send(Open { owner: "Ada".into() }).await?;
    ada.send(Deposit { amount: dollars(10) }).await?;

    // Twelve fees, one per month. Named per account and month: the same run
    // again replaces them instead of doubling them.
    for month in 1..=12u32 {
        let due = clock.now() + MONTH * month;
        let name = format!("fee:{}:{month:02}", ada.id());
        app.timers()
            .schedule::<Account, _>(&name, ada.id(), due, Withdraw { amount: dollars(4) })
            .await?;
    }
    let pending = app.timers().pending().await?;
    println!("{} fees pending; the first:", pending.len());
    let first = &pending[0];
    println!(
        "  {}  {} {}/{}  due {}  {}\n",
        first.name, first.command_type, first.entity_type, first.entity_id, first.due, first.command
    );

    // A simulated year: each month the clock moves, and the due fee fires.
    for month in 1..=12 {
        if month == 7 {
            ada.send(Deposit { amount: dollars(20) }).await?;
            println!("         Ada deposits 20.00");
        }
        clock.advance(MONTH);
        app.timers().wait_idle().await?;
        let firing = app.timers().recent_firings(1).await?.remove(0);
        let state = ada.state().await?;
        let outcome = match &firing.outcome {
            FiringOutcome::Fired { version, .. } => format!("charged, account at version {version}"),
            FiringOutcome::Rejected { message } => format!("not charged: {message}"),
            FiringOutcome::Failed { error } => format!("failed, will retry: {error}"),
        };
        println!(
            "month {month:>2} ({}): {:<14} {outcome}; balance {}",
            clock.now(),
            firing.name,
            money(state.balance)
        );
    }
    println!(
        "\n{} fees pending after the year",
        app.timers().pending().await?.len()
    );
    Ok(())
}

/// A directory of this run's own under the system's temporary directory.
fn temp_dir() -> std::io::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("factum-fees-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
