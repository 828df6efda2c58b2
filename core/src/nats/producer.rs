//! The producer's runner: a [`Process`] that reads the log after its
//! checkpoint, publishes a batch with pipelined, sequence-chained publishes,
//! awaits every ack, then commits the checkpoint (in the consumer store,
//! under the producer's name).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use async_nats::jetstream::message::PublishMessage;
use async_trait::async_trait;
use tokio::sync::watch;

use super::{POSITION_HEADER, PRODUCER_HEADER, STREAM_HEADER};
use crate::App;
use crate::consumer::{ConsumerStore, ConsumerStoreError, is_valid_consumer_name};
use crate::process::{Lease, Led, Process, Progress, Tail, WaitError, supervise};
use crate::store::RecordedEvent;

/// The longest the runner waits for new events before it re-checks its lease.
const IDLE_WAIT: Duration = Duration::from_millis(500);
/// The most events read, published and acked per checkpoint commit.
const BATCH: usize = 512;

/// One message to publish, as a [`Producer::map`] function builds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outgoing {
    /// The subject.
    pub subject: String,
    /// The payload.
    pub payload: Vec<u8>,
}

type Mapper = dyn Fn(&RecordedEvent) -> Option<Outgoing> + Send + Sync;

/// What can go wrong with a producer.
#[derive(Debug, thiserror::Error)]
pub enum ProducerError {
    /// The name breaks the consumer-name rule (it keys the checkpoint).
    #[error(
        "producer name {name:?} is invalid: 1 to 64 bytes of lowercase ASCII letters, digits, `_`, `.` and `-`, starting with a letter"
    )]
    InvalidName {
        /// The name.
        name: String,
    },
    /// The app has no durable place for the checkpoint.
    #[error("producer {producer}: {source}")]
    Consumers {
        /// The producer.
        producer: String,
        /// Why.
        #[source]
        source: crate::consumer::ConsumerError,
    },
    /// The checkpoint store failed.
    #[error("producer {producer}: {source}")]
    Storage {
        /// The producer.
        producer: String,
        /// The store's error.
        #[source]
        source: ConsumerStoreError,
    },
    /// Reading the log failed.
    #[error("producer {producer}: reading the log at position {position}: {source}")]
    Log {
        /// The producer.
        producer: String,
        /// Where.
        position: u64,
        /// The store's error.
        #[source]
        source: crate::store::StoreError,
    },
    /// JetStream refused or failed (the stream is missing, the broker is down, a publish was not acked).
    #[error("producer {producer}: JetStream stream {stream}: {context}: {message}")]
    JetStream {
        /// The producer.
        producer: String,
        /// The JetStream stream.
        stream: String,
        /// What was being done.
        context: String,
        /// The client's error.
        message: String,
    },
    /// The stream's last message was not published by this producer: one
    /// producer per stream is what makes its de-duplication hold.
    #[error(
        "producer {producer}: the last message of JetStream stream {stream} (sequence {sequence}) was published by {found:?}, not by this producer; give each producer a stream of its own"
    )]
    ForeignMessage {
        /// The producer.
        producer: String,
        /// The stream.
        stream: String,
        /// The message's sequence.
        sequence: u64,
        /// Its `Factum-Producer` header, if any.
        found: Option<String>,
    },
    /// The stream's last message is not the event this log holds at its position:
    /// the stream was filled from another log.
    #[error(
        "producer {producer}: the last message of JetStream stream {stream} is {message_id:?} at log position {position}, but this log holds {event_id:?} there: the stream was filled from another log; give this log a stream of its own"
    )]
    ForeignLog {
        /// The producer.
        producer: String,
        /// The stream.
        stream: String,
        /// The position the message carries.
        position: u64,
        /// Its message id.
        message_id: Option<String>,
        /// The event id this log has there, if any.
        event_id: Option<String>,
    },
    /// The runner failed repeatedly without moving its checkpoint (it keeps retrying).
    #[error(
        "producer {producer} is failing at checkpoint {checkpoint}: {attempts} attempts, last error: {error}"
    )]
    Failing {
        /// The producer.
        producer: String,
        /// Where.
        checkpoint: u64,
        /// Consecutive failures.
        attempts: u32,
        /// The last error.
        error: String,
    },
    /// The runner stopped (its app is gone).
    #[error("producer {producer}: the runner stopped")]
    Stopped {
        /// The producer.
        producer: String,
    },
}

/// A NATS subject token made from any text: `.`, `*`, `>` and whitespace
/// (which would split or widen a subject) become `_`.
pub fn subject_token(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c == '.' || c == '*' || c == '>' || c.is_whitespace() {
                '_'
            } else {
                c
            }
        })
        .collect()
}

/// The default subject: `<stream type>.<event name>` (the event name's
/// leading `<stream type>.` is not repeated: `account.withdrawn`, not
/// `account.account.withdrawn`), with `.<stream id>` when per-entity.
fn default_subject(record: &RecordedEvent, per_entity: bool) -> String {
    let prefix = format!("{}.", record.stream_type);
    let name = record
        .event_type
        .strip_prefix(&prefix)
        .unwrap_or(&record.event_type);
    let mut subject = format!(
        "{}.{}",
        subject_token(&record.stream_type),
        name.split('.').map(subject_token).collect::<Vec<_>>().join(".")
    );
    if per_entity {
        subject.push('.');
        subject.push_str(&subject_token(&record.stream_id));
    }
    subject
}

/// Publishes chosen events of the log to a JetStream stream. Build it, then
/// [`start`](Producer::start) it on an app.
pub struct Producer {
    name: String,
    stream: String,
    stream_types: Option<HashSet<String>>,
    event_types: Option<HashSet<String>>,
    per_entity: bool,
    prefix: Option<String>,
    map: Option<Arc<Mapper>>,
    batch: usize,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("name", &self.name)
            .field("stream", &self.stream)
            .finish_non_exhaustive()
    }
}

impl Producer {
    /// A producer named `name` (its checkpoint is kept under it) publishing
    /// to the JetStream stream `stream`, which must exist and take the
    /// subjects it publishes. By default every event is published, as
    /// stored, to `<stream type>.<event name>`.
    pub fn new(name: impl Into<String>, stream: impl Into<String>) -> Self {
        Producer {
            name: name.into(),
            stream: stream.into(),
            stream_types: None,
            event_types: None,
            per_entity: false,
            prefix: None,
            map: None,
            batch: BATCH,
        }
    }

    /// Only events of these stream (entity) types.
    pub fn stream_types<S: Into<String>>(mut self, types: impl IntoIterator<Item = S>) -> Self {
        self.stream_types = Some(types.into_iter().map(Into::into).collect());
        self
    }

    /// Only events of these stored type names.
    pub fn event_types<S: Into<String>>(mut self, types: impl IntoIterator<Item = S>) -> Self {
        self.event_types = Some(types.into_iter().map(Into::into).collect());
        self
    }

    /// Default subjects end with the stream id: `account.withdrawn.acc-1`.
    pub fn per_entity(mut self) -> Self {
        self.per_entity = true;
        self
    }

    /// Default subjects start with `<prefix>.`: `prod.account.withdrawn`, so
    /// two deployments (or tests) on one server keep apart.
    pub fn subject_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = Some(subject_token(&prefix.into()));
        self
    }

    /// Builds each message from the event (a public message type, a subject
    /// of your own); `None` publishes nothing for that event. Runs after the
    /// type filters.
    pub fn map(mut self, f: impl Fn(&RecordedEvent) -> Option<Outgoing> + Send + Sync + 'static) -> Self {
        self.map = Some(Arc::new(f));
        self
    }

    /// Events per batch: published pipelined, acked, then checkpointed (default 512).
    pub fn batch(mut self, events: usize) -> Self {
        self.batch = events.max(1);
        self
    }

    /// Starts the producer on `app`, publishing through `client`. Its
    /// checkpoint and lease live in the app's consumer store.
    pub async fn start(self, app: &App, client: async_nats::Client) -> Result<ProducerHandle, ProducerError> {
        if !is_valid_consumer_name(&self.name) {
            return Err(ProducerError::InvalidName { name: self.name });
        }
        let store = app
            .consumers()
            .store()
            .map_err(|source| ProducerError::Consumers {
                producer: self.name.clone(),
                source,
            })?
            .clone();
        let key = format!("producer.{}", self.name);
        let checkpoint = store
            .checkpoint(&key)
            .await
            .map_err(|source| ProducerError::Storage {
                producer: self.name.clone(),
                source,
            })?;
        let shared = Arc::new(Shared {
            name: self.name.clone(),
            progress: Progress::new(checkpoint),
            alive: watch::channel(()).0,
        });
        let runner = Runner {
            key,
            tail: Tail::new(app.store().clone(), self.batch),
            store,
            js: jetstream::new(client),
            config: self,
            shared: shared.clone(),
            alive: shared.alive.subscribe(),
        };
        tokio::spawn(supervise(runner));
        Ok(ProducerHandle { shared })
    }
}

struct Shared {
    name: String,
    progress: Progress,
    /// Dropped with the last handle: the runner stops.
    alive: watch::Sender<()>,
}

/// A running producer: where it stands. Dropping every handle stops it.
#[derive(Clone)]
pub struct ProducerHandle {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for ProducerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProducerHandle")
            .field("name", &self.shared.name)
            .field("progress", &self.shared.progress)
            .finish()
    }
}

impl ProducerHandle {
    /// The last global position published (with acks) and checkpointed.
    pub fn checkpoint(&self) -> u64 {
        self.shared.progress.checkpoint()
    }

    /// True while this node runs the producer.
    pub fn is_runner(&self) -> bool {
        self.shared.progress.is_runner()
    }

    /// The last error the runner hit (a broker outage, say); it retries every second.
    pub fn last_error(&self) -> Option<String> {
        self.shared.progress.last_error()
    }

    /// Waits until everything up to `position` is published and acked.
    pub async fn wait_for(&self, position: u64) -> Result<(), ProducerError> {
        let producer = self.shared.name.clone();
        self.shared
            .progress
            .wait_for(position)
            .await
            .map_err(|e| match e {
                WaitError::Stopped => ProducerError::Stopped { producer },
                WaitError::Failing(f) => ProducerError::Failing {
                    producer,
                    checkpoint: f.checkpoint,
                    attempts: f.attempts,
                    error: f.error,
                },
            })
    }
}

struct Runner {
    /// The checkpoint's key in the consumer store: `producer.<name>`.
    key: String,
    tail: Tail,
    store: Arc<dyn ConsumerStore>,
    js: jetstream::Context,
    config: Producer,
    shared: Arc<Shared>,
    alive: watch::Receiver<()>,
}

#[async_trait]
impl Process for Runner {
    type Error = ProducerError;

    fn name(&self) -> &'static str {
        "producer"
    }

    fn progress(&self) -> &Progress {
        &self.shared.progress
    }

    fn is_closed(&self) -> bool {
        self.alive.has_changed().is_err()
    }

    async fn hold_off(&mut self) -> Result<Option<String>, ProducerError> {
        Ok(None)
    }

    async fn try_lease(&mut self) -> Result<Option<Box<dyn Lease>>, ProducerError> {
        self.store.try_lease(&self.key).await.map_err(|e| self.storage(e))
    }

    async fn lead(&mut self, lease: &dyn Lease) -> Result<Led, ProducerError> {
        Runner::lead(self, lease).await
    }

    async fn follow(&mut self) -> Result<(), ProducerError> {
        let checkpoint = self
            .store
            .checkpoint(&self.key)
            .await
            .map_err(|e| self.storage(e))?;
        self.shared.progress.publish(checkpoint);
        Ok(())
    }
}

impl Runner {
    fn storage(&self, source: ConsumerStoreError) -> ProducerError {
        ProducerError::Storage {
            producer: self.config.name.clone(),
            source,
        }
    }

    fn jetstream(&self, context: &str, e: impl std::fmt::Display) -> ProducerError {
        ProducerError::JetStream {
            producer: self.config.name.clone(),
            stream: self.config.stream.clone(),
            context: context.to_owned(),
            message: e.to_string(),
        }
    }

    /// The stream's last sequence, and the log position its last message
    /// carries (0 for an empty stream): where publishing resumes.
    async fn stream_end(&self) -> Result<(u64, u64), ProducerError> {
        let mut stream = self.js.get_stream(&self.config.stream).await.map_err(|e| {
            self.jetstream(
                "looking up the stream (create it, with the subjects this producer publishes)",
                e,
            )
        })?;
        let last = stream
            .info()
            .await
            .map_err(|e| self.jetstream("reading the stream's state", e))?
            .state
            .last_sequence;
        if last == 0 {
            return Ok((0, 0));
        }
        let message = match stream.get_raw_message(last).await {
            Ok(m) => m,
            // The last message was deleted or aged out: nothing to compare with.
            Err(e) if e.kind() == async_nats::jetstream::stream::RawMessageErrorKind::NoMessageFound => {
                return Ok((last, 0));
            }
            Err(e) => return Err(self.jetstream("reading the stream's last message", e)),
        };
        let producer = message
            .headers
            .get(PRODUCER_HEADER)
            .map(|v| v.as_str().to_owned());
        if producer.as_deref() != Some(self.config.name.as_str()) {
            return Err(ProducerError::ForeignMessage {
                producer: self.config.name.clone(),
                stream: self.config.stream.clone(),
                sequence: last,
                found: producer,
            });
        }
        let position = message
            .headers
            .get(POSITION_HEADER)
            .and_then(|v| v.as_str().parse::<u64>().ok())
            .ok_or_else(|| {
                self.jetstream(
                    "reading the stream's last message",
                    "its Factum-Position header is missing or not a number",
                )
            })?;
        // The position only means something in the log it came from: check
        // that this log holds the same event there (a stream filled from
        // another database would otherwise make this one skip events).
        let id = message.headers.get("Nats-Msg-Id").map(|v| v.as_str().to_owned());
        let here = self
            .tail
            .store()
            .read_all(position, 1)
            .await
            .map_err(|source| ProducerError::Log {
                producer: self.config.name.clone(),
                position,
                source,
            })?;
        let ours = here
            .first()
            .filter(|r| r.position == position)
            .map(|r| r.metadata.event_id.to_string());
        if ours.is_none() || ours != id {
            return Err(ProducerError::ForeignLog {
                producer: self.config.name.clone(),
                stream: self.config.stream.clone(),
                position,
                message_id: id,
                event_id: ours,
            });
        }
        Ok((last, position))
    }

    fn outgoing(&self, record: &RecordedEvent) -> Option<Outgoing> {
        if let Some(types) = &self.config.stream_types
            && !types.contains(&record.stream_type)
        {
            return None;
        }
        if let Some(types) = &self.config.event_types
            && !types.contains(&record.event_type)
        {
            return None;
        }
        match &self.config.map {
            Some(map) => map(record),
            None => {
                let subject = default_subject(record, self.config.per_entity);
                Some(Outgoing {
                    subject: match &self.config.prefix {
                        Some(prefix) => format!("{prefix}.{subject}"),
                        None => subject,
                    },
                    payload: record.payload.clone(),
                })
            }
        }
    }

    async fn lead(&mut self, lease: &dyn Lease) -> Result<Led, ProducerError> {
        let stored = self
            .store
            .checkpoint(&self.key)
            .await
            .map_err(|e| self.storage(e))?;
        let (mut sequence, published) = self.stream_end().await?;
        let mut checkpoint = stored;
        if published > stored {
            // Acked before a crash, not checkpointed: record it, never publish it again.
            self.store
                .commit(&self.key, stored, published, Vec::new())
                .await
                .map_err(|e| self.storage(e))?;
            tracing::info!(producer = %self.config.name, stored, published, "resuming after the stream's last message");
            checkpoint = published;
        }
        self.shared.progress.publish(checkpoint);
        loop {
            if lease.is_lost() {
                return Ok(Led::LeaseLost);
            }
            if self.alive.has_changed().is_err() {
                return Ok(Led::Exit);
            }
            let records = self
                .tail
                .read_after(checkpoint)
                .await
                .map_err(|source| ProducerError::Log {
                    producer: self.config.name.clone(),
                    position: checkpoint + 1,
                    source,
                })?;
            let Some(to) = records.last().map(|r| r.position) else {
                tokio::select! {
                    waited = self.tail.wait(IDLE_WAIT) => waited.map_err(|source| ProducerError::Log {
                        producer: self.config.name.clone(),
                        position: checkpoint + 1,
                        source,
                    })?,
                    _ = self.alive.changed() => return Ok(Led::Exit),
                }
                continue;
            };
            // Pipelined: every publish is sent before the first ack is awaited,
            // each expecting the sequence the one before it gets.
            let mut acks = Vec::new();
            for record in &records {
                let Some(out) = self.outgoing(record) else {
                    continue;
                };
                let message = PublishMessage::build()
                    .payload(out.payload.into())
                    .message_id(record.metadata.event_id.to_string())
                    .expected_last_sequence(sequence)
                    .header(PRODUCER_HEADER, self.config.name.as_str())
                    .header(POSITION_HEADER, record.position.to_string().as_str())
                    .header(
                        STREAM_HEADER,
                        format!("{}/{} v{}", record.stream_type, record.stream_id, record.version).as_str(),
                    );
                let ack = self.js.send_publish(out.subject, message).await.map_err(|e| {
                    self.jetstream(
                        &format!("publishing the event at position {}", record.position),
                        e,
                    )
                })?;
                sequence += 1;
                acks.push((record.position, ack));
            }
            let published = acks.len();
            for (position, ack) in acks {
                let ack = ack.await.map_err(|e| {
                    self.jetstream(
                        &format!("awaiting the ack of the event at position {position}"),
                        e,
                    )
                })?;
                if ack.duplicate {
                    tracing::warn!(producer = %self.config.name, position, "JetStream took a message as a duplicate");
                }
            }
            crate::fault::point("producer.commit.before").map_err(|f| self.storage(f.into()))?;
            match self.store.commit(&self.key, checkpoint, to, Vec::new()).await {
                Ok(()) => checkpoint = to,
                Err(ConsumerStoreError::CheckpointMoved { found, .. }) => {
                    tracing::warn!(producer = %self.config.name, expected = checkpoint, found, "checkpoint moved under us");
                    return Ok(Led::LeaseLost);
                }
                Err(e) => return Err(self.storage(e)),
            }
            tracing::debug!(producer = %self.config.name, checkpoint, published, "producer batch published and acked");
            self.shared.progress.publish(checkpoint);
            self.shared.progress.progressed();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_are_tokens_of_the_stream_type_the_event_and_the_id() {
        assert_eq!(subject_token("acc 1.x*>"), "acc_1_x__");
        let mut record = RecordedEvent {
            position: 1,
            stream_type: "account".into(),
            stream_id: "acc.1".into(),
            version: 1,
            event_type: "account.withdrawn".into(),
            schema_version: 1,
            codec: crate::Codec::Json,
            payload: Vec::new(),
            metadata: crate::store::EventMetadata {
                event_id: uuid::Uuid::nil(),
                recorded_at: crate::Timestamp::EPOCH,
                command_id: uuid::Uuid::nil(),
                causation_id: None,
                correlation_id: uuid::Uuid::nil(),
            },
        };
        assert_eq!(default_subject(&record, false), "account.withdrawn");
        assert_eq!(default_subject(&record, true), "account.withdrawn.acc_1");
        record.event_type = "Withdrawn".into();
        assert_eq!(default_subject(&record, false), "account.Withdrawn");
    }
}
