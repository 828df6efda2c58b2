//! PostgreSQL for the view tests: `FACTUM_PG_URL`, or a skip notice.

use factum::postgres::PostgresViewStore;

/// The server to test against. In a build with `FACTUM_PG_URL` set (cfg
/// `factum_pg`, see `build.rs`) it must still be set when the test runs: a
/// PostgreSQL test never passes without PostgreSQL. In a build without it the
/// PostgreSQL-only tests are `ignored`; a test that covers several stores gets
/// `None` here and says on stderr that its PostgreSQL part did not run.
pub fn url(test: &str) -> Option<String> {
    match std::env::var("FACTUM_PG_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if cfg!(factum_pg) => panic!(
            "{test}: this build of the tests was made with FACTUM_PG_URL set, but it is unset now; \
             set it again (e.g. postgres://postgres@127.0.0.1:5432/test)"
        ),
        _ => {
            eprintln!(
                "{test}: its PostgreSQL part did not run: set FACTUM_PG_URL (e.g. postgres://postgres@127.0.0.1:5432/test)"
            );
            None
        }
    }
}

/// A schema name no other test or run uses.
pub fn fresh_schema(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("factum_t_{test}_{}_{nanos}", std::process::id())
}

/// A view store in a fresh schema of its own, or `None` without `FACTUM_PG_URL`.
pub async fn view_store(test: &str) -> Option<PostgresViewStore> {
    let url = url(test)?;
    let schema = fresh_schema(test);
    Some(
        PostgresViewStore::connect_in_schema(&url, &schema)
            .await
            .expect("connect to FACTUM_PG_URL"),
    )
}
