//! Range queries and waiting for every view, the same on every view store:
//! rows by a key range and by an index range, paged like `list` (each row
//! once, in order, across pages), and `app.wait_for_views(position)`.

use std::collections::BTreeMap;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use factum::App;
use factum::sqlite::SqliteViewStore;
use factum::store::{EventStore, MemoryStore};
use factum::view::{IndexCursor, MemoryViewStore, ViewError, ViewReader, ViewStore};
use factum_tests::occupancy::{
    NightOccupancy, Stay, StayBooked, expected_occupancy, expected_stays, night, write_bookings,
};
use factum_tests::views::append;

/// Every row of a key range, fetched `limit` rows a page.
async fn key_range<'k>(
    view: &ViewReader<NightOccupancy>,
    keys: impl RangeBounds<&'k str> + Clone,
    limit: usize,
) -> Vec<(String, NightOccupancy)> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = view
            .range(keys.clone(), cursor.as_deref(), limit)
            .await
            .expect("a key range");
        assert!(page.rows.len() <= limit);
        out.extend(page.rows);
        match page.next {
            Some(next) => cursor = Some(next),
            None => return out,
        }
    }
}

/// Every row of an index range, fetched `limit` rows a page.
async fn index_range<'k>(
    view: &ViewReader<Stay>,
    index: &str,
    values: impl RangeBounds<&'k str> + Clone,
    limit: usize,
) -> Vec<(String, Stay)> {
    let mut out = Vec::new();
    let mut cursor: Option<IndexCursor> = None;
    loop {
        let page = view
            .find_range(index, values.clone(), cursor.as_ref(), limit)
            .await
            .expect("an index range");
        assert!(page.rows.len() <= limit);
        out.extend(page.rows);
        match page.next {
            Some(next) => cursor = Some(next),
            None => return out,
        }
    }
}

/// The expected rows of a key range, from a count made without the view.
fn expected_keys<'k>(
    rows: &BTreeMap<String, NightOccupancy>,
    keys: impl RangeBounds<&'k str>,
) -> Vec<(String, NightOccupancy)> {
    rows.iter()
        .filter(|(k, _)| keys.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The expected rows of an index range: by (value, key).
fn expected_values<'k>(
    stays: &BTreeMap<String, Stay>,
    value: fn(&Stay) -> &str,
    values: impl RangeBounds<&'k str>,
) -> Vec<(String, Stay)> {
    let mut out: Vec<(String, Stay)> = stays
        .iter()
        .filter(|(_, s)| values.contains(&value(s)))
        .map(|(k, s)| (k.clone(), s.clone()))
        .collect();
    out.sort_by(|(ka, a), (kb, b)| (value(a), ka).cmp(&(value(b), kb)));
    out
}

async fn ranges_page_in_order_and_wait_for_views_waits_for_all(view_store: Arc<dyn ViewStore>) {
    // Given 200 bookings folded into the occupancy and the stays views ...
    let log: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    let written = write_bookings(&*log, 200).await;
    let app = App::builder()
        .shared_store(log.clone())
        .shared_view_store(view_store)
        .view_batch(64)
        .build();
    app.start_view::<NightOccupancy>().await.expect("start occupancy");
    app.start_view::<Stay>().await.expect("start stays");
    app.wait_for_views(written).await.expect("both caught up");
    let nights = app.view::<NightOccupancy>().reader();
    let stays = app.view::<Stay>().reader();
    let occupancy = expected_occupancy(200);
    let expected_stays = expected_stays(200);

    // ... a key range is the rows between its bounds, in key order, whatever the page size;
    for limit in [1, 3, 1000] {
        let march = key_range(&nights, "2027-060".."2027-091", limit).await;
        assert_eq!(
            march,
            expected_keys(&occupancy, "2027-060".."2027-091"),
            "limit {limit}"
        );
        assert!(!march.is_empty());
    }
    let (from, to) = (night(100), night(110));
    let inclusive = key_range(&nights, from.as_str()..=to.as_str(), 4).await;
    assert_eq!(inclusive, expected_keys(&occupancy, from.as_str()..=to.as_str()));
    assert_eq!(inclusive.last().map(|(k, _)| k.as_str()), Some(to.as_str()));
    let excluded = (Bound::Excluded(from.as_str()), Bound::Unbounded);
    assert_eq!(
        key_range(&nights, excluded, 50).await,
        expected_keys(&occupancy, excluded)
    );
    assert_eq!(key_range(&nights, .., 50).await.len(), occupancy.len());
    // a cursor before the range's start does not widen it; bounds that hold nothing give nothing.
    let page = nights
        .range(from.as_str()..to.as_str(), Some("2027-001"), 1)
        .await
        .expect("range");
    assert_eq!(page.rows[0].0, expected_keys(&occupancy, from.as_str()..)[0].0);
    #[allow(clippy::reversed_empty_ranges)] // the point of the case
    let backwards = nights
        .range(to.as_str()..from.as_str(), None, 10)
        .await
        .expect("range");
    assert!(backwards.rows.is_empty() && backwards.next.is_none());

    // ... an index range is the rows whose value lies between its bounds, by (value, key);
    fn first(s: &Stay) -> &str {
        &s.first
    }
    fn room(s: &Stay) -> &str {
        &s.room
    }
    for limit in [1, 4, 1000] {
        let found = index_range(&stays, "first", "2027-030".."2027-120", limit).await;
        assert_eq!(
            found,
            expected_values(&expected_stays, first, "2027-030".."2027-120"),
            "limit {limit}"
        );
        assert!(found.len() > 4, "several pages");
    }
    // rooms 007 to 012, zero-padded so text order is number order (8 < 10).
    let rooms = index_range(&stays, "room", "007"..="012", 3).await;
    assert_eq!(rooms, expected_values(&expected_stays, room, "007"..="012"));
    assert!(rooms.iter().any(|(_, s)| s.room == "008") && rooms.iter().any(|(_, s)| s.room == "010"));
    assert_eq!(
        index_range(&stays, "room", .., 7).await.len(),
        expected_stays.len()
    );

    // ... mistakes are errors, not empty answers;
    let unknown = stays
        .find_range("guest", .., None, 10)
        .await
        .expect_err("no such index");
    assert!(matches!(unknown, ViewError::UnknownIndex { .. }), "{unknown}");
    let zero = nights.range(.., None, 0).await.expect_err("a zero limit");
    assert!(matches!(zero, ViewError::ZeroLimit { .. }), "{zero}");
    let zero = stays
        .find_range("room", .., None, 0)
        .await
        .expect_err("a zero limit");
    assert!(matches!(zero, ViewError::ZeroLimit { .. }), "{zero}");

    // ... and after one more booking, `wait_for_views` returns once both views folded it.
    let booked = StayBooked {
        room: 7,
        guests: 3,
        first: 200,
        nights: 2,
    };
    let position = append(&*log, "late", 0, &booked).await;
    app.wait_for_views(position).await.expect("both folded it");
    assert_eq!(
        stays.get("late").await.expect("get").map(|s| s.first),
        Some(night(200))
    );
    let at = occupancy.get(&night(200)).map_or(0, |o| o.guests);
    assert_eq!(
        nights.get(night(200)).await.expect("get").map(|o| o.guests),
        Some(at + 3)
    );
}

#[tokio::test]
async fn memory_ranges_page_in_order_and_wait_for_views_waits_for_all() {
    ranges_page_in_order_and_wait_for_views_waits_for_all(Arc::new(MemoryViewStore::new())).await;
}

#[tokio::test]
async fn sqlite_ranges_page_in_order_and_wait_for_views_waits_for_all() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteViewStore::open(dir.path().join("views.db")).expect("open");
    ranges_page_in_order_and_wait_for_views_waits_for_all(Arc::new(store)).await;
}

#[cfg_attr(
    not(factum_pg),
    ignore = "needs PostgreSQL: set FACTUM_PG_URL (see tests/README.md)"
)]
#[tokio::test]
async fn postgres_ranges_page_in_order_and_wait_for_views_waits_for_all() {
    let Some(url) = factum_tests::pg::url("postgres_ranges_page_in_order") else {
        return;
    };
    let schema = factum_tests::pg::fresh_schema("ranges");
    let store = factum::postgres::PostgresViewStore::connect_in_schema(&url, &schema)
        .await
        .expect("connect");
    ranges_page_in_order_and_wait_for_views_waits_for_all(Arc::new(store)).await;
}

#[tokio::test]
async fn wait_for_views_with_a_failing_view_returns_its_error() {
    // Given a stays row whose first event does not decode as a booking ...
    let log: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    let store = log.clone();
    let bad = factum::store::NewEvent {
        event_type: "test.stay_booked".into(),
        schema_version: 1,
        codec: factum::Codec::Json,
        payload: br#"{"room":"not a number"}"#.to_vec(),
        metadata: factum::store::EventMetadata {
            event_id: uuid::Uuid::new_v4(),
            recorded_at: factum::Timestamp::from_secs(1_767_225_600),
            command_id: uuid::Uuid::new_v4(),
            causation_id: None,
            correlation_id: uuid::Uuid::new_v4(),
        },
    };
    let position = store
        .append(factum::store::AppendRequest {
            stream_type: "test".into(),
            stream_id: "bad".into(),
            expected_version: 0,
            events: vec![bad],
        })
        .await
        .expect("append")
        .last_position;
    let app = App::builder().shared_store(log).build();
    app.start_view::<NightOccupancy>().await.expect("start");
    app.start_view::<Stay>().await.expect("start");
    // ... when waiting for every view, then the wait ends with the runner's decode error.
    let err = app
        .wait_for_views(position)
        .await
        .expect_err("a view cannot fold it");
    assert!(matches!(err, ViewError::Failing { .. }), "{err}");
    assert!(err.to_string().contains("does not decode"), "{err}");
}
