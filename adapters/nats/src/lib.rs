//! NATS adapter for wharf: Core NATS (at-most-once) and JetStream (at-least-once).
//!
//! # Delivery semantics
//!
//! **JetStream (`nats+jetstream://`) is at-least-once.** Messages live in a stream; a
//! durable pull consumer is the consumer group (its members share the messages, separate
//! durables each get everything). A message is removed from the group's view only by an
//! ack; one that is not acked (a crash, a dropped acker, a closed subscriber) comes back,
//! with the broker's delivery count as [`Message::attempt`](wharf::Message::attempt).
//! `Retry { after }` is a native delayed redelivery (`Nak` with a delay) that holds up
//! nothing else; `DeadLetter` publishes the message with the `wharf-dlq-*` headers to a
//! dead-letter stream, waits for the broker's confirmation, then terminates the original;
//! `Drop` terminates it. Handlers that run longer than `ack_wait` are kept alive with
//! in-progress acks. Duplicates happen (an ack lost in a disconnect, a redelivery after
//! `ack_wait`): put the dedup layer in the stack.
//!
//! **Core NATS (`nats://`) is at-most-once.** A message reaches the subscriptions that
//! exist when it is published, once, and is gone: no acks, no redelivery, no persistence,
//! no attempt count (always 1). Settling does nothing. A `Retry` cannot be honoured and
//! loses the message (logged, counted); retry on Core is in-process only (the retry
//! layer's `in_process_retries`). Core has no native dead-letter path, so the runtime
//! would turn a `DeadLetter` into a (lost) `Retry`: **put the dead-letter layer in the
//! stack on Core** (the recommended stack has it), which publishes dead letters to
//! `<subject>.dlq`.
//!
//! | capability | JetStream | Core |
//! |---|---|---|
//! | acknowledgements, redelivers unacked, persistent | yes | no |
//! | native delay, broker attempt count, native dead letter | yes | no |
//! | retains before subscribe | yes (once the durable exists) | no |
//! | competing consumers | yes (one durable) | with a queue group |
//! | fan-out groups, order per key (one publisher) | yes | yes |
//!
//! NATS's default maximum payload is 1 MiB, headers included.
//!
//! # Example
//!
//! ```no_run
//! use wharf::{Consumer, Handler, HandlerError, Message};
//! use wharf_nats::{NatsClient, NatsConfig};
//!
//! async fn handle(msg: Message) -> Result<(), HandlerError> {
//!     println!("{} (attempt {})", msg.id(), msg.attempt());
//!     Ok(())
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config: NatsConfig =
//!     "nats+jetstream://127.0.0.1:4222/ORDERS?subject=orders.>&durable=billing&ack_wait=30s"
//!         .parse()?;
//! let nats = NatsClient::connect(config).await?;
//! let subscriber = nats.jetstream_subscriber().await?;
//! Consumer::new("billing", subscriber, handle.into_service())
//!     .run(wharf::shutdown::signal())
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! The modules: [`config`] (URL and builder), [`subscriber`], [`acker`], [`publisher`],
//! [`topology`] (streams and durable consumers), [`message`] (header mapping),
//! [`error`].

pub mod acker;
mod backlog;
mod client;
pub mod config;
mod dead_letters;
pub mod error;
pub mod message;
pub mod publisher;
pub mod subscriber;
pub mod topology;

pub use acker::{CoreAcker, JetStreamAcker, NatsAcker};
pub use client::{stream_name, NatsClient};
pub use config::{
    Auth, CoreSource, JetStreamSource, Mode, NatsConfig, Retention, Secret, Storage, Tls,
};
pub use dead_letters::NatsDeadLetters;
pub use error::NatsError;
pub use publisher::NatsPublisher;
pub use subscriber::{CoreSubscriber, JetStreamSubscriber, NatsSubscriber};

/// Re-exported so users name the same async-nats as the adapter.
pub use async_nats;
