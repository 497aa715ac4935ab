//! The conformance suite against Apache Kafka 4.x (`scripts/brokers.sh` starts one KRaft
//! node on 127.0.0.1:9092), once per group protocol: classic and KIP-848 `consumer`.
//!
//! A topic is a Kafka topic with three partitions; a group is a consumer group; dead
//! letters are read back from `<topic>.dlq`.

// Test helpers outside `#[test]` functions unwrap too.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use wharf::headers::names;
use wharf::Capabilities;
use wharf_conformance::{conformance_tests, AdapterFactory, DeadLetterRecord};
use wharf_kafka::{GroupProtocol, KafkaClient, KafkaPublisher, KafkaSubscriber, RetryMode};

struct KafkaFactory {
    kafka: KafkaClient,
    name: &'static str,
}

impl KafkaFactory {
    /// The classic group protocol (librdkafka's eager default assignment).
    fn classic() -> Self {
        KafkaFactory {
            kafka: KafkaClient::new(common::kafka_config()).unwrap(),
            name: "kafka-classic",
        }
    }

    /// KIP-848: the broker assigns partitions, incrementally.
    fn consumer_protocol() -> Self {
        let config = common::kafka_config_without_session().group_protocol(GroupProtocol::Consumer);
        KafkaFactory {
            kafka: KafkaClient::new(config).unwrap(),
            name: "kafka-consumer-protocol",
        }
    }
}

impl AdapterFactory for KafkaFactory {
    type Subscriber = KafkaSubscriber;
    type Publisher = KafkaPublisher;

    fn name(&self) -> &str {
        self.name
    }

    fn capabilities(&self) -> Capabilities {
        // This factory cannot restart the broker, so the suite's restart tests skip
        // themselves.
        wharf_kafka::subscriber::capabilities(RetryMode::Lane)
    }

    async fn prepare(&self, topic: &str, _groups: &[&str]) -> Result<(), wharf::Error> {
        self.kafka.create_topic(topic, 3).await?;
        self.kafka.create_topic(&format!("{topic}.dlq"), 1).await
    }

    async fn publisher(&self) -> Result<KafkaPublisher, wharf::Error> {
        Ok(self.kafka.publisher())
    }

    async fn subscribe(&self, topic: &str, group: &str) -> Result<KafkaSubscriber, wharf::Error> {
        self.kafka.subscribe(&[topic], group).await
    }

    async fn dead_letters(
        &self,
        topic: &str,
        _group: &str,
    ) -> Result<Vec<DeadLetterRecord>, wharf::Error> {
        let letters = self
            .kafka
            .read_topic(&format!("{topic}.dlq"), Duration::from_secs(10))
            .await?;
        Ok(letters
            .into_iter()
            .map(|m| {
                let reason = m.headers().get_str(names::DLQ_REASON).map(str::to_owned);
                DeadLetterRecord::new(m, reason)
            })
            .collect())
    }

    async fn group_ready(&self, members: &[&KafkaSubscriber]) -> Result<(), wharf::Error> {
        // Each member joining rebalances the group; wait until every member holds a
        // partition (the topics have as many partitions as the suite has members).
        let deadline = tokio::time::Instant::now() + self.timeout();
        while members.iter().any(|m| m.assigned().is_empty()) {
            if tokio::time::Instant::now() > deadline {
                return Err(wharf::Error::config(
                    "group",
                    "members were never all assigned",
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    }

    fn large_payload_size(&self) -> usize {
        // librdkafka's default `message.max.bytes` is 1,000,000 bytes for a record with
        // its key, headers and framing (Apache Kafka's own default is 1,048,588 per
        // batch), so a 1 MiB payload does not fit with the defaults users run. A
        // payload just under the limit does.
        990_000
    }

    fn timeout(&self) -> Duration {
        // A test may join and leave the group several times.
        Duration::from_secs(30)
    }
}

mod classic {
    use super::*;
    conformance_tests!(ignore = "needs kafka", KafkaFactory::classic());
}

mod consumer_protocol {
    use super::*;
    conformance_tests!(ignore = "needs kafka", KafkaFactory::consumer_protocol());
}
