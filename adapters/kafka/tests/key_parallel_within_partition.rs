//! Different keys of one partition run in parallel while each key keeps its order.
//!
//! 60 keys × 20 messages (numbered per key, published in order) on a three-partition
//! topic, consumed by one consumer with the default per-key ordering. The handler takes
//! a few milliseconds (longer for even numbers, so a key whose messages overlapped would
//! finish out of order). The test proves that
//!
//! - every key's messages were handled one at a time, in publish order;
//! - in every partition, several messages (of different keys) were in flight at once:
//!   the adapter does not serialise a partition.
//!
//! Runs on librdkafka's in-process mock cluster: no broker needed.

#![allow(clippy::unwrap_used)]

mod mock;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::join_all;
use tokio::sync::oneshot;
use wharf::{Consumer, Handler as _, HandlerError, Message, Publisher as _};
use wharf_kafka::KafkaClient;

const KEYS: usize = 60;
const PER_KEY: usize = 20;
const PARTITIONS: usize = mock::PARTITIONS as usize;

#[derive(Default)]
struct Log {
    /// `(key, number, partition)` in the order the handlers finished.
    finished: Mutex<Vec<(String, usize, i32)>>,
    /// Messages of each key in the handler right now, and the most ever.
    per_key: Mutex<BTreeMap<String, (usize, usize)>>,
    /// Messages of each partition in the handler right now, and the most ever.
    per_partition: [(AtomicUsize, AtomicUsize); PARTITIONS],
}

async fn handle(log: Arc<Log>, m: Message) -> Result<(), HandlerError> {
    let key = String::from_utf8(m.key().unwrap().to_vec()).unwrap();
    let number: usize = std::str::from_utf8(m.payload()).unwrap().parse().unwrap();
    let partition = i32::try_from(m.origin().partition().unwrap()).unwrap();
    let (now, most) = &log.per_partition[usize::try_from(partition).unwrap()];
    let running = now.fetch_add(1, Ordering::SeqCst) + 1;
    most.fetch_max(running, Ordering::SeqCst);
    {
        let mut per_key = log.per_key.lock().unwrap();
        let (now, most) = per_key.entry(key.clone()).or_default();
        *now += 1;
        *most = (*most).max(*now);
    }

    let millis = if number % 2 == 0 { 6 } else { 2 };
    tokio::time::sleep(Duration::from_millis(millis)).await;

    log.per_key.lock().unwrap().get_mut(&key).unwrap().0 -= 1;
    now.fetch_sub(1, Ordering::SeqCst);
    log.finished.lock().unwrap().push((key, number, partition));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_of_one_partition_run_in_parallel_each_in_order() {
    let topic = mock::unique("lanes");
    let group = mock::unique("lanes-group");
    let cluster = mock::cluster(1, &topic);
    let kafka = KafkaClient::connect(mock::config(cluster, &topic, &group))
        .await
        .unwrap();

    // Round by round, so each key's messages are stored in order.
    let publisher = kafka.publisher();
    for number in 0..PER_KEY {
        let round = (0..KEYS).map(|k| {
            let message = Message::with_id(format!("key-{k}-{number}"), number.to_string())
                .with_key(format!("key-{k}"));
            publisher.publish(&topic, message)
        });
        for result in join_all(round).await {
            result.unwrap();
        }
    }

    let log = Arc::new(Log::default());
    let handler = {
        let log = log.clone();
        move |m: Message| handle(log.clone(), m)
    };
    let subscriber = kafka.configured_subscriber().await.unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let consumer = tokio::spawn(
        Consumer::new("lanes", subscriber, handler.into_service())
            .max_in_flight(32)
            .run(async move {
                let _ = stopped.await;
            }),
    );
    mock::eventually("every message handled", || {
        let n = log.finished.lock().unwrap().len();
        async move { n >= KEYS * PER_KEY }
    })
    .await;
    stop.send(()).unwrap();
    let summary = consumer.await.unwrap().unwrap();
    assert_eq!(summary.acked, (KEYS * PER_KEY) as u64, "{summary:?}");

    // Each key: one at a time, in publish order, all in one partition.
    let finished = log.finished.lock().unwrap().clone();
    assert_eq!(finished.len(), KEYS * PER_KEY, "each message handled once");
    let mut by_key: BTreeMap<&str, (Vec<usize>, Vec<i32>)> = BTreeMap::new();
    for (key, number, partition) in &finished {
        let (numbers, partitions) = by_key.entry(key.as_str()).or_default();
        numbers.push(*number);
        partitions.push(*partition);
    }
    assert_eq!(by_key.len(), KEYS);
    let in_order: Vec<usize> = (0..PER_KEY).collect();
    for (key, (numbers, partitions)) in &by_key {
        assert_eq!(numbers, &in_order, "{key} was handled out of order");
        assert!(
            partitions.iter().all(|p| *p == partitions[0]),
            "{key} stays in one partition"
        );
    }
    for (key, (_, most)) in log.per_key.lock().unwrap().iter() {
        assert_eq!(*most, 1, "{key} had {most} messages in the handler at once");
    }

    // Each partition: several keys in flight at once.
    let keys_per_partition = by_key.values().fold([0usize; PARTITIONS], |mut n, (_, p)| {
        n[usize::try_from(p[0]).unwrap()] += 1;
        n
    });
    for (partition, (_, most)) in log.per_partition.iter().enumerate() {
        let most = most.load(Ordering::SeqCst);
        assert!(
            most > 1,
            "partition {partition} ({} keys) never had more than {most} message in flight",
            keys_per_partition[partition]
        );
    }
}
