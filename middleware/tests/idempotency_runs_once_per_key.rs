//! Two messages with different ids and the same idempotency key: the handler runs once,
//! both are acked, and the skipped one is counted in
//! `wharf_duplicates_total{kind="idempotency"}`.
#![cfg(all(feature = "idempotency", feature = "metrics"))]
#![allow(clippy::unwrap_used)] // in tests a panic is the clearest report

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use tower::ServiceBuilder;
use wharf::{Handler, HandlerError, Message, Outcome};
use wharf_memory::Harness;
use wharf_middleware::idempotency::{IdempotencyLayer, MemoryIdempotencyStore};

/// The value of counter `name` with exactly `labels` (in any order).
fn counter(recorder: &DebuggingRecorder, name: &str, labels: &[(&str, &str)]) -> u64 {
    let mut want: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    want.sort();
    for (key, _, _, value) in recorder.snapshotter().snapshot().into_vec() {
        let key = key.key();
        let mut got: Vec<(String, String)> = key
            .labels()
            .map(|l| (l.key().to_owned(), l.value().to_owned()))
            .collect();
        got.sort();
        if key.name() == name && got == want {
            match value {
                DebugValue::Counter(n) => return n,
                other => panic!("{name}: expected a counter, got {other:?}"),
            }
        }
    }
    0
}

fn counting_handler(calls: &Arc<AtomicUsize>, busy: Duration) -> impl Handler<(Message,)> + Clone {
    let calls = calls.clone();
    move |_msg: Message| {
        let calls = calls.clone();
        async move {
            calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(busy).await;
            Ok::<(), HandlerError>(())
        }
    }
}

fn payment(key: &str) -> Message {
    Message::new("42.00").with_header("idempotency-key", key.to_owned())
}

#[tokio::test(start_paused = true)]
async fn different_ids_same_key_run_once() {
    let recorder = DebuggingRecorder::new();
    let _local = metrics::set_default_local_recorder(&recorder);

    let calls = Arc::new(AtomicUsize::new(0));
    let store = Arc::new(MemoryIdempotencyStore::default());
    let stack = ServiceBuilder::new()
        .layer(IdempotencyLayer::new(store))
        .service(counting_handler(&calls, Duration::ZERO).into_service());
    let mut harness = Harness::new(stack)
        .topic("payments")
        .consumer_name("billing");

    let first = harness.publish(payment("pay-7"));
    harness.run_until_idle().await.assert_acked(&first);
    // The client resubmitted: a new message (new id), the same operation.
    let resubmitted = harness.publish(payment("pay-7"));
    let other = harness.publish(payment("pay-8"));
    assert_ne!(first, resubmitted);
    let report = harness.run_until_idle().await;

    assert_eq!(calls.load(Ordering::SeqCst), 2, "pay-7 once, pay-8 once");
    report
        .assert_acked(&resubmitted)
        .assert_retried(&resubmitted, 0);
    report.assert_acked(&other);
    let labels = [
        ("consumer", "billing"),
        ("source", "payments"),
        ("kind", "idempotency"),
    ];
    assert_eq!(counter(&recorder, "wharf_duplicates_total", &labels), 1);
}

#[tokio::test(start_paused = true)]
async fn different_ids_same_key_delivered_together_run_once_never_concurrently() {
    let calls = Arc::new(AtomicUsize::new(0));
    let store = Arc::new(MemoryIdempotencyStore::default());
    let stack = ServiceBuilder::new()
        .layer(IdempotencyLayer::new(store).retry_in_flight_after(Duration::from_secs(1)))
        .service(counting_handler(&calls, Duration::from_secs(5)).into_service());
    let mut harness = Harness::new(stack).consumer_name("billing");
    let a = harness.publish(payment("pay-7"));
    let b = harness.publish(payment("pay-7"));
    let report = harness.run_until_idle().await;

    assert_eq!(calls.load(Ordering::SeqCst), 1);
    report.assert_acked(&a).assert_retried(&a, 0);
    // b found pay-7 in flight: retried until a was done, then skipped.
    report.assert_acked(&b);
    let b = report.record(&b).unwrap();
    assert!(b.retries() >= 1, "{b:?}");
    assert_eq!(b.outcomes[0], Outcome::retry_after(Duration::from_secs(1)));
}

#[tokio::test(start_paused = true)]
async fn consumers_sharing_a_store_each_handle_the_key() {
    let store = Arc::new(MemoryIdempotencyStore::default());
    let (billing_calls, shipping_calls) =
        (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    for (name, calls) in [("billing", &billing_calls), ("shipping", &shipping_calls)] {
        let stack = ServiceBuilder::new()
            .layer(IdempotencyLayer::new(store.clone()))
            .service(counting_handler(calls, Duration::ZERO).into_service());
        let mut harness = Harness::new(stack).consumer_name(name);
        harness.publish(payment("order-1"));
        harness.publish(payment("order-1"));
        harness.run_until_idle().await;
    }
    assert_eq!(billing_calls.load(Ordering::SeqCst), 1);
    assert_eq!(shipping_calls.load(Ordering::SeqCst), 1);
}
