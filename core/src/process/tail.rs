//! The one way factum follows the log's tail: read a batch after a
//! checkpoint; when there is none, wait for the store's head to move.

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
