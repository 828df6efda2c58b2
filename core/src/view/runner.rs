//! The view runner: a [`Process`](crate::process) that reads the log from a
//! table's checkpoint, folds batches into the rows they touch, commits rows
//! and checkpoint together, builds new tables beside the live one and swaps
//! them in. [`Views`] is the subsystem an app holds: its store, its settings,
//! and the views it runs.

use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use super::backend::{Commit, TableId, TableState, ViewStore, ViewStoreError, ViewTable};
use super::fold::fold_batch;
use super::memory::MemoryViewStore;
use super::reader::{Shared, ViewHandle, ViewReader};
use super::{View, ViewError, ViewRegistration, registered};
use crate::env::Env;
use crate::process::{Lease, Led, Process, Progress, Runners, Tail};

/// The future [`ViewRegistration::start`](super::ViewRegistration) returns.
pub type StartFuture<'a> = Pin<Box<dyn Future<Output = Result<(), ViewError>> + Send + 'a>>;

/// The longest a runner waits for new events before it re-checks its lease.
const IDLE_WAIT: Duration = Duration::from_millis(500);
/// How long a table replaced by a swap stays, for queries that picked it just before.
const RETIRE_GRACE: Duration = Duration::from_secs(2);

/// A request to a view's supervisor task.
pub(crate) enum Control {
    /// Build a new table of the current version and swap it in; answer when done.
    Rebuild(oneshot::Sender<Result<(), ViewError>>),
}

/// How an app's views are stored and folded ([`AppBuilder::view_store`](crate::AppBuilder::view_store)).
pub struct ViewSettings {
    pub(crate) store: Option<Arc<dyn ViewStore>>,
    pub(crate) batch: usize,
}

impl Default for ViewSettings {
    fn default() -> Self {
        ViewSettings {
            store: None,
            batch: 4096,
        }
    }
}

impl std::fmt::Debug for ViewSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ViewSettings")
            .field("store", &self.store.as_ref().map(|s| s.backend()))
            .field("batch", &self.batch)
            .finish()
    }
}

/// Type-erased access to a running view.
struct RunningView {
    rust_type: &'static str,
    shared: Arc<dyn Any + Send + Sync>,
    control: mpsc::UnboundedSender<Control>,
    /// [`ViewReader::wait_for`] of this view, for [`Views::wait_for_all`].
    wait_for: fn(Arc<dyn Any + Send + Sync>, u64) -> StartFuture<'static>,
}

/// `wait_for` of view `V`, behind the erased shared state.
fn wait_erased<V: View>(shared: Arc<dyn Any + Send + Sync>, position: u64) -> StartFuture<'static> {
    let shared = shared.downcast::<Shared<V>>().ok();
    Box::pin(async move { ViewReader { shared }.wait_for(position).await })
}

/// The views of one app: where their tables live, and the ones running.
pub struct Views {
    env: Env,
    store: Arc<dyn ViewStore>,
    batch: usize,
    running: Mutex<HashMap<&'static str, RunningView>>,
    /// The runners' tasks and their stop signal: dropped with the app, or
    /// stopped by [`App::shutdown`](crate::App::shutdown).
    runners: Runners,
}

impl std::fmt::Debug for Views {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Views")
            .field("store", &self.store.backend())
            .field("running", &self.names())
            .finish_non_exhaustive()
    }
}

impl Views {
    pub(crate) fn new(env: Env, settings: ViewSettings) -> Self {
        Views {
            env,
            store: settings.store.unwrap_or_else(|| Arc::new(MemoryViewStore::new())),
            batch: settings.batch.max(1),
            running: Mutex::new(HashMap::new()),
            runners: Runners::default(),
        }
    }

    /// Stops every view's runner (each exits between batches, its rows and
    /// checkpoint committed together) and waits until they have. The views
    /// still answer queries from their tables; they no longer follow the log.
    pub(crate) async fn stop(&self) {
        self.runners.stop().await;
    }

    /// Where the views keep their rows.
    pub fn store(&self) -> &Arc<dyn ViewStore> {
        &self.store
    }

    /// The view `V`. Its queries fail with [`ViewError::NotRunning`] until it is started.
    pub fn get<V: View>(&self) -> ViewHandle<V> {
        let shared = {
            let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
            running.get(V::NAME).map(|r| r.shared.clone())
        }
        .and_then(|s| s.downcast::<Shared<V>>().ok());
        ViewHandle::from_reader(ViewReader { shared })
    }

    /// The names of the running views, sorted.
    pub fn names(&self) -> Vec<&'static str> {
        let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let mut names: Vec<_> = running.keys().copied().collect();
        names.sort_unstable();
        names
    }

    /// Discovers every view linked into the program and starts its runner.
    /// Fails on two views with one name. Views already started are left alone.
    pub async fn start_all(&self) -> Result<Vec<&'static str>, ViewError> {
        crate::event::check_catalogue()?;
        let mut seen: HashMap<&'static str, &'static str> = HashMap::new();
        let regs: Vec<&'static ViewRegistration> = registered().collect();
        for reg in &regs {
            if let Some(first) = seen.insert(reg.name, reg.rust_type) {
                let (first, second) = if first <= reg.rust_type {
                    (first, reg.rust_type)
                } else {
                    (reg.rust_type, first)
                };
                return Err(ViewError::DuplicateName {
                    name: reg.name,
                    first,
                    second,
                });
            }
        }
        let mut names = Vec::new();
        for reg in regs {
            (reg.start)(self).await?;
            names.push(reg.name);
        }
        names.sort_unstable();
        Ok(names)
    }

    /// Waits until every view running on this app has folded the log up to
    /// `position`, failing with the first view's error as
    /// [`ViewReader::wait_for`] would (the views are waited for in name order;
    /// they fold meanwhile all the same). With no view running it returns at once.
    pub async fn wait_for_all(&self, position: u64) -> Result<(), ViewError> {
        let mut waits: Vec<(&'static str, Arc<dyn Any + Send + Sync>, _)> = {
            let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
            running
                .iter()
                .map(|(name, r)| (*name, r.shared.clone(), r.wait_for))
                .collect()
        };
        waits.sort_unstable_by_key(|(name, _, _)| *name);
        for (_, shared, wait_for) in waits {
            wait_for(shared, position).await?;
        }
        Ok(())
    }

    /// Rebuilds the view `name` from position 0 beside the live table and swaps
    /// when it has caught up; resolves after the swap.
    pub async fn rebuild(&self, name: &str) -> Result<(), ViewError> {
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

    /// `Some` when a view named `V::NAME` runs already: `Ok` if it is `V`,
    /// the duplicate-name error if it is another type.
    fn already_running<V: View>(
        running: &HashMap<&'static str, RunningView>,
        rust_type: &'static str,
    ) -> Option<Result<(), ViewError>> {
        let r = running.get(V::NAME)?;
        Some(if r.rust_type == rust_type {
            Ok(())
        } else {
            Err(ViewError::DuplicateName {
                name: V::NAME,
                first: r.rust_type,
                second: rust_type,
            })
        })
    }

    /// Starts the runner of `V`: opens the table queries are served from and
    /// spawns the supervisor (no-op if it runs already).
    pub async fn start<V: View>(&self) -> Result<(), ViewError> {
        crate::event::check_catalogue()?;
        let rust_type = std::any::type_name::<V>();
        if let Some(done) =
            Self::already_running::<V>(&self.running.lock().unwrap_or_else(|e| e.into_inner()), rust_type)
        {
            return done;
        }
        // `#[view]` checks the name at compile time; a view implemented by hand is checked here,
        // on every backend, so it cannot share a table with another view.
        super::backend::check_view_name(V::NAME).map_err(storage::<V>)?;
        let store = self.store.clone();
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
            changes: broadcast::channel(4096).0,
            progress: Progress::new(checkpoint),
        });
        let (control_tx, control_rx) = mpsc::unbounded_channel();
        {
            let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
            // Another task may have started it while we opened the table.
            if let Some(done) = Self::already_running::<V>(&running, rust_type) {
                return done;
            }
            running.insert(
                V::NAME,
                RunningView {
                    rust_type,
                    shared: shared.clone(),
                    control: control_tx,
                    wait_for: wait_erased::<V>,
                },
            );
        }
        let runner = Runner::<V> {
            tail: Tail::new(self.env.store().clone(), self.batch),
            store,
            shared,
            control: control_rx,
            alive: self.runners.alive(),
            pending: Vec::new(),
        };
        self.runners.spawn(runner);
        Ok(())
    }
}

pub(crate) fn start_erased<V: View>(views: &Views) -> StartFuture<'_> {
    Box::pin(views.start::<V>())
}

fn storage<V: View>(source: ViewStoreError) -> ViewError {
    ViewError::Storage {
        view: V::NAME,
        source,
    }
}

/// A table being folded, with the checkpoint this runner knows it is at.
pub(super) struct Run {
    pub(super) table: Arc<dyn ViewTable>,
    pub(super) checkpoint: u64,
}

/// One view's runner, driven by the process layer's supervisor.
struct Runner<V: View> {
    tail: Tail,
    store: Arc<dyn ViewStore>,
    shared: Arc<Shared<V>>,
    control: mpsc::UnboundedReceiver<Control>,
    /// Closes when the app stops its runners.
    alive: watch::Receiver<()>,
    pending: Vec<oneshot::Sender<Result<(), ViewError>>>,
}

#[async_trait]
impl<V: View> Process for Runner<V> {
    type Error = ViewError;

    fn name(&self) -> &'static str {
        V::NAME
    }

    fn progress(&self) -> &Progress {
        &self.shared.progress
    }

    fn is_closed(&self) -> bool {
        self.control.is_closed() || self.alive.has_changed().is_err()
    }

    /// A newer binary's table is active: do not even contend for the lease
    /// (holding it would keep the newer binary from running the view).
    async fn hold_off(&mut self) -> Result<Option<String>, ViewError> {
        Ok(self.newer_active().await?.map(|active| {
            format!(
                "view {}: the active table is version {active}, newer than this binary's version {}; \
                 serving it and following, not building",
                V::NAME,
                V::VERSION
            )
        }))
    }

    async fn try_lease(&mut self) -> Result<Option<Box<dyn Lease>>, ViewError> {
        self.store.try_lease(V::NAME).await.map_err(storage::<V>)
    }

    async fn lead(&mut self, lease: &dyn Lease) -> Result<Led, ViewError> {
        Runner::lead(self, lease).await
    }

    async fn follow(&mut self) -> Result<(), ViewError> {
        Runner::follow(self).await
    }
}

impl<V: View> Runner<V> {
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
                self.shared.progress.publish(active.position);
            }
        }
        Ok(())
    }

    fn swap(&self, table: Arc<dyn ViewTable>, checkpoint: u64) {
        *self.shared.serving.write().unwrap_or_else(|e| e.into_inner()) = table;
        self.shared.progress.publish(checkpoint);
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
                    return Ok(Led::HoldOff);
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

        loop {
            if self.alive.has_changed().is_err() {
                return Ok(Led::Exit);
            }
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
            let mut progressed = false;
            if let Some(run) = building.as_mut() {
                let read = step::<V>(&mut self.tail, run, None).await?;
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
                let read = step::<V>(&mut self.tail, run, serving.then_some(&*self.shared)).await?;
                progressed |= read > 0;
            }
            if progressed {
                self.shared.progress.progressed();
            } else {
                tokio::select! {
                    waited = self.tail.wait(IDLE_WAIT) => waited.map_err(|source| ViewError::Log {
                        view: V::NAME,
                        position: live.as_ref().map_or(0, |r| r.checkpoint) + 1,
                        source,
                    })?,
                    control = self.control.recv() => match control {
                        Some(Control::Rebuild(done)) => {
                            if building.is_none() {
                                building = Some(self.new_build(V::VERSION).await?);
                            }
                            self.pending.push(done);
                        }
                        None => return Ok(Led::Exit),
                    },
                    _ = self.alive.changed() => return Ok(Led::Exit),
                }
            }
        }
    }
}

/// Reads one batch after `run.checkpoint`, folds it and commits it. Returns how
/// many events were read (0: the table is at the head of the log).
pub(super) async fn step<V: View>(
    tail: &mut Tail,
    run: &mut Run,
    shared: Option<&Shared<V>>,
) -> Result<usize, ViewError> {
    let from = run.checkpoint + 1;
    // A corrupt record of a type this view does not fold is stepped over.
    let batch = tail
        .read_for(run.checkpoint, |event_type| V::EVENT_TYPES.contains(&event_type))
        .await
        .map_err(|source| ViewError::Log {
            view: V::NAME,
            position: from,
            source,
        })?;
    if batch.through == run.checkpoint {
        return Ok(0);
    }
    let (records, to) = (batch.events, batch.through);
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
        shared.progress.publish(to);
    }
    Ok(records.len())
}
