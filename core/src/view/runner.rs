//! The view runner: reads the log from a table's checkpoint, folds batches into
//! the rows they touch, commits rows and checkpoint together, tails the log,
//! builds new tables beside the live one and swaps them in.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, oneshot, watch};

use super::{
    Commit, EventMeta, Lease, ROW_CODEC, RowChange, RowWrite, RunningMap, RunningView, Shared, TableId,
    TableState, View, ViewError, ViewOp, ViewStore, ViewStoreError, ViewTable,
};
use crate::runtime::App;
use crate::store::{EventStore, RecordedEvent};

/// The future [`ViewRegistration::start`](super::ViewRegistration) returns.
pub type StartFuture<'a> = Pin<Box<dyn Future<Output = Result<(), ViewError>> + Send + 'a>>;

/// How long a process that is not the runner waits between attempts to become it.
const LEASE_RETRY: Duration = Duration::from_secs(1);
/// How often a process that is not the runner re-reads the checkpoint and active table.
const FOLLOW_POLL: Duration = Duration::from_millis(100);
/// The longest a runner waits for new events before it re-checks its lease.
const IDLE_WAIT: Duration = Duration::from_millis(500);
/// How long a table replaced by a swap stays, for queries that picked it just before.
const RETIRE_GRACE: Duration = Duration::from_secs(2);

/// A request to a view's supervisor task.
pub(crate) enum Control {
    /// Build a new table of the current version and swap it in; answer when done.
    Rebuild(oneshot::Sender<Result<(), ViewError>>),
}

/// The views of one [`App`].
pub(crate) struct Registry {
    store: Arc<dyn ViewStore>,
    batch: usize,
    running: RunningMap,
}

impl Registry {
    pub(crate) fn new(store: Arc<dyn ViewStore>, batch: usize) -> Self {
        Registry {
            store,
            batch: batch.max(1),
            running: Default::default(),
        }
    }

    pub(crate) fn store(&self) -> &Arc<dyn ViewStore> {
        &self.store
    }

    pub(crate) fn shared(&self, name: &str) -> Option<Arc<dyn std::any::Any + Send + Sync>> {
        let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        running.get(name).map(|r| r.shared.clone())
    }

    pub(crate) fn names(&self) -> Vec<&'static str> {
        let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let mut names: Vec<_> = running.keys().copied().collect();
        names.sort_unstable();
        names
    }

    pub(crate) async fn rebuild(&self, name: &str) -> Result<(), ViewError> {
        let (tx, rx) = oneshot::channel();
        let (view, sent) = {
            let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
            let Some((view, r)) = running.get_key_value(name) else {
                return Err(ViewError::Unknown {
                    name: name.to_owned(),
                });
            };
            (*view, r.control.send(Control::Rebuild(tx)).is_ok())
        };
        if !sent {
            return Err(ViewError::Stopped { view });
        }
        rx.await.map_err(|_| ViewError::Stopped { view })?
    }
}

pub(crate) fn start_erased<V: View>(app: &App) -> StartFuture<'_> {
    Box::pin(start::<V>(app))
}

fn storage<V: View>(source: ViewStoreError) -> ViewError {
    ViewError::Storage {
        view: V::NAME,
        source,
    }
}

/// Starts `V` on `app`: opens the table queries are served from and spawns the supervisor.
pub(crate) async fn start<V: View>(app: &App) -> Result<(), ViewError> {
    let registry = app.views();
    let rust_type = std::any::type_name::<V>();
    {
        let running = registry.running.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(r) = running.get(V::NAME) {
            if r.rust_type == rust_type {
                return Ok(());
            }
            return Err(ViewError::DuplicateName {
                name: V::NAME,
                first: r.rust_type,
                second: rust_type,
            });
        }
    }
    // `#[view]` checks the name at compile time; a view implemented by hand is checked here,
    // on every backend, so it cannot share a table with another view.
    super::check_view_name(V::NAME).map_err(storage::<V>)?;
    let store = registry.store.clone();
    let infos = store.tables(V::NAME).await.map_err(storage::<V>)?;
    let serving_id = match infos.iter().find(|t| t.state == TableState::Active) {
        Some(t) => t.id.clone(),
        // The very first table of a view serves at once: there is nothing older to serve.
        None => TableId {
            view: V::NAME.to_owned(),
            version: V::VERSION,
            build: 0,
        },
    };
    let serving = store
        .open(&serving_id, V::INDEXES, TableState::Active)
        .await
        .map_err(storage::<V>)?;
    let checkpoint = serving.checkpoint().await.map_err(storage::<V>)?;
    let shared = Arc::new(Shared::<V> {
        serving: std::sync::RwLock::new(serving),
        checkpoint: watch::channel(checkpoint).0,
        changes: broadcast::channel(4096).0,
        stopped: watch::channel(false).0,
        runner: watch::channel(false).0,
        last_error: std::sync::Mutex::new(None),
        failure: watch::channel(None).0,
    });
    let (control_tx, control_rx) = mpsc::unbounded_channel();
    {
        let mut running = registry.running.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(r) = running.get(V::NAME) {
            // Another task started it while we opened the table.
            if r.rust_type == rust_type {
                return Ok(());
            }
            return Err(ViewError::DuplicateName {
                name: V::NAME,
                first: r.rust_type,
                second: rust_type,
            });
        }
        running.insert(
            V::NAME,
            RunningView {
                rust_type,
                shared: shared.clone(),
                control: control_tx,
            },
        );
    }
    let supervisor = Supervisor::<V> {
        events: app.store().clone(),
        store,
        shared,
        control: control_rx,
        pending: Vec::new(),
        batch: registry.batch,
    };
    tokio::spawn(supervisor.run());
    Ok(())
}

/// A table being folded, with the checkpoint this runner knows it is at.
struct Run {
    table: Arc<dyn ViewTable>,
    checkpoint: u64,
}

/// Why leading stopped.
enum Led {
    /// The app is gone: stop for good.
    Exit,
    /// The lease was lost: go back to waiting for it.
    LeaseLost,
    /// The active table is of a newer version than this binary's: a newer
    /// binary runs the view; only follow it.
    Newer {
        /// The active table's version.
        active: u32,
    },
}

struct Supervisor<V: View> {
    events: Arc<dyn EventStore>,
    store: Arc<dyn ViewStore>,
    shared: Arc<Shared<V>>,
    control: mpsc::UnboundedReceiver<Control>,
    pending: Vec<oneshot::Sender<Result<(), ViewError>>>,
    batch: usize,
}

impl<V: View> Supervisor<V> {
    async fn run(mut self) {
        // The newer version last warned about, so a rolling deploy logs once, not every second.
        let mut warned_newer: Option<u32> = None;
        loop {
            if self.control.is_closed() {
                break;
            }
            // A newer binary's table is active: do not even contend for the lease
            // (holding it would keep the newer binary from running the view).
            let newer = match self.newer_active().await {
                Ok(newer) => newer,
                Err(error) => {
                    tracing::warn!(view = V::NAME, %error, "reading the view's tables failed");
                    None
                }
            };
            // `None`: try for the lease again at once; `Some(newer)`: follow for a
            // while, `newer` being the active version when it is newer than ours.
            let follow: Option<Option<u32>> = if let Some(active) = newer {
                Some(Some(active))
            } else {
                match self.store.try_lease(V::NAME).await {
                    Ok(Some(lease)) => {
                        self.shared.runner.send_replace(true);
                        let led = self.lead(&*lease).await;
                        self.shared.runner.send_replace(false);
                        drop(lease);
                        match led {
                            Ok(Led::Exit) => break,
                            Ok(Led::LeaseLost) => {
                                tracing::warn!(
                                    view = V::NAME,
                                    "lost the runner lease; waiting to take it back"
                                );
                                None
                            }
                            Ok(Led::Newer { active }) => Some(Some(active)),
                            Err(error) => {
                                tracing::error!(view = V::NAME, %error, "view runner failed; retrying in 1 s");
                                *self.shared.last_error.lock().unwrap_or_else(|e| e.into_inner()) =
                                    Some(error.to_string());
                                self.shared.failed(&error);
                                tokio::time::sleep(LEASE_RETRY).await;
                                None
                            }
                        }
                    }
                    // Another process runs the view.
                    Ok(None) => Some(None),
                    Err(error) => {
                        tracing::warn!(view = V::NAME, %error, "taking the runner lease failed; retrying in 1 s");
                        tokio::time::sleep(LEASE_RETRY).await;
                        None
                    }
                }
            };
            let Some(newer) = follow else { continue };
            if let Some(active) = newer {
                if warned_newer != Some(active) {
                    warned_newer = Some(active);
                    let message = format!(
                        "view {}: the active table is version {active}, newer than this binary's version {}; \
                         serving it and following, not building",
                        V::NAME,
                        V::VERSION
                    );
                    tracing::warn!(
                        view = V::NAME,
                        active_version = active,
                        binary_version = V::VERSION,
                        "the active table is of a newer version than this binary's; serving and following it, not building"
                    );
                    *self.shared.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(message);
                }
            } else {
                warned_newer = None;
            }
            // Another process runs the view: serve its tables and try again soon.
            let until = tokio::time::Instant::now() + LEASE_RETRY;
            while tokio::time::Instant::now() < until {
                if let Err(error) = self.follow().await {
                    tracing::warn!(view = V::NAME, %error, "refreshing a followed view failed");
                }
                tokio::time::sleep(FOLLOW_POLL).await;
            }
        }
        self.shared.stopped.send_replace(true);
    }

    /// The version of the active table when it is newer than this binary's.
    async fn newer_active(&self) -> Result<Option<u32>, ViewError> {
        let infos = self.store.tables(V::NAME).await.map_err(storage::<V>)?;
        Ok(infos
            .iter()
            .find(|t| t.state == TableState::Active && t.id.version > V::VERSION)
            .map(|t| t.id.version))
    }

    /// Serves the active table another process runs, and its checkpoint.
    async fn follow(&mut self) -> Result<(), ViewError> {
        let infos = self.store.tables(V::NAME).await.map_err(storage::<V>)?;
        if let Some(active) = infos.into_iter().find(|t| t.state == TableState::Active) {
            if self.shared.serving().id() != &active.id {
                let table = self
                    .store
                    .open(&active.id, V::INDEXES, TableState::Active)
                    .await
                    .map_err(storage::<V>)?;
                self.swap(table, active.position);
            } else {
                self.shared.publish(active.position);
            }
        }
        Ok(())
    }

    fn swap(&self, table: Arc<dyn ViewTable>, checkpoint: u64) {
        *self.shared.serving.write().unwrap_or_else(|e| e.into_inner()) = table;
        self.shared.publish(checkpoint);
    }

    async fn new_build(&self, version: u32) -> Result<Run, ViewError> {
        let infos = self.store.tables(V::NAME).await.map_err(storage::<V>)?;
        let build = infos
            .iter()
            .filter(|t| t.id.version == version)
            .map(|t| t.id.build + 1)
            .max()
            .unwrap_or(0);
        let id = TableId {
            view: V::NAME.to_owned(),
            version,
            build,
        };
        tracing::info!(view = V::NAME, table = %id, "building a new table beside the live one");
        let table = self
            .store
            .open(&id, V::INDEXES, TableState::Building)
            .await
            .map_err(storage::<V>)?;
        let checkpoint = table.checkpoint().await.map_err(storage::<V>)?;
        Ok(Run { table, checkpoint })
    }

    /// Runs the view while holding the lease.
    async fn lead(&mut self, lease: &dyn Lease) -> Result<Led, ViewError> {
        let infos = self.store.tables(V::NAME).await.map_err(storage::<V>)?;
        let mut live: Option<Run> = None;
        let mut building: Option<Run> = None;
        match infos.iter().find(|t| t.state == TableState::Active) {
            Some(active) => {
                let table = self
                    .store
                    .open(&active.id, V::INDEXES, TableState::Active)
                    .await
                    .map_err(storage::<V>)?;
                self.swap(table.clone(), active.position);
                if active.id.version > V::VERSION {
                    // A newer binary swapped in its version (a rolling deploy): building
                    // this older version would retire the newer table when it caught up.
                    return Ok(Led::Newer {
                        active: active.id.version,
                    });
                }
                if active.id.version == V::VERSION {
                    live = Some(Run {
                        table,
                        checkpoint: active.position,
                    });
                }
            }
            None => {
                let table = self.shared.serving();
                let checkpoint = table.checkpoint().await.map_err(storage::<V>)?;
                live = Some(Run { table, checkpoint });
            }
        }
        // A build of this version left by a crash (or a version bump) resumes where it stopped.
        let resumable = infos
            .iter()
            .filter(|t| t.state == TableState::Building && t.id.version == V::VERSION)
            .max_by_key(|t| t.id.build);
        if let Some(b) = resumable {
            let table = self
                .store
                .open(&b.id, V::INDEXES, TableState::Building)
                .await
                .map_err(storage::<V>)?;
            building = Some(Run {
                table,
                checkpoint: b.position,
            });
        } else if live.is_none() {
            building = Some(self.new_build(V::VERSION).await?);
        }

        let mut head = self.events.watch_head();
        loop {
            if lease.is_lost() {
                return Ok(Led::LeaseLost);
            }
            loop {
                match self.control.try_recv() {
                    Ok(Control::Rebuild(done)) => {
                        if building.is_none() {
                            building = Some(self.new_build(V::VERSION).await?);
                        }
                        self.pending.push(done);
                    }
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => return Ok(Led::Exit),
                }
            }
            head.borrow_and_update();
            let mut progressed = false;
            if let Some(run) = building.as_mut() {
                let read = step::<V>(&*self.events, run, self.batch, None).await?;
                if read == 0 {
                    // Caught up with the log: swap it in, atomically in storage and here.
                    let Some(run) = building.take() else {
                        unreachable!()
                    };
                    self.store.activate(run.table.id()).await.map_err(storage::<V>)?;
                    tracing::info!(view = V::NAME, table = %run.table.id(), "swapped in the rebuilt table");
                    self.swap(run.table.clone(), run.checkpoint);
                    live = Some(run);
                    let store = self.store.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(RETIRE_GRACE).await;
                        if let Err(error) = store.drop_retired(V::NAME).await {
                            tracing::warn!(view = V::NAME, %error, "dropping retired tables failed");
                        }
                    });
                    for done in self.pending.drain(..) {
                        let _ = done.send(Ok(()));
                    }
                } else {
                    progressed = true;
                }
            }
            if let Some(run) = live.as_mut() {
                let serving = Arc::ptr_eq(&run.table, &self.shared.serving());
                let read =
                    step::<V>(&*self.events, run, self.batch, serving.then_some(&*self.shared)).await?;
                progressed |= read > 0;
            }
            if progressed {
                self.shared.progressed();
            } else {
                tokio::select! {
                    _ = head.changed() => {}
                    _ = tokio::time::sleep(IDLE_WAIT) => {}
                    control = self.control.recv() => match control {
                        Some(Control::Rebuild(done)) => {
                            if building.is_none() {
                                building = Some(self.new_build(V::VERSION).await?);
                            }
                            self.pending.push(done);
                        }
                        None => return Ok(Led::Exit),
                    },
                }
            }
        }
    }
}

/// Reads one batch after `run.checkpoint`, folds it and commits it. Returns how
/// many events were read (0: the table is at the head of the log).
async fn step<V: View>(
    events: &dyn EventStore,
    run: &mut Run,
    batch: usize,
    shared: Option<&Shared<V>>,
) -> Result<usize, ViewError> {
    let from = run.checkpoint + 1;
    let records = events
        .read_all(from, batch)
        .await
        .map_err(|source| ViewError::Log {
            view: V::NAME,
            position: from,
            source,
        })?;
    let Some(last) = records.last() else {
        return Ok(0);
    };
    let to = last.position;
    let want_changes = shared.is_some_and(|s| s.changes.receiver_count() > 0);
    let (rows, changes) = fold_batch::<V>(&*run.table, &records, to, want_changes).await?;
    let commit = Commit {
        from: run.checkpoint,
        to,
        rows,
    };
    crate::fault::point("view.commit.before").map_err(|f| storage::<V>(f.into()))?;
    match run.table.commit(commit).await {
        Ok(()) => run.checkpoint = to,
        Err(ViewStoreError::CheckpointMoved { found, .. }) => {
            // Another runner got there first (it held the lease before us):
            // nothing of this batch was applied; continue from where it is.
            tracing::warn!(
                view = V::NAME,
                expected = run.checkpoint,
                found,
                "checkpoint moved under us"
            );
            run.checkpoint = found;
            return Ok(records.len());
        }
        Err(e) => return Err(storage::<V>(e)),
    }
    crate::fault::point("view.commit.after").map_err(|f| storage::<V>(f.into()))?;
    if let Some(shared) = shared {
        for change in changes {
            let _ = shared.changes.send(change);
        }
        shared.publish(to);
    }
    Ok(records.len())
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
        let meta = EventMeta::of(record);
        V::route(record, &meta, &mut out).map_err(|source| ViewError::Decode {
            view: V::NAME,
            position: record.position,
            event_type: record.event_type.clone(),
            source,
        })?;
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
    let loaded = table.get_many(&keys).await.map_err(storage::<V>)?;
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
        let slot = &mut touched[slot];
        let row = slot.row.get_or_insert_with(V::default);
        if row.apply(event, &meta) == ViewOp::Delete {
            slot.row = None;
        }
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
