//! Crash safety of workflows on SQLite: a child process runs eight transfers
//! and is SIGKILLed while a step is in flight — at the fault point
//! `workflow.step.after`, where the step's wallet call has committed and its
//! result is not recorded — twice, then runs to the end. Every transfer ends
//! with each step recorded once, and each wallet's stream holds exactly one
//! debit and one credit per transfer: the re-run steps' calls carried the
//! ids of the first runs and were answered from the store.

use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use factum::fault::{Action, ENV, announcement};
use factum::prelude::*;
use factum::workflow::Status;
use factum_examples::transfer::{Transfer, Wallet, WalletEvent};

const TRANSFERS: usize = 8;
const POINT: &str = "workflow.step.after";
/// SIGKILL.
const SIGKILL: i32 = 9;

/// Runs the child until it pauses at the `hit`-th hit of the point, then
/// SIGKILLs it there; asserts it died of the kill.
fn kill_at(db: &std::path::Path, hit: u64) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_workflow_child"))
        .arg(db)
        .arg(TRANSFERS.to_string())
        .env(ENV, format!("{POINT}=pause@{hit}"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the child");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let paused = announcement(POINT, hit, Action::Pause);
    let mut seen = Vec::new();
    loop {
        match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(line) if line == paused => break,
            Ok(line) => seen.push(line),
            Err(e) => {
                let _ = child.kill();
                panic!("the child never paused at {POINT} hit {hit} ({e}); stderr: {seen:?}");
            }
        }
    }
    child.kill().expect("SIGKILL the child");
    let status = child.wait().expect("wait for the child");
    assert_eq!(
        status.signal(),
        Some(SIGKILL),
        "the child died of the kill: {status}"
    );
}

#[test]
fn transfers_killed_mid_step_resume_and_move_the_money_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("transfers.db");
    kill_at(&db, 3);
    kill_at(&db, 2);
    let out = Command::new(env!("CARGO_BIN_EXE_workflow_child"))
        .arg(&db)
        .arg(TRANSFERS.to_string())
        .output()
        .expect("run the child to the end");
    assert!(
        out.status.success(),
        "the last run ends cleanly: {} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let ended = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with("ended "))
        .count();
    assert_eq!(ended, TRANSFERS);

    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    runtime.block_on(async {
        let app = App::open(&db).await.expect("open the file");
        for i in 0..TRANSFERS {
            let transfer = app.workflow::<Transfer>(format!("kill-{i}"));
            assert_eq!(transfer.status().await.unwrap(), Status::Ended, "kill-{i}");
            assert_eq!(
                transfer.trail().await.unwrap(),
                ["withdraw", "deposit"],
                "kill-{i}: each step recorded once"
            );
        }
        let movements = |wallet: &'static str| {
            let app = app.clone();
            async move {
                let mut per_reference = std::collections::BTreeMap::<String, Vec<i64>>::new();
                for r in app.entity::<Wallet>(wallet).history().await.unwrap() {
                    match r.event {
                        WalletEvent::Credited(e) => per_reference
                            .entry(e.reference)
                            .or_default()
                            .push(e.amount as i64),
                        WalletEvent::Debited(e) => per_reference
                            .entry(e.reference)
                            .or_default()
                            .push(-(e.amount as i64)),
                        WalletEvent::Frozen(_) => {}
                    }
                }
                per_reference
            }
        };
        let ada = movements("ada").await;
        let bob = movements("bob").await;
        for i in 0..TRANSFERS {
            let reference = format!("transfer kill-{i}");
            let amount = 100 + i as i64;
            assert_eq!(
                ada.get(&reference),
                Some(&vec![-amount]),
                "ada: one withdrawal for kill-{i}"
            );
            assert_eq!(
                bob.get(&reference),
                Some(&vec![amount]),
                "bob: one deposit for kill-{i}"
            );
        }
        assert_eq!(
            ada.len(),
            TRANSFERS + 1,
            "the opening balance and one debit per transfer: {ada:?}"
        );
        assert_eq!(ada.get("opening balance"), Some(&vec![1_000_000]), "funded once");
    });
}
