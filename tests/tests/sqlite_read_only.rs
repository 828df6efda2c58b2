//! `SqliteStore::open_read_only`, what the audit tools open a file with:
//! it reads what the writable store reads, refuses every write before
//! touching the file, and refuses files that are not a factum log.

use factum::sqlite::SqliteStore;
use factum::store::{AppendRequest, EventMetadata, EventStore, NewEvent, Snapshot, StoreError};
use factum::{Codec, Timestamp, Uuid};

fn event(i: u64) -> NewEvent {
    let id = Uuid::from_u64_pair(7, i);
    NewEvent {
        event_type: "test.scored".into(),
        schema_version: 1,
        codec: Codec::Json,
        payload: format!("{{\"amount\":{i}}}").into_bytes(),
        metadata: EventMetadata {
            event_id: id,
            recorded_at: Timestamp::from_secs(1_000 + i as i64),
            command_id: id,
            causation_id: None,
            correlation_id: id,
        },
    }
}

fn append(stream: &str, expected_version: u64, events: Vec<NewEvent>) -> AppendRequest {
    AppendRequest {
        stream_type: "test".into(),
        stream_id: stream.into(),
        expected_version,
        events,
    }
}

#[tokio::test]
async fn a_read_only_store_reads_the_same_and_writes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("log.db");
    {
        let store = SqliteStore::open(&path).expect("open");
        store
            .append(append("a", 0, (1..=3).map(event).collect()))
            .await
            .expect("append");
        store
            .append(append("b", 0, vec![event(4)]))
            .await
            .expect("append");
        store
            .save_snapshot(Snapshot {
                stream_type: "test".into(),
                stream_id: "a".into(),
                version: 2,
                codec: Codec::Json,
                payload: b"{}".to_vec(),
            })
            .await
            .expect("snapshot");
    }
    let before = std::fs::read(&path).expect("bytes");
    let writable = SqliteStore::open(&path).expect("open");
    let expected = (
        writable.read_all(1, 100).await.expect("read"),
        writable.read_stream("test", "a", 2, 10).await.expect("read"),
        writable.load_snapshot("test", "a").await.expect("snapshot"),
    );
    drop(writable);
    let before_reopen = std::fs::read(&path).expect("bytes");

    let store = SqliteStore::open_read_only(&path).expect("open read-only");
    assert!(store.is_read_only());
    assert_eq!(store.head().await.expect("head"), 4);
    assert_eq!(*store.watch_head().borrow(), 4);
    assert_eq!(store.stream_version("test", "a").await.expect("version"), 3);
    assert_eq!(store.read_all(1, 100).await.expect("read"), expected.0);
    assert_eq!(
        store.read_stream("test", "a", 2, 10).await.expect("read"),
        expected.1
    );
    assert_eq!(
        store.load_snapshot("test", "a").await.expect("snapshot"),
        expected.2
    );

    let refused = store.append(append("a", 3, vec![event(5)])).await;
    assert!(
        matches!(&refused, Err(StoreError::ReadOnly { backend: "sqlite", location }) if location.ends_with("log.db")),
        "{refused:?}"
    );
    let refused = store
        .save_snapshot(Snapshot {
            stream_type: "test".into(),
            stream_id: "a".into(),
            version: 3,
            codec: Codec::Json,
            payload: b"{}".to_vec(),
        })
        .await;
    assert!(matches!(refused, Err(StoreError::ReadOnly { .. })), "{refused:?}");
    drop(store);
    assert_eq!(
        std::fs::read(&path).expect("bytes"),
        before_reopen,
        "the read-only store wrote nothing"
    );
    assert_eq!(before, before_reopen);
}

#[test]
fn a_read_only_open_refuses_a_missing_file_and_a_file_that_is_not_a_factum_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = SqliteStore::open_read_only(dir.path().join("none.db"));
    assert!(missing.is_err(), "a missing file is not created");
    assert!(!dir.path().join("none.db").exists());

    let other = dir.path().join("other.db");
    rusqlite::Connection::open(&other)
        .and_then(|c| c.execute_batch("CREATE TABLE t (x INTEGER)"))
        .expect("another database");
    let err = SqliteStore::open_read_only(&other).err().expect("refused");
    assert!(err.to_string().contains("holds no factum event log"), "{err}");
}
