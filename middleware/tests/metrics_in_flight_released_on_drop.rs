//! `wharf_messages_in_flight` counts futures that have not completed, and a future
//! dropped unfinished (a shutdown deadline) leaves it.
#![cfg(feature = "metrics")]
#![allow(clippy::unwrap_used)] // in tests a panic is the clearest report

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use tower::{service_fn, Service};
use wharf::metric_names as names;
use wharf::{BoxError, Message, Origin, Outcome};
use wharf_middleware::metrics::Metrics;

const LABELS: [(&str, &str); 2] = [("consumer", "stuck"), ("source", "jobs")];

/// One snapshot (taking one resets the recorder's values) of the metrics labelled
/// exactly [`LABELS`], by name.
fn snapshot(recorder: &DebuggingRecorder) -> Vec<(String, DebugValue)> {
    recorder
        .snapshotter()
        .snapshot()
        .into_vec()
        .into_iter()
        .filter(|(key, ..)| {
            let key = key.key();
            key.labels().count() == LABELS.len()
                && LABELS
                    .iter()
                    .all(|(k, v)| key.labels().any(|l| l.key() == *k && l.value() == *v))
        })
        .map(|(key, _, _, value)| (key.key().name().to_owned(), value))
        .collect()
}

fn value<'a>(snapshot: &'a [(String, DebugValue)], name: &str) -> Option<&'a DebugValue> {
    snapshot.iter().find(|(n, _)| n == name).map(|(_, v)| v)
}

fn never_completes() -> Metrics<impl Service<Message, Response = Outcome, Error = BoxError>> {
    Metrics::new(service_fn(|_msg: Message| {
        std::future::pending::<Result<Outcome, BoxError>>()
    }))
}

/// A message from `jobs`, handled by consumer `stuck` (as the runtime stamps it).
fn message() -> Message {
    Message::new("x").with_origin(Origin::new("jobs").with_consumer("stuck"))
}

#[test]
fn pending_messages_are_in_flight() {
    let recorder = DebuggingRecorder::new();
    metrics::with_local_recorder(&recorder, || {
        let mut cx = Context::from_waker(Waker::noop());
        let mut svc = never_completes();
        let mut a = pin!(svc.call(message()));
        let mut b = pin!(svc.call(message()));
        assert!(a.as_mut().poll(&mut cx).is_pending());
        assert!(b.as_mut().poll(&mut cx).is_pending());
        let m = snapshot(&recorder);
        assert_eq!(
            value(&m, names::MESSAGES_IN_FLIGHT),
            Some(&DebugValue::Gauge(2.0.into()))
        );
    });
}

#[test]
fn a_future_dropped_unfinished_leaves_the_gauge_and_is_not_handled() {
    let recorder = DebuggingRecorder::new();
    metrics::with_local_recorder(&recorder, || {
        let mut cx = Context::from_waker(Waker::noop());
        let mut svc = never_completes();
        {
            let mut fut = Box::pin(svc.call(message()));
            assert_eq!(fut.as_mut().poll(&mut cx).map(|_| ()), Poll::Pending);
        } // dropped, as the runtime does at its shutdown deadline

        let m = snapshot(&recorder);
        assert_eq!(
            value(&m, names::MESSAGES_IN_FLIGHT),
            Some(&DebugValue::Gauge(0.0.into()))
        );
        assert_eq!(
            value(&m, names::MESSAGES_RECEIVED),
            Some(&DebugValue::Counter(1))
        );
        assert_eq!(
            value(&m, names::HANDLER_DURATION),
            Some(&DebugValue::Histogram(vec![]))
        );
    });
}
