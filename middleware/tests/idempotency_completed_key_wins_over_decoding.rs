//! Precedence of an idempotency key over decoding: a message whose key is already
//! completed is acked as a duplicate **without being decoded**, even when its payload
//! would not decode; an undecodable payload under a fresh key is dead-lettered with
//! reason `decode`.
//!
//! Why the key wins: the idempotency layer runs before the handler, and decoding is the
//! handler's first step. A completed key says the operation it names was done; a second
//! message for it is skipped whatever it carries, as an inbox skips a duplicate before
//! deserializing it (NServiceBus, MassTransit). The skipped copy is counted in
//! `wharf_duplicates_total{kind="idempotency"}`, so a producer that re-sends garbage
//! under a used key still shows. Put the dead-letter decision first by taking the key
//! from the payload (`IdempotencyLayer::key_from_payload`): a payload that does not
//! decode then has no key and is dead-lettered (`idempotency_key_from_payload.rs`).
#![cfg(feature = "idempotency")]
#![allow(clippy::unwrap_used)] // in tests a panic is the clearest report

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use serde::Deserialize;
use tower::ServiceBuilder;
use wharf::{Handler, HandlerError, Json, Message};
use wharf_memory::Harness;
use wharf_middleware::idempotency::{IdempotencyLayer, MemoryIdempotencyStore};

#[derive(Deserialize)]
struct Payment {
    #[allow(dead_code)]
    amount: u64,
}

fn payment(key: &str, payload: &str) -> Message {
    Message::new(payload.to_owned()).with_header("idempotency-key", key.to_owned())
}

#[tokio::test(start_paused = true)]
async fn completed_key_wins_over_an_undecodable_payload() {
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
    let store = Arc::new(MemoryIdempotencyStore::default());
    let stack = ServiceBuilder::new()
        .layer(IdempotencyLayer::new(store))
        .service(handler.into_service());
    let mut harness = Harness::new(stack).consumer_name("billing");

    let first = harness.publish(payment("pay-7", r#"{"amount": 42}"#));
    harness.run_until_idle().await.assert_acked(&first);

    let garbage_same_key = harness.publish(payment("pay-7", "not json"));
    let garbage_new_key = harness.publish(payment("pay-8", "not json"));
    let report = harness.run_until_idle().await;

    report
        .assert_acked(&garbage_same_key)
        .assert_retried(&garbage_same_key, 0);
    report.assert_dead_lettered(&garbage_new_key, "decode");
    assert_eq!(calls.load(Ordering::SeqCst), 1, "only the first one ran");
}
