//! How the suite reaches an adapter's broker.

use std::future::Future;
use std::time::Duration;

use wharf::adapter::{Capabilities, Subscriber};
use wharf::adapter::{Client, DeadLetterReader};
use wharf::headers::names;
use wharf::{Error, Message, Publisher};

/// How the suite reaches an adapter's broker: its [`Client`], plus what no client
/// offers (restarting the broker, waiting for a group to settle, the broker's limits).
///
/// Each adapter implements it once in its own tests and hands it to
/// [`conformance_tests!`](crate::conformance_tests). The suite calls it with a fresh,
/// unique topic and fresh, unique group names per test, so an implementation needs no
/// cleanup between tests and tests may run in parallel against one broker.
///
/// Everything the suite does to messages goes through the adapter's [`Client`]
/// surface: [`prepare`](Self::prepare) is [`Client::declare`],
/// [`subscribe`](Self::subscribe) is [`Client::subscriber`], [`publisher`](Self::publisher)
/// is [`Client::publisher`] and [`dead_letters`](Self::dead_letters) reads through
/// [`Client::dead_letters`]. So the suite checks that surface on every adapter; a
/// factory overrides one of them only to change a setting the test needs, and says why.
///
/// A *topic* is a [`Client`] source (a RabbitMQ exchange with a queue per group, a Kafka
/// topic, a NATS subject or JetStream stream); a *group* is a consumer group.
///
/// # Example
///
/// The in-memory adapter's factory, as in this crate's `tests/memory.rs`:
///
/// ```
/// use wharf_conformance::AdapterFactory;
/// use wharf_memory::{MemoryBroker, MemorySubscriber};
///
/// struct MemoryFactory {
///     broker: MemoryBroker,
/// }
///
/// impl AdapterFactory for MemoryFactory {
///     type Client = MemoryBroker;
///     type Subscriber = MemorySubscriber;
///     type Publisher = MemoryBroker;
///
///     fn name(&self) -> &str {
///         "memory"
///     }
///
///     fn client(&self) -> &MemoryBroker {
///         &self.broker
///     }
/// }
/// ```
pub trait AdapterFactory: Send + Sync + 'static {
    /// The adapter's client.
    type Client: Client<Subscriber = Self::Subscriber, Publisher = Self::Publisher>;
    /// The adapter's subscriber (the client's).
    type Subscriber: Subscriber;
    /// The adapter's publisher (the client's).
    type Publisher: Publisher;

    /// A short name for the adapter (`memory`, `rabbitmq`, ...), used in messages.
    fn name(&self) -> &str;

    /// The client every test goes through.
    fn client(&self) -> &Self::Client;

    /// What the broker promises, exactly as the adapter's subscribers report it. Tests of
    /// behaviour that is not promised are skipped; everything promised is checked.
    fn capabilities(&self) -> Capabilities {
        self.client().capabilities()
    }

    /// Declares `topic` and each of `groups` ([`Client::declare`]), so that messages
    /// published from now on are kept for every group even before it subscribes.
    ///
    /// Called once per test, before anything is published or subscribed.
    fn prepare(
        &self,
        topic: &str,
        groups: &[&str],
    ) -> impl Future<Output = Result<(), Error>> + Send {
        async move { self.client().declare(topic, groups).await }
    }

    /// A publisher, connected and ready ([`Client::publisher`]). Tests that publish
    /// from several tasks ask for several.
    fn publisher(&self) -> impl Future<Output = Result<Self::Publisher, Error>> + Send {
        async move { Ok(self.client().publisher()) }
    }

    /// The destination to hand [`Publisher::publish`] for messages to `topic`: the topic
    /// itself, as on every [`Client`].
    fn destination(&self, topic: &str) -> String {
        topic.to_owned()
    }

    /// Joins consumer group `group` on `topic` ([`Client::subscriber`]).
    fn subscribe(
        &self,
        topic: &str,
        group: &str,
    ) -> impl Future<Output = Result<Self::Subscriber, Error>> + Send {
        async move { self.client().subscriber(topic, group).await }
    }

    /// The messages `group` dead-lettered on `topic`, oldest first, as the client's
    /// [`DeadLetterReader`] lists them at its destination for `topic` and `group`.
    ///
    /// Only called when [`Capabilities::native_dead_letter`] is promised.
    fn dead_letters(
        &self,
        topic: &str,
        group: &str,
    ) -> impl Future<Output = Result<Vec<DeadLetterRecord>, Error>> + Send {
        async move {
            let reader = self.client().dead_letters();
            let destination = reader.destination(topic, group);
            Ok(reader
                .list(&destination, 100_000)
                .await?
                .into_iter()
                .map(|m| {
                    let reason = m.headers().get_str(names::DLQ_REASON).map(str::to_owned);
                    DeadLetterRecord::new(m, reason)
                })
                .collect())
        }
    }

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
