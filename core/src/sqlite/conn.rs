//! The one connection strategy of SQLite's side tables (views, timers): a
//! writer and a reader connection to one WAL file, each behind a lock, used
//! from blocking tasks so async callers never block a runtime thread.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::Connection;

/// A writer and a reader connection to one file.
pub(super) struct Connections {
    path: PathBuf,
    writer: Mutex<Connection>,
    reader: Mutex<Connection>,
}

/// How a store names a failure: what it was doing, and SQLite's error.
pub(super) type Fail<E> = fn(String, rusqlite::Error) -> E;

impl Connections {
    /// Opens both connections (WAL, a 10 s busy timeout, `synchronous` as
    /// given) and runs `schema` on the writer before the reader opens.
    pub(super) fn open<E>(path: &Path, synchronous: &str, schema: &str, fail: Fail<E>) -> Result<Self, E> {
        let writer = connect(path, synchronous, fail)?;
        writer
            .execute_batch(schema)
            .map_err(|e| fail(format!("creating the tables in {}", path.display()), e))?;
        let reader = connect(path, synchronous, fail)?;
        Ok(Connections {
            path: path.to_path_buf(),
            writer: Mutex::new(writer),
            reader: Mutex::new(reader),
        })
    }

    /// The file.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` on the writer (`write`) or the reader, in a blocking task.
    pub(super) async fn with<T: Send + 'static, E: From<Joining> + Send + 'static>(
        self: &std::sync::Arc<Self>,
        write: bool,
        f: impl FnOnce(&mut Connection) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let lock = if write { &this.writer } else { &this.reader };
            let mut conn = lock.lock().unwrap_or_else(|e| e.into_inner());
            f(&mut conn)
        })
        .await
        .map_err(|e| E::from(Joining(e)))?
    }
}

/// The blocking task running a connection's work panicked or was cancelled.
pub(super) struct Joining(pub(super) tokio::task::JoinError);

fn connect<E>(path: &Path, synchronous: &str, fail: Fail<E>) -> Result<Connection, E> {
    let conn = Connection::open(path).map_err(|e| fail(format!("opening {}", path.display()), e))?;
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(|e| fail("setting the busy timeout".to_owned(), e))?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(|e| fail("enabling WAL".to_owned(), e))?;
    conn.pragma_update(None, "synchronous", synchronous)
        .map_err(|e| fail("setting synchronous".to_owned(), e))?;
    Ok(conn)
}
