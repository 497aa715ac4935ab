//! The in-process status monitor on the in-memory broker: it samples the group's
//! backlog, counts failures with the consumer's own progress, gives the verdict and
//! records `wharf_backlog` and `wharf_status{verdict}`.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use tokio_util::sync::CancellationToken;
use wharf::status::{StatusMonitor, Verdict};
use wharf::{Consumer, Handler, HandlerError, Message};
use wharf_memory::MemoryBroker;

/// Publishes a message every 20 ms until `stop`.
fn publish(broker: &MemoryBroker, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
    let broker = broker.clone();
    tokio::spawn(async move {
        let mut n = 0;
        while !stop.is_cancelled() {
            broker
                .publish("orders", Message::new(format!("o-{n}")))
                .unwrap();
            n += 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
}

/// A recorded metric: name, labels, value.
type Recorded = (String, Vec<(String, String)>, DebugValue);

/// Runs a consumer whose handler `fails` or not, samples four times 300 ms apart, and
/// returns the verdict with what the recorder holds.
async fn watch(fails: bool) -> (Verdict, Vec<Recorded>) {
    let recorder = DebuggingRecorder::new();
    let _local = metrics::set_default_local_recorder(&recorder);
    let broker = MemoryBroker::new();
    broker.declare("orders", &["billing"]).await.unwrap();
    let stop = CancellationToken::new();
    let handler = move |_: Message| async move {
        match fails {
            true => Err(HandlerError::permanent(
                "the payment service refuses everything",
            )),
            false => Ok(()),
        }
    };
    let consumer = Consumer::new(
        "billing",
        broker.subscriber("orders", "billing").await.unwrap(),
        handler.into_service(),
    );
    let mut monitor = StatusMonitor::new(broker.clone(), "orders", "billing")
        .consumer("billing")
        .progress(consumer.progress());
    let running = tokio::spawn(consumer.run(stop.clone().cancelled_owned()));
    let publishing = publish(&broker, stop.clone());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut verdict = None;
    for _ in 0..4 {
        let (_, evaluation) = monitor.sample().await.unwrap();
        verdict = evaluation.map(|e| e.group.verdict);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    stop.cancel();
    publishing.await.unwrap();
    running.await.unwrap().unwrap();
    let recorded = recorder
        .snapshotter()
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let key = key.key();
            let labels = key
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            (key.name().to_owned(), labels, value)
        })
        .collect();
    (verdict.unwrap(), recorded)
}

fn status_gauge(recorded: &[Recorded], verdict: &str) -> Option<f64> {
    recorded.iter().find_map(|(name, labels, value)| {
        let matches = name == wharf::metric_names::STATUS
            && labels.contains(&("verdict".to_owned(), verdict.to_owned()))
            && labels.contains(&("consumer".to_owned(), "billing".to_owned()));
        match (matches, value) {
            (true, DebugValue::Gauge(v)) => Some(v.into_inner()),
            _ => None,
        }
    })
}

#[tokio::test]
async fn a_consumer_that_keeps_up_is_ok() {
    let (verdict, recorded) = watch(false).await;
    assert_eq!(verdict, Verdict::Ok);
    assert_eq!(status_gauge(&recorded, "ok"), Some(1.0), "{recorded:?}");
    assert_eq!(
        status_gauge(&recorded, "failing"),
        Some(0.0),
        "{recorded:?}"
    );
    assert!(
        recorded
            .iter()
            .any(|(name, _, _)| name == wharf::metric_names::BACKLOG),
        "{recorded:?}"
    );
}

#[tokio::test]
async fn a_consumer_whose_every_message_fails_is_failing() {
    let (verdict, recorded) = watch(true).await;
    assert_eq!(verdict, Verdict::Failing);
    assert_eq!(
        status_gauge(&recorded, "failing"),
        Some(1.0),
        "{recorded:?}"
    );
    assert_eq!(status_gauge(&recorded, "ok"), Some(0.0), "{recorded:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_spawned_monitor_keeps_the_latest_verdict() {
    let broker = MemoryBroker::new();
    broker.declare("orders", &["billing"]).await.unwrap();
    // Messages wait and nothing consumes them: stopped.
    for n in 0..5 {
        broker
            .publish("orders", Message::new(format!("o-{n}")))
            .unwrap();
    }
    let status = StatusMonitor::new(broker.clone(), "orders", "billing")
        .interval(Duration::from_millis(50))
        .spawn();
    assert!(status.current().is_none(), "no verdict before two samples");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let evaluation = loop {
        if let Some(e) = status.current() {
            break e;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no verdict after 10 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(evaluation.verdict, Verdict::Stopped, "{evaluation:?}");
    assert_eq!(evaluation.backlog, 5);
    assert!(
        evaluation.reason.contains("nothing delivered"),
        "{}",
        evaluation.reason
    );
}

#[tokio::test]
async fn an_unknown_group_is_an_error_naming_it() {
    let broker = MemoryBroker::new();
    let mut monitor = StatusMonitor::new(broker, "orders", "nobody");
    let e = monitor.sample().await.unwrap_err();
    assert!(e.to_string().contains("`nobody`"), "{e}");
}
