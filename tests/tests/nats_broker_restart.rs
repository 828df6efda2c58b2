//! The producer across a NATS server restart: the server is stopped while
//! the producer publishes and started again; the producer pauses (its
//! publishes fail, the runner retries every second) and resumes where the
//! stream ends, and the stream holds every event once. Its own test binary,
//! one test, because it restarts the machine's server: nothing else may be
//! using NATS at the moment (CI runs test binaries one after another).

use std::collections::HashSet;
use std::process::Command;
use std::time::Duration;

use factum::App;
use factum::nats::async_nats::{self, jetstream};
use factum::nats::{POSITION_HEADER, Producer};
use factum_examples::bank::{Account, Deposit, Open};

const SERVER: &str = "/usr/sbin/nats-server";

fn stop_server() {
    let status = Command::new("start-stop-daemon")
        .args(["--stop", "--retry", "TERM/10/KILL/5", "--exec", SERVER])
        .status()
        .expect("run start-stop-daemon --stop");
    assert!(status.success(), "stopping nats-server: {status}");
}

fn start_server() {
    let status = Command::new("start-stop-daemon")
        .args(["--start", "--oknodo", "--background", "--exec", SERVER, "--"])
        .args([
            "-a",
            "127.0.0.1",
            "-p",
            "4222",
            "-js",
            "-sd",
            "/var/lib/nats-server",
            "-l",
            "/var/log/nats-server.log",
        ])
        .status()
        .expect("run start-stop-daemon --start");
    assert!(status.success(), "starting nats-server: {status}");
}

#[cfg_attr(
    not(factum_nats),
    ignore = "needs NATS with JetStream: set FACTUM_NATS_URL (see tests/README.md)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restart_while_publishing_loses_and_doubles_nothing() {
    let url = std::env::var("FACTUM_NATS_URL").expect("FACTUM_NATS_URL, set when these tests were built");
    if !std::path::Path::new(SERVER).exists() {
        panic!("{SERVER} is missing: this test restarts the local NATS server");
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let name = format!("FACTUM_T_RESTART_{}_{nanos}", std::process::id());
    let prefix = format!("r{}_{nanos}", std::process::id());
    let client = async_nats::connect(url.as_str()).await.expect("connect to NATS");
    let js = jetstream::new(client.clone());
    js.create_stream(jetstream::stream::Config {
        name: name.clone(),
        subjects: vec![format!("{prefix}.>")],
        storage: jetstream::stream::StorageType::File,
        ..Default::default()
    })
    .await
    .expect("create the test stream");

    let app = App::in_memory();
    let events = 3_000u64;
    for a in 0..30 {
        let account = app.entity::<Account>(format!("acc-{a}"));
        account
            .send(Open {
                owner: format!("o{a}"),
            })
            .await
            .expect("open");
        for _ in 0..99 {
            account.send(Deposit { amount: 1 }).await.expect("deposit");
        }
    }
    assert_eq!(app.store().head().await.expect("head"), events);
    let producer = Producer::new("bank_feed", name.as_str())
        .subject_prefix(prefix.as_str())
        .batch(50)
        .start(&app, client)
        .await
        .expect("start");
    // Stop the server once some, not all, is published.
    let mut waited = 0;
    while producer.checkpoint() < 200 {
        tokio::time::sleep(Duration::from_millis(5)).await;
        waited += 1;
        assert!(
            waited < 6000,
            "the producer never got going: {:?}",
            producer.last_error()
        );
    }
    stop_server();
    let at_stop = producer.checkpoint();
    assert!(
        at_stop < events,
        "the restart must land mid-stream (checkpoint {at_stop})"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    start_server();
    tokio::time::timeout(Duration::from_secs(120), async {
        loop {
            if producer.checkpoint() >= events {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the producer resumed after the restart and caught up");

    let client = async_nats::connect(url.as_str()).await.expect("reconnect");
    let js = jetstream::new(client);
    let mut stream = js
        .get_stream(&name)
        .await
        .expect("the stream survived the restart");
    let last = stream.info().await.expect("info").state.last_sequence;
    assert_eq!(
        last, events,
        "one message per event: nothing lost, nothing doubled"
    );
    let mut ids = HashSet::new();
    let mut previous = 0;
    for seq in 1..=last {
        let m = stream.get_raw_message(seq).await.expect("message");
        let position: u64 = m
            .headers
            .get(POSITION_HEADER)
            .and_then(|v| v.as_str().parse().ok())
            .expect("position");
        assert_eq!(position, previous + 1, "in log order, no gap, at sequence {seq}");
        previous = position;
        ids.insert(m.headers.get("Nats-Msg-Id").map(|v| v.as_str().to_owned()));
    }
    assert_eq!(ids.len() as u64, events);
    js.delete_stream(&name).await.expect("delete the test stream");
}
