//! The composition root: [`App`] holds the subsystems (the command side, the
//! views, the timers, the consumers, the workflows) over one shared [`Env`], and [`AppBuilder`] configures them.
//! Subsystems never reach into `App`; only the crate root imports this module.

use std::fmt;
use std::sync::Arc;

use crate::codec::Codec;
use crate::command::{Commands, EntityRef};
use crate::consumer::{ConsumerSettings, ConsumerStore, Consumers};
use crate::entity::Entity;
use crate::env::Env;
use crate::store::{EventStore, MemoryStore};
use crate::time::{Clock, SystemClock};
use crate::timer::{TimerSettings, TimerStore, Timers};
use crate::view::{View, ViewError, ViewHandle, ViewSettings, ViewStore, Views};
use crate::workflow::{Workflow, WorkflowRef, Workflows};

/// A running factum application: a store, a clock, and the cache of hot entities.
/// Cloning is cheap and shares everything.
#[derive(Clone)]
pub struct App {
    inner: Arc<Inner>,
}

struct Inner {
    env: Env,
    commands: Arc<Commands>,
    views: Views,
    timers: Arc<Timers>,
    consumers: Consumers,
    workflows: Workflows,
}

/// Configures an [`App`]. Start with [`App::builder`].
pub struct AppBuilder {
    store: Option<Arc<dyn EventStore>>,
    codec: Option<Codec>,
    clock: Arc<dyn Clock>,
    max_attempts: u32,
    cache_capacity: usize,
    views: ViewSettings,
    timers: TimerSettings,
    consumers: ConsumerSettings,
    /// The test kit's simulation: its fault plan, for the workflow and timer runners.
    faults: Option<Arc<dyn crate::inject::Faults>>,
}

impl AppBuilder {
    /// Installs the simulation's fault plan (the test kit's `Simulation`, which sits above the app).
    pub(crate) fn faults(mut self, faults: Arc<dyn crate::inject::Faults>) -> Self {
        self.timers.faults = Some(faults.clone());
        self.faults = Some(faults);
        self
    }

    /// Where timers are kept (default: beside a memory log, in memory; beside
    /// the SQLite file of [`sqlite`](AppBuilder::sqlite), in that file; any
    /// other log needs one, e.g. a `PostgresTimerStore` in the events' schema).
    pub fn timer_store(mut self, store: impl TimerStore) -> Self {
        self.timers.store = Some(Arc::new(store));
        self
    }

    /// The timer store, already shared.
    pub fn shared_timer_store(mut self, store: Arc<dyn TimerStore>) -> Self {
        self.timers.store = Some(store);
        self
    }

    /// Lets this app fire stored timers of command `C` for entity `E`,
    /// including those scheduled by an earlier process (see [`Timers::register`]).
    pub fn timer<E, C>(mut self) -> Self
    where
        E: Entity,
        C: Into<E::Command> + serde::de::DeserializeOwned + Send + 'static,
    {
        self.timers.register::<E, C>();
        self
    }

    /// Where consumers keep their checkpoints and dead letters (default:
    /// beside a memory log, in memory; beside the SQLite file of
    /// [`sqlite`](AppBuilder::sqlite), in that file; any other log needs one,
    /// e.g. a `PostgresConsumerStore` in the events' schema).
    pub fn consumer_store(mut self, store: impl ConsumerStore) -> Self {
        self.consumers.store = Some(Arc::new(store));
        self
    }

    /// The consumer store, already shared.
    pub fn shared_consumer_store(mut self, store: Arc<dyn ConsumerStore>) -> Self {
        self.consumers.store = Some(store);
        self
    }

    /// How many events a consumer reads per batch, and commits its checkpoint
    /// after (default 256).
    pub fn consumer_batch(mut self, events: usize) -> Self {
        self.consumers.batch = events.max(1);
        self
    }

    /// Where views keep their rows and checkpoints (default: a [`MemoryViewStore`](crate::view::MemoryViewStore)).
    pub fn view_store(mut self, store: impl ViewStore) -> Self {
        self.views.store = Some(Arc::new(store));
        self
    }

    /// The view store, already shared.
    pub fn shared_view_store(mut self, store: Arc<dyn ViewStore>) -> Self {
        self.views.store = Some(store);
        self
    }

    /// How many events a view folds per transaction (default 4096).
    pub fn view_batch(mut self, events: usize) -> Self {
        self.views.batch = events.max(1);
        self
    }

    /// The event store (default: a [`MemoryStore`]).
    pub fn store(mut self, store: impl EventStore) -> Self {
        self.store = Some(Arc::new(store));
        self
    }

    /// The event store: the SQLite file at `path` (created if missing), with
    /// the default options, and the timers, the consumers' checkpoints and the
    /// views' rows in the same file, each unless its store was chosen before
    /// (a store chosen after replaces the file's).
    /// `App::builder().clock(c).sqlite("bank.db")?.build()`.
    #[cfg(feature = "sqlite")]
    pub fn sqlite(mut self, path: impl AsRef<std::path::Path>) -> Result<Self, crate::store::StoreError> {
        let path = path.as_ref();
        let store = crate::sqlite::SqliteStore::open(path)?;
        if self.timers.store.is_none() {
            self = self.timer_store(open_sqlite_timers(path)?);
        }
        if self.consumers.store.is_none() {
            self = self.consumer_store(open_sqlite_consumers(path)?);
        }
        if self.views.store.is_none() {
            self = self.view_store(open_sqlite_views(path)?);
        }
        Ok(self.store(store))
    }

    /// The event store, already shared.
    pub fn shared_store(mut self, store: Arc<dyn EventStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// The codec new events and snapshots are written with (default: the
    /// store's, [`EventStore::codec`]). Stored records always decode with the
    /// codec that wrote them.
    pub fn codec(mut self, codec: Codec) -> Self {
        self.codec = Some(codec);
        self
    }

    /// The clock commands read their time from (default: the wall clock).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// How often a command is tried when other writers keep winning (default 16).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// How many entities stay cached, per entity type, before idle ones are
    /// dropped (default 100,000).
    pub fn cache_capacity(mut self, entities: usize) -> Self {
        self.cache_capacity = entities.max(1);
        self
    }

    /// The app.
    pub fn build(mut self) -> App {
        // Stored workflow timers fire after a restart too: every workflow
        // linked in can decode its instances' timer commands.
        for workflow in crate::workflow::registered() {
            (workflow.register_timers)(&mut self.timers);
        }
        let store = self.store.unwrap_or_else(|| Arc::new(MemoryStore::new()));
        let codec = self.codec.unwrap_or_else(|| store.codec());
        let env = Env::new(store, self.clock, codec);
        let commands = Arc::new(Commands::new(env.clone(), self.max_attempts, self.cache_capacity));
        let timers = Arc::new(Timers::new(env.clone(), commands.clone(), self.timers));
        App {
            inner: Arc::new(Inner {
                consumers: Consumers::new(env.clone(), commands.clone(), timers.clone(), self.consumers),
                workflows: Workflows::new(env.clone(), commands.clone(), timers.clone(), self.faults),
                timers,
                commands,
                views: Views::new(env.clone(), self.views),
                env,
            }),
        }
    }
}

impl fmt::Debug for App {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("App")
            .field("store", &self.inner.env.store().backend())
            .field("codec", &self.inner.env.codec())
            .finish_non_exhaustive()
    }
}

impl App {
    /// A builder. Without a store it builds over memory (like [`App::in_memory`]);
    /// applications use [`App::open`] or [`AppBuilder::sqlite`] for the SQLite default.
    pub fn builder() -> AppBuilder {
        AppBuilder {
            store: None,
            codec: None,
            clock: Arc::new(SystemClock),
            max_attempts: 16,
            cache_capacity: 100_000,
            views: ViewSettings::default(),
            timers: TimerSettings::default(),
            consumers: ConsumerSettings::default(),
            faults: None,
        }
    }

    /// An app over a fresh [`MemoryStore`]: for tests and examples that need no disk.
    pub fn in_memory() -> App {
        App::builder().build()
    }

    /// An app over the SQLite file at `path` (created if missing): the embedded
    /// default, durable (`synchronous=FULL`), one file for the events, the
    /// timers, the consumers' checkpoints and dead letters, and the views' rows
    /// and checkpoints — a restarted app resumes each view where it stopped.
    /// For other SQLite options build a [`SqliteStore`](crate::sqlite::SqliteStore)
    /// and use the builder.
    ///
    /// ```rust,standalone_crate
    /// use factum::prelude::*;
    /// use serde::{Deserialize, Serialize};
    ///
    /// #[derive(Event, Clone, Debug, PartialEq, Serialize, Deserialize)]
    /// #[event(name = "doc.app_open.Noted")]
    /// pub struct Noted { pub text: String }
    /// #[derive(Debug, Clone, Deserialize)]
    /// pub struct Note { pub text: String }
    ///
    /// #[derive(Default, Clone, Debug, Serialize, Deserialize)]
    /// pub struct Pad { notes: u32 }
    /// #[entity]
    /// impl Pad {
    ///     #[handle] fn note(&self, c: Note) -> Noted { Noted { text: c.text } }
    ///     #[apply] fn noted(&mut self, _: &Noted) { self.notes += 1 }
    /// }
    ///
    /// #[derive(Default, Clone, Debug, PartialEq, Serialize, Deserialize)]
    /// pub struct Count { notes: u32 }
    /// #[view(name = "doc_app_open_count", version = 1)]
    /// impl Count {
    ///     #[on] fn noted(&mut self, _: &Noted) { self.notes += 1 }
    /// }
    ///
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = tempfile::tempdir()?;
    /// let file = dir.path().join("pad.db");
    /// {
    ///     let app = App::open(&file).await?;
    ///     app.start_views().await?;
    ///     let done = app.entity::<Pad>("pad-1").send(Note { text: "hi".into() }).await?;
    ///     app.view::<Count>().wait_for(done.position).await?;
    /// }
    /// // Restarted: the view's row and checkpoint were kept in the file.
    /// let app = App::open(&file).await?;
    /// let kept = app.view_store().tables("doc_app_open_count").await?;
    /// assert_eq!(kept.iter().map(|t| t.position).max(), Some(1));
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "sqlite")]
    pub async fn open(path: impl AsRef<std::path::Path>) -> Result<App, crate::store::StoreError> {
        let path = path.as_ref().to_owned();
        let builder = tokio::task::spawn_blocking(move || App::builder().sqlite(path))
            .await
            .map_err(|e| crate::store::StoreError::Backend {
                backend: "sqlite",
                context: "opening the store".to_owned(),
                source: Box::new(e),
            })??;
        Ok(builder.build())
    }

    /// An app over `store` with the other defaults. To choose the clock, the
    /// codec or the cache size as well, use the builder:
    ///
    /// ```no_run
    /// # async fn f() -> Result<(), factum::store::StoreError> {
    /// use factum::prelude::*;
    /// let clock = ManualClock::new(Timestamp::parse("2030-01-01T00:00:00Z").unwrap());
    /// let app = App::builder().clock(clock.clone()).sqlite("library.db")?.build();
    /// clock.advance(std::time::Duration::from_secs(22 * 86_400)); // the next command is 22 days later
    /// # Ok(()) }
    /// ```
    pub fn new(store: impl EventStore) -> App {
        App::builder().store(store).build()
    }

    /// The store this app writes to.
    pub fn store(&self) -> &Arc<dyn EventStore> {
        self.inner.env.store()
    }

    /// The store, clock and codec this app's subsystems share.
    pub fn env(&self) -> &Env {
        &self.inner.env
    }

    /// The entity of type `E` with this id. Cheap; the entity is loaded on first use
    /// and stays cached. Keep the returned handle to skip the cache lookup.
    pub fn entity<E: Entity>(&self, id: impl AsRef<str>) -> EntityRef<E> {
        self.inner.commands.entity::<E>(id.as_ref())
    }

    /// This app's views: start them, read them, rebuild them.
    pub fn views(&self) -> &Views {
        &self.inner.views
    }

    /// Where this app's views keep their rows.
    pub fn view_store(&self) -> &Arc<dyn ViewStore> {
        self.inner.views.store()
    }

    /// The view `V`. Its queries fail with [`ViewError::NotRunning`] until the
    /// view is started ([`App::start_views`] or [`App::start_view`]).
    pub fn view<V: View>(&self) -> ViewHandle<V> {
        self.inner.views.get::<V>()
    }

    /// Discovers every view linked into the program and starts its runner.
    /// Fails on two views with one name. Views already started are left alone.
    pub async fn start_views(&self) -> Result<Vec<&'static str>, ViewError> {
        self.inner.views.start_all().await
    }

    /// Starts the runner of one view (no-op if it runs already).
    pub async fn start_view<V: View>(&self) -> Result<(), ViewError> {
        self.inner.views.start::<V>().await
    }

    /// The names of the views running on this app.
    pub fn running_views(&self) -> Vec<&'static str> {
        self.inner.views.names()
    }

    /// This app's timers: schedule, cancel, list, wait for them.
    pub fn timers(&self) -> &Timers {
        &self.inner.timers
    }

    /// The command side, for subsystems outside this module tree (the NATS topic consumer).
    #[cfg(feature = "nats")]
    pub(crate) fn commands(&self) -> Arc<Commands> {
        self.inner.commands.clone()
    }

    /// This app's consumers: start them, see their status and dead letters.
    pub fn consumers(&self) -> &Consumers {
        &self.inner.consumers
    }

    /// The instance `id` of workflow `W`: start it, signal it, read it, wait for it.
    pub fn workflow<W: Workflow>(&self, id: impl AsRef<str>) -> WorkflowRef<W> {
        self.inner.workflows.get::<W>(id.as_ref())
    }

    /// This app's workflows: list instances by status; the test kit's injected failures.
    pub fn workflows(&self) -> &Workflows {
        &self.inner.workflows
    }

    /// Waits until every view started on this app has folded the log up to
    /// `position` (read-your-writes across views: pass the
    /// [`Committed::position`](crate::Committed) of a command). Fails like
    /// [`ViewReader::wait_for`](crate::view::ViewReader::wait_for), with the
    /// first failing view's error; has no deadline of its own.
    pub async fn wait_for_views(&self, position: u64) -> Result<(), ViewError> {
        self.inner.views.wait_for_all(position).await
    }

    /// Rebuilds the view `name` from position 0 beside the live table and swaps
    /// when it has caught up; resolves after the swap. Queries are answered by
    /// the old table meanwhile.
    pub async fn rebuild_view(&self, name: &str) -> Result<(), ViewError> {
        self.inner.views.rebuild(name).await
    }

    /// Shuts this app down cleanly, and returns once it has.
    ///
    /// Every runner this app started stops and is waited for: workflows
    /// first (a step in flight is stopped; it runs again on the next start,
    /// and its entity calls carry the same command ids, so their effect stays
    /// once), then consumers, then timers, then views. A runner stops between
    /// batches, so what it handled is committed with its checkpoint and the
    /// next start reads on from there; a runner waiting out a failure's
    /// one-second retry stops when that wait ends. Nothing acknowledged is
    /// lost either way: a command's events are durable when `send` returns.
    ///
    /// Then this handle is dropped. The store (on SQLite: the file, its
    /// writer thread and its connections) closes when the last clone of the
    /// app is gone, so drop the others first; clones still work meanwhile
    /// (commands, queries), but their runners no longer follow the log.
    /// A NATS producer is stopped by dropping its handle.
    ///
    /// ```rust,standalone_crate
    /// # use factum::prelude::*;
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = tempfile::tempdir()?;
    /// let app = App::open(dir.path().join("shop.db")).await?;
    /// // … serve until told to stop, e.g. on `tokio::signal::ctrl_c()` …
    /// app.shutdown().await; // runners stopped, the file closed
    /// let again = App::open(dir.path().join("shop.db")).await?; // opens at once: nothing is left holding it
    /// # drop(again); Ok(()) }
    /// ```
    pub async fn shutdown(self) {
        let inner = &self.inner;
        inner.workflows.stop().await;
        inner.consumers.stop().await;
        inner.timers.stop().await;
        inner.views.stop().await;
        drop(self);
    }
}

/// The timer table in the events' SQLite file, its error as the store's.
#[cfg(feature = "sqlite")]
fn open_sqlite_timers(
    path: &std::path::Path,
) -> Result<crate::sqlite::SqliteTimerStore, crate::store::StoreError> {
    crate::sqlite::SqliteTimerStore::open(path).map_err(|e| crate::store::StoreError::Backend {
        backend: "sqlite",
        context: format!("opening the timer table in {}", path.display()),
        source: Box::new(e),
    })
}

/// The view tables in the events' SQLite file, their error as the store's.
#[cfg(feature = "sqlite")]
fn open_sqlite_views(
    path: &std::path::Path,
) -> Result<crate::sqlite::SqliteViewStore, crate::store::StoreError> {
    crate::sqlite::SqliteViewStore::open(path).map_err(|e| crate::store::StoreError::Backend {
        backend: "sqlite",
        context: format!("opening the view tables in {}", path.display()),
        source: Box::new(e),
    })
}

/// The consumer tables in the events' SQLite file, their error as the store's.
#[cfg(feature = "sqlite")]
fn open_sqlite_consumers(
    path: &std::path::Path,
) -> Result<crate::sqlite::SqliteConsumerStore, crate::store::StoreError> {
    crate::sqlite::SqliteConsumerStore::open(path).map_err(|e| crate::store::StoreError::Backend {
        backend: "sqlite",
        context: format!("opening the consumer tables in {}", path.display()),
        source: Box::new(e),
    })
}
