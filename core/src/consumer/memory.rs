//! Consumer checkpoints and dead letters in memory: for tests and for apps
//! whose log is a [`MemoryStore`](crate::MemoryStore) (gone with the process, like the log).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;

use super::backend::{ConsumerStore, ConsumerStoreError, DeadLetter, LetterState};
use crate::process::{Lease, LocalLease};

/// A [`ConsumerStore`] in memory.
#[derive(Debug, Default)]
pub struct MemoryConsumerStore {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    checkpoints: HashMap<String, u64>,
    letters: BTreeMap<(String, u64), DeadLetter>,
}

impl MemoryConsumerStore {
    /// An empty store.
    pub fn new() -> Self {
        MemoryConsumerStore::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl ConsumerStore for MemoryConsumerStore {
    fn backend(&self) -> &'static str {
        "memory"
    }

    async fn checkpoint(&self, consumer: &str) -> Result<u64, ConsumerStoreError> {
        Ok(self.lock().checkpoints.get(consumer).copied().unwrap_or(0))
    }

    async fn checkpoints(&self) -> Result<Vec<(String, u64)>, ConsumerStoreError> {
        let mut all: Vec<_> = self
            .lock()
            .checkpoints
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        all.sort();
        Ok(all)
    }

    async fn commit(
        &self,
        consumer: &str,
        from: u64,
        to: u64,
        letters: Vec<DeadLetter>,
    ) -> Result<(), ConsumerStoreError> {
        let mut inner = self.lock();
        let found = inner.checkpoints.get(consumer).copied().unwrap_or(0);
        if found != from {
            return Err(ConsumerStoreError::CheckpointMoved {
                consumer: consumer.to_owned(),
                expected: from,
                found,
            });
        }
        inner.checkpoints.insert(consumer.to_owned(), to);
        for letter in letters {
            inner
                .letters
                .insert((consumer.to_owned(), letter.position), letter);
        }
        Ok(())
    }

    async fn update(&self, letter: DeadLetter, expected: LetterState) -> Result<(), ConsumerStoreError> {
        let mut inner = self.lock();
        match inner.letters.get_mut(&(letter.consumer.clone(), letter.position)) {
            Some(stored) if stored.state != expected => Err(ConsumerStoreError::LetterMoved {
                consumer: letter.consumer,
                position: letter.position,
                expected,
                found: stored.state,
            }),
            Some(stored) => {
                *stored = letter;
                Ok(())
            }
            None => Err(ConsumerStoreError::NoLetter {
                consumer: letter.consumer,
                position: letter.position,
            }),
        }
    }

    async fn letters(
        &self,
        consumer: &str,
        states: Option<&[LetterState]>,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, ConsumerStoreError> {
        let inner = self.lock();
        let start = (consumer.to_owned(), after.map_or(0, |a| a.saturating_add(1)));
        Ok(inner
            .letters
            .range(start..)
            .take_while(|((c, _), _)| c == consumer)
            .map(|(_, l)| l)
            .filter(|l| states.is_none_or(|s| s.contains(&l.state)))
            .take(limit)
            .cloned()
            .collect())
    }

    async fn try_lease(&self, _consumer: &str) -> Result<Option<Box<dyn Lease>>, ConsumerStoreError> {
        Ok(Some(Box::new(LocalLease)))
    }
}
