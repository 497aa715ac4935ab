//! A message without a key is handled unprotected by default; with
//! `MissingKey::Reject` it is dead-lettered with reason `missing-idempotency-key` and the
//! handler never sees it.
#![cfg(all(feature = "idempotency", feature = "dead-letter"))]
#![allow(clippy::unwrap_used)] // in tests a panic is the clearest report

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tower::ServiceBuilder;
use wharf::{Handler, HandlerError, Message};
use wharf_memory::{Harness, MemoryBroker};
use wharf_middleware::dead_letter::DeadLetterLayer;
use wharf_middleware::idempotency::error::MissingKeyError;
use wharf_middleware::idempotency::{IdempotencyLayer, MemoryIdempotencyStore, MissingKey};

fn counting(calls: &Arc<AtomicUsize>) -> impl Handler<(Message,)> + Clone {
    let calls = calls.clone();
    move |_msg: Message| {
        let calls = calls.clone();
        async move {
            calls.fetch_add(1, Ordering::SeqCst);
            Ok::<(), HandlerError>(())
        }
    }
}

#[tokio::test(start_paused = true)]
async fn keyless_messages_are_processed_by_default() {
    let calls = Arc::new(AtomicUsize::new(0));
    let stack = ServiceBuilder::new()
        .layer(IdempotencyLayer::new(Arc::new(
            MemoryIdempotencyStore::default(),
        )))
        .service(counting(&calls).into_service());
    let mut harness = Harness::new(stack).consumer_name("audit");
    let a = harness.publish(Message::new("same"));
    let b = harness.publish(Message::new("same"));
    let report = harness.run_until_idle().await;
    report.assert_acked(&a).assert_acked(&b);
    assert_eq!(calls.load(Ordering::SeqCst), 2, "no key, no protection");
}

#[tokio::test(start_paused = true)]
async fn keyless_messages_are_dead_lettered_when_keys_are_required() {
    let calls = Arc::new(AtomicUsize::new(0));
    let broker = MemoryBroker::new();
    let stack = ServiceBuilder::new()
        .layer(DeadLetterLayer::new(Arc::new(broker.clone())))
        .layer(
            IdempotencyLayer::new(Arc::new(MemoryIdempotencyStore::default()))
                .missing_key(MissingKey::Reject),
        )
        .service(counting(&calls).into_service());
    let mut harness = Harness::with_broker(broker, stack).consumer_name("billing");
    let keyless = harness.publish(Message::new("42.00"));
    let empty = harness.publish(Message::new("42.00").with_header("idempotency-key", ""));
    let keyed = harness.publish(Message::new("42.00").with_header("idempotency-key", "pay-1"));
    let report = harness.run_until_idle().await;

    report.assert_dead_lettered(&keyless, MissingKeyError::REASON);
    report.assert_dead_lettered(&empty, MissingKeyError::REASON);
    report.assert_retried(&keyless, 0);
    report.assert_acked(&keyed);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "only the keyed message ran"
    );
}
