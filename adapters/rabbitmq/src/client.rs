//! [`RabbitClient`]: the adapter's [`Client`] surface, and its dead-letter reader.

use async_trait::async_trait;
use lapin::options::{BasicAckOptions, BasicGetOptions};
use wharf::adapter::dead_letter::same_letter;
use wharf::adapter::{Backlog, Capabilities};
use wharf::adapter::{Client, DeadLetterReader};
use wharf::{Error, Message};

use crate::config::RabbitConfig;
use crate::error::RabbitError;
use crate::message::from_amqp;
use crate::publisher::RabbitPublisher;
use crate::subscriber::{capabilities, RabbitSubscriber};
use crate::topology;

/// A connection to RabbitMQ: subscribers, a publisher, topology and dead letters, the
/// same surface as every other adapter's client.
///
/// A *source* is a topic exchange; group `g` of source `s` is the quorum queue `s.g`
/// bound to it with the configuration's `binding_key` (default `#`), with its retry
/// tier queues and its dead-letter queue `s.g.dlq` (see [`topology`]). The
/// configuration's connection settings and queue options (`prefetch`, `queue_type`,
/// `retry_tiers`, `delivery_limit`, ...) apply to every subscriber; its `queue` and
/// `exchange` are not used here (they are for [`RabbitSubscriber::connect`], which
/// consumes one configured queue).
///
/// Cheap to clone: clones share the publisher's connection. Each subscriber has a
/// connection of its own (reconnected on its own).
///
/// ```no_run
/// use wharf_rabbitmq::RabbitClient;
///
/// # async fn run() -> Result<(), wharf::Error> {
/// let rabbit = RabbitClient::connect("amqp://guest:guest@127.0.0.1:5672/%2f".parse()?).await?;
/// rabbit.declare("orders", &["billing"]).await?;
/// let subscriber = rabbit.subscriber("orders", "billing").await?; // queue `orders.billing`
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct RabbitClient {
    config: RabbitConfig,
    publisher: RabbitPublisher,
}

impl RabbitClient {
    /// Connects (the publisher's connection, so an unreachable broker or wrong
    /// credentials fail here, as [`Error::Connection`]).
    pub async fn connect(config: RabbitConfig) -> Result<Self, Error> {
        config.validate()?;
        let publisher = RabbitPublisher::connect(&config).await?;
        Ok(RabbitClient { config, publisher })
    }

    /// The configuration this client was made from.
    pub fn config(&self) -> &RabbitConfig {
        &self.config
    }

    /// What subscribers of this client promise (from the configured queue type).
    pub fn capabilities(&self) -> Capabilities {
        capabilities(self.config.queue_type)
    }

    /// The configuration of group `group` on source `source`: exchange `source`, queue
    /// `<source>.<group>`.
    pub fn group_config(&self, source: &str, group: &str) -> Result<RabbitConfig, Error> {
        // `#`: a group gets every message published to the source (the publisher sends
        // to the exchange with an empty routing key).
        let config = self
            .config
            .clone()
            .exchange(source)
            .binding_key("#")
            .queue(format!("{source}.{group}"));
        config.validate()?;
        Ok(config)
    }

    /// Declares exchange `source` (also with no groups, for a producer that declares
    /// before any consumer exists) and, for each of `groups`, its queue (bound to the
    /// exchange with `#`), retry tier queues and dead-letter queue.
    pub async fn declare(&self, source: &str, groups: &[&str]) -> Result<(), Error> {
        if groups.is_empty() {
            return topology::declare_exchange(&self.config, source).await;
        }
        for group in groups {
            topology::declare(&self.group_config(source, group)?).await?;
        }
        Ok(())
    }

    /// Joins group `group` on `source`: declares its topology and consumes queue
    /// `<source>.<group>`.
    pub async fn subscriber(&self, source: &str, group: &str) -> Result<RabbitSubscriber, Error> {
        RabbitSubscriber::connect(&self.group_config(source, group)?).await
    }

    /// The publisher (shared by every clone of this client).
    pub fn publisher(&self) -> RabbitPublisher {
        self.publisher.clone()
    }

    /// The reader of the dead-letter queues.
    pub fn dead_letters(&self) -> RabbitDeadLetters {
        RabbitDeadLetters::new(self.config.clone())
    }

    /// The backlog of group `group` on `source`: the ready messages and consumers of
    /// queue `<source>.<group>` and the depth of `<source>.<group>.dlq` (see
    /// [`Backlog`] for what AMQP cannot tell). An error when the queue does not exist.
    pub async fn backlog(&self, source: &str, group: &str) -> Result<Backlog, Error> {
        let queue = format!("{source}.{group}");
        crate::backlog::backlog(&self.publisher, &queue, &format!("{queue}.dlq")).await
    }
}

impl Client for RabbitClient {
    type Subscriber = RabbitSubscriber;
    type Publisher = RabbitPublisher;
    type DeadLetters = RabbitDeadLetters;

    fn capabilities(&self) -> Capabilities {
        RabbitClient::capabilities(self)
    }

    async fn declare(&self, source: &str, groups: &[&str]) -> Result<(), Error> {
        RabbitClient::declare(self, source, groups).await
    }

    async fn subscriber(&self, source: &str, group: &str) -> Result<RabbitSubscriber, Error> {
        RabbitClient::subscriber(self, source, group).await
    }

    fn publisher(&self) -> RabbitPublisher {
        RabbitClient::publisher(self)
    }

    fn dead_letters(&self) -> RabbitDeadLetters {
        RabbitClient::dead_letters(self)
    }

    async fn backlog(&self, source: &str, group: &str) -> Result<Backlog, Error> {
        RabbitClient::backlog(self, source, group).await
    }
}

/// Reads and removes dead letters in RabbitMQ's dead-letter queues (`<queue>.dlq`).
///
/// Reading takes messages with `basic.get` and leaves them unacked, then closes the
/// channel, which puts them back in their place; removing acks the matching ones. On a
/// quorum queue each read counts as a delivery (`x-delivery-count`), and a consumer of
/// the dead-letter queue may receive the messages meanwhile.
#[derive(Clone, Debug)]
pub struct RabbitDeadLetters {
    config: RabbitConfig,
}

impl RabbitDeadLetters {
    pub(crate) fn new(config: RabbitConfig) -> Self {
        RabbitDeadLetters { config }
    }

    /// Takes every message of `queue` (up to `max`) unacked, hands each to `keep`
    /// (which says whether to ack it), then closes the channel: what was not acked goes
    /// back. Returns the messages taken.
    async fn sweep(
        &self,
        queue: &str,
        max: usize,
        mut ack: impl FnMut(&Message) -> bool,
    ) -> Result<Vec<Message>, Error> {
        let connection = crate::connection::connect(&self.config, "dead-letters")
            .await
            .map_err(|e| Error::Connection(Box::new(e)))?;
        let result = async {
            let channel = crate::connection::channel(&connection).await?;
            let source = queue.into();
            let mut out = Vec::new();
            while out.len() < max {
                let got = channel
                    .basic_get(queue.into(), BasicGetOptions { no_ack: false })
                    .await
                    .map_err(|e| RabbitError::amqp(format!("reading queue `{queue}`"), e))?;
                let Some(got) = got else { break };
                let d = got.delivery;
                let message = from_amqp(&d.properties, d.data, d.redelivered, &source);
                if ack(&message) {
                    channel
                        .basic_ack(d.delivery_tag, BasicAckOptions::default())
                        .await
                        .map_err(|e| RabbitError::amqp(format!("removing from `{queue}`"), e))?;
                }
                out.push(message);
            }
            // Waits for the acks, and puts everything not acked back.
            let _ = channel.close(200, "OK".into()).await;
            Ok::<_, RabbitError>(out)
        }
        .await;
        let _ = connection.close(200, "OK".into()).await;
        result.map_err(|e| Error::Subscribe(Box::new(e)))
    }
}

#[async_trait]
impl DeadLetterReader for RabbitDeadLetters {
    fn destination(&self, source: &str, group: &str) -> String {
        format!("{source}.{group}.dlq")
    }

    async fn list(&self, destination: &str, max: usize) -> Result<Vec<Message>, Error> {
        self.sweep(destination, max, |_| false).await
    }

    async fn remove(&self, destination: &str, letter: &Message) -> Result<bool, Error> {
        let mut removed = false;
        self.sweep(destination, usize::MAX, |m| {
            let hit = !removed && same_letter(m, letter);
            removed |= hit;
            hit
        })
        .await?;
        Ok(removed)
    }
}
