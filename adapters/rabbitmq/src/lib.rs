//! RabbitMQ adapter for wharf, on [lapin](https://docs.rs/lapin) 4.
//!
//! **Delivery semantics.** At-least-once. Each delivery is acked on its own
//! (`basic.ack`, never `multiple`) once the runtime settled it; `basic.qos` bounds the
//! deliveries in flight. A delivery that is never settled (a crash, a dropped acker, a
//! lost connection) goes back to the queue when its channel closes, and is delivered
//! again. A `Retry { after }` is a copy published — with a publisher confirm — to a
//! retry tier queue whose TTL dead-letters it back to the work queue after the tier's
//! delay, *then* the original is acked: a crash in between duplicates the message but
//! never loses it. `DeadLetter` publishes to `<queue>.dlq` the same way, with the same
//! `wharf-dlq-*` headers as every other adapter. Duplicates happen (redeliveries after
//! a reconnect, confirm-then-ack): put the deduplication layer in the stack.
//!
//! **Attempts.** `Message::attempt` is `wharf-attempt` (carried on retry copies; 1 when
//! absent) plus the broker's count of redeliveries of this copy (`x-delivery-count` on
//! quorum queues, the default; classic queues only say `redelivered`, counted as one).
//!
//! - [`RabbitConfig`]: from an `amqp://` URL, changed with setters; the password never prints.
//! - [`RabbitSubscriber`]: declares the [topology] (work queue, retry tiers, dead-letter
//!   queue), consumes with a prefetch, reconnects with backoff.
//! - [`RabbitAcker`]: settles one delivery (see [`acker`] for each outcome).
//! - [`RabbitPublisher`]: publisher confirms and `mandatory`; unroutable or refused
//!   messages are errors that hand the message back.
//!
//! ```no_run
//! use wharf::{Consumer, Handler, HandlerError, Message};
//! use wharf_rabbitmq::{RabbitConfig, RabbitSubscriber};
//!
//! async fn handle(msg: Message) -> Result<(), HandlerError> {
//!     println!("{} (attempt {})", msg.id(), msg.attempt());
//!     Ok(())
//! }
//!
//! # async fn run() -> Result<(), wharf::Error> {
//! let config = RabbitConfig::from_url("amqp://guest:guest@127.0.0.1:5672/%2f?queue=orders&prefetch=64")?;
//! let subscriber = RabbitSubscriber::connect(&config).await?;
//! Consumer::new("orders", subscriber, handle.into_service())
//!     .max_in_flight(64)
//!     .run(wharf::shutdown::signal())
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! # Features
//!
//! | feature | default | |
//! |---|---|---|
//! | `tls` | off | `amqps://` through rustls (builds aws-lc). Without it, an `amqps://` URL is a configuration error. |

pub mod acker;
mod backlog;
mod client;
pub mod config;
mod connection;
pub mod error;
pub mod inspect;
pub mod message;
pub mod publisher;
pub mod subscriber;
pub mod topology;

pub use acker::RabbitAcker;
pub use client::{RabbitClient, RabbitDeadLetters};
pub use config::{QueueType, RabbitConfig};
pub use error::RabbitError;
pub use publisher::RabbitPublisher;
pub use subscriber::{capabilities, RabbitSubscriber, SubscriberStats};
pub use topology::Topology;

/// The lapin crate this adapter is built on.
pub use lapin;
