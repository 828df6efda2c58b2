//! A view folds the log into rows, the same on every backend: given events,
//! when the view catches up and then tails, then its rows, indexes, listing,
//! deletions and live changes are those of a fresh fold.

use std::sync::Arc;
use std::time::Duration;

use factum::sqlite::SqliteViewStore;
use factum::store::{AppendRequest, EventMetadata, EventStore, MemoryStore, NewEvent};
use factum::testkit;
use factum::view::{MemoryViewStore, ViewError, ViewStore};
use factum::{App, Codec, Timestamp};
use factum_tests::views::{ByDigit, Cleared, Ignored, Scored, Tally, append, append_many};

async fn app_on(view_store: impl ViewStore) -> (App, Arc<dyn EventStore>) {
    let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    let app = App::builder()
        .shared_store(store.clone())
        .view_store(view_store)
        .view_batch(7)
        .build();
    (app, store)
}

async fn folds_rows_keys_indexes_and_deletes(view_store: impl ViewStore) {
    let (app, store) = app_on(view_store).await;
    // Given events written before the views start (catch-up) ...
    append_many(&*store, "a", 0, &[Scored { amount: 3 }, Scored { amount: 4 }]).await;
    append(
        &*store,
        "b",
        0,
        &Ignored {
            note: "not folded".into(),
        },
    )
    .await;
    append(&*store, "b", 1, &Scored { amount: 13 }).await;
    app.start_view::<Tally>().await.expect("start tally");
    app.start_view::<ByDigit>().await.expect("start by digit");
    // ... and after (tail).
    append(&*store, "c", 0, &Scored { amount: 10 }).await;
    append(&*store, "c", 1, &Cleared {}).await;
    let last = append(&*store, "d", 0, &Scored { amount: 23 }).await;

    let tally = app.view::<Tally>();
    tokio::time::timeout(Duration::from_secs(10), tally.wait_for(last))
        .await
        .expect("caught up")
        .unwrap();
    let a = tally.get("a").await.unwrap().expect("row a");
    assert_eq!((a.count, a.sum, a.parity.as_str()), (2, 7, "odd"));
    let b = tally.get("b").await.unwrap().expect("row b");
    assert_eq!((b.count, b.sum), (1, 13));
    assert_eq!(tally.get("c").await.unwrap(), None, "Cleared deletes the row");
    assert_eq!(tally.get("nobody").await.unwrap(), None);

    let odd: Vec<String> = tally
        .find_by_parity("odd")
        .await
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(odd, ["a", "b", "d"]);
    assert!(tally.find_by_parity("even").await.unwrap().is_empty());

    let page = tally.list(None, 2).await.unwrap();
    assert_eq!(
        page.rows.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
        ["a", "b"]
    );
    let rest = tally.list(page.next.as_deref(), 2).await.unwrap();
    assert_eq!(
        rest.rows.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
        ["d"]
    );
    assert_eq!(rest.next, None);

    let by_digit = app.view::<ByDigit>();
    by_digit.wait_for(last).await.unwrap();
    assert_eq!(
        by_digit.get("3").await.unwrap(),
        Some(ByDigit {
            count: 3,
            sum: 3 + 13 + 23
        })
    );
    assert_eq!(
        by_digit.get("4").await.unwrap(),
        Some(ByDigit { count: 1, sum: 4 })
    );
    assert_eq!(
        by_digit.get("0").await.unwrap(),
        Some(ByDigit { count: 1, sum: 10 })
    );

    // Live changes: of one key, and of the whole view.
    let mut of_a = tally.changes_of("a").unwrap();
    let mut all = tally.changes().unwrap();
    append(&*store, "e", 0, &Scored { amount: 1 }).await;
    let pos = append(&*store, "a", 2, &Scored { amount: 1 }).await;
    let change = tokio::time::timeout(Duration::from_secs(10), of_a.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(change.key, "a");
    assert_eq!(change.row.map(|r| r.sum), Some(8));
    assert!(change.position <= pos);
    let first = tokio::time::timeout(Duration::from_secs(10), all.next())
        .await
        .unwrap()
        .unwrap();
    assert!(first.key == "e" || first.key == "a");
}

#[tokio::test]
async fn memory_view_folds_rows_keys_indexes_and_deletes() {
    folds_rows_keys_indexes_and_deletes(MemoryViewStore::new()).await;
}

#[tokio::test]
async fn sqlite_view_folds_rows_keys_indexes_and_deletes() {
    let dir = tempfile::tempdir().unwrap();
    folds_rows_keys_indexes_and_deletes(SqliteViewStore::open(dir.path().join("views.db")).unwrap()).await;
}

#[cfg_attr(
    not(factum_pg),
    ignore = "needs PostgreSQL: set FACTUM_PG_URL (see tests/README.md)"
)]
#[tokio::test]
async fn postgres_view_folds_rows_keys_indexes_and_deletes() {
    let Some(store) = factum_tests::pg::view_store("fold").await else {
        return;
    };
    folds_rows_keys_indexes_and_deletes(store).await;
}

#[tokio::test]
async fn a_sqlite_view_resumes_from_its_checkpoint_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("views.db");
    let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    append_many(&*store, "a", 0, &[Scored { amount: 1 }, Scored { amount: 2 }]).await;
    {
        let app = App::builder()
            .shared_store(store.clone())
            .view_store(SqliteViewStore::open(&path).unwrap())
            .build();
        app.start_view::<Tally>().await.unwrap();
        app.view::<Tally>().wait_for(2).await.unwrap();
    }
    let last = append(&*store, "a", 2, &Scored { amount: 4 }).await;
    let app = App::builder()
        .shared_store(store.clone())
        .view_store(SqliteViewStore::open(&path).unwrap())
        .build();
    app.start_view::<Tally>().await.unwrap();
    let tally = app.view::<Tally>();
    tally.wait_for(last).await.unwrap();
    let a = tally.get("a").await.unwrap().unwrap();
    assert_eq!(
        (a.count, a.sum),
        (3, 7),
        "the first two events were not folded again"
    );
}

#[tokio::test]
async fn a_view_that_was_not_started_says_so() {
    let app = App::in_memory();
    let err = app.view::<Tally>().get("a").await.unwrap_err();
    assert!(err.to_string().contains("test_tally is not running"), "{err}");
}

#[tokio::test]
async fn start_views_discovers_every_linked_view() {
    let app = App::in_memory();
    let names = app.start_views().await.unwrap();
    assert!(
        names.contains(&"test_tally") && names.contains(&"test_by_digit"),
        "{names:?}"
    );
    assert_eq!(app.running_views(), names);
}

#[test]
fn the_test_kit_folds_given_events_into_rows() {
    testkit::view::<Tally>()
        .given("a", Scored { amount: 2 })
        .given("a", Scored { amount: 5 })
        .given("b", Scored { amount: 1 })
        .given("b", Cleared {})
        .then_row(
            "a",
            Tally {
                count: 2,
                sum: 7,
                parity: "odd".into(),
                last_at: testkit::DEFAULT_NOW,
            },
        )
        .then_no_row("b");
    testkit::view::<ByDigit>()
        .given("x", Scored { amount: 12 })
        .given("y", Scored { amount: 2 })
        .then_row("2", ByDigit { count: 2, sum: 14 });
}

#[tokio::test]
async fn the_bank_summary_view_follows_accounts_through_the_runtime() {
    use factum_examples::bank::{Account, AccountSummary, Close, Deposit, Open, Withdraw};
    let app = App::in_memory();
    app.start_view::<AccountSummary>().await.unwrap();
    let ada = app.entity::<Account>("acc-ada");
    let ada2 = app.entity::<Account>("acc-ada-2");
    ada.send(Open { owner: "Ada".into() }).await.unwrap();
    ada.send(Deposit { amount: 500 }).await.unwrap();
    ada.send(Withdraw { amount: 200 }).await.unwrap();
    ada2.send(Open { owner: "Ada".into() }).await.unwrap();
    let last = ada2.send(Close).await.unwrap();

    let summary = app.view::<AccountSummary>();
    summary.wait_for(last.position).await.unwrap();
    let row = summary.get("acc-ada").await.unwrap().expect("row");
    assert_eq!(
        (row.owner.as_str(), row.balance, row.deposits, row.withdrawals),
        ("Ada", 300, 1, 1)
    );
    assert!(summary.get("acc-ada-2").await.unwrap().expect("row").closed);
    let owned: Vec<String> = summary
        .find_by_owner("Ada")
        .await
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(owned, ["acc-ada", "acc-ada-2"]);
}

#[test]
fn the_test_kit_folds_bank_events_into_an_account_summary() {
    use factum_examples::bank::{AccountSummary, Deposited, Opened, Withdrawn};
    let at = testkit::DEFAULT_NOW;
    testkit::view::<AccountSummary>()
        .given(
            "acc-1",
            Opened {
                owner: "Ada".into(),
                number: 10_000_001,
            },
        )
        .given("acc-1", Deposited { amount: 700 })
        .given("acc-1", Withdrawn { amount: 200, at })
        .then_row(
            "acc-1",
            AccountSummary {
                owner: "Ada".into(),
                number: 10_000_001,
                balance: 500,
                deposits: 1,
                withdrawals: 1,
                last_activity: at,
                closed: false,
            },
        );
}

#[tokio::test]
async fn the_cart_popular_items_view_counts_over_all_carts() {
    use factum_examples::cart::{AddItem, Cart, PopularItem, RemoveItem};
    let app = App::in_memory();
    app.start_view::<PopularItem>().await.unwrap();
    let a = app.entity::<Cart>("cart-a");
    let b = app.entity::<Cart>("cart-b");
    a.send(AddItem {
        sku: "book".into(),
        quantity: 2,
    })
    .await
    .unwrap();
    b.send(AddItem {
        sku: "book".into(),
        quantity: 1,
    })
    .await
    .unwrap();
    let last = a
        .send(RemoveItem {
            sku: "book".into(),
            quantity: 1,
        })
        .await
        .unwrap();
    let popular = app.view::<PopularItem>();
    popular.wait_for(last.position).await.unwrap();
    let book = popular.get("book").await.unwrap().expect("row");
    assert_eq!(
        (
            book.times_added,
            book.units_added,
            book.units_removed,
            book.units_kept()
        ),
        (2, 3, 1, 2)
    );
}

/// A poison event (the type a view folds, a payload that does not decode)
/// makes the runner fail at the same checkpoint on every retry; `wait_for`
/// must report that instead of waiting forever.
#[tokio::test]
async fn wait_for_returns_the_runner_error_when_an_event_does_not_decode() {
    let (app, store) = app_on(MemoryViewStore::new()).await;
    append(&*store, "a", 0, &Scored { amount: 1 }).await;
    let poison = store
        .append(AppendRequest {
            stream_type: "test".into(),
            stream_id: "a".into(),
            expected_version: 1,
            events: vec![NewEvent {
                event_type: <Scored as factum::Event>::NAME.into(),
                schema_version: <Scored as factum::Event>::VERSION,
                codec: Codec::Json,
                payload: br#"{"amount":"not a number"}"#.to_vec(),
                metadata: EventMetadata {
                    event_id: uuid::Uuid::new_v4(),
                    recorded_at: Timestamp::from_secs(1_767_225_600),
                    command_id: uuid::Uuid::new_v4(),
                    causation_id: None,
                    correlation_id: uuid::Uuid::new_v4(),
                },
            }],
        })
        .await
        .unwrap()
        .last_position;
    app.start_view::<Tally>().await.unwrap();
    let err = tokio::time::timeout(Duration::from_secs(10), app.view::<Tally>().wait_for(poison))
        .await
        .expect("wait_for resolves instead of hanging")
        .unwrap_err();
    assert!(
        matches!(err, ViewError::Failing { view: "test_tally", position, .. } if position == poison),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains("view test_tally")
            && message.contains(&format!("cannot reach position {poison}"))
            && message.contains(&format!("at position {poison} does not decode")),
        "{message}"
    );
}

/// Names that the old sanitising mapped onto one table (`a-b` and `a_b`,
/// `Ab` and `ab` on PostgreSQL) are refused by the stores themselves, for
/// views implemented without `#[view]`.
#[tokio::test]
async fn view_stores_refuse_names_that_could_share_a_table() {
    use factum::view::{TableId, TableState, ViewStoreError, is_valid_view_name};
    assert!(is_valid_view_name("a_b") && is_valid_view_name(&"a".repeat(40)));
    for bad in ["a-b", "Ab", "", "1ab", "_ab", &"a".repeat(41)] {
        assert!(!is_valid_view_name(bad), "{bad:?}");
    }
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteViewStore::open(dir.path().join("views.db")).unwrap();
    let id = |view: &str| TableId {
        view: view.to_owned(),
        version: 1,
        build: 0,
    };
    store.open(&id("a_b"), &[], TableState::Active).await.unwrap();
    let Err(err) = store.open(&id("a-b"), &[], TableState::Active).await else {
        panic!("`a-b` would share `a_b`'s table");
    };
    assert!(
        matches!(&err, ViewStoreError::InvalidName { view } if view == "a-b"),
        "{err:?}"
    );
    assert!(err.to_string().contains("view `a-b`"), "{err}");
}

/// Given a view and an entity over types both named `HTTPStats` and no
/// `name = "…"`, then both default to `http_stats`: the two macros share one
/// snake_case, which keeps an acronym one word (views used to get `h_t_t_p_stats`).
#[test]
fn a_view_and_an_entity_derive_the_same_snake_case_name() {
    mod as_view {
        use factum::prelude::*;
        use factum_tests::views::Scored;
        use serde::{Deserialize, Serialize};

        #[derive(Default, Clone, Debug, PartialEq, Serialize, Deserialize)]
        pub struct HTTPStats {
            pub hits: u64,
        }

        #[view]
        impl HTTPStats {
            #[on]
            fn scored(&mut self, _e: &Scored) {
                self.hits += 1;
            }
        }
    }

    mod as_entity {
        use factum::prelude::*;
        use serde::{Deserialize, Serialize};

        #[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
        pub struct Hit {}

        #[derive(Clone, Debug)]
        pub struct RecordHit;

        #[derive(Default, Clone, Debug, PartialEq)]
        pub struct HTTPStats {
            pub hits: u64,
        }

        #[entity]
        impl HTTPStats {
            #[handle]
            fn record(&self, _cmd: RecordHit) -> Hit {
                Hit {}
            }

            #[apply]
            fn hit(&mut self, _e: &Hit) {
                self.hits += 1;
            }
        }
    }

    assert_eq!(<as_view::HTTPStats as factum::View>::NAME, "http_stats");
    assert_eq!(<as_entity::HTTPStats as factum::Entity>::NAME, "http_stats");
}

#[tokio::test]
async fn an_unknown_index_and_a_zero_page_limit_are_errors_not_empty_answers() {
    let (app, store) = app_on(MemoryViewStore::new()).await;
    let last = append(&*store, "a", 0, &Scored { amount: 3 }).await;
    app.start_view::<Tally>().await.expect("start tally");
    let tally = app.view::<Tally>();
    tokio::time::timeout(Duration::from_secs(10), tally.wait_for(last))
        .await
        .expect("caught up")
        .unwrap();

    let err = tally.find_by("no_such_index", "odd").await.unwrap_err();
    assert!(
        matches!(&err, ViewError::UnknownIndex { view, index, .. } if *view == "test_tally" && index == "no_such_index"),
        "{err:?}"
    );
    assert!(err.to_string().contains("no_such_index"), "{err}");

    let err = tally.list(None, 0).await.unwrap_err();
    assert!(matches!(err, ViewError::ZeroLimit { .. }), "{err:?}");
    let page = tally.list(None, 1).await.unwrap();
    assert_eq!(
        page.next.as_deref(),
        Some("a"),
        "a full page always names the next cursor"
    );
}
