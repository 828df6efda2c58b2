//! Exactly once over the log after any crash: a child process catching up a
//! view over a durable log of 100,000 events (SQLite file, PostgreSQL schema)
//! is SIGKILLed at random moments, restarted, and at the end the view equals a
//! fresh fold of the whole log (every row's count and sum: a skipped event or
//! one applied twice would show).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use factum::App;
use factum::store::EventStore;
use factum::view::ViewStore;
use factum_tests::views::{CHILD_STREAMS, Tally, fold_log, write_log_in_chunks};

const EVENTS: u64 = 100_000;
const KILLS: usize = 5;

/// A small xorshift seeded from the clock: the kill moments differ per run,
/// and the seed is printed so a failing run can be told apart.
struct Rng(u64);

impl Rng {
    fn new() -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0x9E37_79B9, |d| d.as_nanos() as u64)
            | 1;
        eprintln!("kill schedule seed: {seed}");
        Rng(seed)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn spawn(args: &[String]) -> (Child, std::io::Lines<BufReader<std::process::ChildStdout>>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_view_child"))
        .args(args)
        .env("FACTUM_CHILD_BATCH", "200")
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn view_child");
    let lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    (child, lines)
}

fn wait_for_line(lines: &mut impl Iterator<Item = std::io::Result<String>>, want: &str) {
    for line in lines.by_ref() {
        if line.expect("child output") == want {
            return;
        }
    }
    panic!("view_child ended before printing `{want}`");
}

/// The checkpoint and rows of `test_tally` in `store`, read through an app with an empty log.
async fn read_view(store: Arc<dyn ViewStore>) -> (u64, Vec<(String, Tally)>) {
    let app = App::builder().shared_view_store(store).build();
    app.start_view::<Tally>().await.expect("start");
    let tally = app.view::<Tally>();
    let mut rows = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = tally.list(cursor.as_deref(), 500).await.expect("list");
        rows.extend(page.rows);
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    (tally.checkpoint(), rows)
}

fn crash_and_resume(
    rt: &tokio::runtime::Runtime,
    log: Arc<dyn EventStore>,
    args: Vec<String>,
    open: impl Fn() -> Arc<dyn ViewStore>,
) {
    rt.block_on(write_log_in_chunks(&*log, EVENTS, CHILD_STREAMS));
    let mut rng = Rng::new();
    let mut seen = Vec::new();
    for _ in 0..KILLS {
        let (mut child, mut lines) = spawn(&args);
        wait_for_line(&mut lines, "ready");
        std::thread::sleep(Duration::from_millis(20 + rng.below(600)));
        child.kill().expect("SIGKILL the child");
        child.wait().expect("reap the child");
        let (checkpoint, _) = rt.block_on(read_view(open()));
        seen.push(checkpoint);
    }
    eprintln!("checkpoints at the kills: {seen:?}");
    assert!(
        seen.iter().any(|&c| c > 0 && c < EVENTS),
        "no kill landed during the catch-up: {seen:?}"
    );
    let started = Instant::now();
    let (mut child, mut lines) = spawn(&args);
    wait_for_line(&mut lines, "done");
    assert!(child.wait().expect("reap").success());
    eprintln!("final catch-up took {:?}", started.elapsed());

    let (checkpoint, rows) = rt.block_on(read_view(open()));
    assert_eq!(checkpoint, EVENTS);
    let expected = rt.block_on(fold_log(&*log));
    assert_eq!(rows.len(), expected.len(), "one row per stream");
    for (key, row) in rows {
        let (count, sum) = expected[&key];
        assert_eq!(
            (row.count, row.sum),
            (count, sum),
            "row {key}: count and sum of a fresh fold"
        );
    }
}

#[test]
fn a_sqlite_view_killed_during_catch_up_ends_equal_to_a_fresh_fold() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("views.db");
    let args = vec![
        "sqlite".to_owned(),
        path.display().to_string(),
        EVENTS.to_string(),
    ];
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let log = {
        let _guard = rt.enter();
        factum::sqlite::SqliteStore::options()
            .synchronous(factum::sqlite::Synchronous::Off)
            .open(&path)
            .expect("log")
    };
    crash_and_resume(&rt, Arc::new(log), args, || {
        Arc::new(factum::sqlite::SqliteViewStore::open(&path).expect("open"))
    });
}

#[test]
fn a_postgres_view_killed_during_catch_up_ends_equal_to_a_fresh_fold() {
    let Some(url) = factum_tests::pg::url("a_postgres_view_killed_during_catch_up") else {
        return;
    };
    let schema = factum_tests::pg::fresh_schema("crash");
    let args = vec![
        "postgres".to_owned(),
        url.clone(),
        schema.clone(),
        EVENTS.to_string(),
    ];
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let log = rt
        .block_on(
            factum::postgres::PostgresStore::connect(url.clone())
                .schema(schema.clone())
                .open(),
        )
        .expect("log");
    crash_and_resume(&rt, Arc::new(log), args, || {
        let store = rt
            .block_on(factum::postgres::PostgresViewStore::connect_in_schema(
                &url, &schema,
            ))
            .expect("connect");
        Arc::new(store)
    });
}
