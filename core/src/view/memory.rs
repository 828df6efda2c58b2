//! View tables in process memory: a hash map per table (O(1) `get`), a sorted
//! key set for listing and key ranges, and sorted indexes (for index ranges). For tests, benchmarks and views
//! that are rebuilt from the log at every start.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::{Arc, Mutex, RwLock};

use async_trait::async_trait;

use super::backend::{
    Commit, IndexedRow, TableId, TableInfo, TableState, ViewStore, ViewStoreError, ViewTable, tighter_lower,
};
use crate::process::{Lease, LocalLease};

/// An in-memory [`ViewStore`]. Cloning shares the tables.
#[derive(Clone, Default)]
pub struct MemoryViewStore {
    tables: Arc<Mutex<Tables>>,
}

/// Every table, with its role.
type Tables = HashMap<TableId, (TableState, Arc<MemoryTable>)>;

impl std::fmt::Debug for MemoryViewStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryViewStore").finish_non_exhaustive()
    }
}

impl MemoryViewStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

struct MemoryTable {
    id: TableId,
    data: RwLock<Data>,
}

#[derive(Default)]
struct Data {
    checkpoint: u64,
    rows: HashMap<String, Vec<u8>>,
    order: BTreeSet<String>,
    /// index name → value → keys, both in order for index ranges.
    index: HashMap<&'static str, BTreeMap<String, BTreeSet<String>>>,
    /// key → its index entries, to remove them when the row changes.
    entries: HashMap<String, Vec<(&'static str, String)>>,
}

impl Data {
    fn unindex(&mut self, key: &str) {
        if let Some(old) = self.entries.remove(key) {
            for (name, value) in old {
                if let Some(by_value) = self.index.get_mut(name)
                    && let Some(keys) = by_value.get_mut(&value)
                {
                    keys.remove(key);
                    if keys.is_empty() {
                        by_value.remove(&value);
                    }
                }
            }
        }
    }
}

#[async_trait]
impl ViewTable for MemoryTable {
    fn id(&self) -> &TableId {
        &self.id
    }

    async fn checkpoint(&self) -> Result<u64, ViewStoreError> {
        Ok(self.data.read().unwrap_or_else(|e| e.into_inner()).checkpoint)
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, ViewStoreError> {
        Ok(self
            .data
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .rows
            .get(key)
            .cloned())
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, ViewStoreError> {
        let data = self.data.read().unwrap_or_else(|e| e.into_inner());
        Ok(keys.iter().map(|k| data.rows.get(k).cloned()).collect())
    }

    async fn find(
        &self,
        index: &str,
        value: &str,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, ViewStoreError> {
        let data = self.data.read().unwrap_or_else(|e| e.into_inner());
        let Some(keys) = data.index.get(index).and_then(|v| v.get(value)) else {
            return Ok(Vec::new());
        };
        Ok(keys
            .iter()
            .take(limit)
            .filter_map(|k| data.rows.get(k).map(|r| (k.clone(), r.clone())))
            .collect())
    }

    async fn list(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, ViewStoreError> {
        let data = self.data.read().unwrap_or_else(|e| e.into_inner());
        let lower = match after {
            Some(a) => Bound::Excluded(a),
            None => Bound::Unbounded,
        };
        Ok(data
            .order
            .range::<str, _>((lower, Bound::Unbounded))
            .take(limit)
            .filter_map(|k| data.rows.get(k).map(|r| (k.clone(), r.clone())))
            .collect())
    }

    async fn range(
        &self,
        from: Bound<&str>,
        to: Bound<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, ViewStoreError> {
        if empty_range(from, to) {
            return Ok(Vec::new());
        }
        let data = self.data.read().unwrap_or_else(|e| e.into_inner());
        Ok(data
            .order
            .range::<str, _>((from, to))
            .take(limit)
            .filter_map(|k| data.rows.get(k).map(|r| (k.clone(), r.clone())))
            .collect())
    }

    async fn find_range(
        &self,
        index: &str,
        from: Bound<&str>,
        to: Bound<&str>,
        after: Option<(&str, &str)>,
        limit: usize,
    ) -> Result<Vec<IndexedRow>, ViewStoreError> {
        let from = match after {
            Some((value, _)) => tighter_lower(from, Bound::Included(value)),
            None => from,
        };
        if empty_range(from, to) {
            return Ok(Vec::new());
        }
        let data = self.data.read().unwrap_or_else(|e| e.into_inner());
        let Some(by_value) = data.index.get(index) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for (value, keys) in by_value.range::<str, _>((from, to)) {
            let keys = match after {
                Some((v, k)) if value == v => keys.range::<str, _>((Bound::Excluded(k), Bound::Unbounded)),
                _ => keys.range::<str, _>(..),
            };
            for key in keys {
                if out.len() == limit {
                    return Ok(out);
                }
                if let Some(row) = data.rows.get(key) {
                    out.push(IndexedRow {
                        value: value.clone(),
                        key: key.clone(),
                        row: row.clone(),
                    });
                }
            }
        }
        Ok(out)
    }

    async fn commit(&self, commit: Commit) -> Result<(), ViewStoreError> {
        let mut data = self.data.write().unwrap_or_else(|e| e.into_inner());
        if data.checkpoint != commit.from {
            return Err(ViewStoreError::CheckpointMoved {
                table: self.id.clone(),
                expected: commit.from,
                found: data.checkpoint,
            });
        }
        for write in commit.rows {
            data.unindex(&write.key);
            match write.row {
                Some(row) => {
                    if data.rows.insert(write.key.clone(), row).is_none() {
                        data.order.insert(write.key.clone());
                    }
                    for (name, value) in &write.indexes {
                        data.index
                            .entry(name)
                            .or_default()
                            .entry(value.clone())
                            .or_default()
                            .insert(write.key.clone());
                    }
                    if !write.indexes.is_empty() {
                        data.entries.insert(write.key, write.indexes);
                    }
                }
                None => {
                    data.rows.remove(&write.key);
                    data.order.remove(&write.key);
                }
            }
        }
        data.checkpoint = commit.to;
        Ok(())
    }
}

/// True when no value lies within `from` and `to` (`BTreeMap::range`
/// panics on such bounds; the other stores answer them with no rows).
fn empty_range(from: Bound<&str>, to: Bound<&str>) -> bool {
    match (from, to) {
        (Bound::Included(a), Bound::Included(b)) => a > b,
        (Bound::Included(a) | Bound::Excluded(a), Bound::Included(b) | Bound::Excluded(b)) => a >= b,
        _ => false,
    }
}

#[async_trait]
impl ViewStore for MemoryViewStore {
    fn backend(&self) -> &'static str {
        "memory"
    }

    async fn tables(&self, view: &str) -> Result<Vec<TableInfo>, ViewStoreError> {
        let tables = self.tables.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::new();
        for (id, (state, table)) in tables.iter().filter(|(id, _)| id.view == view) {
            out.push(TableInfo {
                id: id.clone(),
                state: *state,
                position: table.data.read().unwrap_or_else(|e| e.into_inner()).checkpoint,
            });
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    async fn open(
        &self,
        id: &TableId,
        _indexes: &[&'static str],
        state: TableState,
    ) -> Result<Arc<dyn ViewTable>, ViewStoreError> {
        let mut tables = self.tables.lock().unwrap_or_else(|e| e.into_inner());
        let (_, table) = tables.entry(id.clone()).or_insert_with(|| {
            (
                state,
                Arc::new(MemoryTable {
                    id: id.clone(),
                    data: RwLock::new(Data::default()),
                }),
            )
        });
        Ok(table.clone())
    }

    async fn activate(&self, id: &TableId) -> Result<(), ViewStoreError> {
        let mut tables = self.tables.lock().unwrap_or_else(|e| e.into_inner());
        if !tables.contains_key(id) {
            return Err(ViewStoreError::NoTable { table: id.clone() });
        }
        tables.retain(|other, (state, _)| other.view != id.view || *state != TableState::Retired);
        for (other, (state, _)) in tables.iter_mut().filter(|(other, _)| other.view == id.view) {
            *state = if other == id {
                TableState::Active
            } else {
                TableState::Retired
            };
        }
        Ok(())
    }

    async fn drop_retired(&self, view: &str) -> Result<(), ViewStoreError> {
        let mut tables = self.tables.lock().unwrap_or_else(|e| e.into_inner());
        tables.retain(|other, (state, _)| other.view != view || *state != TableState::Retired);
        Ok(())
    }

    async fn try_lease(&self, _view: &str) -> Result<Option<Box<dyn Lease>>, ViewStoreError> {
        Ok(Some(Box::new(LocalLease)))
    }
}
