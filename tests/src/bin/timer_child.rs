//! A process that schedules timers and is killed, or fires them after the
//! kill, for the timer kill test. The timers sit beside the log: in the same
//! SQLite file, or the same PostgreSQL schema.
//!
//! `timer_child schedule|fire sqlite <file>` or `timer_child schedule|fire postgres <url> <schema>`.
//! `schedule`: with the virtual clock at 2030-01-01T00:00:00Z, schedules
//! `kill:a` (due +60 s) and `kill:b` (due +120 s) for meter `m-1`, prints
//! `scheduled` once both are stored, then waits to be killed.
//! `fire`: with the clock at +300 s and the meter's `Tick` registered, waits
//! until everything due has fired, prints `fired <ticks of m-1>`, and exits.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use factum::postgres::{PostgresStore, PostgresTimerStore};
use factum::sqlite::{SqliteStore, SqliteTimerStore};
use factum::store::EventStore;
use factum::timer::TimerStore;
use factum::{App, ManualClock, Timestamp};
use factum_tests::timers::{Meter, Tick, tick};

/// The virtual time the schedule run stands at.
const T0: Timestamp = Timestamp::from_secs(1_893_456_000);

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: timer_child schedule|fire sqlite <file> | schedule|fire postgres <url> <schema>";
    let (store, timers): (Arc<dyn EventStore>, Arc<dyn TimerStore>) = match args.get(1).map(String::as_str) {
        Some("sqlite") if args.len() == 3 => (
            Arc::new(SqliteStore::open(&args[2])?),
            Arc::new(SqliteTimerStore::open(&args[2])?),
        ),
        Some("postgres") if args.len() == 4 => (
            Arc::new(
                PostgresStore::connect(args[2].clone())
                    .schema(args[3].clone())
                    .open()
                    .await?,
            ),
            Arc::new(PostgresTimerStore::connect_in_schema(&args[2], &args[3]).await?),
        ),
        _ => return Err(usage.into()),
    };
    match args.first().map(String::as_str) {
        Some("schedule") => {
            let app = App::builder()
                .shared_store(store)
                .shared_timer_store(timers)
                .clock(ManualClock::new(T0))
                .build();
            let t = app.timers();
            t.schedule::<Meter, _>("kill:a", "m-1", T0 + Duration::from_secs(60), tick("a"))
                .await?;
            t.schedule::<Meter, _>("kill:b", "m-1", T0 + Duration::from_secs(120), tick("b"))
                .await?;
            say("scheduled");
            // Killed here, between scheduling and the due times.
            std::future::pending::<()>().await;
            Ok(())
        }
        Some("fire") => {
            let app = App::builder()
                .shared_store(store)
                .shared_timer_store(timers)
                .clock(ManualClock::new(T0 + Duration::from_secs(300)))
                .timer::<Meter, Tick>()
                .build();
            app.timers().wait_idle().await?;
            let meter = app.entity::<Meter>("m-1").state().await?;
            say(&format!("fired {}", meter.labels.join(",")));
            Ok(())
        }
        _ => Err(usage.into()),
    }
}
