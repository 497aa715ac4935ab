//! [`Client`]: the one surface every adapter offers, and [`DeadLetterReader`].

use std::fmt;
use std::future::Future;

use async_trait::async_trait;

use super::{Backlog, Capabilities, Publisher, Subscriber};
use crate::error::Error;
use crate::message::{Message, MessageId};

/// A connection to a broker, entered the same way on every adapter.
///
/// Every adapter's client (`MemoryBroker`, `RabbitClient`, `KafkaClient`, `NatsClient`)
/// has these methods as inherent methods too, so code that uses one adapter needs no
/// import; this trait is for code generic over the broker (the conformance suite,
/// `wharf-any`, tools).
///
/// The words mean the same on every broker:
///
/// - a **source** is what publishers send to and subscribers read from: a RabbitMQ
///   exchange (with a queue `<source>.<group>` per group), a Kafka topic, a NATS subject
///   (JetStream: captured by a stream named after it);
/// - a **group** is a consumer group: its members share the messages, and separate
///   groups each get every message;
/// - [`publisher`](Client::publisher)`.publish(source, message)` reaches every group
///   subscribed to `source`.
///
/// ```
/// use wharf::adapter::Client;
/// use wharf::{Consumer, Handler, HandlerError, Message, Publisher};
///
/// async fn handle(_: Message) -> Result<(), HandlerError> { Ok(()) }
///
/// /// Runs on any broker: the caller picks the client.
/// async fn run(client: impl Client) -> Result<wharf::Summary, wharf::Error> {
///     client.declare("orders", &["billing"]).await?;
///     client.publisher().publish("orders", Message::new("o-1")).await?;
///     let subscriber = client.subscriber("orders", "billing").await?;
///     Consumer::new("billing", subscriber, handle.into_service())
///         .stop_when_idle(std::time::Duration::from_millis(200))
///         .run(std::future::pending())
///         .await
/// }
/// ```
pub trait Client: Clone + Send + Sync + 'static {
    /// The subscriber [`subscriber`](Client::subscriber) returns.
    type Subscriber: Subscriber;
    /// The publisher [`publisher`](Client::publisher) returns.
    type Publisher: Publisher + Clone;
    /// The dead-letter reader [`dead_letters`](Client::dead_letters) returns.
    type DeadLetters: DeadLetterReader + Clone;

    /// What the broker promises to this client's subscribers.
    fn capabilities(&self) -> Capabilities;

    /// Creates what `source` and each of `groups` need on the broker (exchanges, queues,
    /// topics, streams, durable consumers, and their dead-letter places), so that
    /// messages published from now on are kept for every group, even before it
    /// subscribes. Idempotent: what exists is kept as it is.
    fn declare(
        &self,
        source: &str,
        groups: &[&str],
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// Joins consumer group `group` on `source` (declaring what it needs first).
    fn subscriber(
        &self,
        source: &str,
        group: &str,
    ) -> impl Future<Output = Result<Self::Subscriber, Error>> + Send;

    /// A publisher on this client's connection: `publish(source, message)` returns once
    /// the broker confirmed the message (where the broker confirms anything).
    fn publisher(&self) -> Self::Publisher;

    /// The reader of the dead letters this broker keeps.
    fn dead_letters(&self) -> Self::DeadLetters;

    /// What group `group` has not settled yet on `source`, as the broker tells it now
    /// (see [`Backlog`] for what each broker can tell). An error when the source (or,
    /// except on Kafka, the group) does not exist, or the broker keeps no backlog (NATS
    /// Core). Kafka cannot tell a group that does not exist from one that never
    /// committed: its backlog is the whole topic, with no members.
    fn backlog(
        &self,
        source: &str,
        group: &str,
    ) -> impl Future<Output = Result<Backlog, Error>> + Send;
}

/// Reads and removes the dead letters a broker keeps, the same way on every broker.
///
/// A dead letter is the original message (id, key, payload, headers) with the
/// `wharf-dlq-*` headers (reason, error, source, consumer, attempts, failed-at; see
/// [`dead_letter_message`](crate::adapter::dead_letter::dead_letter_message)). They are kept at a
/// *destination* ([`destination`](DeadLetterReader::destination) names it for a
/// source and group): a queue, a topic, a stream.
#[async_trait]
pub trait DeadLetterReader: Send + Sync + fmt::Debug + 'static {
    /// Where the dead letters of `group` consuming `source` are kept, as this reader's
    /// other methods take it. Dead letters of several groups may share one destination
    /// (Kafka, NATS): tell them apart by `wharf-dlq-consumer`.
    fn destination(&self, source: &str, group: &str) -> String;

    /// Up to `max` dead letters kept at `destination`, oldest first, without removing
    /// them. An empty list when there are none; an error naming the destination when it
    /// does not exist or cannot be read.
    async fn list(&self, destination: &str, max: usize) -> Result<Vec<Message>, Error>;

    /// The dead letter with id `id` at `destination`, if it is there.
    async fn read(&self, destination: &str, id: &MessageId) -> Result<Option<Message>, Error> {
        Ok(self
            .list(destination, usize::MAX)
            .await?
            .into_iter()
            .find(|m| m.id() == id))
    }

    /// Removes `letter` (as [`list`](Self::list) or [`read`](Self::read) returned it)
    /// from `destination`; `Ok(false)` if it is not there. Only that dead letter goes:
    /// other groups' dead letters of the same message at a shared destination, or an
    /// earlier dead letter of it, stay (see
    /// [`same_letter`](crate::adapter::dead_letter::same_letter)).
    async fn remove(&self, destination: &str, letter: &Message) -> Result<bool, Error>;
}
