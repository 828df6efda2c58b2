//! Timers in process memory, beside a [`MemoryStore`](crate::MemoryStore):
//! a map by name and an ordered set by due time, so handing out the due
//! timers, or a page of the pending ones, costs O(log n + page) however many
//! are pending.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::ops::Bound;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::backend::{After, Firing, KEPT_FIRINGS, Settlement, StoredTimer, TimerStore, TimerStoreError};
use crate::process::{Lease, LocalLease};
use crate::time::Timestamp;

/// An in-memory [`TimerStore`]. Cloning shares the timers.
#[derive(Clone, Default)]
pub struct MemoryTimerStore {
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    by_name: HashMap<String, StoredTimer>,
    /// Every timer, in the order they are due (blocked ones are skipped when read).
    by_due: BTreeSet<(Timestamp, String)>,
    /// Newest last.
    firings: VecDeque<Firing>,
}

impl State {
    /// The timers in due order, after `(due, name)` when given.
    fn page(&self, after: Option<(Timestamp, &str)>) -> impl Iterator<Item = &StoredTimer> {
        let start = match after {
            Some((due, name)) => Bound::Excluded((due, name.to_owned())),
            None => Bound::Unbounded,
        };
        self.by_due
            .range((start, Bound::Unbounded))
            .filter_map(|(_, name)| self.by_name.get(name))
    }

    fn remove(&mut self, name: &str) -> Option<StoredTimer> {
        let old = self.by_name.remove(name)?;
        self.by_due.remove(&(old.due, old.name.clone()));
        Some(old)
    }
}

impl std::fmt::Debug for MemoryTimerStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryTimerStore").finish_non_exhaustive()
    }
}

impl MemoryTimerStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl TimerStore for MemoryTimerStore {
    fn backend(&self) -> &'static str {
        "memory"
    }

    async fn schedule(&self, timer: StoredTimer) -> Result<(), TimerStoreError> {
        let mut state = self.state();
        state.remove(&timer.name);
        state.by_due.insert((timer.due, timer.name.clone()));
        state.by_name.insert(timer.name.clone(), timer);
        Ok(())
    }

    async fn cancel(&self, name: &str) -> Result<bool, TimerStoreError> {
        Ok(self.state().remove(name).is_some())
    }

    async fn due(
        &self,
        now: Timestamp,
        after: Option<(Timestamp, &str)>,
        limit: usize,
    ) -> Result<Vec<StoredTimer>, TimerStoreError> {
        let state = self.state();
        Ok(state
            .page(after)
            .take_while(|t| t.due <= now)
            .filter(|t| !t.blocked)
            .take(limit)
            .cloned()
            .collect())
    }

    async fn next_due(&self) -> Result<Option<Timestamp>, TimerStoreError> {
        Ok(self.state().page(None).find(|t| !t.blocked).map(|t| t.due))
    }

    async fn pending(
        &self,
        after: Option<(Timestamp, &str)>,
        limit: usize,
    ) -> Result<Vec<StoredTimer>, TimerStoreError> {
        Ok(self.state().page(after).take(limit).cloned().collect())
    }

    async fn settle(&self, batch: Vec<Settlement>) -> Result<(), TimerStoreError> {
        let mut state = self.state();
        for s in batch {
            let name = &s.firing.name;
            let current = state
                .by_name
                .get(name)
                .is_some_and(|t| t.schedule_id == s.schedule_id);
            if current {
                match s.after {
                    After::Done => {
                        state.remove(name);
                    }
                    After::Retry | After::Block => {
                        if let Some(timer) = state.by_name.get_mut(name) {
                            timer.attempts = timer.attempts.saturating_add(1);
                            timer.last_error = s.firing.outcome.message().map(str::to_owned);
                            timer.blocked |= s.after == After::Block;
                        }
                    }
                }
            }
            state.firings.push_back(s.firing);
            if state.firings.len() > KEPT_FIRINGS {
                state.firings.pop_front();
            }
        }
        Ok(())
    }

    async fn unblock(&self, only: Option<(&str, &str)>) -> Result<(), TimerStoreError> {
        for timer in self.state().by_name.values_mut() {
            if only
                .is_none_or(|(entity, command)| timer.entity_type == entity && timer.command_type == command)
            {
                timer.blocked = false;
            }
        }
        Ok(())
    }

    async fn recent_firings(&self, limit: usize) -> Result<Vec<Firing>, TimerStoreError> {
        Ok(self.state().firings.iter().rev().take(limit).cloned().collect())
    }

    async fn try_lease(&self) -> Result<Option<Box<dyn Lease>>, TimerStoreError> {
        Ok(Some(Box::new(LocalLease)))
    }

    async fn try_process_lease(&self, _process: &str) -> Result<Option<Box<dyn Lease>>, TimerStoreError> {
        Ok(Some(Box::new(LocalLease)))
    }
}
