//! Shared by the Kafka integration tests: the local tansu broker's settings.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::time::Duration;

use wharf_kafka::KafkaConfig;

/// tansu on loopback, as `scripts/test.sh` starts it (memory storage).
pub const TANSU: &str = "127.0.0.1:9092";

/// Settings for tansu: a short session timeout (tansu answers a group join after about
/// half of it) and one record per produce batch (tansu 0.6 drops a batch fetched from
/// an offset inside it).
pub fn tansu_config() -> KafkaConfig {
    KafkaConfig::new(TANSU, Vec::<String>::new())
        .session_timeout(Duration::from_secs(6))
        .commit_interval(Duration::from_millis(200))
        .option("linger.ms", "0")
        .option("batch.num.messages", "1")
        .option("message.max.bytes", "10000000")
}

/// A topic name no other test uses.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}
