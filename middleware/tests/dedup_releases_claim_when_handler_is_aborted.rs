//! A handler dropped unfinished at the shutdown deadline releases its claim, so the
//! redelivery is handled at once instead of being retried as "in flight" until the lease
//! runs out.
#![cfg(feature = "dedup")]
#![allow(clippy::unwrap_used)] // in tests a panic is the clearest report

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tower::ServiceBuilder;
use wharf::{Consumer, Handler, HandlerError, Message, Outcome};
use wharf_memory::{Harness, MemoryBroker};
use wharf_middleware::dedup::{DedupLayer, MemoryDedupStore};

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
    let stack = ServiceBuilder::new()
        .layer(DedupLayer::new(MemoryDedupStore::default()).lease(lease))
        .service(handler.into_service());

    let broker = MemoryBroker::new();
    broker.declare_group("payments", "billing");
    let id = broker
        .publish("payments", Message::with_id("pay-1", "42.00"))
        .unwrap();

    // Shut down after 10 s; the stuck handler is aborted 1 s later.
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

    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "the redelivery ran the handler"
    );
    let record = report.record(&id).unwrap();
    assert_eq!(
        record.outcomes,
        vec![Outcome::RETRY_NOW, Outcome::Ack],
        "only the abort's retry, then handled at once"
    );
    assert!(started.elapsed() < lease);
}
