//! Throughput of the gateway, run by hand (never a test): how fast the NATS
//! producer publishes with acks, and how fast a consumer handles events
//! when each one sends a command.
//!
//! `cargo run --release -p factum-examples --bin gateway_load -- [events]`
//! (default 20,000; NATS at `FACTUM_NATS_URL`, default `nats://127.0.0.1:4222`).
//! Uses a fresh JetStream stream and deletes it at the end.

use std::time::Instant;

use factum::App;
use factum::nats::Producer;
use factum::nats::async_nats::{self, jetstream};
use factum_examples::bank::{Account, Deposit, Open, Withdraw};
use factum_examples::fraud::FraudCheck;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let events: usize = std::env::args().nth(1).map_or(Ok(20_000), |a| a.parse())?;
    let url = std::env::var("FACTUM_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned());
    let dir = std::env::temp_dir().join(format!("factum-gateway-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let app = App::open(dir.join("bank.db")).await?;

    // Accounts of 1 open, then deposits and withdrawals (every 10th above the fraud limit).
    let accounts = (events / 100).max(1);
    let mut written = 0;
    for a in 0..accounts {
        let account = app.entity::<Account>(format!("acc-{a}"));
        account
            .send(Open {
                owner: format!("owner {a}"),
            })
            .await?;
        written += 1;
    }
    let mut tasks = tokio::task::JoinSet::new();
    for a in 0..accounts {
        let app = app.clone();
        let per = (events - accounts) / accounts;
        tasks.spawn(async move {
            let account = app.entity::<Account>(format!("acc-{a}"));
            for i in 0..per {
                if i % 2 == 0 {
                    account.send(Deposit { amount: 1_000 }).await?;
                } else {
                    account.send(Withdraw { amount: 500 }).await?;
                }
            }
            Ok::<usize, factum::CommandError<factum_examples::bank::AccountError>>(per)
        });
    }
    while let Some(done) = tasks.join_next().await {
        written += done??;
    }
    let head = app.store().head().await?;
    println!("{written} events in the log (head {head}), {accounts} accounts");

    let client = async_nats::connect(url.as_str()).await?;
    let js = jetstream::new(client.clone());
    let stream = format!("FACTUM_LOAD_{}", std::process::id());
    js.create_stream(jetstream::stream::Config {
        name: stream.clone(),
        subjects: vec![format!("load{}.>", std::process::id())],
        ..Default::default()
    })
    .await?;
    let started = Instant::now();
    let producer = Producer::new("load", stream.as_str())
        .subject_prefix(format!("load{}", std::process::id()))
        .per_entity()
        .start(&app, client)
        .await?;
    producer.wait_for(head).await?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "producer: {head} events published with acks in {secs:.2} s: {:.0} events/s",
        head as f64 / secs
    );

    let started = Instant::now();
    let fraud = app.consumers().start(FraudCheck { limit: 100_000 }).await?;
    fraud.wait_for(head).await?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "consumer: {head} events handled (fraud check, no freezes) in {secs:.2} s: {:.0} events/s",
        head as f64 / secs
    );
    js.delete_stream(&stream).await?;
    drop(app);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
