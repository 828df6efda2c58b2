//! Match events for spectators: a NATS JetStream producer publishing every
//! `match` event (subjects `[prefix.]match.<event>.<match id>`), started when
//! `FACTUM_NATS_URL` is set.
//!
//! The log is the outbox (see `factum::nats`): an event that committed is
//! published even if the process dies right after, and exactly once per
//! message id; with NATS down nothing is lost, the next start publishes it.

use factum::App;
use factum::nats::async_nats::{self, jetstream};
use factum::nats::{Producer, ProducerHandle};

/// The JetStream stream the binary publishes to.
pub const STREAM: &str = "CHESS";

/// A running producer of match events.
#[derive(Debug)]
pub struct Feed {
    url: String,
    producer: ProducerHandle,
}

impl Feed {
    /// The NATS server's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The producer.
    pub fn producer(&self) -> &ProducerHandle {
        &self.producer
    }

    /// Waits until everything in the log so far is published (and acked).
    pub async fn flush(&self, app: &App) -> Result<(), Box<dyn std::error::Error>> {
        let head = app.store().head().await?;
        self.producer.wait_for(head).await?;
        Ok(())
    }
}

/// Creates the stream `stream` (subjects `[prefix.]match.>`) if missing and
/// starts the producer `name` on it.
pub async fn start(
    app: &App,
    client: async_nats::Client,
    name: &str,
    stream: &str,
    prefix: Option<&str>,
) -> Result<ProducerHandle, Box<dyn std::error::Error>> {
    let subjects = match prefix {
        Some(prefix) => format!("{prefix}.match.>"),
        None => "match.>".to_owned(),
    };
    jetstream::new(client.clone())
        .get_or_create_stream(jetstream::stream::Config {
            name: stream.to_owned(),
            subjects: vec![subjects],
            ..Default::default()
        })
        .await?;
    let mut producer = Producer::new(name, stream).stream_types(["match"]).per_entity();
    if let Some(prefix) = prefix {
        producer = producer.subject_prefix(prefix);
    }
    Ok(producer.start(app, client).await?)
}

/// Starts the feed to [`STREAM`] when `FACTUM_NATS_URL` is set; says so and
/// goes on without it when the server does not answer.
pub async fn start_if_configured(app: &App) -> Result<Option<Feed>, Box<dyn std::error::Error>> {
    let Ok(url) = std::env::var("FACTUM_NATS_URL") else {
        return Ok(None);
    };
    let client = match async_nats::connect(url.as_str()).await {
        Ok(client) => client,
        Err(e) => {
            println!(
                "NATS at {url} is not reachable ({e}): no match feed this run; the next one publishes it"
            );
            return Ok(None);
        }
    };
    let producer = start(app, client, "chess_feed", STREAM, None).await?;
    Ok(Some(Feed { url, producer }))
}
