//! One workflow runner across nodes on PostgreSQL, and failover: two apps on
//! one schema; only one runs the workflows (the advisory lock of the
//! workflow runner, apart from the timers'); transfers started on both are
//! held by the runner; the runner's node goes away; the other node takes the
//! lease over and finishes every transfer, each wallet call once.

use std::time::Duration;

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
