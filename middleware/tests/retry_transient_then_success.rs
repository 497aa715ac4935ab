//! A message that fails transiently twice and then succeeds is acked once, after three
//! calls and two retries, in either tier, without waiting on the wall clock.
#![cfg(feature = "retry")]

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tower::ServiceBuilder;
use wharf::{Handler, HandlerError, Message, Outcome};
use wharf_memory::Harness;
use wharf_middleware::retry::{RetryLayer, RetryPolicy};

/// Fails the first two calls with a transient error, then succeeds.
fn fails_twice(calls: Arc<AtomicU32>) -> impl Handler<(Message,)> + Clone {
    move |_: Message| {
        let calls = calls.clone();
        async move {
            if calls.fetch_add(1, Ordering::SeqCst) < 2 {
                return Err(HandlerError::transient("inventory service unavailable"));
            }
            Ok(())
        }
    }
}

/// `wharf_retries_total` by tier, read from a debugging recorder on this thread.
#[cfg(feature = "metrics")]
mod retries {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};

    pub(crate) fn record() -> (Snapshotter, metrics::LocalRecorderGuard<'static>) {
        let recorder: &'static DebuggingRecorder = Box::leak(Box::new(DebuggingRecorder::new()));
        (
            recorder.snapshotter(),
            metrics::set_default_local_recorder(recorder),
        )
    }

    pub(crate) fn count(snapshotter: &Snapshotter, tier: &str) -> u64 {
        snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .filter(|(key, ..)| {
                let key = key.key();
                let labels: Vec<_> = key.labels().map(|l| (l.key(), l.value())).collect();
                key.name() == "wharf_retries_total"
                    && labels.contains(&("consumer", "orders"))
                    && labels.contains(&("source", "input"))
                    && labels.contains(&("tier", tier))
            })
            .map(|(.., value)| match value {
                DebugValue::Counter(n) => n,
                other => panic!("wharf_retries_total is a counter, got {other:?}"),
            })
            .sum()
    }
}

#[tokio::test(start_paused = true)]
async fn by_redelivery() {
    #[cfg(feature = "metrics")]
    let (metrics, _guard) = retries::record();
    let calls = Arc::new(AtomicU32::new(0));
    let policy = RetryPolicy::new()
        .max_attempts(5)
        .initial_delay(Duration::from_secs(60))
        .jitter(0.0);
    let stack = ServiceBuilder::new()
        .layer(RetryLayer::new(policy))
        .service(fails_twice(calls.clone()).into_service());
    let mut harness = Harness::new(stack).consumer_name("orders");
    let id = harness.publish(Message::new("order 1"));

    let wall = std::time::Instant::now();
    let virtual_start = tokio::time::Instant::now();
    let report = harness.run_until_idle().await;

    report.assert_acked(&id).assert_retried(&id, 2);
    let record = report.record(&id).expect("a record");
    assert_eq!(calls.load(Ordering::SeqCst), 3, "handler calls");
    assert_eq!(record.deliveries, 3, "every retry was a redelivery");
    assert_eq!(
        record.outcomes,
        [
            Outcome::retry_after(Duration::from_secs(60)),
            Outcome::retry_after(Duration::from_secs(120)),
            Outcome::Ack,
        ],
        "acked once, after the backoff of each retry"
    );
    assert!(
        virtual_start.elapsed() >= Duration::from_secs(180),
        "backoffs ran"
    );
    assert!(wall.elapsed() < Duration::from_secs(30), "on virtual time");
    #[cfg(feature = "metrics")]
    {
        assert_eq!(retries::count(&metrics, "redelivery"), 2);
        assert_eq!(retries::count(&metrics, "in_process"), 0);
    }
}

#[tokio::test(start_paused = true)]
async fn in_process() {
    #[cfg(feature = "metrics")]
    let (metrics, _guard) = retries::record();
    let calls = Arc::new(AtomicU32::new(0));
    let policy = RetryPolicy::new()
        .max_attempts(1)
        .in_process_retries(2)
        .initial_delay(Duration::from_secs(60))
        .jitter(0.0);
    let stack = ServiceBuilder::new()
        .layer(RetryLayer::new(policy))
        .service(fails_twice(calls.clone()).into_service());
    let mut harness = Harness::new(stack).consumer_name("orders");
    let id = harness.publish(Message::new("order 1"));

    let wall = std::time::Instant::now();
    let virtual_start = tokio::time::Instant::now();
    let report = harness.run_until_idle().await;

    report.assert_acked(&id).assert_retried(&id, 0);
    let record = report.record(&id).expect("a record");
    assert_eq!(calls.load(Ordering::SeqCst), 3, "handler calls");
    assert_eq!(record.deliveries, 1, "retried within the delivery");
    assert_eq!(record.outcomes, [Outcome::Ack], "acked once");
    assert!(
        virtual_start.elapsed() >= Duration::from_secs(180),
        "backoffs ran"
    );
    assert!(wall.elapsed() < Duration::from_secs(30), "on virtual time");
    #[cfg(feature = "metrics")]
    {
        assert_eq!(retries::count(&metrics, "in_process"), 2);
        assert_eq!(retries::count(&metrics, "redelivery"), 0);
    }
}
