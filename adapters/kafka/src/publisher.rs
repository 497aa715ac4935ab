//! Publishing on an idempotent producer (`enable.idempotence=true`, `acks=all`).
//!
//! `publish` returns once the broker has stored the record on all in-sync replicas. The
//! record carries the message's key (which picks the partition, so one key keeps its
//! order), its headers and `wharf-message-id`; the idempotent producer's own retries
//! never duplicate or reorder records within a partition.

use std::time::Duration;

use async_trait::async_trait;
use rdkafka::error::KafkaError as RdKafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord};
use wharf::{Message, PublishError, Publisher};

use crate::message::to_headers;

/// Publishes to Kafka topics; cheap to clone (one producer underneath).
#[derive(Clone)]
pub struct KafkaPublisher {
    producer: FutureProducer,
    timeout: Duration,
    max_record_bytes: usize,
}

impl std::fmt::Debug for KafkaPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaPublisher")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl KafkaPublisher {
    pub(crate) fn new(
        producer: FutureProducer,
        timeout: Duration,
        max_record_bytes: usize,
    ) -> Self {
        KafkaPublisher {
            producer,
            timeout,
            max_record_bytes,
        }
    }

    /// How long `publish` waits for the broker's confirmation (queueing included).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

/// Sends `message` to `topic` and waits for the broker's confirmation.
pub(crate) async fn send(
    producer: &FutureProducer,
    timeout: Duration,
    topic: &str,
    message: &Message,
    extra_headers: &[(&str, String)],
) -> Result<(), RdKafkaError> {
    let mut record = FutureRecord::to(topic)
        .payload(message.payload().as_ref())
        .headers(to_headers(message, extra_headers));
    if let Some(key) = message.key() {
        record = record.key(key.as_ref());
    }
    producer
        .send(record, timeout)
        .await
        .map(drop)
        .map_err(|(e, _)| e)
}

#[async_trait]
impl Publisher for KafkaPublisher {
    /// Publishes to topic `destination`.
    async fn publish(&self, destination: &str, message: Message) -> Result<(), PublishError> {
        match send(&self.producer, self.timeout, destination, &message, &[]).await {
            Ok(()) => Ok(()),
            Err(e) => Err(PublishError::new(destination, message, e)),
        }
    }

    /// librdkafka's `message.max.bytes` less the record framing.
    fn max_message_bytes(&self) -> Option<usize> {
        Some(self.max_record_bytes)
    }
}
