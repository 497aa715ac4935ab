//! A message that fails on every attempt is dead-lettered with reason
//! `retries-exhausted`, the attempt count and the last error, once its attempts are
//! spent: never earlier, never later.
#![cfg(all(feature = "retry", feature = "dead-letter"))]

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tower::ServiceBuilder;
use wharf::headers::names;
use wharf::{Handler, HandlerError, Message, Outcome};
use wharf_memory::{Harness, MemoryBroker};
use wharf_middleware::dead_letter::DeadLetterLayer;
use wharf_middleware::retry::{RetryLayer, RetryPolicy};

fn always_fails(calls: Arc<AtomicU32>) -> impl Handler<(Message,)> + Clone {
    move |_: Message| {
        let calls = calls.clone();
        async move {
            calls.fetch_add(1, Ordering::SeqCst);
            Err::<(), _>(HandlerError::transient("payment service down"))
        }
    }
}

fn harness(
    policy: RetryPolicy,
    calls: Arc<AtomicU32>,
) -> Harness<
    impl tower::Service<Message, Response = Outcome, Error = wharf::BoxError, Future = impl Send>
        + Clone
        + Send,
> {
    let broker = MemoryBroker::new();
    let stack = ServiceBuilder::new()
        .layer(DeadLetterLayer::new(Arc::new(broker.clone())))
        .layer(RetryLayer::new(policy))
        .service(always_fails(calls).into_service());
    Harness::with_broker(broker, stack).consumer_name("billing")
}

#[tokio::test(start_paused = true)]
async fn after_max_attempts_deliveries() {
    let calls = Arc::new(AtomicU32::new(0));
    let policy = RetryPolicy::new()
        .max_attempts(3)
        .initial_delay(Duration::from_secs(1));
    let mut harness = harness(policy, calls.clone());
    let id = harness.publish(Message::new("invoice 9").with_key("customer-4"));
    let report = harness.run_until_idle().await;

    report
        .assert_dead_lettered(&id, "retries-exhausted")
        .assert_retried(&id, 2);
    assert_eq!(calls.load(Ordering::SeqCst), 3, "one call per attempt");
    assert_eq!(report.record(&id).unwrap().deliveries, 3);
    assert_eq!(
        report.outcome(&id),
        Some(&Outcome::Ack),
        "acked once the dead letter was published"
    );

    assert_eq!(report.dead_letters().len(), 1);
    // The layer's dead letter counts as one in the consumer's summary, not as an ack.
    let summary = report.summary();
    assert_eq!(
        (summary.dead_lettered, summary.acked),
        (1, 0),
        "{summary:?}"
    );
    let copy = report.dead_letter(&id).expect("the dead letter");
    let h = copy.headers();
    assert_eq!(h.get_str(names::DLQ_REASON), Some("retries-exhausted"));
    assert_eq!(h.get_str(names::DLQ_ATTEMPTS), Some("3"));
    assert_eq!(h.get_str(names::DLQ_CONSUMER), Some("billing"));
    assert_eq!(h.get_str(names::DLQ_SOURCE), Some("input"));
    assert_eq!(
        h.get_str(names::DLQ_ERROR),
        Some("retries exhausted after 3 attempts; last error: payment service down")
    );
    assert_eq!(copy.payload().as_ref(), b"invoice 9");
    assert_eq!(copy.key().map(|k| k.as_ref()), Some(&b"customer-4"[..]));
}

#[tokio::test(start_paused = true)]
async fn after_the_in_process_retries_of_the_last_delivery() {
    let calls = Arc::new(AtomicU32::new(0));
    let policy = RetryPolicy::new()
        .max_attempts(2)
        .in_process_retries(1)
        .initial_delay(Duration::from_millis(100));
    let mut harness = harness(policy, calls.clone());
    let id = harness.publish(Message::new("invoice 10"));
    let report = harness.run_until_idle().await;

    report
        .assert_dead_lettered(&id, "retries-exhausted")
        .assert_retried(&id, 1);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        4,
        "max_attempts × (1 + in_process_retries)"
    );
    assert_eq!(report.record(&id).unwrap().deliveries, 2);
    let copy = report.dead_letter(&id).expect("the dead letter");
    assert_eq!(copy.headers().get_str(names::DLQ_ATTEMPTS), Some("2"));
}

#[tokio::test(start_paused = true)]
async fn a_crash_does_not_reset_the_count() {
    use futures_util::StreamExt;

    let calls = Arc::new(AtomicU32::new(0));
    let policy = RetryPolicy::new().max_attempts(3);
    let mut harness = harness(policy, calls.clone());
    let id = harness.publish(Message::new("invoice 11"));

    // Two consumers die while handling the message: their deliveries are dropped
    // unsettled, and the broker counts both attempts.
    for attempt in 1..=2 {
        let mut crashed = harness.broker().subscribe(harness.topic_name(), "billing");
        let delivery = crashed.next().await.expect("a delivery").expect("no error");
        assert_eq!(delivery.message().attempt(), attempt);
        drop(delivery);
    }

    let report = harness.run_until_idle().await;
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "only the third and last attempt was left"
    );
    report.assert_dead_lettered(&id, "retries-exhausted");
    assert_eq!(report.record(&id).unwrap().deliveries, 3);
    let copy = report.dead_letter(&id).expect("the dead letter");
    assert_eq!(copy.headers().get_str(names::DLQ_ATTEMPTS), Some("3"));
}
