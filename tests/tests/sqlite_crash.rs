//! Crash safety of the SQLite store: a child process appends under load, from
//! eight tasks, and is aborted at fault points of the store — `append.after`
//! (a batch committed, its caller not yet answered) and `append.before` (an
//! append not yet handed to the writer, others in flight) — five times over
//! the same file; after every crash, every append it saw acknowledged
//! survives, and nothing is torn, misplaced or doubled.

use std::collections::HashMap;
use std::process::Command;

use factum::{EventStore, SqliteStore};
use factum_tests::child::run_with_fault;

/// The kills, in order: the fault point and at which of its hits in the
/// (re)started writer it aborts. Each is late enough that acknowledgements
/// came first: a task prints an acknowledgement before its next append, and
/// at most one append per task is in flight.
const KILLS: [(&str, u64); 5] = [
    ("append.after", 150),
    ("append.before", 400),
    ("append.after", 60),
    ("append.before", 90),
    ("append.after", 700),
];

/// Stream → the highest version the writer saw acknowledged, from its stdout.
fn acknowledgements(stdout: &[String], acked: &mut HashMap<String, u64>) -> usize {
    let mut count = 0;
    for line in stdout {
        // A line cut by the kill is not an acknowledgement.
        let mut parts = line.split(' ');
        if let (Some("ack"), Some(stream), Some(Ok(version)), None) = (
            parts.next(),
            parts.next(),
            parts.next().map(str::parse::<u64>),
            parts.next(),
        ) {
            let v = acked.entry(stream.to_owned()).or_default();
            *v = (*v).max(version);
            count += 1;
        }
    }
    count
}

/// Every acknowledged version is in the file, each stream is contiguous from
/// version 1, and each record's payload names its own stream and version.
async fn assert_survivors(store: &SqliteStore, acked: &HashMap<String, u64>, after: &str) {
    for (stream, &acked_version) in acked {
        let events = store
            .read_stream("crash", stream, 1, usize::MAX)
            .await
            .expect("read a stream");
        assert!(
            events.len() as u64 >= acked_version,
            "{after}: stream {stream}: acknowledged version {acked_version} but only {} events survived",
            events.len()
        );
        for (i, e) in events.iter().enumerate() {
            assert_eq!(
                e.version,
                i as u64 + 1,
                "{after}: stream {stream} is not contiguous"
            );
            let (s, v, _pad): (String, u64, String) = e
                .codec
                .decode(&e.payload)
                .unwrap_or_else(|err| panic!("{after}: {stream} v{}: {err}", e.version));
            assert_eq!(
                (s.as_str(), v),
                (stream.as_str(), e.version),
                "{after}: a record is torn or misplaced"
            );
        }
    }
}

#[test]
fn every_acknowledged_append_survives_an_abort_at_each_append_point() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("crash.db");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let mut acked: HashMap<String, u64> = HashMap::new();
    let mut total_acks = 0;
    for (round, (point, hit)) in KILLS.into_iter().enumerate() {
        // Given the file as the earlier crashes left it, when the writer is
        // aborted at the `hit`-th hit of `point` ...
        let after = format!("round {round}, abort at {point} hit {hit}");
        let ended = run_with_fault(
            Command::new(env!("CARGO_BIN_EXE_crash_writer")).arg(&path),
            &format!("{point}=abort@{hit}"),
        );
        // ... it died there, not on its own,
        assert!(!ended.status.success(), "{after}: the writer stopped on its own");
        ended.assert_aborted_at(point, hit);
        let round_acks = acknowledgements(&ended.stdout, &mut acked);
        assert!(
            round_acks > 0,
            "{after}: the writer acknowledged nothing before it was killed"
        );
        total_acks += round_acks;
        // ... and then everything acknowledged so far is there, intact.
        rt.block_on(async {
            let store = SqliteStore::open(&path).expect("reopen after the crash");
            assert_survivors(&store, &acked, &after).await;
        });
    }
    println!("{total_acks} acknowledged appends over {} aborts", KILLS.len());

    // At the end, the log's positions are dense: no hole, none twice.
    rt.block_on(async {
        let store = SqliteStore::open(&path).expect("reopen after the crashes");
        assert_survivors(&store, &acked, "after every crash").await;
        let head = store.head().await.expect("head");
        let all = store.read_all(1, usize::MAX).await.expect("read the log");
        assert_eq!(
            all.iter().map(|e| e.position).collect::<Vec<_>>(),
            (1..=head).collect::<Vec<_>>()
        );
    });
}
