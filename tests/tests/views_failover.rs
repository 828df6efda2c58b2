//! Several processes, one runner: with PostgreSQL, two processes start the
//! same view; exactly one runs it (an advisory lock); when that one is
//! SIGKILLed mid catch-up, the other takes over from the stored checkpoint and
//! the view ends equal to a fresh fold (no loss, no duplicate).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use factum::App;
use factum::postgres::PostgresStore;
use factum::postgres::PostgresViewStore;
use factum_tests::views::{CHILD_STREAMS, Tally, fold_log, write_log_in_chunks};

const EVENTS: u64 = 100_000;

struct Node {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Node {
    fn start(url: &str, schema: &str) -> Node {
        let mut child = Command::new(env!("CARGO_BIN_EXE_view_child"))
            .args(["postgres", url, schema, &EVENTS.to_string()])
            .env("FACTUM_CHILD_BATCH", "40")
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn view_child");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Node { child, lines }
    }

    /// Waits up to `within` for the line `want`; false if it did not come.
    fn says(&self, want: &str, within: Duration) -> bool {
        let deadline = std::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line == want => return true,
                Ok(_) => continue,
                Err(_) => return false,
            }
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

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

    // Given node A running the view ...
    let mut a = Node::start(&url, &schema);
    assert!(a.says("ready", Duration::from_secs(60)));
    assert!(a.says("runner", Duration::from_secs(10)), "A became the runner");
    // ... when node B starts the same view, B only follows.
    let b = Node::start(&url, &schema);
    assert!(b.says("ready", Duration::from_secs(60)));
    let b_ran = b.says("runner", Duration::from_secs(2));
    let a_lines: Vec<String> = a.lines.try_iter().collect();
    assert!(
        !b_ran,
        "B ran the view while A held it (A said {a_lines:?} since)"
    );

    // When A dies mid catch-up ...
    let checkpoint_at_kill = rt.block_on(checkpoint(&url, &schema));
    assert!(
        checkpoint_at_kill < EVENTS,
        "A finished before it could be killed ({checkpoint_at_kill}); make the catch-up slower"
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
