//! Consumers: side effects at least once, commands once, failures parked as
//! dead letters (never blocking, never vanishing), order per stream, and
//! operators redriving and discarding — on memory and on SQLite.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use factum::consumer::{ConsumerHandle, LetterState, MemoryConsumerStore};
use factum::prelude::*;
use factum_examples::bank::{Account, AccountError, Deposit, Frozen, Open, Withdraw};
use factum_examples::fraud::FraudCheck;

/// Where a test's app keeps its log: memory, or a SQLite file in a temp dir.
#[derive(Clone, Copy, Debug)]
enum Backend {
    Memory,
    Sqlite,
}

struct Fixture {
    app: App,
    _dir: Option<tempfile::TempDir>,
}

async fn fixture(backend: Backend) -> Fixture {
    match backend {
        Backend::Memory => Fixture {
            app: App::in_memory(),
            _dir: None,
        },
        Backend::Sqlite => {
            let dir = tempfile::tempdir().expect("temp dir");
            let app = App::open(dir.path().join("bank.db"))
                .await
                .expect("open the SQLite app");
            Fixture { app, _dir: Some(dir) }
        }
    }
}

async fn open(app: &App, id: &str, cents: u64) {
    let account = app.entity::<Account>(id);
    account.send(Open { owner: id.to_owned() }).await.expect("open");
    account.send(Deposit { amount: cents }).await.expect("deposit");
}

async fn freezes(app: &App, id: &str) -> usize {
    app.entity::<Account>(id)
        .history()
        .await
        .expect("history")
        .iter()
        .filter(|r| r.event.as_frozen().is_some())
        .count()
}

trait AsFrozen {
    fn as_frozen(&self) -> Option<&Frozen>;
}

impl AsFrozen for factum_examples::bank::AccountEvent {
    fn as_frozen(&self) -> Option<&Frozen> {
        match self {
            factum_examples::bank::AccountEvent::Frozen(f) => Some(f),
            _ => None,
        }
    }
}

async fn fraud_check_freezes_once_even_when_its_events_are_delivered_twice(backend: Backend) {
    let f = fixture(backend).await;
    let app = &f.app;
    open(app, "ada", 500_000).await;
    open(app, "bob", 500_000).await;
    app.entity::<Account>("ada")
        .send(Withdraw { amount: 200_000 })
        .await
        .expect("big withdrawal");
    app.entity::<Account>("bob")
        .send(Withdraw { amount: 5_000 })
        .await
        .expect("small withdrawal");

    let fraud = app
        .consumers()
        .start(FraudCheck { limit: 100_000 })
        .await
        .expect("start");
    fraud.wait_idle().await.expect("idle");
    assert_eq!(freezes(app, "ada").await, 1, "the big withdrawal froze ada");
    assert_eq!(freezes(app, "bob").await, 0, "the small one did not freeze bob");
    let refused = app
        .entity::<Account>("ada")
        .send(Withdraw { amount: 1 })
        .await
        .unwrap_err();
    assert!(
        matches!(refused.into_rejection(), Some(AccountError::Frozen(_))),
        "a frozen account refuses withdrawals"
    );

    // Every event delivered again: a second app over the same log whose
    // consumer checkpoint starts at 0 (what a crash before the checkpoint moved looks like).
    let again = App::builder()
        .shared_store(app.store().clone())
        .consumer_store(MemoryConsumerStore::new())
        .build();
    let redelivered = again
        .consumers()
        .start(FraudCheck { limit: 100_000 })
        .await
        .expect("start again");
    redelivered.wait_idle().await.expect("idle again");
    assert_eq!(redelivered.checkpoint(), app.store().head().await.expect("head"));
    assert_eq!(
        freezes(&again, "ada").await,
        1,
        "the redelivered withdrawal did not freeze ada twice"
    );
}

#[tokio::test]
async fn memory_fraud_check_freezes_once_even_when_its_events_are_delivered_twice() {
    fraud_check_freezes_once_even_when_its_events_are_delivered_twice(Backend::Memory).await;
}

#[tokio::test]
async fn sqlite_fraud_check_freezes_once_even_when_its_events_are_delivered_twice() {
    fraud_check_freezes_once_even_when_its_events_are_delivered_twice(Backend::Sqlite).await;
}

/// What the test consumers saw and which accounts make them fail.
#[derive(Default)]
struct Script {
    poison: Mutex<HashSet<String>>,
    skip: Mutex<HashSet<String>>,
    panic: Mutex<HashSet<String>>,
    handled: Mutex<Vec<(String, u64)>>,
}

impl Script {
    fn poison(&self, id: &str) {
        self.poison.lock().unwrap().insert(id.to_owned());
    }

    fn cure(&self, id: &str) {
        self.poison.lock().unwrap().remove(id);
        self.panic.lock().unwrap().remove(id);
    }

    fn handled(&self, id: &str) -> Vec<u64> {
        self.handled
            .lock()
            .unwrap()
            .iter()
            .filter(|(s, _)| s == id)
            .map(|(_, v)| *v)
            .collect()
    }

    fn decide(&self, ctx: &ConsumerContext) -> Handled {
        let id = ctx.stream_id().to_owned();
        if self.panic.lock().unwrap().contains(&id) {
            panic!("the ledger service exploded on {id}");
        }
        if self.poison.lock().unwrap().contains(&id) {
            return Handled::Retry(format!("the ledger service refused {id}"));
        }
        if self.skip.lock().unwrap().contains(&id) {
            return Handled::Skip(format!("{id} is a test account"));
        }
        self.handled.lock().unwrap().push((id, ctx.meta().version));
        Handled::Done
    }
}

/// Mirrors deposits into an outside ledger, in order per account.
struct Ledger(Arc<Script>);

#[consumer(name = "ledger", max_attempts = 3, backoff_ms = 1)]
impl Ledger {
    #[on]
    async fn deposited(&self, _e: &factum_examples::bank::Deposited, ctx: &mut ConsumerContext) -> Handled {
        self.0.decide(ctx)
    }
}

/// The same, for a ledger that does not care about order.
struct UnorderedLedger(Arc<Script>);

#[consumer(
    name = "unordered_ledger",
    max_attempts = 2,
    backoff_ms = 1,
    order_independent
)]
impl UnorderedLedger {
    #[on]
    async fn deposited(&self, _e: &factum_examples::bank::Deposited, ctx: &mut ConsumerContext) -> Handled {
        self.0.decide(ctx)
    }
}

async fn deposit(app: &App, id: &str, cents: u64) {
    app.entity::<Account>(id)
        .send(Deposit { amount: cents })
        .await
        .expect("deposit");
}

async fn letters(handle: &ConsumerHandle, state: LetterState) -> Vec<(String, u64)> {
    handle
        .dead_letters(Some(&[state]))
        .await
        .expect("letters")
        .into_iter()
        .map(|l| (l.stream_id, l.version))
        .collect()
}

async fn a_poison_event_is_parked_and_holds_back_only_its_stream_until_redriven(backend: Backend) {
    let f = fixture(backend).await;
    let app = &f.app;
    let script = Arc::new(Script::default());
    script.poison("bad");
    open(app, "bad", 100).await; // bad v2: the poison deposit
    open(app, "good", 100).await;
    deposit(app, "bad", 200).await; // bad v3: held behind v2
    deposit(app, "good", 200).await;

    let ledger = app
        .consumers()
        .start(Ledger(script.clone()))
        .await
        .expect("start");
    ledger.wait_idle().await.expect("idle");
    assert_eq!(script.handled("good"), vec![2, 3], "the other stream went on");
    assert!(script.handled("bad").is_empty());
    let parked = ledger
        .dead_letters(Some(&[LetterState::Parked]))
        .await
        .expect("parked");
    assert_eq!(parked.len(), 1, "{parked:?}");
    let p = &parked[0];
    assert_eq!(
        (p.stream_type.as_str(), p.stream_id.as_str(), p.version),
        ("account", "bad", 2)
    );
    assert_eq!(p.event_type, "account.deposited");
    assert_eq!(p.attempts, 3, "parked after max_attempts runs");
    assert_eq!(p.error, "the ledger service refused bad");
    assert_eq!(
        letters(&ledger, LetterState::Held).await,
        vec![("bad".to_owned(), 3)]
    );
    assert_eq!(
        ledger.checkpoint(),
        app.store().head().await.expect("head"),
        "the checkpoint moved on"
    );

    // A later event of the blocked stream is held too, not handled out of order.
    deposit(app, "bad", 300).await;
    ledger.wait_idle().await.expect("idle");
    assert_eq!(
        letters(&ledger, LetterState::Held).await,
        vec![("bad".to_owned(), 3), ("bad".to_owned(), 4)]
    );
    let status = ledger.status().await.expect("status");
    assert_eq!(status.lag_events, 0);
    assert!(status.letters.contains(&(LetterState::Parked, 1)), "{status:?}");
    assert!(status.letters.contains(&(LetterState::Held, 2)), "{status:?}");

    // Redriving before the fix parks it again, with the attempts added up.
    ledger.redrive(p.position).await.expect("redrive");
    ledger.wait_idle().await.expect("idle");
    let again = ledger
        .dead_letters(Some(&[LetterState::Parked]))
        .await
        .expect("parked");
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempts, 6);
    assert!(script.handled("bad").is_empty());

    // After the fix: the parked event runs once, then the held ones, in order.
    script.cure("bad");
    ledger.redrive(p.position).await.expect("redrive");
    ledger.wait_idle().await.expect("idle");
    assert_eq!(script.handled("bad"), vec![2, 3, 4], "once each, in stream order");
    assert_eq!(letters(&ledger, LetterState::Resolved).await.len(), 3);
    assert!(
        ledger
            .dead_letters(Some(&[LetterState::Parked, LetterState::Held]))
            .await
            .unwrap()
            .is_empty()
    );

    // The stream is open again: its next event is handled as it comes.
    deposit(app, "bad", 400).await;
    ledger.wait_idle().await.expect("idle");
    assert_eq!(script.handled("bad"), vec![2, 3, 4, 5]);
}

#[tokio::test]
async fn memory_a_poison_event_is_parked_and_holds_back_only_its_stream_until_redriven() {
    a_poison_event_is_parked_and_holds_back_only_its_stream_until_redriven(Backend::Memory).await;
}

#[tokio::test]
async fn sqlite_a_poison_event_is_parked_and_holds_back_only_its_stream_until_redriven() {
    a_poison_event_is_parked_and_holds_back_only_its_stream_until_redriven(Backend::Sqlite).await;
}

#[tokio::test]
async fn discarding_a_parked_event_records_the_reason_and_lets_the_held_ones_run() {
    let app = App::in_memory();
    let script = Arc::new(Script::default());
    script.poison("bad");
    open(&app, "bad", 100).await;
    deposit(&app, "bad", 200).await;
    let ledger = app
        .consumers()
        .start(Ledger(script.clone()))
        .await
        .expect("start");
    ledger.wait_idle().await.expect("idle");
    let parked = letters(&ledger, LetterState::Parked).await;
    assert_eq!(parked, vec![("bad".to_owned(), 2)]);
    let position = ledger.dead_letters(Some(&[LetterState::Parked])).await.unwrap()[0].position;

    let refused = ledger.discard(position, "  ").await.unwrap_err();
    assert!(refused.to_string().contains("needs a reason"), "{refused}");
    // The service recovers; the operator gives up the first deposit (entered by hand).
    script.cure("bad");
    ledger
        .discard(position, "the ledger was corrected by hand")
        .await
        .expect("discard");
    ledger.wait_idle().await.expect("idle");
    let discarded = ledger
        .dead_letters(Some(&[LetterState::Discarded]))
        .await
        .unwrap();
    assert_eq!(discarded.len(), 1);
    assert_eq!(
        discarded[0].reason.as_deref(),
        Some("the ledger was corrected by hand")
    );
    assert_eq!(
        script.handled("bad"),
        vec![3],
        "the held deposit ran once nothing was before it"
    );

    let again = ledger.discard(position, "twice").await.unwrap_err();
    assert!(again.to_string().contains("is discarded"), "{again}");
    let redrive = ledger.redrive(position).await.unwrap_err();
    assert!(redrive.to_string().contains("is discarded"), "{redrive}");
}

#[tokio::test]
async fn an_order_independent_consumer_parks_only_the_failing_event() {
    let app = App::in_memory();
    let script = Arc::new(Script::default());
    open(&app, "bad", 100).await;
    script.poison("bad");
    deposit(&app, "bad", 200).await;
    let ledger = app
        .consumers()
        .start(UnorderedLedger(script.clone()))
        .await
        .expect("start");
    ledger.wait_idle().await.expect("idle");
    assert_eq!(
        letters(&ledger, LetterState::Parked).await.len(),
        2,
        "both failed, each parked"
    );
    script.cure("bad");
    deposit(&app, "bad", 300).await;
    ledger.wait_idle().await.expect("idle");
    assert_eq!(script.handled("bad"), vec![4], "a later event is not held back");
    assert!(letters(&ledger, LetterState::Held).await.is_empty());
    assert_eq!(ledger.redrive_all().await.expect("redrive all"), 2);
    ledger.wait_idle().await.expect("idle");
    let mut handled = script.handled("bad");
    handled.sort_unstable();
    assert_eq!(handled, vec![2, 3, 4]);
}

#[tokio::test]
async fn a_skip_is_recorded_with_its_reason_and_holds_nothing_back() {
    let app = App::in_memory();
    let script = Arc::new(Script::default());
    script.skip.lock().unwrap().insert("test".to_owned());
    open(&app, "test", 100).await;
    let ledger = app
        .consumers()
        .start(Ledger(script.clone()))
        .await
        .expect("start");
    ledger.wait_idle().await.expect("idle");
    let skipped = ledger.dead_letters(Some(&[LetterState::Skipped])).await.unwrap();
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0].error, "test is a test account");
    script.skip.lock().unwrap().clear();
    deposit(&app, "test", 5).await;
    ledger.wait_idle().await.expect("idle");
    assert_eq!(script.handled("test"), vec![3]);
}

#[tokio::test]
async fn a_panicking_handler_is_parked_with_the_panic_message_and_the_consumer_goes_on() {
    let app = App::in_memory();
    let script = Arc::new(Script::default());
    script.panic.lock().unwrap().insert("boom".to_owned());
    open(&app, "boom", 100).await;
    open(&app, "calm", 100).await;
    let ledger = app
        .consumers()
        .start(Ledger(script.clone()))
        .await
        .expect("start");
    ledger.wait_idle().await.expect("idle");
    let parked = ledger.dead_letters(Some(&[LetterState::Parked])).await.unwrap();
    assert_eq!(parked.len(), 1);
    assert!(
        parked[0].error.contains("the ledger service exploded on boom"),
        "{}",
        parked[0].error
    );
    assert_eq!(script.handled("calm"), vec![2]);
}

#[tokio::test]
async fn an_event_that_does_not_decode_is_parked_at_once_with_the_decode_error() {
    use factum::store::{AppendRequest, EventMetadata, NewEvent};
    let app = App::in_memory();
    let script = Arc::new(Script::default());
    let id = Uuid::new_v4();
    let metadata = EventMetadata {
        event_id: id,
        recorded_at: Timestamp::from_secs(1),
        command_id: id,
        causation_id: None,
        correlation_id: id,
    };
    app.store()
        .append(AppendRequest {
            stream_type: "account".into(),
            stream_id: "odd".into(),
            expected_version: 0,
            events: vec![NewEvent {
                event_type: "account.deposited".into(),
                schema_version: 1,
                codec: Codec::Json,
                payload: br#"{"amount":"lots"}"#.to_vec(),
                metadata,
            }],
        })
        .await
        .expect("append a damaged event");
    let ledger = app
        .consumers()
        .start(Ledger(script.clone()))
        .await
        .expect("start");
    ledger.wait_idle().await.expect("idle");
    let parked = ledger.dead_letters(Some(&[LetterState::Parked])).await.unwrap();
    assert_eq!(parked.len(), 1);
    assert_eq!(
        parked[0].attempts, 1,
        "decoding again cannot help: parked on the first run"
    );
    assert!(parked[0].error.contains("does not decode"), "{}", parked[0].error);
}

#[tokio::test]
async fn a_sqlite_consumer_resumes_from_its_checkpoint_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bank.db");
    let script = Arc::new(Script::default());
    {
        let app = App::open(&path).await.unwrap();
        open(&app, "ada", 100).await;
        let ledger = app.consumers().start(Ledger(script.clone())).await.unwrap();
        ledger.wait_idle().await.unwrap();
    }
    let app = App::open(&path).await.unwrap();
    deposit(&app, "ada", 5).await;
    let ledger = app.consumers().start(Ledger(script.clone())).await.unwrap();
    ledger.wait_idle().await.unwrap();
    assert_eq!(
        script.handled("ada"),
        vec![2, 3],
        "the first deposit was not handled again"
    );
    let stored = app.consumers().store().unwrap().checkpoints().await.unwrap();
    assert_eq!(stored, vec![("ledger".to_owned(), 3)]);
}

#[tokio::test]
async fn a_durable_log_without_a_consumer_store_refuses_to_start_a_consumer() {
    let dir = tempfile::tempdir().unwrap();
    let store = factum::SqliteStore::open(dir.path().join("log.db")).unwrap();
    let app = App::new(store);
    let error = app.consumers().start(FraudCheck { limit: 1 }).await.unwrap_err();
    assert!(
        error.to_string().contains("no consumer store is configured"),
        "{error}"
    );
}

#[tokio::test]
async fn starting_a_consumer_twice_returns_the_running_one() {
    let app = App::in_memory();
    let a = app.consumers().start(FraudCheck { limit: 1 }).await.unwrap();
    let b = app.consumers().start(FraudCheck { limit: 2 }).await.unwrap();
    assert_eq!(a.name(), b.name());
    assert_eq!(app.consumers().names(), vec!["fraud_check"]);
    assert!(app.consumers().get("fraud_check").is_ok());
    assert!(
        app.consumers()
            .get("nope")
            .unwrap_err()
            .to_string()
            .contains("no consumer named `nope`")
    );
}

/// An app on the PostgreSQL schema, as one node of a cluster.
async fn pg_node(url: &str, schema: &str) -> App {
    let store = factum::PostgresStore::connect(url.to_owned())
        .schema(schema.to_owned())
        .pool_size(4)
        .poll_interval(std::time::Duration::from_millis(200))
        .open()
        .await
        .expect("connect the log");
    let consumers = factum::postgres::PostgresConsumerStore::connect_in_schema(url, schema)
        .await
        .expect("connect the consumer store");
    App::builder().store(store).consumer_store(consumers).build()
}

#[cfg_attr(
    not(factum_pg),
    ignore = "needs PostgreSQL: set FACTUM_PG_URL (see tests/README.md)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_on_postgres_run_a_consumer_once_and_fail_over() {
    let Some(url) = factum_tests::pg::url("consumer failover") else {
        return;
    };
    let schema = factum_tests::pg::fresh_schema("consumers");
    let a = pg_node(&url, &schema).await;
    let b = pg_node(&url, &schema).await;
    let on_a = a
        .consumers()
        .start(FraudCheck { limit: 100_000 })
        .await
        .expect("start on a");
    let on_b = b
        .consumers()
        .start(FraudCheck { limit: 100_000 })
        .await
        .expect("start on b");
    for i in 0..5 {
        let id = format!("acc-{i}");
        open(&a, &id, 500_000).await;
        a.entity::<Account>(&id)
            .send(Withdraw { amount: 200_000 })
            .await
            .expect("withdraw");
    }
    let head = a.store().head().await.expect("head");
    on_a.wait_for(head).await.expect("a caught up");
    on_b.wait_for(head).await.expect("b follows");
    let runners = [
        on_a.status().await.unwrap().runner,
        on_b.status().await.unwrap().runner,
    ];
    assert_eq!(
        runners.iter().filter(|r| **r).count(),
        1,
        "one runner across nodes: {runners:?}"
    );

    // The runner's node goes away; the other takes over and handles what comes next.
    let (gone, survivor, handle) = if runners[0] { (a, b, on_b) } else { (b, a, on_a) };
    drop(gone);
    for i in 5..8 {
        let id = format!("acc-{i}");
        open(&survivor, &id, 500_000).await;
        survivor
            .entity::<Account>(&id)
            .send(Withdraw { amount: 200_000 })
            .await
            .expect("withdraw");
    }
    let head = survivor.store().head().await.expect("head");
    handle.wait_for(head).await.expect("the survivor caught up");
    assert!(
        handle.status().await.unwrap().runner,
        "the survivor runs the consumer"
    );
    for i in 0..8 {
        assert_eq!(
            freezes(&survivor, &format!("acc-{i}")).await,
            1,
            "acc-{i} frozen once"
        );
    }
    drop((survivor, handle));
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    client
        .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .await
        .expect("drop the test schema");
}
