//! The PostgreSQL benches' schema of their own: opened fresh, dropped after.

use factum::{PostgresStore, Uuid};

/// A store in a fresh schema of the database at `url`, and the schema's name.
pub async fn open(url: &str) -> (PostgresStore, String) {
    let schema = format!("bench_{}", Uuid::new_v4().simple());
    let store = PostgresStore::connect(url.to_owned())
        .schema(schema.clone())
        .open()
        .await
        .unwrap();
    (store, schema)
}

/// Drops what [`open`] made.
pub async fn drop_schema(url: &str, schema: &str) {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    client
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .unwrap();
}
