//! Durable timers beyond the per-backend conformance cases: a process killed
//! between scheduling and due time (SQLite, PostgreSQL), two runners on one
//! PostgreSQL schema, a store that fails under the runner, and a durable log
//! without a timer store. Time is virtual: no test sleeps to wait for a timer.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use factum::postgres::{PostgresStore, PostgresTimerStore};
use factum::sqlite::{SqliteStore, SqliteTimerStore};
use factum::store::{AppendRequest, Appended, EventStore, RecordedEvent, Snapshot, StoreError};
use factum::timer::{FiringOutcome, TimerStore};
use factum::{App, ManualClock, MemoryStore, TimerError, Timestamp};
use factum_tests::timers::{Meter, tick};
use tokio::sync::watch;

/// 2030-01-01T00:00:00Z, the time `timer_child schedule` stands at.
const T0: Timestamp = Timestamp::from_secs(1_893_456_000);

fn spawn(args: &[&str]) -> (Child, std::io::Lines<BufReader<std::process::ChildStdout>>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_timer_child"))
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn timer_child");
    let lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    (child, lines)
}

/// The first line starting with `prefix`, or a panic naming what the child printed instead.
fn wait_for_line(lines: &mut impl Iterator<Item = std::io::Result<String>>, prefix: &str) -> String {
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.expect("child output");
        if line.starts_with(prefix) {
            return line;
        }
        seen.push(line);
    }
    panic!("timer_child ended before printing `{prefix}…`; it printed {seen:?}");
}

/// Schedules in a child, SIGKILLs it on its `scheduled` line, checks the kill
/// landed between scheduling and firing, fires in a second child, and checks
/// each timer fired exactly once.
async fn killed_between_scheduling_and_due_time(
    args: &[&str],
    open: impl AsyncFn() -> (Arc<dyn EventStore>, Arc<dyn TimerStore>),
) {
    let schedule: Vec<&str> = ["schedule"].iter().chain(args).copied().collect();
    let (mut child, mut lines) = spawn(&schedule);
    wait_for_line(&mut lines, "scheduled");
    child.kill().expect("SIGKILL the child");
    let status = child.wait().expect("reap the child");
    assert!(
        !status.success(),
        "the child was killed, it did not exit: {status}"
    );

    // The kill landed where it should: both timers stored, neither fired.
    let (store, timers) = open().await;
    let pending = timers.pending(None, 10).await.expect("list pending timers");
    assert_eq!(
        pending.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
        ["kill:a", "kill:b"]
    );
    assert_eq!(store.stream_version("meter", "m-1").await.unwrap(), 0);
    drop((store, timers));

    let fire: Vec<&str> = ["fire"].iter().chain(args).copied().collect();
    let (mut child, mut lines) = spawn(&fire);
    let line = wait_for_line(&mut lines, "fired");
    assert!(child.wait().expect("reap").success());
    assert_eq!(line, "fired a,b", "each timer once, in due order");

    let (store, timers) = open().await;
    assert_eq!(store.stream_version("meter", "m-1").await.unwrap(), 2);
    assert!(timers.pending(None, 10).await.unwrap().is_empty());
    let firings = timers.recent_firings(10).await.unwrap();
    assert_eq!(firings.len(), 2, "{firings:?}");
    assert!(
        firings
            .iter()
            .all(|f| matches!(f.outcome, FiringOutcome::Fired { .. }))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_timer_fires_once_after_the_scheduling_process_is_killed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("events.db");
    let file = path.display().to_string();
    killed_between_scheduling_and_due_time(&["sqlite", &file], async || {
        (
            Arc::new(SqliteStore::open(&path).expect("open the log")) as Arc<dyn EventStore>,
            Arc::new(SqliteTimerStore::open(&path).expect("open the timers")) as Arc<dyn TimerStore>,
        )
    })
    .await;
}

#[cfg_attr(
    not(factum_pg),
    ignore = "needs PostgreSQL: set FACTUM_PG_URL (see tests/README.md)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_timer_fires_once_after_the_scheduling_process_is_killed() {
    let Some(url) =
        factum_tests::pg::url("a_postgres_timer_fires_once_after_the_scheduling_process_is_killed")
    else {
        return;
    };
    let schema = factum_tests::pg::fresh_schema("timer_kill");
    killed_between_scheduling_and_due_time(&["postgres", &url, &schema], async || {
        let store = PostgresStore::connect(url.clone())
            .schema(schema.clone())
            .open()
            .await
            .expect("connect the log");
        let timers = PostgresTimerStore::connect_in_schema(&url, &schema)
            .await
            .expect("connect the timers");
        (
            Arc::new(store) as Arc<dyn EventStore>,
            Arc::new(timers) as Arc<dyn TimerStore>,
        )
    })
    .await;
    drop_schema(&url, &schema).await;
}

async fn drop_schema(url: &str, schema: &str) {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect to postgres");
    tokio::spawn(connection);
    client
        .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .await
        .expect("drop the test schema");
}

/// An app on the PostgreSQL schema, as one node of a cluster.
async fn pg_node(url: &str, schema: &str, clock: &ManualClock) -> App {
    let store = PostgresStore::connect(url.to_owned())
        .schema(schema.to_owned())
        .pool_size(4)
        .poll_interval(Duration::from_millis(200))
        .open()
        .await
        .expect("connect the log");
    let timers = PostgresTimerStore::connect_in_schema(url, schema)
        .await
        .expect("connect the timers");
    App::builder()
        .store(store)
        .timer_store(timers)
        .clock(clock.clone())
        .timer::<Meter, factum_tests::timers::Tick>()
        .build()
}

#[cfg_attr(
    not(factum_pg),
    ignore = "needs PostgreSQL: set FACTUM_PG_URL (see tests/README.md)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_runners_on_one_postgres_schema_fire_each_timer_once_and_fail_over() {
    let Some(url) = factum_tests::pg::url("two_runners_on_one_postgres_schema") else {
        return;
    };
    let schema = factum_tests::pg::fresh_schema("timer_nodes");
    let clock = ManualClock::new(T0);
    let one = pg_node(&url, &schema, &clock).await;
    let two = pg_node(&url, &schema, &clock).await;
    // 200 timers on 20 meters, half scheduled by each node, due over 200 s.
    for i in 0..200u64 {
        let node = if i % 2 == 0 { &one } else { &two };
        let due = T0 + Duration::from_secs(1 + i);
        node.timers()
            .schedule::<Meter, _>(
                &format!("n-{i:03}"),
                &format!("m-{}", i % 20),
                due,
                tick(&format!("{i:03}")),
            )
            .await
            .unwrap();
    }

    // The first half falls due with both nodes up.
    clock.advance(Duration::from_secs(100));
    one.timers().wait_idle().await.unwrap();
    two.timers().wait_idle().await.unwrap();
    let (r1, r2) = (
        one.timers().status().unwrap().runner,
        two.timers().status().unwrap().runner,
    );
    assert!(!(r1 && r2), "one runner at a time");
    assert_eq!(two.timers().pending().await.unwrap().len(), 100);

    // The runner's node goes away; the other takes over and fires the rest.
    let (survivor, gone) = if r1 { (two, one) } else { (one, two) };
    drop(gone);
    clock.advance(Duration::from_secs(100));
    survivor.timers().wait_idle().await.unwrap();

    assert!(survivor.timers().pending().await.unwrap().is_empty());
    let mut all = Vec::new();
    for m in 0..20 {
        let meter = survivor.entity::<Meter>(format!("m-{m}")).state().await.unwrap();
        let mut sorted = meter.labels.clone();
        sorted.sort();
        assert_eq!(meter.labels, sorted, "meter m-{m}: in due order");
        all.extend(meter.labels);
    }
    all.sort();
    let expected: Vec<String> = (0..200).map(|i| format!("{i:03}")).collect();
    assert_eq!(all, expected, "each of the 200 timers fired exactly once");
    drop(survivor);
    drop_schema(&url, &schema).await;
}

/// A memory store whose appends fail while `failures` is above zero (each
/// failure counts it down): a store outage, as the runner sees it.
struct FlakyStore {
    inner: MemoryStore,
    failures: AtomicU32,
}

#[async_trait]
impl EventStore for FlakyStore {
    async fn append(&self, request: AppendRequest) -> Result<Appended, StoreError> {
        let failing = self
            .failures
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if failing {
            return Err(StoreError::Closed { backend: "flaky" });
        }
        self.inner.append(request).await
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
    fn watch_head(&self) -> watch::Receiver<u64> {
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
    fn backend(&self) -> &'static str {
        "memory"
    }
}

fn flaky_app(failures: u32, clock: &ManualClock) -> (App, Arc<FlakyStore>) {
    let store = Arc::new(FlakyStore {
        inner: MemoryStore::new(),
        failures: AtomicU32::new(failures),
    });
    let app = App::builder()
        .shared_store(store.clone())
        .clock(clock.clone())
        .build();
    (app, store)
}

#[tokio::test]
async fn a_send_that_fails_on_the_store_is_retried_until_it_fires_once() {
    let clock = ManualClock::new(T0);
    let (app, _store) = flaky_app(2, &clock);
    app.timers()
        .schedule::<Meter, _>("retry", "m-1", T0 + Duration::from_secs(1), tick("once"))
        .await
        .unwrap();
    clock.advance(Duration::from_secs(1));
    app.timers().wait_idle().await.unwrap();

    assert_eq!(app.entity::<Meter>("m-1").state().await.unwrap().labels, ["once"]);
    assert!(app.timers().pending().await.unwrap().is_empty());
    let outcomes: Vec<&'static str> = app
        .timers()
        .recent_firings(10)
        .await
        .unwrap()
        .iter()
        .map(|f| f.outcome.kind())
        .collect();
    assert_eq!(outcomes, ["fired", "failed", "failed"], "newest first");
}

#[tokio::test]
async fn wait_idle_reports_a_timer_the_store_keeps_failing_and_the_timer_stays_pending() {
    let clock = ManualClock::new(T0);
    let (app, store) = flaky_app(u32::MAX, &clock);
    app.timers()
        .schedule::<Meter, _>("outage", "m-1", T0, tick("later"))
        .await
        .unwrap();
    let err = app.timers().wait_idle().await.unwrap_err();
    match &err {
        TimerError::Failing {
            name,
            attempts,
            error,
        } => {
            assert_eq!(name, "outage");
            assert!(*attempts >= factum::process::FAILURES_BEFORE_WAIT_FAILS);
            assert!(
                error.contains("outage") && error.contains("flaky store is closed"),
                "{error}"
            );
        }
        other => panic!("expected Failing, got {other}"),
    }
    let pending = app.timers().pending().await.unwrap();
    assert_eq!(pending.len(), 1);
    assert!(
        pending[0].attempts >= 3 && !pending[0].blocked,
        "{:?}",
        pending[0]
    );
    assert!(pending[0].last_error.as_deref().unwrap_or("").contains("closed"));

    // The store recovers: the runner's next retry fires it, once.
    store.failures.store(0, Ordering::SeqCst);
    app.timers().wait_idle().await.unwrap();
    assert_eq!(
        app.entity::<Meter>("m-1").state().await.unwrap().labels,
        ["later"]
    );
}

#[tokio::test]
async fn a_durable_log_without_a_timer_store_refuses_timers_instead_of_keeping_them_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    let app = App::new(SqliteStore::open(dir.path().join("events.db")).unwrap());
    let err = app
        .timers()
        .schedule::<Meter, _>("lost", "m-1", T0, tick("x"))
        .await
        .unwrap_err();
    assert!(matches!(err, TimerError::NoStore { backend: "sqlite" }), "{err}");
    assert!(err.to_string().contains("timer_store"), "{err}");

    // App::open and the builder's sqlite() keep them in the events file.
    let app = App::open(dir.path().join("events.db")).await.unwrap();
    app.timers()
        .schedule::<Meter, _>("kept", "m-1", T0, tick("x"))
        .await
        .unwrap();
    let timers = SqliteTimerStore::open(dir.path().join("events.db")).unwrap();
    assert_eq!(timers.pending(None, 10).await.unwrap().len(), 1);
}

#[tokio::test]
async fn schedule_refuses_bad_names_and_oversized_commands_naming_the_timer() {
    let app = App::in_memory();
    let err = app
        .timers()
        .schedule::<Meter, _>("", "m-1", T0, tick("x"))
        .await
        .unwrap_err();
    assert!(matches!(err, TimerError::InvalidName { .. }), "{err}");
    let err = app
        .timers()
        .schedule::<Meter, _>("no-target", "", T0, tick("x"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no-target"), "{err}");
    let big = tick(&"x".repeat(factum::timer::MAX_PAYLOAD));
    let err = app
        .timers()
        .schedule::<Meter, _>("big", "m-1", T0, big)
        .await
        .unwrap_err();
    match &err {
        TimerError::TooLarge {
            name, command_type, ..
        } => assert_eq!((name.as_str(), command_type.as_str()), ("big", "Tick")),
        other => panic!("expected TooLarge, got {other}"),
    }
    assert!(app.timers().pending().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_timer_scheduled_earlier_than_the_next_due_one_wakes_the_runner() {
    let clock = ManualClock::new(T0);
    let app = App::builder().clock(clock.clone()).build();
    let timers = app.timers();
    timers
        .schedule::<Meter, _>("late", "m-1", T0 + Duration::from_secs(3600), tick("late"))
        .await
        .unwrap();
    // Let the runner settle to sleep toward the late timer.
    timers.wait_idle().await.unwrap();
    // Already due when scheduled: no clock move follows, the schedule must wake the runner.
    timers
        .schedule::<Meter, _>("now", "m-1", T0, tick("now"))
        .await
        .unwrap();
    timers.wait_idle().await.unwrap();
    assert_eq!(app.entity::<Meter>("m-1").state().await.unwrap().labels, ["now"]);
}
