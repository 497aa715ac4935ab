//! The idempotency layer on the store under test: what a handler sees.
//!
//! These run a real [`Consumer`] on the in-memory broker with
//! [`IdempotencyLayer`] over the store, so a store is checked where its answers matter:
//! a duplicate is skipped and acked, a failed attempt runs again, and a handler dropped
//! at the shutdown deadline hands its claim back (the release runs on a task of its own,
//! which a durable store must finish over the network).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wharf::headers::names;
use wharf::{Consumer, Handler, HandlerError, Message, Summary};
use wharf_memory::MemoryBroker;
use wharf_middleware::idempotency::{IdempotencyLayer, IdempotencyStore};

use super::{unique_consumer, StoreFactory};

/// Handler calls per idempotency key.
type Calls = Arc<Mutex<HashMap<String, usize>>>;

fn key_of(message: &Message) -> String {
    message
        .headers()
        .get_str(names::IDEMPOTENCY_KEY)
        .unwrap_or_default()
        .to_owned()
}

/// Counts a call for `message`'s key; the call's number for that key (1 for the first).
fn count(calls: &Calls, message: &Message) -> usize {
    let mut calls = calls.lock().expect("not poisoned");
    let n = calls.entry(key_of(message)).or_default();
    *n += 1;
    *n
}

/// A broker with topic `orders` and group `g`, holding one message per `(id, key)`.
fn broker_with(messages: &[(&str, &str)]) -> MemoryBroker {
    let broker = MemoryBroker::new();
    broker.declare_group("orders", "g");
    for (id, key) in messages {
        broker
            .publish(
                "orders",
                Message::with_id(*id, "").with_header(names::IDEMPOTENCY_KEY, key.to_string()),
            )
            .expect("the in-memory broker accepts");
    }
    broker
}

/// The layer over the store, with short waits for in-flight copies.
fn layer<S: IdempotencyStore>(store: S) -> IdempotencyLayer {
    IdempotencyLayer::new(Arc::new(store)).retry_in_flight_after(Duration::from_millis(100))
}

/// Runs `service` as consumer `name` on `orders`/`g` until nothing happened for 500 ms.
async fn run_until_idle<T>(name: &str, broker: &MemoryBroker, service: T) -> Summary
where
    T: tower::Service<Message, Response = wharf::Outcome> + Send + 'static,
    T::Future: Send + 'static,
    T::Error: Into<wharf::BoxError>,
{
    Consumer::new(name.to_owned(), broker.subscribe("orders", "g"), service)
        .retry_delay(Duration::from_millis(50))
        .stop_when_idle(Duration::from_millis(500))
        .run(std::future::pending())
        .await
        .unwrap_or_else(|e| panic!("the consumer failed: {e}"))
}

/// Three messages, two of them one operation (one key, two ids: a producer's retry):
/// the handler runs once per key and all three are acked.
pub async fn layer_runs_each_key_once<F: StoreFactory>(f: &F) {
    let calls: Calls = Arc::default();
    let handler = {
        let calls = calls.clone();
        move |message: Message| {
            let calls = calls.clone();
            async move {
                count(&calls, &message);
                Ok::<(), HandlerError>(())
            }
        }
    };
    let broker = broker_with(&[("m1", "pay-1"), ("m2", "pay-1"), ("m3", "pay-2")]);
    let stack = tower::Layer::layer(&layer(f.store().await), handler.into_service());
    let summary = run_until_idle(&unique_consumer("once"), &broker, stack).await;
    let calls = calls.lock().expect("not poisoned").clone();
    assert_eq!(
        calls,
        HashMap::from([("pay-1".to_owned(), 1), ("pay-2".to_owned(), 1)]),
        "{}: one handler call per key",
        f.name()
    );
    assert_eq!(
        summary.acked,
        3,
        "{}: the skipped copy is acked: {summary:?}",
        f.name()
    );
}

/// A failed attempt releases its claim: the redelivery runs the handler again.
pub async fn layer_handles_a_failed_key_again<F: StoreFactory>(f: &F) {
    let calls: Calls = Arc::default();
    let handler = {
        let calls = calls.clone();
        move |message: Message| {
            let calls = calls.clone();
            async move {
                if count(&calls, &message) == 1 {
                    return Err(HandlerError::transient("payment gateway timeout"));
                }
                Ok(())
            }
        }
    };
    let broker = broker_with(&[("m1", "pay-1")]);
    let stack = tower::Layer::layer(&layer(f.store().await), handler.into_service());
    let summary = run_until_idle(&unique_consumer("failed"), &broker, stack).await;
    assert_eq!(
        calls.lock().expect("not poisoned").get("pay-1"),
        Some(&2),
        "{}: the redelivery ran the handler",
        f.name()
    );
    assert_eq!(
        (summary.acked, summary.retried),
        (1, 1),
        "{}: {summary:?}",
        f.name()
    );
}

/// A handler still running at the shutdown deadline is dropped; its claim (leased for an
/// hour) is released on a task of its own, so the redelivery runs long before the lease
/// would have run out.
pub async fn layer_hands_an_aborted_claim_back<F: StoreFactory>(f: &F) {
    let calls: Calls = Arc::default();
    let handler = {
        let calls = calls.clone();
        move |message: Message| {
            let calls = calls.clone();
            async move {
                if count(&calls, &message) == 1 {
                    // Stuck: outlives the shutdown deadline.
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                }
                Ok::<(), HandlerError>(())
            }
        }
    };
    let broker = broker_with(&[("m1", "pay-1")]);
    let stack = tower::Layer::layer(
        &layer(f.store().await).lease(Duration::from_secs(3600)),
        handler.into_service(),
    );
    let name = unique_consumer("aborted");
    let summary = Consumer::new(name.clone(), broker.subscribe("orders", "g"), stack.clone())
        .shutdown_timeout(Duration::from_millis(200))
        .run(tokio::time::sleep(Duration::from_millis(500)))
        .await
        .unwrap_or_else(|e| panic!("the consumer failed: {e}"));
    assert_eq!(summary.interrupted, 1, "{}: {summary:?}", f.name());

    let started = Instant::now();
    let summary = run_until_idle(&name, &broker, stack).await;
    assert_eq!(
        calls.lock().expect("not poisoned").get("pay-1"),
        Some(&2),
        "{}: the redelivery ran the handler: {summary:?}",
        f.name()
    );
    assert_eq!(summary.acked, 1, "{}: {summary:?}", f.name());
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{}: the redelivery waited {:?}: the aborted claim was not released",
        f.name(),
        started.elapsed()
    );
}
