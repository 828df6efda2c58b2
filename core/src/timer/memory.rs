//! Timers in process memory, beside a [`MemoryStore`](crate::MemoryStore):
//! a map by name and an ordered set of the unblocked ones by due time, so
//! handing out the due timers costs O(log n + due) however many are pending.

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
    /// The unblocked timers, in the order they are due.
    by_due: BTreeSet<(Timestamp, String)>,
    /// Newest last.
    firings: VecDeque<Firing>,
}

impl State {
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
        if !timer.blocked {
            state.by_due.insert((timer.due, timer.name.clone()));
        }
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
        let start = match after {
            Some((due, name)) => Bound::Excluded((due, name.to_owned())),
            None => Bound::Unbounded,
        };
        Ok(state
            .by_due
            .range((start, Bound::Unbounded))
            .take_while(|(due, _)| *due <= now)
            .take(limit)
            .filter_map(|(_, name)| state.by_name.get(name).cloned())
            .collect())
    }

    async fn next_due(&self) -> Result<Option<Timestamp>, TimerStoreError> {
        Ok(self.state().by_due.first().map(|(due, _)| *due))
    }

    async fn pending(
        &self,
        after: Option<(Timestamp, &str)>,
        limit: usize,
    ) -> Result<Vec<StoredTimer>, TimerStoreError> {
        let state = self.state();
        let mut all: Vec<&StoredTimer> = state
            .by_name
            .values()
            .filter(|t| after.is_none_or(|(due, name)| (t.due, t.name.as_str()) > (due, name)))
            .collect();
        all.sort_unstable_by(|a, b| (a.due, &a.name).cmp(&(b.due, &b.name)));
        Ok(all.into_iter().take(limit).cloned().collect())
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
                        if let Some(mut timer) = state.remove(name) {
                            timer.attempts = timer.attempts.saturating_add(1);
                            timer.last_error = s.firing.outcome.message().map(str::to_owned);
                            timer.blocked |= s.after == After::Block;
                            if !timer.blocked {
                                state.by_due.insert((timer.due, timer.name.clone()));
                            }
                            state.by_name.insert(timer.name.clone(), timer);
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
        let mut state = self.state();
        let State { by_name, by_due, .. } = &mut *state;
        for timer in by_name.values_mut() {
            let matches = only
                .is_none_or(|(entity, command)| timer.entity_type == entity && timer.command_type == command);
            if timer.blocked && matches {
                timer.blocked = false;
                by_due.insert((timer.due, timer.name.clone()));
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
}
