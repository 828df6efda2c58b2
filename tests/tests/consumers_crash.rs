//! A consumer killed mid-batch resumes from its checkpoint, and the commands
//! of the batch it handled again are de-duplicated: the fraud check freezes
//! each account once although it handled some withdrawals twice. The kills
//! land at the consumer's commit fault points, and each test asserts that
//! they did and that the redelivery really happened.

use std::process::Command;

use factum::App;
use factum::consumer::ConsumerStore;
use factum::sqlite::SqliteConsumerStore;
use factum_examples::bank::{Account, AccountEvent};
use factum_tests::child::run_with_fault;

const ACCOUNTS: usize = 30;

fn child(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_consumer_child"));
    command.args(args);
    command
}

/// Freeze events per account, read from the file.
async fn freezes(path: &std::path::Path) -> Vec<usize> {
    let app = App::open(path).await.expect("open");
    let mut out = Vec::new();
    for i in 0..ACCOUNTS {
        let history = app
            .entity::<Account>(format!("acc-{i:03}"))
            .history()
            .await
            .expect("history");
        out.push(
            history
                .iter()
                .filter(|r| matches!(r.event, AccountEvent::Frozen(_)))
                .count(),
        );
    }
    out
}

/// How many withdrawals the log holds at or before `position`.
async fn withdrawals_through(path: &std::path::Path, position: u64) -> usize {
    let app = App::open(path).await.expect("open");
    let events = app.store().read_all(1, usize::MAX).await.expect("read the log");
    events
        .iter()
        .filter(|e| e.position <= position && e.event_type == "account.withdrawn")
        .count()
}

#[tokio::test]
async fn a_consumer_killed_mid_batch_resumes_from_its_checkpoint_and_freezes_each_account_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("bank.db");
    let file = path.to_str().expect("utf-8 path");
    let seeded = run_with_fault(&mut child(&["seed", file, &ACCOUNTS.to_string()]), "");
    assert!(seeded.status.success(), "seeding failed: {:?}", seeded.stderr);

    // Killed after the second batch's handlers ran (its freezes committed),
    // before its checkpoint moved: three times, each a batch further on.
    let mut checkpoints = Vec::new();
    for kill in 0..3 {
        let ended = run_with_fault(&mut child(&["run", file]), "consumer.commit.before=abort@2");
        ended.assert_aborted_at("consumer.commit.before", 2);
        let store = SqliteConsumerStore::open(&path).expect("consumer store");
        let checkpoint = store.checkpoint("fraud_check").await.expect("checkpoint");
        let frozen: usize = freezes(&path).await.iter().sum();
        let covered = withdrawals_through(&path, checkpoint).await;
        assert!(
            frozen > covered,
            "kill {kill}: the killed batch's freezes should be committed beyond the checkpoint \
             ({frozen} freezes, checkpoint {checkpoint} covers {covered}): no redelivery to test"
        );
        checkpoints.push(checkpoint);
    }
    assert!(
        checkpoints.windows(2).all(|w| w[0] < w[1]),
        "each run moved the checkpoint on: {checkpoints:?}"
    );

    // Killed just after a checkpoint committed: nothing of that batch runs again.
    let ended = run_with_fault(&mut child(&["run", file]), "consumer.commit.after=abort@1");
    ended.assert_aborted_at("consumer.commit.after", 1);

    let done = run_with_fault(&mut child(&["run", file]), "");
    assert!(done.status.success(), "the last run failed: {:?}", done.stderr);
    let seeded_head = (ACCOUNTS * 3) as u64;
    let idle: Option<u64> = done
        .stdout
        .iter()
        .find_map(|l| l.strip_prefix("idle ").and_then(|n| n.parse().ok()));
    assert!(
        idle.is_some_and(|c| c >= seeded_head),
        "the consumer caught up with the seeded log: {:?}",
        done.stdout
    );
    assert_eq!(
        freezes(&path).await,
        vec![1; ACCOUNTS],
        "one freeze per account, none doubled"
    );
    let letters = SqliteConsumerStore::open(&path)
        .expect("consumer store")
        .letters("fraud_check", None, None, 10)
        .await
        .expect("letters");
    assert!(letters.is_empty(), "nothing parked: {letters:?}");
}
