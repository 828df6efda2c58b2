//! The runner lease on PostgreSQL, for every process that must run on one
//! node at a time (each view, the timers, the workflows): a session-level
//! `pg_try_advisory_lock` held by a dedicated connection. If the runner's
//! process dies its connection drops, the server frees the lock, and another
//! node (retrying every second) takes over.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio_postgres::{Client, NoTls};

use crate::process::Lease;

/// The first key of the advisory locks of views ("fact"); the second is the view name's hash.
pub(crate) const VIEW_LOCKS: i32 = 0x6661_6374;
/// The first key of the timer runner's advisory lock ("ftmr"); the second is the schema's hash,
/// so the timers of two schemas on one database have two runners.
pub(crate) const TIMER_LOCKS: i32 = 0x6674_6d72;
/// The advisory-lock class of consumer runners ("fcon"); the key is the schema and consumer name.
pub(crate) const CONSUMER_LOCKS: i32 = 0x6663_6f6e;
/// The first key of the locks of other processes kept beside the timers ("fprc"), such as the
/// workflow runner; the second is the hash of `<schema>/<process>`.
pub(crate) const PROCESS_LOCKS: i32 = 0x6670_7263;

/// A client and whether its connection task has ended.
pub(crate) struct Conn {
    pub(crate) client: Client,
    pub(crate) lost: Arc<AtomicBool>,
}

/// `"name"`, quoted as a PostgreSQL identifier.
pub(crate) fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// A connection to `url` whose statements run in `schema` (if given).
pub(crate) async fn connect(url: &str, schema: Option<&str>) -> Result<Conn, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    let lost = Arc::new(AtomicBool::new(false));
    let flag = lost.clone();
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::warn!(%error, "a PostgreSQL connection of factum ended");
        }
        flag.store(true, Ordering::SeqCst);
    });
    if let Some(schema) = schema {
        client
            .batch_execute(&format!("SET search_path TO {}", quote_ident(schema)))
            .await?;
    }
    Ok(Conn { client, lost })
}

/// A stable 32-bit hash of a name (FNV-1a), an advisory lock's second key.
pub(crate) fn lock_key(name: &str) -> i32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in name.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h as i32
}

/// The runner lease: an advisory lock held by a dedicated connection's session.
struct PgLease {
    conn: Conn,
}

impl Lease for PgLease {
    fn is_lost(&self) -> bool {
        self.conn.lost.load(Ordering::SeqCst) || self.conn.client.is_closed()
    }
}

/// Tries to take the lock `(class, lock_key(name))` on a connection of its
/// own; `None` while another session holds it.
pub(crate) async fn try_lease(
    url: &str,
    schema: Option<&str>,
    class: i32,
    name: &str,
) -> Result<Option<Box<dyn Lease>>, tokio_postgres::Error> {
    let conn = connect(url, schema).await?;
    let got: bool = conn
        .client
        .query_one("SELECT pg_try_advisory_lock($1, $2)", &[&class, &lock_key(name)])
        .await?
        .try_get(0)?;
    // Not taken: dropping the connection here is all the cleanup there is.
    Ok(got.then(|| Box::new(PgLease { conn }) as Box<dyn Lease>))
}

/// Creates `ddl`'s tables in `schema` (and the schema) under a transaction-level
/// advisory lock on `factum <what> <schema>`, so nodes starting at once do not
/// race on `CREATE … IF NOT EXISTS`; then opens the store's connection with
/// `search_path` set to the schema. On failure, says which step failed.
pub(crate) async fn open_in_schema(
    url: &str,
    schema: &str,
    what: &str,
    ddl: &str,
) -> Result<Conn, (String, tokio_postgres::Error)> {
    let step = |context: &str| {
        let context = context.to_owned();
        move |e| (context, e)
    };
    let mut setup = connect(url, None).await.map_err(step("connecting"))?;
    let tx = setup
        .client
        .transaction()
        .await
        .map_err(step("beginning setup"))?;
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext($1 || $2))",
        &[&format!("factum {what} "), &schema],
    )
    .await
    .map_err(step("locking for setup"))?;
    tx.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS {0}; SET LOCAL search_path TO {0}; {ddl}",
        quote_ident(schema)
    ))
    .await
    .map_err(step(&format!("creating the {what} tables in schema {schema}")))?;
    tx.commit().await.map_err(step("committing setup"))?;
    drop(setup);
    connect(url, Some(schema)).await.map_err(step("connecting"))
}

/// Reconnects `conn` (with `search_path` set to `schema`) if its connection was lost.
pub(crate) async fn ensure_connected(
    conn: &mut Conn,
    url: &str,
    schema: &str,
) -> Result<(), tokio_postgres::Error> {
    if conn.lost.load(Ordering::SeqCst) || conn.client.is_closed() {
        *conn = connect(url, Some(schema)).await?;
    }
    Ok(())
}
