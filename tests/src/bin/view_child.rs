//! A process that catches up the `test_tally` view over the deterministic log
//! of `factum_tests::views::write_log`, for the crash and failover tests.
//!
//! `view_child sqlite <file> <events>` or `view_child postgres <url> <schema> <events>`.
//! Prints `ready` once the view runs, `runner` when this process becomes the
//! view's runner, `done` when the view has folded every event, then exits.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use factum::App;
use factum::store::{EventStore, MemoryStore};
use factum::view::ViewStore;
use factum_tests::views::{CHILD_STREAMS, Tally, write_log};

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (view_store, n): (Arc<dyn ViewStore>, &str) = match args.first().map(String::as_str) {
        Some("sqlite") if args.len() == 3 => (Arc::new(factum::view::SqliteViewStore::open(&args[1])?), &args[2]),
                Some("postgres") if args.len() == 4 => (
            Arc::new(factum::view::PostgresViewStore::connect_in_schema(&args[1], &args[2]).await?),
            &args[3],
        ),
        _ => return Err("usage: view_child sqlite <file> <events> | postgres <url> <schema> <events>".into()),
    };
    let n: u64 = n.parse()?;
    // Smaller batches make a catch-up last long enough to kill it in the middle.
    let batch: usize = std::env::var("FACTUM_CHILD_BATCH").ok().and_then(|b| b.parse().ok()).unwrap_or(500);
    // Every child writes the same log, so every process sees one log.
    let log: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    write_log(&*log, n, CHILD_STREAMS).await;
    let app = App::builder()
        .shared_store(log)
        .shared_view_store(view_store)
        .view_batch(batch)
        .build();
    app.start_view::<Tally>().await?;
    say("ready");
    let tally = app.view::<Tally>();
    let mut was_runner = false;
    loop {
        if !was_runner && tally.is_runner() {
            was_runner = true;
            say("runner");
        }
        if tally.checkpoint() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    say("done");
    Ok(())
}
