//! Choose wharf's broker by URL at run time.
//!
//! [`connect`] takes a URL and returns an [`AnyClient`]: the same
//! [`Client`] surface every adapter has (`declare`,
//! `subscriber`, `publisher`, `dead_letters`), whose subscriber and publisher plug into
//! [`Consumer`](wharf::Consumer) and the layers like any adapter's. The same handler
//! binary then runs on every broker by changing one environment variable.
//!
//! | URL | broker | feature |
//! |---|---|---|
//! | `memory://` | a new in-memory broker (each `connect` its own) | always on |
//! | `amqp://`, `amqps://` | RabbitMQ ([`wharf_rabbitmq`]) | `rabbitmq` (`amqps`: and `tls`) |
//! | `kafka://`, `kafka+ssl://` | Kafka ([`wharf_kafka`]) | `kafka` (`kafka+ssl`: and `tls`) |
//! | `nats://` (TLS: `?tls=true`) | Core NATS ([`wharf_nats`]), at-most-once | `nats` |
//! | `nats+jetstream://` | NATS JetStream, at-least-once | `nats` |
//!
//! The URL is the adapter's own (every option it documents works here); `tls` turns on
//! the build features `amqps://` and `kafka+ssl://` need (librdkafka is then built with
//! OpenSSL: libssl-dev and pkg-config); `all` turns every adapter and `tls` on. An unknown scheme, or one whose feature is off, is an
//! [`Error::Config`] on `url` naming what to do; the URL itself is never repeated in an
//! error, since it may hold a password.
//!
//! ```
//! use wharf::{Consumer, Handler, HandlerError, Message, Publisher};
//!
//! async fn handle(msg: Message) -> Result<(), HandlerError> {
//!     println!("{}", String::from_utf8_lossy(msg.payload()));
//!     Ok(())
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), wharf::Error> {
//! let url = std::env::var("WHARF_URL").unwrap_or_else(|_| "memory://".into());
//! let client = wharf_any::connect(&url).await?;
//! client.declare("greetings", &["printer"]).await?;
//! client.publisher().publish("greetings", Message::new("hello")).await?;
//!
//! let subscriber = client.subscriber("greetings", "printer").await?;
//! let summary = Consumer::new("printer", subscriber, handle.into_service())
//!     .stop_when_idle(std::time::Duration::from_millis(500))
//!     .run(wharf::shutdown::signal())
//!     .await?;
//! assert_eq!(summary.acked, 1);
//! # Ok(()) }
//! ```
//!
//! Each type here is an enum with one variant per enabled adapter; a call is one
//! `match` away from the adapter's own (no boxing, no dynamic dispatch).

// Each enum is as large as its largest variant: what that adapter's own type costs
// when used alone, so boxing the large variants would only add a step for them.
#![allow(clippy::large_enum_variant)]

mod dispatch;
mod subscriber;

use async_trait::async_trait;
use wharf::adapter::{Backlog, Capabilities};
use wharf::adapter::{Client, DeadLetterReader};
use wharf::{Error, Message, MessageId, PublishError, Publisher};

pub use subscriber::{AnyAcker, AnySettle, AnySubscriber};

use dispatch::{each, each_into, each_try_into};

/// The adapter a URL scheme needs, and whether it is built in.
fn adapter_for(scheme: &str) -> Result<(&'static str, bool), Error> {
    Ok(match scheme {
        "memory" => ("memory", true),
        "amqp" | "amqps" => ("rabbitmq", cfg!(feature = "rabbitmq")),
        "kafka" | "kafka+ssl" => ("kafka", cfg!(feature = "kafka")),
        "nats" | "nats+jetstream" => ("nats", cfg!(feature = "nats")),
        other => {
            return Err(Error::config(
                "url",
                format!(
                    "unknown scheme `{other}`: expected `memory://`, `amqp://`, `amqps://`, \
                     `kafka://`, `kafka+ssl://`, `nats://` or `nats+jetstream://`"
                ),
            ))
        }
    })
}

/// Connects to the broker `url` names (see the [crate docs](crate) for the schemes).
///
/// Fails with [`Error::Config`] on `url` for an unknown scheme or one whose feature is
/// off, with the adapter's own configuration errors (naming the field) for a bad URL,
/// and with the adapter's connection errors when the broker cannot be reached.
pub async fn connect(url: &str) -> Result<AnyClient, Error> {
    // Only a well-formed scheme is ever quoted: text before `://` in a malformed URL
    // could be part of a password.
    let scheme = url
        .split_once("://")
        .map(|(scheme, _)| scheme)
        .filter(|s| {
            s.starts_with(|c: char| c.is_ascii_lowercase())
                && s.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c))
        })
        .ok_or_else(|| {
            Error::config("url", "expected `<scheme>://...` with a lower-case scheme")
        })?;
    let (adapter, enabled) = adapter_for(scheme)?;
    if !enabled {
        return Err(Error::config(
            "url",
            format!(
                "`{scheme}://` needs the `{adapter}` feature of wharf-any (or `all`), which \
                 this build does not have"
            ),
        ));
    }
    match adapter {
        "memory" => Ok(AnyClient::Memory(wharf_memory::MemoryBroker::new())),
        #[cfg(feature = "rabbitmq")]
        "rabbitmq" => Ok(AnyClient::RabbitMq(
            wharf_rabbitmq::RabbitClient::connect(url.parse()?).await?,
        )),
        #[cfg(feature = "kafka")]
        "kafka" => Ok(AnyClient::Kafka(
            wharf_kafka::KafkaClient::connect(url.parse()?).await?,
        )),
        #[cfg(feature = "nats")]
        "nats" => Ok(AnyClient::Nats(
            wharf_nats::NatsClient::connect(url.parse()?).await?,
        )),
        _ => unreachable!("`adapter_for` names only enabled adapters here"),
    }
}

/// A client of whichever broker [`connect`] reached.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum AnyClient {
    /// The in-memory broker.
    Memory(wharf_memory::MemoryBroker),
    /// RabbitMQ.
    #[cfg(feature = "rabbitmq")]
    RabbitMq(wharf_rabbitmq::RabbitClient),
    /// Kafka.
    #[cfg(feature = "kafka")]
    Kafka(wharf_kafka::KafkaClient),
    /// NATS, Core or JetStream.
    #[cfg(feature = "nats")]
    Nats(wharf_nats::NatsClient),
}

impl AnyClient {
    /// The adapter's name: `memory`, `rabbitmq`, `kafka`, `nats` or `nats-jetstream`.
    pub fn broker(&self) -> &'static str {
        match self {
            AnyClient::Memory(_) => "memory",
            #[cfg(feature = "rabbitmq")]
            AnyClient::RabbitMq(_) => "rabbitmq",
            #[cfg(feature = "kafka")]
            AnyClient::Kafka(_) => "kafka",
            #[cfg(feature = "nats")]
            AnyClient::Nats(c) if c.is_jetstream() => "nats-jetstream",
            #[cfg(feature = "nats")]
            AnyClient::Nats(_) => "nats",
        }
    }

    /// What the broker promises to this client's subscribers.
    pub fn capabilities(&self) -> Capabilities {
        each!(self, AnyClient, c => Client::capabilities(c))
    }

    /// See [`Client::declare`].
    pub async fn declare(&self, source: &str, groups: &[&str]) -> Result<(), Error> {
        each!(self, AnyClient, c => Client::declare(c, source, groups).await)
    }

    /// See [`Client::subscriber`].
    pub async fn subscriber(&self, source: &str, group: &str) -> Result<AnySubscriber, Error> {
        each_try_into!(self, AnyClient, AnySubscriber, c => Client::subscriber(c, source, group).await)
    }

    /// See [`Client::publisher`].
    pub fn publisher(&self) -> AnyPublisher {
        each_into!(self, AnyClient, AnyPublisher, c => Client::publisher(c))
    }

    /// See [`Client::dead_letters`].
    pub fn dead_letters(&self) -> AnyDeadLetters {
        each_into!(self, AnyClient, AnyDeadLetters, c => Client::dead_letters(c))
    }

    /// See [`Client::backlog`].
    pub async fn backlog(&self, source: &str, group: &str) -> Result<Backlog, Error> {
        each!(self, AnyClient, c => Client::backlog(c, source, group).await)
    }
}

impl Client for AnyClient {
    type Subscriber = AnySubscriber;
    type Publisher = AnyPublisher;
    type DeadLetters = AnyDeadLetters;

    fn capabilities(&self) -> Capabilities {
        AnyClient::capabilities(self)
    }

    async fn declare(&self, source: &str, groups: &[&str]) -> Result<(), Error> {
        AnyClient::declare(self, source, groups).await
    }

    async fn subscriber(&self, source: &str, group: &str) -> Result<AnySubscriber, Error> {
        AnyClient::subscriber(self, source, group).await
    }

    fn publisher(&self) -> AnyPublisher {
        AnyClient::publisher(self)
    }

    fn dead_letters(&self) -> AnyDeadLetters {
        AnyClient::dead_letters(self)
    }

    async fn backlog(&self, source: &str, group: &str) -> Result<Backlog, Error> {
        AnyClient::backlog(self, source, group).await
    }
}

/// The publisher of an [`AnyClient`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum AnyPublisher {
    /// The in-memory broker.
    Memory(wharf_memory::MemoryBroker),
    /// RabbitMQ.
    #[cfg(feature = "rabbitmq")]
    RabbitMq(wharf_rabbitmq::RabbitPublisher),
    /// Kafka.
    #[cfg(feature = "kafka")]
    Kafka(wharf_kafka::KafkaPublisher),
    /// NATS.
    #[cfg(feature = "nats")]
    Nats(wharf_nats::NatsPublisher),
}

#[async_trait]
impl Publisher for AnyPublisher {
    async fn publish(&self, destination: &str, message: Message) -> Result<(), PublishError> {
        each!(self, AnyPublisher, p => Publisher::publish(p, destination, message).await)
    }

    fn max_message_bytes(&self) -> Option<usize> {
        each!(self, AnyPublisher, p => p.max_message_bytes())
    }
}

/// The dead-letter reader of an [`AnyClient`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum AnyDeadLetters {
    /// The in-memory broker.
    Memory(wharf_memory::MemoryDeadLetters),
    /// RabbitMQ.
    #[cfg(feature = "rabbitmq")]
    RabbitMq(wharf_rabbitmq::RabbitDeadLetters),
    /// Kafka.
    #[cfg(feature = "kafka")]
    Kafka(wharf_kafka::KafkaDeadLetters),
    /// NATS.
    #[cfg(feature = "nats")]
    Nats(wharf_nats::NatsDeadLetters),
}

#[async_trait]
impl DeadLetterReader for AnyDeadLetters {
    fn destination(&self, source: &str, group: &str) -> String {
        each!(self, AnyDeadLetters, d => d.destination(source, group))
    }

    async fn list(&self, destination: &str, max: usize) -> Result<Vec<Message>, Error> {
        each!(self, AnyDeadLetters, d => d.list(destination, max).await)
    }

    async fn read(&self, destination: &str, id: &MessageId) -> Result<Option<Message>, Error> {
        each!(self, AnyDeadLetters, d => d.read(destination, id).await)
    }

    async fn remove(&self, destination: &str, letter: &Message) -> Result<bool, Error> {
        each!(self, AnyDeadLetters, d => d.remove(destination, letter).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn unknown_schemes_and_missing_features_name_what_to_do() {
        let err = connect("mqtt://u:hunter2@host").await.unwrap_err();
        let text = err.to_string();
        assert!(text.contains("unknown scheme `mqtt`"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(matches!(err, Error::Config { ref field, .. } if field == "url"));

        let err = connect("no scheme here").await.unwrap_err().to_string();
        assert!(err.contains("<scheme>://"), "{err}");
        // Text before `://` is quoted only when it is a scheme: here it is a password.
        let err = connect("p@ss:hunter2://host")
            .await
            .unwrap_err()
            .to_string();
        assert!(!err.contains("hunter2"), "{err}");

        #[cfg(not(feature = "kafka"))]
        {
            let err = connect("kafka://u:hunter2@127.0.0.1:9092")
                .await
                .unwrap_err()
                .to_string();
            assert!(err.contains("the `kafka` feature of wharf-any"), "{err}");
            assert!(!err.contains("hunter2"), "{err}");
        }
    }

    #[tokio::test]
    async fn memory_urls_connect_to_a_fresh_broker() {
        let client = connect("memory://").await.unwrap();
        assert_eq!(client.broker(), "memory");
        client.declare("t", &["g"]).await.unwrap();
        client
            .publisher()
            .publish("t", Message::new("x"))
            .await
            .unwrap();
        let other = connect("memory://").await.unwrap();
        let AnyClient::Memory(b) = other else {
            unreachable!()
        };
        assert!(
            b.messages("t").is_empty(),
            "each connect has its own broker"
        );
    }
}
