//! `App::shutdown`: every runner stops and is waited for, what each had
//! handled stays committed, and the SQLite file is closed when it returns.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use factum::prelude::*;
use factum::view::ViewError;
use factum_examples::bank::{Account, AccountSummary, Deposit, Deposited, Open};

/// Counts the deposits it sees, so the test knows the consumer ran.
struct Count(Arc<AtomicU64>);

#[consumer(name = "shutdown_deposit_count")]
impl Count {
    #[on]
    async fn deposited(&self, _e: &Deposited) -> Handled {
        self.0.fetch_add(1, Ordering::SeqCst);
        Handled::Done
    }
}

/// The WAL file SQLite keeps beside `db` while any connection has it open,
/// and deletes when the last one closes.
fn wal(db: &Path) -> std::path::PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push("-wal");
    name.into()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_every_runner_keeps_their_work_and_closes_the_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("shutdown.db");
    let seen = Arc::new(AtomicU64::new(0));
    let app = App::open(&db).await.expect("open");
    app.start_view::<AccountSummary>().await.expect("view");
    let summary = app.view::<AccountSummary>();
    let consumer = app
        .consumers()
        .start(Count(seen.clone()))
        .await
        .expect("consumer");
    let account = app.entity::<Account>("acc-1");
    account
        .send(Open { owner: "ada".into() })
        .await
        .expect("open account");
    let mut last = 0;
    for _ in 0..20 {
        last = account
            .send(Deposit { amount: 5 })
            .await
            .expect("deposit")
            .position;
    }
    summary.wait_for(last).await.expect("view caught up");
    consumer.wait_for(last).await.expect("consumer caught up");
    assert!(
        wal(&db).exists(),
        "an open SQLite file in WAL mode has its -wal file"
    );

    // Only the app itself is left: when `shutdown` returns, every runner has
    // exited and let go of the store, so nothing holds the file.
    drop((summary, consumer, account));
    app.shutdown().await;
    assert!(
        !wal(&db).exists(),
        "after shutdown every connection to the file is closed (SQLite removed its WAL)"
    );
    assert_eq!(seen.load(Ordering::SeqCst), 20);

    // Reopened: the view and the consumer start from their committed checkpoints,
    // so neither folds nor handles anything twice.
    let app = App::open(&db).await.expect("reopen");
    app.start_view::<AccountSummary>().await.expect("view again");
    let summary = app.view::<AccountSummary>();
    let consumer = app
        .consumers()
        .start(Count(seen.clone()))
        .await
        .expect("consumer again");
    let next = app
        .entity::<Account>("acc-1")
        .send(Deposit { amount: 1 })
        .await
        .expect("deposit after reopen")
        .position;
    summary.wait_for(next).await.expect("view");
    consumer.wait_for(next).await.expect("consumer");
    assert_eq!(
        summary
            .get("acc-1")
            .await
            .expect("row")
            .map(|r| (r.balance, r.deposits)),
        Some((101, 21))
    );
    assert_eq!(
        seen.load(Ordering::SeqCst),
        21,
        "each deposit handled once across the restart"
    );

    // Shut down through a clone: the runners stop, so waiting past the head
    // fails at once instead of waiting (the bound only turns a hang into a
    // failure); the other clone still answers queries from committed rows.
    app.clone().shutdown().await;
    let bound = std::time::Duration::from_secs(60);
    let view_wait = tokio::time::timeout(bound, summary.wait_for(next + 1)).await;
    assert!(
        matches!(view_wait, Ok(Err(ViewError::Stopped { .. }))),
        "the view's runner must have stopped: {view_wait:?}"
    );
    let consumer_wait = tokio::time::timeout(bound, consumer.wait_for(next + 1)).await;
    assert!(
        matches!(consumer_wait, Ok(Err(factum::ConsumerError::Stopped { .. }))),
        "the consumer's runner must have stopped: {consumer_wait:?}"
    );
    assert_eq!(
        summary.get("acc-1").await.expect("row").map(|r| r.balance),
        Some(101)
    );
}
