//! Shared by the Kafka integration tests: the local Apache Kafka broker's settings.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::time::Duration;

use wharf_kafka::KafkaConfig;

/// Apache Kafka 4.x (one KRaft node) on loopback, as `scripts/brokers.sh` starts it.
pub const KAFKA: &str = "127.0.0.1:9092";

/// Settings for the tests: a short session timeout (a killed member is noticed within
/// seconds; the broker allows down to 1 s) and quick interval commits. Production is
/// batched as librdkafka batches it by default.
pub fn kafka_config() -> KafkaConfig {
    KafkaConfig::new(KAFKA, Vec::<String>::new())
        .session_timeout(Duration::from_secs(6))
        .commit_interval(Duration::from_millis(200))
}

/// The same without a session timeout: KIP-848's `consumer` protocol leaves it to the
/// broker (`group.consumer.session.timeout.ms`, 10 s on the test broker).
pub fn kafka_config_without_session() -> KafkaConfig {
    KafkaConfig::new(KAFKA, Vec::<String>::new()).commit_interval(Duration::from_millis(200))
}

/// A topic name no other test uses.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}
