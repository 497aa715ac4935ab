//! TLS for real: an Apache Kafka node of the test's own (KRaft, one node, beside the
//! broker `scripts/brokers.sh` runs) whose only client listener is SSL, with a
//! certificate the test generates (`rcgen`, read by Kafka's PEM key store). A client
//! that trusts the test's CA (`kafka+ssl://…?tls_ca_file=`) creates a topic, publishes
//! and consumes; a client that trusts another CA fails with a clear error naming the
//! certificate, within seconds, and never hangs.
//!
//! Needs the `ssl` feature (librdkafka built with OpenSSL), which the workspace's builds
//! turn on through `wharf-any/tls`.

#![cfg(feature = "ssl")]
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use wharf::adapter::Acker;
use wharf::{Message, Outcome, Publisher};
use wharf_conformance::brokers::{brokers_sh, kill_group};
use wharf_conformance::tls::{free_port, refused_within, test_dir, TestCertificates};
use wharf_kafka::{KafkaClient, KafkaConfig};

/// A one-node Kafka whose client listener is SSL only; its process group is killed on
/// drop.
struct TlsKafka {
    pid: u32,
    port: u16,
}

impl TlsKafka {
    fn start(dir: &Path, certs: &TestCertificates) -> TlsKafka {
        let (port, controller, internal) = (free_port(), free_port(), free_port());
        std::fs::write(
            dir.join("server.properties"),
            format!(
                "process.roles=broker,controller\n\
                 node.id=1\n\
                 controller.quorum.bootstrap.servers=127.0.0.1:{controller}\n\
                 listeners=SSL://127.0.0.1:{port},INTERNAL://127.0.0.1:{internal},CONTROLLER://127.0.0.1:{controller}\n\
                 advertised.listeners=SSL://127.0.0.1:{port},INTERNAL://127.0.0.1:{internal}\n\
                 controller.listener.names=CONTROLLER\n\
                 inter.broker.listener.name=INTERNAL\n\
                 listener.security.protocol.map=CONTROLLER:PLAINTEXT,INTERNAL:PLAINTEXT,SSL:SSL\n\
                 ssl.keystore.type=PEM\n\
                 ssl.keystore.location={keystore}\n\
                 log.dirs={data}\n\
                 offsets.topic.replication.factor=1\n\
                 offsets.topic.num.partitions=1\n\
                 transaction.state.log.replication.factor=1\n\
                 transaction.state.log.min.isr=1\n\
                 share.coordinator.state.topic.replication.factor=1\n\
                 share.coordinator.state.topic.min.isr=1\n\
                 group.initial.rebalance.delay.ms=0\n\
                 auto.create.topics.enable=false\n",
                keystore = certs.cert_and_key.display(),
                data = dir.join("data").display(),
            ),
        )
        .unwrap();
        // Started in the background by the script, in a session of its own (as a
        // service would be): the broker is not a child of the test.
        let pid: u32 = brokers_sh(&format!("start_kafka_node '{}'", dir.display()))
            .parse()
            .expect("scripts/brokers.sh started the TLS Kafka node and printed its pid");
        let node = TlsKafka { pid, port };
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the TLS Kafka node did not listen within 60 s:\n{}",
                std::fs::read_to_string(dir.join("kafka.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        node
    }
}

impl Drop for TlsKafka {
    fn drop(&mut self) {
        kill_group(self.pid);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs kafka"]
async fn ssl_with_the_servers_ca_connects_and_another_ca_is_refused_at_once() {
    let dir = test_dir("kafka-tls");
    let good = TestCertificates::generate(&dir, "good");
    let other = TestCertificates::generate(&dir, "other");
    let node = TlsKafka::start(&dir, &good);

    // Trusting the server's CA: a topic is created, a message published and consumed.
    let url = format!(
        "kafka+ssl://127.0.0.1:{}/tls-orders?group=g&tls_ca_file={}",
        node.port,
        good.ca.display()
    );
    let kafka = KafkaClient::connect(url.parse::<KafkaConfig>().unwrap())
        .await
        .unwrap();
    kafka
        .create_topic("tls-orders", 1)
        .await
        .expect("a topic is created over SSL");
    kafka
        .publisher()
        .publish("tls-orders", Message::with_id("tls-1", "over TLS"))
        .await
        .expect("a publish over SSL");
    let mut subscriber = kafka.configured_subscriber().await.unwrap();
    let delivery = tokio::time::timeout(Duration::from_secs(30), subscriber.next())
        .await
        .expect("the message arrived over SSL")
        .unwrap()
        .unwrap();
    let (message, acker) = delivery.into_parts();
    assert_eq!(message.id().as_str(), "tls-1");
    assert_eq!(&message.payload()[..], b"over TLS");
    acker.settle(Outcome::Ack).await.unwrap();
    drop(subscriber);

    // Trusting another CA: a clear error naming the certificate, not a hang.
    let url = format!(
        "kafka+ssl://127.0.0.1:{}/tls-orders?group=g2&tls_ca_file={}",
        node.port,
        other.ca.display()
    );
    let kafka = KafkaClient::connect(url.parse::<KafkaConfig>().unwrap())
        .await
        .unwrap();
    let text = refused_within(kafka.configured_subscriber(), Duration::from_secs(20)).await;
    assert!(
        text.to_lowercase().contains("certificate"),
        "the error names the certificate: {text}"
    );
    drop(node);
    let _ = std::fs::remove_dir_all(&dir);
}
