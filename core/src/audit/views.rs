//! Regenerating a view with new logic: build its table beside the live one
//! ([`rebuild_view`]), compare the two row by row ([`diff_view`]), then make
//! the new one live ([`swap_view`]). The build and the swap write view
//! tables (never events) and take the view's lease, so they refuse while
//! another process runs the view on PostgreSQL; the diff only reads.
//!
//! A table left building is one the view's own runner resumes and swaps in
//! when it next leads (the crash-resume rule of the blue/green rebuild), so
//! look at the diff before starting the application again.

use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

use super::json::{FieldChange, diff};
use super::{AuditError, OnProgress};
use crate::store::EventStore;
use crate::view::{SideBuild, TableInfo, TableState, ViewRegistration, ViewStore, ViewTable, registered};

/// Rows per read of a view table while diffing.
const ROW_PAGE: usize = 1000;

/// A table of a view and where it stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TableSummary {
    /// The version of the view's logic that built it.
    pub version: u32,
    /// Which build of that version.
    pub build: u32,
    /// `active`, `building` or `retired`.
    pub state: &'static str,
    /// Its checkpoint: the last global position folded in.
    pub position: u64,
}

impl TableSummary {
    fn of(info: &TableInfo) -> Self {
        TableSummary {
            version: info.id.version,
            build: info.id.build,
            state: match info.state {
                TableState::Active => "active",
                TableState::Building => "building",
                TableState::Retired => "retired",
            },
            position: info.position,
        }
    }
}

/// How a row differs between the live table and the one built beside it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RowChange {
    /// Only the new table has the row.
    Added,
    /// Only the live table has it.
    Removed,
    /// Both have it, with different fields.
    Changed,
}

/// One row that differs.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RowDiff {
    /// The row key.
    pub key: String,
    /// How it differs.
    pub change: RowChange,
    /// The fields that differ (for an added or removed row, every field).
    pub fields: Vec<FieldChange>,
}

/// The live table against the one built beside it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ViewDiff {
    /// The view.
    pub view: String,
    /// The live table.
    pub live: TableSummary,
    /// The table built beside it.
    pub rebuilt: TableSummary,
    /// The rows that differ, in key order.
    pub rows: Vec<RowDiff>,
    /// How many rows are the same in both.
    pub unchanged: u64,
}

fn registration(name: &str) -> Result<&'static ViewRegistration, AuditError> {
    registered().find(|r| r.name == name).ok_or_else(|| {
        let mut known: Vec<&'static str> = registered().map(|r| r.name).collect();
        known.sort_unstable();
        AuditError::UnknownView {
            name: name.to_owned(),
            known,
        }
    })
}

async fn side(
    store: Arc<dyn EventStore>,
    views: Arc<dyn ViewStore>,
    name: &str,
    batch: usize,
    progress: Option<OnProgress>,
    swap: bool,
) -> Result<TableSummary, AuditError> {
    let reg = registration(name)?;
    let info = (reg.side)(SideBuild {
        store,
        views,
        batch,
        progress,
        swap,
    })
    .await?;
    Ok(TableSummary::of(&info))
}

/// Builds a new table of view `name` (with this program's logic and version)
/// beside the live one, from the start of the log up to its head, and leaves
/// it building: queries keep reading the live table. `batch` events are
/// folded per transaction (the runner's default is 4096); a crash part-way
/// leaves the table at its last commit, and [`swap_view`] resumes it there.
pub async fn rebuild_view(
    store: Arc<dyn EventStore>,
    views: Arc<dyn ViewStore>,
    name: &str,
    batch: usize,
    progress: Option<OnProgress>,
) -> Result<TableSummary, AuditError> {
    side(store, views, name, batch, progress, false).await
}

/// Catches the table [`rebuild_view`] built up with the log's head and makes
/// it the live one; the old table is retired.
pub async fn swap_view(
    store: Arc<dyn EventStore>,
    views: Arc<dyn ViewStore>,
    name: &str,
    batch: usize,
    progress: Option<OnProgress>,
) -> Result<TableSummary, AuditError> {
    side(store, views, name, batch, progress, true).await
}

/// Compares the live table of view `name` with the newest table built beside
/// it, row by row and field by field. Reads both in key order, a page at a time.
pub async fn diff_view(views: Arc<dyn ViewStore>, name: &str) -> Result<ViewDiff, AuditError> {
    let reg = registration(name)?;
    let store_err = |source| AuditError::ViewStore {
        view: name.to_owned(),
        source,
    };
    let infos = views.tables(reg.name).await.map_err(store_err)?;
    let live = infos
        .iter()
        .find(|t| t.state == TableState::Active)
        .ok_or_else(|| AuditError::NoTable {
            view: name.to_owned(),
            reason: "it has no live table yet (the application never ran it)".to_owned(),
        })?;
    let rebuilt = infos
        .iter()
        .filter(|t| t.state == TableState::Building)
        .max_by_key(|t| (t.id.version, t.id.build))
        .ok_or_else(|| AuditError::NoTable {
            view: name.to_owned(),
            reason: "no table is built beside the live one; run `rebuild-view` first".to_owned(),
        })?;
    let a = views
        .open(&live.id, reg.indexes, TableState::Active)
        .await
        .map_err(store_err)?;
    let b = views
        .open(&rebuilt.id, reg.indexes, TableState::Building)
        .await
        .map_err(store_err)?;
    let mut left = Rows::new(a, name);
    let mut right = Rows::new(b, name);
    let mut rows = Vec::new();
    let mut unchanged = 0;
    loop {
        let (l, r) = (left.peek().await?, right.peek().await?);
        let order = match (l, r) {
            (None, None) => break,
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (Some((lk, _)), Some((rk, _))) => lk.cmp(rk),
        };
        match order {
            std::cmp::Ordering::Less => {
                let (key, row) = left.take();
                rows.push(RowDiff {
                    fields: whole(&row, false),
                    key,
                    change: RowChange::Removed,
                });
            }
            std::cmp::Ordering::Greater => {
                let (key, row) = right.take();
                rows.push(RowDiff {
                    fields: whole(&row, true),
                    key,
                    change: RowChange::Added,
                });
            }
            std::cmp::Ordering::Equal => {
                let ((key, before), (_, after)) = (left.take(), right.take());
                let fields = diff(&before, &after);
                if fields.is_empty() {
                    unchanged += 1;
                } else {
                    rows.push(RowDiff {
                        key,
                        change: RowChange::Changed,
                        fields,
                    });
                }
            }
        }
    }
    Ok(ViewDiff {
        view: name.to_owned(),
        live: TableSummary::of(live),
        rebuilt: TableSummary::of(rebuilt),
        rows,
        unchanged,
    })
}

/// Every field of a row that only one table has: added to the new table, or removed from it.
fn whole(row: &Value, added: bool) -> Vec<FieldChange> {
    let change = |path: String, value: &Value| FieldChange {
        path,
        before: (!added).then(|| value.clone()),
        after: added.then(|| value.clone()),
    };
    match row {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            keys.into_iter().map(|k| change(k.clone(), &map[k])).collect()
        }
        other => vec![change(String::new(), other)],
    }
}

/// A table's rows in key order, read a page at a time.
struct Rows {
    table: Arc<dyn ViewTable>,
    view: String,
    page: std::collections::VecDeque<(String, Value)>,
    after: Option<String>,
    done: bool,
}

impl Rows {
    fn new(table: Arc<dyn ViewTable>, view: &str) -> Self {
        Rows {
            table,
            view: view.to_owned(),
            page: Default::default(),
            after: None,
            done: false,
        }
    }

    async fn peek(&mut self) -> Result<Option<&(String, Value)>, AuditError> {
        if self.page.is_empty() && !self.done {
            let rows = self
                .table
                .list(self.after.as_deref(), ROW_PAGE)
                .await
                .map_err(|source| AuditError::ViewStore {
                    view: self.view.clone(),
                    source,
                })?;
            self.done = rows.len() < ROW_PAGE;
            self.after = rows.last().map(|(k, _)| k.clone());
            for (key, bytes) in rows {
                let value = serde_json::from_slice(&bytes).map_err(|e| AuditError::Row {
                    view: self.view.clone(),
                    table: self.table.id().to_string(),
                    key: key.clone(),
                    reason: e.to_string(),
                })?;
                self.page.push_back((key, value));
            }
        }
        Ok(self.page.front())
    }

    /// The row `peek` returned.
    fn take(&mut self) -> (String, Value) {
        self.page.pop_front().unwrap_or_default()
    }
}
