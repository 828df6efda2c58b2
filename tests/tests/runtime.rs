//! The runtime over a hand-written entity: commands, rejections, conflicts
//! between two apps on one store. (Concurrency on one entity: `bank.rs`.)

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use factum::store::{AppendRequest, Appended, RecordedEvent, Snapshot, StoreError};
use factum::testkit::given;
use factum::{App, CommandError, MemoryStore};
use factum::{Codec, EventStore};
use factum_tests::handwritten::{Add, Added, Counter, CounterError, CounterEvent};

#[tokio::test]
async fn a_command_commits_its_events_and_the_state_follows() {
    let app = App::in_memory();
    let counter = app.entity::<Counter>("c-1");
    let committed = counter.send(Add { amount: 5 }).await.unwrap();
    assert_eq!(committed.events, vec![CounterEvent::Added(Added { amount: 5 })]);
    assert_eq!((committed.version, committed.position), (1, 1));
    counter.send(Add { amount: 7 }).await.unwrap();
    assert_eq!(
        counter.state().await.unwrap(),
        Counter {
            total: 12,
            additions: 2
        }
    );
    let history = counter.history().await.unwrap();
    assert_eq!(history.iter().map(|r| r.version).collect::<Vec<_>>(), vec![1, 2]);
}

#[tokio::test]
async fn a_rejected_command_stores_nothing() {
    let app = App::in_memory();
    let counter = app.entity::<Counter>("c-1");
    let err = counter.send(Add { amount: 0 }).await.unwrap_err();
    assert!(
        matches!(err, CommandError::Rejected(CounterError::Zero)),
        "{err:?}"
    );
    assert_eq!(app.store().head().await.unwrap(), 0);
    assert_eq!(counter.version().await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_apps_on_one_store_resolve_conflicts_by_rerunning_the_command() {
    let store = MemoryStore::new();
    let counted = ConflictCounter::new(store.clone());
    let conflicts = counted.conflicts.clone();
    let (a, b) = (App::new(counted.clone()), App::new(counted));
    // Both load the entity at version 0, then write alternately: each write by one
    // makes the other's cache stale, so every command after the first conflicts once.
    a.entity::<Counter>("shared").version().await.unwrap();
    b.entity::<Counter>("shared").version().await.unwrap();
    for i in 0..50 {
        let app = if i % 2 == 0 { &a } else { &b };
        app.entity::<Counter>("shared")
            .send(Add { amount: 2 })
            .await
            .unwrap();
    }
    assert_eq!(
        conflicts.load(Ordering::SeqCst),
        49,
        "each command after the first met a stale cache"
    );
    let mut tasks = Vec::new();
    for app in [a.clone(), b.clone()] {
        tasks.push(tokio::spawn(async move {
            for _ in 0..200 {
                app.entity::<Counter>("shared")
                    .send(Add { amount: 1 })
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let state = App::new(store).entity::<Counter>("shared").state().await.unwrap();
    assert_eq!(
        state,
        Counter {
            total: 100 + 400,
            additions: 450
        }
    );
}

#[test]
fn testkit_given_when_then_reads_as_the_domain() {
    given::<Counter>([Added { amount: 3 }.into()])
        .when(Add { amount: 4 })
        .then([CounterEvent::Added(Added { amount: 4 })])
        .then_state(|s| assert_eq!(s.total, 7));
    given::<Counter>([])
        .when(Add { amount: 0 })
        .then_rejected(CounterError::Zero);
}

#[test]
#[should_panic(expected = "expected events:\n    1. Added(Added { amount: 5 })")]
fn testkit_shows_expected_and_actual_events_when_they_differ() {
    given::<Counter>([])
        .when(Add { amount: 4 })
        .then([CounterEvent::Added(Added { amount: 5 })]);
}

#[tokio::test]
async fn entities_dropped_from_a_full_cache_reload_their_state_from_the_store() {
    let app = App::builder().cache_capacity(4).build();
    for round in 1..=3u64 {
        for i in 0..20 {
            app.entity::<Counter>(format!("c-{i}"))
                .send(Add { amount: round })
                .await
                .unwrap();
        }
    }
    for i in 0..20 {
        let state = app.entity::<Counter>(format!("c-{i}")).state().await.unwrap();
        assert_eq!(
            state,
            Counter {
                total: 6,
                additions: 3
            },
            "c-{i}"
        );
    }
}

/// A store that counts the version conflicts it reports.
#[derive(Clone)]
struct ConflictCounter {
    inner: MemoryStore,
    conflicts: Arc<AtomicU64>,
}

impl ConflictCounter {
    fn new(inner: MemoryStore) -> Self {
        ConflictCounter {
            inner,
            conflicts: Arc::default(),
        }
    }
}

#[async_trait::async_trait]
impl EventStore for ConflictCounter {
    async fn append(&self, request: AppendRequest) -> Result<Appended, StoreError> {
        let result = self.inner.append(request).await;
        if matches!(result, Err(StoreError::Conflict { .. })) {
            self.conflicts.fetch_add(1, Ordering::SeqCst);
        }
        result
    }
    async fn read_stream(
        &self,
        stream_type: &str,
        stream_id: &str,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner
            .read_stream(stream_type, stream_id, from_version, limit)
            .await
    }
    async fn read_all(&self, from_position: u64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.read_all(from_position, limit).await
    }
    async fn stream_version(&self, stream_type: &str, stream_id: &str) -> Result<u64, StoreError> {
        self.inner.stream_version(stream_type, stream_id).await
    }
    async fn head(&self) -> Result<u64, StoreError> {
        self.inner.head().await
    }
    fn watch_head(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.watch_head()
    }
    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<(), StoreError> {
        self.inner.save_snapshot(snapshot).await
    }
    async fn load_snapshot(
        &self,
        stream_type: &str,
        stream_id: &str,
    ) -> Result<Option<Snapshot>, StoreError> {
        self.inner.load_snapshot(stream_type, stream_id).await
    }
    fn codec(&self) -> Codec {
        self.inner.codec()
    }
    fn backend(&self) -> &'static str {
        "counting memory"
    }
}

/// Given two apps on one account of $100, both with it cached, when app A
/// withdraws $80 and then app B (stale) withdraws $50, B's first decision
/// conflicts; B reloads and decides on the real balance ($20): a rejection.
/// B's cache then equals a fresh load: nothing of the lost attempt stayed applied.
#[tokio::test]
async fn after_a_conflict_the_losers_cache_equals_a_fresh_load_and_decides_on_it() {
    use factum_examples::bank::{Account, AccountError, Deposit, Open, Withdraw};
    let store = MemoryStore::new();
    let (a, b) = (App::new(store.clone()), App::new(store.clone()));
    let on_a = a.entity::<Account>("acc-1");
    on_a.send(Open { owner: "Ada".into() }).await.unwrap();
    on_a.send(Deposit { amount: 100 }).await.unwrap();
    let on_b = b.entity::<Account>("acc-1");
    assert_eq!(
        on_b.state().await.unwrap().balance,
        100,
        "B has the account cached at $100"
    );

    on_a.send(Withdraw { amount: 80 }).await.unwrap();
    let err = on_b.send(Withdraw { amount: 50 }).await.unwrap_err();
    assert_eq!(
        err.into_rejection(),
        Some(AccountError::Insufficient {
            balance: 20,
            requested: 50
        }),
        "B decided again on the balance after A's withdrawal"
    );
    let fresh = App::new(store).entity::<Account>("acc-1").state().await.unwrap();
    assert_eq!(
        on_b.state().await.unwrap(),
        fresh,
        "B's cache equals a fresh load"
    );
    assert_eq!(fresh.balance, 20);
}

/// One command id fanned out to two entities draws different numbers in
/// each (the account number the bank draws at opening), and a context at
/// another version of one entity draws differently too.
#[tokio::test]
async fn one_command_id_fanned_out_draws_different_numbers_per_entity_and_version() {
    use factum::{Context, SendOptions, Timestamp, Uuid};
    use factum_examples::bank::{Account, Open};
    let app = App::in_memory();
    let id = Uuid::new_v4();
    let options = SendOptions {
        command_id: Some(id),
        ..SendOptions::default()
    };
    for acc in ["acc-1", "acc-2"] {
        app.entity::<Account>(acc)
            .send_with(Open { owner: "Ada".into() }, options)
            .await
            .unwrap();
    }
    let number = |acc: &'static str| {
        let app = app.clone();
        async move { app.entity::<Account>(acc).state().await.unwrap().number }
    };
    assert_ne!(
        number("acc-1").await,
        number("acc-2").await,
        "one id, two entities"
    );
    let at = |version| Context::new(id, Timestamp::from_secs(0), "acc-1", version).random_u64();
    assert_ne!(at(0), at(1), "one id, one entity, two versions");
    assert_eq!(at(3), at(3), "and the same for the same version");
}

#[tokio::test]
async fn a_committed_command_hands_back_the_event_of_the_type_asked_for() {
    use factum_examples::cart::{AddItem, Cart, CheckOut, CheckedOut, ItemAdded, ItemRemoved};
    let app = App::in_memory();
    let cart = app.entity::<Cart>("cart-1");
    let added = cart
        .send(AddItem {
            sku: "tea".into(),
            quantity: 2,
        })
        .await
        .unwrap();
    assert_eq!(added.event::<ItemAdded>().map(|e| e.quantity), Some(2));
    assert!(added.event::<ItemRemoved>().is_none());
    assert_eq!(added.events_of::<ItemAdded>().count(), 1);
    let checked_out = cart.send(CheckOut).await.unwrap();
    let order_id = &checked_out.event::<CheckedOut>().unwrap().order_id;
    let history = cart.history().await.unwrap();
    assert!(
        matches!(&history[1].event, factum_examples::cart::CartEvent::CheckedOut(e) if &e.order_id == order_id),
        "{history:?}"
    );
    // a hand-written event set finds its payloads too
    let counter = app
        .entity::<Counter>("c-1")
        .send(Add { amount: 3 })
        .await
        .unwrap();
    assert_eq!(counter.event::<Added>(), Some(&Added { amount: 3 }));
}

#[tokio::test]
async fn an_empty_entity_id_is_refused_before_the_handler_runs() {
    let app = App::in_memory();
    let nobody = app.entity::<Counter>("");
    let err = nobody.send(Add { amount: 5 }).await.unwrap_err();
    assert!(
        matches!(&err, CommandError::InvalidId { stream_type: "counter", stream_id, .. } if stream_id.is_empty()),
        "{err:?}"
    );
    assert_eq!(app.store().head().await.unwrap(), 0, "nothing was stored");
    let state = nobody.state().await.unwrap_err();
    assert!(matches!(state, factum::LoadError::InvalidId { .. }), "{state:?}");
    let version = nobody.version().await.unwrap_err();
    assert!(
        matches!(version, factum::LoadError::InvalidId { .. }),
        "{version:?}"
    );
}
