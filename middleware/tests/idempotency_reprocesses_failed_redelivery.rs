//! A message whose handling failed is handled again when redelivered, and so is a later
//! message with the same key: the claim is released on failure, never marked.
#![cfg(feature = "idempotency")]
#![allow(clippy::unwrap_used)] // in tests a panic is the clearest report

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tower::ServiceBuilder;
use wharf::{Handler, HandlerError, Message};
use wharf_memory::Harness;
use wharf_middleware::idempotency::{IdempotencyLayer, MemoryIdempotencyStore};

#[tokio::test(start_paused = true)]
async fn a_failed_key_is_handled_again_on_redelivery() {
    let calls = Arc::new(AtomicUsize::new(0));
    let handler = {
        let calls = calls.clone();
        move |_msg: Message| {
            let calls = calls.clone();
            async move {
                if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                    return Err(HandlerError::transient("payment gateway timeout"));
                }
                Ok(())
            }
        }
    };
    let stack = ServiceBuilder::new()
        .layer(IdempotencyLayer::new(Arc::new(
            MemoryIdempotencyStore::default(),
        )))
        .service(handler.into_service());
    let mut harness = Harness::new(stack).consumer_name("billing");
    let id = harness.publish(Message::new("42.00").with_header("idempotency-key", "pay-1"));
    let report = harness.run_until_idle().await;

    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "the redelivery must run the handler"
    );
    report.assert_acked(&id).assert_retried(&id, 1);
}
