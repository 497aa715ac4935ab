//! A consumer rides out a broker outage in the middle of a stream and loses nothing.
//!
//! 600 messages are published steadily while one consumer handles them; partway
//! through, a broker goes down for three seconds and comes back. Two shapes:
//!
//! - one broker: everything is down (metadata, group coordinator, every partition
//!   leader, the producer's only broker);
//! - three brokers: the one that is both the group's coordinator and partition 0's
//!   leader goes down; the other partitions keep their leaders and keep being handled
//!   during the outage.
//!
//! Either way the test proves the consumer recovers by itself: every message is handled
//! (at least once; distinct ids are counted), and after the consumer closes the group
//! has committed every partition to its end.
//!
//! Runs on librdkafka's in-process mock cluster: no broker needed.

#![allow(clippy::unwrap_used)]

mod mock;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;
use wharf::{Consumer, Handler as _, HandlerError, Message, Publisher as _};
use wharf_kafka::rdkafka::mocking::MockCoordinator;
use wharf_kafka::KafkaClient;

const MESSAGES: usize = 600;
const KEYS: usize = 40;
/// The broker taken down (mock broker ids start at 1).
const DOWN: i32 = 1;

/// Runs the stream with broker [`DOWN`] down for three seconds partway through. With
/// `others_keep_flowing`, the partitions other brokers lead must keep being handled
/// during the outage.
async fn outage_mid_stream(
    cluster: &'static mock::Cluster,
    topic: &str,
    group: &str,
    others_keep_flowing: bool,
) {
    let bootstrap = cluster.bootstrap_servers();
    // Reconnect attempts back off up to 10 s by default; 1 s keeps the test short.
    let config = mock::config(cluster, topic, group).option("reconnect.backoff.max.ms", "1000");
    let kafka = KafkaClient::connect(config).await.unwrap();

    let subscriber = kafka.configured_subscriber().await.unwrap();
    mock::wait_assigned(&subscriber, 3).await;

    let handled: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    let handler = {
        let handled = handled.clone();
        move |m: Message| {
            let handled = handled.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(1)).await;
                handled.lock().unwrap().insert(m.id().to_string());
                Ok::<(), HandlerError>(())
            }
        }
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let consumer = tokio::spawn(
        Consumer::new("outage", subscriber, handler.into_service())
            .max_in_flight(16)
            .run(async move {
                let _ = stopped.await;
            }),
    );

    // A steady stream: one publish every 5 ms, each in its own task, so a partition
    // without a leader holds only its own records.
    let publisher = kafka.publisher();
    let publishing = {
        let topic = topic.to_owned();
        tokio::spawn(async move {
            let mut sent = Vec::new();
            for i in 0..MESSAGES {
                let (publisher, topic) = (publisher.clone(), topic.clone());
                let message = mock::keyed(&format!("m{i}"), &format!("key-{}", i % KEYS));
                sent.push(tokio::spawn(async move {
                    publisher.publish(&topic, message).await
                }));
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            for publish in sent {
                publish.await.unwrap().unwrap();
            }
        })
    };

    let count = || handled.lock().unwrap().len();
    mock::eventually("some messages handled", || {
        let n = count();
        async move { n >= 100 }
    })
    .await;
    cluster.broker_down(DOWN).unwrap();
    let at_down = count();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let at_up = count();
    cluster.broker_up(DOWN).unwrap();
    assert!(
        at_down < MESSAGES,
        "the outage began mid-stream ({at_down} of {MESSAGES} handled)"
    );
    if others_keep_flowing {
        assert!(
            at_up > at_down,
            "partitions led by the other brokers kept being handled during the outage"
        );
    }

    publishing.await.unwrap();
    mock::eventually("every message handled after the outage", || {
        let n = count();
        async move { n == MESSAGES }
    })
    .await;
    // The interval commits reach the end once the group is stable again (a commit
    // during the rejoin is refused with UNKNOWN_MEMBER_ID and done on the next tick).
    let ends = mock::end_offsets(&bootstrap, topic).await;
    mock::eventually("committed to the end after the outage", || {
        let (bootstrap, ends) = (bootstrap.clone(), ends.clone());
        async move {
            let committed = mock::committed(&bootstrap, group, topic).await;
            ends.iter()
                .all(|(p, end)| committed.get(p).copied().flatten() == Some(*end))
        }
    })
    .await;
    stop.send(()).unwrap();
    let summary = consumer.await.unwrap().unwrap();
    assert!(summary.received >= MESSAGES as u64, "{summary:?}");

    let handled = handled.lock().unwrap().clone();
    for i in 0..MESSAGES {
        assert!(handled.contains(&format!("m{i}")), "m{i} was lost");
    }
    let committed = mock::committed(&bootstrap, group, topic).await;
    for (partition, end) in mock::end_offsets(&bootstrap, topic).await {
        assert_eq!(
            committed[&partition],
            Some(end),
            "partition {partition}: committed to its end"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_only_broker_down_and_up() {
    let topic = mock::unique("outage-all");
    let group = mock::unique("outage-all-group");
    let cluster = mock::cluster(1, &topic);
    outage_mid_stream(cluster, &topic, &group, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coordinator_and_a_leader_down_and_up() {
    let topic = mock::unique("outage-one");
    let group = mock::unique("outage-one-group");
    let cluster = mock::cluster(3, &topic);
    for partition in 0..mock::PARTITIONS {
        cluster
            .partition_leader(&topic, partition, Some(partition + 1))
            .unwrap();
    }
    cluster
        .coordinator(MockCoordinator::Group(group.clone()), DOWN)
        .unwrap();
    outage_mid_stream(cluster, &topic, &group, true).await;
}
