//! Kafka adapter for wharf (rdkafka, bundled librdkafka): consumer groups with
//! per-key parallelism inside a partition and contiguous offset commits.
//!
//! # Delivery semantics
//!
//! **At-least-once, ordered per key, parallel across keys.** A subscriber is a member of
//! a consumer group (classic protocol, or KIP-848 `consumer` with
//! [`GroupProtocol::Consumer`]); Kafka assigns it partitions. Records of
//! one partition are handed to the runtime in offset order, and the runtime's key lanes
//! ([`DeliveryOrder::PerKey`](wharf::DeliveryOrder::PerKey), the default) run messages of one key
//! one after another while **different keys of the same partition run in parallel**, up
//! to the consumer's `max_in_flight`. Most Kafka consumer frameworks hold one message in
//! flight per partition; with a 1 ms handler and many keys this is the difference between
//! a thousand messages per second per partition and the in-flight limit's worth.
//!
//! **Offsets are committed as the contiguous watermark of settled offsets** (see
//! [`offsets`]): never past a message still in flight, so a crash, a rebalance or a
//! shutdown loses nothing; messages settled after a gap are read again (put the dedup
//! layer in the stack). Commits happen every `commit_interval`, on every revoke and at
//! [`close`](wharf::adapter::Subscriber::close).
//!
//! **Retry** waits inside the message's key lane by default ([`RetryMode::Lane`]): the
//! key is held, other keys keep flowing, the partition's watermark waits, order per key
//! is kept. Kafka has no per-message delay or redelivery counter, so the attempt count of
//! a lane retry lives in the consumer: a crash restarts it at 1. [`RetryMode::Topic`]
//! republishes to `<topic>.retry` instead (attempt in `wharf-attempt`), which frees the
//! lane but does **not** keep order.
//!
//! **Dead letters** go to `<topic>.dlq` with the `wharf-dlq-*` headers, published on the
//! idempotent producer; the offset is settled only once the broker confirmed the copy.
//!
//! | capability | Kafka |
//! |---|---|
//! | acknowledgements, redelivers unacked, persistent | yes (offsets) |
//! | order per key, competing consumers, fan-out groups | yes |
//! | native dead letter, retains before subscribe | yes (`<topic>.dlq`; `offset_reset=earliest`) |
//! | retry in lane (runtime-timed) | yes with [`RetryMode::Lane`] |
//! | native delay | only with [`RetryMode::Topic`] |
//! | broker attempt count | no |
//!
//! # Example
//!
//! ```no_run
//! use wharf::{Consumer, Handler, HandlerError, Message};
//! use wharf_kafka::KafkaClient;
//!
//! async fn handle(msg: Message) -> Result<(), HandlerError> {
//!     println!("{} (attempt {})", msg.id(), msg.attempt());
//!     Ok(())
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let kafka = KafkaClient::connect("kafka://127.0.0.1:9092/orders?group=billing".parse()?).await?;
//! let subscriber = kafka.configured_subscriber().await?;
//! Consumer::new("billing", subscriber, handle.into_service())
//!     .max_in_flight(256)
//!     .run(wharf::shutdown::signal())
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! # Building
//!
//! librdkafka is built from source with cmake (`cmake-build`; Debian's librdkafka is too
//! old): the build machine needs `cmake` and the `libcurl4-openssl-dev` headers
//! (`scripts/test.sh` installs both). TLS and SCRAM need the `ssl` feature and
//! `libssl-dev`.
//!
//! The modules: [`config`] (URL and builder), [`subscriber`], [`acker`], [`offsets`]
//! (the watermark), [`publisher`], [`message`] (record mapping), [`error`].

mod client;

pub mod acker;
mod backlog;
pub mod config;
mod dead_letters;
pub mod error;
pub mod message;
mod offset_map;
pub mod offsets;
pub mod publisher;
pub mod subscriber;

pub use acker::KafkaAcker;
pub use client::KafkaClient;
pub use config::{GroupProtocol, KafkaConfig, OffsetReset, RetryMode, Sasl, SaslMechanism, Secret};
pub use dead_letters::KafkaDeadLetters;
pub use error::KafkaError;
pub use publisher::KafkaPublisher;
pub use subscriber::{AssignedPartitions, KafkaSubscriber};

/// Re-exported so users name the same rdkafka as the adapter (mock clusters, options).
pub use rdkafka;
