//! The reader API of views: O(1) reads by key, generated `find_by_<field>`
//! queries, pages in key order (all rows, a key range, an index range),
//! read-your-writes waits and live row changes.

use std::fmt;
use std::marker::PhantomData;
use std::ops::{Bound, Deref, RangeBounds};
use std::sync::Arc;

use tokio::sync::broadcast;

use super::backend::{TableId, ViewStoreError, ViewTable, tighter_lower};
use super::{ROW_CODEC, View, ViewError};
use crate::process::{Progress, WaitError};

/// A change to one row, as the live stream of a view delivers it.
#[derive(Clone, Debug, PartialEq)]
pub struct RowChange<V> {
    /// The row key.
    pub key: String,
    /// The row after the change; `None` when it was deleted.
    pub row: Option<V>,
    /// The checkpoint the change committed with.
    pub position: u64,
}

/// The state of a view shared by its runner and its readers.
pub(crate) struct Shared<V: View> {
    pub(crate) serving: std::sync::RwLock<Arc<dyn ViewTable>>,
    pub(crate) changes: broadcast::Sender<RowChange<V>>,
    /// The checkpoint of the table served, the runner flag and the failure streak.
    pub(crate) progress: Progress,
}

impl<V: View> Shared<V> {
    pub(crate) fn serving(&self) -> Arc<dyn ViewTable> {
        self.serving.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Reads one view. Cheap to clone.
pub struct ViewReader<V: View> {
    pub(crate) shared: Option<Arc<Shared<V>>>,
}

impl<V: View> Clone for ViewReader<V> {
    fn clone(&self) -> Self {
        ViewReader {
            shared: self.shared.clone(),
        }
    }
}

impl<V: View> fmt::Debug for ViewReader<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ViewReader")
            .field("view", &V::NAME)
            .field("running", &self.shared.is_some())
            .finish()
    }
}

fn decode_row<V: View>(table: &TableId, key: &str, bytes: &[u8]) -> Result<V, ViewError> {
    ROW_CODEC.decode(bytes).map_err(|source| {
        if table.version > V::VERSION {
            ViewError::NewerRow {
                view: V::NAME,
                key: key.to_owned(),
                table_version: table.version,
                version: V::VERSION,
                source,
            }
        } else {
            ViewError::Row {
                view: V::NAME,
                key: key.to_owned(),
                source,
            }
        }
    })
}

impl<V: View> ViewReader<V> {
    fn shared(&self) -> Result<&Arc<Shared<V>>, ViewError> {
        self.shared
            .as_ref()
            .ok_or(ViewError::NotRunning { view: V::NAME })
    }

    fn storage(e: ViewStoreError) -> ViewError {
        ViewError::Storage {
            view: V::NAME,
            source: e,
        }
    }

    /// The row with this key, if any. O(1).
    pub async fn get(&self, key: impl AsRef<str>) -> Result<Option<V>, ViewError> {
        let key = key.as_ref();
        let table = self.shared()?.serving();
        match table.get(key).await.map_err(Self::storage)? {
            Some(bytes) => decode_row::<V>(table.id(), key, &bytes).map(Some),
            None => Ok(None),
        }
    }

    /// Rows whose indexed field `index` renders as `value`, in key order.
    /// Generated `find_by_<field>` methods call this. An `index` the view
    /// does not declare fails with [`ViewError::UnknownIndex`].
    pub async fn find_by(&self, index: &str, value: &str) -> Result<Vec<(String, V)>, ViewError> {
        if !V::INDEXES.contains(&index) {
            return Err(ViewError::UnknownIndex {
                view: V::NAME,
                index: index.to_owned(),
                known: V::INDEXES,
            });
        }
        let table = self.shared()?.serving();
        let rows = table
            .find(index, value, usize::MAX)
            .await
            .map_err(Self::storage)?;
        rows.into_iter()
            .map(|(k, bytes)| decode_row::<V>(table.id(), &k, &bytes).map(|row| (k, row)))
            .collect()
    }

    /// One page of rows in key order: at most `limit` rows with keys after
    /// `cursor` (from the start when `None`). Pass the page's
    /// [`next`](Page::next) as the cursor of the next call.
    ///
    /// `next` is `Some` whenever the page is full (the last page may then be
    /// empty); a `limit` of 0 fails with [`ViewError::ZeroLimit`].
    pub async fn list(&self, cursor: Option<&str>, limit: usize) -> Result<Page<V>, ViewError> {
        if limit == 0 {
            return Err(ViewError::ZeroLimit { view: V::NAME });
        }
        let table = self.shared()?.serving();
        let rows = table.list(cursor, limit).await.map_err(Self::storage)?;
        let rows = rows
            .into_iter()
            .map(|(k, bytes)| decode_row::<V>(table.id(), &k, &bytes).map(|row| (k, row)))
            .collect::<Result<Vec<_>, _>>()?;
        let next = if rows.len() == limit {
            rows.last().map(|(k, _)| k.clone())
        } else {
            None
        };
        Ok(Page { rows, next })
    }

    /// One page of the rows whose keys lie in `keys`, in key order, paged
    /// like [`list`](ViewReader::list): at most `limit` rows after `cursor`,
    /// and `next` is `Some` whenever the page is full.
    ///
    /// Keys compare as bytes on every view store, so keys that should sort
    /// as dates or numbers need a form whose text sorts that way (ISO 8601
    /// dates, zero-padded numbers):
    ///
    /// ```no_run
    /// # async fn march<V: factum::View>(nights: factum::view::ViewReader<V>) -> Result<(), factum::ViewError> {
    /// let march = nights.range("2027-03-01".."2027-04-01", None, 31).await?;
    /// # Ok(()) }
    /// ```
    pub async fn range<'k>(
        &self,
        keys: impl RangeBounds<&'k str>,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<V>, ViewError> {
        if limit == 0 {
            return Err(ViewError::ZeroLimit { view: V::NAME });
        }
        let mut from = keys.start_bound().cloned();
        if let Some(cursor) = cursor {
            from = tighter_lower(from, Bound::Excluded(cursor));
        }
        let to = keys.end_bound().cloned();
        let table = self.shared()?.serving();
        let rows = table.range(from, to, limit).await.map_err(Self::storage)?;
        let rows = rows
            .into_iter()
            .map(|(k, bytes)| decode_row::<V>(table.id(), &k, &bytes).map(|row| (k, row)))
            .collect::<Result<Vec<_>, _>>()?;
        let next = if rows.len() == limit {
            rows.last().map(|(k, _)| k.clone())
        } else {
            None
        };
        Ok(Page { rows, next })
    }

    /// One page of the rows whose indexed field `index` renders as a value
    /// in `values`, in the order of (value, key): at most `limit` rows after
    /// `cursor` (from the start when `None`). Pass the page's
    /// [`next`](IndexPage::next) as the cursor of the next call; it is `Some`
    /// whenever the page is full.
    ///
    /// Values compare as text, byte by byte, on every view store: index a
    /// date as ISO 8601 text and an amount as zero-padded text (e.g. a
    /// `format!("{cents:012}")` field) for ranges to follow their order. An
    /// `index` the view does not declare fails with [`ViewError::UnknownIndex`].
    pub async fn find_range<'k>(
        &self,
        index: &str,
        values: impl RangeBounds<&'k str>,
        cursor: Option<&IndexCursor>,
        limit: usize,
    ) -> Result<IndexPage<V>, ViewError> {
        if !V::INDEXES.contains(&index) {
            return Err(ViewError::UnknownIndex {
                view: V::NAME,
                index: index.to_owned(),
                known: V::INDEXES,
            });
        }
        if limit == 0 {
            return Err(ViewError::ZeroLimit { view: V::NAME });
        }
        let table = self.shared()?.serving();
        let after = cursor.map(|c| (c.value.as_str(), c.key.as_str()));
        let found = table
            .find_range(
                index,
                values.start_bound().cloned(),
                values.end_bound().cloned(),
                after,
                limit,
            )
            .await
            .map_err(Self::storage)?;
        let next = (found.len() == limit).then(|| {
            found.last().map(|last| IndexCursor {
                value: last.value.clone(),
                key: last.key.clone(),
            })
        });
        let rows = found
            .into_iter()
            .map(|r| decode_row::<V>(table.id(), &r.key, &r.row).map(|row| (r.key, row)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(IndexPage {
            rows,
            next: next.flatten(),
        })
    }

    /// The last global position folded into the rows queries read.
    pub fn checkpoint(&self) -> u64 {
        self.shared.as_ref().map_or(0, |s| s.progress.checkpoint())
    }

    /// Waits until the view has folded the log up to `position` (read-your-writes:
    /// pass the [`Committed::position`](crate::Committed) of a command).
    ///
    /// Fails with [`ViewError::Failing`], carrying the runner's error, once
    /// this process's runner has failed [`FAILURES_BEFORE_WAIT_FAILS`](crate::process::FAILURES_BEFORE_WAIT_FAILS) times
    /// in a row without moving the checkpoint (retries are a second apart, so
    /// within a few seconds), e.g. on an event that does not decode. The
    /// runner keeps retrying; a later `wait_for` succeeds once it moves again.
    /// In a process that only follows another process's runner, `wait_for`
    /// cannot see that runner's errors: bound it with a timeout there.
    ///
    /// There is no built-in deadline: a `position` past the end of the log
    /// waits until some command writes that far, for ever if none does. Put
    /// a bound on it where that matters:
    ///
    /// ```no_run
    /// # async fn wait<V: factum::View>(reader: factum::view::ViewReader<V>, position: u64)
    /// # -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// tokio::time::timeout(Duration::from_secs(5), reader.wait_for(position)).await??;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn wait_for(&self, position: u64) -> Result<(), ViewError> {
        match self.shared()?.progress.wait_for(position).await {
            Ok(()) => Ok(()),
            Err(WaitError::Stopped) => Err(ViewError::Stopped { view: V::NAME }),
            Err(WaitError::Failing(f)) => Err(ViewError::Failing {
                view: V::NAME,
                position,
                checkpoint: f.checkpoint,
                attempts: f.attempts,
                error: f.error,
            }),
        }
    }

    /// A live stream of every row change of the view, from now on.
    pub fn changes(&self) -> Result<RowChanges<V>, ViewError> {
        Ok(RowChanges {
            rx: self.shared()?.changes.subscribe(),
            key: None,
        })
    }

    /// A live stream of the changes of one row, from now on.
    pub fn changes_of(&self, key: impl Into<String>) -> Result<RowChanges<V>, ViewError> {
        Ok(RowChanges {
            rx: self.shared()?.changes.subscribe(),
            key: Some(key.into()),
        })
    }

    /// True while this process runs the view (holds its lease); false while
    /// another process does and this one only serves queries.
    pub fn is_runner(&self) -> bool {
        self.shared.as_ref().is_some_and(|s| s.progress.is_runner())
    }

    /// The last error the view's runner hit (it retries after each), if any:
    /// for health checks and logs.
    pub fn last_error(&self) -> Option<String> {
        self.shared.as_ref()?.progress.last_error()
    }

    /// The physical table queries are served from now.
    pub fn serving_table(&self) -> Option<TableId> {
        self.shared.as_ref().map(|s| s.serving().id().clone())
    }
}

/// One page of [`ViewReader::list`].
#[derive(Clone, Debug, PartialEq)]
pub struct Page<V> {
    /// The rows, in key order.
    pub rows: Vec<(String, V)>,
    /// The cursor of the next page; `None` on the last page.
    pub next: Option<String>,
}

/// One page of [`ViewReader::find_range`].
#[derive(Clone, Debug, PartialEq)]
pub struct IndexPage<V> {
    /// The rows, in the order of (index value, key).
    pub rows: Vec<(String, V)>,
    /// The cursor of the next page; `None` on the last page.
    pub next: Option<IndexCursor>,
}

/// Where a page of [`ViewReader::find_range`] ended: the index value and the
/// key of its last row (the next page starts after them).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct IndexCursor {
    /// The last row's index value.
    pub value: String,
    /// The last row's key.
    pub key: String,
}

/// A live stream of row changes (a `tokio::sync::broadcast` receiver, filtered).
pub struct RowChanges<V> {
    rx: broadcast::Receiver<RowChange<V>>,
    key: Option<String>,
}

impl<V: Clone> RowChanges<V> {
    /// The next change; `Err(Lagged(n))` when the reader fell behind and `n`
    /// changes were dropped (re-read the rows with `get`), `Err(Closed)` when
    /// the view stopped.
    pub async fn next(&mut self) -> Result<RowChange<V>, broadcast::error::RecvError> {
        loop {
            let change = self.rx.recv().await?;
            if self.key.as_deref().is_none_or(|k| k == change.key) {
                return Ok(change);
            }
        }
    }
}

impl<V> fmt::Debug for RowChanges<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RowChanges")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// A view of an [`App`](crate::App): [`ViewReader`]'s queries plus the generated
/// `find_by_<field>` methods, both reached through `Deref`.
pub struct ViewHandle<V: View> {
    queries: V::Queries,
    _row: PhantomData<fn() -> V>,
}

impl<V: View> Deref for ViewHandle<V> {
    type Target = V::Queries;
    fn deref(&self) -> &V::Queries {
        &self.queries
    }
}

impl<V: View> Clone for ViewHandle<V> {
    fn clone(&self) -> Self {
        ViewHandle::from_reader((*self.queries).clone())
    }
}

impl<V: View> fmt::Debug for ViewHandle<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.queries, f)
    }
}

impl<V: View> ViewHandle<V> {
    pub(crate) fn from_reader(reader: ViewReader<V>) -> Self {
        ViewHandle {
            queries: V::Queries::from(reader),
            _row: PhantomData,
        }
    }

    /// The plain reader (no generated methods).
    pub fn reader(&self) -> ViewReader<V> {
        (*self.queries).clone()
    }
}
