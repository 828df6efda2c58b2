//! Prints a notification for every account event the bank published to
//! NATS JetStream (run `cargo run -p factum-examples --bin bank` with NATS up
//! first): a durable JetStream consumer, so a second run prints only what is new.
//!
//! `cargo run -p factum-examples --bin notifier [-- --follow]`: drains the
//! stream and exits after 2 s without a message, or with `--follow` keeps
//! printing until Ctrl-C. `FACTUM_NATS_URL` names the server (default
//! `nats://127.0.0.1:4222`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use factum::App;
use factum::nats::{TopicConsumer, TopicContext, TopicHandler, async_nats};
use factum_examples::bank::money;
use serde_json::Value;

/// Turns one published account event into a line for a person.
struct Notify {
    seen: Arc<AtomicU64>,
}

impl TopicHandler for Notify {
    type Message = Value;
    type Output = ();

    async fn handle(&self, message: Value, ctx: &mut TopicContext) {
        self.seen.fetch_add(1, Ordering::SeqCst);
        // Subjects are `account.<event>.<account id>`.
        let mut parts = ctx.subject().splitn(3, '.');
        let (_, event, account) = (
            parts.next(),
            parts.next().unwrap_or("?"),
            parts.next().unwrap_or("?"),
        );
        let amount = message.get("amount").and_then(Value::as_u64).map(money);
        let line = match (event, amount) {
            ("opened", _) => format!(
                "welcome, {}",
                message.get("owner").and_then(Value::as_str).unwrap_or("?")
            ),
            ("deposited", Some(a)) => format!("{a} arrived"),
            ("withdrawn", Some(a)) => format!("{a} was withdrawn"),
            ("transferred_out", Some(a)) => format!(
                "{a} left for {}",
                message.get("to").and_then(Value::as_str).unwrap_or("?")
            ),
            ("transferred_in", Some(a)) => format!(
                "{a} came from {}",
                message.get("from").and_then(Value::as_str).unwrap_or("?")
            ),
            ("frozen", _) => format!(
                "FROZEN: {}",
                message
                    .get("reason")
                    .and_then(Value::as_str)
                    .unwrap_or("no reason given")
            ),
            ("closed", _) => "the account is closed".to_owned(),
            (other, _) => format!("{other}: {message}"),
        };
        println!("[{:>5}] {account:<12} {line}", ctx.sequence());
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let follow = std::env::args().any(|a| a == "--follow");
    let url = std::env::var("FACTUM_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned());
    let client = async_nats::connect(url.as_str()).await?;
    // The notifier sends no commands; its dead letters (undecodable messages) go to memory.
    let app = App::in_memory();
    let seen = Arc::new(AtomicU64::new(0));
    let watch = seen.clone();
    let stop = async move {
        if follow {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
        // Drained: nothing new for 2 s.
        let mut last = u64::MAX;
        loop {
            tokio::time::sleep(Duration::from_secs(2)).await;
            let now = watch.load(Ordering::SeqCst);
            if now == last {
                return;
            }
            last = now;
        }
    };
    println!("notifications from JetStream stream BANK on {url}:");
    let acked = TopicConsumer::new("notifier", "BANK")
        .filter("account.>")
        .run(&app, client, Notify { seen }, stop)
        .await?;
    println!("{acked} notifications");
    Ok(())
}
