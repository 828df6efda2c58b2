//! The JetStream topic consumer against a real server: messages become
//! commands, acked only once the handler is done; a failing message is
//! redelivered and its commands are de-duplicated (one deposit, not two); a
//! malformed message is parked as a dead letter and acked, never redelivered
//! for ever. Each test uses its own stream and deletes it at the end.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use factum::App;
use factum::consumer::LetterState;
use factum::nats::async_nats::{self, jetstream};
use factum::nats::{TopicConsumer, TopicContext, TopicHandler};
use factum_examples::bank::{Account, AccountError, Deposit, Open};
use serde::Deserialize;

/// A payment order from outside: credit an account.
#[derive(Deserialize)]
struct Payment {
    account: String,
    cents: u64,
}

/// Credits accounts; fails once after its command committed (the ack is "lost").
struct Payments {
    fail_once: AtomicBool,
}

impl TopicHandler for Payments {
    type Message = Payment;
    type Output = Result<(), String>;

    async fn handle(&self, payment: Payment, ctx: &mut TopicContext) -> Result<(), String> {
        ctx.send::<Account>(
            &payment.account,
            Deposit {
                amount: payment.cents,
            },
        )
        .await
        .map_err(|e: factum::CommandError<AccountError>| e.to_string())?;
        if self.fail_once.swap(false, Ordering::SeqCst) {
            return Err("the ack was lost on the way".to_owned());
        }
        Ok(())
    }
}

#[cfg_attr(
    not(factum_nats),
    ignore = "needs NATS with JetStream: set FACTUM_NATS_URL (see tests/README.md)"
)]
#[tokio::test]
async fn messages_become_commands_once_and_a_malformed_one_is_parked_not_redelivered() {
    let url = std::env::var("FACTUM_NATS_URL").expect("FACTUM_NATS_URL, set when these tests were built");
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let name = format!("FACTUM_T_TOPIC_{}_{nanos}", std::process::id());
    let prefix = format!("t{}_{nanos}", std::process::id());
    let client = async_nats::connect(url.as_str()).await.expect("connect to NATS");
    let js = jetstream::new(client.clone());
    js.create_stream(jetstream::stream::Config {
        name: name.clone(),
        subjects: vec![format!("{prefix}.>")],
        ..Default::default()
    })
    .await
    .expect("create the test stream");
    for body in [
        r#"{"account":"ada","cents":500}"#,
        r#"{"account":"ada","cents":"lots"}"#,
        r#"{"account":"ada","cents":250}"#,
    ] {
        js.publish(format!("{prefix}.payments"), body.into())
            .await
            .expect("publish")
            .await
            .expect("ack");
    }

    let app = App::in_memory();
    app.entity::<Account>("ada")
        .send(Open { owner: "Ada".into() })
        .await
        .expect("open");
    let store = app.consumers().store().expect("consumer store").clone();
    let deposits = || async { app.entity::<Account>("ada").state().await.expect("state").balance };
    let done = {
        let store = store.clone();
        let app = app.clone();
        async move {
            loop {
                let parked = store
                    .letters("topic.payments", None, None, 10)
                    .await
                    .unwrap_or_default();
                let balance = app
                    .entity::<Account>("ada")
                    .state()
                    .await
                    .map(|a| a.balance)
                    .unwrap_or(0);
                if parked.len() == 1 && balance >= 750 {
                    // A little longer: a redelivery that should not happen would show now.
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    let handler = Payments {
        fail_once: AtomicBool::new(true),
    };
    let acked = tokio::time::timeout(
        Duration::from_secs(60),
        TopicConsumer::new("payments", name.as_str())
            .backoff(Duration::from_millis(50))
            .run(&app, client, handler, done),
    )
    .await
    .expect("not hung")
    .expect("the topic consumer ran");
    assert_eq!(acked, 3, "two payments and the parked message acked");
    assert_eq!(deposits().await, 750, "the redelivered payment deposited once");
    let history = app.entity::<Account>("ada").history().await.expect("history");
    assert_eq!(history.len(), 3, "opened and two deposits, no third");

    let letters = store
        .letters("topic.payments", None, None, 10)
        .await
        .expect("letters");
    assert_eq!(letters.len(), 1, "{letters:?}");
    let l = &letters[0];
    assert_eq!((l.state, l.position, l.attempts), (LetterState::Parked, 2, 1));
    assert_eq!(l.stream_type, format!("{prefix}.payments"));
    assert!(l.error.contains("does not decode"), "{}", l.error);

    let mut consumer: jetstream::consumer::PullConsumer = js
        .get_stream(&name)
        .await
        .expect("stream")
        .get_consumer("payments")
        .await
        .expect("the durable consumer");
    let info = consumer.info().await.expect("consumer info");
    assert_eq!(
        (info.num_pending, info.num_ack_pending),
        (0, 0),
        "nothing left to redeliver"
    );
    js.delete_stream(&name).await.expect("delete the test stream");
}
