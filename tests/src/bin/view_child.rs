//! A process that catches up the `test_tally` view over a durable log another
//! process wrote, for the crash and failover tests. The view's tables sit
//! beside the log: in the same SQLite file, or the same PostgreSQL schema.
//!
//! `view_child sqlite <file> <events>` or `view_child postgres <url> <schema> <events>`.
//! Prints `ready` once the view runs, `runner` when this process becomes the
//! view's runner, `done` when the view has folded `<events>` events, then exits.
//! `FACTUM_CHILD_BATCH` sets the events per view transaction (default 500);
//! `FACTUM_FAULT` arms fault points (`factum::fault`) to kill it at a commit.
//! `FACTUM_CHILD_VIEW=occupancy` follows the `test_occupancy` view (several
//! rows per event) instead of `test_tally`.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use factum::App;
use factum::View;
use factum::postgres::{PostgresStore, PostgresViewStore};
use factum::sqlite::{SqliteStore, SqliteViewStore};
use factum::store::EventStore;
use factum::view::ViewStore;
use factum_tests::occupancy::NightOccupancy;
use factum_tests::views::Tally;

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (log, views, n): (Arc<dyn EventStore>, Arc<dyn ViewStore>, &str) = match args
        .first()
        .map(String::as_str)
    {
        Some("sqlite") if args.len() == 3 => (
            Arc::new(SqliteStore::open(&args[1])?),
            Arc::new(SqliteViewStore::open(&args[1])?),
            &args[2],
        ),
        Some("postgres") if args.len() == 4 => (
            Arc::new(
                PostgresStore::connect(args[1].clone())
                    .schema(args[2].clone())
                    .open()
                    .await?,
            ),
            Arc::new(PostgresViewStore::connect_in_schema(&args[1], &args[2]).await?),
            &args[3],
        ),
        _ => {
            return Err("usage: view_child sqlite <file> <events> | postgres <url> <schema> <events>".into());
        }
    };
    let n: u64 = n.parse()?;
    // One view transaction per batch: the commit fault points are hit once per batch.
    let batch: usize = std::env::var("FACTUM_CHILD_BATCH")
        .ok()
        .and_then(|b| b.parse().ok())
        .unwrap_or(500);
    let app = App::builder()
        .shared_store(log)
        .shared_view_store(views)
        .view_batch(batch)
        .build();
    match std::env::var("FACTUM_CHILD_VIEW").as_deref() {
        Ok("occupancy") => follow::<NightOccupancy>(&app, n).await,
        _ => follow::<Tally>(&app, n).await,
    }
}

/// Runs view `V` until it has folded `n` events.
async fn follow<V: View>(app: &App, n: u64) -> Result<(), Box<dyn std::error::Error>> {
    app.start_view::<V>().await?;
    say("ready");
    let tally = app.view::<V>();
    let mut was_runner = false;
    loop {
        if !was_runner && tally.is_runner() {
            was_runner = true;
            say("runner");
        }
        if was_runner && !tally.is_runner() {
            was_runner = false;
            say(&format!("lost: {:?}", tally.last_error()));
        }
        if tally.checkpoint() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    say("done");
    Ok(())
}
