//! While the store cannot grant claims, the handler never runs: the store error is
//! transient and the delivery is retried. Once the store is back, the message is handled
//! once.
#![cfg(feature = "idempotency")]
#![allow(clippy::unwrap_used)] // in tests a panic is the clearest report

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tower::ServiceBuilder;
use wharf::{BoxError, Handler, HandlerError, Message};
use wharf_memory::Harness;
use wharf_middleware::idempotency::{
    Claim, ClaimToken, IdempotencyKey, IdempotencyLayer, IdempotencyStore, MemoryIdempotencyStore,
};

/// Refuses the first `failures` claims, then works.
#[derive(Debug)]
struct Recovering {
    inner: MemoryIdempotencyStore,
    failures: AtomicUsize,
}

#[async_trait]
impl IdempotencyStore for Recovering {
    async fn claim(&self, key: &IdempotencyKey, lease: Duration) -> Result<Claim, BoxError> {
        let left = self.failures.load(Ordering::SeqCst);
        if left > 0 {
            self.failures.store(left - 1, Ordering::SeqCst);
            return Err("connection refused".into());
        }
        self.inner.claim(key, lease).await
    }

    async fn complete(
        &self,
        key: &IdempotencyKey,
        token: ClaimToken,
        retention: Duration,
    ) -> Result<(), BoxError> {
        self.inner.complete(key, token, retention).await
    }

    async fn release(&self, key: &IdempotencyKey, token: ClaimToken) -> Result<(), BoxError> {
        self.inner.release(key, token).await
    }
}

#[tokio::test(start_paused = true)]
async fn store_outage_retries_the_delivery_and_never_runs_unclaimed() {
    let calls = Arc::new(AtomicUsize::new(0));
    let handler = {
        let calls = calls.clone();
        move |_msg: Message| {
            let calls = calls.clone();
            async move {
                calls.fetch_add(1, Ordering::SeqCst);
                Ok::<(), HandlerError>(())
            }
        }
    };
    let store = Arc::new(Recovering {
        inner: MemoryIdempotencyStore::default(),
        failures: AtomicUsize::new(3),
    });
    let stack = ServiceBuilder::new()
        .layer(IdempotencyLayer::new(store.clone()))
        .service(handler.into_service());
    let mut harness = Harness::new(stack).consumer_name("billing");
    let first = harness.publish(Message::new("42.00").with_header("idempotency-key", "pay-1"));
    let report = harness.run_until_idle().await;

    // Three refused claims: three redeliveries (the runtime's transient-error path), no
    // handler call; then claimed and handled.
    report.assert_acked(&first).assert_retried(&first, 3);
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    // And the completion was recorded: a resubmission is skipped.
    let again = harness.publish(Message::new("42.00").with_header("idempotency-key", "pay-1"));
    harness.run_until_idle().await.assert_acked(&again);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}
