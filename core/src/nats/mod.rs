//! The gateway to NATS JetStream (feature `nats`): a [`Producer`] publishes
//! chosen events of the log — or a public message mapped from them, so
//! internal events stay private — to JetStream subjects (design §2
//! "Consumers and producers").
//!
//! What a producer promises:
//! - **The log is the outbox.** Nothing is published at commit time; the
//!   producer follows the log from its checkpoint (a process of the process
//!   layer: one runner across nodes, retries with a failure streak), so an
//!   event committed is published even if every process dies right after the commit.
//! - **Exactly once per message id, beyond the duplicate window.** Each
//!   message's id (`Nats-Msg-Id`) is the event's id, and it carries
//!   `Factum-Producer` and `Factum-Position` headers. Publishes are
//!   pipelined, each with `Nats-Expected-Last-Sequence` set to the sequence
//!   the one before it gets, so the stream only ever holds a *prefix* of what
//!   was sent (a publish that fails makes every later one of the window fail
//!   too, instead of leaving a hole). On start the producer resumes after the
//!   later of its stored checkpoint and the `Factum-Position` of the stream's
//!   last message: a crash between the acks and the checkpoint commit does
//!   not publish again, whether the restart comes within JetStream's
//!   duplicate window or an hour later. The cost: one producer per JetStream
//!   stream (another publisher's message is reported, not overwritten).
//! - **Acks are awaited** before the checkpoint moves; a broker outage fails
//!   the batch, the runner retries every second, and it resumes where the
//!   stream ends.
//!
//! ```no_run
//! # async fn f(app: factum::App) -> Result<(), Box<dyn std::error::Error>> {
//! use factum::nats::Producer;
//! let client = factum::nats::async_nats::connect("127.0.0.1:4222").await?;
//! let producer = Producer::new("bank_events", "BANK")   // its checkpoint name, the JetStream stream
//!     .stream_types(["account"])                         // which events: every event of accounts
//!     .per_entity()                                      // subjects `account.withdrawn.<id>`
//!     .start(&app, client)
//!     .await?;
//! producer.wait_for(app.store().head().await?).await?; // published with acks up to the head
//! # Ok(()) }
//! ```

mod producer;
mod topic;

/// The NATS client factum publishes with, re-exported so an app need not pin its own.
pub use async_nats;

pub use producer::{Outgoing, Producer, ProducerError, ProducerHandle, subject_token};
pub use topic::{TopicConsumer, TopicContext, TopicHandler};

/// The header naming the producer that published a message.
pub const PRODUCER_HEADER: &str = "Factum-Producer";
/// The header carrying the event's global position in the log.
pub const POSITION_HEADER: &str = "Factum-Position";
/// The header carrying the event's stream (`type/id`) and version.
pub const STREAM_HEADER: &str = "Factum-Stream";
