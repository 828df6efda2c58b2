//! The factum command line: the audit trail, time travel, what-if and view
//! rebuilds of [`factum::audit`], over a SQLite file or a PostgreSQL schema.
//!
//! It is a library so that it sees *your* types: the registries it reads
//! (events, entities, views) are filled by the macros in the binary that
//! links them. An application ships it as a binary of its own:
//!
//! ```no_run
//! // src/bin/factum.rs of an application. If `main` names nothing of the
//! // application's library, add `use my_app as _;` so the linker keeps its
//! // entities, events and views (and the registries see them).
//! fn main() -> std::process::ExitCode {
//!     factum_cli::run()
//! }
//! ```
//!
//! Then `factum --db bank.db history account acc-ada`. Every command takes
//! `--json`; human output is aligned tables; scans that take over a second
//! draw a progress bar on stderr.
//!
//! What it writes: nothing, except `rebuild-view` and `swap-view` (view
//! tables, never events). With `--db` every command opens the event log with
//! `SqliteStore::open_read_only`, so SQLite itself refuses any write;
//! `what-if` runs on a fork in memory.
//!
//! # Adding a subcommand
//! A subsystem adds one variant to [`Command`] and one module under
//! `commands/` with an `Args` struct (clap) and `async fn run(args, &Ctx)`;
//! the dispatch in [`Command::run`] is one line per variant. The consumers'
//! `dead-letters` and the workflows' `workflows` go there.
#![forbid(unsafe_code)]

mod commands;
mod output;

use std::io::Write;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use clap::{Args, Parser, Subcommand};
use factum::audit::{Audit, AuditError};
use factum::store::{EventStore, StoreError};
use factum::view::{ViewStore, ViewStoreError};

pub use output::Output;

/// `factum [--db PATH | --pg URL --schema NAME] [--json] <command>`.
#[derive(Debug, Parser)]
#[command(
    name = "factum",
    version,
    about = "Audit trail, time travel and what-if over a factum store"
)]
pub struct Cli {
    /// Where the events are.
    #[command(flatten)]
    pub store: StoreArgs,
    /// Print JSON instead of tables (`history` prints one JSON object per line).
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Which store to open.
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// The SQLite file (opened read-only for every command that only reads).
    #[arg(long, value_name = "PATH", global = true, conflicts_with = "pg")]
    pub db: Option<std::path::PathBuf>,
    /// A PostgreSQL URL, e.g. `postgres://user@host:5432/db`.
    #[arg(long, value_name = "URL", global = true)]
    pub pg: Option<String>,
    /// The PostgreSQL schema the store lives in.
    #[arg(long, value_name = "NAME", global = true, default_value = "factum")]
    pub schema: String,
}

/// The subcommands. Later subsystems add theirs here (see the crate docs).
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Stream types and streams, with version, event count, first and last recorded-at.
    Streams(commands::streams::Args),
    /// Every event of a stream, with its metadata and its payload decoded (how did we get here?).
    History(commands::history::Args),
    /// The state of an entity now, at a version or at a time (time travel).
    State(commands::state::Args),
    /// How the state changed between two versions, field by field.
    Diff(commands::diff::Args),
    /// Every event that changed one field of the state: why and when.
    Blame(commands::blame::Args),
    /// Everything one business transaction caused, across streams, as a tree by causation.
    Trace(commands::trace::Args),
    /// Fork an entity in memory and run hypothetical commands through its handlers; writes nothing.
    WhatIf(commands::what_if::Args),
    /// Build a view's table with this program's logic beside the live one.
    RebuildView(commands::views::RebuildArgs),
    /// Compare the live table of a view with the one built beside it.
    DiffView(commands::views::NameArgs),
    /// Make the table built beside the live one live.
    SwapView(commands::views::SwapArgs),
    /// Every registered event type, entity and view.
    Catalogue,
    /// Every consumer and producer: checkpoint, lag, dead letters by state.
    Consumers,
    /// A consumer's dead letters: the events it parked, held, skipped or resolved.
    DeadLetters(commands::consumers::LettersArgs),
    /// Ask a consumer to run a parked event (or all of them) again.
    Redrive(commands::consumers::RedriveArgs),
    /// Give up a parked or held event of a consumer, with a reason.
    Discard(commands::consumers::DiscardArgs),
    // Subcommands of later subsystems go here: `Workflows(commands::workflows::Args)` (workflows).
}

impl Command {
    /// Runs the command against `ctx`.
    pub async fn run(self, ctx: &Ctx) -> Result<(), CliError> {
        match self {
            Command::Streams(args) => commands::streams::run(args, ctx).await,
            Command::History(args) => commands::history::run(args, ctx).await,
            Command::State(args) => commands::state::run(args, ctx).await,
            Command::Diff(args) => commands::diff::run(args, ctx).await,
            Command::Blame(args) => commands::blame::run(args, ctx).await,
            Command::Trace(args) => commands::trace::run(args, ctx).await,
            Command::WhatIf(args) => commands::what_if::run(args, ctx).await,
            Command::RebuildView(args) => commands::views::rebuild(args, ctx).await,
            Command::DiffView(args) => commands::views::diff(args, ctx).await,
            Command::SwapView(args) => commands::views::swap(args, ctx).await,
            Command::Catalogue => commands::catalogue::run(ctx),
            Command::Consumers => commands::consumers::list(ctx).await,
            Command::DeadLetters(args) => commands::consumers::letters(args, ctx).await,
            Command::Redrive(args) => commands::consumers::redrive(args, ctx).await,
            Command::Discard(args) => commands::consumers::discard(args, ctx).await,
        }
    }
}

/// What a command can fail with.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The audit call failed.
    #[error(transparent)]
    Audit(#[from] AuditError),
    /// Opening or reading the store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Opening the view tables failed.
    #[error(transparent)]
    ViewStore(#[from] ViewStoreError),
    /// The arguments do not make sense together.
    #[error("{0}")]
    Usage(String),
    /// Writing the output failed.
    #[error("writing the output: {0}")]
    Io(#[from] std::io::Error),
    /// JSON output failed.
    #[error("writing JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// What every command gets: the event store, the view tables (opened on
/// first use), and where to write.
pub struct Ctx {
    store: Arc<dyn EventStore>,
    store_args: StoreArgs,
    views: tokio::sync::OnceCell<Arc<dyn ViewStore>>,
    consumers: tokio::sync::OnceCell<Arc<dyn factum::consumer::ConsumerStore>>,
    /// Where results go.
    pub out: Output,
}

impl Ctx {
    /// The event store.
    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.store
    }

    /// The audit over the store, reporting the progress of its scans to `progress`.
    pub fn audit(&self, progress: &output::Progress) -> Audit {
        Audit::new(self.store.clone()).with_progress(progress.callback())
    }

    /// The consumer checkpoints and dead letters: in the SQLite file, or in
    /// the PostgreSQL schema (opened writable: redrive and discard write).
    pub async fn consumers(&self) -> Result<Arc<dyn factum::consumer::ConsumerStore>, CliError> {
        let args = self.store_args.clone();
        self.consumers
            .get_or_try_init(|| async move {
                let fail = |e: factum::consumer::ConsumerStoreError| CliError::Usage(e.to_string());
                if let Some(path) = &args.db {
                    let path = path.clone();
                    let store =
                        tokio::task::spawn_blocking(move || factum::sqlite::SqliteConsumerStore::open(path))
                            .await
                            .map_err(|e| CliError::Usage(format!("opening the consumer tables: {e}")))?
                            .map_err(fail)?;
                    return Ok(Arc::new(store) as Arc<dyn factum::consumer::ConsumerStore>);
                }
                #[cfg(feature = "postgres")]
                if let Some(url) = &args.pg {
                    let store = factum::postgres::PostgresConsumerStore::connect_in_schema(url, &args.schema)
                        .await
                        .map_err(fail)?;
                    return Ok(Arc::new(store) as Arc<dyn factum::consumer::ConsumerStore>);
                }
                Err(CliError::Usage(
                    "name a store: --db PATH or --pg URL --schema NAME".into(),
                ))
            })
            .await
            .cloned()
    }

    /// The view tables: in the SQLite file, or in the PostgreSQL schema.
    pub async fn views(&self) -> Result<Arc<dyn ViewStore>, CliError> {
        let args = self.store_args.clone();
        self.views
            .get_or_try_init(|| async move {
                if let Some(path) = &args.db {
                    let path = path.clone();
                    let store =
                        tokio::task::spawn_blocking(move || factum::sqlite::SqliteViewStore::open(path))
                            .await
                            .map_err(|e| CliError::Usage(format!("opening the view tables: {e}")))??;
                    return Ok(Arc::new(store) as Arc<dyn ViewStore>);
                }
                #[cfg(feature = "postgres")]
                if let Some(url) = &args.pg {
                    let store =
                        factum::postgres::PostgresViewStore::connect_in_schema(url, &args.schema).await?;
                    return Ok(Arc::new(store) as Arc<dyn ViewStore>);
                }
                Err(CliError::Usage(
                    "name a store: --db PATH or --pg URL --schema NAME".into(),
                ))
            })
            .await
            .cloned()
    }
}

/// Opens the event store the arguments name. SQLite is opened read-only.
async fn open_store(args: &StoreArgs) -> Result<Arc<dyn EventStore>, CliError> {
    if let Some(path) = &args.db {
        if !path.exists() {
            return Err(CliError::Usage(format!("{} does not exist", path.display())));
        }
        let path = path.clone();
        let store = tokio::task::spawn_blocking(move || factum::SqliteStore::open_read_only(path))
            .await
            .map_err(|e| CliError::Usage(format!("opening the store: {e}")))??;
        return Ok(Arc::new(store));
    }
    #[cfg(feature = "postgres")]
    if let Some(url) = &args.pg {
        let store = factum::PostgresStore::connect(url.clone())
            .schema(args.schema.clone())
            .open()
            .await?;
        return Ok(Arc::new(store));
    }
    #[cfg(not(feature = "postgres"))]
    if args.pg.is_some() {
        return Err(CliError::Usage(
            "this build of factum-cli has no PostgreSQL support (feature `postgres`)".into(),
        ));
    }
    Err(CliError::Usage(
        "name a store: --db PATH or --pg URL --schema NAME".into(),
    ))
}

/// Parses the process's arguments, runs the command, prints errors on
/// stderr; exit code 0 on success, 1 on a failure, 2 on bad arguments.
pub fn run() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let stdout = Output::stdout(cli.json);
    match run_cli(cli, stdout) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs a parsed command line, writing to `out`: for embedding and tests.
pub fn run_cli(cli: Cli, out: Output) -> Result<(), CliError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        // The catalogue needs no store.
        if matches!(cli.command, Command::Catalogue) {
            return commands::catalogue::run_on(&out);
        }
        let store = open_store(&cli.store).await?;
        let ctx = Ctx {
            store,
            store_args: cli.store,
            views: tokio::sync::OnceCell::new(),
            consumers: tokio::sync::OnceCell::new(),
            out,
        };
        cli.command.run(&ctx).await?;
        ctx.out.flush()?;
        Ok(())
    })
}

/// A shared buffer as output, for tests: what a command printed.
pub fn buffer_output(json: bool) -> (Output, Arc<Mutex<Vec<u8>>>) {
    Output::buffer(json)
}
