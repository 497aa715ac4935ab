//! The conformance suite against Apache Kafka 4.x (`scripts/brokers.sh` starts one KRaft
//! node on 127.0.0.1:9092), once per group protocol: classic and KIP-848 `consumer`.
//!
//! Through `KafkaClient`: a topic is a Kafka topic with three partitions; a group is a
//! consumer group; dead letters are read back from `<topic>.dlq`. This factory cannot
//! restart the broker, so the suite's restart tests skip themselves.

// Test helpers outside `#[test]` functions unwrap too.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use wharf_conformance::{conformance_tests, AdapterFactory};
use wharf_kafka::{GroupProtocol, KafkaClient, KafkaConfig, KafkaPublisher, KafkaSubscriber};

struct KafkaFactory {
    kafka: KafkaClient,
    name: &'static str,
}

impl KafkaFactory {
    /// The classic group protocol (librdkafka's eager default assignment).
    async fn classic() -> Self {
        Self::connect(common::kafka_config(), "kafka-classic").await
    }

    /// KIP-848: the broker assigns partitions, incrementally.
    async fn consumer_protocol() -> Self {
        let config = common::kafka_config_without_session().group_protocol(GroupProtocol::Consumer);
        Self::connect(config, "kafka-consumer-protocol").await
    }

    /// Topics get three partitions: the suite's groups have up to three members.
    async fn connect(config: KafkaConfig, name: &'static str) -> Self {
        KafkaFactory {
            kafka: KafkaClient::connect(config.partitions(3)).await.unwrap(),
            name,
        }
    }
}

impl AdapterFactory for KafkaFactory {
    type Client = KafkaClient;
    type Subscriber = KafkaSubscriber;
    type Publisher = KafkaPublisher;

    fn name(&self) -> &str {
        self.name
    }

    fn client(&self) -> &KafkaClient {
        &self.kafka
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
    conformance_tests!(ignore = "needs kafka", KafkaFactory::classic().await);
}

mod consumer_protocol {
    use super::*;
    conformance_tests!(
        ignore = "needs kafka",
        KafkaFactory::consumer_protocol().await
    );
}
