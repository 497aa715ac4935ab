//! The store suite against the local PostgreSQL (`scripts/brokers.sh` starts it:
//! 127.0.0.1:5432, trust auth, database `test`), and what is particular to it.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use wharf_conformance::stores::{unique_consumer, StoreFactory};
use wharf_middleware::idempotency::{Claim, IdempotencyKey, IdempotencyStore};
use wharf_postgres::{PostgresStore, PostgresStoreConfig};

const URL: &str = "postgres://postgres@127.0.0.1:5432/test?pool_size=8";

struct Postgres;

impl StoreFactory for Postgres {
    type Store = PostgresStore;

    fn name(&self) -> &str {
        "postgres"
    }

    async fn store(&self) -> PostgresStore {
        PostgresStore::connect(URL.parse().unwrap()).await.unwrap()
    }
}

mod suite {
    use super::*;
    wharf_conformance::store_conformance_tests!(ignore = "needs postgres", Postgres);
}

/// Expired rows are deleted in batches; live ones stay.
#[tokio::test]
#[ignore = "needs postgres"]
async fn cleanup_deletes_only_expired_rows_in_batches() {
    let config: PostgresStoreConfig = format!("{URL}&table=wharf_cleanup_test").parse().unwrap();
    let store = PostgresStore::connect(config).await.unwrap();
    // Other runs' rows may be there: clean first, then count ours.
    while store.cleanup_expired(1000).await.unwrap() > 0 {}
    let consumer = unique_consumer("cleanup");
    for i in 0..25 {
        let key = IdempotencyKey::new(consumer.as_str(), format!("k{i}"));
        let lease = if i < 20 {
            Duration::from_millis(100)
        } else {
            Duration::from_secs(60)
        };
        let Claim::Claimed(_) = store.claim(&key, lease).await.unwrap() else {
            panic!()
        };
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(store.cleanup_expired(8).await.unwrap(), 8, "one batch of 8");
    let mut rest = 0;
    loop {
        let n = store.cleanup_expired(8).await.unwrap();
        rest += n;
        if n < 8 {
            break;
        }
    }
    assert_eq!(rest, 12, "the other 12 expired claims");
    for i in 20..25 {
        let key = IdempotencyKey::new(consumer.as_str(), format!("k{i}"));
        assert_eq!(
            store.claim(&key, Duration::from_secs(60)).await.unwrap(),
            Claim::InFlight,
            "live claims stay"
        );
    }
}

/// Replicas starting together create the table once; the schema version is recorded.
#[tokio::test]
#[ignore = "needs postgres"]
async fn replicas_starting_together_migrate_once() {
    let table = format!("wharf_migrate_{}", std::process::id());
    let url = format!("{URL}&table={table}");
    let starts: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { PostgresStore::connect(url.parse().unwrap()).await })
        })
        .collect();
    for start in starts {
        start.await.unwrap().unwrap();
    }
    let (client, connection) = tokio_postgres::connect(
        "postgres://postgres@127.0.0.1:5432/test",
        tokio_postgres::NoTls,
    )
    .await
    .unwrap();
    tokio::spawn(connection);
    let versions = client
        .query(&format!("SELECT version FROM {table}_schema"), &[])
        .await
        .unwrap();
    assert_eq!(versions.len(), 1);
    client
        .batch_execute(&format!("DROP TABLE {table}; DROP TABLE {table}_schema"))
        .await
        .unwrap();
}

/// A database that does not answer is a start-up error that names the host, never the
/// password.
#[tokio::test]
async fn unreachable_database_fails_at_start_up_without_the_password() {
    let config: PostgresStoreConfig =
        "postgres://app:hunter2-secret@127.0.0.1:1/test?connect_timeout=2"
            .parse()
            .unwrap();
    let err = PostgresStore::connect(config).await.unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(matches!(err, wharf::Error::Connection(_)), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
}
