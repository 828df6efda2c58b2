//! The fold of a view: events routed to row keys and folded into rows, the
//! one copy the runner (a batch against stored rows) and the test kit (a whole
//! history in memory) share.

use std::collections::{BTreeMap, HashMap};

use super::backend::{RowWrite, ViewTable};
use super::reader::RowChange;
use super::{EventMeta, ROW_CODEC, View, ViewError, ViewOp};
use crate::store::RecordedEvent;

/// Decodes `record` if the view handles its type and pushes its `(row key, event)` pairs.
fn route<V: View>(record: &RecordedEvent, out: &mut Vec<(String, V::Routed)>) -> Result<(), ViewError> {
    let meta = EventMeta::of(record);
    // A key expression is user code: a panic in it is the view's failure, like one in a handler.
    crate::unwind::guard(|| V::route(record, &meta, out))
        .map_err(|message| panicked::<V>(&meta, &record.event_type, message))?
        .map_err(|source| ViewError::Decode {
            view: V::NAME,
            position: record.position,
            event_type: record.event_type.clone(),
            source,
        })
}

/// Folds one routed event into a row (`None`: no row yet, or deleted). A
/// panicking handler fails the batch; the half-folded row is never written.
fn fold_into<V: View>(
    row: &mut Option<V>,
    event: V::Routed,
    meta: &EventMeta<'_>,
    event_type: &str,
) -> Result<(), ViewError> {
    let slot = row.get_or_insert_with(V::default);
    let op = crate::unwind::guard(|| slot.apply(event, meta))
        .map_err(|message| panicked::<V>(meta, event_type, message))?;
    if op == ViewOp::Delete {
        *row = None;
    }
    Ok(())
}

fn panicked<V: View>(meta: &EventMeta<'_>, event_type: &str, message: String) -> ViewError {
    ViewError::Panicked {
        view: V::NAME,
        event_type: event_type.to_owned(),
        stream: format!("{}/{}", meta.stream_type, meta.stream_id),
        version: meta.version,
        position: meta.position,
        message,
    }
}

/// Folds a whole history, in order, into rows by key, from empty rows.
pub(crate) fn fold_records<V: View>(records: &[RecordedEvent]) -> Result<BTreeMap<String, V>, ViewError> {
    let mut rows: BTreeMap<String, Option<V>> = BTreeMap::new();
    let mut routed = Vec::new();
    for record in records {
        route::<V>(record, &mut routed)?;
        let meta = EventMeta::of(record);
        for (key, event) in routed.drain(..) {
            fold_into(rows.entry(key).or_default(), event, &meta, &record.event_type)?;
        }
    }
    Ok(rows.into_iter().filter_map(|(k, row)| Some((k, row?))).collect())
}

/// A row touched by the batch: loaded once, folded, written once.
struct Touched<V> {
    key: String,
    row: Option<V>,
}

/// Folds `records` into the rows they touch. Returns the row writes and, when
/// asked, the changes for the live stream.
pub(crate) async fn fold_batch<V: View>(
    table: &dyn ViewTable,
    records: &[RecordedEvent],
    to: u64,
    want_changes: bool,
) -> Result<(Vec<RowWrite>, Vec<RowChange<V>>), ViewError> {
    // Pass 1: decode the events the view handles and find their rows.
    let mut routed: Vec<(usize, usize, V::Routed)> = Vec::new();
    let mut slots: HashMap<String, usize> = HashMap::new();
    let mut touched: Vec<Touched<V>> = Vec::new();
    let mut out = Vec::new();
    for (i, record) in records.iter().enumerate() {
        route::<V>(record, &mut out)?;
        for (key, event) in out.drain(..) {
            let slot = match slots.get(&key) {
                Some(&slot) => slot,
                None => {
                    let slot = touched.len();
                    slots.insert(key.clone(), slot);
                    touched.push(Touched { key, row: None });
                    slot
                }
            };
            routed.push((i, slot, event));
        }
    }
    if touched.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    // Load every touched row in one read.
    let keys: Vec<String> = touched.iter().map(|t| t.key.clone()).collect();
    let loaded = table.get_many(&keys).await.map_err(|source| ViewError::Storage {
        view: V::NAME,
        source,
    })?;
    for (slot, bytes) in touched.iter_mut().zip(loaded) {
        if let Some(bytes) = bytes {
            slot.row = Some(ROW_CODEC.decode(&bytes).map_err(|source| ViewError::Row {
                view: V::NAME,
                key: slot.key.clone(),
                source,
            })?);
        }
    }
    // Pass 2: fold.
    for (i, slot, event) in routed {
        let meta = EventMeta::of(&records[i]);
        fold_into(&mut touched[slot].row, event, &meta, &records[i].event_type)?;
    }
    // Encode each touched row once.
    let mut writes = Vec::with_capacity(touched.len());
    let mut changes = Vec::new();
    for slot in touched {
        let write = match &slot.row {
            Some(row) => RowWrite {
                row: Some(ROW_CODEC.encode(row).map_err(|source| ViewError::Row {
                    view: V::NAME,
                    key: slot.key.clone(),
                    source,
                })?),
                indexes: row.index_values(),
                key: slot.key.clone(),
            },
            None => RowWrite {
                key: slot.key.clone(),
                row: None,
                indexes: Vec::new(),
            },
        };
        writes.push(write);
        if want_changes {
            changes.push(RowChange {
                key: slot.key,
                row: slot.row,
                position: to,
            });
        }
    }
    Ok((writes, changes))
}
