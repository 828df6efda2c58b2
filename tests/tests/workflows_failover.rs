//! One workflow runner across nodes on PostgreSQL, and failover: two apps on
//! one schema; only one runs the workflows (the advisory lock of the
//! workflow runner, apart from the timers'); transfers started on both are
//! held by the runner; the runner's node goes away; the other node takes the
//! lease over and finishes every transfer, each wallet call once.
//!
//! And the hard way: the owner node is a child process, SIGKILLed at the
//! fault point `workflow.step.after` (a step's wallet call committed, its
//! result not recorded); a node in this process, following until then, takes
//! the lease over when PostgreSQL drops the dead node's connection (and with it
//! its advisory lock), re-runs the step in flight and finishes every
//! transfer: one debit and one credit each.

use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use factum::fault::{Action, ENV, announcement};

use factum::PostgresStore;
use factum::postgres::PostgresTimerStore;
use factum::prelude::*;
use factum::workflow::{Status, StatusKind};
use factum_examples::transfer::{Accept, Credit, LIMIT, StartTransfer, Transfer, Wallet, WalletEvent};

const TRANSFERS: u64 = 10;

async fn pg_node(url: &str, schema: &str) -> App {
    let store = PostgresStore::connect(url.to_owned())
        .schema(schema.to_owned())
        .pool_size(4)
        .poll_interval(Duration::from_millis(100))
        .open()
        .await
        .expect("connect the log");
    let timers = PostgresTimerStore::connect_in_schema(url, schema)
        .await
        .expect("connect the timers");
    App::builder().store(store).timer_store(timers).build()
}

async fn drop_schema(url: &str, schema: &str) {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    client
        .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .await
        .expect("drop the test schema");
}

/// Waits until exactly one of the nodes runs the workflows.
async fn one_runner(nodes: &[&App]) -> usize {
    for _ in 0..200 {
        let runners: Vec<usize> = (0..nodes.len())
            .filter(|&i| nodes[i].workflows().is_runner())
            .collect();
        if let [only] = runners[..] {
            return only;
        }
        assert!(runners.len() <= 1, "two workflow runners at once");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no node became the workflow runner");
}

#[cfg_attr(
    not(factum_pg),
    ignore = "needs PostgreSQL: set FACTUM_PG_URL (see tests/README.md)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_second_node_takes_over_the_workflows_of_a_node_that_went_away() {
    let Some(url) = factum_tests::pg::url("workflows_failover") else {
        return;
    };
    let schema = factum_tests::pg::fresh_schema("workflow_nodes");
    let one = pg_node(&url, &schema).await;
    let two = pg_node(&url, &schema).await;
    one.entity::<Wallet>("ada")
        .send(Credit {
            amount: 100 * LIMIT,
            reference: "opening balance".into(),
        })
        .await
        .unwrap();
    // Large transfers, half started on each node: each is withdrawn and held.
    for i in 0..TRANSFERS {
        let node = if i % 2 == 0 { &one } else { &two };
        node.workflow::<Transfer>(format!("big-{i}"))
            .start(StartTransfer {
                from: "ada".into(),
                to: "bob".into(),
                amount: LIMIT + 1 + i,
            })
            .await
            .unwrap();
    }
    for i in 0..TRANSFERS {
        let held = one
            .workflow::<Transfer>(format!("big-{i}"))
            .wait_settled()
            .await
            .unwrap();
        assert!(matches!(held, Status::Paused { .. }), "big-{i}: {held:?}");
    }
    let runner = one_runner(&[&one, &two]).await;
    assert_eq!(
        two.workflows()
            .list(Some(StatusKind::Paused))
            .await
            .unwrap()
            .len() as u64,
        TRANSFERS,
        "the follower's index sees every held transfer"
    );

    // The runner's node goes away; the survivor accepts every transfer and must run the deposits.
    let (survivor, gone) = if runner == 0 { (two, one) } else { (one, two) };
    drop(gone);
    for i in 0..TRANSFERS {
        survivor
            .workflow::<Transfer>(format!("big-{i}"))
            .signal(Accept)
            .await
            .unwrap();
    }
    for i in 0..TRANSFERS {
        let t = survivor.workflow::<Transfer>(format!("big-{i}"));
        let ended = tokio::time::timeout(Duration::from_secs(60), t.wait_for_end())
            .await
            .expect("the survivor finishes the transfer")
            .unwrap();
        assert_eq!(ended, Status::Ended, "big-{i}");
        assert_eq!(
            t.trail().await.unwrap(),
            ["withdraw", "paused", "signal Accept", "deposit"]
        );
    }
    assert!(survivor.workflows().is_runner());
    let bob = survivor.entity::<Wallet>("bob").history().await.unwrap();
    let mut credits: Vec<u64> = bob
        .iter()
        .filter_map(|r| match &r.event {
            WalletEvent::Credited(e) => Some(e.amount),
            _ => None,
        })
        .collect();
    credits.sort_unstable();
    let expected: Vec<u64> = (0..TRANSFERS).map(|i| LIMIT + 1 + i).collect();
    assert_eq!(credits, expected, "one deposit per transfer");
    let debits = survivor
        .entity::<Wallet>("ada")
        .history()
        .await
        .unwrap()
        .iter()
        .filter(|r| matches!(r.event, WalletEvent::Debited(_)))
        .count() as u64;
    assert_eq!(debits, TRANSFERS, "one withdrawal per transfer");
    drop(survivor);
    drop_schema(&url, &schema).await;
}

/// SIGKILL.
const SIGKILL: i32 = 9;
const KILLED_TRANSFERS: usize = 6;
const POINT: &str = "workflow.step.after";

/// Starts the child node on the schema and waits until it pauses at the
/// `hit`-th hit of the fault point: it holds the runner's lease, mid-step.
fn child_paused_mid_step(url: &str, schema: &str, hit: u64) -> std::process::Child {
    let mut child = Command::new(env!("CARGO_BIN_EXE_workflow_child"))
        .args(["--pg", url, schema, &KILLED_TRANSFERS.to_string()])
        .env(ENV, format!("{POINT}=pause@{hit}"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the child node");
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
            Ok(line) if line == paused => return child,
            Ok(line) => seen.push(line),
            Err(e) => {
                let _ = child.kill();
                panic!("the child node never paused at {POINT} hit {hit} ({e}); stderr: {seen:?}");
            }
        }
    }
}

#[cfg_attr(
    not(factum_pg),
    ignore = "needs PostgreSQL: set FACTUM_PG_URL (see tests/README.md)"
)]
#[test]
fn an_owner_node_killed_mid_step_is_replaced_and_every_transfer_moves_the_money_once() {
    let Some(url) = factum_tests::pg::url("workflows_failover") else {
        return;
    };
    let schema = factum_tests::pg::fresh_schema("workflow_kill");
    // The child funds ada and starts the transfers; it is the only node, so it runs them.
    let mut child = child_paused_mid_step(&url, &schema, 3);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let survivor = pg_node(&url, &schema).await;
        // The child, paused mid-step, holds the lease: this node only follows.
        let started = survivor.workflows().list(None).await.unwrap();
        assert!(!started.is_empty(), "the child started transfers");
        assert!(
            !survivor.workflows().is_runner(),
            "the paused child still holds the workflow runner's lease"
        );
        let unfinished = started.iter().filter(|i| !i.status.is_final()).count();
        assert!(unfinished > 0, "the kill comes while transfers are in flight");

        child.kill().expect("SIGKILL the child node");
        let status = child.wait().expect("wait for the child");
        assert_eq!(
            status.signal(),
            Some(SIGKILL),
            "the child died of the kill: {status}"
        );
        // The transfers the child had not started yet, started here as its
        // rerun would: the ones it started are refused as already started.
        for i in 0..KILLED_TRANSFERS {
            let start = StartTransfer {
                from: "ada".into(),
                to: "bob".into(),
                amount: 100 + i as u64,
            };
            match survivor
                .workflow::<Transfer>(format!("kill-{i}"))
                .start(start)
                .await
            {
                Ok(_) => assert!(i >= started.len(), "kill-{i} was started twice"),
                Err(e) => assert!(
                    matches!(
                        e.rejection(),
                        Some(factum::workflow::WorkflowRejection::AlreadyStarted { .. })
                    ),
                    "kill-{i}: {e}"
                ),
            }
        }

        for i in 0..KILLED_TRANSFERS {
            let t = survivor.workflow::<Transfer>(format!("kill-{i}"));
            let ended = tokio::time::timeout(Duration::from_secs(60), t.wait_for_end())
                .await
                .expect("the survivor finishes the transfer")
                .unwrap();
            assert_eq!(ended, Status::Ended, "kill-{i}");
            assert_eq!(
                t.trail().await.unwrap(),
                ["withdraw", "deposit"],
                "kill-{i}: each step recorded once"
            );
        }
        assert!(
            survivor.workflows().is_runner(),
            "the survivor took the lease over"
        );
        for (wallet, sign) in [("ada", -1i64), ("bob", 1)] {
            let mut per_reference = std::collections::BTreeMap::<String, Vec<i64>>::new();
            for r in survivor.entity::<Wallet>(wallet).history().await.unwrap() {
                let (reference, amount) = match r.event {
                    WalletEvent::Credited(e) => (e.reference, e.amount as i64),
                    WalletEvent::Debited(e) => (e.reference, -(e.amount as i64)),
                    WalletEvent::Frozen(_) => continue,
                };
                per_reference.entry(reference).or_default().push(amount);
            }
            for i in 0..KILLED_TRANSFERS {
                assert_eq!(
                    per_reference.get(&format!("transfer kill-{i}")),
                    Some(&vec![sign * (100 + i as i64)]),
                    "{wallet}: one movement for kill-{i}: {per_reference:?}"
                );
            }
            let expected = KILLED_TRANSFERS + usize::from(wallet == "ada");
            assert_eq!(
                per_reference.len(),
                expected,
                "{wallet}: nothing else: {per_reference:?}"
            );
        }
        drop(survivor);
        drop_schema(&url, &schema).await;
    });
}
