//! The PostgreSQL benches' schema of their own: opened fresh, dropped after.

use factum::{PostgresStore, Uuid};

/// Runs `bench` on a store in a fresh schema of the database `FACTUM_PG_URL`
/// names, and drops the schema after; without the variable, says so and
/// runs nothing.
pub fn with_store(bench: &str, rt: &tokio::runtime::Runtime, run: impl FnOnce(&PostgresStore)) {
    let Ok(url) = std::env::var("FACTUM_PG_URL") else {
        println!("skipping the postgres {bench} bench: FACTUM_PG_URL is not set");
        return;
    };
    let (store, schema) = rt.block_on(open(&url));
    run(&store);
    drop(store);
    rt.block_on(drop_schema(&url, &schema));
}

/// A store in a fresh schema of the database at `url`, and the schema's name.
async fn open(url: &str) -> (PostgresStore, String) {
    let schema = format!("bench_{}", Uuid::new_v4().simple());
    let store = PostgresStore::connect(url.to_owned())
        .schema(schema.clone())
        .open()
        .await
        .unwrap();
    (store, schema)
}

/// Drops what [`open`] made.
async fn drop_schema(url: &str, schema: &str) {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    client
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .unwrap();
}
