//! Gap safety as a view sees it: with concurrent writers on PostgreSQL, a view
//! tailing the log ends equal to a fresh fold of the whole log, so no event
//! that committed late (after a higher position became visible) was skipped.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use factum::App;
use factum::postgres::PostgresStore;
use factum::postgres::PostgresViewStore;
use factum::store::EventStore;
use factum_tests::views::{Scored, Tally, append};

const WRITERS: u64 = 16;
const EACH: u64 = 400;

#[cfg_attr(
    not(factum_pg),
    ignore = "needs PostgreSQL: set FACTUM_PG_URL (see tests/README.md)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tailing_view_under_concurrent_writers_equals_a_fresh_fold() {
    let Some(url) = factum_tests::pg::url("a_tailing_view_under_concurrent_writers") else {
        return;
    };
    let schema = factum_tests::pg::fresh_schema("concurrent");
    let store: Arc<dyn EventStore> = Arc::new(
        PostgresStore::connect(url.clone())
            .schema(schema.clone())
            .open()
            .await
            .expect("event store"),
    );
    let views = PostgresViewStore::connect_in_schema(&url, &schema)
        .await
        .expect("view store");
    let app = App::builder()
        .shared_store(store.clone())
        .view_store(views)
        .view_batch(64)
        .build();
    app.start_view::<Tally>().await.expect("start");

    // When 16 writers append concurrently while the view tails ...
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..EACH {
                    append(&*store, &format!("w{w}"), i, &Scored { amount: w * 1000 + i }).await;
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.expect("writer");
    }

    // ... then, once it has reached the head, it equals a fresh fold of the log.
    let head = store.head().await.expect("head");
    assert_eq!(head, WRITERS * EACH);
    let tally = app.view::<Tally>();
    tokio::time::timeout(Duration::from_secs(60), tally.wait_for(head))
        .await
        .expect("caught up")
        .unwrap();
    let mut fresh: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut from = 1;
    loop {
        let page = store.read_all(from, 1000).await.expect("read");
        let Some(last) = page.last() else { break };
        from = last.position + 1;
        for record in &page {
            let e: Scored = factum::Codec::Json.decode(&record.payload).expect("decode");
            let row = fresh.entry(record.stream_id.clone()).or_default();
            row.0 += 1;
            row.1 += e.amount;
        }
    }
    assert_eq!(fresh.len() as u64, WRITERS);
    for (stream, (count, sum)) in fresh {
        let row = tally.get(&stream).await.unwrap().expect("row");
        assert_eq!((row.count, row.sum), (count, sum), "stream {stream}");
        assert_eq!(count, EACH);
    }
}
