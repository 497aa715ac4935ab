//! A completed key is remembered for the retention window and no longer: the same key
//! within it is skipped, after it handled again (virtual time).
#![cfg(feature = "idempotency")]
#![allow(clippy::unwrap_used)] // in tests a panic is the clearest report

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tower::ServiceBuilder;
use wharf::{Handler, HandlerError, Message};
use wharf_memory::Harness;
use wharf_middleware::idempotency::{IdempotencyLayer, MemoryIdempotencyStore};

#[tokio::test(start_paused = true)]
async fn same_key_is_skipped_within_retention_and_handled_after_it() {
    let retention = Duration::from_secs(24 * 3600);
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
    let store = Arc::new(MemoryIdempotencyStore::default());
    let stack = ServiceBuilder::new()
        .layer(IdempotencyLayer::new(store).retention(retention))
        .service(handler.into_service());
    let mut harness = Harness::new(stack).consumer_name("billing");
    let payment = || Message::new("42.00").with_header("idempotency-key", "pay-7");

    let first = harness.publish(payment());
    harness.run_until_idle().await.assert_acked(&first);

    tokio::time::advance(retention - Duration::from_secs(1)).await;
    let within = harness.publish(payment());
    harness.run_until_idle().await.assert_acked(&within);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "skipped within the retention window"
    );

    tokio::time::advance(Duration::from_secs(1)).await;
    let after = harness.publish(payment());
    harness.run_until_idle().await.assert_acked(&after);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "handled again after the window"
    );
}
