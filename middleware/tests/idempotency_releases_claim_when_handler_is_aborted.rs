//! A handler dropped unfinished at the shutdown deadline hands its release to a task, so
//! the redelivery is handled long before the claim's lease would run out.
#![cfg(feature = "idempotency")]
#![allow(clippy::unwrap_used)] // in tests a panic is the clearest report

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tower::ServiceBuilder;
use wharf::{Consumer, Handler, HandlerError, Message};
use wharf_memory::{Harness, MemoryBroker};
use wharf_middleware::idempotency::{IdempotencyLayer, MemoryIdempotencyStore};

#[tokio::test(start_paused = true)]
async fn aborted_handler_releases_its_claim_for_the_redelivery() {
    let lease = Duration::from_secs(3600);
    let calls = Arc::new(AtomicUsize::new(0));
    let handler = {
        let calls = calls.clone();
        move |_msg: Message| {
            let calls = calls.clone();
            async move {
                if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                    // Stuck: outlives the shutdown deadline.
                    tokio::time::sleep(Duration::from_secs(24 * 3600)).await;
                }
                Ok::<(), HandlerError>(())
            }
        }
    };
    let store = Arc::new(MemoryIdempotencyStore::default());
    let stack = ServiceBuilder::new()
        .layer(IdempotencyLayer::new(store).lease(lease))
        .service(handler.into_service());

    let broker = MemoryBroker::new();
    broker.declare_group("payments", "billing");
    let id = broker
        .publish(
            "payments",
            Message::new("42.00").with_header("idempotency-key", "pay-1"),
        )
        .unwrap();

    let summary = Consumer::new(
        "billing",
        broker.subscribe("payments", "billing"),
        stack.clone(),
    )
    .shutdown_timeout(Duration::from_secs(1))
    .run(tokio::time::sleep(Duration::from_secs(10)))
    .await
    .unwrap();
    assert_eq!(summary.interrupted, 1);

    let started = tokio::time::Instant::now();
    let mut harness = Harness::with_broker(broker, stack)
        .topic("payments")
        .consumer_name("billing");
    let report = harness.run_until_idle().await;

    report.assert_acked(&id);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "the redelivery ran the handler"
    );
    // The release runs on a spawned task, so the redelivery may race it once (one
    // in-flight retry of 5 s); without it, the key would stay claimed for the whole lease.
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "waited {:?} for the redelivery",
        started.elapsed()
    );
}
