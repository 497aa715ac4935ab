//! The conformance suite against the local tansu broker (`scripts/test.sh` starts it).
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
use wharf_kafka::{KafkaClient, KafkaPublisher, KafkaSubscriber, RetryMode};

struct TansuFactory {
    kafka: KafkaClient,
}

impl TansuFactory {
    fn new() -> Self {
        TansuFactory {
            kafka: KafkaClient::new(common::tansu_config()).unwrap(),
        }
    }
}

impl AdapterFactory for TansuFactory {
    type Subscriber = KafkaSubscriber;
    type Publisher = KafkaPublisher;

    fn name(&self) -> &str {
        "kafka-tansu"
    }

    fn capabilities(&self) -> Capabilities {
        // Kafka keeps messages on disk; tansu keeps them in memory here, and this factory
        // cannot restart it, so the suite's restart tests skip themselves.
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

    fn timeout(&self) -> Duration {
        // Group joins on tansu take about half the session timeout, and a test may join
        // several times.
        Duration::from_secs(45)
    }
}

conformance_tests!(ignore = "needs kafka", TansuFactory::new());
