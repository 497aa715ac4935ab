//! Dead-letter and retry topics are checked when the subscriber starts, on Apache Kafka.
//!
//! Before, only the source topics were: a missing `<topic>.dlq` showed up at the first
//! dead letter, as a partition whose commits stopped and the same error every second.
//! Now
//!
//! - with `create_topics=false` a missing dead-letter (or retry) topic is a start-up
//!   error that names the topic and the option;
//! - by default it is created, with the source topic's partition count;
//! - a missing source topic is still an error (source topics are never created).

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use wharf_kafka::rdkafka::consumer::{BaseConsumer, Consumer as _};
use wharf_kafka::rdkafka::ClientConfig;
use wharf_kafka::{KafkaClient, RetryMode};

/// The partition count of `topic`, `None` if it does not exist.
async fn partitions(topic: &str) -> Option<usize> {
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", common::KAFKA)
            .create()
            .unwrap();
        let metadata = consumer
            .fetch_metadata(Some(&topic), Duration::from_secs(10))
            .unwrap();
        metadata
            .topics()
            .iter()
            .find(|t| t.name() == topic && t.error().is_none())
            .map(|t| t.partitions().len())
            .filter(|n| *n > 0)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs kafka"]
async fn a_missing_dead_letter_topic_is_an_error_naming_it() {
    let topic = common::unique("startup-dlq-off");
    let config = common::kafka_config()
        .topics([topic.as_str()])
        .group(common::unique("startup-group"))
        .create_topics(false);
    let kafka = KafkaClient::connect(config).await.unwrap();
    kafka.create_topic(&topic, 3).await.unwrap();
    let err = kafka.configured_subscriber().await.unwrap_err().to_string();
    assert!(err.contains(&format!("{topic}.dlq")), "{err}");
    assert!(err.contains("create_topics"), "{err}");
    assert_eq!(
        partitions(&format!("{topic}.dlq")).await,
        None,
        "not created"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs kafka"]
async fn missing_dead_letter_and_retry_topics_are_created() {
    let topic = common::unique("startup-dlq-on");
    let config = common::kafka_config()
        .topics([topic.as_str()])
        .group(common::unique("startup-group"))
        .retry_mode(RetryMode::Topic);
    let kafka = KafkaClient::connect(config).await.unwrap();
    kafka.create_topic(&topic, 3).await.unwrap();
    let subscriber = kafka.configured_subscriber().await.unwrap();
    assert_eq!(partitions(&format!("{topic}.dlq")).await, Some(3));
    assert_eq!(partitions(&format!("{topic}.retry")).await, Some(3));
    drop(subscriber);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs kafka"]
async fn a_missing_source_topic_is_never_created() {
    let topic = common::unique("startup-source");
    let config = common::kafka_config()
        .topics([topic.as_str()])
        .group(common::unique("startup-group"));
    let kafka = KafkaClient::connect(config).await.unwrap();
    let err = kafka.configured_subscriber().await.unwrap_err().to_string();
    assert!(
        err.contains(&topic) && err.contains("does not exist"),
        "{err}"
    );
    assert_eq!(partitions(&topic).await, None);
}
