//! A group member leaving mid-stream with messages still unsettled loses nothing.
//!
//! Two consumers share a group on a three-partition topic while 600 keyed messages are
//! published. Consumer A stops partway through while some of its handlers hang (their
//! deliveries stay unsettled: the shutdown deadline hands them back as `Retry`). The
//! test proves that
//!
//! - A's partitions' committed offsets are not past any offset A left unsettled;
//! - B takes over A's partitions and handles every message A left unfinished;
//! - every message is handled at least once, and in the end the group has committed
//!   every partition to its end.
//!
//! Runs on librdkafka's in-process mock cluster: no broker needed.

#![allow(clippy::unwrap_used)]

mod mock;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{oneshot, watch};
use wharf::{Consumer, Handler as _, HandlerError, Message};
use wharf_kafka::KafkaClient;

const MESSAGES: usize = 600;
const KEYS: usize = 30;
/// A's deliveries that finish; from the next one on, A is leaving.
const A_FINISHES: usize = 60;

#[derive(Default)]
struct Log {
    /// Message id → the consumers whose handler finished it.
    handled: Mutex<BTreeMap<String, Vec<&'static str>>>,
    /// A's deliveries that started after A began leaving and never finished:
    /// `(partition, offset, id)`.
    stuck: Mutex<Vec<(i32, i64, String)>>,
}

impl Log {
    fn handled_by(&self, id: &str, consumer: &'static str) {
        self.handled
            .lock()
            .unwrap()
            .entry(id.to_owned())
            .or_default()
            .push(consumer);
    }

    fn distinct(&self) -> usize {
        self.handled.lock().unwrap().len()
    }
}

fn position(m: &Message) -> (i32, i64) {
    let origin = m.origin();
    (
        i32::try_from(origin.partition().unwrap()).unwrap(),
        i64::try_from(origin.offset().unwrap()).unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_leaving_mid_stream_loses_nothing() {
    let topic = mock::unique("rebalance");
    let group = mock::unique("rebalance-group");
    let cluster = mock::cluster(1, &topic);
    let bootstrap = cluster.bootstrap_servers();
    let kafka = KafkaClient::connect(mock::config(cluster, &topic, &group))
        .await
        .unwrap();

    // Both members join before anything is published.
    let sub_a = kafka.configured_subscriber().await.unwrap();
    let sub_b = kafka.configured_subscriber().await.unwrap();
    mock::eventually("both members assigned", || {
        let (a, b) = (sub_a.assigned(), sub_b.assigned());
        async move { !a.is_empty() && !b.is_empty() && a.len() + b.len() == 3 }
    })
    .await;
    let a_partitions: BTreeSet<i32> = sub_a.assigned().into_iter().map(|(_, p)| p).collect();

    let log = Arc::new(Log::default());
    let leaving = Arc::new(AtomicBool::new(false));
    // B holds its handlers while A leaves, so the offsets A committed can be read
    // before B moves them.
    let (release_b, released) = watch::channel(false);

    // A: its first deliveries finish; from then on it is leaving, and every new
    // delivery hangs until the shutdown deadline drops it.
    let a_started = Arc::new(AtomicUsize::new(0));
    let handler_a = {
        let (log, leaving) = (log.clone(), leaving.clone());
        move |m: Message| {
            let (log, leaving, a_started) = (log.clone(), leaving.clone(), a_started.clone());
            async move {
                if a_started.fetch_add(1, Ordering::SeqCst) >= A_FINISHES {
                    leaving.store(true, Ordering::SeqCst);
                    let (partition, offset) = position(&m);
                    log.stuck
                        .lock()
                        .unwrap()
                        .push((partition, offset, m.id().to_string()));
                    std::future::pending::<()>().await;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
                log.handled_by(m.id().as_str(), "a");
                Ok::<(), HandlerError>(())
            }
        }
    };
    let handler_b = {
        let (log, leaving) = (log.clone(), leaving.clone());
        move |m: Message| {
            let (log, leaving, mut released) = (log.clone(), leaving.clone(), released.clone());
            async move {
                if leaving.load(Ordering::SeqCst) {
                    released.wait_for(|r| *r).await.unwrap();
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
                log.handled_by(m.id().as_str(), "b");
                Ok::<(), HandlerError>(())
            }
        }
    };

    let (stop_a, stop_a_rx) = oneshot::channel::<()>();
    let (stop_b, stop_b_rx) = oneshot::channel::<()>();
    let consumer_a = tokio::spawn(
        Consumer::new("rebalance-a", sub_a, handler_a.into_service())
            .max_in_flight(16)
            .shutdown_timeout(Duration::from_millis(500))
            .run(async move {
                let _ = stop_a_rx.await;
            }),
    );
    let consumer_b = tokio::spawn(
        Consumer::new("rebalance-b", sub_b, handler_b.into_service())
            .max_in_flight(16)
            .run(async move {
                let _ = stop_b_rx.await;
            }),
    );

    let publisher = kafka.publisher();
    let publishing = {
        let topic = topic.clone();
        tokio::spawn(async move {
            let messages = (0..MESSAGES)
                .map(|i| mock::keyed(&format!("m{i}"), &format!("key-{}", i % KEYS)))
                .collect();
            mock::publish_all(&publisher, &topic, messages).await;
        })
    };

    // Mid-stream, A starts leaving: once some of its deliveries hang, it is shut down.
    mock::eventually("A holds unsettled messages", || {
        let n = log.stuck.lock().unwrap().len();
        async move { n >= 5 }
    })
    .await;
    stop_a.send(()).unwrap();
    let summary_a = consumer_a.await.unwrap().unwrap();
    assert!(
        summary_a.interrupted >= 5,
        "A's hanging deliveries were interrupted: {summary_a:?}"
    );
    let stuck = log.stuck.lock().unwrap().clone();

    // Nothing A left unsettled is below its partition's committed offset.
    let committed = mock::committed(&bootstrap, &group, &topic).await;
    let mut lowest_stuck: BTreeMap<i32, i64> = BTreeMap::new();
    for (partition, offset, _) in &stuck {
        assert!(
            a_partitions.contains(partition),
            "A only handles its own partitions"
        );
        let lowest = lowest_stuck.entry(*partition).or_insert(*offset);
        *lowest = (*lowest).min(*offset);
    }
    for (partition, lowest) in &lowest_stuck {
        if let Some(offset) = committed[partition] {
            assert!(
                offset <= *lowest,
                "partition {partition}: committed {offset}, past offset {lowest} that A left unsettled"
            );
        }
    }

    // B takes over and handles the rest.
    release_b.send(true).unwrap();
    publishing.await.unwrap();
    mock::eventually("every message handled", || {
        let n = log.distinct();
        async move { n == MESSAGES }
    })
    .await;
    stop_b.send(()).unwrap();
    consumer_b.await.unwrap().unwrap();

    let handled = log.handled.lock().unwrap().clone();
    for i in 0..MESSAGES {
        assert!(handled.contains_key(&format!("m{i}")), "m{i} was lost");
    }
    for (partition, offset, id) in &stuck {
        assert!(
            handled[id].contains(&"b"),
            "{id} (partition {partition}, offset {offset}), left unsettled by A, was handled by B"
        );
    }
    let committed = mock::committed(&bootstrap, &group, &topic).await;
    let ends = mock::end_offsets(&bootstrap, &topic).await;
    for (partition, end) in &ends {
        assert_eq!(
            committed[partition],
            Some(*end),
            "partition {partition}: committed to its end"
        );
    }
}
