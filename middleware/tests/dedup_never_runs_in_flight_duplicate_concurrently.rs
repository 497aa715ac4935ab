//! Two copies of one message delivered at once never run concurrently: the copy that
//! finds the other in flight is retried, and once the first is acked it is skipped.
#![cfg(feature = "dedup")]
#![allow(clippy::unwrap_used)] // in tests a panic is the clearest report

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tower::ServiceBuilder;
use wharf::{Handler, HandlerError, Message, Outcome};
use wharf_memory::Harness;
use wharf_middleware::dedup::{DedupLayer, MemoryDedupStore};

/// Counts calls and the most calls running at once.
#[derive(Clone, Default)]
struct Probe {
    calls: Arc<AtomicUsize>,
    running: Arc<AtomicUsize>,
    max_running: Arc<AtomicUsize>,
}

impl Probe {
    /// A handler that takes `busy` and fails the calls numbered in `fail_calls` (1-based).
    fn handler(
        &self,
        busy: Duration,
        fail_calls: &'static [usize],
    ) -> impl Handler<(Message,)> + Clone {
        let probe = self.clone();
        move |_msg: Message| {
            let probe = probe.clone();
            async move {
                let n = probe.calls.fetch_add(1, Ordering::SeqCst) + 1;
                let now = probe.running.fetch_add(1, Ordering::SeqCst) + 1;
                probe.max_running.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(busy).await;
                probe.running.fetch_sub(1, Ordering::SeqCst);
                if fail_calls.contains(&n) {
                    return Err(HandlerError::transient("downstream busy"));
                }
                Ok(())
            }
        }
    }
}

#[tokio::test(start_paused = true)]
async fn in_flight_duplicate_is_retried_then_skipped_never_concurrent() {
    let probe = Probe::default();
    let stack = ServiceBuilder::new()
        .layer(
            DedupLayer::new(MemoryDedupStore::default())
                .retry_in_flight_after(Duration::from_secs(1)),
        )
        .service(probe.handler(Duration::from_secs(5), &[]).into_service());
    let mut harness = Harness::new(stack).consumer_name("billing");
    // Same id, no ordering key: the runtime runs them in parallel.
    harness.publish(Message::with_id("job-1", "x"));
    harness.publish(Message::with_id("job-1", "x"));
    let report = harness.run_until_idle().await;

    assert_eq!(
        probe.max_running.load(Ordering::SeqCst),
        1,
        "never concurrent"
    );
    assert_eq!(
        probe.calls.load(Ordering::SeqCst),
        1,
        "the copy is skipped once the first is acked"
    );
    let [first, second] = report.records() else {
        panic!("two deliveries expected: {:?}", report.records())
    };
    assert_eq!(first.outcomes, vec![Outcome::Ack]);
    // Retried while the first ran (5 s of work, a retry every second), then skipped.
    assert_eq!(second.final_outcome(), Some(&Outcome::Ack), "{second:?}");
    assert!(second.retries() >= 1, "{second:?}");
    assert!(
        second.outcomes[..second.outcomes.len() - 1]
            .iter()
            .all(|o| *o == Outcome::retry_after(Duration::from_secs(1))),
        "{second:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn when_the_first_copy_fails_the_other_runs_but_still_never_concurrently() {
    let probe = Probe::default();
    let stack = ServiceBuilder::new()
        .layer(DedupLayer::new(MemoryDedupStore::default()))
        .service(probe.handler(Duration::from_secs(5), &[1]).into_service());
    let mut harness = Harness::new(stack).consumer_name("billing");
    harness.publish(Message::with_id("job-1", "x"));
    harness.publish(Message::with_id("job-1", "x"));
    let report = harness.run_until_idle().await;

    assert_eq!(
        probe.max_running.load(Ordering::SeqCst),
        1,
        "never concurrent"
    );
    // The first run failed and released its claim: one more run handled the message.
    assert_eq!(probe.calls.load(Ordering::SeqCst), 2);
    assert_eq!(report.records().len(), 2);
    for record in report.records() {
        assert_eq!(record.final_outcome(), Some(&Outcome::Ack), "{record:?}");
    }
}
