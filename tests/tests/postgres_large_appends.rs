//! A large append on PostgreSQL goes its own way: held at its own path's
//! fault point (before it is sent), small appends to other streams still
//! commit — they are not queued behind it in the batch writer, whose one
//! statement at a time would otherwise carry the large payload too.
//!
//! Its own test binary: it arms a process-wide fault point.

use std::sync::Arc;
use std::time::Duration;

use factum::fault::{self, Action, Hits};
use factum::postgres::PostgresStore;
use factum::store::{AppendRequest, EventMetadata, EventStore, NewEvent, StoreError};
use factum::{Codec, Timestamp};
use uuid::Uuid;

fn append(stream_id: &str, payload: Vec<u8>) -> AppendRequest {
    AppendRequest {
        stream_type: "doc".into(),
        stream_id: stream_id.into(),
        expected_version: 0,
        events: vec![NewEvent {
            event_type: "doc.stored".into(),
            schema_version: 1,
            codec: Codec::Json,
            payload,
            metadata: EventMetadata {
                event_id: Uuid::new_v4(),
                recorded_at: Timestamp::from_micros(1_700_000_000_000_000),
                command_id: Uuid::new_v4(),
                causation_id: None,
                correlation_id: Uuid::new_v4(),
            },
        }],
    }
}

/// A JSON string payload of `bytes` bytes.
fn json_of(bytes: usize) -> Vec<u8> {
    let mut payload = vec![b'x'; bytes];
    payload[0] = b'"';
    payload[bytes - 1] = b'"';
    payload
}

#[cfg_attr(
    not(factum_pg),
    ignore = "needs PostgreSQL: set FACTUM_PG_URL (see tests/README.md)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn small_appends_commit_while_a_large_one_is_held_on_its_own_path() {
    let Some(url) = factum_tests::pg::url("postgres large appends") else {
        return;
    };
    let schema = format!("t_{}", Uuid::new_v4().simple());
    let store = Arc::new(
        PostgresStore::connect(url.clone())
            .schema(schema.clone())
            .await
            .expect("connect"),
    );

    fault::arm("append.large.before", Action::Pause, Hits::Onward(1)).unwrap();
    let big = {
        let store = store.clone();
        tokio::spawn(async move { store.append(append("big", json_of(3 << 20))).await })
    };
    assert!(
        fault::wait_paused("append.large.before", Duration::from_secs(30)),
        "the large append reached its own path"
    );

    // Held there, it blocks no one: small appends on other streams commit.
    for i in 0..5 {
        let appended = store
            .append(append(&format!("small-{i}"), json_of(64)))
            .await
            .expect("a small append commits while the large one is held");
        assert_eq!(appended.version, 1);
    }
    assert!(!big.is_finished(), "the large append is still held");
    assert_eq!(
        fault::hits("append.large.before"),
        1,
        "only the large append took that path"
    );

    fault::release("append.large.before");
    let appended = big
        .await
        .unwrap()
        .expect("the large append commits once released");
    assert_eq!(appended.version, 1);
    assert_eq!(appended.last_position, 6, "after the five small ones");
    let read = store.read_stream("doc", "big", 1, 1).await.unwrap();
    assert_eq!(read[0].payload.len(), 3 << 20);
    fault::disarm_all();

    // Over the configured limit: refused before anything is sent, naming it.
    let strict = PostgresStore::connect(url.clone())
        .schema(schema.clone())
        .max_event_bytes(1024)
        .await
        .expect("connect");
    let err = strict.append(append("too-big", json_of(1025))).await.unwrap_err();
    assert!(matches!(err, StoreError::Invalid { .. }), "{err}");
    assert!(err.to_string().contains("limit of 1024 bytes"), "{err}");

    drop((store, strict));
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .unwrap();
}
