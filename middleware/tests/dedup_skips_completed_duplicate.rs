//! A copy of a message that was already acked is acked again without running the
//! handler, and counted in `wharf_duplicates_total{kind="dedup"}`.
#![cfg(all(feature = "dedup", feature = "metrics"))]
#![allow(clippy::unwrap_used)] // in tests a panic is the clearest report

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use tower::ServiceBuilder;
use wharf::{Handler, HandlerError, Message, Outcome};
use wharf_memory::Harness;
use wharf_middleware::dedup::{DedupLayer, MemoryDedupStore};

/// The value of counter `name` with exactly `labels` (in any order).
fn counter(recorder: &DebuggingRecorder, name: &str, labels: &[(&str, &str)]) -> u64 {
    let mut want: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    want.sort();
    for (key, _, _, value) in recorder.snapshotter().snapshot().into_vec() {
        let key = key.key();
        let mut got: Vec<(String, String)> = key
            .labels()
            .map(|l| (l.key().to_owned(), l.value().to_owned()))
            .collect();
        got.sort();
        if key.name() == name && got == want {
            match value {
                DebugValue::Counter(n) => return n,
                other => panic!("{name}: expected a counter, got {other:?}"),
            }
        }
    }
    0
}

#[tokio::test(start_paused = true)]
async fn completed_duplicate_is_acked_without_the_handler_and_counted() {
    let recorder = DebuggingRecorder::new();
    let _local = metrics::set_default_local_recorder(&recorder);

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
        .layer(DedupLayer::new(MemoryDedupStore::default()))
        .service(handler.into_service());
    let mut harness = Harness::new(stack)
        .topic("payments")
        .consumer_name("billing");

    harness.publish(Message::with_id("pay-1", "42.00"));
    harness.run_until_idle().await;
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    // The broker delivers pay-1 again (a lost ack); pay-2 is new.
    harness.publish(Message::with_id("pay-1", "42.00"));
    harness.publish(Message::with_id("pay-2", "10.00"));
    let report = harness.run_until_idle().await;

    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "pay-1 handled once, pay-2 once"
    );
    // Every delivery, the copy included, was acked once and never retried.
    assert_eq!(report.records().len(), 3);
    for record in report.records() {
        assert_eq!(record.outcomes, vec![Outcome::Ack], "{record:?}");
        assert_eq!(record.deliveries, 1, "{record:?}");
    }
    let labels = [
        ("consumer", "billing"),
        ("source", "payments"),
        ("kind", "dedup"),
    ];
    assert_eq!(counter(&recorder, "wharf_duplicates_total", &labels), 1);
}
