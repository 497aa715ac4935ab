//! How the suite reaches an adapter's broker.

use std::future::Future;
use std::time::Duration;

use wharf::{Capabilities, Error, Message, Publisher, Subscriber};

/// Creates an adapter's subscribers and publishers, and declares its topology, for the
/// conformance suite.
///
/// Each adapter implements it once in its own tests and hands it to
/// [`conformance_tests!`](crate::conformance_tests). The suite calls it with a fresh,
/// unique topic and fresh, unique group names per test, so an implementation needs no
/// cleanup between tests and tests may run in parallel against one broker.
///
/// A *topic* is what publishers send to and subscribers read from (a RabbitMQ exchange
/// with a queue per group, a Kafka topic, a NATS subject or JetStream stream); a *group*
/// is a consumer group (a queue, a Kafka group id, a durable consumer).
///
/// # Example
///
/// The in-memory adapter's factory, as in this crate's `tests/memory.rs`:
///
/// ```
/// use wharf::Capabilities;
/// use wharf_conformance::{AdapterFactory, DeadLetterRecord};
/// use wharf_memory::{MemoryBroker, MemorySubscriber};
///
/// struct MemoryFactory {
///     broker: MemoryBroker,
/// }
///
/// impl AdapterFactory for MemoryFactory {
///     type Subscriber = MemorySubscriber;
///     type Publisher = MemoryBroker;
///
///     fn name(&self) -> &str {
///         "memory"
///     }
///
///     fn capabilities(&self) -> Capabilities {
///         self.broker.capabilities()
///     }
///
///     async fn prepare(&self, topic: &str, groups: &[&str]) -> Result<(), wharf::Error> {
///         for group in groups {
///             self.broker.declare_group(topic, group);
///         }
///         Ok(())
///     }
///
///     async fn publisher(&self) -> Result<MemoryBroker, wharf::Error> {
///         Ok(self.broker.clone())
///     }
///
///     async fn subscribe(&self, topic: &str, group: &str) -> Result<MemorySubscriber, wharf::Error> {
///         Ok(self.broker.subscribe(topic, group))
///     }
///
///     async fn dead_letters(
///         &self,
///         topic: &str,
///         group: &str,
///     ) -> Result<Vec<DeadLetterRecord>, wharf::Error> {
///         Ok(self
///             .broker
///             .native_dead_letters(topic, group)
///             .into_iter()
///             .map(|d| DeadLetterRecord::new(d.message, Some(d.failure.reason().to_string())))
///             .collect())
///     }
/// }
/// ```
pub trait AdapterFactory: Send + Sync + 'static {
    /// The adapter's subscriber.
    type Subscriber: Subscriber;
    /// The adapter's publisher.
    type Publisher: Publisher;

    /// A short name for the adapter (`memory`, `rabbitmq`, ...), used in messages.
    fn name(&self) -> &str;

    /// What the broker promises, exactly as the adapter's subscribers report it. Tests of
    /// behaviour that is not promised are skipped; everything promised is checked.
    fn capabilities(&self) -> Capabilities;

    /// Declares the topology for `topic` and each of `groups` (exchanges, queues and
    /// bindings; a topic with enough partitions for three competing members; streams and
    /// durable consumers), so that messages published from now on are kept for every
    /// group even before it subscribes.
    ///
    /// Called once per test, before anything is published or subscribed.
    fn prepare(
        &self,
        topic: &str,
        groups: &[&str],
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// A publisher, connected and ready. Tests that publish from several tasks ask for
    /// several.
    fn publisher(&self) -> impl Future<Output = Result<Self::Publisher, Error>> + Send;

    /// The destination to hand [`Publisher::publish`] for messages to `topic`. The
    /// default is the topic name itself.
    fn destination(&self, topic: &str) -> String {
        topic.to_owned()
    }

    /// Joins consumer group `group` on `topic`.
    fn subscribe(
        &self,
        topic: &str,
        group: &str,
    ) -> impl Future<Output = Result<Self::Subscriber, Error>> + Send;

    /// The messages `group` dead-lettered through the broker's native dead-letter path
    /// (a `DeadLetter` settlement with no dead-letter layer in the stack), oldest first.
    ///
    /// Only called when [`Capabilities::native_dead_letter`] is promised; adapters
    /// without a native path may return an empty list.
    fn dead_letters(
        &self,
        topic: &str,
        group: &str,
    ) -> impl Future<Output = Result<Vec<DeadLetterRecord>, Error>> + Send;

    /// Restarts the broker and returns once it accepts connections again, or returns
    /// `Ok(false)` when this factory cannot restart it (the default). Used to check that
    /// persistent messages survive a restart and that the adapter reconnects.
    fn restart_broker(&self) -> impl Future<Output = Result<bool, Error>> + Send {
        async { Ok(false) }
    }

    /// Waits until `members`, all subscribed to one group, share the group's work: on
    /// brokers where membership settles asynchronously (a Kafka group rebalancing as
    /// members join), a member that subscribed may not have been given anything yet.
    /// The default returns at once (membership is immediate).
    fn group_ready(
        &self,
        members: &[&Self::Subscriber],
    ) -> impl Future<Output = Result<(), Error>> + Send {
        let _ = members;
        async { Ok(()) }
    }

    /// How long any single wait in a test may take before the test fails (default 30 s).
    fn timeout(&self) -> Duration {
        Duration::from_secs(30)
    }

    /// Size of the payload in [`large_payload`](crate::suite::large_payload) (default
    /// 1 MiB). Lower it only where the broker is configured with a smaller maximum (Core
    /// NATS defaults to 1 MB including headers) and say so in the adapter's docs.
    fn large_payload_size(&self) -> usize {
        1 << 20
    }
}

/// A message the broker dead-lettered natively, as read back by
/// [`AdapterFactory::dead_letters`].
#[derive(Debug, Clone)]
pub struct DeadLetterRecord {
    /// The dead-lettered message (the original id, payload, key and headers).
    pub message: Message,
    /// The reason code (`decode`, `permanent`, ...), where the native path keeps it.
    pub reason: Option<String>,
}

impl DeadLetterRecord {
    /// A record of `message` dead-lettered with `reason`.
    pub fn new(message: Message, reason: Option<String>) -> Self {
        DeadLetterRecord { message, reason }
    }
}
