//! The versioned schema: `migrations/*.sql`, applied in order, each once.
//!
//! `<table>_schema` records the versions applied. Migrations run in one transaction
//! under an advisory lock keyed by the table name, so replicas that start together
//! apply each migration once and wait for each other.

use tokio_postgres::Client;

/// The claim table's migrations, in order: (version, SQL with `{table}` for its name).
pub(crate) const CLAIMS: &[(i32, &str)] = &[(1, include_str!("../migrations/0001_claims.sql"))];

/// The inbox table's migrations.
pub(crate) const INBOX: &[(i32, &str)] = &[(1, include_str!("../migrations/inbox_0001.sql"))];

/// Applies the `migrations` `table` has not had yet.
pub(crate) async fn apply(
    client: &mut Client,
    table: &str,
    migrations: &[(i32, &str)],
) -> Result<(), tokio_postgres::Error> {
    let tx = client.transaction().await?;
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext($1))",
        &[&format!("wharf-postgres:{table}")],
    )
    .await?;
    tx.batch_execute(&format!(
        "CREATE TABLE IF NOT EXISTS {table}_schema (
             version    integer     PRIMARY KEY,
             applied_at timestamptz NOT NULL DEFAULT now())"
    ))
    .await?;
    let applied: Vec<i32> = tx
        .query(&format!("SELECT version FROM {table}_schema"), &[])
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    for (version, sql) in migrations {
        if applied.contains(version) {
            continue;
        }
        tx.batch_execute(&sql.replace("{table}", table)).await?;
        tx.execute(
            &format!("INSERT INTO {table}_schema (version) VALUES ($1)"),
            &[version],
        )
        .await?;
        tracing::info!(table, version, "applied wharf-postgres migration");
    }
    tx.commit().await
}
