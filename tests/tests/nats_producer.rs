//! The NATS JetStream producer against a real server: every committed event
//! is published exactly once per message id while the producer is SIGKILLed
//! between a batch's acks and its checkpoint commit, with restarts after
//! the stream's duplicate window has passed (so JetStream's own
//! de-duplication cannot be what saves it); a missing stream pauses the
//! producer and it resumes when the stream is there. Each test uses its own
//! stream and subjects and deletes the stream at the end.

use std::collections::HashSet;
use std::process::Command;
use std::time::Duration;

use factum::App;
use factum::nats::async_nats::jetstream::{self, stream};
use factum::nats::{POSITION_HEADER, PRODUCER_HEADER, Producer, async_nats};
use factum_tests::child::run_with_fault;

fn nats_url() -> String {
    std::env::var("FACTUM_NATS_URL").expect(
        "this build of the tests was made with FACTUM_NATS_URL set, but it is unset now; set it again (nats://127.0.0.1:4222)",
    )
}

/// A stream name and subject prefix no other test or run uses.
fn fresh(test: &str) -> (String, String) {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let id = format!("{}_{}", std::process::id(), nanos);
    (format!("FACTUM_T_{}_{id}", test.to_uppercase()), format!("t{id}"))
}

async fn create_stream(
    js: &jetstream::Context,
    name: &str,
    prefix: &str,
    window: Duration,
) -> stream::Stream {
    js.create_stream(stream::Config {
        name: name.to_owned(),
        subjects: vec![format!("{prefix}.>")],
        duplicate_window: window,
        ..Default::default()
    })
    .await
    .expect("create the test stream")
}

/// Every message of the stream: (subject, message id, position).
async fn messages(js: &jetstream::Context, name: &str) -> Vec<(String, String, u64)> {
    let mut stream = js.get_stream(name).await.expect("the stream");
    let last = stream.info().await.expect("info").state.last_sequence;
    let mut out = Vec::new();
    for seq in 1..=last {
        let m = stream.get_raw_message(seq).await.expect("a message");
        let id = m
            .headers
            .get("Nats-Msg-Id")
            .map(|v| v.as_str().to_owned())
            .unwrap_or_default();
        assert_eq!(
            m.headers.get(PRODUCER_HEADER).map(|v| v.as_str()),
            Some("bank_feed"),
            "message {seq}"
        );
        let position = m
            .headers
            .get(POSITION_HEADER)
            .and_then(|v| v.as_str().parse().ok())
            .expect("a position header");
        out.push((m.subject.to_string(), id, position));
    }
    out
}

#[cfg_attr(
    not(factum_nats),
    ignore = "needs NATS with JetStream: set FACTUM_NATS_URL (see tests/README.md)"
)]
#[tokio::test]
async fn every_event_is_published_once_per_message_id_across_kills_and_past_the_duplicate_window() {
    let url = nats_url();
    let (name, prefix) = fresh("producer");
    let client = async_nats::connect(url.as_str()).await.expect("connect to NATS");
    let js = jetstream::new(client);
    let window = Duration::from_secs(1);
    create_stream(&js, &name, &prefix, window).await;

    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("bank.db");
    let file = path.to_str().expect("utf-8 path");
    let seeded = run_with_fault(
        Command::new(env!("CARGO_BIN_EXE_consumer_child")).args(["seed", file, "40"]),
        "",
    );
    assert!(seeded.status.success(), "seeding failed: {:?}", seeded.stderr);
    let events = 120;

    let producer = || {
        let mut c = Command::new(env!("CARGO_BIN_EXE_producer_child"));
        c.args([file, url.as_str(), name.as_str(), prefix.as_str()]);
        c
    };
    let store = factum::sqlite::SqliteConsumerStore::open(&path).expect("consumer store");
    for kill in 0..4 {
        let ended = run_with_fault(&mut producer(), "producer.commit.before=abort@2");
        ended.assert_aborted_at("producer.commit.before", 2);
        let checkpoint = factum::consumer::ConsumerStore::checkpoint(&store, "producer.bank_feed")
            .await
            .expect("checkpoint");
        let published = messages(&js, &name).await;
        let beyond = published.iter().filter(|(_, _, p)| *p > checkpoint).count();
        assert!(
            beyond > 0,
            "kill {kill}: the killed batch was acked beyond the checkpoint {checkpoint}: nothing to re-publish by mistake"
        );
        // Past the duplicate window: JetStream would take a re-publish as new.
        tokio::time::sleep(window + Duration::from_millis(300)).await;
    }
    let done = run_with_fault(&mut producer(), "");
    assert!(done.status.success(), "the last run failed: {:?}", done.stderr);
    assert!(
        done.stdout.contains(&format!("published {events}")),
        "{:?}",
        done.stdout
    );

    let published = messages(&js, &name).await;
    assert_eq!(published.len(), events, "one message per event, none doubled");
    let ids: HashSet<&str> = published.iter().map(|(_, id, _)| id.as_str()).collect();
    assert_eq!(ids.len(), events, "message ids are unique");
    let app = App::open(&path).await.expect("open");
    let log = app.store().read_all(1, usize::MAX).await.expect("read the log");
    let event_ids: HashSet<String> = log.iter().map(|r| r.metadata.event_id.to_string()).collect();
    assert_eq!(
        ids,
        event_ids.iter().map(String::as_str).collect(),
        "the message id is the event id"
    );
    let positions: Vec<u64> = published.iter().map(|(_, _, p)| *p).collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "in log order: {positions:?}"
    );
    assert!(
        published
            .iter()
            .any(|(s, _, _)| *s == format!("{prefix}.account.withdrawn.acc-007")),
        "per-entity subjects"
    );
    js.delete_stream(&name).await.expect("delete the test stream");
}

#[cfg_attr(
    not(factum_nats),
    ignore = "needs NATS with JetStream: set FACTUM_NATS_URL (see tests/README.md)"
)]
#[tokio::test]
async fn a_missing_stream_pauses_the_producer_and_it_resumes_when_the_stream_is_there() {
    let url = nats_url();
    let (name, prefix) = fresh("outage");
    let client = async_nats::connect(url.as_str()).await.expect("connect to NATS");
    let js = jetstream::new(client.clone());
    let app = App::in_memory();
    let account = app.entity::<factum_examples::bank::Account>("ada");
    account
        .send(factum_examples::bank::Open { owner: "Ada".into() })
        .await
        .expect("open");
    let producer = Producer::new("bank_feed", name.as_str())
        .subject_prefix(prefix.as_str())
        .start(&app, client)
        .await
        .expect("start");
    let failing = tokio::time::timeout(Duration::from_secs(30), producer.wait_for(1))
        .await
        .expect("wait_for answers instead of hanging")
        .unwrap_err();
    assert!(failing.to_string().contains("looking up the stream"), "{failing}");

    create_stream(&js, &name, &prefix, Duration::from_secs(120)).await;
    account
        .send(factum_examples::bank::Deposit { amount: 5 })
        .await
        .expect("deposit");
    loop {
        match producer.wait_for(2).await {
            Ok(()) => break,
            // Until the runner's next retry, the streak from before still answers.
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    let published = messages(&js, &name).await;
    assert_eq!(
        published
            .iter()
            .map(|(s, _, p)| (s.as_str(), *p))
            .collect::<Vec<_>>(),
        [
            (format!("{prefix}.account.opened").as_str(), 1),
            (format!("{prefix}.account.deposited").as_str(), 2)
        ]
    );
    js.delete_stream(&name).await.expect("delete the test stream");
}
