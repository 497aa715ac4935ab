//! The recommended stack lets the user raise the per-attempt timeout (`.timeout(d)`) or
//! drop it (`.without_timeout()`), but the dedup layer's lease stays at its 60 s default.
//! The dedup docs require the lease to be longer than the timeout "or a slow handler's
//! duplicate may run concurrently with it" — the stack does not keep that invariant, so a
//! handler that legitimately takes 90 s under a 120 s timeout runs twice at once.
#![cfg(feature = "stack")]
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use wharf::{Handler, HandlerError, Message};
use wharf_memory::{Harness, MemoryBroker};
use wharf_middleware::retry::RetryPolicy;
use wharf_middleware::stack::RecommendedLayer;

#[tokio::test(start_paused = true)]
async fn raised_timeout_does_not_let_two_copies_run_at_once() {
    let running = Arc::new(AtomicUsize::new(0));
    let max_running = Arc::new(AtomicUsize::new(0));
    let handler = {
        let (running, max_running) = (running.clone(), max_running.clone());
        move |_m: Message| {
            let (running, max_running) = (running.clone(), max_running.clone());
            async move {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                max_running.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_secs(90)).await;
                running.fetch_sub(1, Ordering::SeqCst);
                Ok::<(), HandlerError>(())
            }
        }
    };
    let broker = MemoryBroker::new();
    let stack = RecommendedLayer::new(Arc::new(broker.clone()))
        .retry(RetryPolicy::new().max_attempts(1000))
        .timeout(Duration::from_secs(120))
        .service(handler.into_service());
    let mut harness = Harness::with_broker(broker, stack)
        .topic("payments")
        .consumer_name("billing");
    harness.publish(Message::with_id("pay-1", "x"));
    harness.publish(Message::with_id("pay-1", "x"));
    harness.run_until_idle().await;
    assert_eq!(
        max_running.load(Ordering::SeqCst),
        1,
        "two copies of one message ran concurrently"
    );
}
