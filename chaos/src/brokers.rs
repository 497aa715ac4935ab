//! The brokers the harness runs on, and the URL each child connects with.

use std::time::Duration;

/// How often the Kafka children commit their watermarks.
pub(crate) const KAFKA_COMMIT_INTERVAL: Duration = Duration::from_millis(200);

/// A broker under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Broker {
    RabbitMq,
    Kafka,
    JetStream,
}

impl Broker {
    pub(crate) fn parse(v: &str) -> Result<Broker, String> {
        match v {
            "rabbitmq" => Ok(Broker::RabbitMq),
            "kafka" => Ok(Broker::Kafka),
            "jetstream" | "nats+jetstream" => Ok(Broker::JetStream),
            "nats" | "nats-core" => Err(
                "NATS Core is at-most-once (a message in flight when the subscriber dies is \
                 gone): there is no promise to prove under SIGKILL; see docs/guarantees.md"
                    .to_owned(),
            ),
            other => Err(format!(
                "`--broker` must be rabbitmq, kafka or jetstream, got `{other}`"
            )),
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Broker::RabbitMq => "RabbitMQ",
            Broker::Kafka => "Kafka",
            Broker::JetStream => "JetStream",
        }
    }

    /// The broker's port on loopback.
    pub(crate) fn port(self) -> u16 {
        match self {
            Broker::RabbitMq => 5672,
            Broker::Kafka => 9092,
            Broker::JetStream => 4222,
        }
    }

    /// The URL every process of run `run` connects with, to the broker at `port` (its
    /// own, or a proxy's).
    ///
    /// - RabbitMQ: one retry tier (nothing fails, so nothing waits in it) and the run's
    ///   queues expire a minute after their last consumer left, so runs leave nothing
    ///   behind (a node restarted with hundreds of quorum queues recovers every one of
    ///   them before it answers quickly again).
    ///
    /// - Kafka: 4 partitions; static membership (`group.instance.id`), so a restarted
    ///   child takes its dead predecessor's place at once instead of waiting out the
    ///   session timeout; the earliest offset, since the backlog is published first;
    ///   watermarks committed every [`KAFKA_COMMIT_INTERVAL`] (what a kill replays).
    /// - JetStream: a 2 s `ack_wait`, so what a killed child held comes back soon (live
    ///   children send progress acks for longer handlers).
    pub(crate) fn url(self, run: &str, port: u16) -> String {
        match self {
            Broker::RabbitMq => {
                format!("amqp://guest:guest@127.0.0.1:{port}/%2f?retry_tiers=1s&queue_expires=60s")
            }
            Broker::Kafka => format!(
                "kafka://127.0.0.1:{port}?partitions=4&offset_reset=earliest\
                 &session_timeout=6s&rdkafka.group.instance.id=chaos-{run}\
                 &commit_interval={}ms",
                KAFKA_COMMIT_INTERVAL.as_millis()
            ),
            Broker::JetStream => format!("nats+jetstream://127.0.0.1:{port}?ack_wait=2s"),
        }
    }

    /// How long before a kill a handled message may still be unsettled at the broker,
    /// so that the kill makes it run again without a store (at-least-once), besides the
    /// handlers in flight:
    ///
    /// - RabbitMQ and JetStream settle each message on its own as it finishes: none
    ///   beyond the handlers in flight and the acks on their way (`in_flight` more);
    /// - Kafka commits a watermark every [`KAFKA_COMMIT_INTERVAL`]: what was handled
    ///   since the last commit comes back, so three intervals: one between commits, one
    ///   for a commit under way when the process died, one for the watermark's lag behind
    ///   handling (a partition's watermark waits for its slowest key lane). Committing
    ///   the settled offsets above the watermark with it would bring this near zero.
    pub(crate) fn unsettled_window(self) -> Duration {
        match self {
            Broker::RabbitMq | Broker::JetStream => Duration::ZERO,
            Broker::Kafka => 3 * KAFKA_COMMIT_INTERVAL,
        }
    }

    /// Whether the broker keeps one key's messages in order through redeliveries (Kafka:
    /// a key's records stay in one partition, and a restart resumes from the committed
    /// offset; RabbitMQ and JetStream redeliver what a dead consumer held after newer
    /// messages may have been handled).
    pub(crate) fn keeps_key_order(self) -> bool {
        matches!(self, Broker::Kafka)
    }
}
