//! A subscriber that cannot reach Kafka says why, within seconds, as RabbitMQ and NATS
//! do: a refused connection, failed authentication, or a server that is not Kafka.
//! Before, each of these was a generic timeout after 10 s or more (the cause only in
//! librdkafka's log lines). Runs against the local Apache Kafka, whose SASL/PLAIN
//! listener on 9094 knows user `wharf` with password `wharf-secret`.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use wharf_kafka::KafkaClient;

/// Subscribes with `url` (a topic that exists on the plaintext listener), returns the
/// error text and how long it took.
async fn subscribe_error(url: &str) -> (String, Duration) {
    let started = Instant::now();
    let kafka = KafkaClient::connect(url.parse().unwrap()).await.unwrap();
    let err = kafka.configured_subscriber().await.unwrap_err().to_string();
    (err, started.elapsed())
}

async fn topic() -> String {
    let topic = common::unique("connect");
    let kafka = KafkaClient::connect(common::kafka_config()).await.unwrap();
    kafka.create_topic(&topic, 1).await.unwrap();
    topic
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs kafka"]
async fn a_wrong_port_is_refused() {
    let (err, took) = subscribe_error("kafka://127.0.0.1:1/orders?group=g").await;
    eprintln!("{took:?}: {err}");
    assert!(err.to_lowercase().contains("refused"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs kafka"]
async fn a_wrong_password_fails_authentication() {
    let topic = topic().await;
    let (err, took) = subscribe_error(&format!(
        "kafka://wharf:not-the-pass%21@127.0.0.1:9094/{topic}?group=g"
    ))
    .await;
    eprintln!("{took:?}: {err}");
    assert!(err.to_lowercase().contains("authentication"), "{err}");
    assert!(!err.contains("not-the-pass"), "no secret in errors: {err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs kafka"]
async fn the_right_password_subscribes() {
    let topic = topic().await;
    let url = format!("kafka://wharf:wharf-secret@127.0.0.1:9094/{topic}?group=g");
    let kafka = KafkaClient::connect(url.parse().unwrap()).await.unwrap();
    drop(kafka.configured_subscriber().await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs kafka"]
async fn a_server_that_is_not_kafka_says_so() {
    // The controller listener speaks Kafka's protocol but serves no clients, so use
    // RabbitMQ's AMQP port.
    let (err, took) = subscribe_error("kafka://127.0.0.1:5672/orders?group=g").await;
    eprintln!("{took:?}: {err}");
    assert!(err.contains("not a Kafka broker"), "{err}");
}
