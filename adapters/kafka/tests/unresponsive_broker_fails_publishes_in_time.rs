//! A publisher whose bootstrap address accepts connections but never answers (a hung
//! broker, or something that is not Kafka holding the port) gets an error within the
//! publish bound (30 s), never a hang, and the error hands the message back.
//!
//! (A proxy cannot stall a running Kafka client's traffic on loopback: after its first
//! request the client connects to the broker's advertised listeners, not the proxy. The
//! broker-outage test on librdkafka's mock cluster covers a broker that goes away
//! mid-stream.)

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use wharf::Message;
use wharf_conformance::net::{publish_fails_within, Blackhole};
use wharf_kafka::{KafkaClient, KafkaConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs kafka"]
async fn a_broker_that_never_answers_fails_the_publish_in_time() {
    let hole = Blackhole::start().await.unwrap();
    let kafka = KafkaClient::connect(KafkaConfig::new(
        hole.addr().to_string(),
        Vec::<String>::new(),
    ))
    .await
    .unwrap();
    publish_fails_within(
        &kafka.publisher(),
        "orders",
        Message::with_id("never-answered", "1"),
        Duration::from_secs(30),
    )
    .await;
}
