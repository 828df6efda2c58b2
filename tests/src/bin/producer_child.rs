//! A process that publishes the bank's events from a SQLite file to a
//! JetStream stream, for the producer kill test: it is killed at a fault
//! point after a batch's acks, before its checkpoint commit
//! (`FACTUM_FAULT=producer.commit.before=abort@2`), then run again.
//!
//! `producer_child <file> <nats url> <stream> <subject prefix>`: publishes
//! every account event (batches of 16) until the head, prints `published <checkpoint>`.

use std::io::Write;

use factum::App;
use factum::nats::{Producer, async_nats};

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [file, url, stream, prefix] = args.as_slice() else {
        return Err("usage: producer_child <file> <nats url> <stream> <subject prefix>".into());
    };
    let app = App::open(file).await?;
    let client = async_nats::connect(url.as_str()).await?;
    let producer = Producer::new("bank_feed", stream.as_str())
        .stream_types(["account"])
        .per_entity()
        .subject_prefix(prefix.as_str())
        .batch(16)
        .start(&app, client)
        .await?;
    producer.wait_for(app.store().head().await?).await?;
    say(&format!("published {}", producer.checkpoint()));
    Ok(())
}
