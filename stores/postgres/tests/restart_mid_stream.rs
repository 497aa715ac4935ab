//! PostgreSQL restarted (`pg_ctlcluster restart -m fast`: every connection is cut) while a
//! consumer runs with the idempotency layer on the store: the store's errors are
//! transient, the pool reconnects, nothing is lost, nothing takes effect twice
//! (`wharf_conformance::stores::restart_mid_stream`).
//!
//! In a test binary of its own: the restart would disturb other tests on the server.

#![allow(clippy::unwrap_used)]

use wharf_conformance::stores::{restart_mid_stream, StoreFactory};
use wharf_postgres::PostgresStore;

struct Postgres;

impl StoreFactory for Postgres {
    type Store = PostgresStore;

    fn name(&self) -> &str {
        "postgres"
    }

    async fn store(&self) -> PostgresStore {
        PostgresStore::connect(
            "postgres://postgres@127.0.0.1:5432/test?pool_size=4&connect_timeout=2"
                .parse()
                .unwrap(),
        )
        .await
        .unwrap()
    }
}

/// Restarts the machine's PostgreSQL cluster (the newest version's `main`).
fn restart_postgres() {
    let version = std::fs::read_dir("/etc/postgresql")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .max_by_key(|v| v.parse::<u32>().unwrap_or(0))
        .expect("a PostgreSQL cluster");
    let status = std::process::Command::new("pg_ctlcluster")
        .args([version.as_str(), "main", "restart", "-m", "fast"])
        .status()
        .unwrap();
    assert!(status.success(), "pg_ctlcluster restart: {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs postgres"]
async fn a_postgres_restart_loses_nothing_and_duplicates_nothing() {
    let summary = restart_mid_stream(&Postgres, restart_postgres).await;
    // The restart cuts every connection: operations in flight fail, transiently.
    assert!(
        summary.retried > 0,
        "the restart was seen (store errors retried): {summary:?}"
    );
}
