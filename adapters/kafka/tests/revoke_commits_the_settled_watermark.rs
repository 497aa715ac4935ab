//! A revoke commits what the member settled, with no commit of wharf's own in the
//! rebalance callback.
//!
//! The revoke callback only stores each revoked partition's watermark; librdkafka commits
//! the stored offsets of removed partitions on its own thread before it rejoins (see
//! `revoke_never_blocks_the_runtime.rs` for why nothing may block there). Member A reads
//! and settles every record with the periodic commit set to an hour, member B joins, and
//! every partition that moved to B must be committed at its end: only the revoke can
//! have committed it. Run for the classic protocol with eager and
//! cooperative-sticky assignment and for KIP-848's `consumer` protocol.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use futures_util::StreamExt as _;
use wharf::adapter::Acker as _;
use wharf::{Message, Outcome, Publisher as _};
use wharf_kafka::rdkafka::consumer::{BaseConsumer, Consumer as _};
use wharf_kafka::rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use wharf_kafka::rdkafka::ClientConfig;
use wharf_kafka::{GroupProtocol, KafkaClient, KafkaConfig};

const PARTITIONS: i32 = 3;
const MESSAGES: usize = 30;

async fn revoke_commits(config: KafkaConfig, name: &str) {
    let topic = common::unique(&format!("revoke-commit-{name}"));
    let group = common::unique(&format!("revoke-commit-{name}-group"));
    let kafka = KafkaClient::connect(
        config
            .topics([topic.as_str()])
            .group(group.as_str())
            .commit_interval(Duration::from_secs(3600)),
    )
    .await
    .unwrap();
    kafka.create_topic(&topic, PARTITIONS).await.unwrap();
    let publisher = kafka.publisher();
    for i in 0..MESSAGES {
        let m = Message::with_id(format!("m{i}"), format!("m{i}")).with_key(format!("key-{i}"));
        publisher.publish(&topic, m).await.unwrap();
    }

    let mut a = kafka.configured_subscriber().await.unwrap();
    let mut ends = [0i64; PARTITIONS as usize];
    for _ in 0..MESSAGES {
        let (message, acker) = tokio::time::timeout(Duration::from_secs(60), a.next())
            .await
            .expect("a delivery within 60 s")
            .unwrap()
            .unwrap()
            .into_parts();
        let origin = message.origin();
        let partition = usize::try_from(origin.partition().unwrap()).unwrap();
        let offset = i64::try_from(origin.offset().unwrap()).unwrap();
        ends[partition] = ends[partition].max(offset + 1);
        acker.settle(Outcome::Ack).await.unwrap();
    }
    assert_eq!(a.assigned().len(), PARTITIONS as usize);

    let b = kafka.configured_subscriber().await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        // `a` must be polled for its rebalance to run.
        let _ = tokio::time::timeout(Duration::from_millis(100), a.next()).await;
        let (na, nb) = (a.assigned().len(), b.assigned().len());
        if na > 0 && nb > 0 && na + nb == PARTITIONS as usize {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the group did not rebalance"
        );
    }

    let (t, g) = (topic.clone(), group.clone());
    let committed = tokio::task::spawn_blocking(move || committed(&t, &g))
        .await
        .unwrap();
    let moved = b.assigned();
    for (_, partition) in &moved {
        let p = usize::try_from(*partition).unwrap();
        assert_eq!(
            committed[p], ends[p],
            "{name}: partition {p} moved to B; the revoke committed what A settled (ends {ends:?}, committed {committed:?})"
        );
    }
    drop((a, b));
}

/// The committed offset of every partition (0 for none).
fn committed(topic: &str, group: &str) -> Vec<i64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", common::KAFKA)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition(topic, p);
    }
    let tpl = consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .unwrap();
    tpl.elements()
        .iter()
        .map(|e| match e.offset() {
            Offset::Offset(o) => o,
            _ => 0,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs kafka"]
async fn eager_revoke_commits_the_settled_watermark() {
    revoke_commits(common::kafka_config(), "eager").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs kafka"]
async fn cooperative_revoke_commits_the_settled_watermark() {
    let config =
        common::kafka_config().option("partition.assignment.strategy", "cooperative-sticky");
    revoke_commits(config, "cooperative").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs kafka"]
async fn consumer_protocol_revoke_commits_the_settled_watermark() {
    let config = common::kafka_config_without_session().group_protocol(GroupProtocol::Consumer);
    revoke_commits(config, "consumer").await;
}
