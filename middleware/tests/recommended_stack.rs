//! The recommended stack end to end on the in-memory broker, on virtual time.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use tower::ServiceBuilder;
use wharf::headers::names;
use wharf::{Handler, HandlerError, Message, Outcome};
use wharf_memory::{Harness, MemoryBroker};
use wharf_middleware::retry::RetryPolicy;
use wharf_middleware::stack::RecommendedLayer;

fn counter(snapshotter: &Snapshotter, name: &str, label: (&str, &str)) -> u64 {
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter(|(key, _, _, _)| {
            key.key().name() == name
                && key
                    .key()
                    .labels()
                    .any(|l| l.key() == label.0 && l.value() == label.1)
        })
        .map(|(_, _, _, v)| match v {
            DebugValue::Counter(n) => n,
            _ => 0,
        })
        .sum()
}

fn policy() -> RetryPolicy {
    RetryPolicy::new()
        .max_attempts(3)
        .initial_delay(Duration::from_secs(10))
        .jitter(0.0)
}

/// Fails transiently the first `n` calls, then succeeds.
fn flaky(calls: Arc<AtomicU32>, n: u32) -> impl Handler<(Message,)> {
    move |_m: Message| {
        let calls = calls.clone();
        async move {
            if calls.fetch_add(1, Ordering::SeqCst) < n {
                Err(HandlerError::transient(std::io::Error::other("flaky")))
            } else {
                Ok(())
            }
        }
    }
}

#[tokio::test(start_paused = true)]
async fn transient_twice_then_success_is_acked_once_after_two_retries() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _guard = metrics::set_default_local_recorder(&recorder);

    let broker = MemoryBroker::new();
    let calls = Arc::new(AtomicU32::new(0));
    let stack = RecommendedLayer::new(Arc::new(broker.clone()))
        .retry(policy())
        .service(flaky(calls.clone(), 2).into_service());
    let mut harness = Harness::with_broker(broker, stack)
        .topic("orders")
        .consumer_name("billing");
    let id = harness.publish(Message::new("x"));

    let wall = std::time::Instant::now();
    let report = harness.run_until_idle().await;
    assert!(
        wall.elapsed() < Duration::from_secs(5),
        "backoffs must be virtual"
    );

    report.assert_acked(&id).assert_retried(&id, 2);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    let record = report.record(&id).unwrap();
    assert_eq!(
        record
            .outcomes
            .iter()
            .filter(|o| **o == Outcome::Ack)
            .count(),
        1,
        "acked once"
    );
    assert_eq!(
        counter(&snapshotter, "wharf_retries_total", ("consumer", "billing")),
        2
    );
    assert!(report.dead_letters().is_empty());
}

/// A `traceparent` from upstream.
const UPSTREAM: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

#[tokio::test(start_paused = true)]
async fn always_failing_is_dead_lettered_with_retries_exhausted_and_the_attempts() {
    let broker = MemoryBroker::new();
    let calls = Arc::new(AtomicU32::new(0));
    let stack = RecommendedLayer::new(Arc::new(broker.clone()))
        .retry(policy())
        .service(flaky(calls.clone(), u32::MAX).into_service());
    let mut harness = Harness::with_broker(broker, stack)
        .topic("orders")
        .consumer_name("billing");
    let id = harness.publish(
        Message::new("x")
            .with_key("k")
            .with_header("tenant", "acme")
            .with_header(names::TRACEPARENT, UPSTREAM),
    );
    let report = harness.run_until_idle().await;

    report.assert_dead_lettered(&id, "retries-exhausted");
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    let letter = report.dead_letter(&id).unwrap();
    let h = letter.headers();
    assert_eq!(h.get_str(names::DLQ_ATTEMPTS), Some("3"));
    assert_eq!(h.get_str(names::DLQ_SOURCE), Some("orders"));
    assert_eq!(h.get_str(names::DLQ_CONSUMER), Some("billing"));
    assert_eq!(h.get_str(names::DLQ_OFFSET), Some("0"));
    assert!(h.get_str(names::DLQ_ERROR).unwrap().contains("flaky"));
    assert!(h.contains(names::DLQ_FAILED_AT));
    assert!(
        h.get_str(names::TRACEPARENT)
            .is_some_and(|tp| tp.starts_with(&UPSTREAM[..36]) && tp != UPSTREAM),
        "dead letters continue the upstream trace as the consumer's child: {:?}",
        h.get_str(names::TRACEPARENT)
    );
    assert_eq!(h.get_str("tenant"), Some("acme"));
    assert_eq!(letter.key().map(|k| &k[..]), Some(&b"k"[..]));
    assert_eq!(letter.payload().as_ref(), b"x");
}

#[tokio::test(start_paused = true)]
async fn a_failed_dead_letter_publish_retries_the_delivery_and_loses_nothing() {
    let broker = MemoryBroker::new();
    let stack = RecommendedLayer::new(Arc::new(broker.clone())).service(
        (|_m: Message| async { Err::<(), _>(HandlerError::permanent("rejected")) }).into_service(),
    );
    let mut harness = Harness::with_broker(broker.clone(), stack)
        .topic("orders")
        .consumer_name("billing");
    let id = harness.publish(Message::new("x"));
    broker.fail_next_publishes("orders.dlq", 2);
    let report = harness.run_until_idle().await;

    report.assert_dead_lettered(&id, "permanent");
    assert_eq!(report.dead_letters().len(), 1, "exactly one dead letter");
    let record = report.record(&id).unwrap();
    assert_eq!(
        record.deliveries, 3,
        "redelivered after each failed publish"
    );
    assert!(matches!(record.outcomes[0], Outcome::Retry { .. }));
    assert!(matches!(record.outcomes[1], Outcome::Retry { .. }));
    assert_eq!(record.outcomes[2], Outcome::Ack);
}

#[tokio::test(start_paused = true)]
async fn undecodable_payload_is_dead_lettered_and_later_messages_still_run() {
    #[derive(serde::Deserialize)]
    struct Order {
        #[allow(dead_code)]
        id: u64,
    }
    let handled = Arc::new(AtomicU32::new(0));
    let h = handled.clone();
    let handler = move |wharf::Json(_o): wharf::Json<Order>| {
        let h = h.clone();
        async move {
            h.fetch_add(1, Ordering::SeqCst);
            Ok::<(), HandlerError>(())
        }
    };
    let broker = MemoryBroker::new();
    let stack = RecommendedLayer::new(Arc::new(broker.clone())).service(handler.into_service());
    let mut harness = Harness::with_broker(broker, stack)
        .topic("orders")
        .consumer_name("billing")
        .ordering(wharf::DeliveryOrder::Sequential);
    let poison = harness.publish(Message::new("{not json"));
    let later: Vec<_> = (0..5)
        .map(|i| harness.publish(Message::new(format!(r#"{{"id":{i}}}"#))))
        .collect();
    let report = harness.run_until_idle().await;
    report.assert_dead_lettered(&poison, "decode");
    report.assert_retried(&poison, 0);
    for id in &later {
        report.assert_acked(id);
    }
    assert_eq!(handled.load(Ordering::SeqCst), 5);
}

#[tokio::test(start_paused = true)]
async fn other_tower_layers_compose_around_and_inside_the_stack() {
    let broker = MemoryBroker::new();
    let calls = Arc::new(AtomicU32::new(0));
    // Inside the stack (around the handler): a concurrency limit. Outside: a rate
    // limit, a load shedder (its `Overloaded` error is transient: redelivered) and a
    // concurrency limit, which the runtime turns into backpressure.
    let inner = ServiceBuilder::new()
        .concurrency_limit(2)
        .service(flaky(calls.clone(), 0).into_service());
    let stack = ServiceBuilder::new()
        .rate_limit(100, Duration::from_secs(1))
        .load_shed()
        .concurrency_limit(4)
        .layer(RecommendedLayer::new(Arc::new(broker.clone())))
        .service(inner);
    // `RateLimit` is not `Clone`, so this runs a `Consumer` directly (the harness clones
    // its stack for every run).
    let ids: Vec<_> = (0..50)
        .map(|i| {
            broker
                .publish("orders", Message::new(format!("m{i}")))
                .unwrap()
        })
        .collect();
    let idle = {
        let broker = broker.clone();
        async move { broker.idle("orders", "billing").await }
    };
    let summary = wharf::Consumer::new("billing", broker.subscribe("orders", "billing"), stack)
        .run(idle)
        .await
        .unwrap();
    assert_eq!(summary.received, summary.acked + summary.retried);
    for id in &ids {
        let record = broker.record("orders", "billing", id).unwrap();
        assert_eq!(record.final_outcome(), Some(&Outcome::Ack), "{record:?}");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 50);
}
