//! A store's server restarted under a running consumer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use wharf::headers::names;
use wharf::{Consumer, Handler, HandlerError, Message};
use wharf_memory::MemoryBroker;
use wharf_middleware::idempotency::IdempotencyLayer;

use super::{unique_consumer, StoreFactory};

/// A consumer with the idempotency layer on the store handles 300 operations; a fifth of
/// the way in, `restart` restarts the store's server (it returns once the server is back
/// or on its way) under the running consumer. Whatever the store does during
/// the outage (fail its operations, which must be transient: retried, never
/// dead-lettered; or wait for the server, as Redis' connection manager may), its
/// connections come back on their own, every operation takes effect, and none takes
/// effect twice. Returns the consumer's summary (`retried` counts the deliveries the
/// outage failed), for store-specific checks.
///
/// Not part of [`store_conformance_tests!`](crate::store_conformance_tests): a restart
/// disturbs every other test on the server, so each store runs it in a test binary of its
/// own, against a server the test may restart.
pub async fn restart_mid_stream<F, R>(f: &F, restart: R) -> wharf::Summary
where
    F: StoreFactory,
    R: FnOnce() + Send + 'static,
{
    const MESSAGES: usize = 300;
    let store = f.store().await;
    let broker = MemoryBroker::new();
    broker.declare_group("orders", "g");
    for i in 0..MESSAGES {
        broker
            .publish(
                "orders",
                Message::with_id(format!("m{i}"), "")
                    .with_header(names::IDEMPOTENCY_KEY, format!("op-{i}")),
            )
            .expect("the in-memory broker accepts");
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
                    .unwrap_or_default()
                    .to_owned();
                *effects
                    .lock()
                    .expect("not poisoned")
                    .entry(key)
                    .or_default() += 1;
                Ok::<(), HandlerError>(())
            }
        }
    };
    let stack = tower::Layer::layer(
        &IdempotencyLayer::new(Arc::new(store)),
        handler.into_service(),
    );
    let running = tokio::spawn(
        Consumer::new(
            unique_consumer("restart"),
            broker.subscribe("orders", "g"),
            stack,
        )
        .max_in_flight(8)
        .retry_delay(Duration::from_millis(200))
        .max_attempts(1000)
        .stop_when_idle(Duration::from_secs(3))
        .run(std::future::pending()),
    );
    while effects.lock().expect("not poisoned").len() < MESSAGES / 5 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::task::spawn_blocking(restart)
        .await
        .expect("the restart ran");
    let summary = tokio::time::timeout(Duration::from_secs(120), running)
        .await
        .unwrap_or_else(|_| {
            panic!(
                "{}: the consumer never finished after the restart",
                f.name()
            )
        })
        .expect("the consumer task ran")
        .unwrap_or_else(|e| panic!("{}: the consumer failed: {e}", f.name()));
    let effects = effects.lock().expect("not poisoned");
    assert_eq!(
        effects.len(),
        MESSAGES,
        "{}: every operation took effect: {summary:?}",
        f.name()
    );
    let twice: Vec<_> = effects.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "{}: operations that took effect twice: {twice:?}",
        f.name()
    );
    assert_eq!(
        summary.dead_lettered,
        0,
        "{}: a store outage dead-letters nothing: {summary:?}",
        f.name()
    );
    summary
}
