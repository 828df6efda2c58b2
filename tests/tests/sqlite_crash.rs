//! Crash safety of the SQLite store: a child process appends under load and is
//! killed with SIGKILL at random moments, five times over the same file; every
//! append it saw acknowledged must survive, and nothing may be torn.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use factum::{EventStore, SqliteStore};

/// A delay in `range` milliseconds, different on every call.
fn random_millis(range: std::ops::Range<u64>) -> Duration {
    let seed = u64::from_le_bytes(uuid::Uuid::new_v4().as_bytes()[..8].try_into().unwrap());
    Duration::from_millis(range.start + seed % (range.end - range.start))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_append_survives_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.db");
    // stream → highest version the child saw acknowledged.
    let mut acked: HashMap<String, u64> = HashMap::new();
    let mut total_acks = 0;
    for round in 0..5 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_crash_writer"))
            .arg(&path)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the crash writer");
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .collect::<Vec<String>>()
        });
        tokio::time::sleep(random_millis(300..900)).await;
        child.kill().expect("SIGKILL the writer"); // SIGKILL on Unix
        let status = child.wait().unwrap();
        assert!(
            !status.success(),
            "round {round}: the writer stopped on its own: {status}"
        );
        let lines = reader.join().unwrap();
        let mut round_acks = 0;
        for line in lines {
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
                round_acks += 1;
            }
        }
        assert!(
            round_acks > 0,
            "round {round}: the writer acknowledged nothing before it was killed"
        );
        total_acks += round_acks;
    }
    println!("{total_acks} acknowledged appends over 5 kills");

    let store = SqliteStore::open(&path).expect("reopen after the crashes");
    for (stream, &acked_version) in &acked {
        let events = store.read_stream("crash", stream, 1, usize::MAX).await.unwrap();
        assert!(
            events.len() as u64 >= acked_version,
            "stream {stream}: acknowledged version {acked_version} but only {} events survived",
            events.len()
        );
        for (i, e) in events.iter().enumerate() {
            assert_eq!(e.version, i as u64 + 1, "stream {stream} is not contiguous");
            let (s, v, _pad): (String, u64, String) = e
                .codec
                .decode(&e.payload)
                .unwrap_or_else(|err| panic!("{stream} v{}: {err}", e.version));
            assert_eq!(
                (s.as_str(), v),
                (stream.as_str(), e.version),
                "a record is torn or misplaced"
            );
        }
    }
    let head = store.head().await.unwrap();
    let all = store.read_all(1, usize::MAX).await.unwrap();
    assert_eq!(
        all.iter().map(|e| e.position).collect::<Vec<_>>(),
        (1..=head).collect::<Vec<_>>()
    );
}
