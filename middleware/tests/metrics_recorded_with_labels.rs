//! The metrics layer records received, handled-by-outcome, duration and in-flight,
//! labelled by consumer and source, to the recorder installed when it runs.
#![cfg(all(feature = "metrics", feature = "dead-letter"))]
#![allow(clippy::unwrap_used)] // in tests a panic is the clearest report

use std::sync::Arc;
use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use tower::{service_fn, Service, ServiceBuilder, ServiceExt};
use wharf::metric_names as names;
use wharf::{BoxError, HandlerError, Message, Origin, Outcome};
use wharf_memory::{Harness, MemoryBroker};
use wharf_middleware::dead_letter::DeadLetterLayer;
use wharf_middleware::metrics::{Metrics, MetricsLayer};

/// Label pairs, sorted.
type Labels = Vec<(String, String)>;

/// A snapshot as `(name, labels, value)`.
struct Recorded(Vec<(String, Labels, DebugValue)>);

impl Recorded {
    fn take(recorder: &DebuggingRecorder) -> Self {
        let all = recorder.snapshotter().snapshot().into_vec();
        Recorded(
            all.into_iter()
                .map(|(key, _, _, value)| {
                    let key = key.key();
                    let mut labels: Labels = key
                        .labels()
                        .map(|l| (l.key().to_owned(), l.value().to_owned()))
                        .collect();
                    labels.sort();
                    (key.name().to_owned(), labels, value)
                })
                .collect(),
        )
    }

    /// The value of `name` with exactly `labels`.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<&DebugValue> {
        let mut want: Labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        want.sort();
        self.0
            .iter()
            .find(|(n, l, _)| n == name && *l == want)
            .map(|(_, _, v)| v)
    }

    fn counter(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        match self.get(name, labels) {
            Some(DebugValue::Counter(n)) => *n,
            other => panic!("{name}{labels:?}: expected a counter, got {other:?}"),
        }
    }

    fn gauge(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        match self.get(name, labels) {
            Some(DebugValue::Gauge(v)) => v.into_inner(),
            other => panic!("{name}{labels:?}: expected a gauge, got {other:?}"),
        }
    }

    fn histogram(&self, name: &str, labels: &[(&str, &str)]) -> Vec<f64> {
        match self.get(name, labels) {
            Some(DebugValue::Histogram(v)) => v.iter().map(|x| x.into_inner()).collect(),
            other => panic!("{name}{labels:?}: expected a histogram, got {other:?}"),
        }
    }
}

/// `ok` acks, `slow` acks after 250 ms, `flaky` asks for a redelivery on its first
/// attempt, anything else fails permanently.
async fn handle(msg: Message) -> Result<Outcome, BoxError> {
    match msg.payload().as_ref() {
        b"ok" => Ok(Outcome::Ack),
        b"slow" => {
            tokio::time::sleep(Duration::from_millis(250)).await;
            Ok(Outcome::Ack)
        }
        b"flaky" if msg.attempt() == 1 => Ok(Outcome::retry_after(Duration::from_secs(1))),
        b"flaky" => Ok(Outcome::Ack),
        _ => Err(HandlerError::permanent("never valid").into()),
    }
}

#[tokio::test(start_paused = true)]
async fn every_delivery_is_counted_by_outcome_with_consumer_and_source() {
    // A current-thread runtime runs the whole consumer on this thread, so a thread-local
    // recorder sees everything (and parallel tests do not see each other).
    let recorder = DebuggingRecorder::new();
    let _local = metrics::set_default_local_recorder(&recorder);

    let stack = ServiceBuilder::new()
        .layer(MetricsLayer::new())
        .service(service_fn(handle));
    let mut harness = Harness::new(stack)
        .topic("invoices")
        .consumer_name("billing");
    for payload in ["ok", "ok", "slow", "flaky", "bad"] {
        harness.publish(Message::new(payload));
    }
    let report = harness.run_until_idle().await;
    assert_eq!(report.acked().len(), 4);

    let m = Recorded::take(&recorder);
    let base = [("consumer", "billing"), ("source", "invoices")];
    let with = |outcome| [base[0], base[1], ("outcome", outcome)];

    // 5 messages, one of them delivered twice.
    assert_eq!(m.counter(names::MESSAGES_RECEIVED, &base), 6);
    assert_eq!(m.counter(names::MESSAGES_HANDLED, &with("ack")), 4);
    assert_eq!(m.counter(names::MESSAGES_HANDLED, &with("retry")), 1);
    assert_eq!(m.counter(names::MESSAGES_HANDLED, &with("error")), 1);
    assert_eq!(m.counter(names::MESSAGES_HANDLED, &with("dead_letter")), 0);
    assert_eq!(m.counter(names::MESSAGES_HANDLED, &with("drop")), 0);

    let durations = m.histogram(names::HANDLER_DURATION, &base);
    assert_eq!(durations.len(), 6, "{durations:?}");
    // Measured from call to completion on tokio's (here virtual) clock.
    assert!(
        durations.iter().any(|d| (d - 0.25).abs() < 1e-9),
        "{durations:?}"
    );

    assert_eq!(m.gauge(names::MESSAGES_IN_FLIGHT, &base), 0.0);
}

#[tokio::test(start_paused = true)]
async fn outcome_is_the_final_one_and_dead_letters_are_counted_by_reason() {
    let recorder = DebuggingRecorder::new();
    let _local = metrics::set_default_local_recorder(&recorder);

    let broker = MemoryBroker::new();
    let stack = ServiceBuilder::new()
        .layer(MetricsLayer::new())
        .layer(DeadLetterLayer::new(Arc::new(broker.clone())))
        .service(service_fn(handle));
    let mut harness = Harness::with_broker(broker, stack)
        .topic("parcels")
        .consumer_name("shipping");
    let bad = harness.publish(Message::new("bad"));
    harness.publish(Message::new("ok"));
    let report = harness.run_until_idle().await;
    report.assert_dead_lettered(&bad, "permanent");

    let m = Recorded::take(&recorder);
    let base = [("consumer", "shipping"), ("source", "parcels")];
    // The dead-letter layer turned the permanent error into an ack once published.
    assert_eq!(
        m.counter(
            names::MESSAGES_HANDLED,
            &[base[0], base[1], ("outcome", "ack")]
        ),
        2
    );
    assert_eq!(
        m.counter(
            names::MESSAGES_HANDLED,
            &[base[0], base[1], ("outcome", "error")]
        ),
        0
    );
    assert_eq!(
        m.counter(
            names::DEAD_LETTERS,
            &[base[0], base[1], ("reason", "permanent")]
        ),
        1
    );
    assert_eq!(m.gauge(names::MESSAGES_IN_FLIGHT, &base), 0.0);
}

#[tokio::test(start_paused = true)]
async fn each_source_gets_its_own_labels_in_one_service() {
    let recorder = DebuggingRecorder::new();
    let _local = metrics::set_default_local_recorder(&recorder);

    let mut svc = Metrics::new(service_fn(handle));
    for source in ["eu.orders", "us.orders", "eu.orders", "eu.orders"] {
        let msg = Message::new("ok").with_origin(Origin::new(source).with_consumer("router"));
        let out = svc.ready().await.unwrap().call(msg).await.unwrap();
        assert_eq!(out, Outcome::Ack);
    }

    let m = Recorded::take(&recorder);
    let eu = [("consumer", "router"), ("source", "eu.orders")];
    let us = [("consumer", "router"), ("source", "us.orders")];
    assert_eq!(m.counter(names::MESSAGES_RECEIVED, &eu), 3);
    assert_eq!(m.counter(names::MESSAGES_RECEIVED, &us), 1);
    assert_eq!(
        m.counter(names::MESSAGES_HANDLED, &[eu[0], eu[1], ("outcome", "ack")]),
        3
    );
    assert_eq!(m.histogram(names::HANDLER_DURATION, &us).len(), 1);
}

#[tokio::test(start_paused = true)]
async fn handles_come_from_the_recorder_installed_when_a_clone_first_runs() {
    let template = Metrics::new(service_fn(handle));

    let first = DebuggingRecorder::new();
    {
        let _local = metrics::set_default_local_recorder(&first);
        let mut svc = template.clone();
        let msg = Message::new("ok").with_origin(Origin::new("a").with_consumer("replayer"));
        svc.ready().await.unwrap().call(msg).await.unwrap();
    }

    // A clone made later registers with the recorder installed then.
    let second = DebuggingRecorder::new();
    let _local = metrics::set_default_local_recorder(&second);
    let mut svc = template.clone();
    let msg = Message::new("ok").with_origin(Origin::new("a").with_consumer("replayer"));
    svc.ready().await.unwrap().call(msg).await.unwrap();

    let labels = [("consumer", "replayer"), ("source", "a")];
    assert_eq!(
        Recorded::take(&first).counter(names::MESSAGES_RECEIVED, &labels),
        1
    );
    assert_eq!(
        Recorded::take(&second).counter(names::MESSAGES_RECEIVED, &labels),
        1
    );
}
