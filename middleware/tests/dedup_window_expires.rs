//! A completed message is remembered for the window and no longer: a copy arriving
//! within it is skipped, a copy arriving after it is handled again (virtual time).
#![cfg(feature = "dedup")]
#![allow(clippy::unwrap_used)] // in tests a panic is the clearest report

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tower::ServiceBuilder;
use wharf::{Handler, HandlerError, Message};
use wharf_memory::Harness;
use wharf_middleware::dedup::{DedupLayer, MemoryDedupStore};

#[tokio::test(start_paused = true)]
async fn copies_are_skipped_within_the_window_and_handled_after_it() {
    let window = Duration::from_secs(600);
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
    let stack = ServiceBuilder::new()
        .layer(DedupLayer::new(MemoryDedupStore::default()).window(window))
        .service(handler.into_service());
    let mut harness = Harness::new(stack).consumer_name("billing");

    harness.publish(Message::with_id("pay-1", "42.00"));
    harness.run_until_idle().await;
    tokio::time::advance(window - Duration::from_secs(1)).await;
    harness.publish(Message::with_id("pay-1", "42.00"));
    harness.run_until_idle().await;
    assert_eq!(calls.load(Ordering::SeqCst), 1, "skipped within the window");

    tokio::time::advance(Duration::from_secs(1)).await;
    harness.publish(Message::with_id("pay-1", "42.00"));
    harness.run_until_idle().await;
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "handled again after the window"
    );
}
