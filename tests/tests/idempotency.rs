//! Idempotent commands on every backend: a command id that committed events is
//! never decided again. Re-sending it — after a restart, after the entity left
//! the cache, from a second app on the same store, or from two nodes at once —
//! returns the original outcome and writes nothing; the same id with another
//! command is refused.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;

use factum::postgres::PostgresStore;
use factum::sqlite::{SqliteStore, Synchronous};
use factum::store::{AppendRequest, Appended, EventStore, RecordedEvent, Snapshot, StoreError};
use factum::{App, CommandError, SendOptions, Uuid};
use factum_examples::bank::{Account, AccountError, Deposit, Open, Withdraw, dollars};

fn with_id(id: Uuid) -> SendOptions {
    SendOptions {
        command_id: Some(id),
        ..SendOptions::default()
    }
}

/// An account opened with $100, on `app`.
async fn opened(app: &App, id: &str) {
    let account = app.entity::<Account>(id);
    account.send(Open { owner: "Ada".into() }).await.expect("open");
    account
        .send(Deposit { amount: dollars(100) })
        .await
        .expect("deposit");
}

/// Given a withdrawal that committed, re-sending its command id through a
/// fresh app (a restart), an evicted entity and a second app answers with the
/// original events, version and position, and the balance moves once.
async fn a_resent_command_returns_its_original_outcome(store: Arc<dyn EventStore>) {
    let first = App::builder().shared_store(store.clone()).build();
    opened(&first, "acc-1").await;
    let id = Uuid::new_v4();
    let withdraw = || Withdraw { amount: dollars(30) };
    let original = first
        .entity::<Account>("acc-1")
        .send_with(withdraw(), with_id(id))
        .await
        .expect("withdraw");
    // Another command lands after it: the re-sent one must not be decided against the new state.
    first
        .entity::<Account>("acc-1")
        .send(Deposit { amount: dollars(5) })
        .await
        .expect("deposit");
    let head = store.head().await.expect("head");

    // The same app, entity cached.
    let again = first
        .entity::<Account>("acc-1")
        .send_with(withdraw(), with_id(id))
        .await
        .expect("re-send");
    assert_eq!(again.events, original.events, "same events, cached");
    assert_eq!(
        (again.version, again.position),
        (original.version, original.position)
    );

    // A restart: a new app on the same store.
    let restarted = App::builder().shared_store(store.clone()).build();
    let again = restarted
        .entity::<Account>("acc-1")
        .send_with(withdraw(), with_id(id))
        .await
        .expect("re-send after restart");
    assert_eq!(again.events, original.events, "same events after a restart");
    assert_eq!(
        (again.version, again.position),
        (original.version, original.position)
    );

    // Evicted: a cache of one entity, filled by another account.
    let small = App::builder()
        .shared_store(store.clone())
        .cache_capacity(1)
        .build();
    small.entity::<Account>("acc-1").version().await.expect("load");
    opened(&small, "acc-2").await;
    let again = small
        .entity::<Account>("acc-1")
        .send_with(withdraw(), with_id(id))
        .await
        .expect("re-send after eviction");
    assert_eq!(again.events, original.events, "same events after eviction");

    assert_eq!(
        store.head().await.expect("head"),
        head + 2,
        "only acc-2's opening and deposit were written"
    );
    let balance = restarted
        .entity::<Account>("acc-1")
        .state()
        .await
        .expect("state")
        .balance;
    assert_eq!(balance, dollars(75), "$100 - $30 once + $5");
}

/// Given a committed command id, the same id with another command (or other
/// content) is refused, names the id and the stream, and stores nothing.
async fn a_reused_command_id_with_another_command_is_refused(store: Arc<dyn EventStore>) {
    let app = App::builder().shared_store(store.clone()).build();
    opened(&app, "acc-1").await;
    let id = Uuid::new_v4();
    let account = app.entity::<Account>("acc-1");
    account
        .send_with(Withdraw { amount: dollars(30) }, with_id(id))
        .await
        .expect("withdraw");
    let head = store.head().await.expect("head");
    for (what, result) in [
        (
            "another command type",
            account
                .send_with(Deposit { amount: dollars(30) }, with_id(id))
                .await,
        ),
        (
            "other content",
            account
                .send_with(Withdraw { amount: dollars(31) }, with_id(id))
                .await,
        ),
    ] {
        let err = result.expect_err(what);
        match &err {
            CommandError::CommandIdReused {
                stream_type,
                stream_id,
                command_id,
            } => assert_eq!(
                (*stream_type, stream_id.as_str(), *command_id),
                ("account", "acc-1", id)
            ),
            other => panic!("{what}: expected CommandIdReused, got {other:?}"),
        }
        assert!(err.to_string().contains(&id.to_string()), "{err}");
    }
    assert_eq!(store.head().await.expect("head"), head, "nothing stored");
    // The id is per entity: on another entity it names a new command.
    opened(&app, "acc-2").await;
    app.entity::<Account>("acc-2")
        .send_with(Deposit { amount: dollars(1) }, with_id(id))
        .await
        .expect("the same id on another entity is another command");
}

/// Given a rejected command, nothing was stored for it, so sending its id
/// again decides it again (against the state of now).
async fn a_rejected_command_is_decided_again(store: Arc<dyn EventStore>) {
    let app = App::builder().shared_store(store).build();
    opened(&app, "acc-1").await;
    let id = Uuid::new_v4();
    let account = app.entity::<Account>("acc-1");
    let err = account
        .send_with(Withdraw { amount: dollars(150) }, with_id(id))
        .await
        .expect_err("over the balance");
    assert!(
        matches!(err.rejection(), Some(AccountError::Insufficient { .. })),
        "{err:?}"
    );
    account
        .send(Deposit { amount: dollars(100) })
        .await
        .expect("deposit");
    let committed = account
        .send_with(Withdraw { amount: dollars(150) }, with_id(id))
        .await
        .expect("decided again, now covered");
    assert_eq!(committed.events.len(), 1);
}

/// A store whose next two appends, once armed, wait for each other: both
/// nodes have decided before either commits, so the race is certain. Later
/// appends pass straight through (a node that wrongly decides again must
/// reach the store, not hang).
struct Gate {
    inner: Arc<dyn EventStore>,
    held: AtomicU64,
    barrier: tokio::sync::Barrier,
    passed: AtomicU64,
}

#[async_trait]
impl EventStore for Gate {
    async fn append(&self, request: AppendRequest) -> Result<Appended, StoreError> {
        let take = |n: u64| n.checked_sub(1);
        if self
            .held
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, take)
            .is_ok()
        {
            self.barrier.wait().await;
            self.passed.fetch_add(1, Ordering::SeqCst);
        }
        self.inner.append(request).await
    }
    async fn read_stream(
        &self,
        t: &str,
        id: &str,
        from: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.read_stream(t, id, from, limit).await
    }
    async fn command_events(
        &self,
        t: &str,
        id: &str,
        command: Uuid,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.command_events(t, id, command).await
    }
    async fn read_all(&self, from: u64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.read_all(from, limit).await
    }
    async fn stream_version(&self, t: &str, id: &str) -> Result<u64, StoreError> {
        self.inner.stream_version(t, id).await
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
    async fn load_snapshot(&self, t: &str, id: &str) -> Result<Option<Snapshot>, StoreError> {
        self.inner.load_snapshot(t, id).await
    }
    fn codec(&self) -> factum::Codec {
        self.inner.codec()
    }
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
}

/// Given two apps (two nodes) on one store, both deciding the same command id
/// before either commits, the store ends with one set of events and both
/// answer it (the loser sees a conflict on memory, an acknowledged append on
/// the SQL stores: both paths return the stored outcome).
async fn two_nodes_sending_one_command_id_commit_it_once(store: Arc<dyn EventStore>) {
    let gate = Arc::new(Gate {
        inner: store.clone(),
        held: AtomicU64::new(0),
        barrier: tokio::sync::Barrier::new(2),
        passed: AtomicU64::new(0),
    });
    let a = App::builder().shared_store(gate.clone()).build();
    let b = App::builder().shared_store(gate.clone()).build();
    opened(&a, "acc-1").await;
    for round in 0..20 {
        // Both caches are warm at the same version, so both decide before either appends.
        a.entity::<Account>("acc-1").version().await.expect("load a");
        b.entity::<Account>("acc-1").version().await.expect("load b");
        let id = Uuid::new_v4();
        let (on_a, on_b) = (a.entity::<Account>("acc-1"), b.entity::<Account>("acc-1"));
        gate.held.store(2, Ordering::SeqCst);
        let passed = gate.passed.load(Ordering::SeqCst);
        let (ra, rb) = tokio::join!(
            on_a.send_with(Withdraw { amount: dollars(1) }, with_id(id)),
            on_b.send_with(Withdraw { amount: dollars(1) }, with_id(id)),
        );
        assert_eq!(
            gate.passed.load(Ordering::SeqCst) - passed,
            2,
            "round {round}: both nodes decided and appended"
        );
        let (ra, rb) = (ra.expect("node a"), rb.expect("node b"));
        assert_eq!(
            ra.events, rb.events,
            "round {round}: both nodes answer the stored events"
        );
        assert_eq!(
            (ra.version, ra.position),
            (rb.version, rb.position),
            "round {round}"
        );
    }
    let balance = a.entity::<Account>("acc-1").state().await.expect("state").balance;
    assert_eq!(balance, dollars(80), "20 withdrawals of $1, each once");
    let b_balance = b.entity::<Account>("acc-1").state().await.expect("state").balance;
    assert_eq!(b_balance, dollars(80), "node b's cache agrees");
    assert_eq!(
        store.stream_version("account", "acc-1").await.expect("version"),
        22
    );
}

macro_rules! on_every_backend {
    ($($test:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(std::sync::Arc::new(factum::MemoryStore::new())).await;
                }
            )*
        }
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let dir = tempfile::tempdir().expect("tempdir");
                    let store = super::SqliteStore::options()
                        .synchronous(super::Synchronous::Off)
                        .open(dir.path().join("events.db"))
                        .expect("open");
                    super::$test(std::sync::Arc::new(store)).await;
                }
            )*
        }
        mod postgres {
            $(
                #[cfg_attr(not(factum_pg), ignore = "needs PostgreSQL: set FACTUM_PG_URL (see tests/README.md)")]
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let Some(url) = factum_tests::pg::url(stringify!($test)) else { return };
                    let schema = factum_tests::pg::fresh_schema("idem");
                    let store = super::PostgresStore::connect(url)
                        .schema(schema)
                        .await
                        .expect("connect to FACTUM_PG_URL");
                    super::$test(std::sync::Arc::new(store)).await;
                }
            )*
        }
    };
}

on_every_backend!(
    a_resent_command_returns_its_original_outcome,
    a_reused_command_id_with_another_command_is_refused,
    a_rejected_command_is_decided_again,
    two_nodes_sending_one_command_id_commit_it_once,
);
