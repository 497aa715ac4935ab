//! The key can come from the typed payload. A payload that does not decode is
//! dead-lettered with reason `decode`, without a claim and without the handler.
#![cfg(all(feature = "idempotency", feature = "dead-letter"))]
#![allow(clippy::unwrap_used)] // in tests a panic is the clearest report

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use serde::Deserialize;
use tower::ServiceBuilder;
use wharf::{Handler, HandlerError, Json, Message};
use wharf_memory::{Harness, MemoryBroker};
use wharf_middleware::dead_letter::DeadLetterLayer;
use wharf_middleware::idempotency::{IdempotencyLayer, MemoryIdempotencyStore};

#[derive(Deserialize)]
struct Payment {
    payment_id: String,
    #[allow(dead_code)]
    amount: u64,
}

#[tokio::test(start_paused = true)]
async fn the_key_is_a_field_of_the_payload() {
    let calls = Arc::new(AtomicUsize::new(0));
    let handler = {
        let calls = calls.clone();
        move |Json(_payment): Json<Payment>| {
            let calls = calls.clone();
            async move {
                calls.fetch_add(1, Ordering::SeqCst);
                Ok::<(), HandlerError>(())
            }
        }
    };
    let broker = MemoryBroker::new();
    let store = Arc::new(MemoryIdempotencyStore::default());
    let stack = ServiceBuilder::new()
        .layer(DeadLetterLayer::new(Arc::new(broker.clone())))
        .layer(
            IdempotencyLayer::new(store).key_from_payload(|p: &Payment| Some(p.payment_id.clone())),
        )
        .service(handler.into_service());
    let mut harness = Harness::with_broker(broker, stack).consumer_name("billing");

    let a = harness.publish(Message::new(r#"{"payment_id":"p-1","amount":42}"#));
    let b = harness.publish(Message::new(r#"{"payment_id":"p-1","amount":42}"#));
    let c = harness.publish(Message::new(r#"{"payment_id":"p-2","amount":42}"#));
    let poison = harness.publish(Message::new("not json"));
    let report = harness.run_until_idle().await;

    assert_eq!(calls.load(Ordering::SeqCst), 2, "p-1 once, p-2 once");
    report.assert_acked(&a).assert_acked(&b).assert_acked(&c);
    report.assert_dead_lettered(&poison, "decode");
}
