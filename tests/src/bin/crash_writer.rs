//! The child process of `tests/sqlite_crash.rs`: appends to a SQLite store
//! under load, from several tasks, until it is killed (the test aborts it at
//! a fault point with `FACTUM_FAULT`), printing `ack <stream> <version>`
//! (flushed) for every append the store acknowledged.

use std::io::Write;
use std::process::ExitCode;

use factum::store::{AppendRequest, EventMetadata, EventStore, NewEvent, StoreError};
use factum::{Codec, SqliteStore, Timestamp};

const TASKS: usize = 8;

fn event(stream: &str, version: u64) -> Result<NewEvent, factum::CodecError> {
    Ok(NewEvent {
        event_type: "crash.appended".into(),
        schema_version: 1,
        codec: Codec::Json,
        // The payload names its own place, so a torn or misplaced record shows.
        payload: Codec::Json.encode(&(stream, version, "x".repeat((version % 7 * 40) as usize)))?,
        metadata: EventMetadata {
            event_id: uuid::Uuid::new_v4(),
            recorded_at: Timestamp::wall_clock(),
            command_id: uuid::Uuid::new_v4(),
            causation_id: None,
            correlation_id: uuid::Uuid::new_v4(),
        },
    })
}

async fn write_forever(
    store: SqliteStore,
    stream: String,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut expected = store.stream_version("crash", &stream).await?;
    loop {
        let count = 1 + expected % 3;
        let events = (1..=count)
            .map(|i| event(&stream, expected + i))
            .collect::<Result<Vec<_>, _>>()?;
        let request = AppendRequest {
            stream_type: "crash".into(),
            stream_id: stream.clone().into(),
            expected_version: expected,
            events,
        };
        match store.append(request).await {
            Ok(appended) => {
                expected = appended.version;
                let mut out = std::io::stdout().lock();
                writeln!(out, "ack {stream} {}", appended.version)?;
                out.flush()?;
            }
            // The shared stream is contended on purpose.
            Err(StoreError::Conflict { actual, .. }) => expected = actual,
            Err(e) => return Err(e.into()),
        }
    }
}

fn main() -> ExitCode {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: crash_writer <sqlite file>");
        return ExitCode::FAILURE;
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("crash_writer: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        let store = SqliteStore::open(&path)?;
        let mut tasks = Vec::new();
        for t in 0..TASKS {
            let stream = if t % 4 == 3 {
                "shared".to_owned()
            } else {
                format!("s{t}")
            };
            tasks.push(tokio::spawn(write_forever(store.clone(), stream)));
        }
        for task in tasks {
            task.await??;
        }
        Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("crash_writer: {e}");
            ExitCode::FAILURE
        }
    }
}
