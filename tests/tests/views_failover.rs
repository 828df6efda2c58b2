//! Several processes, one runner: with PostgreSQL, two processes start the
//! same view; exactly one runs it (an advisory lock); when that one is
//! SIGKILLed mid catch-up, the other takes over from the stored checkpoint and
//! the view ends equal to a fresh fold (no loss, no duplicate).
//!
//! "Mid catch-up" is made so, not hoped for: the runner pauses at the fault
//! point `view.commit.after` of its 25th commit, holding the lease, and is
//! killed only once it announced the pause; the checkpoint then is exactly 25
//! batches in.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use factum::App;
use factum::fault::{Action, ENV, announcement};
use factum::postgres::PostgresStore;
use factum::postgres::PostgresViewStore;
use factum_tests::views::{CHILD_STREAMS, Tally, fold_log, write_log_in_chunks};

const EVENTS: u64 = 100_000;
/// Events per view transaction in the children.
const BATCH: u64 = 200;
/// The commit of A's at which it pauses, holding the lease, until it is killed.
const PAUSE_AT: u64 = 25;

struct Node {
    child: Child,
    lines: mpsc::Receiver<String>,
    errors: mpsc::Receiver<String>,
}

/// The lines of `from`, on a channel, read by a thread of their own.
fn lines_of(from: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(from).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    lines
}

/// Waits up to `within` for the line `want` on `lines`; false if it did not come.
fn says(lines: &mpsc::Receiver<String>, want: &str, within: Duration) -> bool {
    let deadline = std::time::Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if line == want => return true,
            Ok(_) => continue,
            Err(_) => return false,
        }
    }
}

impl Node {
    /// Starts a view child with the fault rule `fault` (`""`: none).
    fn start(url: &str, schema: &str, fault: &str) -> Node {
        let mut child = Command::new(env!("CARGO_BIN_EXE_view_child"))
            .args(["postgres", url, schema, &EVENTS.to_string()])
            .env("FACTUM_CHILD_BATCH", BATCH.to_string())
            .env(ENV, fault)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn view_child");
        let lines = lines_of(child.stdout.take().expect("stdout"));
        let errors = lines_of(child.stderr.take().expect("stderr"));
        Node { child, lines, errors }
    }

    /// Waits up to `within` for the line `want` on stdout; false if it did not come.
    fn says(&self, want: &str, within: Duration) -> bool {
        says(&self.lines, want, within)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg_attr(
    not(factum_pg),
    ignore = "needs PostgreSQL: set FACTUM_PG_URL (see tests/README.md)"
)]
#[test]
fn only_one_process_runs_a_view_and_another_takes_over_when_it_dies() {
    let Some(url) = factum_tests::pg::url("only_one_process_runs_a_view") else {
        return;
    };
    let schema = factum_tests::pg::fresh_schema("failover");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let log = rt
        .block_on(PostgresStore::connect(url.clone()).schema(schema.clone()).open())
        .expect("log");
    rt.block_on(write_log_in_chunks(&log, EVENTS, CHILD_STREAMS));

    // Given node A running the view, held mid catch-up at a commit ...
    let paused = format!("view.commit.after=pause@{PAUSE_AT}");
    let mut a = Node::start(&url, &schema, &paused);
    assert!(a.says("ready", Duration::from_secs(60)));
    assert!(a.says("runner", Duration::from_secs(10)), "A became the runner");
    let announced = announcement("view.commit.after", PAUSE_AT, Action::Pause);
    assert!(
        says(&a.errors, &announced, Duration::from_secs(60)),
        "A paused at its commit {PAUSE_AT} (`{announced}` on its stderr)"
    );
    // ... when node B starts the same view, B only follows.
    let b = Node::start(&url, &schema, "");
    assert!(b.says("ready", Duration::from_secs(60)));
    let b_ran = b.says("runner", Duration::from_secs(2));
    let a_lines: Vec<String> = a.lines.try_iter().collect();
    assert!(
        !b_ran,
        "B ran the view while A held it (A said {a_lines:?} since)"
    );

    // When A dies mid catch-up ...
    let checkpoint_at_kill = rt.block_on(checkpoint(&url, &schema));
    assert_eq!(
        checkpoint_at_kill,
        PAUSE_AT * BATCH,
        "A is held right after its commit {PAUSE_AT}"
    );
    assert!(
        0 < checkpoint_at_kill && checkpoint_at_kill < EVENTS,
        "A is killed mid catch-up ({checkpoint_at_kill})"
    );
    a.child.kill().expect("SIGKILL A");
    a.child.wait().expect("reap A");
    eprintln!("killed A at checkpoint {checkpoint_at_kill}");

    // ... then B takes over within seconds and finishes.
    assert!(b.says("runner", Duration::from_secs(10)), "B took over");
    assert!(
        b.says("done", Duration::from_secs(120)),
        "B finished the catch-up"
    );

    let rows = rt.block_on(rows(&url, &schema));
    let expected = rt.block_on(fold_log(&log));
    assert_eq!(rows.len(), expected.len());
    for (key, row) in rows {
        assert_eq!(
            (row.count, row.sum),
            expected[&key],
            "row {key}: no loss, no duplicate"
        );
    }
}

async fn reader(url: &str, schema: &str) -> App {
    let store = PostgresViewStore::connect_in_schema(url, schema)
        .await
        .expect("connect");
    let app = App::builder().view_store(store).build();
    app.start_view::<Tally>().await.expect("start");
    app
}

async fn checkpoint(url: &str, schema: &str) -> u64 {
    let store = PostgresViewStore::connect_in_schema(url, schema)
        .await
        .expect("connect");
    use factum::view::ViewStore;
    let tables = store.tables("test_tally").await.expect("tables");
    tables.iter().map(|t| t.position).max().unwrap_or(0)
}

async fn rows(url: &str, schema: &str) -> Vec<(String, Tally)> {
    let app = reader(url, schema).await;
    let view = app.view::<Tally>();
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = view.list(cursor.as_deref(), 1000).await.expect("list");
        out.extend(page.rows);
        match page.next {
            Some(next) => cursor = Some(next),
            None => return out,
        }
    }
}
