//! The one way factum follows the log's tail: read a batch after a
//! checkpoint; when there is none, wait for the store's head to move. A
//! reader that handles only some event types steps over a corrupt record of
//! another type instead of halting on it ([`Tail::read_for`]).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::store::{EventStore, RecordedEvent, StoreError};

/// Reads the global log in batches after a checkpoint, and waits for new
/// commits on the store's head watch instead of polling.
pub struct Tail {
    store: Arc<dyn EventStore>,
    head: watch::Receiver<u64>,
    batch: usize,
}

impl std::fmt::Debug for Tail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tail")
            .field("store", &self.store.backend())
            .field("batch", &self.batch)
            .finish_non_exhaustive()
    }
}

impl Tail {
    /// Follows `store`, reading at most `batch` events at a time.
    pub fn new(store: Arc<dyn EventStore>, batch: usize) -> Self {
        let head = store.watch_head();
        Tail {
            store,
            head,
            batch: batch.max(1),
        }
    }

    /// The store followed.
    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.store
    }

    /// The events after `checkpoint`, at most one batch, in position order
    /// (empty at the head). Marks the head seen, so a later
    /// [`wait`](Tail::wait) returns only on a newer commit.
    pub async fn read_after(&mut self, checkpoint: u64) -> Result<Vec<RecordedEvent>, StoreError> {
        self.read_after_at_most(checkpoint, self.batch).await
    }

    async fn read_after_at_most(
        &mut self,
        checkpoint: u64,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.head.borrow_and_update();
        self.store.read_all(checkpoint + 1, max).await
    }

    /// The events after `checkpoint`, at most one batch, for a reader that
    /// handles only the event types `handles` accepts (a view, a consumer).
    ///
    /// A record the store reports as [`StoreError::Corrupt`] halts only the
    /// readers that handle it: when its event type is readable and `handles`
    /// refuses it, it is stepped over (logged as a warning, never silently)
    /// and [`Batch::through`] moves past it, so the reader's checkpoint does
    /// too; a record of a handled type, or whose type cannot be read, fails
    /// the read as before, once the events before it were handed out. A
    /// checksum cannot say which field was damaged: if it was the type, a
    /// record of a handled type may be stepped over by this rule.
    pub async fn read_for(
        &mut self,
        checkpoint: u64,
        handles: impl Fn(&str) -> bool,
    ) -> Result<Batch, StoreError> {
        self.head.borrow_and_update();
        let mut through = checkpoint;
        loop {
            let from = through + 1;
            let error = match self.store.read_all(from, self.batch).await {
                Ok(events) => return Ok(Batch::of(events, through)),
                Err(error) => error,
            };
            let StoreError::Corrupt {
                position, event_type, ..
            } = &error
            else {
                return Err(error);
            };
            let position = *position;
            if position < from {
                // Unknown position: nothing to step over, nothing before it to hand out.
                return Err(error);
            }
            if position > from {
                // The sound records before it first; the next read meets it again.
                let before = usize::try_from(position - from).unwrap_or(usize::MAX);
                let events = self.store.read_all(from, before).await?;
                return Ok(Batch::of(events, through));
            }
            match event_type {
                Some(event_type) if !handles(event_type) => {
                    tracing::warn!(
                        position,
                        event_type = &**event_type,
                        %error,
                        "stepping over a corrupt record of a type this reader does not handle"
                    );
                    through = position;
                }
                _ => return Err(error),
            }
        }
    }

    /// Waits until the store's head moves past what the last read saw, or
    /// `idle` passes (so a runner re-checks its lease and controls).
    /// Fails with [`StoreError::Closed`] when the store's writer is gone.
    pub async fn wait(&mut self, idle: Duration) -> Result<(), StoreError> {
        tokio::select! {
            changed = self.head.changed() => changed.map_err(|_| StoreError::Closed { backend: self.store.backend() }),
            _ = tokio::time::sleep(idle) => Ok(()),
        }
    }

    /// The highest position the last read could see, as the head watch has it.
    pub fn head(&self) -> u64 {
        *self.head.borrow()
    }
}

/// What [`Tail::read_for`] read: the events, and how far the reader may
/// move its checkpoint (past the last event, or past corrupt records it
/// stepped over).
#[derive(Debug)]
pub struct Batch {
    /// The readable events, in position order.
    pub events: Vec<RecordedEvent>,
    /// The position the reader has now dealt with: the last event's, or a
    /// later stepped-over record's; the checkpoint it was given when neither.
    pub through: u64,
}

impl Batch {
    fn of(events: Vec<RecordedEvent>, stepped: u64) -> Batch {
        let through = events.last().map_or(stepped, |e| e.position.max(stepped));
        Batch { events, through }
    }
}

/// A follower of the global log one event at a time: catches up from a
/// position, then waits for new commits. Built on [`Tail`].
pub struct Subscription {
    tail: Tail,
    next_position: u64,
    buffer: VecDeque<RecordedEvent>,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("next_position", &self.next_position)
            .finish_non_exhaustive()
    }
}

impl Subscription {
    /// Follows `store` from `from_position` (inclusive; 1 is the start of the log).
    pub fn new(store: Arc<dyn EventStore>, from_position: u64) -> Self {
        Subscription {
            tail: Tail::new(store, 1024),
            next_position: from_position.max(1),
            buffer: VecDeque::new(),
        }
    }

    /// The position the next event will have at least.
    pub fn next_position(&self) -> u64 {
        self.next_position
    }

    /// The next event, waiting for one to be committed if the log is read to its end.
    pub async fn next(&mut self) -> Result<RecordedEvent, StoreError> {
        loop {
            if let Some(event) = self.buffer.pop_front() {
                self.next_position = event.position + 1;
                return Ok(event);
            }
            let batch = self.tail.read_after(self.next_position - 1).await?;
            if batch.is_empty() {
                // No idle bound: a subscriber has nothing else to re-check.
                self.tail.wait(Duration::MAX).await?;
            } else {
                self.buffer.extend(batch);
            }
        }
    }

    /// Up to `max` events that are available now, without waiting.
    pub async fn next_batch(&mut self, max: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        let mut out: Vec<RecordedEvent> = self.buffer.drain(..self.buffer.len().min(max)).collect();
        if out.len() < max {
            let after = out.last().map_or(self.next_position - 1, |e| e.position);
            out.extend(self.tail.read_after_at_most(after, max - out.len()).await?);
        }
        if let Some(last) = out.last() {
            self.next_position = last.position + 1;
        }
        Ok(out)
    }
}
