//! A message whose handling failed is handled again when it is redelivered: the claim is
//! released on failure, never marked (marking before success would lose the message).
#![cfg(feature = "dedup")]
#![allow(clippy::unwrap_used)] // in tests a panic is the clearest report

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tower::{service_fn, ServiceBuilder};
use wharf::{BoxError, Handler, HandlerError, Message, Outcome};
use wharf_memory::Harness;
use wharf_middleware::dedup::{DedupLayer, MemoryDedupStore};

#[tokio::test(start_paused = true)]
async fn a_transient_failure_is_redelivered_and_handled_again() {
    let calls = Arc::new(AtomicUsize::new(0));
    let handler = {
        let calls = calls.clone();
        move |_msg: Message| {
            let calls = calls.clone();
            async move {
                if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                    return Err(HandlerError::transient("database restarting"));
                }
                Ok(())
            }
        }
    };
    let stack = ServiceBuilder::new()
        .layer(DedupLayer::new(MemoryDedupStore::default()))
        .service(handler.into_service());
    let mut harness = Harness::new(stack).consumer_name("billing");
    let id = harness.publish(Message::with_id("pay-1", "42.00"));
    let report = harness.run_until_idle().await;

    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "the redelivery must run the handler"
    );
    report.assert_acked(&id).assert_retried(&id, 1);
}

#[tokio::test(start_paused = true)]
async fn a_retry_outcome_is_redelivered_and_handled_again() {
    let calls = Arc::new(AtomicUsize::new(0));
    let inner = {
        let calls = calls.clone();
        service_fn(move |msg: Message| {
            calls.fetch_add(1, Ordering::SeqCst);
            // What a retry layer inside answers: come back later.
            let out = if msg.attempt() == 1 {
                Outcome::retry_after(Duration::from_secs(30))
            } else {
                Outcome::Ack
            };
            async move { Ok::<_, BoxError>(out) }
        })
    };
    let stack = ServiceBuilder::new()
        .layer(DedupLayer::new(MemoryDedupStore::default()))
        .service(inner);
    let mut harness = Harness::new(stack).consumer_name("billing");
    let id = harness.publish(Message::with_id("pay-1", "42.00"));
    let report = harness.run_until_idle().await;

    assert_eq!(calls.load(Ordering::SeqCst), 2);
    report.assert_acked(&id).assert_retried(&id, 1);
}
