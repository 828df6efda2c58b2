//! Damaged storage, as an outside test found it: a record whose bytes were
//! zeroed on disk is reported by its checksum (stream, version, position),
//! never read back as a silently zero-filled event; a corrupt record halts
//! only the views and consumers that handle its type; a foreign SQLite file
//! is refused before a byte of it changes.
#![allow(missing_docs)] // a test crate: its `pub` items are fixtures, not an API

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use factum::prelude::*;
use factum::sqlite::SqliteStore;
use factum::store::{EventStore, StoreError};
use factum::view::ViewError;
use factum_examples::bank::{Account, Deposit, Deposited, Open, Withdraw, Withdrawn};
use serde::{Deserialize, Serialize};

/// Deposits per account; folds no withdrawal.
#[derive(Default, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DepositTotals {
    cents: u64,
}

#[view(name = "corrupt_deposit_totals")]
impl DepositTotals {
    #[on]
    fn deposited(&mut self, e: &Deposited) {
        self.cents += e.amount;
    }
}

/// Withdrawals per account.
#[derive(Default, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WithdrawalTotals {
    cents: u64,
}

#[view(name = "corrupt_withdrawal_totals")]
impl WithdrawalTotals {
    #[on]
    fn withdrawn(&mut self, e: &Withdrawn) {
        self.cents += e.amount;
    }
}

/// Adds up deposits, as an outside ledger would.
struct DepositLedger(Arc<AtomicU64>);

#[consumer(name = "corrupt_deposit_ledger")]
impl DepositLedger {
    #[on]
    async fn deposited(&self, e: &Deposited, _ctx: &mut ConsumerContext) -> Handled {
        self.0.fetch_add(e.amount, Ordering::SeqCst);
        Handled::Done
    }
}

/// Overwrites, in the file itself, every occurrence of `marker` with zero
/// bytes of the same length: the damage of a torn or zero-filled page.
fn zero_bytes_in_file(path: &Path, marker: &[u8]) -> usize {
    let mut bytes = std::fs::read(path).expect("read the database file");
    let mut hits = 0;
    let mut at = 0;
    while let Some(i) = bytes[at..].windows(marker.len()).position(|w| w == marker) {
        let start = at + i;
        bytes[start..start + marker.len()].fill(0);
        hits += 1;
        at = start + marker.len();
    }
    std::fs::write(path, bytes).expect("write the database file");
    hits
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_zeroed_on_disk_is_corrupt_naming_stream_version_and_position() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bank.db");
    let withdrawn_at = {
        let app = App::open(&path).await.unwrap();
        let account = app.entity::<Account>("ada");
        account.send(Open { owner: "ada".into() }).await.unwrap();
        account.send(Deposit { amount: 900_000_000 }).await.unwrap();
        let w = account.send(Withdraw { amount: 424_242_424 }).await.unwrap();
        account.send(Deposit { amount: 5 }).await.unwrap();
        w.position
    };
    // The WAL copied into the main file, so the record's bytes are there.
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
        let (busy, _, _): (i64, i64, i64) = conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .unwrap();
        assert_eq!(busy, 0, "the checkpoint completed");
    }
    let hits = zero_bytes_in_file(&path, b"424242424");
    assert_eq!(hits, 1, "the withdrawal's amount is in the file once");

    let store = SqliteStore::open(&path).unwrap();
    let err = store.read_all(1, 100).await.unwrap_err();
    match &err {
        StoreError::Corrupt {
            stream_type,
            stream_id,
            version,
            position,
            event_type,
            reason,
        } => {
            assert_eq!(
                (stream_type.as_str(), stream_id.as_str(), *version, *position),
                ("account", "ada", 3, withdrawn_at)
            );
            assert_eq!(event_type.as_deref(), Some("account.withdrawn"));
            assert!(reason.contains("checksum"), "{reason}");
        }
        other => panic!("expected Corrupt, got {other}"),
    }
    let message = err.to_string();
    assert!(
        message.contains("account/ada version 3") && message.contains(&format!("position {withdrawn_at}")),
        "{message}"
    );
    // The records before it read as they were.
    let before = store.read_all(1, (withdrawn_at - 1) as usize).await.unwrap();
    assert_eq!(before.len() as u64, withdrawn_at - 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_record_halts_only_the_views_and_consumers_that_handle_its_type() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bank.db");
    let app = App::open(&path).await.unwrap();
    let account = app.entity::<Account>("ada");
    account.send(Open { owner: "ada".into() }).await.unwrap();
    account.send(Deposit { amount: 100 }).await.unwrap();
    let withdrawn = account.send(Withdraw { amount: 40 }).await.unwrap();
    let last = account.send(Deposit { amount: 2 }).await.unwrap();

    // The withdrawal's record edited behind the store's back.
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
    let changed = conn
        .execute(
            "UPDATE events SET recorded_at = recorded_at + 1 WHERE position = ?1",
            [withdrawn.position as i64],
        )
        .unwrap();
    assert_eq!(changed, 1);
    drop(conn);

    app.start_view::<DepositTotals>().await.unwrap();
    app.start_view::<WithdrawalTotals>().await.unwrap();
    let ledger = Arc::new(AtomicU64::new(0));
    let consumer = app
        .consumers()
        .start(DepositLedger(ledger.clone()))
        .await
        .unwrap();

    // A view that folds no withdrawal steps over the record, to the head.
    let deposits = app.view::<DepositTotals>();
    deposits.wait_for(last.position).await.unwrap();
    assert_eq!(
        deposits.get("ada").await.unwrap(),
        Some(DepositTotals { cents: 102 })
    );
    assert_eq!(deposits.checkpoint(), last.position);
    // So does a consumer that handles only deposits.
    consumer.wait_for(last.position).await.unwrap();
    assert_eq!(ledger.load(Ordering::SeqCst), 102);
    assert_eq!(consumer.checkpoint(), last.position);

    // The view that folds withdrawals fails on it, naming it, and stays before it.
    let withdrawals = app.view::<WithdrawalTotals>();
    let err = withdrawals.wait_for(last.position).await.unwrap_err();
    let ViewError::Failing {
        error, checkpoint, ..
    } = &err
    else {
        panic!("expected Failing, got {err:?}");
    };
    assert_eq!(*checkpoint, withdrawn.position - 1, "stuck before the record");
    for part in [
        "account/ada version 3",
        &format!("position {}", withdrawn.position),
        "checksum",
    ] {
        assert!(error.contains(part), "`{part}` in: {error}");
    }
}

#[test]
fn a_foreign_file_with_an_events_table_is_refused_before_anything_changes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("theirs.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE events (id INTEGER PRIMARY KEY, what TEXT NOT NULL);
             INSERT INTO events (what) VALUES ('their own row');",
        )
        .unwrap();
    }
    let before = std::fs::read(&path).unwrap();
    let journal_mode_offset = 18; // the file header's read/write version bytes: 2 once in WAL mode
    assert_eq!(
        before[journal_mode_offset], 1,
        "a rollback-journal file to begin with"
    );

    let err = SqliteStore::open(&path).err().expect("the file is refused");
    let message = err.to_string();
    assert!(message.contains("not a factum event log"), "{message}");
    assert!(message.contains("theirs.db"), "{message}");

    assert_eq!(std::fs::read(&path).unwrap(), before, "not one byte changed");
    for suffix in ["-wal", "-shm", "-journal"] {
        let mut side = path.clone().into_os_string();
        side.push(suffix);
        assert!(!Path::new(&side).exists(), "no {suffix} file was created");
    }
}
