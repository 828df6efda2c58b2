//! The topic consumer: a durable JetStream pull consumer that turns broker
//! messages into entity commands and acks a message only after its handler
//! is done (its commands committed).
//!
//! - **Commands once.** [`TopicContext::send`] derives each command id from
//!   the message's id (`Nats-Msg-Id`, or the stream and sequence when it has
//!   none) and the send's place in the handler, so a redelivered message (an
//!   ack lost, a crash before the ack) is de-duplicated by the store.
//! - **Failures never loop for ever.** A handler's `Err` or
//!   [`Handled::Retry`] is `Nak`ed with backoff and redelivered by JetStream
//!   until [`TopicConsumer::max_attempts`] deliveries; then it is parked. A
//!   message whose payload does not decode as the handler's message type is
//!   parked at once. Parked and skipped messages are recorded as dead letters
//!   of the consumer `topic.<name>` in the app's consumer store (position =
//!   the stream sequence, stream type = the subject, event type
//!   `nats:<stream>`), then acked, so they are never redelivered and never
//!   lost from sight. A store error while recording one `Nak`s the message instead.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer::pull};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use super::producer::ProducerError;
use crate::App;
use crate::command::{CommandError, Commands, Committed, SendOptions};
use crate::consumer::{ConsumerStore, DeadLetter, Handled, IntoHandled, LetterState, is_valid_consumer_name};
use crate::entity::Entity;

/// Handles the messages of one topic consumer.
pub trait TopicHandler: Send + Sync + 'static {
    /// The message type the payload (JSON) decodes as.
    type Message: DeserializeOwned + Send;
    /// What the handler returns: `()`, [`Handled`], or a `Result` of either.
    type Output: IntoHandled + Send;

    /// Handles one message; side effects allowed.
    fn handle(
        &self,
        message: Self::Message,
        ctx: &mut TopicContext,
    ) -> impl Future<Output = Self::Output> + Send;
}

/// What a topic handler gets beside the message.
pub struct TopicContext {
    consumer: String,
    subject: String,
    sequence: u64,
    delivered: u64,
    message_id: Uuid,
    sends: u64,
    commands: Arc<Commands>,
}

impl std::fmt::Debug for TopicContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TopicContext")
            .field("consumer", &self.consumer)
            .field("subject", &self.subject)
            .field("sequence", &self.sequence)
            .field("delivered", &self.delivered)
            .finish_non_exhaustive()
    }
}

impl TopicContext {
    /// The message's subject.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The message's sequence in its JetStream stream.
    pub fn sequence(&self) -> u64 {
        self.sequence
    }

    /// Which delivery of the message this is (1 the first time).
    pub fn delivered(&self) -> u64 {
        self.delivered
    }

    /// The message's id: its `Nats-Msg-Id` when that is a UUID (a factum
    /// producer's are event ids), else derived from the stream and sequence.
    pub fn message_id(&self) -> Uuid {
        self.message_id
    }

    /// Sends `command` to the entity `E` with an id derived from this message.
    pub async fn send<E: Entity>(
        &mut self,
        entity_id: &str,
        command: impl Into<E::Command>,
    ) -> Result<Committed<E>, CommandError<E::Error>> {
        let id = crate::ids::consumer_command_id(&self.consumer, self.message_id, self.sends);
        self.sends += 1;
        let options = SendOptions {
            command_id: Some(id),
            causation_id: Some(self.message_id),
            correlation_id: Some(self.message_id),
        };
        self.commands
            .entity::<E>(entity_id)
            .send_with(command, options)
            .await
    }
}

/// A durable JetStream consumer turning messages into commands. Build it,
/// then [`run`](TopicConsumer::run) it.
#[derive(Debug, Clone)]
pub struct TopicConsumer {
    name: String,
    stream: String,
    filter: Option<String>,
    max_attempts: u32,
    backoff: Duration,
}

impl TopicConsumer {
    /// The durable consumer `name` on the JetStream stream `stream` (which must exist).
    pub fn new(name: impl Into<String>, stream: impl Into<String>) -> Self {
        TopicConsumer {
            name: name.into(),
            stream: stream.into(),
            filter: None,
            max_attempts: 5,
            backoff: Duration::from_millis(500),
        }
    }

    /// Only messages on subjects matching `filter` (`account.>`).
    pub fn filter(mut self, filter: impl Into<String>) -> Self {
        self.filter = Some(filter.into());
        self
    }

    /// Deliveries of a failing message before it is parked (default 5).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// The `Nak` delay after the first failure; it doubles per delivery (default 500 ms).
    pub fn backoff(mut self, delay: Duration) -> Self {
        self.backoff = delay;
        self
    }

    fn error(&self, context: &str, e: impl std::fmt::Display) -> ProducerError {
        ProducerError::JetStream {
            producer: format!("topic.{}", self.name),
            stream: self.stream.clone(),
            context: context.to_owned(),
            message: e.to_string(),
        }
    }

    /// Handles messages until `stop` resolves (or the broker connection
    /// fails for good). Returns how many messages it acked.
    pub async fn run<H: TopicHandler>(
        &self,
        app: &App,
        client: async_nats::Client,
        handler: H,
        stop: impl Future<Output = ()>,
    ) -> Result<u64, ProducerError> {
        let key = format!("topic.{}", self.name);
        if !is_valid_consumer_name(&key) {
            return Err(ProducerError::InvalidName {
                name: self.name.clone(),
            });
        }
        let letters = app
            .consumers()
            .store()
            .map_err(|source| ProducerError::Consumers {
                producer: key.clone(),
                source,
            })?
            .clone();
        let js = jetstream::new(client);
        let stream = js
            .get_stream(&self.stream)
            .await
            .map_err(|e| self.error("looking up the stream", e))?;
        let consumer: jetstream::consumer::Consumer<pull::Config> = stream
            .get_or_create_consumer(
                &self.name,
                pull::Config {
                    durable_name: Some(self.name.clone()),
                    filter_subject: self.filter.clone().unwrap_or_default(),
                    ack_policy: jetstream::consumer::AckPolicy::Explicit,
                    max_deliver: i64::from(self.max_attempts) + 1,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| self.error("creating the durable consumer", e))?;
        let mut messages = consumer
            .messages()
            .await
            .map_err(|e| self.error("pulling messages", e))?;
        let commands = app.commands();
        let clock = app.env().clock().clone();
        let mut acked = 0;
        tokio::pin!(stop);
        loop {
            let message = tokio::select! {
                () = &mut stop => return Ok(acked),
                next = messages.next() => match next {
                    Some(Ok(m)) => m,
                    Some(Err(e)) => {
                        tracing::warn!(consumer = %key, error = %e, "pulling a message failed; pulling on");
                        continue;
                    }
                    None => return Ok(acked),
                },
            };
            let (sequence, delivered) = match message.info() {
                Ok(info) => (info.stream_sequence, u64::try_from(info.delivered).unwrap_or(1)),
                Err(e) => return Err(self.error("reading a message's metadata", e)),
            };
            let subject = message.subject.to_string();
            let message_id = message
                .headers
                .as_ref()
                .and_then(|h| h.get("Nats-Msg-Id"))
                .and_then(|v| Uuid::parse_str(v.as_str()).ok())
                .unwrap_or_else(|| {
                    crate::ids::consumer_command_id(&format!("{}#{sequence}", self.stream), Uuid::nil(), 0)
                });
            let handled = match serde_json::from_slice::<H::Message>(&message.payload) {
                Err(e) => Handled::Park(format!(
                    "the payload does not decode as `{}`: {e}",
                    std::any::type_name::<H::Message>()
                )),
                Ok(decoded) => {
                    let mut ctx = TopicContext {
                        consumer: key.clone(),
                        subject: subject.clone(),
                        sequence,
                        delivered,
                        message_id,
                        sends: 0,
                        commands: commands.clone(),
                    };
                    match crate::unwind::Guarded::new(handler.handle(decoded, &mut ctx)).await {
                        Ok(out) => out.into_handled(),
                        Err(panic) => Handled::Retry(format!("the handler panicked: {panic}")),
                    }
                }
            };
            let letter = |state: LetterState, error: String| DeadLetter {
                consumer: key.clone(),
                position: sequence,
                stream_type: subject.clone(),
                stream_id: String::new(),
                version: 0,
                event_type: format!("nats:{}", self.stream),
                event_id: message_id,
                state,
                attempts: u32::try_from(delivered).unwrap_or(u32::MAX),
                error,
                reason: None,
                recorded_at: clock.now(),
                updated_at: clock.now(),
            };
            let ack = match handled {
                Handled::Done => AckKind::Ack,
                Handled::Retry(error) if delivered < u64::from(self.max_attempts) => {
                    tracing::debug!(consumer = %key, sequence, delivered, %error, "handler failed; nak with backoff");
                    let doublings = u32::try_from(delivered.saturating_sub(1)).unwrap_or(16).min(16);
                    AckKind::Nak(Some(
                        self.backoff
                            .saturating_mul(1 << doublings)
                            .min(Duration::from_secs(30)),
                    ))
                }
                Handled::Retry(error) | Handled::Park(error) => {
                    tracing::warn!(consumer = %key, sequence, %subject, %error, "message parked as a dead letter");
                    record(&*letters, letter(LetterState::Parked, error)).await
                }
                Handled::Skip(reason) => record(&*letters, letter(LetterState::Skipped, reason)).await,
            };
            let kind = if matches!(ack, AckKind::Ack) { "ack" } else { "nak" };
            match message.ack_with(ack).await {
                Ok(()) if kind == "ack" => acked += 1,
                Ok(()) => {}
                Err(e) => {
                    tracing::warn!(consumer = %key, sequence, error = %e, "{kind} failed; JetStream redelivers")
                }
            }
        }
    }
}

/// Records a letter beside the consumer's checkpoints; `Ack` once it is
/// stored, `Nak` (redeliver) when the store failed, so nothing is lost.
async fn record(store: &dyn ConsumerStore, letter: DeadLetter) -> AckKind {
    let consumer = letter.consumer.clone();
    let position = letter.position;
    let checkpoint = match store.checkpoint(&consumer).await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(%consumer, position, error = %e, "recording a dead letter failed; nak");
            return AckKind::Nak(Some(Duration::from_secs(1)));
        }
    };
    // The letter goes in with a compare-and-set on the (unmoving) checkpoint.
    match store
        .commit(&consumer, checkpoint, checkpoint, vec![letter])
        .await
    {
        Ok(()) => AckKind::Ack,
        Err(e) => {
            tracing::error!(%consumer, position, error = %e, "recording a dead letter failed; nak");
            AckKind::Nak(Some(Duration::from_secs(1)))
        }
    }
}
