//! Shared by the MockCluster tests: librdkafka's in-process mock cluster, client
//! settings for it, and a look at a group's committed offsets.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use futures_util::StreamExt as _;
use wharf::{Message, Publisher as _};
use wharf_kafka::rdkafka::consumer::{BaseConsumer, Consumer as _};
use wharf_kafka::rdkafka::mocking::MockCluster;
use wharf_kafka::rdkafka::producer::DefaultProducerContext;
use wharf_kafka::rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use wharf_kafka::rdkafka::ClientConfig;
use wharf_kafka::{KafkaAcker, KafkaClient, KafkaConfig, KafkaPublisher, KafkaSubscriber};

/// Partitions of every test topic.
pub const PARTITIONS: i32 = 3;

pub type Cluster = MockCluster<'static, DefaultProducerContext>;

/// A mock cluster of `brokers` brokers with `topic` and its dead-letter topic
/// `<topic>.dlq` (three partitions, one replica each). The subscriber checks the
/// dead-letter topic at start-up and creates it when missing, but the mock cluster does
/// not answer `CreateTopics`.
///
/// The cluster must outlive every client that uses it, so it is leaked (one test per
/// binary; the process ends after it). Otherwise a failing assertion unwinds the test
/// and destroys the cluster while a dropped subscriber is still closing in the
/// background: that close then waits forever for the destroyed mock broker, the
/// runtime's shutdown waits for the close, and the test hangs instead of failing.
pub fn cluster(brokers: i32, topic: &str) -> &'static Cluster {
    let cluster = MockCluster::new(brokers).unwrap();
    cluster.create_topic(topic, PARTITIONS, 1).unwrap();
    cluster
        .create_topic(&format!("{topic}.dlq"), PARTITIONS, 1)
        .unwrap();
    Box::leak(Box::new(cluster))
}

/// The client settings for `cluster`: group `group` on `topic`, short timeouts.
pub fn config(cluster: &Cluster, topic: &str, group: &str) -> KafkaConfig {
    KafkaConfig::new(cluster.bootstrap_servers(), [topic])
        .group(group)
        .session_timeout(Duration::from_secs(6))
        .commit_interval(Duration::from_millis(100))
}

/// A one-broker cluster whose fresh topic holds `messages` keyed messages (`m<i>` with
/// key `key-<i>`), and a client for a fresh group on it.
pub struct Published {
    pub kafka: KafkaClient,
    pub bootstrap: String,
    pub topic: String,
    pub group: String,
    /// The end offset of every partition.
    pub ends: BTreeMap<i32, i64>,
}

/// Sets up [`Published`]; names start with `prefix`.
pub async fn published(prefix: &str, messages: usize) -> Published {
    let topic = unique(prefix);
    let group = unique(&format!("{prefix}-group"));
    let cluster = cluster(1, &topic);
    let bootstrap = cluster.bootstrap_servers();
    let kafka = KafkaClient::connect(config(cluster, &topic, &group))
        .await
        .unwrap();
    let batch = (0..messages)
        .map(|i| keyed(&format!("m{i}"), &format!("key-{i}")))
        .collect();
    publish_all(&kafka.publisher(), &topic, batch).await;
    let ends = end_offsets(&bootstrap, &topic).await;
    Published {
        kafka,
        bootstrap,
        topic,
        group,
        ends,
    }
}

/// A topic or group name no other test uses.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// A message with id `id`, key `key`, and the id as payload.
pub fn keyed(id: &str, key: &str) -> Message {
    Message::with_id(id, id.to_owned()).with_key(key.to_owned())
}

/// Publishes `messages` one after another (each confirmed before the next, so the
/// records of one key are stored in order).
pub async fn publish_all(publisher: &KafkaPublisher, topic: &str, messages: Vec<Message>) {
    for m in messages {
        publisher.publish(topic, m).await.unwrap();
    }
}

/// The next delivery of `subscriber` (within 20 s).
pub async fn next(subscriber: &mut KafkaSubscriber) -> (Message, KafkaAcker) {
    tokio::time::timeout(Duration::from_secs(20), subscriber.next())
        .await
        .expect("a delivery within 20 s")
        .expect("the subscriber is open")
        .expect("no consumer error")
        .into_parts()
}

/// Reads deliveries from `subscriber` until `count` arrived; returns them by partition, in
/// arrival order, as `(offset, acker)`.
pub async fn read(
    subscriber: &mut KafkaSubscriber,
    count: usize,
) -> BTreeMap<i32, Vec<(i64, KafkaAcker)>> {
    let mut by_partition: BTreeMap<i32, Vec<(i64, KafkaAcker)>> = BTreeMap::new();
    for _ in 0..count {
        let (message, acker) = next(subscriber).await;
        let origin = message.origin();
        let partition = i32::try_from(origin.partition().unwrap()).unwrap();
        let offset = i64::try_from(origin.offset().unwrap()).unwrap();
        by_partition
            .entry(partition)
            .or_default()
            .push((offset, acker));
    }
    by_partition
}

/// Waits (up to 20 s) until `subscriber` holds at least `partitions` partitions.
pub async fn wait_assigned(subscriber: &KafkaSubscriber, partitions: usize) {
    eventually("partitions assigned", || {
        let n = subscriber.assigned().len();
        async move { n >= partitions }
    })
    .await;
}

/// Polls `check` every 50 ms until it holds; panics after 20 s.
pub async fn eventually<F, Fut>(what: &str, check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    eventually_within(Duration::from_secs(20), what, check).await
}

/// Polls `check` every 50 ms until it holds; panics after `limit`.
pub async fn eventually_within<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A plain consumer that never joins the group: only reads offsets and watermarks.
fn inspector(bootstrap: &str, group: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .unwrap()
}

/// The offsets `group` has committed on `topic`, by partition (`None`: nothing
/// committed).
pub async fn committed(bootstrap: &str, group: &str, topic: &str) -> BTreeMap<i32, Option<i64>> {
    committed_with_metadata(bootstrap, group, topic)
        .await
        .into_iter()
        .map(|(p, (offset, _))| (p, offset))
        .collect()
}

/// `group`'s committed offset of each partition of `topic`, with the commit's metadata.
pub async fn committed_with_metadata(
    bootstrap: &str,
    group: &str,
    topic: &str,
) -> BTreeMap<i32, (Option<i64>, String)> {
    let (bootstrap, group, topic) = (bootstrap.to_owned(), group.to_owned(), topic.to_owned());
    tokio::task::spawn_blocking(move || {
        let consumer = inspector(&bootstrap, &group);
        let mut tpl = TopicPartitionList::new();
        for p in 0..PARTITIONS {
            tpl.add_partition(&topic, p);
        }
        let tpl = consumer
            .committed_offsets(tpl, Duration::from_secs(5))
            .unwrap();
        tpl.elements()
            .iter()
            .map(|e| {
                let offset = match e.offset() {
                    Offset::Offset(o) => Some(o),
                    _ => None,
                };
                (e.partition(), (offset, e.metadata().to_owned()))
            })
            .collect()
    })
    .await
    .unwrap()
}

/// `true` once `group` has committed every non-empty partition of `topic` to its end in
/// `ends`.
pub async fn committed_to_end(
    bootstrap: &str,
    group: &str,
    topic: &str,
    ends: &BTreeMap<i32, i64>,
) -> bool {
    let committed = committed(bootstrap, group, topic).await;
    ends.iter()
        .all(|(p, end)| *end == 0 || committed.get(p).copied().flatten() == Some(*end))
}

/// Waits (up to `limit`) until exactly one record landed on `dlq` and `group` has
/// committed every non-empty partition of `topic` to its end in `ends`.
pub async fn dead_letter_landed_and_committed(
    limit: Duration,
    bootstrap: &str,
    dlq: &str,
    group: &str,
    topic: &str,
    ends: &BTreeMap<i32, i64>,
) {
    eventually_within(
        limit,
        "the dead letter landed and every partition committed",
        || async {
            let landed = end_offsets(bootstrap, dlq).await.values().sum::<i64>();
            landed == 1 && committed_to_end(bootstrap, group, topic, ends).await
        },
    )
    .await;
}

/// The end (high watermark) of every partition of `topic`.
pub async fn end_offsets(bootstrap: &str, topic: &str) -> BTreeMap<i32, i64> {
    let (bootstrap, topic) = (bootstrap.to_owned(), topic.to_owned());
    tokio::task::spawn_blocking(move || {
        let consumer = inspector(&bootstrap, "wharf-mock-inspector");
        (0..PARTITIONS)
            .map(|p| {
                let (_, high) = consumer
                    .fetch_watermarks(&topic, p, Duration::from_secs(5))
                    .unwrap();
                (p, high)
            })
            .collect()
    })
    .await
    .unwrap()
}

/// One record as stored: its partition, headers (name → UTF-8 value) and payload.
#[derive(Debug, Clone)]
pub struct Record {
    pub partition: i32,
    pub headers: BTreeMap<String, String>,
    pub payload: Vec<u8>,
}

/// Every record of `topic` up to the current end of each partition, read with a plain
/// consumer that assigns itself the partitions (no group).
pub async fn records(bootstrap: &str, topic: &str) -> Vec<Record> {
    use wharf_kafka::rdkafka::message::{Headers as _, Message as _};
    let ends = end_offsets(bootstrap, topic).await;
    let (bootstrap, topic) = (bootstrap.to_owned(), topic.to_owned());
    tokio::task::spawn_blocking(move || {
        let consumer = inspector(&bootstrap, "wharf-mock-reader");
        let mut tpl = TopicPartitionList::new();
        for p in 0..PARTITIONS {
            tpl.add_partition_offset(&topic, p, Offset::Beginning)
                .unwrap();
        }
        consumer.assign(&tpl).unwrap();
        let total: i64 = ends.values().sum();
        let mut out = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while (out.len() as i64) < total {
            assert!(
                std::time::Instant::now() < deadline,
                "read {} of {total} records of {topic}",
                out.len()
            );
            let Some(record) = consumer.poll(Duration::from_millis(100)) else {
                continue;
            };
            let record = record.unwrap();
            let headers = record
                .headers()
                .map(|hs| {
                    hs.iter()
                        .map(|h| {
                            let value = h.value.map(String::from_utf8_lossy).unwrap_or_default();
                            (h.key.to_owned(), value.into_owned())
                        })
                        .collect()
                })
                .unwrap_or_default();
            out.push(Record {
                partition: record.partition(),
                headers,
                payload: record.payload().unwrap_or_default().to_vec(),
            });
        }
        out
    })
    .await
    .unwrap()
}
