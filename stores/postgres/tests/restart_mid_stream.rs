//! PostgreSQL restarted while a consumer runs with the idempotency layer on the store:
//! the store's errors are transient (the deliveries are retried), the pool reconnects,
//! nothing is lost, and no operation takes effect twice.
//!
//! In a test binary of its own: the restart would disturb other tests on the server.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use wharf::headers::names;
use wharf::{Consumer, Handler, HandlerError, Message};
use wharf_memory::MemoryBroker;
use wharf_middleware::idempotency::IdempotencyLayer;
use wharf_postgres::PostgresStore;

const MESSAGES: usize = 300;

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
    let store = PostgresStore::connect(
        "postgres://postgres@127.0.0.1:5432/test?pool_size=4&connect_timeout=2"
            .parse()
            .unwrap(),
    )
    .await
    .unwrap();
    let consumer = format!("restart-{}", std::process::id());
    let broker = MemoryBroker::new();
    broker.declare_group("orders", "g");
    for i in 0..MESSAGES {
        broker
            .publish(
                "orders",
                Message::with_id(format!("m{i}"), "")
                    .with_header(names::IDEMPOTENCY_KEY, format!("op-{i}")),
            )
            .unwrap();
    }
    let effects: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let handler = {
        let effects = effects.clone();
        move |message: Message| {
            let effects = effects.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(5)).await;
                let key = message
                    .headers()
                    .get_str(names::IDEMPOTENCY_KEY)
                    .unwrap()
                    .to_owned();
                *effects.lock().unwrap().entry(key).or_default() += 1;
                Ok::<(), HandlerError>(())
            }
        }
    };
    let stack = tower::Layer::layer(
        &IdempotencyLayer::new(Arc::new(store)),
        handler.into_service(),
    );
    let running = tokio::spawn(
        Consumer::new(consumer, broker.subscribe("orders", "g"), stack)
            .max_in_flight(8)
            .retry_delay(Duration::from_millis(200))
            .max_attempts(1000)
            .stop_when_idle(Duration::from_secs(3))
            .run(std::future::pending()),
    );
    while effects.lock().unwrap().len() < MESSAGES / 5 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::task::spawn_blocking(restart_postgres).await.unwrap();
    let summary = tokio::time::timeout(Duration::from_secs(120), running)
        .await
        .expect("the consumer finished after the restart")
        .unwrap()
        .unwrap();
    let effects = effects.lock().unwrap();
    assert_eq!(
        effects.len(),
        MESSAGES,
        "every operation took effect: {summary:?}"
    );
    let twice: Vec<_> = effects.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "operations that took effect twice: {twice:?}"
    );
    assert!(
        summary.retried > 0,
        "the restart was seen (store errors retried): {summary:?}"
    );
    assert_eq!(
        summary.dead_lettered, 0,
        "a store outage dead-letters nothing: {summary:?}"
    );
}
